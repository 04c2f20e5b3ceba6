#include "engine/precopy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/memscan.h"
#include "util/log.h"

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void on_bytes(uint64_t n, void *arg)
{
	progress_add(arg, n);
}

int precopy_run(struct proto_conn *c, uint32_t chan, pid_t root, const struct converge_policy *p, struct pageset *set,
		struct zpolicy *z, struct progress *pg, bool show, struct precopy_stats *ps, struct error *e)
{
	unsigned max = p->max_rounds < CONVERGE_ROUNDS_LIMIT ? p->max_rounds : CONVERGE_ROUNDS_LIMIT;
	struct converge_policy pol = *p;
	char phase[24];
	int r;

	if (max < 1)
		max = 1;
	pol.max_rounds = max;
	memset(ps, 0, sizeof(*ps));
	for (;;) {
		struct precopy_round *rd = &ps->r[ps->n];
		struct page_writer w;
		struct mem_round mr;
		uint64_t estimate;

		/* round 1 moves everything present; later ones about what the
		 * previous one found new */
		estimate = ps->n == 0 ? memscan_estimate(root) * PAGE_SZ : ps->r[ps->n - 1].sent * PAGE_SZ;
		snprintf(phase, sizeof(phase), "round %u", ps->n + 1);
		progress_begin(pg, show, phase, estimate);
		if (ps->n > 0)
			snprintf(pg->note, sizeof(pg->note), "dirty %.1f MiB/s", ps->r[ps->n - 1].dirty_bps / 1048576.0);
		rd->t_start = mono_ms();
		r = pw_begin(&w, c, chan, AREA_PAGES, NULL, z, e);
		w.on_bytes = on_bytes;
		w.arg = pg;
		if (r == 0)
			r = memscan_round(root, set, &w, &mr, e);
		double t_scanned = mono_ms();
		if (r == 0)
			r = pw_end(&w);
		log_debug("pre-copy round %u: the scan and its batches %.0f ms, then the destination's answer %.0f ms",
			  ps->n + 1, t_scanned - rd->t_start, mono_ms() - t_scanned);
		rd->wire_bytes = w.wire_bytes;
		pw_free(&w);
		progress_end(pg);
		if (r < 0)
			return error_wrap(e, "pre-copy round %u", ps->n + 1);
		rd->ms = mono_ms() - rd->t_start;
		rd->scanned = mr.scanned;
		rd->sent = mr.sent;
		rd->unchanged = mr.unchanged;
		rd->zero = mr.zero;
		rd->unreadable = mr.unreadable;
		ps->wire_bytes += rd->wire_bytes;
		ps->n++;
		converge_measure(ps->r, ps->n);
		/* the wire rate: the best a round of some size achieved (small
		 * rounds are dominated by the scan) */
		if (rd->ms > 0 && (ps->n == 1 || rd->wire_bytes >= (4u << 20))) {
			double bw = (double)rd->wire_bytes / (rd->ms / 1000.0);
			if (bw > ps->bw_bps)
				ps->bw_bps = bw;
		}
		log_debug("pre-copy round %u: %llu pages scanned, %llu sent, %llu unchanged, %llu zero in %.0f ms "
			  "(dirty %.1f MiB/s)",
			  ps->n, (unsigned long long)rd->scanned, (unsigned long long)rd->sent,
			  (unsigned long long)rd->unchanged, (unsigned long long)rd->zero, rd->ms,
			  rd->dirty_bps / 1048576.0);
		ps->stop = converge_next(&pol, ps->r, ps->n, ps->bw_bps, ps->why, sizeof(ps->why));
		if (ps->stop != CONV_CONTINUE)
			break;
	}
	log_info("pre-copy: %u round%s, stopped: %s", ps->n, ps->n > 1 ? "s" : "", ps->why);
	return 0;
}
