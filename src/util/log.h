/* Human-facing messages on stderr.  Library code logs at debug level only;
 * the verbs decide what the user sees. */
#pragma once
#include <stdbool.h>

extern int log_verbosity; /* -1 quiet, 0 normal, 1 -v, 2 -vv */

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Milliseconds from an arbitrary monotonic origin. */
double now_ms(void);
