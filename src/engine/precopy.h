/* Pre-copy: memory rounds while the workload runs (engine side).  Each
 * round is one AREA_PAGES stream of the pages whose content the
 * destination does not hold yet (engine/memscan.h); the policy in
 * engine/converge.h decides when to stop and freeze. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "engine/converge.h"
#include "engine/progress.h"
#include "transport/pages.h"

struct precopy_stats {
	struct precopy_round r[CONVERGE_ROUNDS_LIMIT];
	unsigned n;
	enum conv stop;
	char why[320];
	double bw_bps;      /* wire rate used for the decisions */
	uint64_t wire_bytes;
};

int precopy_run(struct proto_conn *c, uint32_t chan, pid_t root, const struct converge_policy *p, struct pageset *set,
		struct zpolicy *z, struct progress *pg, bool show, struct precopy_stats *ps, struct error *e);
