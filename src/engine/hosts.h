/* Target discovery and ranking: probe candidate hosts in parallel, run the
 * checks for the workload on each, measure round trip and bandwidth, and rank
 * the compatible ones. */
#pragma once
#include <stdbool.h>

#include "engine/context.h"
#include "transport/proto.h"

#define HOSTS_MAX 64

struct host_probe {
	char host[256];
	bool reachable, compatible;
	char error[512];        /* why unreachable */
	char failed[512];       /* names and details of failed checks */
	long long mem_available_kib, need_kib;
	double load1, ncpu, rtt_ms, mbps, score;
};

struct hosts_opts {
	enum workload_kind kind;
	const char *workload;   /* NULL: host checks only */
	const char *candidates; /* "h1,h2,..." or NULL: <root>/hosts */
	const char *rsh, *remote_cmt, *mode;
	int timeout_s;          /* per probe, default 20 */
};

/* Probes every candidate in parallel and ranks them, best first. */
int hosts_probe(struct ctx *c, const struct hosts_opts *o, struct host_probe *out, int *n, struct error *e);
/* For `migrate --to auto`: the best compatible candidate. */
int hosts_pick_best(struct ctx *c, enum workload_kind kind, const char *workload, const char *candidates,
		    const char *rsh, const char *remote_cmt, const char *mode, char *best, size_t n, struct error *e);
/* Splits "a,b c" into hosts; reads <root>/hosts (one per line, '#' comments) when list is NULL. */
int hosts_parse_list(const char *list, const char *root, char hosts[][256], int max, struct error *e);
/* The ranking score (higher is better); documented in README. */
double hosts_score(const struct host_probe *p);
