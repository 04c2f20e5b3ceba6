/* The process-tree driver: any tree of processes, by its root pid.
 * Freezing moves the tree into a freezer cgroup of its own (cgroup v1) and
 * freezes it; CRIU dumps it with --freeze-cgroup --leave-running, so it stays
 * frozen until cmt either kills it (commit) or thaws it and puts each
 * process back into its original cgroup (abort). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"

#define FREEZER_ROOT "/sys/fs/cgroup/freezer"
#define MAX_TREE 4096

static int freezer_of(pid_t pid, char *out, size_t n)
{
	char path[64], line[PATH_MAX + 64];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		if (strcmp(c1 + 1, "freezer") == 0) {
			c2[1 + strcspn(c2 + 1, "\n")] = 0;
			snprintf(out, n, "%s", c2 + 1);
			return 0;
		}
	}
	return -ENOENT;
}

static int write_str(const char *path, const char *s)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		return -errno;
	return 0;
}

static int move_to(const char *cg_abs, pid_t pid)
{
	char p[PATH_MAX + 32], v[32];

	snprintf(p, sizeof(p), "%s/cgroup.procs", cg_abs);
	snprintf(v, sizeof(v), "%d", (int)pid);
	return write_str(p, v);
}

static int freezer_state(const char *cg_abs, char *out, size_t n)
{
	char p[PATH_MAX + 32];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(p, sizeof(p), "%s/freezer.state", cg_abs);
	f = fopen(p, "re");
	if (!f || !fgets(out, (int)n, f))
		return -errno;
	out[strcspn(out, "\n")] = 0;
	return 0;
}

static int set_freezer(const char *cg_abs, const char *state, struct error *e)
{
	char p[PATH_MAX + 32], cur[32];
	struct timespec ts = { 0, 1000000 };

	snprintf(p, sizeof(p), "%s/freezer.state", cg_abs);
	for (int i = 0; i < 10000; i++) { /* FREEZING can take a moment: poll for up to ~10 s */
		if (write_str(p, state) < 0)
			return error_errno(e, errno, "cannot write %s", p);
		if (freezer_state(cg_abs, cur, sizeof(cur)) == 0 && strcmp(cur, state) == 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	return error_set(e, ETIMEDOUT, "freezer cgroup %s did not reach %s", cg_abs, state);
}

void pid_freeze_cgroup_path(const struct ctx *c, pid_t pid, char *out, size_t n)
{
	snprintf(out, n, FREEZER_ROOT "/%s/freeze-%d", c->cfg.cgroup_parent[0] ? c->cfg.cgroup_parent : "cmt", (int)pid);
}

static int pid_inspect(struct ctx *c, const char *name, struct workload *w, struct error *e)
{
	char *end, path[64], comm[64] = "";
	long v = strtol(name, &end, 10);
	_cleanup_fclose_ FILE *f = NULL;

	(void)c;
	memset(w, 0, sizeof(*w));
	w->kind = KIND_PID;
	if (*name == 0 || *end || v <= 1 || v > 4194304)
		return error_set(e, EINVAL, "'%s' is not a valid process ID", name);
	w->pid = (pid_t)v;
	snprintf(w->id, sizeof(w->id), "%d", (int)w->pid);
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)w->pid);
	f = fopen(path, "re");
	if (!f || !fgets(comm, sizeof(comm), f)) {
		error_set(e, ESRCH, "no process with PID %d on this host", (int)w->pid);
		return -ESRCH;
	}
	comm[strcspn(comm, "\n")] = 0;
	snprintf(w->label, sizeof(w->label), "process tree %d (%s)", (int)w->pid, comm);
	/* Not the leader of its own session: CRIU needs --shell-job. */
	w->shell_job = getsid(w->pid) != w->pid;
	if (access(FREEZER_ROOT "/cgroup.procs", W_OK) < 0) {
		error_set(e, ENOTSUP, "cannot freeze %s: no cgroup v1 freezer at %s", w->label, FREEZER_ROOT);
		error_hint(e, "migrate process trees on a host with the cgroup v1 freezer, or run the workload as a runc "
			      "container");
		return -ENOTSUP;
	}
	return 0;
}

static int pid_freeze(struct ctx *c, struct workload *w, struct error *e)
{
	pid_t *pids = calloc(MAX_TREE, sizeof(pid_t));
	char cg_rel[PATH_MAX], orig[PATH_MAX];
	size_t olen = 0, ocap = 0;
	int n, r = 0;

	if (!pids)
		return error_set(e, ENOMEM, "out of memory");
	snprintf(cg_rel, sizeof(cg_rel), "%s/freeze-%d", c->cfg.cgroup_parent[0] ? c->cfg.cgroup_parent : "cmt",
		 (int)w->pid);
	pid_freeze_cgroup_path(c, w->pid, w->freeze_cg, sizeof(w->freeze_cg));
	r = mkdir_p(w->freeze_cg, 0755, e);
	if (r < 0)
		goto out;
	/* Move until stable: a process forked during the move is caught next round. */
	for (int round = 0; round < 20; round++) {
		int moved = 0;
		n = proc_tree(w->pid, pids, MAX_TREE);
		for (int i = 0; i < n; i++) {
			if (freezer_of(pids[i], orig, sizeof(orig)) < 0)
				continue;
			if (strcmp(orig, "/") != 0 && strcmp(orig + 1, cg_rel) == 0)
				continue;
			/* remember where it was */
			size_t need = olen + strlen(orig) + 32;
			if (need > ocap) {
				ocap = need * 2;
				char *nb = realloc(w->orig_cgroups, ocap);
				if (!nb) {
					r = error_set(e, ENOMEM, "out of memory");
					goto out;
				}
				w->orig_cgroups = nb;
			}
			olen += (size_t)sprintf(w->orig_cgroups + olen, "%d %s\n", (int)pids[i], orig);
			if (move_to(w->freeze_cg, pids[i]) < 0 && errno != ESRCH) {
				r = error_errno(e, errno, "cannot move process %d into freezer cgroup %s", (int)pids[i],
						w->freeze_cg);
				goto out;
			}
			moved++;
		}
		if (!moved)
			break;
	}
	r = set_freezer(w->freeze_cg, "FROZEN", e);
	if (r < 0)
		goto out;
	w->frozen = true;
out:
	free(pids);
	if (r < 0 && w->freeze_cg[0]) {
		struct error tmp = { 0 };
		w->frozen = true;
		pid_driver.thaw(c, w, &tmp);
	}
	return r;
}

/* How a tree is dumped: from cmt's freezer cgroup, left there (frozen). */
static struct criu_tree_opts dump_opts(const struct workload *w, const char *images_dir, const char *work_dir)
{
	return (struct criu_tree_opts){
		.images_dir = images_dir,
		.work_dir = work_dir,
		.freeze_cgroup = w->freeze_cg,
		.shell_job = w->shell_job,
		.leave_running = true,
		.tcp_established = w->tcp_established,
		.ready_fd = -1,
	};
}

static int pid_dump(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, struct error *e)
{
	struct criu_tree_opts o = dump_opts(w, images_dir, work_dir);
	int r = ctx_need_criu(c, e);

	if (r < 0)
		return r;
	return criu_dump_tree(&c->criu, w->pid, &o, c->cfg.name, e);
}

/* Post-copy: libcriu's dump returns only once the page server has served
 * every page, so it runs in a child process of its own (its own process
 * group, no descriptor of cmt's but the readiness pipe).  The lazy mode, and
 * the page server on 127.0.0.1:port, come from a CRIU configuration file;
 * CRIU's "status-ready" notification says it listens.  leave-running, as
 * for runc: the tasks stay in cmt's frozen freezer cgroup whatever happens. */
static int pid_dump_lazy(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, int port,
			 int timeout_ms, pid_t *ret_pid, struct error *e)
{
	char conf[PATH_MAX + 32], log[PATH_MAX + 16], what[64];
	int fds[2], r, st = -1, k;
	pid_t pid;
	char b;

	r = ctx_need_criu(c, e);
	if (r < 0)
		return r;
	r = criu_write_config(work_dir, "criu-lazy-dump.conf", &(struct criu_conf){ .lazy_pages = true, .port = port },
			      conf, sizeof(conf), e);
	if (r < 0)
		return r;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return error_errno(e, errno, "pipe");
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		return error_errno(e, err, "cannot start the lazy dump");
	}
	if (pid == 0) {
		struct error ce = { 0 };
		struct criu_tree_opts o = dump_opts(w, images_dir, work_dir);
		o.config_file = conf; /* lazy mode, the page server on loopback */
		o.ready_fd = fds[1];
		setpgid(0, 0);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			close(null);
		}
		/* nothing of cmt's: its connection must end with cmt */
		if (fds[1] > 3)
			close_range(3, (unsigned)fds[1] - 1, 0);
		close_range((unsigned)fds[1] + 1, ~0U, 0);
		_exit(criu_dump_tree(&c->criu, w->pid, &o, c->cfg.name, &ce) < 0 ? 1 : 0);
	}
	setpgid(pid, pid);
	close(fds[1]);
	struct pollfd pf = { fds[0], POLLIN, 0 };
	do
		k = poll(&pf, 1, timeout_ms > 0 ? timeout_ms : 600000);
	while (k < 0 && errno == EINTR);
	ssize_t got = k > 0 ? read(fds[0], &b, 1) : 0;
	close(fds[0]);
	if (got == 1) {
		*ret_pid = pid;
		return 0;
	}
	if (k == 0)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	snprintf(what, sizeof(what), "lazy dump of process tree %d", (int)w->pid);
	snprintf(log, sizeof(log), "%s/dump.log", work_dir);
	error_set(e, k == 0 ? ETIMEDOUT : EIO, "CRIU %s failed%s", what, k == 0 ? " (its page server never got ready)" : "");
	if (path_exists(log))
		criu_explain(log, what, c->cfg.name, e);
	else
		error_host(e, c->cfg.name);
	return -e->code;
}

/* Where pid was before the freeze ("" if cmt did not record it). */
static void orig_cgroup_of(const struct workload *w, pid_t pid, char *out, size_t n)
{
	out[0] = 0;
	for (const char *l = w->orig_cgroups; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		int p;
		char path[PATH_MAX];
		if (sscanf(l, "%d %4095s", &p, path) == 2 && p == pid) {
			snprintf(out, n, FREEZER_ROOT "%s", strcmp(path, "/") ? path : "");
			return;
		}
	}
}

static int pid_thaw(struct ctx *c, struct workload *w, struct error *e)
{
	char procs[PATH_MAX + 32], fallback[PATH_MAX + 64], dest[PATH_MAX + 64];
	struct timespec ts = { 0, 2000000 };
	int r = 0;

	(void)c;
	if (!w->freeze_cg[0])
		return 0;
	if (!path_exists(w->freeze_cg))
		return w->frozen ? -ENOENT : 0; /* never frozen (a crash before the freeze) */
	/* Move every task back while the cgroup is still frozen: nothing can
	 * fork meanwhile, and a task moved out of a frozen cgroup runs again.
	 * Tasks cmt did not record (forked before the freeze completed) follow
	 * the root of the tree. */
	orig_cgroup_of(w, w->pid, fallback, sizeof(fallback));
	if (!fallback[0])
		snprintf(fallback, sizeof(fallback), FREEZER_ROOT);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", w->freeze_cg);
	for (int round = 0; round < 20; round++) {
		_cleanup_fclose_ FILE *f = fopen(procs, "re");
		int pid, moved = 0;
		while (f && fscanf(f, "%d", &pid) == 1) {
			orig_cgroup_of(w, pid, dest, sizeof(dest));
			move_to(dest[0] ? dest : fallback, pid);
			moved++;
		}
		if (!moved)
			break;
	}
	r = set_freezer(w->freeze_cg, "THAWED", e); /* for anything that could not be moved */
	if (r < 0)
		return r;
	w->frozen = false;
	for (int i = 0; i < 500; i++) { /* an exiting task may linger for a moment */
		if (rmdir(w->freeze_cg) == 0 || errno == ENOENT) {
			w->freeze_cg[0] = 0;
			break;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int kill_tree(pid_t root)
{
	pid_t *pids = calloc(MAX_TREE, sizeof(pid_t));
	int n;

	if (!pids)
		return -ENOMEM;
	n = proc_tree(root, pids, MAX_TREE);
	for (int i = n - 1; i >= 0; i--)
		kill(pids[i], SIGKILL);
	free(pids);
	return 0;
}

static int pid_destroy(struct ctx *c, struct workload *w, struct error *e)
{
	char procs[PATH_MAX + 32];
	struct timespec ts = { 0, 2000000 };

	(void)c;
	kill_tree(w->pid);
	if (!w->freeze_cg[0])
		return 0;
	/* also anything else that ended up in the cgroup */
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", w->freeze_cg);
	{
		_cleanup_fclose_ FILE *f = fopen(procs, "re");
		int p;
		while (f && fscanf(f, "%d", &p) == 1)
			kill(p, SIGKILL);
	}
	if (w->frozen && set_freezer(w->freeze_cg, "THAWED", e) < 0)
		return -e->code;
	w->frozen = false;
	for (int i = 0; i < 5000; i++) { /* dying processes leave the cgroup within ms */
		if (rmdir(w->freeze_cg) == 0 || errno == ENOENT) {
			w->freeze_cg[0] = 0;
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	return error_errno(e, errno, "cannot remove freezer cgroup %s", w->freeze_cg);
}

static int pid_restore(struct ctx *c, struct restore_req *rq, pid_t *ret_pid, struct error *e)
{
	struct criu_tree_opts o = {
		.images_dir = rq->images_dir,
		.work_dir = rq->work_dir,
		.shell_job = rq->shell_job,
		.tcp_established = rq->tcp_established,
		.ready_fd = -1,
	};
	char conf[PATH_MAX + 32];
	int r = ctx_need_criu(c, e);

	if (r < 0)
		return r;
	/* lazily: the agent started the lazy-pages daemon in the work directory */
	r = criu_write_config(rq->work_dir, "criu-restore.conf",
			      &(struct criu_conf){ .leave_stopped = true, .lazy_pages = rq->lazy }, conf, sizeof(conf), e);
	if (r < 0)
		return r;
	o.config_file = conf;
	r = criu_restore_tree(&c->criu, &o, rq->host, ret_pid, e);
	if (r == 0)
		snprintf(rq->id, sizeof(rq->id), "%d", (int)*ret_pid);
	return r;
}

/* CRIU left every task of the restored tree stopped: let them run. */
static int pid_resume(struct ctx *c, struct restore_req *rq, struct error *e)
{
	char *end;
	long v = strtol(rq->id, &end, 10);
	pid_t *pids;
	int n, failed = 0;

	(void)c;
	if (!*rq->id || *end || v <= 1)
		return error_set(e, EINVAL, "no restored process tree to resume");
	pids = calloc(MAX_TREE, sizeof(pid_t));
	if (!pids)
		return error_set(e, ENOMEM, "out of memory");
	n = proc_tree((pid_t)v, pids, MAX_TREE);
	for (int i = 0; i < n; i++)
		if (kill(pids[i], SIGCONT) < 0 && errno != ESRCH)
			failed++;
	free(pids);
	if (failed) {
		error_set(e, EPERM, "cannot resume %d process(es) of the restored tree %ld", failed, v);
		error_host(e, rq->host);
		return -EPERM;
	}
	return 0;
}

static int pid_undo_restore(struct ctx *c, struct restore_req *rq, struct error *e)
{
	char *end;
	long v = strtol(rq->id, &end, 10);

	(void)c;
	(void)e;
	if (*rq->id && !*end && v > 1)
		kill_tree((pid_t)v);
	return 0;
}

static bool pid_exists(struct ctx *c, const char *id)
{
	(void)c;
	(void)id;
	return false; /* a PID clash shows up at restore, with its own explanation */
}

const struct driver pid_driver = {
	.name = "pid",
	.kind = KIND_PID,
	.inspect = pid_inspect,
	.freeze = pid_freeze,
	.dump = pid_dump,
	.dump_lazy = pid_dump_lazy,
	.thaw = pid_thaw,
	.destroy = pid_destroy,
	.restore = pid_restore,
	.resume = pid_resume,
	.undo_restore = pid_undo_restore,
	.exists = pid_exists,
};
