#include "monitor/logfmt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *stream_name[] = { "stdout", "stderr" };

size_t logfmt_header(char *out, const struct timespec *ts, enum log_stream s, bool partial)
{
	struct tm tm;
	time_t t = ts->tv_sec;

	gmtime_r(&t, &tm);
	return (size_t)snprintf(out, LOG_HDR_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ %s %c ", tm.tm_year + 1900,
				tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)ts->tv_nsec,
				stream_name[s == LOG_STDERR], partial ? 'P' : 'F');
}

static int digits(const char *p, int n, long *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*v = *v * 10 + (p[i] - '0');
	}
	return 0;
}

int logfmt_parse(const char *line, size_t len, struct log_record *r)
{
	/* 2026-12-01T19:28:00.123456789Z stdout F  (the text may be empty) */
	static const size_t tlen = 30, hlen = 30 + 1 + 6 + 1 + 1 + 1;
	long y, mo, d, h, mi, s, ns;
	struct tm tm;

	memset(r, 0, sizeof(*r));
	if (len < hlen - 1 || memchr(line, '\n', len))
		return -EINVAL;
	if (digits(line, 4, &y) || line[4] != '-' || digits(line + 5, 2, &mo) || line[7] != '-' ||
	    digits(line + 8, 2, &d) || line[10] != 'T' || digits(line + 11, 2, &h) || line[13] != ':' ||
	    digits(line + 14, 2, &mi) || line[16] != ':' || digits(line + 17, 2, &s) || line[19] != '.' ||
	    digits(line + 20, 9, &ns) || line[29] != 'Z' || line[tlen] != ' ')
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -EINVAL;
	if (!memcmp(line + tlen + 1, "stdout", 6))
		r->stream = LOG_STDOUT;
	else if (!memcmp(line + tlen + 1, "stderr", 6))
		r->stream = LOG_STDERR;
	else
		return -EINVAL;
	if (line[tlen + 7] != ' ' || (line[tlen + 8] != 'F' && line[tlen + 8] != 'P'))
		return -EINVAL;
	r->partial = line[tlen + 8] == 'P';
	if (len == hlen - 1) { /* "... F" without the space: an empty text */
		r->text = line + len;
		r->len = 0;
	} else if (line[tlen + 9] != ' ') {
		return -EINVAL;
	} else {
		r->text = line + hlen;
		r->len = len - hlen;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)y - 1900;
	tm.tm_mon = (int)mo - 1;
	tm.tm_mday = (int)d;
	tm.tm_hour = (int)h;
	tm.tm_min = (int)mi;
	tm.tm_sec = (int)s;
	r->ts.tv_sec = timegm(&tm);
	r->ts.tv_nsec = ns;
	return 0;
}

int log_asm_feed(struct log_asm *a, const char *p, size_t n, log_emit_fn emit, void *arg)
{
	int r;

	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		size_t room = LOG_LINE_MAX - a->len;

		if (k > room || (k == room && !nl)) {
			/* the line does not fit: a P record of LOG_LINE_MAX bytes */
			memcpy(a->buf + a->len, p, room);
			a->len = LOG_LINE_MAX;
			p += room;
			n -= room;
			if ((r = log_asm_flush(a, true, emit, arg)) < 0)
				return r;
			continue;
		}
		if (!nl) {
			memcpy(a->buf + a->len, p, k);
			a->len += k;
			return 0;
		}
		if (a->len == 0) {
			/* the whole line is here: no copy */
			if ((r = emit(arg, a->stream, false, p, k)) < 0)
				return r;
		} else {
			memcpy(a->buf + a->len, p, k);
			a->len += k;
			if ((r = log_asm_flush(a, false, emit, arg)) < 0)
				return r;
		}
		p += k + 1;
		n -= k + 1;
	}
	return 0;
}

int log_asm_flush(struct log_asm *a, bool partial, log_emit_fn emit, void *arg)
{
	int r;

	if (a->len == 0)
		return 0;
	r = emit(arg, a->stream, partial, a->buf, a->len);
	a->len = 0;
	return r;
}
