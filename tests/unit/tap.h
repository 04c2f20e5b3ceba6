/* A tiny header-only TAP (Test Anything Protocol) helper for cmt's unit tests.
 *
 *   int main(void) {
 *           plan(3);                        // or no plan, and done_testing() prints it
 *           ok(1 + 1 == 2, "addition");
 *           is_int(f(), 42, "f() answers %d", 42);
 *           is_str(g(), "x", "g()");
 *           return done_testing();
 *   }
 *
 * Prints "ok N - desc" or "not ok N - desc" with the file:line and the values
 * on failure ("# " diagnostic lines), and a closing "# N passed, N failed"
 * summary.  done_testing() returns the process exit status: nonzero when any
 * assertion failed or the count differs from the plan.  Everything goes to
 * stdout, line-buffered, so output stays in order even around fork(). */
#pragma once
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_run_, tap_failed_, tap_planned_ = -1;

static inline void tap_setup_(void)
{
	static int done;

	if (!done) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		done = 1;
	}
}

static inline void plan(int n)
{
	tap_setup_();
	tap_planned_ = n;
	printf("1..%d\n", n);
}

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	tap_setup_();
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static inline int tap_ok_(int pass, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline int tap_ok_(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_setup_();
	tap_run_++;
	if (!pass)
		tap_failed_++;
	printf("%sok %d - ", pass ? "" : "not ", tap_run_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (!pass)
		printf("#   Failed test at %s:%d\n", file, line);
	fflush(stdout);
	return pass;
}

static inline int tap_is_int_(long long got, long long want, const char *gs, const char *ws, const char *file,
			      int line, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static inline int tap_is_int_(long long got, long long want, const char *gs, const char *ws, const char *file,
			      int line, const char *fmt, ...)
{
	char desc[1024];
	va_list ap;
	int pass = got == want;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	tap_ok_(pass, file, line, "%s", desc);
	if (!pass)
		printf("#          got: %lld (%s)\n#     expected: %lld (%s)\n", got, gs, want, ws);
	return pass;
}

static inline int tap_is_str_(const char *got, const char *want, const char *gs, const char *file, int line,
			      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static inline int tap_is_str_(const char *got, const char *want, const char *gs, const char *file, int line,
			      const char *fmt, ...)
{
	char desc[1024];
	va_list ap;
	int pass = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	tap_ok_(pass, file, line, "%s", desc);
	if (!pass) {
		printf("#          got: %s%s%s (%s)\n", got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", gs);
		printf("#     expected: %s%s%s\n", want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
	}
	return pass;
}

/* Passes when 'needle' occurs in 'got' (for error messages). */
static inline int tap_has_str_(const char *got, const char *needle, const char *gs, const char *file, int line,
			       const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static inline int tap_has_str_(const char *got, const char *needle, const char *gs, const char *file, int line,
			       const char *fmt, ...)
{
	char desc[1024];
	va_list ap;
	int pass = got && needle && strstr(got, needle) != NULL;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	tap_ok_(pass, file, line, "%s", desc);
	if (!pass)
		printf("#          got: \"%s\" (%s)\n#   to contain: \"%s\"\n", got ? got : "(null)", gs,
		       needle ? needle : "(null)");
	return pass;
}

/* n tests that cannot run here, counted as passed: "ok N # SKIP why" */
static inline void skip_n(int n, const char *why)
{
	tap_setup_();
	for (int i = 0; i < n; i++)
		printf("ok %d # SKIP %s\n", ++tap_run_, why);
	fflush(stdout);
}

static inline int done_testing(void)
{
	tap_setup_();
	if (tap_planned_ < 0)
		printf("1..%d\n", tap_run_);
	else if (tap_planned_ != tap_run_)
		printf("# planned %d tests but ran %d\n", tap_planned_, tap_run_);
	printf("# %d passed, %d failed\n", tap_run_ - tap_failed_, tap_failed_);
	fflush(stdout);
	return tap_failed_ || (tap_planned_ >= 0 && tap_planned_ != tap_run_) ? 1 : 0;
}

/* Aborts the test program (e.g. a fixture could not be set up). */
#define BAIL_OUT(...)                                                                                                  \
	do {                                                                                                           \
		printf("Bail out! ");                                                                                  \
		printf(__VA_ARGS__);                                                                                   \
		printf("\n");                                                                                          \
		fflush(stdout);                                                                                        \
		exit(255);                                                                                             \
	} while (0)

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int_((long long)(got), (long long)(want), #got, #want, __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str_((got), (want), #got, __FILE__, __LINE__, __VA_ARGS__)
#define has_str(got, needle, ...) tap_has_str_((got), (needle), #got, __FILE__, __LINE__, __VA_ARGS__)
