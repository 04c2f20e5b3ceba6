/* cmt run: start a runc container whose stdio belongs to a cmt monitor
 * (monitor/monitor.h), which logs its output; `cmt monitor` is that
 * process. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "drivers/driver.h"
#include "drivers/ocispec.h"
#include "monitor/monitor.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

const char help_run[] =
	"Usage: cmt run [--name ID] BUNDLE\n"
	"\n"
	"Starts the runc container of the OCI bundle BUNDLE (its ID: --name, or the\n"
	"bundle directory's name) with stdin on /dev/null and stdout and stderr on\n"
	"pipes read by a cmt monitor process, which writes them to\n"
	"<state root>/logs/ID.log (see `cmt logs`).  The container is detached and\n"
	"has no terminal: config.json must say \"terminal\": false.  When the\n"
	"container moves with `cmt migrate`, a monitor on the destination takes\n"
	"over and the log goes on there.\n"
	"\n"
	"  --name ID   the container's ID (default: the bundle directory's name)\n";

const char help_monitor[] =
	"Usage: (internal) cmt monitor --run ID BUNDLE | --adopt ID\n"
	"\n"
	"The process that owns a container's stdio and writes its log; started by\n"
	"`cmt run` and by the agent when a monitored container arrives.\n";

static bool id_valid(const char *id)
{
	return name_is_safe(id, 80);
}

/* config.json must not ask for a terminal: the monitor gives pipes. */
static int check_bundle(const char *bundle, const char *id, struct error *e)
{
	char p[PATH_MAX + 16];
	_cleanup_free_ char *txt = NULL;
	json_error_t je;
	json_t *j;
	int r;

	snprintf(p, sizeof(p), "%s/config.json", bundle);
	r = read_file(p, OCI_CONFIG_MAX, &txt, NULL, e);
	if (r < 0)
		return error_wrap(e, "%s is not an OCI bundle", bundle);
	j = json_loads(txt, 0, &je);
	if (!j)
		return error_set(e, EINVAL, "cannot parse %s: %s (line %d)", p, je.text, je.line);
	json_t *term = json_object_get(json_object_get(j, "process"), "terminal");
	bool tty = json_is_true(term);
	json_decref(j);
	if (tty) {
		error_set(e, EINVAL, "container %s asks for a terminal (process.terminal is true in %s); cmt run gives it "
				     "pipes to a log instead",
			  id, p);
		error_hint(e, "set \"terminal\": false under \"process\" in config.json (`runc spec` writes true)");
		return -EINVAL;
	}
	return 0;
}

int cmd_run(struct ctx *c, int argc, char **argv)
{
	struct error e = { 0 };
	const char *name = NULL, *bundle_arg = NULL;
	char bundle[PATH_MAX], id[256], logp[PATH_MAX];
	pid_t mon;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!strncmp(argv[i], "--name=", 7))
			name = argv[i] + 7;
		else if (argv[i][0] == '-')
			return usage_error("run", "unknown option '%s'", argv[i]);
		else if (!bundle_arg)
			bundle_arg = argv[i];
		else
			return usage_error("run", "unexpected argument '%s'", argv[i]);
	}
	if (!bundle_arg)
		return usage_error("run", "no bundle given");
	if (!realpath(bundle_arg, bundle)) {
		error_errno(&e, errno, "cannot use the bundle %s", bundle_arg);
		error_print(&e);
		return EXIT_FAIL;
	}
	if (!name) {
		const char *b = strrchr(bundle, '/');
		name = b && b[1] ? b + 1 : bundle;
	}
	snprintf(id, sizeof(id), "%s", name);
	if (!id_valid(id))
		return usage_error("run", "invalid container ID '%s' (1-80 of A-Z a-z 0-9 . _ -, not starting with . or -)",
				   id);
	if (check_bundle(bundle, id, &e) < 0 || ctx_need_runc(c, &e) < 0)
		goto fail;
	if (runc_driver.exists(c, id)) {
		error_set(&e, EEXIST, "a container named %s already exists in runc root %s", id, c->cfg.runc_root);
		error_hint(&e, "pick another name with --name, or remove it (runc delete %s)", id);
		goto fail;
	}
	if (monitor_spawn_run(c, id, bundle, &mon, &e) < 0)
		goto fail;
	monitor_path(c->cfg.root, id, "log", logp, sizeof(logp));
	log_info("container %s runs; monitor %d logs its output to %s (`cmt logs %s`)", id, (int)mon, logp, id);
	return EXIT_OK;
fail:
	error_host(&e, c->cfg.name);
	error_print(&e);
	return EXIT_FAIL;
}

int cmd_monitor(struct ctx *c, int argc, char **argv)
{
	return monitor_main(c, argc, argv);
}
