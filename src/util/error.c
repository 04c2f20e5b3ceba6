#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void vfmt(char *dst, size_t n, const char *fmt, va_list ap)
{
	vsnprintf(dst, n, fmt, ap);
}

static int verror(struct error *e, int code, bool with_strerror, const char *fmt, va_list ap)
{
	if (code <= 0)
		code = code < 0 ? -code : EIO;
	if (!e)
		return -code;
	e->code = code;
	e->hint[0] = e->detail[0] = e->host[0] = 0;
	vfmt(e->msg, sizeof(e->msg), fmt, ap);
	if (with_strerror) {
		size_t l = strlen(e->msg);
		snprintf(e->msg + l, sizeof(e->msg) - l, ": %s", strerror(code));
	}
	return -code;
}

int error_set(struct error *e, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = verror(e, code, false, fmt, ap);
	va_end(ap);
	return r;
}

int error_errno(struct error *e, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = verror(e, code, true, fmt, ap);
	va_end(ap);
	return r;
}

int error_wrap(struct error *e, const char *fmt, ...)
{
	char prefix[512], old[ERROR_MSG_MAX];
	va_list ap;

	if (!e)
		return -EIO;
	if (!e->code)
		e->code = EIO;
	va_start(ap, fmt);
	vfmt(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old);
	return -e->code;
}

void error_hint(struct error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vfmt(e->hint, sizeof(e->hint), fmt, ap);
	va_end(ap);
}

void error_detail(struct error *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vfmt(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
}

void error_host(struct error *e, const char *host)
{
	if (e && host && !e->host[0])
		snprintf(e->host, sizeof(e->host), "%s", host);
}

void error_clear(struct error *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

/* Text may come from a peer or a log: no control characters reach the
 * terminal (escape sequences could rewrite what the user sees). */
static void put_clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i]; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], stderr);
}

void error_print(const struct error *e)
{
	const char *p, *nl;

	fputs(e->host[0] ? "cmt: error on " : "cmt: error: ", stderr);
	if (e->host[0]) {
		put_clean(e->host, sizeof(e->host));
		fputs(": ", stderr);
	}
	put_clean(e->msg, sizeof(e->msg));
	fputc('\n', stderr);
	for (p = e->detail; *p; p = nl ? nl + 1 : p + strlen(p)) {
		nl = strchr(p, '\n');
		fputs("    | ", stderr);
		put_clean(p, nl ? (size_t)(nl - p) : strlen(p));
		fputc('\n', stderr);
	}
	if (e->hint[0]) {
		fputs("cmt: hint: ", stderr);
		put_clean(e->hint, sizeof(e->hint));
		fputc('\n', stderr);
	}
}
