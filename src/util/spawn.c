#include "util/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/log.h"

extern char **environ;

/* The end of every child: its directory, its environment, the program. */
static _Noreturn void exec_as_told(char *const argv[], const struct run_opts *o)
{
	if (o && o->cwd && chdir(o->cwd) < 0)
		_exit(127);
	if (o && o->env_add)
		for (char *const *kv = o->env_add; *kv; kv++)
			putenv(*kv);
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	dprintf(2, "cmt: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static void child_exec(char *const argv[], const struct run_opts *o, int in, int out, int err)
{
	if (in >= 0 && dup2(in, 0) < 0)
		_exit(127);
	if (out >= 0 && dup2(out, 1) < 0)
		_exit(127);
	if (err >= 0 && dup2(err, 2) < 0)
		_exit(127);
	/* Children must never inherit stray descriptors. */
	close_range(3, ~0U, 0);
	exec_as_told(argv, o);
}

int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

struct cap {
	char *buf;
	size_t len, max;
};

static void cap_add(struct cap *c, const char *p, size_t n)
{
	size_t room = c->max - c->len;

	if (n > room)
		n = room;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = 0;
}

static int run_to_file(char *const argv[], const struct run_opts *o, struct run_result *r, struct error *e)
{
	int in, out;
	pid_t pid;
	off_t start;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	in = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error_errno(e, errno, "cannot open %s", o->stdin_path ? o->stdin_path : "/dev/null");
	out = open(o->output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (out < 0) {
		int err = errno;
		close(in);
		return error_errno(e, err, "cannot open %s", o->output_path);
	}
	start = lseek(out, 0, SEEK_END);
	log_debug("running %s (output to %s)", argv_str(argv), o->output_path);
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(in);
		close(out);
		return error_errno(e, err, "cannot start %s", argv[0]);
	}
	if (pid == 0)
		child_exec(argv, o, in, out, out);
	close(in);
	close(out);
	r->status = wait_child(pid);
	r->out = calloc(1, 1);
	r->err = calloc(1, (o->capture_max ? o->capture_max : 65536) + 1);
	if (!r->out || !r->err)
		return error_set(e, ENOMEM, "out of memory");
	int fd = open(o->output_path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t k = pread(fd, r->err, o->capture_max ? o->capture_max : 65536, start > 0 ? start : 0);
		r->err[k > 0 ? k : 0] = 0;
		close(fd);
	}
	return 0;
}

/* The child's stdout and stderr are the caller's fds. */
static int run_to_fds(char *const argv[], const struct run_opts *o, struct run_result *r, struct error *e)
{
	pid_t pid;
	int in;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	in = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error_errno(e, errno, "cannot open %s", o->stdin_path ? o->stdin_path : "/dev/null");
	log_debug("running %s (stdout and stderr on given fds)", argv_str(argv));
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(in);
		return error_errno(e, err, "cannot start %s", argv[0]);
	}
	if (pid == 0)
		child_exec(argv, o, in, o->stdio_fds[0], o->stdio_fds[1]);
	close(in);
	if (o->timeout_ms > 0) {
		/* poll for the child's end, SIGKILL at the deadline */
		double deadline = now_ms() + o->timeout_ms;
		int st;
		for (;;) {
			pid_t w = waitpid(pid, &st, WNOHANG);
			if (w == pid) {
				r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				break;
			}
			if (w < 0 && errno != EINTR)
				break;
			if (now_ms() > deadline) {
				r->timed_out = 1;
				kill(pid, SIGKILL);
				r->status = wait_child(pid);
				break;
			}
			poll(NULL, 0, 5);
		}
	} else {
		r->status = wait_child(pid);
	}
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	if (!r->out || !r->err)
		return error_set(e, ENOMEM, "out of memory");
	return 0;
}

int run_cmd(char *const argv[], const struct run_opts *o, struct run_result *r, struct error *e)
{
	if (o && o->stdio_fds)
		return run_to_fds(argv, o, r, e);
	if (o && o->output_path)
		return run_to_file(argv, o, r, e);

	int op[2] = { -1, -1 }, ep[2] = { -1, -1 }, in;
	size_t max = o && o->capture_max ? o->capture_max : 65536;
	struct cap co = { 0 }, ce = { 0 };
	double deadline = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	in = open(o && o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error_errno(e, errno, "cannot open %s", o && o->stdin_path ? o->stdin_path : "/dev/null");
	if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		int err = errno;
		close(in);
		if (op[0] >= 0) {
			close(op[0]);
			close(op[1]);
		}
		return error_errno(e, err, "pipe");
	}
	co.buf = malloc(max + 1);
	ce.buf = malloc(max + 1);
	if (!co.buf || !ce.buf) {
		free(co.buf);
		free(ce.buf);
		close(in);
		close(op[0]); close(op[1]); close(ep[0]); close(ep[1]);
		return error_set(e, ENOMEM, "out of memory");
	}
	co.max = ce.max = max;
	co.buf[0] = ce.buf[0] = 0;
	log_debug("running %s", argv_str(argv));
	pid = fork();
	if (pid < 0) {
		int err = errno;
		free(co.buf);
		free(ce.buf);
		close(in);
		close(op[0]); close(op[1]); close(ep[0]); close(ep[1]);
		return error_errno(e, err, "cannot start %s", argv[0]);
	}
	if (pid == 0)
		child_exec(argv, o, in, op[1], ep[1]);
	close(in);
	close(op[1]);
	close(ep[1]);
	if (o && o->timeout_ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6 + o->timeout_ms;
	}
	struct pollfd pf[2] = { { op[0], POLLIN, 0 }, { ep[0], POLLIN, 0 } };
	int open_n = 2;
	while (open_n > 0) {
		int tmo = -1;
		if (deadline > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			double left = deadline - (ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
			if (left <= 0) {
				r->timed_out = 1;
				kill(pid, SIGKILL);
				break;
			}
			tmo = (int)left + 1;
		}
		int n = poll(pf, 2, tmo);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < 2; i++) {
			char tmp[8192];
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t k = read(pf[i].fd, tmp, sizeof(tmp));
			if (k > 0) {
				cap_add(i == 0 ? &co : &ce, tmp, (size_t)k);
			} else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_n--;
			}
		}
	}
	if (pf[0].fd >= 0)
		close(pf[0].fd);
	if (pf[1].fd >= 0)
		close(pf[1].fd);
	r->status = wait_child(pid);
	r->out = co.buf;
	r->err = ce.buf;
	return 0;
}

void run_result_free(struct run_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

const char *argv_str(char *const argv[])
{
	static char buf[1024];
	size_t l = 0;

	buf[0] = 0;
	for (int i = 0; argv[i] && l < sizeof(buf) - 1; i++) {
		const char *a = argv[i];
		bool plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+%") == strlen(a);
		l += snprintf(buf + l, sizeof(buf) - l, plain ? "%s%s" : "%s'%s'", i ? " " : "", a);
	}
	return buf;
}

int spawn_piped(char *const argv[], pid_t *ret_pid, int *ret_to_child, int *ret_from_child, struct error *e)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0)
		return error_errno(e, errno, "pipe");
	if (pipe2(out, O_CLOEXEC) < 0) {
		int err = errno;
		close(in[0]);
		close(in[1]);
		return error_errno(e, err, "pipe");
	}
	log_debug("starting %s", argv_str(argv));
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(in[0]); close(in[1]); close(out[0]); close(out[1]);
		return error_errno(e, err, "cannot start %s", argv[0]);
	}
	if (pid == 0)
		child_exec(argv, NULL, in[0], out[1], -1);
	close(in[0]);
	close(out[1]);
	/* Bulk data flows through these pipes: bigger buffers, fewer wake-ups.
	 * 1 MiB is the most an unprivileged process may ask for by default. */
	fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
	fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
	*ret_pid = pid;
	*ret_to_child = in[1];
	*ret_from_child = out[0];
	return 0;
}

int spawn_bg(char *const argv[], const struct run_opts *o, int *ret_status_fd, pid_t *ret_pid, struct error *e)
{
	int st[2] = { -1, -1 }, in = -1, out = -1, err;
	pid_t pid;

	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error_errno(e, errno, "cannot open /dev/null");
	out = open(o && o->output_path ? o->output_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (out < 0) {
		err = errno;
		close(in);
		return error_errno(e, err, "cannot open %s", o && o->output_path ? o->output_path : "/dev/null");
	}
	if (ret_status_fd && pipe2(st, O_CLOEXEC) < 0) {
		err = errno;
		close(in);
		close(out);
		return error_errno(e, err, "pipe");
	}
	log_debug("starting in the background: %s", argv_str(argv));
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(in);
		close(out);
		if (st[0] >= 0) {
			close(st[0]);
			close(st[1]);
		}
		return error_errno(e, err, "cannot start %s", argv[0]);
	}
	if (pid == 0) {
		/* its own process group: the caller can end it with everything it started */
		setpgid(0, 0);
		/* stdio first: in or out may be fd 3 */
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		if (st[1] >= 0) {
			/* fd 3 is the status descriptor (not close-on-exec) */
			if (st[1] == 3) {
				fcntl(3, F_SETFD, 0);
			} else if (dup2(st[1], 3) < 0) {
				_exit(127);
			}
		}
		close_range(st[1] >= 0 ? 4 : 3, ~0U, 0);
		exec_as_told(argv, o);
	}
	setpgid(pid, pid); /* both sides: no race with a kill of the group */
	close(in);
	close(out);
	if (st[1] >= 0)
		close(st[1]);
	if (ret_status_fd)
		*ret_status_fd = st[0];
	*ret_pid = pid;
	return 0;
}

int wait_child_ms(pid_t pid, int timeout_ms, int *status)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), st;

	if (fd < 0)
		return -errno;
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int k = poll(&pf, 1, timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		close(fd);
		if (k == 0)
			return -ETIMEDOUT;
		if (k < 0)
			return -errno;
		break;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}
