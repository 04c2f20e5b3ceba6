/* cmt check: can this workload move to that host?  The same checks run at
 * the start of every `cmt migrate`. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "drivers/driver.h"
#include "engine/checks.h"
#include "engine/volumes.h"
#include "transport/rsh.h"
#include "util/log.h"

const char help_check[] =
	"Usage: cmt check [CONTAINER | --pid PID] --to [USER@]HOST [--rsh CMD] [--remote-cmt CMD]\n"
	"                 [--mode MODE] [--volumes POLICY] [--volume /DEST=POLICY]... [--json]\n"
	"\n"
	"Runs the pre-migration checks without moving anything (`cmt migrate` runs\n"
	"them first and refuses to start when one fails, unless --force).  Without a\n"
	"workload only the hosts are checked.  Each check passes, warns or fails; a\n"
	"check that does not pass says what to do.\n"
	"\n"
	"Checks:\n"
	"  cmt              both sides speak the same protocol version\n"
	"  criu-source      CRIU >= 4.2 here and `criu check` passes\n"
	"  criu-destination the same on HOST\n"
	"  criu-versions    same major CRIU version on both (minor differences warn)\n"
	"  runc             runc on HOST (containers)\n"
	"  memory           HOST's available memory against the workload's resident memory\n"
	"  disk             free space for images in HOST's state root\n"
	"  cpu              CRIU's cpuinfo of this host checked by CRIU on HOST\n"
	"  workload-files   no file descriptor on a file outside the workload's mounts\n"
	"  workload-tracer  no debugger attached\n"
	"  workload-sockets sockets of kinds CRIU may refuse (warning)\n"
	"  tcp-repair       established TCP connections and the network-lock tool on both\n"
	"  freezer          a cgroup v1 freezer for process trees\n"
	"  lazy-pages       userfaultfd and the pipe-size limit, for post-copy modes\n"
	"  volumes          every bind mount has a policy (--volumes / --volume, as for\n"
	"                   `cmt migrate`); without any, a warning and all are checked as shared\n"
	"\n"
	"  --json   one JSON object {\"destination\":..., \"ok\":..., \"checks\":[{name, status, detail, hint}...]}\n"
	"\n"
	"Exit status: 0 nothing failed, 1 a check failed (or HOST unreachable), 2 usage.\n";

int cmd_check(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },         { "pid", required_argument, NULL, 'p' },
		{ "rsh", required_argument, NULL, 'e' },        { "remote-cmt", required_argument, NULL, 'r' },
		{ "mode", required_argument, NULL, 'm' },       { "json", no_argument, NULL, 'j' },
		{ "volumes", required_argument, NULL, 'V' },    { "volume", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *to = NULL, *pid = NULL, *rsh = "ssh", *rcmt = "cmt", *mode = "cold", *ct = NULL;
	bool json = false, have_policy = false;
	enum vol_policy vdefault = VOL_NONE;
	struct vol_rule rules[VOL_MAX];
	int nrules = 0;
	struct error e = { 0 }, ve = { 0 };
	struct workload w;
	struct peer p;
	struct check_list *l;
	int o, r, failed;

	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (o) {
		case 't': to = optarg; break;
		case 'p': pid = optarg; break;
		case 'e': rsh = optarg; break;
		case 'r': rcmt = optarg; break;
		case 'm': mode = optarg; break;
		case 'j': json = true; break;
		case 'V':
			if (vol_policy_parse(optarg, &vdefault) < 0)
				return usage_error("check", "--volumes '%s': use copy, shared or skip", optarg);
			have_policy = true;
			break;
		case 'v':
			if (nrules == VOL_MAX || vol_rule_parse(optarg, &rules[nrules++], &ve) < 0)
				return usage_error("check", "%s", ve.msg[0] ? ve.msg : "too many --volume options");
			have_policy = true;
			break;
		case ':': return usage_error("check", "option '%s' needs a value", argv[optind - 1]);
		default: return usage_error("check", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		ct = argv[optind++];
	if (optind < argc)
		return usage_error("check", "unexpected argument '%s'", argv[optind]);
	if (ct && pid)
		return usage_error("check", "give either a container or --pid, not both");
	if (!to)
		return usage_error("check", "--to HOST is required");

	memset(&w, 0, sizeof(w));
	if ((ct || pid) && driver_for(pid ? KIND_PID : KIND_RUNC)->inspect(c, pid ? pid : ct, &w, &e) < 0) {
		error_print(&e);
		return EXIT_FAIL;
	}
	/* volume policies, as `cmt migrate` would apply them: copied and
	 * skipped volumes need nothing on the destination */
	bool vol_failed = false;
	if (ct && w.config_json) {
		w.vols = calloc(VOL_MAX, sizeof(*w.vols));
		int n = w.vols ? volumes_plan(w.config_json, w.label, vdefault, rules, nrules, true, w.vols, VOL_MAX, &ve) : -1;
		if (n >= 0)
			w.nvols = n;
		else
			vol_failed = true;
	}
	if (peer_connect(&p, rsh, to, rcmt, c->cfg.name, &e) < 0) {
		error_print(&e);
		if (json)
			printf("{\"destination\":\"%s\",\"ok\":false,\"error\":\"unreachable\",\"checks\":[]}\n", to);
		return EXIT_FAIL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return EXIT_FAIL;
	r = checks_run(c, &p, (ct || pid) ? &w : NULL, mode, l, &e);
	if (r >= 0 && vol_failed)
		/* without any policy given: a warning (the bind mounts were checked
		 * as shared); with policies that leave one out: what migrate refuses */
		check_add(l, "volumes", have_policy ? CHECK_FAIL : CHECK_WARN, ve.hint, "%s", ve.msg);
	else if (r >= 0 && w.nvols)
		check_add(l, "volumes", CHECK_PASS, NULL, "%d bind mount(s), each with a policy", w.nvols);
	proto_send_msg(&p.conn, MSG_ABORT, NULL, NULL);
	peer_close(&p);
	workload_free(&w);
	if (r < 0) {
		error_print(&e);
		free(l);
		return EXIT_FAIL;
	}
	failed = checks_failed(l);
	if (json) {
		json_t *j = json_object();
		json_object_set_new(j, "destination", json_string(to));
		json_object_set_new(j, "ok", json_boolean(!failed));
		checks_to_json(l, j);
		char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
	} else {
		printf("%-6s %-18s %s\n", "STATUS", "CHECK", "DETAIL");
		for (int i = 0; i < l->n; i++) {
			printf("%-6s %-18s %s\n", check_status_name(l->c[i].status), l->c[i].name, l->c[i].detail);
			if (l->c[i].status != CHECK_PASS && l->c[i].hint[0])
				printf("%-6s %-18s -> %s\n", "", "", l->c[i].hint);
		}
		printf("%s\n", failed ? "=> some checks FAILED: the migration would be refused" : "=> ready to migrate");
	}
	free(l);
	return failed ? EXIT_FAIL : EXIT_OK;
}
