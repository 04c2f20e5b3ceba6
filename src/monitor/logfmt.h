/* The log format of a container started by `cmt run`: one record per line,
 *
 *     2026-12-01T19:28:00.123456789Z stdout F the text
 *
 * the time (UTC, nanoseconds) the monitor read it, the stream (stdout or
 * stderr), F when the record ends a line of the container's output or P
 * when it is a part of a line continued by the next record of the same
 * stream (a line longer than LOG_LINE_MAX, or a line cut by a migration's
 * drain), and the text without its newline.  This is the k8s-file format
 * conmon writes for Podman.  Pure functions, unit-tested. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define LOG_LINE_MAX 16384 /* longer lines are split into P records */

enum log_stream { LOG_STDOUT = 0, LOG_STDERR = 1 };

struct log_record {
	struct timespec ts;
	enum log_stream stream;
	bool partial;       /* P: the line goes on in the next record of this stream */
	const char *text;   /* points into the parsed line */
	size_t len;
};

/* The record's header "TIME STREAM F|P " into out (at least LOG_HDR_MAX). */
#define LOG_HDR_MAX 64
size_t logfmt_header(char *out, const struct timespec *ts, enum log_stream s, bool partial);
/* Parses one line (without its '\n'); 0 or -EINVAL. */
int logfmt_parse(const char *line, size_t len, struct log_record *r);

/* Cuts a stream's bytes into records: calls emit for each complete line and
 * for each LOG_LINE_MAX piece of a longer one; keeps the rest. */
typedef int (*log_emit_fn)(void *arg, enum log_stream s, bool partial, const char *text, size_t len);
struct log_asm {
	enum log_stream stream;
	size_t len;
	char buf[LOG_LINE_MAX];
};
int log_asm_feed(struct log_asm *a, const char *p, size_t n, log_emit_fn emit, void *arg);
/* What is kept, as one record (partial: P, else F); nothing when empty. */
int log_asm_flush(struct log_asm *a, bool partial, log_emit_fn emit, void *arg);
