#include "engine/converge.h"

#include <stdio.h>

#include "transport/pages.h"

void converge_defaults(struct converge_policy *p)
{
	p->downtime_target_ms = CONVERGE_DEFAULT_TARGET_MS;
	p->max_rounds = CONVERGE_DEFAULT_MAX_ROUNDS;
	p->growth_pct = CONVERGE_DEFAULT_GROWTH_PCT;
	p->min_pages = CONVERGE_DEFAULT_MIN_PAGES;
}

const char *conv_name(enum conv c)
{
	switch (c) {
	case CONV_CONTINUE:
		return "continue";
	case CONV_CONVERGED:
		return "converged";
	case CONV_MAX_ROUNDS:
		return "max-rounds";
	case CONV_MIN_PAGES:
		return "min-pages";
	case CONV_NO_PROGRESS:
		return "no-progress";
	}
	return "?";
}

void converge_measure(struct precopy_round *r, unsigned n)
{
	if (n < 2)
		return;
	double dt = r[n - 1].t_start - r[n - 2].t_start;
	r[n - 1].dirty_bps = dt > 0 ? (double)r[n - 1].sent * PAGE_SZ / (dt / 1000.0) : 0;
}

enum conv converge_next(const struct converge_policy *p, const struct precopy_round *r, unsigned n, double bw_bps,
			char *why, size_t len)
{
	const struct precopy_round *last = &r[n - 1];
	double pending = last->dirty_bps * last->ms / 1000.0; /* dirtied while the last round ran */
	double eta_ms = bw_bps > 0 ? pending / bw_bps * 1000.0 : 1e12;

	if (n >= 2 && last->sent < p->min_pages) {
		snprintf(why, len, "round %u sent %llu pages, under the minimum of %llu", n, (unsigned long long)last->sent,
			 (unsigned long long)p->min_pages);
		return CONV_MIN_PAGES;
	}
	if (n >= 2 && eta_ms <= p->downtime_target_ms) {
		snprintf(why, len,
			 "what round %u saw dirtied (%.1f MiB at %.1f MiB/s) takes about %.0f ms at %.0f MiB/s, within "
			 "the %.0f ms target",
			 n, pending / 1048576.0, last->dirty_bps / 1048576.0, eta_ms, bw_bps / 1048576.0,
			 p->downtime_target_ms);
		return CONV_CONVERGED;
	}
	if (n >= p->max_rounds) {
		snprintf(why, len, "%u rounds, the maximum (%.1f MiB still dirty per round)", n, pending / 1048576.0);
		return CONV_MAX_ROUNDS;
	}
	if (n >= 3 && (double)last->sent > (double)r[n - 2].sent * (1.0 + p->growth_pct / 100.0)) {
		snprintf(why, len,
			 "round %u sent %llu pages after %llu: the workload dirties memory (%.1f MiB/s) faster than "
			 "the rounds drain it",
			 n, (unsigned long long)last->sent, (unsigned long long)r[n - 2].sent, last->dirty_bps / 1048576.0);
		return CONV_NO_PROGRESS;
	}
	return CONV_CONTINUE;
}
