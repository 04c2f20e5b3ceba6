/* cmt ps: the containers this host's runc root holds. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "monitor/monitor.h"
#include "util/spawn.h"

const char help_ps[] =
	"Usage: cmt ps [--json]\n"
	"\n"
	"Lists the containers in this host's runc root (--runc-root, default\n"
	"/run/runc) with their status, init PID, bundle and, for a container\n"
	"started by `cmt run` (or moved here after it), the PID of the cmt monitor\n"
	"that logs its output (`cmt logs ID`).\n"
	"\n"
	"  --json   one JSON array of {id, status, pid, bundle, monitor}\n";

int cmd_ps(struct ctx *c, int argc, char **argv)
{
	struct error e = { 0 };
	struct run_result rr;
	struct run_opts o = { .timeout_ms = 30000, .capture_max = 4 << 20 };
	json_error_t je;
	json_t *list;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else
			return usage_error("ps", "unexpected argument '%s'", argv[i]);
	}
	if (ctx_need_runc(c, &e) < 0) {
		error_print(&e);
		return EXIT_FAIL;
	}
	char *cmd[] = { c->runc, "--root", c->cfg.runc_root, "list", "--format", "json", NULL };
	if (run_cmd(cmd, &o, &rr, &e) < 0) {
		error_print(&e);
		return EXIT_FAIL;
	}
	if (rr.status != 0) {
		fprintf(stderr, "cmt: error: runc list failed: %s", rr.err);
		run_result_free(&rr);
		return EXIT_FAIL;
	}
	list = json_loads(rr.out, JSON_DECODE_ANY, &je);
	run_result_free(&rr);
	if (!list || json_is_null(list)) {
		json_decref(list);
		list = json_array();
	}
	if (json) {
		json_t *out = json_array();
		size_t i;
		json_t *it;
		json_array_foreach(list, i, it)
		{
			json_t *x = json_object();
			json_object_set(x, "id", json_object_get(it, "id"));
			json_object_set(x, "status", json_object_get(it, "status"));
			json_object_set(x, "pid", json_object_get(it, "pid"));
			json_object_set(x, "bundle", json_object_get(it, "bundle"));
			const char *id = json_string_value(json_object_get(it, "id"));
			pid_t mp = id ? monitor_find(c->cfg.root, id) : 0;
			json_object_set_new(x, "monitor", mp > 0 ? json_integer(mp) : json_null());
			json_array_append_new(out, x);
		}
		char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(out);
	} else {
		size_t i;
		json_t *it;
		printf("%-24s %-9s %-8s %-8s %s\n", "ID", "STATUS", "PID", "MONITOR", "BUNDLE");
		json_array_foreach(list, i, it)
		{
			const char *id = json_string_value(json_object_get(it, "id"));
			pid_t mp = id ? monitor_find(c->cfg.root, id) : 0;
			char mon[16] = "-";
			if (mp > 0)
				snprintf(mon, sizeof(mon), "%d", (int)mp);
			printf("%-24s %-9s %-8lld %-8s %s\n", id, json_string_value(json_object_get(it, "status")),
			       (long long)json_integer_value(json_object_get(it, "pid")), mon,
			       json_string_value(json_object_get(it, "bundle")));
		}
	}
	json_decref(list);
	return EXIT_OK;
}
