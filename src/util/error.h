/* One error convention for all of cmt.
 *
 * Functions that can fail return a negative errno-style value and fill a
 * struct error: what failed, on which host, why, and what to do.  Callers add
 * context with error_wrap(); the CLI boundary prints it once (error_print). */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define ERROR_MSG_MAX 2048
#define ERROR_HINT_MAX 1024
#define ERROR_DETAIL_MAX 4096

struct error {
	int code;                       /* positive errno, 0 when no error */
	char host[128];                 /* where it happened ("" = this host) */
	char msg[ERROR_MSG_MAX];        /* what failed and why */
	char hint[ERROR_HINT_MAX];      /* what to do about it */
	char detail[ERROR_DETAIL_MAX];  /* quoted evidence (log lines), may be "" */
};

/* Sets the error and returns -code (code is a positive errno; 0 becomes EIO). */
int error_set(struct error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like error_set, appending ": strerror(code)". */
int error_errno(struct error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes context to an existing message: "while X: <old msg>". Returns -code. */
int error_wrap(struct error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_hint(struct error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_detail(struct error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_host(struct error *e, const char *host);
void error_clear(struct error *e);
/* Prints "cmt: error: [on HOST: ]MSG", the detail lines and "hint: ...". */
void error_print(const struct error *e);
