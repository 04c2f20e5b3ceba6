/* cmt logs: the log of a container started by `cmt run` (monitor/logfmt.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "monitor/logfmt.h"
#include "monitor/monitor.h"
#include "util/fs.h"
#include "util/log.h"

const char help_logs[] =
	"Usage: cmt logs [-f] [-t] ID\n"
	"\n"
	"Prints the output of container ID, started by `cmt run` here or moved here\n"
	"by `cmt migrate`: what it wrote on stdout goes to stdout, what it wrote on\n"
	"stderr to stderr.  The log itself is <state root>/logs/ID.log, one record a\n"
	"line: TIME STREAM F|P TEXT (the k8s-file format of conmon).\n"
	"\n"
	"  -f, --follow       keep printing what comes, until the container's monitor\n"
	"                     exits (the container ended or moved to another host)\n"
	"  -t, --timestamps   start each line with the time the monitor read it\n";

struct printer {
	bool timestamps;
	bool mid[2];      /* inside a line continued by P records */
	long bad;
};

static void print_record(struct printer *p, const struct log_record *r)
{
	FILE *f = r->stream == LOG_STDERR ? stderr : stdout;

	if (p->timestamps && !p->mid[r->stream]) {
		struct tm tm;
		time_t t = r->ts.tv_sec;
		gmtime_r(&t, &tm);
		fprintf(f, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			tm.tm_hour, tm.tm_min, tm.tm_sec, (long)r->ts.tv_nsec);
	}
	fwrite(r->text, 1, r->len, f);
	if (!r->partial)
		fputc('\n', f);
	p->mid[r->stream] = r->partial;
}

/* Prints the complete lines in buf[0..*len), keeps an incomplete last one. */
static void print_lines(struct printer *p, char *buf, size_t *len)
{
	size_t off = 0;

	for (;;) {
		char *nl = memchr(buf + off, '\n', *len - off);
		struct log_record r;
		if (!nl)
			break;
		if (logfmt_parse(buf + off, (size_t)(nl - (buf + off)), &r) == 0)
			print_record(p, &r);
		else
			p->bad++;
		off = (size_t)(nl - buf) + 1;
	}
	memmove(buf, buf + off, *len - off);
	*len -= off;
}

int cmd_logs(struct ctx *c, int argc, char **argv)
{
	struct error e = { 0 };
	struct printer p = { 0 };
	bool follow = false;
	const char *id = NULL;
	char path[PATH_MAX];
	size_t cap = LOG_LINE_MAX + LOG_HDR_MAX + 65536, len = 0;
	char *buf;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow"))
			follow = true;
		else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--timestamps"))
			p.timestamps = true;
		else if (argv[i][0] == '-')
			return usage_error("logs", "unknown option '%s'", argv[i]);
		else if (!id)
			id = argv[i];
		else
			return usage_error("logs", "unexpected argument '%s'", argv[i]);
	}
	if (!id)
		return usage_error("logs", "no container ID given");
	if (strchr(id, '/') || id[0] == '.' || monitor_path(c->cfg.root, id, "log", path, sizeof(path)) < 0)
		return usage_error("logs", "invalid container ID '%s'", id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char mp[PATH_MAX], *to = NULL;
		struct error tmp = { 0 };
		error_errno(&e, errno, "no log for container %s on %s (%s)", id, c->cfg.name, path);
		if (monitor_path(c->cfg.root, id, "moved", mp, sizeof(mp)) == 0 && read_file(mp, 256, &to, NULL, &tmp) == 0 &&
		    to[0])
			error_hint(&e, "container %s moved to %s with its log: run `cmt logs %s` there", id, to, id);
		else
			error_hint(&e, "only containers started with `cmt run` (or moved here by `cmt migrate`) have a log");
		free(to);
		error_print(&e);
		return EXIT_FAIL;
	}
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return EXIT_FAIL;
	}
	for (;;) {
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			error_errno(&e, errno, "cannot read %s", path);
			break;
		}
		if (k > 0) {
			len += (size_t)k;
			print_lines(&p, buf, &len);
			if (len == cap) /* a line longer than any record: skip it */
				len = 0, p.bad++;
			continue;
		}
		if (!follow)
			break;
		fflush(stdout);
		fflush(stderr);
		/* the monitor has exited (the container ended or moved): read what is
		 * left once more, then stop */
		if (!monitor_find(c->cfg.root, id)) {
			k = read(fd, buf + len, cap - len);
			if (k > 0) {
				len += (size_t)k;
				print_lines(&p, buf, &len);
				continue;
			}
			break;
		}
		poll(NULL, 0, 100);
	}
	close(fd);
	free(buf);
	fflush(stdout);
	if (p.bad)
		log_warn("%ld malformed line(s) of %s skipped", p.bad, path);
	if (e.code) {
		error_print(&e);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
