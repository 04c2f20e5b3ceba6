/* The runc driver: a container managed by runc.  Freezing is `runc pause`,
 * the dump is `runc checkpoint --leave-running` of the paused container (it
 * stays frozen), the restore is `runc restore -d` of the received bundle. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* `runc --root R [--log LOG] [--criu CRIU]`, the start of every runc
 * command line: how many words it took */
static int runc_argv_head(struct ctx *c, const char *log, const char *criu, char *argv[RUNC_MAX_ARGS])
{
	int n = 0;

	argv[n++] = c->runc;
	argv[n++] = "--root";
	argv[n++] = c->cfg.runc_root;
	if (log) {
		argv[n++] = "--log";
		argv[n++] = (char *)log;
	}
	if (criu && criu[0]) {
		argv[n++] = "--criu";
		argv[n++] = (char *)criu;
	}
	return n;
}

/* Runs runc with the host's root (and CRIU) and the options o (timeout 0 =
 * RUNC_TIMEOUT_MS); with log, runc's own messages go to that file. */
static int runc_cmd_v(struct ctx *c, struct run_result *rr, struct run_opts *o, const char *log, struct error *e,
		      va_list ap)
{
	char *argv[RUNC_MAX_ARGS];
	int n, r;

	r = ctx_need_runc(c, e);
	if (r < 0)
		return r;
	if (!o->timeout_ms)
		o->timeout_ms = RUNC_TIMEOUT_MS;
	n = runc_argv_head(c, log, c->criu.path, argv);
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

/* What runc's descriptors.json holds: a JSON array of paths (one per stdio
 * descriptor of the init) */
static bool descriptors_valid(const json_t *d)
{
	bool ok = json_is_array(d) && json_array_size(d) > 0;

	for (size_t i = 0; ok && i < json_array_size(d); i++)
		ok = json_is_string(json_array_get(d, i));
	return ok;
}

/* The init's stdio as runc recorded it when the container started (its
 * state.json, "external_descriptors"): what runc checkpoint writes into the
 * images as descriptors.json, for a staged restore ("" when unknown: then
 * the restore is not staged). */
static void runc_descriptors(struct ctx *c, struct workload *w)
{
	char p[PATH_MAX];
	_cleanup_free_ char *txt = NULL;
	struct error tmp = { 0 };
	json_t *st, *d;

	w->descriptors[0] = '\0';
	if ((size_t)snprintf(p, sizeof(p), "%s/%s/state.json", c->cfg.runc_root, w->id) >= sizeof(p) ||
	    read_file(p, 4 << 20, &txt, NULL, &tmp) < 0 || !(st = json_loads(txt, 0, NULL)))
		return;
	d = json_object_get(st, "external_descriptors");
	char *s = descriptors_valid(d) ? json_dumps(d, JSON_COMPACT) : NULL;
	if (s && strlen(s) <= RUNC_DESCRIPTORS_MAX)
		snprintf(w->descriptors, sizeof(w->descriptors), "%s", s);
	free(s);
	json_decref(st);
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
	runc_descriptors(c, w);
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
	int n = runc_argv_head(c, NULL, c->criu.path, argv);

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

/* After `runc restore` ended with status (err: what it said): the failure
 * explained from CRIU's log, or the restored init's pid. */
static int restore_result(struct ctx *c, struct restore_req *rq, int status, const char *err, pid_t *ret_pid,
			  struct error *e)
{
	char log[PATH_MAX + 16], pidf[PATH_MAX + 32], what[320];
	json_t *st = NULL;
	int r;

	if (status != 0) {
		snprintf(log, sizeof(log), "%s/restore.log", rq->work_dir);
		snprintf(what, sizeof(what), "restore of container %s", rq->id);
		if (path_exists(log)) {
			error_set(e, EIO, "%s", runc_msg(err));
			criu_explain(log, what, rq->host, e);
		} else {
			error_set(e, EIO, "%s failed: %s", what, runc_msg(err));
			error_host(e, rq->host);
		}
		return -e->code;
	}
	/* the pid runc wrote, without one more runc (`runc state`) while frozen */
	char *txt = NULL;
	struct error tmp = { 0 };
	long p = 0;
	snprintf(pidf, sizeof(pidf), "%s/restored.pid", rq->work_dir);
	if (read_file(pidf, 64, &txt, NULL, &tmp) == 0 && sscanf(txt, "%ld", &p) == 1 && p > 1 && kill((pid_t)p, 0) == 0) {
		free(txt);
		*ret_pid = rq->restored_pid = (pid_t)p;
		return 0;
	}
	free(txt);
	r = runc_state(c, rq->id, &st, e);
	if (r < 0)
		return r;
	const char *state = json_string_value(json_object_get(st, "status"));
	*ret_pid = rq->restored_pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	if (!state || strcmp(state, "running") != 0) {
		error_set(e, EIO, "container %s was restored but is %s, not running", rq->id, state ? state : "unknown");
		json_decref(st);
		return -EIO;
	}
	json_decref(st);
	return 0;
}

/* `runc restore` of rq (left stopped: restore_stopped), runc's CRIU at
 * criu (NULL: the host's), runc's messages into log (NULL: its stderr), the
 * pid into pidf. */
static void restore_argv(struct ctx *c, const struct restore_req *rq, const char *criu, const char *log,
			 const char *pidf, char *argv[RUNC_MAX_ARGS])
{
	int n = runc_argv_head(c, log, criu, argv);

	argv[n++] = "restore";
	argv[n++] = "--detach";
	argv[n++] = "--pid-file";
	argv[n++] = (char *)pidf;
	if (rq->lazy)
		argv[n++] = "--lazy-pages";
	argv[n++] = "--image-path";
	argv[n++] = (char *)rq->images_dir;
	argv[n++] = "--work-path";
	argv[n++] = (char *)rq->work_dir;
	argv[n++] = "--bundle";
	argv[n++] = (char *)rq->bundle;
	if (rq->tcp_established)
		argv[n++] = "--tcp-established";
	argv[n++] = (char *)rq->id;
	argv[n] = NULL;
}

/* runc restore reads the images' descriptors.json (the init's stdio as runc
 * recorded it when the container started; runc checkpoint writes it from
 * its state before CRIU runs) before it starts CRIU.  A staged runc gets the
 * source's copy, read from runc's state there (runc_descriptors); the one in
 * the images must say the same when the restore goes on. */
static int descriptors_write(struct restore_req *rq, struct error *e)
{
	char p[PATH_MAX + 32];
	json_t *d = json_loads(rq->descriptors, 0, NULL);
	bool good = descriptors_valid(d);

	json_decref(d);
	if (!good)
		return error_set(e, EPROTO, "protocol error: a staged restore of %s needs the container's descriptors (a "
					    "JSON array of paths)", rq->id);
	snprintf(p, sizeof(p), "%s/descriptors.json", rq->images_dir);
	return write_file_atomic(p, rq->descriptors, strlen(rq->descriptors), 0600, e);
}

static int descriptors_same(const struct restore_req *rq, struct error *e)
{
	char p[PATH_MAX + 32];
	_cleanup_free_ char *txt = NULL;
	json_t *a, *b;
	int r;

	snprintf(p, sizeof(p), "%s/descriptors.json", rq->images_dir);
	r = read_file(p, RUNC_DESCRIPTORS_MAX, &txt, NULL, e);
	if (r < 0)
		return error_wrap(e, "the images of %s lack runc's descriptors.json", rq->id);
	a = json_loads(txt, 0, NULL);
	b = json_loads(rq->descriptors, 0, NULL);
	bool same = a && b && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	if (same)
		return 0;
	error_set(e, EPROTO, "the stdio of container %s in its images (%.200s) is not what the staged restore started with "
			     "(%.200s)", rq->id, txt, rq->descriptors);
	error_hint(e, "set `staged_restore = no` in the source host's config and migrate again");
	return -EPROTO;
}

/* The staged restore: runc starts now (its CRIU version check, its
 * preparation) and waits at the gate with the restore request, while the
 * source still runs the workload; runc_restore_go lets it on. */
static int runc_restore_stage(struct ctx *c, struct restore_req *rq, struct error *e)
{
	char out[PATH_MAX + 32], pidf[PATH_MAX + 32];
	char *argv[RUNC_MAX_ARGS];
	int r;

	if (rq->staged_pid > 0)
		return error_set(e, EPROTO, "the restore of %s is staged already", rq->id);
	if ((r = ctx_need_criu(c, e)) < 0 || (r = ctx_need_runc(c, e)) < 0)
		return r;
	if (!c->criu.path[0])
		return error_set(e, ENOENT, "no CRIU binary for the restore gate");
	if ((r = restore_stopped(rq, e)) < 0)
		return r;
	if ((r = criu_gate_make(&rq->gate, rq->work_dir, c->criu.path, e)) < 0)
		return r;
	if ((r = descriptors_write(rq, e)) < 0) {
		criu_gate_close(&rq->gate);
		return r;
	}
	snprintf(out, sizeof(out), "%s/runc-restore.out", rq->work_dir);
	snprintf(pidf, sizeof(pidf), "%s/restored.pid", rq->work_dir);
	unlink(out);
	unlink(pidf);
	restore_argv(c, rq, rq->gate.link, NULL, pidf, argv);
	struct run_opts o = { .output_path = out, .env_add = rq->gate.envp };
	r = spawn_bg(argv, &o, NULL, &rq->staged_pid, e);
	if (r < 0) {
		rq->staged_pid = 0;
		criu_gate_close(&rq->gate);
		return error_wrap(e, "cannot start the restore of %s", rq->id);
	}
	log_debug("runc restore of %s staged (pid %d), waiting at its gate", rq->id, (int)rq->staged_pid);
	return 0;
}

/* runc's last error line in its output file (or its last line) */
static char *runc_out_reason(const char *out)
{
	static const char *const levels[] = { "level=error", "level=fatal", NULL };
	char *r = file_last_line(out, 1 << 20, levels);

	return r ? r : strdup("runc gave no reason");
}

static void runc_restore_cancel(struct ctx *c, struct restore_req *rq)
{
	int st;

	(void)c;
	/* the gate gives up: runc's restore fails before CRIU runs */
	criu_gate_close(&rq->gate);
	if (rq->staged_pid > 0) {
		if (wait_child_ms(rq->staged_pid, 10000, &st) == -ETIMEDOUT) {
			kill(-rq->staged_pid, SIGKILL);
			wait_child_ms(rq->staged_pid, 10000, &st);
		}
		rq->staged_pid = 0;
	}
}

static int runc_restore_go(struct ctx *c, struct restore_req *rq, pid_t *ret_pid, struct error *e)
{
	char out[PATH_MAX + 32];
	unsigned limit = rq->timeout_ms ? rq->timeout_ms : RUNC_TIMEOUT_MS;
	pid_t pid = rq->staged_pid;
	int st = -1, r;

	if (pid <= 0)
		return error_set(e, EPROTO, "no staged restore of %s to go on with", rq->id);
	r = descriptors_same(rq, e);
	if (r == 0)
		r = criu_gate_open(&rq->gate, e);
	if (r < 0) {
		runc_restore_cancel(c, rq);
		return r;
	}
	r = wait_child_ms(pid, (int)limit, &st);
	if (r == -ETIMEDOUT) {
		kill(-pid, SIGKILL);
		wait_child_ms(pid, 10000, &st);
	}
	rq->staged_pid = 0;
	criu_gate_close(&rq->gate);
	if (r == -ETIMEDOUT) {
		error_set(e, ETIMEDOUT, "the restore of container %s did not end within %u ms", rq->id, limit);
		error_host(e, rq->host);
		return -ETIMEDOUT;
	}
	if (r < 0)
		return error_errno(e, -r, "cannot wait for the restore of container %s", rq->id);
	snprintf(out, sizeof(out), "%s/runc-restore.out", rq->work_dir);
	_cleanup_free_ char *why = st != 0 ? runc_out_reason(out) : NULL;
	return restore_result(c, rq, st, why ? why : "", ret_pid, e);
}

static int runc_restore(struct ctx *c, struct restore_req *rq, pid_t *ret_pid, struct error *e)
{
	struct run_result rr;
	char out[PATH_MAX + 32], pidf[PATH_MAX + 32];
	char *argv[RUNC_MAX_ARGS];
	int r;

	if ((r = ctx_need_criu(c, e)) < 0 || (r = ctx_need_runc(c, e)) < 0)
		return r;
	r = restore_stopped(rq, e);
	if (r < 0)
		return r;
	snprintf(out, sizeof(out), "%s/runc-restore.out", rq->work_dir);
	snprintf(pidf, sizeof(pidf), "%s/restored.pid", rq->work_dir);
	unlink(pidf);
	/* A monitored container: runc hands its own stdout and stderr to CRIU
	 * for the container's pipe:[...] descriptors, the new monitor's pipes;
	 * runc's messages then go to its --log file */
	struct run_opts o = { .timeout_ms = (int)(rq->timeout_ms ? rq->timeout_ms : RUNC_TIMEOUT_MS),
			      .output_path = rq->stdio_pipes ? NULL : out,
			      .stdio_fds = rq->stdio_pipes ? rq->stdio_fds : NULL };
	if (rq->stdio_pipes)
		unlink(out);
	restore_argv(c, rq, c->criu.path, rq->stdio_pipes ? out : NULL, pidf, argv);
	r = run_cmd(argv, &o, &rr, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *why = rr.status == 0 ? NULL : rq->stdio_pipes ? runc_out_reason(out) : strdup(rr.err ? rr.err : "");
	r = restore_result(c, rq, rr.status, why ? why : "", ret_pid, e);
	run_result_free(&rr);
	return r;
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
	.restore_stage = runc_restore_stage,
	.restore_go = runc_restore_go,
	.restore_cancel = runc_restore_cancel,
	.resume = runc_resume,
	.undo_restore = runc_undo_restore,
	.exists = runc_exists,
};
