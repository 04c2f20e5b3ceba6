/* cmt hosts: probe candidate hosts and rank the compatible ones. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/hosts.h"

const char help_hosts[] =
	"Usage: cmt hosts [CONTAINER | --pid PID] [--candidates H1,H2,...] [--rsh CMD]\n"
	"                 [--remote-cmt CMD] [--mode MODE] [--timeout SECONDS] [--json]\n"
	"\n"
	"Probes every candidate in parallel over the remote shell, runs the checks of\n"
	"`cmt check` for the workload on each, measures the round trip and the\n"
	"bandwidth, and ranks the compatible hosts, best first; each excluded host is\n"
	"listed with the reason.  Without --candidates the hosts are read from\n"
	"<state root>/hosts (one per line, '#' comments).  A probe that does not\n"
	"answer within --timeout (default 20 s) is excluded without holding up the\n"
	"others.  `cmt migrate CT --to auto --candidates ...` migrates to the first.\n"
	"\n"
	"Score (higher is better): 10 x GiB of memory left after the move\n"
	"  - 20 x load per CPU + 2 x log2(MiB/s of the link) - 0.5 x round trip in ms.\n"
	"\n"
	"  --json   one JSON object {\"hosts\":[{host, rank, compatible, reason, score,\n"
	"           mem_available_kib, load1, ncpu, rtt_ms, mbps}...]}\n"
	"\n"
	"Exit status: 0 when at least one host is compatible, 1 otherwise, 2 usage.\n";

int cmd_hosts(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "candidates", required_argument, NULL, 'c' }, { "pid", required_argument, NULL, 'p' },
		{ "rsh", required_argument, NULL, 'e' },        { "remote-cmt", required_argument, NULL, 'r' },
		{ "mode", required_argument, NULL, 'm' },       { "timeout", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },             { NULL, 0, NULL, 0 },
	};
	struct hosts_opts ho = { .kind = KIND_RUNC, .rsh = "ssh", .remote_cmt = "cmt", .mode = "cold" };
	struct host_probe *hp;
	struct error e = { 0 };
	const char *pid = NULL;
	bool json = false;
	int o, n = 0, ok = 0;

	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (o) {
		case 'c': ho.candidates = optarg; break;
		case 'p': pid = optarg; break;
		case 'e': ho.rsh = optarg; break;
		case 'r': ho.remote_cmt = optarg; break;
		case 'm': ho.mode = optarg; break;
		case 'T':
			ho.timeout_s = atoi(optarg);
			if (ho.timeout_s <= 0)
				return usage_error("hosts", "--timeout needs a positive number of seconds");
			break;
		case 'j': json = true; break;
		case ':': return usage_error("hosts", "option '%s' needs a value", argv[optind - 1]);
		default: return usage_error("hosts", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		ho.workload = argv[optind++];
	if (optind < argc)
		return usage_error("hosts", "unexpected argument '%s'", argv[optind]);
	if (pid && ho.workload)
		return usage_error("hosts", "give either a container or --pid, not both");
	if (pid) {
		ho.kind = KIND_PID;
		ho.workload = pid;
	}
	hp = calloc(HOSTS_MAX, sizeof(*hp));
	if (!hp)
		return EXIT_FAIL;
	if (hosts_probe(c, &ho, hp, &n, &e) < 0) {
		error_print(&e);
		free(hp);
		return EXIT_FAIL;
	}
	json_t *arr = json_array();
	if (!json)
		printf("%-4s %-20s %-7s %9s %6s %8s %9s  %s\n", "RANK", "HOST", "SCORE", "FREE-MEM", "LOAD", "RTT-MS", "MIB/S",
		       "WHY");
	for (int i = 0; i < n; i++) {
		const struct host_probe *h = &hp[i];
		const char *why = h->compatible ? "compatible" : h->error[0] ? h->error : h->failed;
		ok += h->compatible;
		if (json) {
			json_t *x = json_object();
			json_object_set_new(x, "host", json_string(h->host));
			json_object_set_new(x, "rank", h->compatible ? json_integer(ok) : json_null());
			json_object_set_new(x, "compatible", json_boolean(h->compatible));
			json_object_set_new(x, "reachable", json_boolean(h->reachable));
			json_object_set_new(x, "reason", json_string(why));
			json_object_set_new(x, "score", json_real(h->score));
			json_object_set_new(x, "mem_available_kib", json_integer(h->mem_available_kib));
			json_object_set_new(x, "load1", json_real(h->load1));
			json_object_set_new(x, "ncpu", json_real(h->ncpu));
			json_object_set_new(x, "rtt_ms", json_real(h->rtt_ms));
			json_object_set_new(x, "mbps", json_real(h->mbps));
			json_array_append_new(arr, x);
		} else if (h->compatible) {
			printf("%-4d %-20s %-7.1f %8.1fG %6.2f %8.2f %9.0f  %s\n", ok, h->host, h->score,
			       h->mem_available_kib / 1048576.0, h->load1, h->rtt_ms, h->mbps, why);
		} else {
			printf("%-4s %-20s %-7s %9s %6s %8s %9s  excluded: %s\n", "-", h->host, "-", "-", "-", "-", "-", why);
		}
	}
	if (json) {
		json_t *j = json_object();
		json_object_set_new(j, "hosts", arr);
		char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
	} else {
		json_decref(arr);
	}
	free(hp);
	return ok ? EXIT_OK : EXIT_FAIL;
}
