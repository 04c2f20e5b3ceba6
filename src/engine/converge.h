/* When pre-copy stops iterating (see "Pre-copy" in doc/design.md).
 *
 * After each round, with the dirty rate measured between the starts of the
 * last two scans and the wire rate measured so far, iteration stops when
 *   - what was dirtied during the last round can be sent within the
 *     downtime target (converged),
 *   - or the round was the last allowed (max rounds),
 *   - or the last round sent fewer pages than the minimum (min pages),
 *   - or the last round sent more than the one before it by more than the
 *     growth threshold: the workload dirties faster than the link drains
 *     it, so more rounds only add traffic (no progress).
 * Round 1 sends everything and always runs; its figure says nothing about
 * the dirty rate, so the first decision is made after round 2. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct converge_policy {
	double downtime_target_ms; /* --downtime-target */
	unsigned max_rounds;       /* --max-rounds */
	double growth_pct;         /* --converge-growth: allowed growth of a round over the previous, percent */
	uint64_t min_pages;        /* --min-dirty-pages */
};

#define CONVERGE_DEFAULT_TARGET_MS 300.0
#define CONVERGE_DEFAULT_MAX_ROUNDS 8u
#define CONVERGE_DEFAULT_GROWTH_PCT 0.0
#define CONVERGE_DEFAULT_MIN_PAGES 256u
#define CONVERGE_ROUNDS_LIMIT 64u

struct precopy_round {
	double t_start, ms;        /* monotonic ms; duration */
	uint64_t scanned, sent, unchanged, zero, unreadable;
	uint64_t wire_bytes;       /* stream payload of the round */
	double dirty_bps;          /* bytes of new content per second since the previous scan began (0 in round 1) */
};

enum conv { CONV_CONTINUE, CONV_CONVERGED, CONV_MAX_ROUNDS, CONV_MIN_PAGES, CONV_NO_PROGRESS };

void converge_defaults(struct converge_policy *p);
const char *conv_name(enum conv c);
/* Fills r[n-1].dirty_bps from r[n-2] (n >= 2). */
void converge_measure(struct precopy_round *r, unsigned n);
/* The decision after n rounds (r[0..n-1]), bw_bps the wire rate; why gets
 * one sentence with the figures. */
enum conv converge_next(const struct converge_policy *p, const struct precopy_round *r, unsigned n, double bw_bps,
			char *why, size_t len);
