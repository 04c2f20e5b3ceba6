#include "criu/actionscript.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"

/* the request the script writes, and the answers it accepts */
#define REQ_LINE "call\n"
#define ANS_OK "ok\n"
#define ANS_FAILED "failed\n"

static bool plain_path(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("/._-+:@", *s)))
			return false;
	return true;
}

static bool plain_step(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
			return false;
	return true;
}

static void answer(struct criu_action *a, const char *line)
{
	size_t len = strlen(line);
	/* the answer FIFO is open read-write here: the line waits in it until
	 * the script opens it to read */
	if (write(a->ans_fd, line, len) != (ssize_t)len)
		log_warn("cannot answer CRIU's action script (%s): %s", a->ans, strerror(errno));
}

static void *serve(void *p)
{
	struct criu_action *a = p;
	char buf[64];
	size_t have = 0;

	for (;;) {
		struct pollfd pf[2] = { { a->req_fd, POLLIN, 0 }, { a->stop[0], POLLIN, 0 } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		ssize_t k = read(a->req_fd, buf + have, sizeof(buf) - 1 - have);
		if (k <= 0)
			continue; /* no writer at the moment */
		have += (size_t)k;
		buf[have] = '\0';
		if (!strchr(buf, '\n')) {
			if (have < sizeof(buf) - 1)
				continue;
			have = 0; /* not what the script writes */
			continue;
		}
		if (strcmp(buf, REQ_LINE) != 0 || a->called) {
			answer(a, ANS_FAILED); /* something else wrote here, or a second call */
			have = 0;
			continue;
		}
		a->called = true;
		a->result = a->fn(a->arg, &a->err);
		answer(a, a->result == 0 ? ANS_OK : ANS_FAILED);
		have = 0;
	}
	return NULL;
}

int criu_action_start(struct criu_action *a, const char *work_dir, const char *step, criu_action_fn fn, void *arg,
		      struct error *e)
{
	char text[3 * PATH_MAX + 512];
	int r;

	memset(a, 0, sizeof(*a));
	a->req_fd = a->ans_fd = a->stop[0] = a->stop[1] = -1;
	if (!plain_path(work_dir) || !plain_step(step))
		return error_set(e, EINVAL, "cannot name a CRIU action script in %s for step %s (characters that would "
					    "need quoting)", work_dir, step);
	if ((size_t)snprintf(a->script, sizeof(a->script), "%s/criu-action.sh", work_dir) >= sizeof(a->script) ||
	    (size_t)snprintf(a->req, sizeof(a->req), "%s/criu-action.req", work_dir) >= sizeof(a->req) ||
	    (size_t)snprintf(a->ans, sizeof(a->ans), "%s/criu-action.ans", work_dir) >= sizeof(a->ans))
		return error_set(e, ENAMETOOLONG, "path too long: %s", work_dir);
	a->fn = fn;
	a->arg = arg;
	unlink(a->req);
	unlink(a->ans);
	if (mkfifo(a->req, 0600) < 0 || mkfifo(a->ans, 0600) < 0) {
		r = error_errno(e, errno, "cannot create the FIFOs of CRIU's action script in %s", work_dir);
		goto fail;
	}
	/* read-write: opening never blocks, and neither end ever sees EOF */
	a->req_fd = open(a->req, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	a->ans_fd = open(a->ans, O_RDWR | O_CLOEXEC);
	if (a->req_fd < 0 || a->ans_fd < 0 || pipe2(a->stop, O_CLOEXEC) < 0) {
		r = error_errno(e, errno, "cannot open the FIFOs of CRIU's action script in %s", work_dir);
		goto fail;
	}
	snprintf(text, sizeof(text),
		 "#!/bin/sh\n"
		 "# written by cmt for one dump: CRIU runs it at each step; at %s cmt answers\n"
		 "[ \"$CRTOOLS_SCRIPT_ACTION\" = %s ] || exit 0\n"
		 "printf 'call\\n' >%s || exit 1\n"
		 "read -r answer <%s || exit 1\n"
		 "[ \"$answer\" = ok ]\n",
		 step, step, a->req, a->ans);
	r = write_file_atomic(a->script, text, strlen(text), 0700, e);
	if (r < 0)
		goto fail;
	r = pthread_create(&a->thread, NULL, serve, a);
	if (r != 0) {
		r = error_errno(e, r, "cannot start the thread that answers CRIU's action script");
		goto fail;
	}
	a->running = true;
	return 0;
fail:
	criu_action_stop(a);
	return r;
}

void criu_action_stop(struct criu_action *a)
{
	if (a->running) {
		char b = 1;
		if (write(a->stop[1], &b, 1) != 1)
			log_warn("cannot stop the thread of CRIU's action script: %s", strerror(errno));
		pthread_join(a->thread, NULL);
		a->running = false;
	}
	if (a->req_fd >= 0)
		close(a->req_fd);
	if (a->ans_fd >= 0)
		close(a->ans_fd);
	if (a->stop[0] >= 0)
		close(a->stop[0]);
	if (a->stop[1] >= 0)
		close(a->stop[1]);
	a->req_fd = a->ans_fd = a->stop[0] = a->stop[1] = -1;
	if (a->req[0])
		unlink(a->req);
	if (a->ans[0])
		unlink(a->ans);
	/* the script stays (with the work directory): CRIU may still run it for
	 * a later step, which it answers at once */
	a->req[0] = a->ans[0] = '\0';
}
