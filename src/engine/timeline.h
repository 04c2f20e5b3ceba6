/* A migration's timeline: the end of each step, for `-v` (one debug line a
 * step) and the JSON ("steps_ms": how long each step took, in order).  It
 * tells where a migration's total time goes beyond the memory transfer
 * (connect, checks, prepare, rounds, freeze, dump, restore, commit, ...). */
#pragma once
#include <stddef.h>

#define TIMELINE_MAX 32

struct timeline {
	double t0; /* ms, monotonic (util/log.h now_ms) */
	int n;
	struct {
		char name[24];
		double t;
	} s[TIMELINE_MAX];
};

void timeline_start(struct timeline *tl, double t0);
/* The step 'name' ended now (a step begins where the one before ended). */
void timeline_mark(struct timeline *tl, const char *name);
/* The same for a step that ended at t (ms, now_ms), noticed later. */
void timeline_mark_at(struct timeline *tl, const char *name, double t);
/* How long step i took, in ms. */
double timeline_step_ms(const struct timeline *tl, int i);
/* Adds "steps_ms": {name: ms, ...} to the JSON object 'into' (a json_t *). */
void timeline_to_json(const struct timeline *tl, void *into);
