#include "monitor/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "monitor/logfmt.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

#define MON_CMD_TIMEOUT_MS 10000
#define MON_RUNC_TIMEOUT_MS 120000

int monitor_path(const char *root, const char *id, const char *what, char *out, size_t n)
{
	int k = strcmp(what, "log") == 0 ? snprintf(out, n, "%s/logs/%s.log", root, id)
					  : snprintf(out, n, "%s/monitors/%s.%s", root, id, what);
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

static int sock_addr(const char *root, const char *id, struct sockaddr_un *sa, struct error *e)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (monitor_path(root, id, "sock", sa->sun_path, sizeof(sa->sun_path)) < 0)
		return error_set(e, ENAMETOOLONG,
				 "the monitor socket of container %s under %s/monitors is longer than a unix socket "
				 "path may be (%zu bytes)",
				 id, root, sizeof(sa->sun_path) - 1);
	return 0;
}

/* One command, one answer line ("ok ..." or "err ..."). */
static int mon_command(const char *root, const char *id, const char *cmd, char *ans, size_t n, struct error *e)
{
	struct sockaddr_un sa;
	struct timeval tv = { MON_CMD_TIMEOUT_MS / 1000, 0 };
	size_t l = 0;
	int fd, r;

	r = sock_addr(root, id, &sa, e);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_errno(e, errno, "socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = error_errno(e, errno, "no monitor answers for container %s (%s)", id, sa.sun_path);
		close(fd);
		return r;
	}
	if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd) || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		r = error_errno(e, errno, "cannot talk to the monitor of container %s", id);
		close(fd);
		return r;
	}
	while (l < n - 1) {
		ssize_t k = recv(fd, ans + l, n - 1 - l, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		l += (size_t)k;
		if (memchr(ans, '\n', l))
			break;
	}
	close(fd);
	ans[l] = 0;
	ans[strcspn(ans, "\n")] = 0;
	if (strncmp(ans, "ok", 2) != 0) {
		error_set(e, EIO, "the monitor of container %s did not do '%s': %s", id, cmd,
			  l ? ans : "no answer (it may have exited)");
		return -EIO;
	}
	return 0;
}

pid_t monitor_alive(const char *root, const char *id)
{
	struct error e = { 0 };
	char ans[128];

	if (mon_command(root, id, "ping", ans, sizeof(ans), &e) < 0)
		return 0;
	long pid = strtol(ans + 2, NULL, 10);
	return pid > 0 ? (pid_t)pid : 0;
}

pid_t monitor_find(const char *root, const char *id)
{
	char p[PATH_MAX], *txt = NULL, cl[PATH_MAX];
	struct error e = { 0 };
	long pid = 0;
	int fd;

	if (monitor_path(root, id, "pid", p, sizeof(p)) < 0 || read_file(p, 64, &txt, NULL, &e) < 0)
		return 0;
	pid = strtol(txt, NULL, 10);
	free(txt);
	if (pid <= 1)
		return 0;
	/* its command line: cmt ... monitor --run|--adopt ID ... */
	snprintf(p, sizeof(p), "/proc/%ld/cmdline", pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t k = read(fd, cl, sizeof(cl) - 1);
	close(fd);
	if (k <= 0)
		return 0;
	cl[k] = 0;
	bool mon = false, named = false;
	for (char *a = cl; a < cl + k; a += strlen(a) + 1) {
		if (!strcmp(a, "monitor"))
			mon = true;
		else if (mon && !strcmp(a, id))
			named = true;
	}
	return mon && named ? (pid_t)pid : 0;
}

int monitor_drain(const char *root, const char *id, uint64_t *ret_size, struct error *e)
{
	char ans[128];
	int r = mon_command(root, id, "drain", ans, sizeof(ans), e);

	if (r < 0)
		return error_wrap(e, "cannot drain the output of container %s into its log", id);
	*ret_size = strtoull(ans + 2, NULL, 10);
	return 0;
}

int monitor_release(const char *root, const char *id, struct error *e)
{
	char ans[128];

	return mon_command(root, id, "release", ans, sizeof(ans), e);
}

/* --- starting a monitor ---------------------------------------------------- */

/* In the child: a session of its own, stdin/stdout on /dev/null, stderr
 * on the monitor's diagnostics file, then `cmt ... monitor ARGS`. */
static void __attribute__((noreturn)) exec_monitor(struct ctx *c, const char *id, char **args)
{
	char exe[PATH_MAX], errp[PATH_MAX];
	char *argv[24];
	int n = 0, fd;
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (k <= 0)
		_exit(127);
	exe[k] = 0;
	setsid();
	if (chdir("/") < 0) /* pins no directory of the caller's */
		_exit(127);
	fd = open("/dev/null", O_RDWR);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
		_exit(127);
	if (monitor_path(c->cfg.root, id, "err", errp, sizeof(errp)) == 0) {
		int ef = open(errp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (ef >= 0) {
			dup2(ef, 2);
			if (ef > 2)
				close(ef);
		}
	}
	if (fd > 2)
		close(fd);
	argv[n++] = "cmt";
	argv[n++] = "--root";
	argv[n++] = c->cfg.root;
	argv[n++] = "--runc-root";
	argv[n++] = c->cfg.runc_root;
	if (c->runc[0]) {
		argv[n++] = "--runc";
		argv[n++] = c->runc;
	}
	argv[n++] = "monitor";
	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	signal(SIGPIPE, SIG_DFL);
	execv(exe, argv);
	dprintf(2, "cmt: cannot run the monitor %s: %s\n", exe, strerror(errno));
	_exit(127);
}

static int mon_dirs(struct ctx *c, struct error *e)
{
	char p[PATH_MAX + 16];
	int r;

	snprintf(p, sizeof(p), "%s/logs", c->cfg.root);
	if ((r = mkdir_p(p, 0700, e)) < 0)
		return r;
	snprintf(p, sizeof(p), "%s/monitors", c->cfg.root);
	return mkdir_p(p, 0700, e);
}

/* Forks the monitor with its status pipe on fd 3 (and, adopting, the
 * container's pipes on 4 and 5), then waits for its first word. */
static int spawn(struct ctx *c, const char *id, char **args, int out_r, int err_r, pid_t *ret_pid, struct error *e)
{
	int sp[2], r = mon_dirs(c, e);
	char buf[ERROR_MSG_MAX + 16];
	size_t l = 0;
	pid_t pid;

	if (r < 0)
		return r;
	if (pipe2(sp, O_CLOEXEC) < 0)
		return error_errno(e, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		r = error_errno(e, errno, "cannot start the monitor of container %s", id);
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	if (pid == 0) {
		int s = fcntl(sp[1], F_DUPFD, 10);
		int o = out_r >= 0 ? fcntl(out_r, F_DUPFD, 10) : -1, er = err_r >= 0 ? fcntl(err_r, F_DUPFD, 10) : -1;
		if (s < 0 || dup2(s, 3) < 0)
			_exit(127);
		if (out_r >= 0 && (o < 0 || er < 0 || dup2(o, 4) < 0 || dup2(er, 5) < 0))
			_exit(127);
		close_range(out_r >= 0 ? 6 : 4, ~0U, 0);
		exec_monitor(c, id, args);
	}
	close(sp[1]);
	for (;;) {
		ssize_t k = read(sp[0], buf + l, sizeof(buf) - 1 - l);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		l += (size_t)k;
		if (l == sizeof(buf) - 1)
			break;
	}
	close(sp[0]);
	buf[l] = 0;
	buf[strcspn(buf, "\n")] = 0;
	if (strncmp(buf, "ok", 2) == 0) {
		*ret_pid = pid;
		return 0;
	}
	if (l == 0) {
		/* it died before saying anything */
		int st = wait_child(pid);
		char errp[PATH_MAX];
		monitor_path(c->cfg.root, id, "err", errp, sizeof(errp));
		error_set(e, EIO, "the monitor of container %s exited (status %d) before starting it", id, st);
		error_hint(e, "see %s", errp);
		return -EIO;
	}
	wait_child(pid);
	error_set(e, EIO, "%s", strncmp(buf, "err ", 4) == 0 ? buf + 4 : buf);
	return -EIO;
}

int monitor_spawn_adopt(struct ctx *c, const char *id, int out_r, int err_r, pid_t *ret_pid, struct error *e)
{
	char *args[] = { "--adopt", (char *)id, NULL };

	return spawn(c, id, args, out_r, err_r, ret_pid, e);
}

int monitor_spawn_run(struct ctx *c, const char *id, const char *bundle, pid_t *ret_pid, struct error *e)
{
	char *args[] = { "--run", (char *)id, (char *)bundle, NULL };

	return spawn(c, id, args, -1, -1, ret_pid, e);
}

/* --- the monitor process ------------------------------------------------------ */

struct mon {
	struct ctx *c;
	const char *id;
	char log_path[PATH_MAX], sock_path[PATH_MAX], pid_path[PATH_MAX];
	int log_fd, lsock, sfd;
	int pfd[2];                /* read ends of stdout, stderr; -1 at end-of-file */
	struct log_asm as[2];
	char *wbuf;
	size_t wlen, wcap;
	bool write_failed;
	bool owns;                 /* the socket and pid file are this process's */
	uint64_t bytes_read;       /* from the pipes, in all */
};

static void mlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mlog(const char *fmt, ...)
{
	struct timespec ts;
	char hdr[LOG_HDR_MAX];
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	logfmt_header(hdr, &ts, LOG_STDERR, false);
	hdr[30] = 0; /* the time only */
	fprintf(stderr, "%s cmt monitor[%d]: ", hdr, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static int emit(void *arg, enum log_stream s, bool partial, const char *text, size_t len)
{
	struct mon *m = arg;
	struct timespec ts;
	size_t need = m->wlen + LOG_HDR_MAX + len + 1;

	if (need > m->wcap) {
		size_t cap = need * 2;
		char *nb = realloc(m->wbuf, cap);
		if (!nb)
			return -ENOMEM;
		m->wbuf = nb;
		m->wcap = cap;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	m->wlen += logfmt_header(m->wbuf + m->wlen, &ts, s, partial);
	memcpy(m->wbuf + m->wlen, text, len);
	m->wlen += len;
	m->wbuf[m->wlen++] = '\n';
	return 0;
}

/* Whole records only: one write per batch (O_APPEND). */
static void flush_log(struct mon *m)
{
	size_t off = 0;

	while (off < m->wlen) {
		ssize_t k = write(m->log_fd, m->wbuf + off, m->wlen - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (!m->write_failed)
				mlog("cannot write %s: %s (output is lost until writing works again)", m->log_path,
				     strerror(errno));
			m->write_failed = true;
			break;
		}
		m->write_failed = false;
		off += (size_t)k;
	}
	m->wlen = 0;
}

/* Reads what one pipe has now; 1 when it gave bytes, 0 when empty or at its end. */
static int read_pipe(struct mon *m, int i)
{
	char buf[65536];
	ssize_t k;

	if (m->pfd[i] < 0)
		return 0;
	k = read(m->pfd[i], buf, sizeof(buf));
	if (k > 0) {
		m->bytes_read += (uint64_t)k;
		if (log_asm_feed(&m->as[i], buf, (size_t)k, emit, m) < 0)
			mlog("out of memory: output dropped");
		return 1;
	}
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	/* end of file (or a broken pipe): the last line ends here */
	log_asm_flush(&m->as[i], false, emit, m);
	close(m->pfd[i]);
	m->pfd[i] = -1;
	return 0;
}

static void mon_cleanup(struct mon *m)
{
	if (!m->owns)
		return;
	unlink(m->sock_path);
	unlink(m->pid_path);
}

static void reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
		mlog("cannot answer a command: %s", strerror(errno));
}

/* One command on the control socket; true when the monitor must exit now. */
static bool on_command(struct mon *m)
{
	struct timeval tv = { 2, 0 };
	char cmd[64];
	size_t l = 0;
	bool quit = false;
	int fd = accept4(m->lsock, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (l < sizeof(cmd) - 1) {
		ssize_t k = recv(fd, cmd + l, sizeof(cmd) - 1 - l, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		l += (size_t)k;
		if (memchr(cmd, '\n', l))
			break;
	}
	cmd[l] = 0;
	cmd[strcspn(cmd, "\n")] = 0;
	if (!strcmp(cmd, "ping")) {
		reply(fd, "ok %d", (int)getpid());
	} else if (!strcmp(cmd, "drain")) {
		/* The container is frozen: what is in the pipes is all there is. */
		uint64_t before = m->bytes_read;
		for (int i = 0; i < 2; i++)
			while (read_pipe(m, i) > 0)
				;
		/* a line cut here goes on in the next record (on the destination,
		 * or here again after a rollback) */
		for (int i = 0; i < 2; i++)
			log_asm_flush(&m->as[i], true, emit, m);
		flush_log(m);
		struct stat st;
		if (m->write_failed || fstat(m->log_fd, &st) < 0)
			reply(fd, "err cannot write the log %s", m->log_path);
		else
			reply(fd, "ok %lld", (long long)st.st_size);
		mlog("drained: %llu bytes were left in the pipes; the log %s is %lld bytes",
		     (unsigned long long)(m->bytes_read - before), m->log_path, (long long)st.st_size);
	} else if (!strcmp(cmd, "release")) {
		reply(fd, "ok");
		mlog("released: container %s moved away; exiting", m->id);
		quit = true;
	} else {
		reply(fd, "err unknown command '%s'", cmd);
	}
	close(fd);
	return quit;
}

static void reap(struct mon *m)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (WIFEXITED(st))
			mlog("process %d of container %s exited with status %d", (int)p, m->id, WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			mlog("process %d of container %s was killed by signal %d", (int)p, m->id, WTERMSIG(st));
	}
}

static int mon_loop(struct mon *m)
{
	for (int i = 0; i < 2; i++)
		fcntl(m->pfd[i], F_SETFL, fcntl(m->pfd[i], F_GETFL) | O_NONBLOCK);
	while (m->pfd[0] >= 0 || m->pfd[1] >= 0) {
		struct pollfd pf[4] = {
			{ m->lsock, POLLIN, 0 },
			{ m->sfd, POLLIN, 0 },
			{ m->pfd[0], POLLIN, 0 },
			{ m->pfd[1], POLLIN, 0 },
		};
		if (poll(pf, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			mlog("poll: %s", strerror(errno));
			break;
		}
		/* commands first: a drain reads the pipes itself, to their end */
		if ((pf[0].revents & POLLIN) && on_command(m)) {
			mon_cleanup(m);
			return 0;
		}
		for (int i = 0; i < 2; i++)
			if (pf[2 + i].revents)
				read_pipe(m, i);
		flush_log(m);
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(m->sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					reap(m);
				} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
					mlog("signal %u: exiting", si.ssi_signo);
					mon_cleanup(m);
					return 0;
				}
			}
		}
	}
	flush_log(m);
	/* the output closes before the process is a zombie: give it a moment */
	for (int i = 0; i < 20; i++) {
		reap(m);
		if (waitpid(-1, NULL, WNOHANG | __WNOTHREAD) < 0 && errno == ECHILD)
			break;
		poll(NULL, 0, 50);
	}
	mlog("container %s closed its output; exiting", m->id);
	mon_cleanup(m);
	return 0;
}

/* Socket, pid file, signals, the log; refuses when a monitor of this
 * container already runs. */
static int mon_setup(struct mon *m, bool truncate, struct error *e)
{
	struct sockaddr_un sa;
	sigset_t set;
	char pid[32];
	int r;

	m->log_fd = m->lsock = m->sfd = -1;
	r = sock_addr(m->c->cfg.root, m->id, &sa, e);
	if (r < 0)
		return r;
	snprintf(m->sock_path, sizeof(m->sock_path), "%s", sa.sun_path);
	if (monitor_path(m->c->cfg.root, m->id, "pid", m->pid_path, sizeof(m->pid_path)) < 0 ||
	    monitor_path(m->c->cfg.root, m->id, "log", m->log_path, sizeof(m->log_path)) < 0)
		return error_set(e, ENAMETOOLONG, "container ID too long");
	pid_t other = monitor_find(m->c->cfg.root, m->id);
	if (other <= 0)
		other = monitor_alive(m->c->cfg.root, m->id);
	if (other > 0)
		return error_set(e, EEXIST, "a monitor of container %s already runs here (pid %d)", m->id, (int)other);
	unlink(sa.sun_path); /* a dead monitor's */
	m->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->lsock < 0)
		return error_errno(e, errno, "socket");
	if (bind(m->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(m->lsock, 8) < 0)
		return error_errno(e, errno, "cannot listen on %s", sa.sun_path);
	m->owns = true;
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if ((r = write_file_atomic(m->pid_path, pid, strlen(pid), 0600, e)) < 0)
		return r;
	{
		char mp[PATH_MAX];
		if (monitor_path(m->c->cfg.root, m->id, "moved", mp, sizeof(mp)) == 0)
			unlink(mp); /* the container is here (again) */
	}
	m->log_fd = open(m->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
	if (m->log_fd < 0)
		return error_errno(e, errno, "cannot open the log %s", m->log_path);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGHUP); /* blocked: ignored */
	m->sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (m->sfd < 0)
		return error_errno(e, errno, "signalfd");
	/* the container's init becomes our child when runc exits */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	m->as[0].stream = LOG_STDOUT;
	m->as[1].stream = LOG_STDERR;
	return 0;
}

/* The last error line of runc's --log file, or of what it printed. */
static void runc_failure(const char *logp, const char *printed, char *out, size_t n)
{
	char *txt = NULL;
	struct error e = { 0 };
	const char *best = NULL;

	if (read_file(logp, 1 << 20, &txt, NULL, &e) == 0) {
		for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n"))
			if (strstr(line, "level=error") || strstr(line, "level=fatal"))
				best = line;
	}
	if (best)
		snprintf(out, n, "%s", runc_msg(best));
	else if (printed && *printed)
		snprintf(out, n, "%s", runc_msg(printed));
	else
		snprintf(out, n, "runc gave no reason");
	free(txt);
}

static int mon_start_container(struct mon *m, const char *bundle, struct error *e)
{
	char logp[PATH_MAX], reason[1024], printed[4096];
	int out[2], err[2], r;
	struct run_result rr;

	if ((r = ctx_need_runc(m->c, e)) < 0)
		return r;
	if (pipe2(out, O_CLOEXEC) < 0)
		return error_errno(e, errno, "pipe");
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return error_errno(e, errno, "pipe");
	}
	monitor_path(m->c->cfg.root, m->id, "runc", logp, sizeof(logp));
	unlink(logp);
	int fds[2] = { out[1], err[1] };
	struct run_opts o = { .timeout_ms = MON_RUNC_TIMEOUT_MS, .stdio_fds = fds };
	char *argv[] = { m->c->runc, "--root", m->c->cfg.runc_root, "--log", logp, "run", "--detach", "--bundle",
			 (char *)bundle, (char *)m->id, NULL };
	r = run_cmd(argv, &o, &rr, e);
	close(out[1]);
	close(err[1]);
	m->pfd[0] = out[0];
	m->pfd[1] = err[0];
	if (r < 0)
		return r;
	if (rr.status != 0) {
		/* runc printed its fatal error into the container's stderr pipe */
		fcntl(err[0], F_SETFL, O_NONBLOCK);
		ssize_t k = read(err[0], printed, sizeof(printed) - 1);
		printed[k > 0 ? k : 0] = 0;
		runc_failure(logp, printed, reason, sizeof(reason));
		run_result_free(&rr);
		error_set(e, EIO, "runc cannot start container %s: %s", m->id, reason);
		error_hint(e, "runc's log: %s", logp);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

int monitor_main(struct ctx *c, int argc, char **argv)
{
	struct mon m = { .c = c, .pfd = { -1, -1 } };
	struct error e = { 0 };
	bool run = argc == 4 && !strcmp(argv[1], "--run"), adopt = argc == 3 && !strcmp(argv[1], "--adopt");
	FILE *status;
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (!run && !adopt) {
		fprintf(stderr, "cmt monitor: started by `cmt run` and by the agent, not by hand\n");
		return 2;
	}
	/* fd 3 tells the starter how it went; adopting, the restored
	 * container's stdout and stderr pipes are fds 4 and 5 */
	for (int fd = 3; fd <= (adopt ? 5 : 3); fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	status = fdopen(3, "w");
	m.id = argv[2];
	if (adopt) {
		m.pfd[0] = 4;
		m.pfd[1] = 5;
	}
	r = mon_setup(&m, run, &e);
	if (r == 0 && run)
		r = mon_start_container(&m, argv[3], &e);
	if (r < 0) {
		mlog("%s", e.msg);
		if (run && m.owns)
			unlink(m.log_path); /* the container never ran: no log */
		mon_cleanup(&m);
		if (status) {
			fprintf(status, "err %s\n", e.msg);
			fclose(status);
		}
		return 1;
	}
	if (run)
		mlog("container %s runs; its output goes to %s", m.id, m.log_path);
	else
		mlog("took over container %s (moved here); its log goes on in %s", m.id, m.log_path);
	if (status) {
		fprintf(status, "ok\n");
		fclose(status);
	}
	return mon_loop(&m);
}
