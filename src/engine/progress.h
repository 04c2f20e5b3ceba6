/* A live progress line on a terminal (stderr), while bytes travel:
 *
 *   cmt: images    212.5/513.0 MiB  41%  187 MiB/s  ETA 2s
 *
 * Printed at most every PROGRESS_EVERY_MS and only when stderr is a
 * terminal; cleared when the phase ends.  The JSON has the exact figures. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_EVERY_MS 200

struct progress {
	bool on;
	const char *phase;
	uint64_t done, total;
	double t0, last;
	char note[48];   /* appended to the line (pre-copy: "dirty 8.0 MiB/s"), may be "" */
};

/* on: whether to draw at all (a terminal, not --quiet). */
void progress_begin(struct progress *p, bool on, const char *phase, uint64_t total);
void progress_add(struct progress *p, uint64_t bytes);
void progress_end(struct progress *p);
/* The line for these figures (pure; tested). */
void progress_format(char *buf, size_t n, const char *phase, uint64_t done, uint64_t total, double elapsed_ms);
