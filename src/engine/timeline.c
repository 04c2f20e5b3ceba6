#include "engine/timeline.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

void timeline_start(struct timeline *tl, double t0)
{
	memset(tl, 0, sizeof(*tl));
	tl->t0 = t0;
}

void timeline_mark(struct timeline *tl, const char *name)
{
	timeline_mark_at(tl, name, now_ms());
}

void timeline_mark_at(struct timeline *tl, const char *name, double t)
{
	if (tl->n == TIMELINE_MAX)
		return;
	snprintf(tl->s[tl->n].name, sizeof(tl->s[tl->n].name), "%s", name);
	tl->s[tl->n].t = t;
	tl->n++;
	log_debug("step %s: %.0f ms (at %.0f ms)", name, timeline_step_ms(tl, tl->n - 1), t - tl->t0);
}

double timeline_step_ms(const struct timeline *tl, int i)
{
	if (i < 0 || i >= tl->n)
		return 0;
	return tl->s[i].t - (i ? tl->s[i - 1].t : tl->t0);
}

void timeline_to_json(const struct timeline *tl, void *into)
{
	json_t *o = json_object();

	for (int i = 0; i < tl->n; i++) {
		/* a step that happens twice (it should not) adds up */
		json_t *old = json_object_get(o, tl->s[i].name);
		double v = timeline_step_ms(tl, i) + (old ? json_real_value(old) : 0);
		json_object_set_new(o, tl->s[i].name, json_real(v));
	}
	json_object_set_new((json_t *)into, "steps_ms", o);
}
