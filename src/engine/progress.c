#include "engine/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void progress_format(char *buf, size_t n, const char *phase, uint64_t done, uint64_t total, double elapsed_ms)
{
	double mib = (double)done / 1048576.0, rate = elapsed_ms > 0 ? mib / (elapsed_ms / 1000.0) : 0;
	int l;

	if (total >= done && total > 0) {
		double left = rate > 0 ? (double)(total - done) / 1048576.0 / rate : -1;
		l = snprintf(buf, n, "cmt: %-9s %.1f/%.1f MiB  %3.0f%%  %.0f MiB/s", phase, mib, (double)total / 1048576.0,
			     100.0 * (double)done / (double)total, rate);
		if (left >= 0 && l > 0 && (size_t)l < n)
			snprintf(buf + l, n - (size_t)l, "  ETA %.0fs", left);
	} else {
		snprintf(buf, n, "cmt: %-9s %.1f MiB  %.0f MiB/s", phase, mib, rate);
	}
}

void progress_begin(struct progress *p, bool on, const char *phase, uint64_t total)
{
	p->on = on;
	p->phase = phase;
	p->done = 0;
	p->total = total;
	p->note[0] = 0;
	p->t0 = p->last = mono_ms();
}

void progress_add(struct progress *p, uint64_t bytes)
{
	char line[160];
	double now;

	p->done += bytes;
	if (!p->on)
		return;
	now = mono_ms();
	if (now - p->last < PROGRESS_EVERY_MS)
		return;
	p->last = now;
	progress_format(line, sizeof(line), p->phase, p->done, p->total, now - p->t0);
	if (p->note[0]) {
		size_t l = strlen(line);
		snprintf(line + l, sizeof(line) - l, "  %s", p->note);
	}
	fprintf(stderr, "\r%-78s", line);
	fflush(stderr);
}

void progress_end(struct progress *p)
{
	if (p->on && p->last > p->t0) {
		fprintf(stderr, "\r%-78s\r", "");
		fflush(stderr);
	}
	p->on = false;
}
