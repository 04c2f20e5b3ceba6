#include "criu/logtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

#define LOG_READ_MAX (16u << 20)
#define TS_MAX 1e7 /* seconds: a log older than this is not CRIU's */

/* "(SS.UUUUUU) " at the start of a line: the seconds, and where the text
 * begins.  0, or -1 when the line has no timestamp (a continuation), -2
 * when it begins like one but is malformed. */
static int parse_ts(const char *l, const char *end, double *ts, const char **text)
{
	const char *p = l + 1;
	double sec = 0, frac = 0, scale = 1;
	int nint = 0, nfrac = 0;

	if (l >= end || *l != '(')
		return -1;
	for (; p < end && *p >= '0' && *p <= '9' && nint < 8; p++, nint++)
		sec = sec * 10 + (*p - '0');
	if (nint == 0 || p >= end || *p != '.')
		return -2;
	for (p++; p < end && *p >= '0' && *p <= '9' && nfrac < 9; p++, nfrac++) {
		frac = frac * 10 + (*p - '0');
		scale *= 10;
	}
	if (nfrac == 0 || p >= end || *p != ')')
		return -2;
	*ts = sec + frac / scale;
	if (*ts > TS_MAX)
		return -2;
	p++;
	if (p < end && *p == ' ')
		p++;
	*text = p;
	return 0;
}

static bool starts(const char *text, const char *end, const char *prefix)
{
	size_t n = strlen(prefix);
	return (size_t)(end - text) >= n && memcmp(text, prefix, n) == 0;
}

/* "Running <step> scripts", the whole line */
static bool scripts_line(const char *text, const char *end, const char *step)
{
	if (!starts(text, end, "Running "))
		return false;
	const char *s = text + 8;
	if (step) {
		if (!starts(s, end, step))
			return false;
		s += strlen(step);
	} else {
		while (s < end && *s != ' ')
			s++;
	}
	return (size_t)(end - s) == 8 && memcmp(s, " scripts", 8) == 0;
}

int criu_log_own_ms(const char *text, size_t len, enum criu_log_op op, bool after_pre_dump, double *ms)
{
	const char *p = text, *stop = text + len;
	double start = -1, script_t = -1, excluded = 0;
	bool pre_dump = false, in_scripts = false;

	while (p < stop) {
		const char *eol = memchr(p, '\n', (size_t)(stop - p));
		const char *end = eol ? eol : stop, *t;
		double ts;
		int k = parse_ts(p, end, &ts, &t);

		p = eol ? eol + 1 : stop;
		if (k == -1)
			continue;
		if (k < 0)
			return -EINVAL;
		/* (the restored tasks write into a restore's log too: their lines
		 * may come a few microseconds out of order) */
		if (script_t >= 0) {
			/* the line after a script ran: CRIU waited for it until now */
			if (start >= 0 && ts > script_t)
				excluded += ts - script_t;
			script_t = -1;
		}
		if (pre_dump) {
			/* the pre-dump step (cmt froze the workload in it) ends at the
			 * first line that is not about its scripts */
			if (starts(t, end, "\tRPC") || starts(t, end, "\t["))
				continue;
			pre_dump = false;
			start = ts;
		}
		if (start < 0 && !(op == CRIU_LOG_DUMP && after_pre_dump))
			start = ts;
		if (op == CRIU_LOG_DUMP && after_pre_dump && start < 0 && scripts_line(t, end, "pre-dump")) {
			pre_dump = true;
			continue;
		}
		/* a lazy dump's images are complete when its page server starts
		 * (status-ready follows; libcriu without notifications logs no
		 * scripts, and "finished" only after the last page went) */
		bool done = op == CRIU_LOG_DUMP ? starts(t, end, "Starting lazy pages server") ||
							  scripts_line(t, end, "status-ready") ||
							  starts(t, end, "Dumping finished successfully")
						: starts(t, end, "Restore finished successfully");
		if (done) {
			if (start < 0)
				start = ts; /* no pre-dump step logged: nothing to count */
			*ms = (ts - start - excluded) * 1000.0;
			if (*ms < 0)
				*ms = 0;
			return 0;
		}
		if (scripts_line(t, end, NULL)) {
			in_scripts = true;
			continue;
		}
		if (in_scripts && starts(t, end, "\tRPC"))
			continue;
		if (in_scripts && starts(t, end, "\t[")) {
			script_t = ts;
			continue;
		}
		in_scripts = false;
	}
	return -ENOENT;
}

int criu_log_own_ms_file(const char *path, enum criu_log_op op, bool after_pre_dump, double *ms)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 1u << 16;

	if (fd < 0)
		return -errno;
	if (!(buf = malloc(cap)))
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap >= LOG_READ_MAX)
				break; /* the markers come early: what follows is the lazy phase */
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			cap *= 2;
		}
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		len += (size_t)k;
	}
	return criu_log_own_ms(buf, len, op, after_pre_dump, ms);
}
