#include "engine/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "criu/actionscript.h"
#include "criu/logtime.h"
#include "criu/precheck.h"
#include "engine/dumpsend.h"
#include "engine/handoff.h"
#include "engine/journal.h"
#include "engine/memscan.h"
#include "engine/modes.h"
#include "engine/postcopy.h"
#include "engine/net.h"
#include "engine/progress.h"
#include "engine/rootfs.h"
#include "monitor/monitor.h"
#include "drivers/ocispec.h"
#include "transport/keepalive.h"
#include "transport/rsh.h"
#include "transport/tree.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/lock.h"
#include "util/log.h"

enum { CHAN_IMAGES = 1, CHAN_ROOTFS = 2, CHAN_PAGES = 3, CHAN_LOG = 4 };

void migration_id_make(const char *name, char *out, size_t n)
{
	char clean[48];
	size_t l = 0;
	unsigned rnd = 0;
	time_t t = time(NULL);
	struct tm tm;

	for (const char *p = name; *p && l < sizeof(clean) - 1; p++)
		clean[l++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
					    *p == '.' || *p == '_' ? *p : '-');
	clean[l] = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned)getpid() ^ (unsigned)t;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%s-%04d%02d%02dT%02d%02d%02d-%04x", clean[0] ? clean : "w", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd & 0xffff);
}

bool migration_id_valid(const char *id)
{
	return name_is_safe(id, 64);
}

static void progress_cb(uint64_t n, void *arg)
{
	progress_add(arg, n);
}

static int simple_exchange(struct peer *p, uint16_t type, struct mbuf *mb, uint16_t want, struct msg *m,
			   struct error *e)
{
	int r = proto_send_msg(&p->conn, type, mb, e);
	if (r < 0)
		return r;
	return proto_recv_msg(&p->conn, want, m, e);
}

/* Roll back after a failure that happened before the commit. */
static void abort_migration(struct ctx *c, const struct driver *drv, struct workload *w, struct peer *p,
			    bool connected, struct migrate_stats *st, struct error *e)
{
	struct error tmp = { 0 };
	struct msg m;

	if (connected) {
		/* Tell the destination to undo what it did; a short wait only (it
		 * rolls back by itself anyway when the connection ends or its
		 * lease expires). */
		if (p->conn.timeout_ms <= 0 || p->conn.timeout_ms > HANDOFF_LEASE_MS)
			p->conn.timeout_ms = HANDOFF_LEASE_MS;
		if (simple_exchange(p, MSG_ABORT, NULL, MSG_DONE, &m, &tmp) == 0)
			msg_free(&m);
		else
			log_warn("the destination %s did not confirm the rollback: %s (its half-restored copy, if any, "
				 "is removed when the agent exits)",
				 p->name, tmp.msg);
	}
	if (w->frozen) {
		error_clear(&tmp);
		if (drv->thaw(c, w, &tmp) < 0) {
			/* This is the one thing that must not fail silently. */
			error_wrap(e, "and resuming %s on %s ALSO failed (%s); it is still frozen: resume it by hand", w->label,
				   c->cfg.name, tmp.msg);
			return;
		}
		st->source_thawed = true;
	}
}

/* RESTORE's attributes: its flags (and 'more' of them), the deadline, the
 * relay port of a lazy restore, a container's config.json. */
static int restore_request(struct mbuf *mb, const struct workload *w, uint32_t deadline, bool shared, int lazy_port,
			   uint32_t more, struct error *e)
{
	mb_init(mb);
	mb_u32(mb, A_FLAGS, (w->shell_job ? RESTORE_SHELL_JOB : 0) | (w->tcp_established ? RESTORE_TCP_ESTABLISHED : 0) |
				    (shared ? RESTORE_SHARED_ROOTFS : 0) | (lazy_port > 0 ? RESTORE_LAZY : 0) |
				    (w->netlock_skip ? RESTORE_NETLOCK_SKIP : 0) | more);
	mb_u32(mb, A_DEADLINE_MS, deadline);
	if (lazy_port > 0)
		mb_u32(mb, A_PORT, (uint32_t)lazy_port);
	if (w->kind == KIND_RUNC) {
		char *cfg = NULL, *cfg2 = NULL;
		/* copied and skipped volumes live in the bundle there (volumes/N) */
		if (volumes_rewrite_config(w->config_json, w->vols, w->nvols, &cfg, e) < 0) {
			mb_free(mb);
			return -e->code;
		}
		/* shared storage: the destination uses the same root filesystem path */
		if (shared && oci_set_root_path(cfg, w->rootfs, &cfg2, e) < 0) {
			free(cfg);
			mb_free(mb);
			return -e->code;
		}
		if (cfg2) {
			free(cfg);
			cfg = cfg2;
		}
		mb_bytes(mb, A_CONFIG, cfg, strlen(cfg));
		free(cfg);
	}
	return 0;
}

/* The staged restore (1.5): the destination starts it now, while the
 * workload runs, and holds its CRIU until RESTORE_GO (criu/gate.h). */
static int stage_restore(struct peer *p, const struct workload *w, bool shared, int lazy_port, struct error *e)
{
	struct mbuf mb;
	struct msg m;
	int r = restore_request(&mb, w, 0, shared, lazy_port, RESTORE_STAGED, e);

	if (r < 0)
		return r;
	/* runc there reads it before its CRIU starts */
	mb_bytes(&mb, A_DESCRIPTORS, w->descriptors, strlen(w->descriptors));
	r = simple_exchange(p, MSG_RESTORE, &mb, MSG_STAGED, &m, e);
	mb_free(&mb);
	if (r == 0)
		msg_free(&m);
	return r;
}

/* RESTORE (RESTORE_GO after a staged one) and its answer RESTORED */
static int send_restore(struct peer *p, const struct workload *w, uint32_t lease_ms, bool shared,
			const char *images, int lazy_port, bool staged, struct migrate_stats *st, struct error *e)
{
	uint32_t deadline = handoff_restore_deadline_ms(lease_ms, st->image_bytes);
	struct mbuf mb;
	struct msg m;
	int r;

	if (staged) {
		mb_init(&mb);
		mb_u32(&mb, A_DEADLINE_MS, deadline);
	} else if ((r = restore_request(&mb, w, deadline, shared, lazy_port, 0, e)) < 0) {
		return r;
	}
	/* the agent gives up restoring after 'deadline'; one lease more for
	 * its answer to arrive */
	p->conn.timeout_ms = (int)((uint64_t)deadline + lease_ms > INT32_MAX ? INT32_MAX : deadline + lease_ms);
	r = proto_send_msg(&p->conn, staged ? MSG_RESTORE_GO : MSG_RESTORE, &mb, e);
	if (r == 0) {
		/* while the destination restores: the images were verified there,
		 * a rollback only thaws the frozen workload, and they hold its
		 * memory */
		mem_dir_drop(images);
		r = proto_recv_msg(&p->conn, MSG_RESTORED, &m, e);
	}
	p->conn.timeout_ms = (int)lease_ms;
	mb_free(&mb);
	if (r < 0)
		return r;
	st->dest_pid = (int)m.num[A_PID];
	if (msg_has(&m, A_FLAGS)) /* the network namespace the workload was restored into */
		st->netns_existed = m.num[A_FLAGS] & NET_EXISTED;
	if (msg_has(&m, A_DURATION_US))
		st->restore_ms = (double)m.num[A_DURATION_US] / 1000.0;
	msg_free(&m);
	return 0;
}

/* Copies bytes [from, from + n) of the file src into a new file dst. */
static int copy_range(const char *src, uint64_t from, uint64_t n, const char *dst, struct error *e)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out, r = 0;
	loff_t off = (loff_t)from;

	if (in < 0)
		return error_errno(e, errno, "cannot open %s", src);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		r = error_errno(e, errno, "cannot create %s", dst);
		close(in);
		return r;
	}
	while (n > 0) {
		ssize_t k = copy_file_range(in, &off, out, NULL, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? error_errno(e, errno, "cannot copy %s", src)
				  : error_set(e, EIO, "%s is shorter than expected", src);
			break;
		}
		n -= (uint64_t)k;
	}
	close(in);
	close(out);
	return r;
}

/* A monitored container (`cmt run`), still running: what its log holds
 * now travels before the freeze (the log only grows; these bytes never
 * change).  Returns the number of bytes sent. */
static int precopy_log(struct ctx *c, struct peer *p, const struct workload *w, const char *mig_dir,
		       uint64_t *ret_sent, struct error *e)
{
	char dir[PATH_MAX + 16], src[PATH_MAX], dst[PATH_MAX * 2];
	struct tree_stats ts;
	struct stat sb;
	int r;

	*ret_sent = 0;
	monitor_path(c->cfg.root, w->id, "log", src, sizeof(src));
	if (stat(src, &sb) < 0)
		return error_errno(e, errno, "cannot read the log %s of %s", src, w->label);
	snprintf(dir, sizeof(dir), "%s/log-pre", mig_dir);
	snprintf(dst, sizeof(dst), "%s/%s.log", dir, w->id);
	if ((r = mkdir_p(dir, 0700, e)) < 0 || (r = copy_range(src, 0, (uint64_t)sb.st_size, dst, e)) < 0)
		return r;
	r = tree_send(&p->conn, CHAN_LOG, AREA_LOG, dir, "", &ts, e);
	{
		struct error tmp = { 0 };
		rm_rf(dir, &tmp);
	}
	if (r < 0)
		return error_wrap(e, "sending the log of %s", w->label);
	*ret_sent = (uint64_t)sb.st_size;
	return 0;
}

/* A monitored container (`cmt run`), frozen: its monitor reads what is
 * left in the pipes into the log and says how long the log is; what the
 * log grew by since its pre-copy (from 'sent' on) travels, and the
 * destination's monitor appends to it.  Nothing can be written in between
 * (the container is frozen), so nothing is lost or written twice. */
static int send_log(struct ctx *c, struct peer *p, const struct workload *w, const char *mig_dir, uint64_t sent,
		    struct migrate_stats *st, struct error *e)
{
	char dir[PATH_MAX + 16], src[PATH_MAX], dst[PATH_MAX * 2];
	struct tree_stats ts;
	struct stat sb;
	uint64_t size;
	int r;

	r = monitor_drain(c->cfg.root, w->id, &size, e);
	if (r < 0)
		return r;
	monitor_path(c->cfg.root, w->id, "log", src, sizeof(src));
	if (size < sent)
		return error_set(e, EIO, "the log %s of %s shrank during the migration (%llu bytes, %llu before)", src,
				 w->label, (unsigned long long)size, (unsigned long long)sent);
	snprintf(dir, sizeof(dir), "%s/log", mig_dir);
	if ((r = mkdir_p(dir, 0700, e)) < 0)
		return r;
	if (sent > 0) {
		snprintf(dst, sizeof(dst), "%s/%s.log.tail", dir, w->id);
		r = copy_range(src, sent, size - sent, dst, e);
		if (r < 0)
			return r;
	} else {
		/* the same file under the migration's directory: nothing is copied */
		snprintf(dst, sizeof(dst), "%s/%s.log", dir, w->id);
		unlink(dst);
		if (link(src, dst) < 0)
			return error_errno(e, errno, "cannot link the log %s into %s", src, dir);
	}
	r = tree_send(&p->conn, CHAN_LOG, AREA_LOG, dir, "", &ts, e);
	if (r < 0)
		return error_wrap(e, "sending the log of %s", w->label);
	if (stat(src, &sb) < 0 || (uint64_t)sb.st_size != size) {
		error_set(e, EIO, "the log of %s changed after its monitor drained it (%llu bytes then, %lld now): "
				  "the container was not frozen",
			  w->label, (unsigned long long)size, (long long)sb.st_size);
		return -EIO;
	}
	st->log_bytes = size - sent;
	st->log_precopy_bytes = sent;
	return 0;
}

/* The source's journal, written before each step (see journal.h). */
static void journal_step(const char *mig_dir, enum journal_state state, const struct workload *w,
			 const struct migrate_opts *o)
{
	struct journal j = { .state = state, .kind = w->kind };
	struct error e = { 0 };

	snprintf(j.workload, sizeof(j.workload), "%s", w->id);
	snprintf(j.freeze_cg, sizeof(j.freeze_cg), "%s", w->freeze_cg);
	snprintf(j.peer, sizeof(j.peer), "%s", o->to);
	snprintf(j.rsh, sizeof(j.rsh), "%s", o->rsh);
	snprintf(j.remote_cmt, sizeof(j.remote_cmt), "%s", o->remote_cmt);
	if (journal_write(mig_dir, &j, &e) < 0)
		log_warn("cannot write the migration journal: %s", e.msg);
	if (w->orig_cgroups) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof(p), "%s/orig_cgroups", mig_dir);
		write_file_atomic(p, w->orig_cgroups, strlen(w->orig_cgroups), 0600, &e);
	}
}

static void journal_done(const char *mig_dir)
{
	char p[PATH_MAX + 16];

	snprintf(p, sizeof(p), "%s/journal", mig_dir);
	unlink(p);
}

static int run_hook(const struct migrate_opts *o, enum hook_phase ph, const struct workload *w,
		    const struct migrate_stats *st, const char *err, struct error *e)
{
	struct hook_env env = {
		.workload = w->id,
		.kind = w->kind == KIND_RUNC ? "container" : "process-tree",
		.source = st->source,
		.destination = st->destination,
		.mode = st->mode,
		.migration_id = st->migration_id,
		.error = err,
	};

	if (!o->hooks)
		return 0;
	return hook_run(o->hooks, ph, &env, e);
}

static int run_checks(struct ctx *c, const struct migrate_opts *o, struct peer *p, const struct workload *w,
		      struct migrate_stats *st, struct error *e)
{
	char names[256] = "";
	size_t l = 0;
	int r = checks_run(c, p, w, o->mode, &st->checks, e);

	if (r < 0)
		return error_wrap(e, "cannot run the pre-migration checks");
	st->checked = true;
	if (!checks_failed(&st->checks)) {
		if (o->show_checks)
			checks_print(&st->checks, p->name, true);
		return 0;
	}
	checks_print(&st->checks, p->name, o->show_checks);
	bool on_dest = false;
	for (int i = 0; i < st->checks.n; i++)
		if (st->checks.c[i].status == CHECK_FAIL) {
			l += (size_t)snprintf(names + l, sizeof(names) - l, "%s%s", l ? ", " : "", st->checks.c[i].name);
			on_dest |= check_is_about_destination(st->checks.c[i].name);
		}
	error_set(e, EHOSTUNREACH, "%s cannot move to %s: pre-migration check%s failed: %s", w->label, p->name,
		  strchr(names, ',') ? "s" : "", names);
	/* where the problem is: the destination if any failing check is about it */
	error_host(e, on_dest ? p->name : c->cfg.name);
	error_hint(e, "fix what the failing checks say above, pick another host (`cmt hosts`), or skip the checks with "
		      "--force (at your own risk)");
	return -EHOSTUNREACH;
}

/* What freezing the workload takes: the driver's freeze, the journal, the
 * network lock of a namespace that moves.  Before the dump (early) or from
 * the thread that answers CRIU's action script (late, while the dump runs). */
struct freezing {
	struct ctx *c;
	const struct migrate_opts *o;
	const struct driver *drv;
	struct workload *w;
	struct migrate_stats *st;
	const struct net_desc *net;
	bool *net_locked;
	const char *mig_dir;
};

static int freeze_now(void *arg, struct error *e)
{
	struct freezing *fz = arg;
	int r = fz->drv->freeze(fz->c, fz->w, e);

	if (r < 0)
		return r;
	journal_step(fz->mig_dir, J_FROZEN, fz->w, fz->o);
	fz->st->t_frozen = now_ms();
	fault_set_phase("frozen");
	if (fz->net) {
		/* CRIU locks the namespace during the dump but unlocks it after a
		 * --leave-running dump: this lock keeps the frozen copy's kernel
		 * from answering (and acknowledging) the peers until it is gone */
		/* recorded first, for `cmt recover`: it unlocks (or removes) it
		 * after a crash (unlocking what is not locked is harmless) */
		struct net_state nst = { .d = *fz->net, .locked = true };
		struct error ne = { 0 };
		if (net_state_save(fz->mig_dir, &nst, &ne) < 0)
			log_warn("cannot record the network state: %s", ne.msg);
		r = net_lock(fz->net->path, e);
		if (r < 0)
			return error_wrap(e, "cannot lock the network of %s", fz->w->label);
		*fz->net_locked = true;
	}
	fault_point("after-freeze");
	log_debug("%s frozen", fz->w->label);
	return 0;
}

/* After a dump with the late freeze: the dump's result r, or why it did
 * not count.  A freeze that failed is what made CRIU give up (its own
 * message says only that a script failed); a dump that CRIU finished
 * without ever calling back ran on a workload that kept running, and CRIU
 * has resumed it: its images are of no use. */
static int late_freeze_outcome(const struct criu_action *act, struct workload *w, struct migrate_stats *st,
			       const char *host, int r, struct error *e)
{
	if (act->called && act->result < 0) {
		*e = act->err;
		if (!e->host[0])
			error_host(e, host);
		if (!w->frozen && !e->hint[0])
			error_hint(e, "%s was not frozen and runs on here (CRIU gave the dump up); fix what is said above "
				      "and migrate again",
				   w->label);
		return act->result;
	}
	if (act->called)
		timeline_mark_at(&st->tl, "criu-start", st->t_frozen); /* runc and CRIU started, not frozen */
	if (r < 0 || act->called)
		return r;
	error_set(e, EPROTO, "CRIU dumped %s without running cmt's action script before it froze it: those images are "
		     "of a running container, so they are dropped and %s runs on here",
		  w->label, w->label);
	error_host(e, host);
	error_hint(e, "this CRIU ignores `action-script` in a configuration file: set `early_freeze = yes` in the "
		      "state root's config on %s and migrate again",
		   host);
	return -EPROTO;
}

int migrate_run(struct ctx *c, const struct migrate_opts *o, struct migrate_stats *st, struct error *e)
{
	const struct driver *drv = driver_for(o->kind);
	struct workload w;
	struct peer p;
	struct mbuf mb;
	struct msg m;
	char mig_dir[PATH_MAX], images[PATH_MAX + 16], work[PATH_MAX + 16];
	bool connected = false, committed = false, started = false, inspected = false;
	struct rootfs_sync rs = { 0 }, vrs[VOL_MAX] = { 0 };
	struct progress pg = { 0 };
	bool show = isatty(STDERR_FILENO) && log_verbosity >= 0;
	uint32_t lease = handoff_lease_clamp(o->lease_ms);
	struct keepalive ka = { 0 };
	uint64_t log_sent = 0; /* bytes of a monitored container's log sent before the freeze */
	enum mig_mode mode = MODE_COLD;
	struct pageset set = { 0 };
	struct zpolicy zp = { .mode = o->compress };
	struct postcopy pc = { 0 };
	bool postcopy = false;
	int r, lock = -1;
	char lock_name[300];
	struct net_desc *net = NULL; /* the network namespace that moves (a path in config.json) */
	bool net_locked = false;

	memset(&w, 0, sizeof(w));
	memset(&p, 0, sizeof(p));
	p.pid = -1;
	st->t_start = now_ms();
	timeline_start(&st->tl, st->t_start);
	st->result = "failed";
	snprintf(st->mode, sizeof(st->mode), "%s", o->mode);
	snprintf(st->source, sizeof(st->source), "%s", c->cfg.name);
	snprintf(st->destination, sizeof(st->destination), "%s", o->to);
	if (mode_parse(o->mode, &mode) < 0) {
		error_set(e, EINVAL, "unknown migration mode '%s'", o->mode);
		error_hint(e, "use cold, precopy, postcopy, hybrid or auto");
		return -EINVAL;
	}
	if (mode != MODE_AUTO && !mode_source_supports(mode)) {
		error_set(e, ENOTSUP, "migration mode '%s' is not available in this cmt (%s)", o->mode, CMT_VERSION);
		error_hint(e, "use --mode precopy (live), --mode postcopy (lowest downtime; see cmt migrate --help) or --mode cold");
		return -ENOTSUP;
	}

	fault_init(c->cfg.root, "source");
	r = drv->inspect(c, o->workload, &w, e);
	if (r < 0)
		goto fail_early;
	inspected = true;
	snprintf(st->workload, sizeof(st->workload), "%s", w.label);
	if (w.kind == KIND_RUNC) {
		/* every bind mount needs a policy, decided before anything happens */
		w.vols = calloc(VOL_MAX, sizeof(*w.vols));
		if (!w.vols) {
			r = error_set(e, ENOMEM, "out of memory");
			goto fail_early;
		}
		r = volumes_plan(w.config_json, w.label, o->volumes_default, o->vol_rules, o->nvol_rules, true, w.vols,
				 VOL_MAX, e);
		if (r < 0)
			goto fail_early;
		w.nvols = r;
		/* a network namespace by path: its interfaces, addresses and
		 * routes are recreated on the destination */
		char np[256];
		r = net_path_from_config(w.config_json, np, sizeof(np), e);
		if (r < 0)
			goto fail_early;
		/* cmt locks a namespace by path itself (after the freeze, until
		 * the frozen copy is gone), and one runc made whose only
		 * interface is lo is reached by nothing outside: CRIU's iptables
		 * lock around the dump and the restore would only add frozen
		 * time (60-100 ms each on the lab; doc/design.md "Network lock") */
		w.netlock_skip = net_criu_lock_redundant(r, true, w.pid);
		if (r == NET_NS_PATH) {
			net = calloc(1, sizeof(*net));
			if (!net) {
				r = error_set(e, ENOMEM, "out of memory");
				goto fail_early;
			}
			r = net_describe(np, net, e);
			if (r == 0)
				r = net_check_exclusive(np, w.pid, e);
			if (r < 0) {
				error_wrap(e, "%s", w.label);
				goto fail_early;
			}
			snprintf(st->netns, sizeof(st->netns), "%s", np);
		}
	}
	/* one migration per workload at a time */
	snprintf(lock_name, sizeof(lock_name), "%s-%s", w.kind == KIND_RUNC ? "container" : "pid", w.id);
	lock = lock_take(c->cfg.root, lock_name, w.label, e);
	if (lock < 0) {
		r = lock;
		goto fail_early;
	}
	r = ctx_need_criu(c, e);
	if (r < 0)
		goto fail_early;
	timeline_mark(&st->tl, "inspect");

	migration_id_make(w.id, st->migration_id, sizeof(st->migration_id));
	snprintf(mig_dir, sizeof(mig_dir), "%s/migrations/%s", c->cfg.root, st->migration_id);
	snprintf(images, sizeof(images), "%s/images", mig_dir);
	snprintf(work, sizeof(work), "%s/work", mig_dir);
	/* The dump goes to the state root's disk: CRIU writes it fastest
	 * there, it is read once while frozen and dropped as soon as the
	 * destination has verified it.  (The destination keeps what it
	 * receives in memory: images_tmpfs, see "Where the images and pages
	 * live" in doc/design.md.) */
	if ((r = mkdir_p(work, 0700, e)) < 0 || (r = mkdir_p(images, 0700, e)) < 0)
		goto fail_early;

	log_info("migrating %s from %s to %s (mode %s, migration %s)", w.label, c->cfg.name, o->to, o->mode,
		 st->migration_id);
	r = peer_connect(&p, o->rsh, o->to, o->remote_cmt, c->cfg.name, e);
	if (r < 0)
		goto fail;
	connected = true;
	fault_set_conn(p.conn.rfd, p.conn.wfd);
	timeline_mark(&st->tl, "connect");

	{
		struct precheck prc;
		criu_precheck(w.pid, &prc);
		w.tcp_established = prc.tcp_established > 0;
	}
	if (!o->force) {
		r = run_checks(c, o, &p, &w, st, e);
		if (r < 0)
			goto fail_nohook;
	}
	started = true;
	timeline_mark(&st->tl, "checks");
	if (mode == MODE_AUTO) {
		struct facts none = { 0 };
		long long rss_kib = (long long)(memscan_estimate(w.pid) * PAGE_SZ / 1024);
		mode = mode_choose(st->checked ? &st->checks.src : &none, st->checked ? &st->checks.dst : &none, rss_kib,
				   o->allow_postcopy, st->mode_reason, sizeof(st->mode_reason));
		if (!mode_source_supports(mode)) {
			size_t l = strlen(st->mode_reason);
			snprintf(st->mode_reason + l, sizeof(st->mode_reason) - l, "; %s is not available in this cmt: precopy",
				 mode_name(mode));
			mode = MODE_PRECOPY;
		}
		if (mode == MODE_HYBRID && p.peer_minor < PROTO_MINOR_RELAY_PAGES) {
			snprintf(st->mode_reason, sizeof(st->mode_reason),
				 "postcopy: %s speaks protocol %u.%u, without hybrid (allowed by --allow-postcopy)", p.name,
				 p.peer_major, p.peer_minor);
			mode = MODE_POSTCOPY;
		}
		if (mode == MODE_PRECOPY && p.peer_minor < PROTO_MINOR_PAGES) {
			snprintf(st->mode_reason, sizeof(st->mode_reason), "cold: %s speaks protocol %u.%u, without pre-copy",
				 p.name, p.peer_major, p.peer_minor);
			mode = MODE_COLD;
		}
		log_debug("--mode auto: %s", st->mode_reason);
	} else {
		snprintf(st->mode_reason, sizeof(st->mode_reason), "--mode %s", mode_name(mode));
	}
	/* what the agent's protocol lacks is refused before anything is frozen */
	char lacks[PATH_MAX + 400];
	const char *other = NULL;
	lacks[0] = 0;
	if (mode == MODE_PRECOPY && p.peer_minor < PROTO_MINOR_PAGES) {
		snprintf(lacks, sizeof(lacks), "has no pre-copy");
		other = ", or use --mode cold";
	} else if (mode == MODE_HYBRID && p.peer_minor < PROTO_MINOR_RELAY_PAGES) {
		snprintf(lacks, sizeof(lacks), "has no hybrid mode");
		other = ", or use --mode postcopy or precopy";
	} else if (net && p.peer_minor < PROTO_MINOR_NET) {
		/* it could not recreate the namespace */
		snprintf(lacks, sizeof(lacks), "cannot recreate the network namespace %s of %s", net->path, w.label);
	} else if (w.monitor_pid > 0 && p.peer_minor < PROTO_MINOR_LOG) {
		/* its output would go nowhere there */
		snprintf(lacks, sizeof(lacks), "cannot take the log of %s (started by `cmt run`: a cmt monitor owns its output)",
			 w.label);
	}
	if (lacks[0]) {
		r = error_set(e, ENOTSUP, "%s speaks protocol %u.%u (%s), which %s", p.name, p.peer_major, p.peer_minor,
			      p.peer_software, lacks);
		error_host(e, p.name);
		error_hint(e, "install this cmt (%s) on %s%s", CMT_VERSION, p.name, other ? other : "");
		goto fail_nohook;
	}
	snprintf(st->mode, sizeof(st->mode), "%s", mode_name(mode));
	p.conn.max_bps = o->max_bandwidth_bps;
	postcopy = mode_is_postcopy(mode);
	st->postcopy = postcopy;
	if (postcopy) {
		/* checked even with --force: without it the lazy transfer breaks */
		r = postcopy_check(c, &p, st->checked ? &st->checks : NULL, drv, w.label, e);
		if (r < 0)
			goto fail_nohook;
	}

	mb_init(&mb);
	mb_str(&mb, A_MIGRATION_ID, st->migration_id);
	mb_u32(&mb, A_KIND, (uint32_t)w.kind);
	mb_str(&mb, A_WORKLOAD, w.id);
	mb_str(&mb, A_MODE, st->mode);
	mb_u32(&mb, A_LEASE_MS, lease);
	r = simple_exchange(&p, MSG_PREPARE, &mb, MSG_READY, &m, e);
	mb_free(&mb);
	if (r < 0)
		goto fail;
	msg_free(&m);
	/* every wait for the agent is bounded by the lease from here on, and
	 * the agent bounds its waits for us the same way */
	p.conn.timeout_ms = (int)lease;
	fault_point("after-prepare");
	timeline_mark(&st->tl, "prepare");
	if (postcopy) {
		/* the page relay's session opens now, while the workload runs */
		r = postcopy_relay_start(&pc, o, c->cfg.name, st->migration_id, lease, memscan_estimate(w.pid) * PAGE_SZ,
					 &p, e);
		if (r < 0)
			goto fail;
	}

	if (net) {
		/* the destination prepares the namespace while the workload runs */
		char *desc = net_desc_to_json(net);
		if (!desc) {
			r = error_set(e, ENOMEM, "out of memory");
			goto fail;
		}
		mb_init(&mb);
		mb_bytes(&mb, A_NET_DESC, desc, strlen(desc));
		free(desc);
		r = simple_exchange(&p, MSG_NET_SETUP, &mb, MSG_NET_READY, &m, e);
		mb_free(&mb);
		if (r < 0)
			goto fail;
		st->netns_existed = m.num[A_FLAGS] & NET_EXISTED;
		msg_free(&m);
		log_debug("network namespace %s %s on %s, locked", net->path,
			  st->netns_existed ? "found" : "recreated", p.name);
		timeline_mark(&st->tl, "net-setup");
	}

	/* The root filesystem is copied while the workload still runs; only
	 * what changes from here on travels after the freeze. */
	if (w.kind == KIND_RUNC && !o->shared_storage) {
		progress_begin(&pg, show, "rootfs", dir_bytes(w.rootfs));
		rs.on_bytes = progress_cb;
		rs.arg = &pg;
		r = rootfs_precopy(&p.conn, CHAN_ROOTFS, w.rootfs, "rootfs", &rs, e);
		progress_end(&pg);
		if (r < 0)
			goto fail;
		st->rootfs_precopy_bytes = rs.precopy_bytes;
		log_debug("root filesystem pre-copied: %llu bytes", (unsigned long long)rs.precopy_bytes);
	}
	for (int i = 0; i < w.nvols; i++) {
		char prefix[32];
		if (w.vols[i].policy != VOL_COPY)
			continue;
		snprintf(prefix, sizeof(prefix), "volumes/%d", i);
		r = rootfs_precopy(&p.conn, CHAN_ROOTFS, w.vols[i].source, prefix, &vrs[i], e);
		if (r < 0)
			goto fail;
		st->volume_precopy_bytes += vrs[i].precopy_bytes;
	}

	/* The log of a `cmt run` container: what it holds now, while it runs */
	if (w.monitor_pid > 0) {
		r = precopy_log(c, &p, &w, mig_dir, &log_sent, e);
		if (r < 0)
			goto fail;
	}

	timeline_mark(&st->tl, "rootfs-precopy");

	/* runc's restore starts there now and waits for the images: only
	 * CRIU's restore is left for the frozen window (criu/gate.h) */
	/* (not with a pre-restore hook: it may prepare the destination for the
	 * restore, e.g. its network namespace, which runc looks at as it starts) */
	bool staged = w.kind == KIND_RUNC && c->cfg.staged_restore && p.peer_minor >= PROTO_MINOR_STAGED &&
		      w.monitor_pid <= 0 && w.descriptors[0] && !(o->hooks && o->hooks->cmd[HOOK_PRE_RESTORE]);
	if (staged) {
		r = stage_restore(&p, &w, o->shared_storage, postcopy ? pc.dest_port : 0, e);
		if (r < 0)
			goto fail;
		timeline_mark(&st->tl, "restore-staged");
	}

	/* Memory rounds while the workload runs: only what changes after the
	 * last one travels while it is frozen. */
	if (mode == MODE_PRECOPY || mode == MODE_HYBRID) {
		/* a round may scan a large workload for longer than a lease
		 * without finding anything to send */
		keepalive_start(&ka, &p.conn, lease / 3);
		r = precopy_run(&p.conn, CHAN_PAGES, w.pid, &o->conv, &set, &zp, &pg, show, &st->pre, e);
		keepalive_stop(&ka);
		if (r < 0)
			goto fail;
		st->precopied = true;
		/* hybrid: the lazy pages the destination's store holds travel as
		 * references (the relay process learns which here) */
		if (mode == MODE_HYBRID && (r = postcopy_share_pages(&pc, &set, e)) < 0)
			goto fail;
		timeline_mark(&st->tl, "rounds");
	}

	/* Long local steps (hooks, freeze, dump): keep the agent's lease alive */
	keepalive_start(&ka, &p.conn, lease / 3);
	r = run_hook(o, HOOK_PRE_DUMP, &w, st, NULL, e);
	if (r < 0)
		goto fail;

	/* --- frozen from here until commit or rollback --- */
	journal_step(mig_dir, J_FROZEN, &w, o);
	struct freezing fz = { .c = c, .o = o, .drv = drv, .w = &w, .st = st, .net = net, .net_locked = &net_locked,
			       .mig_dir = mig_dir };
	/* The late freeze: CRIU calls back (an action script) when it is up and
	 * about to freeze the tasks itself; until then the workload runs on
	 * while runc and CRIU start (doc/design.md "Late freeze"). */
	struct criu_action act = { .req_fd = -1, .ans_fd = -1, .stop = { -1, -1 } };
	bool late = drv->late_freeze && !c->cfg.early_freeze;
	if (late) {
		r = criu_action_start(&act, work, "pre-dump", freeze_now, &fz, e);
		if (r < 0)
			goto fail;
		w.action_script = act.script;
	} else {
		r = freeze_now(&fz, e);
		if (r < 0)
			goto fail;
		timeline_mark(&st->tl, "freeze");
	}
	/* pre-copy: the root page image travels while CRIU writes it (engine/dumpsend.h) */
	char img_sent[32] = "";
	bool overlap = mode == MODE_PRECOPY && dump_and_send_usable(drv, o->hooks && o->hooks->cmd[HOOK_POST_DUMP]);
	if (postcopy)
		r = postcopy_dump(&pc, c, drv, &w, images, work, lease, e); /* everything but memory */
	else if (overlap)
		r = dump_and_send(c, drv, &w, images, work, &p.conn, CHAN_IMAGES, &set, &zp, &st->t_dumped, &st->img,
				  img_sent, sizeof(img_sent), e);
	else
		r = drv->dump(c, &w, images, work, e);
	if (late) {
		criu_action_stop(&act);
		w.action_script = NULL;
		r = late_freeze_outcome(&act, &w, st, c->cfg.name, r, e);
	}
	if (r < 0)
		goto fail;
	if (!overlap)
		st->t_dumped = now_ms();
	log_debug("dumped in %.0f ms", st->t_dumped - st->t_frozen);
	fault_point("after-dump");
	r = run_hook(o, HOOK_POST_DUMP, &w, st, NULL, e);
	if (r < 0)
		goto fail;
	keepalive_stop(&ka);
	timeline_mark(&st->tl, "dump");

	progress_begin(&pg, show, "images", dir_bytes(images));
	if (overlap)
		r = images_send_rest(&p.conn, CHAN_IMAGES, images, img_sent, &set, &zp, progress_cb, &pg, &st->img, e);
	else
		r = images_send(&p.conn, CHAN_IMAGES, images, p.peer_minor >= PROTO_MINOR_PAGES ? &set : NULL, &zp,
				progress_cb, &pg, &st->img, e);
	progress_end(&pg);
	st->z_batches = zp.batches;
	st->z_compressed = zp.compressed;
	if (r < 0)
		goto fail;
	st->image_bytes = st->img.bytes;
	st->files += st->img.files;
	timeline_mark(&st->tl, "images");

	if (w.kind == KIND_RUNC && !o->shared_storage) {
		r = rootfs_delta(&p.conn, CHAN_ROOTFS, w.rootfs, "rootfs", work, &rs, e);
		if (r < 0)
			goto fail;
		st->rootfs_bytes = rs.delta_bytes;
		st->rootfs_deleted = rs.deleted;
		st->files += rs.delta_files;
	}
	for (int i = 0; i < w.nvols; i++) {
		char prefix[32];
		if (w.vols[i].policy != VOL_COPY)
			continue;
		snprintf(prefix, sizeof(prefix), "volumes/%d", i);
		r = rootfs_delta(&p.conn, CHAN_ROOTFS, w.vols[i].source, prefix, work, &vrs[i], e);
		if (r < 0)
			goto fail;
		st->volume_bytes += vrs[i].delta_bytes;
		st->files += vrs[i].delta_files;
	}
	if (w.monitor_pid > 0) {
		r = send_log(c, &p, &w, mig_dir, log_sent, st, e);
		if (r < 0)
			goto fail;
	}
	st->t_transferred = now_ms();
	if (w.kind == KIND_RUNC || w.monitor_pid > 0)
		timeline_mark(&st->tl, "rootfs-delta");

	keepalive_start(&ka, &p.conn, lease / 3);
	r = run_hook(o, HOOK_PRE_RESTORE, &w, st, NULL, e);
	keepalive_stop(&ka);
	if (r < 0)
		goto fail;
	/* The agent restores the workload stopped: it does not run until COMMIT. */
	fault_point("before-restore");
	r = send_restore(&p, &w, lease, o->shared_storage, images, postcopy ? pc.dest_port : 0, staged, st, e);
	if (r < 0)
		goto fail;
	st->t_restored = now_ms();
	timeline_mark(&st->tl, "restore");
	log_debug("restored (stopped) on %s as pid %d after %.0f ms frozen", p.name, st->dest_pid,
		  st->t_restored - st->t_frozen);
	fault_point("after-restored");

	/* Commit: the destination lets its copy run, then the source copy goes.
	 * The agent waits one lease for COMMIT and then rolls back on its own;
	 * commit only well inside that window. */
	if (now_ms() - st->t_restored > lease / 2.0) {
		r = error_set(e, ETIMEDOUT, "too late to commit: the destination's lease (%u ms) is about to expire", lease);
		goto fail;
	}
	journal_step(mig_dir, J_COMMITTING, &w, o);
	r = proto_send_msg(&p.conn, MSG_COMMIT, NULL, e);
	if (r >= 0) {
		committed = true;
		fault_point("after-commit-sent");
		r = proto_recv_msg(&p.conn, MSG_DONE, &m, e);
	}
	if (r >= 0) {
		st->t_running = now_ms();
		timeline_mark(&st->tl, "commit");
		if (msg_has(&m, A_BYTES))
			st->agent_peak_rss_kib = m.num[A_BYTES] / 1024;
		if (msg_has(&m, A_CRIU_US))
			st->criu_restore_ms = (double)m.num[A_CRIU_US] / 1000.0;
		if (msg_has(&m, A_MESSAGE)) /* e.g. the network after the commit: the migration stands */
			log_warn("on %s: %s", p.name, m.str[A_MESSAGE]);
	}
	if (r < 0 && committed) {
		/* COMMIT went out, DONE did not come back: the destination decided
		 * when COMMIT reached it (or did not).  Ask it over a new connection. */
		struct error qe = { 0 };
		int oc;
		log_warn("%s (after COMMIT); asking %s what became of the migration", e->msg, p.name);
		peer_close(&p);
		connected = false;
		oc = handoff_query(o->rsh, o->to, o->remote_cmt, c->cfg.name, st->migration_id, lease, &qe);
		if (oc == OUTCOME_COMMITTED && postcopy) {
			st->t_running = now_ms();
			error_set(e, EIO, "%s confirms the commit, but the connection that would say when the last page of %s "
				  "arrived is lost", p.name, w.label);
			goto postcopy_unconfirmed;
		} else if (oc == OUTCOME_COMMITTED) {
			log_info("%s confirms the commit", p.name);
			st->t_running = now_ms(); /* at the latest */
			error_clear(e);
			r = 0;
			memset(&m, 0, sizeof(m));
		} else if (oc == OUTCOME_ABORTED) {
			error_wrap(e, "%s did not take the commit (it rolled back: %s)", p.name, "its lease had expired or it "
				   "failed");
			committed = false;
			goto fail;
		} else {
			st->in_doubt = true;
			error_wrap(e, "the commit was sent to %s but not acknowledged, and %s cannot tell (%s)", p.name, p.name,
				   oc < 0 ? qe.msg : outcome_name(oc));
			error_hint(e, "%s is left frozen on %s (never two running copies); run `cmt recover` on %s: it asks %s "
				      "again and then removes or resumes the frozen copy",
				   w.label, c->cfg.name, c->cfg.name, p.name);
			goto out;
		}
	} else if (r < 0) {
		goto fail;
	}
	msg_free(&m);
	if (postcopy) {
		/* It runs there; its pages keep coming from the frozen copy here,
		 * which may go only once every one of them has arrived. */
		r = postcopy_finish(&pc, &p.conn, lease, p.name, e);
		st->lazy_bytes = pc.lazy_bytes;
		st->lazy_wire_bytes = pc.lazy_wire_bytes ? pc.lazy_wire_bytes : pc.lazy_bytes;
		st->lazy_pages_raw = pc.pages.raw;
		st->lazy_pages_store = pc.pages.copied;
		st->lazy_pages_zero = pc.pages.zero;
		st->postcopy_ms = pc.postcopy_ms;
		if (r < 0)
			goto postcopy_unconfirmed;
		st->t_lazy_done = now_ms();
		timeline_mark(&st->tl, "postcopy");
	}
	st->bytes_sent = p.conn.bytes_out + st->lazy_wire_bytes;
	fault_point("before-destroy");
	/* (a `cmt run` container: the driver also releases its monitor here
	 * and removes the log, which goes on on the destination) */
	snprintf(w.moved_to, sizeof(w.moved_to), "%s", p.name);
	r = drv->destroy(c, &w, e);
	if (r < 0) {
		error_wrap(e, "%s runs on %s, but removing the frozen source copy failed", w.label, p.name);
		goto out;
	}
	if (net) {
		/* the source's namespace (and its host-side interfaces) go too */
		struct error ne = { 0 };
		if (net_remove_ns(net->path, net, &ne) < 0)
			log_warn("cannot remove the network namespace %s of the moved container: %s", net->path, ne.msg);
		net_locked = false;
	}
	timeline_mark(&st->tl, "destroy");
	{
		/* CRIU's own share of the dump, before its log goes */
		char lp[PATH_MAX + 32];
		snprintf(lp, sizeof(lp), "%s/dump.log", work);
		if (criu_log_own_ms_file(lp, CRIU_LOG_DUMP, late, &st->criu_dump_ms) < 0)
			st->criu_dump_ms = 0;
	}
	{
		struct error tmp = { 0 };
		mem_dir_drop(images);
		rm_rf(mig_dir, &tmp);
	}
	st->result = "ok";
	st->t_end = now_ms();
	timeline_mark(&st->tl, "cleanup");
	peer_close(&p);
	{
		/* the migration stands whatever this hook says */
		struct error he = { 0 };
		if (run_hook(o, HOOK_POST_RESTORE, &w, st, NULL, &he) < 0)
			log_warn("%s (the migration itself succeeded)", he.msg);
	}
	lock_release(lock);
	workload_free(&w);
	pageset_free(&set);
	rootfs_sync_free(&rs);
	for (int i = 0; i < VOL_MAX; i++)
		rootfs_sync_free(&vrs[i]);
	free(net);
	return 0;

postcopy_unconfirmed:
	/* Committed, resumed there, and the pages may still be needed: the relay
	 * ends by itself when the transfer does (or its connection dies).  The
	 * frozen copy here is the workload as it was at the freeze: never resumed
	 * by cmt (the destination's copy ran), never removed without proof that
	 * every page arrived. */
	postcopy_drain(&pc);
	st->post_failed = true;
	error_host(e, p.name);
	{
		char how[PATH_MAX + 64];
		if (w.kind == KIND_RUNC)
			snprintf(how, sizeof(how), "`runc resume %s`", w.id);
		else
			snprintf(how, sizeof(how), "`echo THAWED > %s/freezer.state`", w.freeze_cg);
		error_hint(e, "post-copy's one unrecoverable case: if %s keeps working on %s, run `cmt recover` on %s (it "
			      "confirms the commit and removes the frozen copy); if it broke there (pages lost), remove it "
			      "there and resume the frozen copy here (%s): it is the state of the freeze",
			   w.label, p.name, c->cfg.name, how);
	}
	goto out;
fail:
	keepalive_stop(&ka);
	/* the relay and the page server end first; the tasks stay frozen, intact */
	postcopy_stop(&pc);
	st->bytes_sent = p.conn.bytes_out;
	abort_migration(c, drv, &w, &p, connected && e->code != ECONNRESET && e->code != EPIPE, st, e);
	{
		/* keep the logs of a failed dump, drop the images (and the link to
		 * the container's log, which its monitor goes on writing) */
		struct error tmp = { 0 };
		char ld[PATH_MAX + 16];
		mem_dir_drop(images);
		snprintf(ld, sizeof(ld), "%s/log", mig_dir);
		rm_rf(ld, &tmp);
		snprintf(ld, sizeof(ld), "%s/log-pre", mig_dir);
		rm_rf(ld, &tmp);
	}
	if (net_locked && !w.frozen) {
		/* running again: let it talk, and take its address back from the
		 * destination in case that one was heard already */
		struct error ne = { 0 };
		if (net_unlock(net->path, &ne) < 0 || net_announce(net, &ne) < 0)
			log_warn("%s: %s", w.label, ne.msg);
		net_locked = false;
	}
	if (st->source_thawed)
		log_info("%s keeps running on %s", w.label, c->cfg.name);
	if (!w.frozen)
		journal_done(mig_dir); /* rolled back: nothing left to recover */
	if (started) {
		struct error he = { 0 };
		if (run_hook(o, HOOK_FAILED_RESTORE, &w, st, e->msg, &he) < 0)
			log_warn("%s", he.msg);
	}
	goto out;
fail_nohook:
	st->bytes_sent = p.conn.bytes_out;
	abort_migration(c, drv, &w, &p, true, st, e);
	{
		struct error tmp = { 0 };
		mem_dir_drop(images);
		rm_rf(mig_dir, &tmp); /* nothing happened yet: nothing to keep */
	}
out:
	keepalive_stop(&ka);
	postcopy_stop(&pc);
	st->bytes_sent = p.conn.bytes_out + st->lazy_wire_bytes;
	if (connected)
		peer_close(&p);
fail_early:
	st->t_end = now_ms();
	/* Still running here unless it was never found, is left frozen (resume
	 * failed), or the outcome is in doubt after a commit. */
	st->source_running = inspected && !w.frozen && !st->in_doubt && !st->post_failed;
	lock_release(lock);
	free(net);
	workload_free(&w);
	pageset_free(&set);
	rootfs_sync_free(&rs);
	for (int i = 0; i < VOL_MAX; i++)
		rootfs_sync_free(&vrs[i]);
	return -e->code;
}

static double span(double a, double b)
{
	return a > 0 && b > 0 ? b - a : 0;
}

char *migrate_stats_json(const struct migrate_stats *st, const struct error *e)
{
	json_t *j = json_object();
	char *s;

	json_object_set_new(j, "result", json_string(st->result));
	json_object_set_new(j, "mode", json_string(st->mode));
	json_object_set_new(j, "workload", json_string(st->workload));
	json_object_set_new(j, "source", json_string(st->source));
	json_object_set_new(j, "destination", json_string(st->destination));
	json_object_set_new(j, "migration_id", json_string(st->migration_id));
	/* downtime: frozen here until it runs there (resumed on COMMIT) */
	json_object_set_new(j, "downtime_ms", json_real(span(st->t_frozen, st->t_running)));
	json_object_set_new(j, "frozen_ms", json_real(span(st->t_frozen, st->t_running)));
	json_object_set_new(j, "dump_ms", json_real(span(st->t_frozen, st->t_dumped)));
	json_object_set_new(j, "transfer_ms", json_real(span(st->t_dumped, st->t_transferred)));
	json_object_set_new(j, "restore_ms", json_real(span(st->t_transferred, st->t_restored)));
	json_object_set_new(j, "commit_ms", json_real(span(st->t_restored, st->t_running)));
	/* CRIU's own part of dump_ms and restore_ms (its logs): the rest is cmt's and runc's */
	if (st->criu_dump_ms > 0)
		json_object_set_new(j, "criu_dump_ms", json_real(st->criu_dump_ms));
	if (st->criu_restore_ms > 0)
		json_object_set_new(j, "criu_restore_ms", json_real(st->criu_restore_ms));
	json_object_set_new(j, "total_ms", json_real(span(st->t_start, st->t_end)));
	if (st->postcopy) {
		/* resumed there until the last page arrived; what came lazily */
		json_object_set_new(j, "postcopy_ms", json_real(st->postcopy_ms));
		json_object_set_new(j, "lazy_bytes", json_integer((json_int_t)st->lazy_bytes));
		json_object_set_new(j, "lazy_wire_bytes", json_integer((json_int_t)st->lazy_wire_bytes));
		json_object_set_new(j, "lazy_pages_sent", json_integer((json_int_t)st->lazy_pages_raw));
		json_object_set_new(j, "lazy_pages_from_store", json_integer((json_int_t)st->lazy_pages_store));
		json_object_set_new(j, "lazy_pages_zero", json_integer((json_int_t)st->lazy_pages_zero));
	}
	{
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			json_object_set_new(j, "cmt_peak_rss_kib", json_integer((json_int_t)ru.ru_maxrss));
		if (st->agent_peak_rss_kib)
			json_object_set_new(j, "agent_peak_rss_kib", json_integer((json_int_t)st->agent_peak_rss_kib));
	}
	json_object_set_new(j, "bytes_sent", json_integer((json_int_t)st->bytes_sent));
	json_object_set_new(j, "image_bytes", json_integer((json_int_t)st->image_bytes));
	json_object_set_new(j, "rootfs_bytes", json_integer((json_int_t)st->rootfs_bytes));
	json_object_set_new(j, "rootfs_precopy_bytes", json_integer((json_int_t)st->rootfs_precopy_bytes));
	json_object_set_new(j, "rootfs_deleted", json_integer((json_int_t)st->rootfs_deleted));
	json_object_set_new(j, "volume_precopy_bytes", json_integer((json_int_t)st->volume_precopy_bytes));
	json_object_set_new(j, "volume_bytes", json_integer((json_int_t)st->volume_bytes));
	json_object_set_new(j, "files", json_integer((json_int_t)st->files));
	if (st->mode_reason[0])
		json_object_set_new(j, "mode_reason", json_string(st->mode_reason));
	{
		json_t *rounds = json_array();
		for (unsigned i = 0; st->precopied && i < st->pre.n; i++) {
			const struct precopy_round *rd = &st->pre.r[i];
			json_t *o = json_object();
			json_object_set_new(o, "round", json_integer(i + 1));
			json_object_set_new(o, "pages_scanned", json_integer((json_int_t)rd->scanned));
			json_object_set_new(o, "pages_sent", json_integer((json_int_t)rd->sent));
			json_object_set_new(o, "pages_unchanged", json_integer((json_int_t)rd->unchanged));
			json_object_set_new(o, "pages_zero", json_integer((json_int_t)rd->zero));
			json_object_set_new(o, "bytes", json_integer((json_int_t)rd->wire_bytes));
			json_object_set_new(o, "duration_ms", json_real(rd->ms));
			json_object_set_new(o, "dirty_mib_s", json_real(rd->dirty_bps / 1048576.0));
			json_array_append_new(rounds, o);
		}
		json_object_set_new(j, "rounds", json_integer(st->precopied ? st->pre.n : 0));
		json_object_set_new(j, "round_stats", rounds);
		if (st->precopied) {
			json_object_set_new(j, "stop_reason", json_string(conv_name(st->pre.stop)));
			json_object_set_new(j, "stop_detail", json_string(st->pre.why));
			json_object_set_new(j, "precopy_bytes", json_integer((json_int_t)st->pre.wire_bytes));
		}
	}
	json_object_set_new(j, "pages_final", json_integer((json_int_t)st->img.pages));
	json_object_set_new(j, "pages_final_sent", json_integer((json_int_t)st->img.pages_raw));
	json_object_set_new(j, "pages_final_from_store", json_integer((json_int_t)st->img.pages_copied));
	json_object_set_new(j, "pages_final_zero", json_integer((json_int_t)st->img.pages_zero));
	json_object_set_new(j, "compressed_batches", json_integer((json_int_t)st->z_compressed));
	json_object_set_new(j, "batches", json_integer((json_int_t)st->z_batches));
	json_object_set_new(j, "log_bytes", json_integer((json_int_t)st->log_bytes));
	json_object_set_new(j, "log_precopy_bytes", json_integer((json_int_t)st->log_precopy_bytes));
	if (st->dest_pid)
		json_object_set_new(j, "destination_pid", json_integer(st->dest_pid));
	if (st->netns[0]) {
		json_object_set_new(j, "netns", json_string(st->netns));
		json_object_set_new(j, "netns_existed", json_boolean(st->netns_existed));
	}
	if (st->checked)
		checks_to_json(&st->checks, j);
	timeline_to_json(&st->tl, j);
	if (e && e->code) {
		json_object_set_new(j, "error", json_string(e->msg));
		if (e->host[0])
			json_object_set_new(j, "error_host", json_string(e->host));
		if (e->hint[0])
			json_object_set_new(j, "hint", json_string(e->hint));
		json_object_set_new(j, "source_running", json_boolean(st->source_running));
		json_object_set_new(j, "in_doubt", json_boolean(st->in_doubt));
	}
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s;
}

static const char *human_bytes(uint64_t b, char *buf, size_t n)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.2f GiB", (double)b / (1ull << 30));
	else if (b >= (1ull << 20))
		snprintf(buf, n, "%.1f MiB", (double)b / (1ull << 20));
	else
		snprintf(buf, n, "%.1f KiB", (double)b / 1024);
	return buf;
}

/* " (CRIU N)" after a step's figure when CRIU's own part of it is known */
static const char *criu_part(double ms, char *buf, size_t n)
{
	if (ms > 0)
		snprintf(buf, n, " (CRIU %.0f)", ms);
	else
		buf[0] = '\0';
	return buf;
}

void migrate_stats_print(const struct migrate_stats *st)
{
	char b1[32], b2[32], b3[32], b4[32], cd[32], cr[32];
	double xfer = span(st->t_dumped, st->t_transferred);

	if (log_verbosity < 0)
		return;
	fprintf(stderr,
		"cmt: %s moved to %s in %.0f ms (%s mode)\n"
		"     downtime %.0f ms: dump %.0f ms%s, transfer %.0f ms, restore %.0f ms%s, commit %.0f ms\n"
		"     sent %s in all; while frozen: images %s and root filesystem changes %s at %.0f MiB/s; "
		"root filesystem pre-copied while running: %s\n",
		st->workload, st->destination, span(st->t_start, st->t_end), st->mode,
		span(st->t_frozen, st->t_running), span(st->t_frozen, st->t_dumped), criu_part(st->criu_dump_ms, cd, sizeof(cd)),
		xfer, span(st->t_transferred, st->t_restored), criu_part(st->criu_restore_ms, cr, sizeof(cr)),
		span(st->t_restored, st->t_running),
		human_bytes(st->bytes_sent, b1, sizeof(b1)), human_bytes(st->image_bytes, b2, sizeof(b2)),
		human_bytes(st->rootfs_bytes, b3, sizeof(b3)),
		xfer > 0 ? (double)(st->image_bytes + st->rootfs_bytes) / (1 << 20) / (xfer / 1000) : 0,
		human_bytes(st->rootfs_precopy_bytes, b4, sizeof(b4)));
	if (st->netns[0])
		fprintf(stderr, "     network namespace %s: %s on %s, its addresses announced there\n", st->netns,
			st->netns_existed ? "the one already there was used" : "recreated", st->destination);
}
