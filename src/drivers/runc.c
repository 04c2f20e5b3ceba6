/* The runc driver: a container managed by runc.  Freezing is `runc pause`,
 * the dump is `runc checkpoint --leave-running` of the paused container (it
 * stays frozen), the restore is `runc restore -d` of the received bundle. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "drivers/ocispec.h"
#include "monitor/monitor.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

#define RUNC_MAX_ARGS 32

/* Runs `runc --root R [--criu P] ARGS...`.  With out_path, output goes to
 * that file (restore: the container could inherit a pipe). */
#define RUNC_TIMEOUT_MS 600000

/* Runs runc with the host's root (and CRIU) and the options o (timeout 0 =
 * RUNC_TIMEOUT_MS); with log, runc's own messages go to that file. */
static int runc_cmd_v(struct ctx *c, struct run_result *rr, struct run_opts *o, const char *log, struct error *e,
		      va_list ap)
{
	char *argv[RUNC_MAX_ARGS];
	int n = 0, r;

	r = ctx_need_runc(c, e);
	if (r < 0)
		return r;
	if (!o->timeout_ms)
		o->timeout_ms = RUNC_TIMEOUT_MS;
	argv[n++] = c->runc;
	argv[n++] = "--root";
	argv[n++] = c->cfg.runc_root;
	if (log) {
		argv[n++] = "--log";
		argv[n++] = (char *)log;
	}
	if (c->criu.path[0]) {
		argv[n++] = "--criu";
		argv[n++] = c->criu.path;
	}
	for (char *a; (a = va_arg(ap, char *)) && n < RUNC_MAX_ARGS - 1;)
		argv[n++] = a;
	argv[n] = NULL;
	return run_cmd(argv, o, rr, e);
}

static int runc_cmd(struct ctx *c, struct run_result *rr, const char *out_path, unsigned timeout_ms, struct error *e,
		    ...)
{
	struct run_opts o = { .timeout_ms = (int)timeout_ms, .output_path = out_path };
	va_list ap;
	int r;

	va_start(ap, e);
	r = runc_cmd_v(c, rr, &o, NULL, e, ap);
	va_end(ap);
	return r;
}

/* runc with stdout and stderr on fds (a monitored container's pipes, which
 * `runc restore` hands to the restored process); its messages go to log,
 * whose error lines come back in rr->err. */
static int runc_cmd_fds(struct ctx *c, struct run_result *rr, const int fds[2], const char *log, unsigned timeout_ms,
			struct error *e, ...)
{
	struct run_opts o = { .timeout_ms = (int)timeout_ms, .stdio_fds = fds };
	va_list ap;
	int r;

	unlink(log);
	va_start(ap, e);
	r = runc_cmd_v(c, rr, &o, log, e, ap);
	va_end(ap);
	if (r == 0 && rr->status != 0) {
		char *txt = NULL;
		struct error tmp = { 0 };
		if (read_file(log, 1 << 20, &txt, NULL, &tmp) == 0) {
			const char *best = NULL;
			for (char *l = strtok(txt, "\n"); l; l = strtok(NULL, "\n"))
				if (strstr(l, "level=error") || strstr(l, "level=fatal"))
					best = l;
			if (best) {
				free(rr->err);
				rr->err = strdup(best);
			}
			free(txt);
		}
		if (!rr->err)
			rr->err = strdup("runc gave no reason");
	}
	return r;
}

/* runc prints `time="..." level=error msg="..."`: keep the msg part. */
const char *runc_msg(const char *err)
{
	static char buf[1024];
	const char *m = strstr(err, "msg=\"");

	if (!m) {
		snprintf(buf, sizeof(buf), "%s", err);
	} else {
		m += 5;
		size_t l = 0;
		for (; *m && *m != '"' && l < sizeof(buf) - 1; m++) {
			if (*m == '\\' && m[1])
				m++;
			buf[l++] = *m;
		}
		buf[l] = 0;
	}
	size_t l = strlen(buf);
	while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' '))
		buf[--l] = 0;
	return buf;
}

static int runc_state(struct ctx *c, const char *id, json_t **ret, struct error *e)
{
	struct run_result rr;
	json_error_t je;
	int r = runc_cmd(c, &rr, NULL, 0, e, "state", id, NULL);

	if (r < 0)
		return r;
	if (rr.status != 0) {
		error_set(e, ENOENT, "no container '%s' in runc root %s: %s", id, c->cfg.runc_root, runc_msg(rr.err));
		error_hint(e, "list containers with `cmt ps`; use --runc-root if runc keeps its state elsewhere");
		run_result_free(&rr);
		return -ENOENT;
	}
	*ret = json_loads(rr.out, 0, &je);
	run_result_free(&rr);
	if (!*ret)
		return error_set(e, EPROTO, "cannot parse `runc state %s` output: %s", id, je.text);
	return 0;
}

static int runc_inspect(struct ctx *c, const char *name, struct workload *w, struct error *e)
{
	json_t *st = NULL;
	const char *status, *bundle;
	char cfgpath[PATH_MAX];
	int r;

	memset(w, 0, sizeof(*w));
	w->kind = KIND_RUNC;
	snprintf(w->id, sizeof(w->id), "%s", name);
	snprintf(w->label, sizeof(w->label), "container %s", name);
	r = runc_state(c, name, &st, e);
	if (r < 0)
		return r;
	status = json_string_value(json_object_get(st, "status"));
	bundle = json_string_value(json_object_get(st, "bundle"));
	w->pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	if (!status || !bundle || w->pid <= 0) {
		json_decref(st);
		return error_set(e, EPROTO, "unexpected `runc state %s` output", name);
	}
	if (strcmp(status, "running") != 0) {
		error_set(e, EINVAL, "container %s is %s, not running", name, status);
		error_hint(e, strcmp(status, "paused") == 0 ? "resume it first (`runc resume %s`)" : "start it first", name);
		json_decref(st);
		return -EINVAL;
	}
	snprintf(w->bundle, sizeof(w->bundle), "%s", bundle);
	json_decref(st);
	if (path_join(cfgpath, sizeof(cfgpath), w->bundle, "config.json") < 0)
		return error_set(e, ENAMETOOLONG, "bundle path too long");
	r = read_file(cfgpath, OCI_CONFIG_MAX, &w->config_json, NULL, e);
	if (r < 0)
		return error_wrap(e, "cannot read the configuration of container %s", name);
	r = oci_rootfs_path(w->config_json, w->bundle, w->rootfs, sizeof(w->rootfs), e);
	if (r < 0)
		return error_wrap(e, "bad config.json of container %s", name);
	/* started by `cmt run`: its output goes to a log that moves with it */
	w->monitor_pid = monitor_find(c->cfg.root, name);
	return 0;
}

/* `runc VERB [FLAG] ID` */
static int runc_simple(struct ctx *c, struct workload *w, const char *verb, const char *flag, const char *what,
		       struct error *e)
{
	struct run_result rr;
	int r = flag ? runc_cmd(c, &rr, NULL, 0, e, (char *)verb, (char *)flag, w->id, NULL)
		     : runc_cmd(c, &rr, NULL, 0, e, (char *)verb, w->id, NULL);

	if (r < 0)
		return r;
	if (rr.status != 0) {
		error_set(e, EIO, "cannot %s container %s: %s", what, w->id, runc_msg(rr.err));
		run_result_free(&rr);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

static int runc_freeze(struct ctx *c, struct workload *w, struct error *e)
{
	int r = runc_simple(c, w, "pause", NULL, "freeze (runc pause)", e);
	if (r == 0)
		w->frozen = true;
	return r;
}

/* A failed checkpoint: CRIU's log explains it; when it holds nothing cmt
 * recognises (runc itself failed, say), runc's own words are the message. */
static void explain_dump(struct ctx *c, const char *what, const char *runc_said, const char *log, struct error *e)
{
	char said[400];

	snprintf(said, sizeof(said), "%s", runc_said && *runc_said ? runc_msg(runc_said) : "");
	if (!path_exists(log)) {
		error_set(e, EIO, "%s failed: %s", what, said[0] ? said : "runc gave no reason");
		error_host(e, c->cfg.name);
		return;
	}
	error_set(e, EIO, "%s", said[0] ? said : "runc checkpoint failed");
	criu_explain(log, what, c->cfg.name, e);
	if (said[0] && strstr(e->msg, "gave no reason"))
		snprintf(e->msg, sizeof(e->msg), "%s failed: %s (CRIU's log gives no reason cmt recognises)", what, said);
}

/* The `runc checkpoint` of this workload, leaving it running
 * (frozen: cmt decides its fate); lazy_ps "127.0.0.1:PORT" for a lazy dump
 * (its page server there, readiness on descriptor 3), NULL for a whole one. */
static void checkpoint_argv(struct ctx *c, const struct workload *w, const char *images_dir, const char *work_dir,
			    const char *lazy_ps, char *argv[RUNC_MAX_ARGS])
{
	int n = 0;

	argv[n++] = c->runc;
	argv[n++] = "--root";
	argv[n++] = c->cfg.runc_root;
	if (c->criu.path[0]) {
		argv[n++] = "--criu";
		argv[n++] = c->criu.path;
	}
	argv[n++] = "checkpoint";
	if (lazy_ps) {
		argv[n++] = "--lazy-pages";
		argv[n++] = "--page-server";
		argv[n++] = (char *)lazy_ps;
		argv[n++] = "--status-fd";
		argv[n++] = "3";
	}
	argv[n++] = "--leave-running";
	if (w->tcp_established)
		argv[n++] = "--tcp-established";
	argv[n++] = "--image-path";
	argv[n++] = (char *)images_dir;
	argv[n++] = "--work-path";
	argv[n++] = (char *)work_dir;
	argv[n++] = (char *)w->id;
	argv[n] = NULL;
}

/* The CRIU configuration of a runc checkpoint (struct criu_conf), which runc
 * hands on to CRIU when CRIU_CONFIG_FILE names it; env gets that entry. */
static int dump_config(const struct workload *w, const char *work_dir, bool lazy, char env[PATH_MAX + 48],
		       struct error *e)
{
	char conf[PATH_MAX + 32];
	struct criu_conf cc = { .loopback = lazy, .netlock_skip = w->netlock_skip, .action_script = w->action_script };
	int r = criu_write_config(work_dir, "criu-dump.conf", &cc, conf, sizeof(conf), e);

	if (r == 0)
		snprintf(env, PATH_MAX + 48, "CRIU_CONFIG_FILE=%s", conf);
	return r;
}

/* The checkpoint in the background (its output in the work directory): the
 * caller may read the page images while CRIU writes them (pre-copy), then
 * runc_dump_finish. */
static int runc_dump_start(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir,
			   pid_t *ret_pid, struct error *e)
{
	char out[PATH_MAX + 32], env_conf[PATH_MAX + 48];
	char *argv[RUNC_MAX_ARGS];
	char *env[] = { env_conf, NULL };
	struct run_opts o = { .output_path = out, .env_add = env };
	int r;

	if ((r = ctx_need_criu(c, e)) < 0 || (r = ctx_need_runc(c, e)) < 0)
		return r;
	if ((r = dump_config(w, work_dir, false, env_conf, e)) < 0)
		return r;
	snprintf(out, sizeof(out), "%s/runc-checkpoint.out", work_dir);
	checkpoint_argv(c, w, images_dir, work_dir, NULL, argv);
	return spawn_bg(argv, &o, NULL, ret_pid, e);
}

static int runc_dump_finish(struct ctx *c, struct workload *w, pid_t pid, const char *work_dir, struct error *e)
{
	char out[PATH_MAX + 32], log[PATH_MAX + 16], what[320];
	_cleanup_free_ char *msg = NULL;
	struct error tmp = { 0 };
	int st = -1, r;

	snprintf(what, sizeof(what), "checkpoint of container %s", w->id);
	r = wait_child_ms(pid, RUNC_TIMEOUT_MS, &st);
	if (r == -ETIMEDOUT) {
		kill(-pid, SIGKILL);
		wait_child_ms(pid, 10000, &st);
		error_set(e, ETIMEDOUT, "%s did not end within %d s", what, RUNC_TIMEOUT_MS / 1000);
		error_host(e, c->cfg.name);
		return -ETIMEDOUT;
	}
	if (r < 0)
		return error_errno(e, -r, "cannot wait for the %s", what);
	if (st == 0)
		return 0;
	snprintf(out, sizeof(out), "%s/runc-checkpoint.out", work_dir);
	snprintf(log, sizeof(log), "%s/dump.log", work_dir);
	read_file(out, 64 * 1024, &msg, NULL, &tmp);
	explain_dump(c, what, msg, log, e);
	return -e->code;
}

static int runc_dump(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, struct error *e)
{
	pid_t pid;
	int r = runc_dump_start(c, w, images_dir, work_dir, &pid, e);

	return r < 0 ? r : runc_dump_finish(c, w, pid, work_dir, e);
}

/* Post-copy: `runc checkpoint --lazy-pages --leave-running` of the paused
 * container, in the background.  CRIU dumps everything but memory, then
 * serves the pages from the frozen tasks until the destination's lazy-pages
 * daemon has them all, and only then does runc return.  Through runc CRIU
 * ignores the address of --page-server in lazy mode (it would listen on every
 * address); a configuration file named by CRIU_CONFIG_FILE makes it listen on
 * 127.0.0.1 only.  --leave-running: whatever happens to the transfer, CRIU
 * never kills the source tasks (a cut connection ends its page server as if
 * it had finished); cmt removes them once every page has arrived. */
static int runc_dump_lazy(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, int port,
			  int timeout_ms, pid_t *ret_pid, struct error *e)
{
	char env_conf[PATH_MAX + 48], ps[32], out[PATH_MAX + 32], log[PATH_MAX + 16], what[320];
	char *argv[RUNC_MAX_ARGS];
	char *env[] = { env_conf, NULL };
	struct run_opts o = { .env_add = env, .output_path = out };
	int r, sfd = -1;
	pid_t pid;
	char byte;

	if ((r = ctx_need_criu(c, e)) < 0 || (r = ctx_need_runc(c, e)) < 0)
		return r;
	if ((r = dump_config(w, work_dir, true, env_conf, e)) < 0)
		return r;
	snprintf(ps, sizeof(ps), "127.0.0.1:%d", port);
	snprintf(out, sizeof(out), "%s/runc-checkpoint.out", work_dir);
	snprintf(log, sizeof(log), "%s/dump.log", work_dir);
	checkpoint_argv(c, w, images_dir, work_dir, ps, argv);
	r = spawn_bg(argv, &o, &sfd, &pid, e);
	if (r < 0)
		return r;
	/* one byte on the status descriptor: the page server listens; the end
	 * of the pipe without it: runc (or CRIU) failed */
	struct pollfd pf = { sfd, POLLIN, 0 };
	int k;
	do
		k = poll(&pf, 1, timeout_ms > 0 ? timeout_ms : RUNC_TIMEOUT_MS);
	while (k < 0 && errno == EINTR);
	ssize_t got = k > 0 ? read(sfd, &byte, 1) : 0;
	close(sfd);
	if (got == 1) {
		*ret_pid = pid;
		return 0;
	}
	if (k == 0)
		kill(-pid, SIGKILL);
	int st = -1;
	wait_child_ms(pid, 10000, &st);
	snprintf(what, sizeof(what), "lazy checkpoint of container %s", w->id);
	if (k == 0)
		error_set(e, ETIMEDOUT, "%s: the page server was not ready after %d ms", what,
			  timeout_ms > 0 ? timeout_ms : RUNC_TIMEOUT_MS);
	else
		error_set(e, EIO, "%s failed (runc exit status %d)", what, st);
	if (path_exists(log))
		criu_explain(log, what, c->cfg.name, e);
	else
		error_host(e, c->cfg.name);
	return -e->code;
}

static int runc_thaw(struct ctx *c, struct workload *w, struct error *e)
{
	int r;

	if (!w->frozen)
		return 0;
	r = runc_simple(c, w, "resume", NULL, "resume (runc resume)", e);
	if (r < 0 && strstr(e->msg, "not paused")) {
		error_clear(e); /* never frozen (a crash before the freeze): nothing to do */
		r = 0;
	}
	if (r == 0)
		w->frozen = false;
	return r;
}

/* `runc delete --force` of a container that still has its init (here: the
 * paused source copy) sends SIGKILL and then sleeps 100 ms before it looks
 * again (runc 1.1), however fast the container dies.  So the container is
 * killed first (`runc kill --all`, which thaws a paused one for the signal
 * to act) and its init's exit awaited (pidfd); the delete then finds it
 * stopped.  Anything that goes wrong here leaves the work to the delete, as
 * before.  Only for an init pid this process saw frozen (recovery knows no
 * pid). */
#define KILL_WAIT_MS 5000
static void kill_and_wait(struct ctx *c, const struct workload *w)
{
	struct run_result rr;
	struct error tmp = { 0 };
	int fd;

	if (w->pid <= 0 || !w->frozen)
		return;
	fd = (int)syscall(SYS_pidfd_open, w->pid, 0); /* close-on-exec by itself */
	if (fd < 0)
		return;
	if (runc_cmd(c, &rr, NULL, 0, &tmp, "kill", "--all", w->id, "KILL", NULL) == 0) {
		if (rr.status == 0) {
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			while (poll(&pf, 1, KILL_WAIT_MS) < 0 && errno == EINTR)
				;
		}
		run_result_free(&rr);
	}
	close(fd);
}

static int runc_destroy(struct ctx *c, struct workload *w, struct error *e)
{
	int r;

	/* A container of `cmt run` whose log goes on on the destination: its
	 * monitor here writes no more (it exits at once) and the log goes. */
	pid_t mp = monitor_find(c->cfg.root, w->id);
	if (mp > 0) {
		struct error me = { 0 };
		if (monitor_release(c->cfg.root, w->id, &me) < 0)
			log_warn("%s (it exits when the frozen copy is removed)", me.msg);
	}
	kill_and_wait(c, w);
	/* `runc delete --force` kills a paused container too. */
	r = runc_simple(c, w, "delete", "--force", "remove", e);
	if (r < 0)
		return r;
	w->frozen = false;
	if (mp > 0) {
		char lp[PATH_MAX];
		monitor_path(c->cfg.root, w->id, "log", lp, sizeof(lp));
		unlink(lp);
		if (w->moved_to[0] && monitor_path(c->cfg.root, w->id, "moved", lp, sizeof(lp)) == 0) {
			/* for `cmt logs` here: where the log went */
			struct error tmp = { 0 };
			write_file_atomic(lp, w->moved_to, strlen(w->moved_to), 0600, &tmp);
		}
	}
	/* A bundle cmt itself received earlier is cmt's to delete; any other
	 * bundle belongs to the user and stays. */
	char mine[PATH_MAX + 16];
	snprintf(mine, sizeof(mine), "%s/bundles/", c->cfg.root);
	if (strncmp(w->bundle, mine, strlen(mine)) == 0) {
		struct error tmp = { 0 };
		rm_rf(w->bundle, &tmp);
	}
	return 0;
}

/* runc has no option to restore a container stopped, but it hands CRIU the
 * configuration file named by the org.criu.config annotation: one that says
 * leave-stopped makes every task wait (SIGSTOP) until runc_resume. */
static int restore_stopped(struct restore_req *rq, struct error *e)
{
	char conf[PATH_MAX + 32], cfg_path[PATH_MAX + 16];
	_cleanup_free_ char *cfg = NULL, *out = NULL;
	int r;

	r = criu_write_config(rq->work_dir, "criu-restore.conf",
			      &(struct criu_conf){ .leave_stopped = true, .netlock_skip = rq->netlock_skip }, conf,
			      sizeof(conf), e);
	if (r < 0)
		return r;
	snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", rq->bundle);
	r = read_file(cfg_path, OCI_CONFIG_MAX, &cfg, NULL, e);
	if (r < 0)
		return r;
	r = oci_set_annotation(cfg, "org.criu.config", conf, &out, e);
	if (r < 0)
		return error_wrap(e, "cannot prepare %s", cfg_path);
	return write_file_atomic(cfg_path, out, strlen(out), 0600, e);
}

/* SIGCONT to every process of the container init pid is in, from its
 * cgroup's member list (what `runc kill --all` does, without starting runc
 * inside the frozen window): 0 when every one got it, -1 when that list
 * could not be had (the caller asks runc). */
static int cont_all(pid_t init)
{
	char path[64], line[PATH_MAX + 64], procs[PATH_MAX + 96] = "";
	FILE *f;
	int sent = 0;

	if (init <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)init);
	if (!(f = fopen(path, "re")))
		return -1;
	/* v1: the freezer's hierarchy (runc puts every process there); v2: the unified one */
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b || b[1] != '/' || strstr(b, ".."))
			continue;
		*b = '\0';
		if (!strcmp(a + 1, "freezer"))
			snprintf(procs, sizeof(procs), "/sys/fs/cgroup/freezer%s/cgroup.procs", b + 1);
		else if (!a[1] && !procs[0])
			snprintf(procs, sizeof(procs), "/sys/fs/cgroup%s/cgroup.procs", b + 1);
	}
	fclose(f);
	if (!procs[0] || !(f = fopen(procs, "re")))
		return -1;
	for (long p; fscanf(f, "%ld", &p) == 1;)
		if (p > 0 && kill((pid_t)p, SIGCONT) == 0)
			sent++;
	fclose(f);
	return sent > 0 ? 0 : -1;
}

static int runc_resume(struct ctx *c, struct restore_req *rq, struct error *e)
{
	struct run_result rr;
	int r;

	if (cont_all(rq->restored_pid) == 0)
		return 0;

	/* every process of the container: CRIU stopped them all */
	r = runc_cmd(c, &rr, NULL, 0, e, "kill", "--all", rq->id, "CONT", NULL);
	if (r < 0)
		return r;
	if (rr.status != 0) {
		error_set(e, EIO, "cannot resume the restored container %s (runc kill --all %s CONT): %s", rq->id, rq->id,
			  runc_msg(rr.err));
		error_host(e, rq->host);
		error_hint(e, "the container is restored but stopped: run `runc kill --all %s CONT` on %s", rq->id,
			   rq->host ? rq->host : "the destination");
		run_result_free(&rr);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

static int runc_restore(struct ctx *c, struct restore_req *rq, pid_t *ret_pid, struct error *e)
{
	struct run_result rr;
	char log[PATH_MAX + 16], out[PATH_MAX + 32], pidf[PATH_MAX + 32], what[320];
	json_t *st = NULL;
	int r;

	r = ctx_need_criu(c, e);
	if (r < 0)
		return r;
	r = restore_stopped(rq, e);
	if (r < 0)
		return r;
	snprintf(out, sizeof(out), "%s/runc-restore.out", rq->work_dir);
	snprintf(pidf, sizeof(pidf), "%s/restored.pid", rq->work_dir);
	unlink(pidf);
	if (rq->stdio_pipes)
		/* runc hands its own stdout and stderr to CRIU for the container's
		 * pipe:[...] descriptors: the new monitor's pipes */
		r = runc_cmd_fds(c, &rr, rq->stdio_fds, out, rq->timeout_ms, e, "restore", "--detach", "--pid-file", pidf,
				 rq->lazy ? "--lazy-pages" : "--detach", "--image-path",
				 rq->images_dir, "--work-path", rq->work_dir, "--bundle", rq->bundle,
				 rq->tcp_established ? "--tcp-established" : rq->id, rq->tcp_established ? rq->id : NULL,
				 NULL);
	else
		r = runc_cmd(c, &rr, out, rq->timeout_ms, e, "restore", "--detach", "--pid-file", pidf,
				 rq->lazy ? "--lazy-pages" : "--detach", "--image-path", rq->images_dir,
			     "--work-path", rq->work_dir, "--bundle", rq->bundle,
			     rq->tcp_established ? "--tcp-established" : rq->id, rq->tcp_established ? rq->id : NULL,
			     NULL);
	if (r < 0)
		return r;
	if (rr.status != 0) {
		snprintf(log, sizeof(log), "%s/restore.log", rq->work_dir);
		snprintf(what, sizeof(what), "restore of container %s", rq->id);
		if (path_exists(log)) {
			error_set(e, EIO, "%s", runc_msg(rr.err));
			criu_explain(log, what, rq->host, e);
		} else {
			error_set(e, EIO, "%s failed: %s", what, runc_msg(rr.err));
			error_host(e, rq->host);
		}
		run_result_free(&rr);
		return -e->code;
	}
	run_result_free(&rr);
	/* the pid runc wrote, without one more runc (`runc state`) while frozen */
	char *txt = NULL;
	struct error tmp = { 0 };
	long p = 0;
	if (read_file(pidf, 64, &txt, NULL, &tmp) == 0 && sscanf(txt, "%ld", &p) == 1 && p > 1 && kill((pid_t)p, 0) == 0) {
		free(txt);
		*ret_pid = rq->restored_pid = (pid_t)p;
		return 0;
	}
	free(txt);
	r = runc_state(c, rq->id, &st, e);
	if (r < 0)
		return r;
	const char *status = json_string_value(json_object_get(st, "status"));
	*ret_pid = rq->restored_pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	if (!status || strcmp(status, "running") != 0) {
		error_set(e, EIO, "container %s was restored but is %s, not running", rq->id, status ? status : "unknown");
		json_decref(st);
		return -EIO;
	}
	json_decref(st);
	return 0;
}

static int runc_undo_restore(struct ctx *c, struct restore_req *rq, struct error *e)
{
	struct run_result rr;
	int r;

	/* a monitor started for this restore (the container came with its
	 * log): its copy never ran, so it goes with the log it was given */
	pid_t mp = monitor_find(c->cfg.root, rq->id);
	if (mp > 0)
		kill(mp, SIGTERM);
	if (runc_cmd(c, &rr, NULL, 0, e, "delete", "--force", rq->id, NULL) == 0)
		run_result_free(&rr);
	if (mp > 0) {
		char lp[PATH_MAX];
		monitor_path(c->cfg.root, rq->id, "log", lp, sizeof(lp));
		unlink(lp);
	}
	r = rm_rf(rq->bundle, e);
	return r;
}

static bool runc_exists(struct ctx *c, const char *id)
{
	char p[PATH_MAX];

	return path_join(p, sizeof(p), c->cfg.runc_root, id) == 0 && path_exists(p);
}

const struct driver runc_driver = {
	.name = "runc",
	.kind = KIND_RUNC,
	.inspect = runc_inspect,
	.freeze = runc_freeze,
	.late_freeze = true,
	.dump = runc_dump,
	.dump_start = runc_dump_start,
	.dump_finish = runc_dump_finish,
	.dump_lazy = runc_dump_lazy,
	.thaw = runc_thaw,
	.destroy = runc_destroy,
	.restore = runc_restore,
	.resume = runc_resume,
	.undo_restore = runc_undo_restore,
	.exists = runc_exists,
};
