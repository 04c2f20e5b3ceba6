/* cmt — container migration tool.  Global options, then a verb. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "criu/gate.h"
#include "engine/journal.h"
#include "transport/rsh.h"
#include "util/log.h"

static const struct verb verbs[] = {
	{ "migrate", cmd_migrate, "move a container or process tree to another host", help_migrate },
	{ "check", cmd_check, "can this workload move to that host? (pre-migration checks)", help_check },
	{ "hosts", cmd_hosts, "probe candidate hosts and rank the compatible ones", help_hosts },
	{ "recover", cmd_recover, "finish or roll back migrations whose cmt died", help_recover },
	{ "run", cmd_run, "start a container whose output a cmt monitor logs", help_run },
	{ "logs", cmd_logs, "print the log of a container started by `cmt run`", help_logs },
	{ "ps", cmd_ps, "list the containers of this host", help_ps },
	{ "agent", cmd_agent, "the destination side (started by cmt through ssh)", help_agent },
	{ "version", cmd_version, "print the versions of cmt, CRIU and runc", help_version },
	{ "monitor", cmd_monitor, "(internal) owns a container's stdio; started by run and the agent", help_monitor },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmt [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]\n"
		"\n"
		"cmt moves running containers and process trees between hosts with CRIU,\n"
		"talking to the other host over SSH (no daemon to deploy).\n"
		"\n"
		"Verbs:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f,
		"\n"
		"Global options (before the verb):\n"
		"  --root DIR        cmt state root (default /var/lib/cmt; its file 'config' is read)\n"
		"  --runc-root DIR   runc state root (default /run/runc)\n"
		"  --criu PATH       CRIU binary (default: config, provisioned prefix, then PATH)\n"
		"  --runc PATH       runc binary (default: config, then PATH)\n"
		"  -v, --verbose     more detail (repeat for more)\n"
		"  -q, --quiet       only errors\n"
		"  -h, --help        this help; `cmt VERB --help` for a verb\n"
		"\n"
		"Example:\n"
		"  cmt migrate web1 --to hostB\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'R' }, { "runc-root", required_argument, NULL, 'U' },
		{ "criu", required_argument, NULL, 'C' }, { "runc", required_argument, NULL, 'X' },
		{ "verbose", no_argument, NULL, 'v' },    { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },       { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx c;
	struct error e = { 0 };
	const char *root = NULL, *runc_root = NULL;
	int o;

	/* runc's CRIU for a staged restore: the agent's gate (criu/gate.h) */
	if (argc > 0 && criu_gate_invoked(argv[0]))
		return criu_gate_main(argc, argv);
	signal(SIGPIPE, SIG_IGN); /* a lost peer is an error to report, not a crash */
	memset(&c, 0, sizeof(c));
	config_defaults(&c.cfg);
	while ((o = getopt_long(argc, argv, "+vqhV", opts, NULL)) != -1) {
		switch (o) {
		case 'R':
			root = optarg;
			break;
		case 'U':
			runc_root = optarg;
			break;
		case 'C':
			c.cli_criu = optarg;
			break;
		case 'X':
			c.cli_runc = optarg;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'q':
			log_verbosity = -1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			return cmd_version(&c, 0, NULL);
		default:
			fprintf(stderr, "Try 'cmt --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (root && snprintf(c.cfg.root, sizeof(c.cfg.root), "%s", root) >= (int)sizeof(c.cfg.root))
		return usage_error(NULL, "--root is too long");
	if (config_load(&c.cfg, &e) < 0) {
		error_print(&e);
		return EXIT_FAIL;
	}
	if (runc_root && snprintf(c.cfg.runc_root, sizeof(c.cfg.runc_root), "%s", runc_root) >= (int)sizeof(c.cfg.runc_root))
		return usage_error(NULL, "--runc-root is too long");

	snprintf(rsh_control_dir, sizeof(rsh_control_dir), "%s/ssh", c.cfg.root);
	const char *name = argv[optind];
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(name, verbs[i].name) != 0)
			continue;
		int vargc = argc - optind;
		char **vargv = argv + optind;
		for (int k = 1; k < vargc; k++) {
			if (!strcmp(vargv[k], "--"))
				break;
			if (!strcmp(vargv[k], "--help") || !strcmp(vargv[k], "-h")) {
				fputs(verbs[i].help, stdout);
				return EXIT_OK;
			}
		}
		/* A migration whose cmt died is finished or rolled back first. */
		if (!strcmp(name, "migrate") || !strcmp(name, "check") || !strcmp(name, "ps")) {
			struct error re = { 0 };
			if (journal_recover(&c, true, &re) < 0)
				log_warn("recovering earlier migrations: %s", re.msg);
			migrations_prune(c.cfg.root);
		}
		optind = 0; /* reset getopt for the verb */
		return verbs[i].run(&c, vargc, vargv);
	}
	return usage_error(NULL, "unknown verb '%s'", name);
}
