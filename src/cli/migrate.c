/* cmt migrate: move a container or a process tree to another host. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/migrate_args.h"
#include "engine/handoff.h"
#include "engine/hosts.h"
#include "engine/migrate.h"
#include "engine/volumes.h"
#include "util/fs.h"
#include "util/log.h"

const char help_migrate[] =
	"Usage: cmt migrate CONTAINER --to [USER@]HOST [OPTIONS]\n"
	"       cmt migrate --pid PID --to [USER@]HOST [OPTIONS]\n"
	"\n"
	"Moves a running runc container (by its ID in this host's runc root) or a\n"
	"process tree (by the PID of its root) to HOST, where it continues with its\n"
	"memory and state.  The destination is reached through a remote shell that\n"
	"starts `cmt agent --stdio` there.\n"
	"\n"
	"A container's root filesystem is copied to HOST while it still runs; then\n"
	"the workload is frozen and dumped with CRIU, and its images and what\n"
	"changed in the root filesystem since (deletions included) are streamed\n"
	"to HOST, which restores it.\n"
	"HOST restores it stopped; the source copy stays frozen until HOST has it\n"
	"ready, then the source commits, HOST lets it run, and only then is the\n"
	"source copy removed.  If anything fails before that, the workload is\n"
	"resumed on this host, HOST is cleaned up, and cmt exits with status 1.\n"
	"\n"
	"Options:\n"
	"  --to [USER@]HOST    destination host (required)\n"
	"  --pid PID           migrate the process tree rooted at PID instead of a container\n"
	"  --mode MODE         auto (the default), cold, precopy, postcopy or hybrid:\n"
	"                      cold     freeze, copy everything, restore\n"
	"                      precopy  copy memory in rounds while the workload runs;\n"
	"                               only what changed since travels while frozen\n"
	"                      postcopy freeze, move everything but memory, run on HOST at\n"
	"                               once; pages follow on demand and in the background\n"
	"                               (CRIU lazy pages) from the frozen source copy: downtime\n"
	"                               does not grow with memory, but if this host or the link\n"
	"                               dies before the last page arrived, the workload is lost\n"
	"                      hybrid   pre-copy rounds while it runs, then post-copy: the\n"
	"                               lazy pages the rounds already sent come from HOST's\n"
	"                               own copy, only the others cross the link (the same\n"
	"                               risk as postcopy, for a shorter time)\n"
	"                      auto     cold for small workloads, else precopy, or hybrid\n"
	"                               with --allow-postcopy where both hosts can; -v says why\n"
	"  --allow-postcopy    let auto pick a post-copy mode: lowest downtime, but if this\n"
	"                      host fails while pages are still here, the workload is lost\n"
	"  --downtime-target MS  pre-copy stops iterating when what is still dirty can be\n"
	"                      sent within MS milliseconds (default 300)\n"
	"  --max-rounds N      at most N pre-copy rounds (default 8)\n"
	"  --converge-growth PCT  stop when a round sends more than PCT %% over the one\n"
	"                      before (default 0: as soon as the dirty set stops shrinking)\n"
	"  --min-dirty-pages N stop when a round sends fewer than N pages (default 256)\n"
	"  --max-bandwidth MIB limit the transfer to MIB MiB/s (default: no limit)\n"
	"  --compress WHEN     auto (zstd where it pays, measured as it goes; the default),\n"
	"                      zstd (always) or none\n"
	"  --rsh CMD           remote shell, split into words like rsync's -e (default: ssh)\n"
	"  --remote-cmt CMD    the cmt command on HOST (default: cmt)\n"
	"  --json              print the result as one JSON object on the last line of stdout\n"
	"  --stats-file FILE   also write that JSON object to FILE\n"
	"  --force             skip the pre-migration checks (see `cmt check`)\n"
	"  --shared-storage    the container's root filesystem is on storage both hosts see at\n"
	"                      the same path: it is not copied\n"
	"  --volumes POLICY    what happens to every bind mount of the container: copy (its data\n"
	"                      travels like the root filesystem), shared (the destination has\n"
	"                      the same data at the same path) or skip (an empty directory there)\n"
	"  --volume /DEST=POLICY  the same for the bind mount at DEST in the container (repeatable,\n"
	"                      wins over --volumes); a bind mount without a policy stops the\n"
	"                      migration before anything is frozen\n"
	"  --lease SECONDS     how long either host waits for the other before giving up\n"
	"                      (default 30); see \"Handoff\" in doc/design.md\n"
	"  --to auto --candidates H1,H2,...\n"
	"                      probe the candidates and migrate to the best compatible one\n"
	"                      (`cmt hosts` shows the ranking and why hosts are excluded)\n"
	"\n"
	"Hooks (shell commands run on this host, with CMT_PHASE, CMT_WORKLOAD,\n"
	"CMT_WORKLOAD_KIND, CMT_SOURCE, CMT_DESTINATION, CMT_MODE, CMT_MIGRATION_ID\n"
	"and, for failed-restore, CMT_ERROR in the environment; each runs at most once):\n"
	"  --hook-pre-dump CMD        before the workload is frozen; failure aborts\n"
	"  --hook-post-dump CMD       after the dump (workload frozen); failure aborts\n"
	"  --hook-pre-restore CMD     right before the destination restores; failure aborts\n"
	"  --hook-post-restore CMD    after the workload runs on HOST; failure is reported only\n"
	"  --hook-failed-restore CMD  after a failed migration was rolled back\n"
	"  --hook-timeout SECONDS     per hook (default 60); a hook past it counts as failed\n"
	"\n"
	"Before anything is frozen, cmt runs the checks of `cmt check` and refuses\n"
	"to start when one fails (-v prints them all).\n"
	"\n"
	"JSON fields: result (\"ok\"/\"failed\"), mode, workload, source, destination,\n"
	"migration_id, downtime_ms (frozen on the source until running on HOST),\n"
	"frozen_ms, dump_ms, transfer_ms, restore_ms (restored, still stopped), commit_ms\n"
	"(until it runs on HOST), criu_dump_ms and criu_restore_ms (CRIU's own part of\n"
	"dump_ms and restore_ms, from its logs), total_ms, bytes_sent, image_bytes, rootfs_bytes, files,\n"
	"cmt_peak_rss_kib, mode_reason, rounds (per pre-copy round: pages scanned, sent,\n"
	"unchanged, zero, bytes, duration_ms, dirty_mib_s), stop_reason, pages_* of the\n"
	"final copy; postcopy: postcopy_ms (running on HOST until the last page arrived)\n"
	"and lazy_bytes (the pages that followed); on failure also error, error_host, hint, source_running, in_doubt.\n"
	"\n"
	"Exit status: 0 migrated, 1 failed (the message says where and why), 2 usage.\n"
	"\n"
	"Examples:\n"
	"  cmt migrate web1 --to hostB\n"
	"  cmt migrate --pid 4242 --to root@10.0.0.2 --rsh 'ssh -p 2222'\n";

int migrate_parse_args(int argc, char **argv, struct migrate_args *a, char *err, size_t n)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },         { "pid", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },       { "rsh", required_argument, NULL, 'e' },
		{ "remote-cmt", required_argument, NULL, 'r' }, { "json", no_argument, NULL, 'j' },
		{ "stats-file", required_argument, NULL, 's' }, { "force", no_argument, NULL, 'f' },
		{ "candidates", required_argument, NULL, 'c' }, { "hook-pre-dump", required_argument, NULL, 1000 },
		{ "hook-post-dump", required_argument, NULL, 1001 }, { "hook-pre-restore", required_argument, NULL, 1002 },
		{ "hook-post-restore", required_argument, NULL, 1003 },
		{ "hook-failed-restore", required_argument, NULL, 1004 },
		{ "hook-timeout", required_argument, NULL, 'T' }, { "lease", required_argument, NULL, 'L' },
		{ "shared-storage", no_argument, NULL, 'S' },
		{ "volumes", required_argument, NULL, 'V' },
		{ "volume", required_argument, NULL, 'v' },
		{ "allow-postcopy", no_argument, NULL, 1010 },
		{ "downtime-target", required_argument, NULL, 1011 },
		{ "max-rounds", required_argument, NULL, 1012 },
		{ "converge-growth", required_argument, NULL, 1013 },
		{ "min-dirty-pages", required_argument, NULL, 1014 },
		{ "max-bandwidth", required_argument, NULL, 1015 },
		{ "compress", required_argument, NULL, 1016 },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	memset(a, 0, sizeof(*a));
	a->mode = "auto";
	a->growth_pct = -1;
	a->min_pages = -1;
	a->compress = "auto";
	a->rsh = "ssh";
	a->remote_cmt = "cmt";
	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (o) {
		case 't':
			a->to = optarg;
			break;
		case 'p':
			a->pid = optarg;
			break;
		case 'm':
			a->mode = optarg;
			break;
		case 'e':
			a->rsh = optarg;
			break;
		case 'r':
			a->remote_cmt = optarg;
			break;
		case 'j':
			a->json = true;
			break;
		case 's':
			a->stats_file = optarg;
			break;
		case 'f':
			a->force = true;
			break;
		case 'S':
			a->shared_storage = true;
			break;
		case 1010:
			a->allow_postcopy = true;
			break;
		case 'V': {
			enum vol_policy vp;
			if (vol_policy_parse(optarg, &vp) < 0) {
				snprintf(err, n, "--volumes '%s': use copy, shared or skip", optarg);
				return -EINVAL;
			}
			a->volumes = optarg;
			break;
		}
		case 'v': {
			struct vol_rule vr;
			struct error ve = { 0 };
			if (a->nvolume == 32) {
				snprintf(err, n, "too many --volume options (at most 32)");
				return -EINVAL;
			}
			if (vol_rule_parse(optarg, &vr, &ve) < 0) {
				snprintf(err, n, "%s", ve.msg);
				return -EINVAL;
			}
			a->volume[a->nvolume++] = optarg;
			break;
		}
		case 'c':
			a->candidates = optarg;
			break;
		case 1000: case 1001: case 1002: case 1003: case 1004:
			a->hook[o - 1000] = optarg;
			break;
		case 'T': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v <= 0 || v > 86400) {
				snprintf(err, n, "--hook-timeout '%s' is not a number of seconds (1-86400)", optarg);
				return -EINVAL;
			}
			a->hook_timeout_s = (int)v;
			break;
		}
		case 'L': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < HANDOFF_LEASE_MIN_MS / 1000 || v > HANDOFF_LEASE_MAX_MS / 1000) {
				snprintf(err, n, "--lease '%s' is not a number of seconds (%d-%d)", optarg,
					 HANDOFF_LEASE_MIN_MS / 1000, HANDOFF_LEASE_MAX_MS / 1000);
				return -EINVAL;
			}
			a->lease_s = (int)v;
			break;
		}
		case 1011: case 1012: case 1013: case 1014: case 1015: {
			static const struct { const char *name, *unit; double min, max; } lim[] = {
				{ "--downtime-target", "milliseconds", 1, 3600000 }, { "--max-rounds", "rounds", 1, 64 },
				{ "--converge-growth", "percent", 0, 1000 }, { "--min-dirty-pages", "pages", 0, 1e9 },
				{ "--max-bandwidth", "MiB/s", 0.01, 1e6 },
			};
			int i = o - 1011;
			char *end;
			double v = strtod(optarg, &end);
			if (!*optarg || *end || v < lim[i].min || v > lim[i].max ||
			    ((o == 1012 || o == 1014) && v != (double)(long)v)) {
				snprintf(err, n, "%s '%s' is not a number of %s (%g-%g)", lim[i].name, optarg, lim[i].unit,
					 lim[i].min, lim[i].max);
				return -EINVAL;
			}
			if (o == 1011)
				a->downtime_target_ms = v;
			else if (o == 1012)
				a->max_rounds = (int)v;
			else if (o == 1013)
				a->growth_pct = v;
			else if (o == 1014)
				a->min_pages = (long)v;
			else
				a->max_bandwidth_mib = v;
			break;
		}
		case 1016:
			if (strcmp(optarg, "auto") && strcmp(optarg, "zstd") && strcmp(optarg, "none")) {
				snprintf(err, n, "--compress '%s': use auto, zstd or none", optarg);
				return -EINVAL;
			}
			a->compress = optarg;
			break;
		case ':':
			snprintf(err, n, "option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, n, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc)
		a->container = argv[optind++];
	if (optind < argc) {
		snprintf(err, n, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (!a->container && !a->pid) {
		snprintf(err, n, "name a container, or a process tree with --pid");
		return -EINVAL;
	}
	if (a->container && a->pid) {
		snprintf(err, n, "give either a container or --pid, not both");
		return -EINVAL;
	}
	if (a->pid) {
		char *end;
		long v = strtol(a->pid, &end, 10);
		if (!*a->pid || *end || v <= 1 || v > 4194304) {
			snprintf(err, n, "--pid '%s' is not a valid process ID", a->pid);
			return -EINVAL;
		}
	}
	if (!a->to || !*a->to) {
		snprintf(err, n, "--to HOST is required");
		return -EINVAL;
	}
	if (!strcmp(a->to, "auto") && (!a->candidates || !*a->candidates)) {
		snprintf(err, n, "--to auto needs --candidates H1,H2,... (or a hosts file: see cmt hosts --help)");
		return -EINVAL;
	}
	if (a->candidates && strcmp(a->to, "auto") != 0) {
		snprintf(err, n, "--candidates goes with --to auto");
		return -EINVAL;
	}
	if (a->to[0] == '-') {
		snprintf(err, n, "--to '%s' does not look like a host name", a->to);
		return -EINVAL;
	}
	static const char *modes[] = { "cold", "precopy", "postcopy", "hybrid", "auto" };
	bool known = false;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		known |= strcmp(a->mode, modes[i]) == 0;
	if (!known) {
		snprintf(err, n, "unknown --mode '%s' (cold, precopy, postcopy, hybrid or auto)", a->mode);
		return -EINVAL;
	}
	return 0;
}

int cmd_migrate(struct ctx *c, int argc, char **argv)
{
	struct migrate_args a;
	struct migrate_opts o;
	struct migrate_stats st;
	struct error e = { 0 };
	char err[512];
	char *json;
	int r;

	if (migrate_parse_args(argc, argv, &a, err, sizeof(err)) < 0)
		return usage_error("migrate", "%s", err);
	memset(&o, 0, sizeof(o));
	memset(&st, 0, sizeof(st));
	o.kind = a.pid ? KIND_PID : KIND_RUNC;
	o.workload = a.pid ? a.pid : a.container;
	o.to = a.to;
	o.rsh = a.rsh;
	o.remote_cmt = a.remote_cmt;
	o.mode = a.mode;
	o.force = a.force;
	o.allow_postcopy = a.allow_postcopy;
	converge_defaults(&o.conv);
	if (a.downtime_target_ms > 0)
		o.conv.downtime_target_ms = a.downtime_target_ms;
	if (a.max_rounds > 0)
		o.conv.max_rounds = (unsigned)a.max_rounds;
	if (a.growth_pct >= 0)
		o.conv.growth_pct = a.growth_pct;
	if (a.min_pages >= 0)
		o.conv.min_pages = (uint64_t)a.min_pages;
	o.max_bandwidth_bps = a.max_bandwidth_mib * 1048576.0;
	o.compress = !strcmp(a.compress, "zstd") ? ZMODE_ALWAYS : !strcmp(a.compress, "none") ? ZMODE_NEVER : ZMODE_AUTO;
	o.lease_ms = (unsigned)a.lease_s * 1000u;
	o.shared_storage = a.shared_storage;
	struct vol_rule rules[32];
	if (a.volumes)
		vol_policy_parse(a.volumes, &o.volumes_default);
	for (int i = 0; i < a.nvolume; i++) {
		struct error ve = { 0 };
		vol_rule_parse(a.volume[i], &rules[i], &ve); /* checked while parsing */
	}
	o.vol_rules = rules;
	o.nvol_rules = a.nvolume;
	o.show_checks = log_verbosity > 0;
	struct hooks hooks = { .timeout_s = a.hook_timeout_s };
	for (int i = 0; i < HOOK_MAX; i++)
		hooks.cmd[i] = a.hook[i];
	o.hooks = &hooks;

	char best[256];
	if (!strcmp(a.to, "auto")) {
		r = hosts_pick_best(c, o.kind, o.workload, a.candidates, a.rsh, a.remote_cmt, o.mode, best, sizeof(best),
				    &e);
		if (r < 0) {
			error_print(&e);
			return EXIT_FAIL;
		}
		log_info("--to auto: %s is the best candidate", best);
		o.to = best;
	}

	r = migrate_run(c, &o, &st, &e);
	if (r < 0)
		error_print(&e);
	else
		migrate_stats_print(&st);
	json = migrate_stats_json(&st, r < 0 ? &e : NULL);
	if (a.json && json)
		printf("%s\n", json);
	if (a.stats_file && json) {
		struct error fe = { 0 };
		size_t l = strlen(json);
		json[l] = '\n';
		if (write_file_atomic(a.stats_file, json, l + 1, 0644, &fe) < 0)
			error_print(&fe);
		json[l] = 0;
	}
	free(json);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
