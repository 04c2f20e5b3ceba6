#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/lazy.h"
#include "agent/pagestore.h"
#include "criu/logtime.h"
#include "drivers/driver.h"
#include "drivers/ocispec.h"
#include "engine/facts.h"
#include "engine/handoff.h"
#include "engine/journal.h"
#include "engine/migrate.h"
#include "engine/modes.h"
#include "engine/net.h"
#include "engine/rootfs.h"
#include "engine/volumes.h"
#include "monitor/monitor.h"
#include "transport/proto.h"
#include "transport/rsh.h"
#include "transport/tree.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/lock.h"
#include "util/log.h"

#define AGENT_IDLE_MS (5 * 60 * 1000)

struct session {
	struct ctx *c;
	struct proto_conn conn;
	const struct driver *drv;
	bool prepared, restored, committed;
	bool postcopy;            /* PREPARE's mode: memory follows the restore (agent/lazy.c) */
	int lazy_port;            /* the relay port the lazy-pages daemon was started with early, or 0 */
	uint32_t lease_ms;        /* how long this side waits for the source (PREPARE) */
	bool deletions_pending;   /* an AREA_DELETED list waits for the next bundle stream */
	int lock;                 /* held on the incoming workload's ID */
	char mig_id[80];
	char mig_dir[PATH_MAX];
	struct restore_req rq;
	struct pagestore ps;      /* pre-copied pages (precopy mode) */
	/* a monitored container (`cmt run` on the source): its log came in an
	 * AREA_LOG stream; after the restore a monitor here owns its pipes */
	bool log_received, log_placed;
	char log_error[512];      /* a log stream that could not be used: RESTORE fails with this */
	pid_t monitor_pid;
	bool net;                 /* NET_SETUP done: ns is this migration's network namespace */
	struct net_state ns;
	double criu_restore_ms;   /* CRIU's own time in the restore (criu/logtime.h), 0 = not known */
	bool staged;              /* RESTORE_STAGED: the driver's restore waits at its gate for RESTORE_GO */
	int restore_port;         /* a lazy RESTORE's relay port */
};

static bool container_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 255 || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return false;
	return true;
}

static int reply_error(struct session *s, struct error *e)
{
	error_host(e, s->c->cfg.name);
	log_debug("agent: %s", e->msg);
	return proto_send_error(&s->conn, e, s->c->cfg.name);
}

static void dest_journal(struct session *s, enum journal_state st)
{
	struct journal j = { .state = st, .kind = s->drv->kind };
	struct error e = { 0 };

	snprintf(j.workload, sizeof(j.workload), "%s", s->rq.id);
	snprintf(j.peer, sizeof(j.peer), "%s", s->conn.peer);
	snprintf(j.bundle, sizeof(j.bundle), "%s", s->rq.bundle);
	if (journal_write(s->mig_dir, &j, &e) < 0)
		log_warn("cannot write the migration journal: %s", e.msg);
}

/* Undo everything this session did on this host. */
static void rollback(struct session *s)
{
	struct error tmp = { 0 };

	if (!s->prepared)
		return;
	lazy_daemon_kill(&s->rq);
	if (s->monitor_pid > 0) {
		/* its copy never ran: it wrote nothing; it goes, and the log it got */
		kill(s->monitor_pid, SIGTERM);
		double t0 = now_ms();
		while (waitpid(s->monitor_pid, NULL, WNOHANG) == 0) {
			if (now_ms() - t0 > 2000) { /* stopped or stuck */
				kill(s->monitor_pid, SIGKILL);
				waitpid(s->monitor_pid, NULL, 0);
				char p[PATH_MAX];
				monitor_path(s->c->cfg.root, s->rq.id, "sock", p, sizeof(p));
				unlink(p);
				monitor_path(s->c->cfg.root, s->rq.id, "pid", p, sizeof(p));
				unlink(p);
				break;
			}
			poll(NULL, 0, 10);
		}
		s->monitor_pid = 0;
	}
	if (s->log_placed) {
		char lp[PATH_MAX];
		monitor_path(s->c->cfg.root, s->rq.id, "log", lp, sizeof(lp));
		unlink(lp);
		s->log_placed = false;
	}
	if (s->rq.staged_pid > 0 && s->drv->restore_cancel)
		s->drv->restore_cancel(s->c, &s->rq); /* runc gives up before CRIU ran */
	s->staged = false;
	if (s->restored || s->rq.bundle[0])
		s->drv->undo_restore(s->c, &s->rq, &tmp);
	error_clear(&tmp);
	/* the network namespace after the container: nothing holds it then */
	if (s->net)
		net_rollback(&s->c->cfg, &s->ns, s->rq.id);
	s->net = false;
	/* what a source that lost our answer will be told (QUERY) */
	if (outcome_write(s->c->cfg.root, s->mig_id, OUTCOME_ABORTED, &tmp) < 0)
		log_warn("cannot record the outcome of migration %s: %s", s->mig_id, tmp.msg);
	error_clear(&tmp);
	/* the images and pre-copied pages go; the logs stay for the post-mortem */
	mem_dir_drop(s->rq.images_dir);
	pagestore_close(&s->ps);
	{
		char jp[PATH_MAX + 16];
		snprintf(jp, sizeof(jp), "%s/journal", s->mig_dir);
		unlink(jp);
	}
	s->prepared = s->restored = false;
}

static void finish(struct session *s)
{
	struct error tmp = { 0 };

	pagestore_close(&s->ps);
	mem_dir_drop(s->rq.images_dir);
	rm_rf(s->mig_dir, &tmp);
	s->prepared = false;
}

static int on_prepare(struct session *s, struct msg *m, struct error *e)
{
	const char *id = m->str[A_MIGRATION_ID], *wl = m->str[A_WORKLOAD];
	int r;

	if (s->prepared)
		return error_set(e, EPROTO, "protocol error: a second PREPARE in one session");
	if (!migration_id_valid(id))
		return error_set(e, EINVAL, "invalid migration ID '%s'", id);
	s->drv = driver_for((enum workload_kind)m->num[A_KIND]);
	if (!s->drv)
		return error_set(e, EINVAL, "unknown workload kind %u", (unsigned)m->num[A_KIND]);
	enum mig_mode mode;
	if (mode_parse(m->str[A_MODE], &mode) < 0 || !mode_agent_supports(mode))
		return error_set(e, ENOTSUP, "migration mode '%s' is not supported by this agent (cmt %s)", m->str[A_MODE],
				 CMT_VERSION);
	/* a container ID, or a pid: either way a safe file name */
	if (!container_id_valid(wl))
		return error_set(e, EINVAL, "invalid workload name '%s'", wl);
	r = ctx_need_criu(s->c, e);
	if (r < 0)
		return r;
	r = ctx_criu_check(s->c, e);
	if (r < 0)
		return r;
	/* One incoming migration per workload name; the lock also tells
	 * `cmt recover` on this host that this migration is alive. */
	char ln[300];
	snprintf(ln, sizeof(ln), "incoming-%s", wl);
	s->lock = lock_take(s->c->cfg.root, ln, s->drv->kind == KIND_RUNC ? "a container with this ID into this host"
									    : "a process tree with this PID into this host",
			    e);
	if (s->lock < 0)
		return s->lock;
	if (s->drv->kind == KIND_RUNC) {
		r = ctx_need_runc(s->c, e);
		if (r < 0)
			return r;
		if (s->drv->exists(s->c, wl)) {
			error_set(e, EEXIST, "a container named '%s' already exists here", wl);
			error_hint(e, "remove it on the destination (runc delete) or migrate to another host");
			return -EEXIST;
		}
	}
	snprintf(s->mig_id, sizeof(s->mig_id), "%s", id);
	snprintf(s->mig_dir, sizeof(s->mig_dir), "%s/migrations/%s", s->c->cfg.root, id);
	/* From now on every wait for the source is bounded by the lease: a
	 * source that goes silent loses the migration, and this side rolls
	 * back on its own (its copy never ran: it is restored stopped). */
	s->lease_ms = handoff_lease_clamp(msg_has(m, A_LEASE_MS) ? m->num[A_LEASE_MS] : 0);
	s->conn.timeout_ms = (int)s->lease_ms;
	memset(&s->rq, 0, sizeof(s->rq));
	s->postcopy = mode_is_postcopy(mode);
	s->rq.kind = s->drv->kind;
	s->rq.host = s->c->cfg.name;
	snprintf(s->rq.id, sizeof(s->rq.id), "%s", wl);
	snprintf(s->rq.images_dir, sizeof(s->rq.images_dir), "%s/images", s->mig_dir);
	snprintf(s->rq.work_dir, sizeof(s->rq.work_dir), "%s/work", s->mig_dir);
	if ((r = mkdir_p(s->rq.work_dir, 0700, e)) < 0 || (r = mem_dir_make(s->rq.images_dir, s->c->cfg.images_tmpfs, e)) < 0)
		return r;
	{
		char sp[PATH_MAX + 16];
		snprintf(sp, sizeof(sp), "%s/pagestore", s->mig_dir);
		pagestore_init(&s->ps, sp, s->rq.images_dir);
	}
	if (s->drv->kind == KIND_RUNC) {
		snprintf(s->rq.bundle, sizeof(s->rq.bundle), "%s/bundles/%s", s->c->cfg.root, wl);
		if (path_exists(s->rq.bundle)) {
			/* a leftover of an earlier failed run, not a registered container */
			r = rm_rf(s->rq.bundle, e);
			if (r < 0)
				return r;
		}
		if ((r = mkdir_p(s->rq.bundle, 0711, e)) < 0)
			return r;
	}
	s->prepared = true;
	dest_journal(s, J_DEST_PREPARED);
	r = proto_send_msg(&s->conn, MSG_READY, NULL, e);
	fault_point("after-prepare");
	return r;
}

/* Reads a stream to its end, discarding it; returns its byte count or
 * negative when the connection fails or something else arrives. */
static int64_t drain_stream(struct session *s, const struct frame *begin, struct error *e)
{
	uint64_t bytes = 0;
	struct frame f;
	int r;

	for (;;) {
		r = proto_recv(&s->conn, &f, e);
		if (r < 0)
			return r;
		if (f.type == MSG_ABORT)
			return error_set(e, ECANCELED, "%s aborted the transfer", s->conn.peer);
		if (f.chan != begin->chan)
			return error_set(e, EPROTO, "protocol error: frame for channel %u inside stream %u", f.chan,
					 begin->chan);
		if (f.type == MSG_DATA) {
			bytes += f.len;
			continue;
		}
		if (f.type == MSG_STREAM_END)
			return (int64_t)bytes;
		return error_set(e, EPROTO, "protocol error: %s inside a stream", msg_type_name(f.type));
	}
}

/* A bandwidth probe: count and discard, then acknowledge. */
static int probe_recv(struct session *s, const struct frame *begin, struct error *e)
{
	int64_t bytes = drain_stream(s, begin, e);
	struct mbuf mb;
	int r;

	if (bytes < 0)
		return (int)bytes;
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, (uint64_t)bytes);
	r = proto_send_msg(&s->conn, MSG_STREAM_OK, &mb, e);
	mb_free(&mb);
	return r;
}

/* The deletion list received in an AREA_DELETED stream, applied to the bundle. */
static int apply_deletions(struct session *s, const char *dir, struct error *e)
{
	char path[PATH_MAX + 48];
	_cleanup_free_ char *list = NULL;
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "%s/deleted", dir);
	r = read_file(path, ROOTFS_DELETED_MAX, &list, &len, e);
	if (r == 0)
		r = rootfs_apply_deletions(s->rq.bundle, list, len, e);
	{
		struct error tmp = { 0 };
		rm_rf(dir, &tmp);
	}
	if (r < 0) {
		error_wrap(e, "applying the root filesystem's deletions");
		error_host(e, s->c->cfg.name);
	}
	return r;
}

/* Appends the file 'from' to the file 'to'. */
static int append_file(const char *from, const char *to, struct error *e)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
	char buf[65536];

	if (in < 0)
		return error_errno(e, errno, "cannot open %s", from);
	out = open(to, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (out < 0) {
		r = error_errno(e, errno, "cannot open %s", to);
		close(in);
		return r;
	}
	for (;;) {
		ssize_t k = read(in, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				r = error_errno(e, errno, "cannot read %s", from);
			break;
		}
		for (ssize_t off = 0; off < k;) {
			ssize_t w = write(out, buf + off, (size_t)(k - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				r = error_errno(e, errno, "cannot write %s", to);
				goto done;
			}
			off += w;
		}
	}
done:
	close(in);
	close(out);
	return r;
}

/* A log stream (area 112) carries ID.log (the log up to now: the pre-copy
 * while the container runs, or all of it) or ID.log.tail (what the log
 * grew by until the drain, appended to the ID.log received before).  What
 * cannot be used makes the RESTORE fail, with why. */
static void take_log(struct session *s, const char *in, const char *dir)
{
	char whole[PATH_MAX * 2], tail[PATH_MAX * 2], to[PATH_MAX * 2];
	struct error e = { 0 };
	struct stat sb;

	snprintf(whole, sizeof(whole), "%s/%s.log", in, s->rq.id);
	snprintf(tail, sizeof(tail), "%s/%s.log.tail", in, s->rq.id);
	snprintf(to, sizeof(to), "%s/%s.log", dir, s->rq.id);
	if (lstat(whole, &sb) == 0 && S_ISREG(sb.st_mode)) {
		if (rename(whole, to) < 0)
			error_errno(&e, errno, "cannot keep the log of container %s", s->rq.id);
	} else if (lstat(tail, &sb) == 0 && S_ISREG(sb.st_mode)) {
		if (!path_exists(to))
			error_set(&e, EPROTO, "protocol error: the end of the log of container %s came without its beginning",
				  s->rq.id);
		else
			append_file(tail, to, &e);
	} else {
		error_set(&e, EPROTO, "protocol error: a log stream of container %s without %s.log or %s.log.tail",
			  s->rq.id, s->rq.id, s->rq.id);
	}
	if (e.code && !s->log_error[0])
		snprintf(s->log_error, sizeof(s->log_error), "%s", e.msg);
	s->log_received = true;
	rm_rf(in, &e);
}

static int on_stream(struct session *s, const struct frame *f, struct error *e, bool *reported)
{
	struct msg m;
	struct tree_stats ts;
	const char *dest;
	int r;

	*reported = false;
	r = msg_decode(f->type, f->data, f->len, &m, e);
	if (r < 0)
		return r;
	uint32_t area = (uint32_t)m.num[A_AREA];
	char name[256] = "";
	if (msg_has(&m, A_NAME))
		snprintf(name, sizeof(name), "%s", m.str[A_NAME]);
	msg_free(&m);
	if (area == AREA_PROBE)
		return probe_recv(s, f, e);
	if (s->prepared && (area == AREA_PAGES || area == AREA_PAGE_IMAGE)) {
		if (area == AREA_PAGES) {
			r = pagestore_recv(&s->conn, f, &s->ps, reported, e);
			/* while the workload still runs; not in hybrid, whose page
			 * images hold only the few pages CRIU does not leave lazy (a
			 * spare as large as the store would only cost memory, and its
			 * release time while frozen) */
			if (r == 0 && !s->postcopy)
				pagestore_prealloc(&s->ps);
		} else if (!pageimage_name_valid(name)) {
			struct error de = { 0 };
			if (drain_stream(s, f, &de) == -ECANCELED)
				return -ECANCELED;
			return error_set(e, EINVAL, "invalid page image name '%s'", name);
		} else {
			fault_set_phase("frozen"); /* page images come once the workload is frozen */
			r = pageimage_recv(&s->conn, f, s->rq.images_dir, name, &s->ps, reported, e);
		}
		if (r < 0)
			error_host(e, s->c->cfg.name);
		return r;
	}
	char deleted_dir[PATH_MAX + 32];
	snprintf(deleted_dir, sizeof(deleted_dir), "%s/deleted-recv", s->rq.work_dir);
	char log_dir[PATH_MAX + 32], log_in[PATH_MAX + 32];
	snprintf(log_dir, sizeof(log_dir), "%s/log-recv", s->rq.work_dir);
	snprintf(log_in, sizeof(log_in), "%s/log-in", s->rq.work_dir);
	if (s->prepared && area == AREA_IMAGES) {
		dest = s->rq.images_dir;
		fault_set_phase("frozen"); /* the images come once the workload is frozen */
	} else if (s->prepared && area == AREA_BUNDLE && s->drv->kind == KIND_RUNC) {
		dest = s->rq.bundle;
		if (s->deletions_pending) {
			/* what was deleted since the pre-copy goes first (a path may
			 * come back as another type) */
			s->deletions_pending = false;
			r = apply_deletions(s, deleted_dir, e);
			if (r < 0) {
				struct error de = { 0 };
				if (drain_stream(s, f, &de) == -ECANCELED)
					return -ECANCELED;
				return r;
			}
		}
	} else if (s->prepared && area == AREA_LOG && s->drv->kind == KIND_RUNC) {
		struct error tmp = { 0 };
		rm_rf(log_in, &tmp);
		if (mkdir_p(log_in, 0700, &tmp) < 0 || mkdir_p(log_dir, 0700, &tmp) < 0) {
			struct error de = { 0 };
			if (drain_stream(s, f, &de) == -ECANCELED)
				return -ECANCELED;
			*e = tmp;
			return -e->code;
		}
		dest = log_in;
	} else if (s->prepared && area == AREA_DELETED && s->drv->kind == KIND_RUNC) {
		struct error tmp = { 0 };
		rm_rf(deleted_dir, &tmp);
		if (mkdir_p(deleted_dir, 0700, &tmp) < 0) {
			struct error de = { 0 };
			if (drain_stream(s, f, &de) == -ECANCELED)
				return -ECANCELED;
			*e = tmp;
			return -e->code;
		}
		dest = deleted_dir;
	} else {
		/* refused: read the stream to its end so the session stays in sync */
		struct error de = { 0 };
		int64_t k = drain_stream(s, f, &de);
		if (k == -ECANCELED)
			return -ECANCELED;
		if (!s->prepared)
			return error_set(e, EPROTO, "protocol error: a stream before PREPARE");
		return error_set(e, EPROTO, "protocol error: stream for unknown area %u", area);
	}
	r = tree_recv(&s->conn, f, dest, &ts, reported, e);
	if (r < 0)
		error_host(e, s->c->cfg.name);
	else if (area == AREA_DELETED)
		s->deletions_pending = true;
	else if (area == AREA_LOG)
		take_log(s, log_in, log_dir);
	else if (area == AREA_IMAGES && s->postcopy && s->rq.lazy_pid <= 0)
		/* the images are complete (page images come first): the daemon can
		 * load them while the rest arrives */
		s->lazy_port = lazy_daemon_start_early(s->c, &s->rq, s->mig_dir);
	return r;
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0) {
			close(p[i]);
			p[i] = -1;
		}
}

/* The received log goes to its place and a monitor takes the restored
 * container's pipes (the container is still stopped: it writes nothing
 * before COMMIT). */
static int adopt(struct session *s, int out_r, int err_r, struct error *e)
{
	char from[PATH_MAX * 2], to[PATH_MAX], dir[PATH_MAX + 16];
	int r;

	snprintf(from, sizeof(from), "%s/log-recv/%s.log", s->rq.work_dir, s->rq.id);
	monitor_path(s->c->cfg.root, s->rq.id, "log", to, sizeof(to));
	snprintf(dir, sizeof(dir), "%s/logs", s->c->cfg.root);
	if ((r = mkdir_p(dir, 0700, e)) < 0)
		return r;
	if (rename(from, to) < 0)
		return error_errno(e, errno, "cannot put the log of container %s at %s", s->rq.id, to);
	s->log_placed = true;
	r = monitor_spawn_adopt(s->c, s->rq.id, out_r, err_r, &s->monitor_pid, e);
	if (r < 0) {
		error_wrap(e, "container %s was restored, but its log monitor did not start", s->rq.id);
		error_host(e, s->c->cfg.name);
	}
	return r;
}

/* what `cmt recover` undoes (or finishes) after a crash of this agent */
static void save_net(struct session *s)
{
	struct error e = { 0 };

	if (net_state_save(s->mig_dir, &s->ns, &e) < 0)
		log_warn("cannot record the network state: %s", e.msg);
}

/* The container's network namespace, before anything is frozen: created
 * here (or found at its path), locked until COMMIT. */
static int on_net_setup(struct session *s, struct msg *m, struct error *e)
{
	struct net_desc d;
	struct mbuf mb;
	int r;

	if (!s->prepared || s->net || s->restored || s->drv->kind != KIND_RUNC)
		return error_set(e, EPROTO, "protocol error: NET_SETUP out of order");
	r = net_desc_from_json((const char *)m->bytes[A_NET_DESC], m->blen[A_NET_DESC], &d, e);
	if (r < 0)
		return r;
	r = net_prepare(&s->c->cfg, &d, s->mig_id, &s->ns, e);
	if (r < 0) {
		error_wrap(e, "cannot prepare the network namespace of container %s", s->rq.id);
		return r;
	}
	s->net = true;
	save_net(s);
	mb_init(&mb);
	mb_u32(&mb, A_FLAGS, s->ns.existed ? NET_EXISTED : 0);
	r = proto_send_msg(&s->conn, MSG_NET_READY, &mb, e);
	mb_free(&mb);
	return r;
}

/* RESTORE's request: its flags, and the container's config.json written
 * into the bundle (rewritten for this host). */
static int restore_prepare(struct session *s, struct msg *m, struct error *e)
{
	int r;

	s->rq.lazy = msg_has(m, A_FLAGS) && (m->num[A_FLAGS] & RESTORE_LAZY);
	s->rq.shell_job = msg_has(m, A_FLAGS) && (m->num[A_FLAGS] & RESTORE_SHELL_JOB);
	s->rq.tcp_established = msg_has(m, A_FLAGS) && (m->num[A_FLAGS] & RESTORE_TCP_ESTABLISHED);
	s->rq.timeout_ms = msg_has(m, A_DEADLINE_MS) && m->num[A_DEADLINE_MS] > 0 ? (unsigned)m->num[A_DEADLINE_MS] : 0;
	if (s->rq.lazy && (!s->postcopy || !msg_has(m, A_PORT) || m->num[A_PORT] == 0 || m->num[A_PORT] > 65535))
		return error_set(e, EPROTO, "protocol error: a lazy RESTORE needs mode postcopy and a relay port");
	s->restore_port = s->rq.lazy ? (int)m->num[A_PORT] : 0;
	if (!s->rq.lazy && s->postcopy)
		return error_set(e, EPROTO, "protocol error: a postcopy migration restores lazily");
	if (s->drv->kind == KIND_RUNC) {
		char *cfg = NULL, path[PATH_MAX + 16];
		if (!msg_has(m, A_CONFIG))
			return error_set(e, EPROTO, "protocol error: RESTORE of a container without its config");
		/* the attribute is bounded; make it a string */
		char *txt = strndup((const char *)m->bytes[A_CONFIG], m->blen[A_CONFIG]);
		if (!txt)
			return error_set(e, ENOMEM, "out of memory");
		bool hooks_removed = false;
		bool shared = msg_has(m, A_FLAGS) && (m->num[A_FLAGS] & RESTORE_SHARED_ROOTFS);
		r = oci_rewrite_for_restore(txt, s->c->cfg.cgroup_parent, s->rq.id, shared, &cfg, &hooks_removed, e);
		free(txt);
		if (r == 0) {
			/* copied and skipped volumes: inside the bundle received here */
			char *cfg2 = NULL;
			r = volumes_resolve_config(cfg, s->rq.bundle, &cfg2, e);
			free(cfg);
			cfg = cfg2;
		}
		if (r == 0) {
			/* a network namespace named by path is one NET_SETUP prepared:
			 * a peer cannot make the container join another one of this host */
			char np[256];
			int k = net_path_from_config(cfg, np, sizeof(np), e);
			if (k < 0)
				r = k;
			else if (k == NET_NS_PATH && (!s->net || strcmp(np, s->ns.d.path) != 0))
				r = error_set(e, EPERM, "config.json names the network namespace %s, which the source did not "
						  "describe (NET_SETUP)", np);
			/* CRIU's lock adds nothing to this agent's own lock of a
			 * namespace by path; a new one CRIU makes from the images
			 * is as closed as the source found it (only lo) */
			else if (k == NET_NS_PATH)
				s->rq.netlock_skip = net_criu_lock_redundant(k, s->ns.locked, 0);
			else if (k == NET_NS_PRIVATE)
				s->rq.netlock_skip = msg_has(m, A_FLAGS) && (m->num[A_FLAGS] & RESTORE_NETLOCK_SKIP);
		}
		if (r < 0) {
			free(cfg);
			return error_wrap(e, "cannot prepare config.json for %s", s->rq.id);
		}
		if (hooks_removed)
			log_warn("container %s: OCI hooks in the received config.json were removed (a peer's commands are "
				 "never run here)",
				 s->rq.id);
		snprintf(path, sizeof(path), "%s/config.json", s->rq.bundle);
		r = write_file_atomic(path, cfg, strlen(cfg), 0600, e);
		free(cfg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The restore (the staged one goes on), the network first; RESTORED with
 * the restored pid. */
static int restore_run(struct session *s, double t0, struct error *e)
{
	pid_t pid = 0;
	struct mbuf mb;
	int r;

	/* the page images are built: the store has served, and its memory
	 * (page cache) is better given to the restore, freed meanwhile by a
	 * thread (it takes tens of ms per GiB); in a hybrid migration the page
	 * relay still serves the lazy pages from it */
	if (!s->rq.lazy)
		pagestore_close_async(&s->ps);
	if (s->log_error[0])
		return error_set(e, EPROTO, "%s", s->log_error);
	if (s->net) {
		/* the source is frozen and its namespace locked: this one may be
		 * reachable now (it stays locked until COMMIT) */
		r = net_place(&s->c->cfg, &s->ns, s->rq.id, s->mig_dir, e);
		if (r < 0)
			return error_wrap(e, "cannot attach the network of container %s", s->rq.id);
	}
	dest_journal(s, J_DEST_RESTORED);
	fault_point("before-restore");
	int out[2] = { -1, -1 }, err[2] = { -1, -1 };
	if (s->rq.lazy && s->rq.lazy_pid > 0 && s->lazy_port != s->restore_port) {
		log_warn("the lazy-pages daemon was started for port %d, RESTORE says %d: starting it again", s->lazy_port,
			 s->restore_port);
		lazy_daemon_kill(&s->rq);
	}
	if (s->rq.lazy) {
		/* the daemon first: the restore hands it the tasks' memory (one
		 * started early has loaded the images meanwhile) */
		r = s->rq.lazy_pid > 0 ? lazy_daemon_ready(&s->rq, e)
				       : lazy_daemon_start(s->c, &s->rq, s->restore_port, e);
		if (r < 0)
			return r;
		log_debug("agent: lazy-pages daemon ready after %.0f ms", now_ms() - t0);
	}
	if (s->log_received) {
		/* runc gives these pipes to the restored container as its stdout
		 * and stderr (its own stdio replaces each pipe:[...] descriptor) */
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
			r = error_errno(e, errno, "pipe");
			close_pair(out);
			return r;
		}
		s->rq.stdio_pipes = true;
		s->rq.stdio_fds[0] = out[1];
		s->rq.stdio_fds[1] = err[1];
	}
	if (s->staged) {
		/* CRIU's restore alone: runc has started while the workload ran */
		s->staged = false;
		r = s->drv->restore_go(s->c, &s->rq, &pid, e);
	} else {
		r = s->drv->restore(s->c, &s->rq, &pid, e);
	}
	if (s->log_received) {
		close(out[1]);
		close(err[1]);
		out[1] = err[1] = -1;
		s->rq.stdio_pipes = false;
	}
	if (r == 0)
		s->restored = true;
	if (r == 0 && s->log_received)
		r = adopt(s, out[0], err[0], e);
	close_pair(out);
	close_pair(err);
	if (r < 0) {
		lazy_daemon_kill(&s->rq);
		return r;
	}
	fault_point("after-restore");
	mb_init(&mb);
	mb_u32(&mb, A_PID, (uint32_t)pid);
	if (s->net)
		mb_u32(&mb, A_FLAGS, s->ns.existed ? NET_EXISTED : 0);
	mb_u64(&mb, A_DURATION_US, (uint64_t)((now_ms() - t0) * 1000));
	r = proto_send_msg(&s->conn, MSG_RESTORED, &mb, e);
	mb_free(&mb);
	/* read while the source decides (a fraction of a ms): DONE tells it */
	char lp[PATH_MAX + 16];
	snprintf(lp, sizeof(lp), "%s/restore.log", s->rq.work_dir);
	if (criu_log_own_ms_file(lp, CRIU_LOG_RESTORE, false, &s->criu_restore_ms) < 0)
		s->criu_restore_ms = 0;
	return r;
}

/* RESTORE: now, or (RESTORE_STAGED) staged before the freeze, answered
 * STAGED; RESTORE_GO then restores (criu/gate.h). */
static int on_restore(struct session *s, struct msg *m, struct error *e)
{
	double t0 = now_ms();
	bool staged = msg_has(m, A_FLAGS) && (m->num[A_FLAGS] & RESTORE_STAGED);
	int r;

	if (!s->prepared || s->restored || s->staged)
		return error_set(e, EPROTO, "protocol error: RESTORE out of order");
	if (staged && (!s->drv->restore_stage || s->log_received))
		return error_set(e, EPROTO, "protocol error: a staged RESTORE of a %s", s->log_received
			? "monitored container (its log's pipes are made at the restore)" : "process tree");
	if (staged) {
		/* runc's descriptors.json, bounded by the schema (the driver checks
		 * what it says before runc reads it) */
		size_t n = msg_has(m, A_DESCRIPTORS) ? m->blen[A_DESCRIPTORS] : 0;
		if (n)
			memcpy(s->rq.descriptors, m->bytes[A_DESCRIPTORS], n);
		s->rq.descriptors[n] = '\0';
	}
	r = restore_prepare(s, m, e);
	if (r < 0 || !staged)
		return r < 0 ? r : restore_run(s, t0, e);
	/* runc opens the namespace's path as it starts: bound there now,
	 * detached (and locked) until the restore attaches it */
	if (s->net && (r = net_bind(&s->ns, s->mig_dir, e)) < 0)
		return error_wrap(e, "cannot place the network namespace of container %s", s->rq.id);
	r = s->drv->restore_stage(s->c, &s->rq, e);
	if (r < 0)
		return r;
	s->staged = true;
	return proto_send_msg(&s->conn, MSG_STAGED, NULL, e);
}

static int on_restore_go(struct session *s, struct msg *m, struct error *e)
{
	if (!s->prepared || s->restored || !s->staged)
		return error_set(e, EPROTO, "protocol error: RESTORE_GO without a staged RESTORE");
	if (msg_has(m, A_DEADLINE_MS) && m->num[A_DEADLINE_MS] > 0)
		s->rq.timeout_ms = (unsigned)m->num[A_DEADLINE_MS];
	return restore_run(s, now_ms(), e);
}

/* COMMIT is the decision: from here this host's copy is the one.  Journal
 * and outcome first (a crash after this line is finished by recovery: it
 * resumes the copy), then let it run, then answer. */
static int on_commit(struct session *s, struct error *e)
{
	int r;

	if (!s->restored)
		return error_set(e, EPROTO, "protocol error: COMMIT before the workload was restored");
	s->committed = true;
	dest_journal(s, J_DEST_COMMITTED);
	r = outcome_write(s->c->cfg.root, s->mig_id, OUTCOME_COMMITTED, e);
	if (r < 0)
		log_warn("cannot record the outcome of migration %s: %s", s->mig_id, e->msg);
	error_clear(e);
	fault_point("after-commit");
	char net_warn[2048] = "";
	if (s->net) {
		/* unlock, announce the addresses here, route hook */
		net_commit(&s->c->cfg, &s->ns, s->rq.id, s->conn.peer, net_warn, sizeof(net_warn));
		s->net = false;
	}
	r = s->drv->resume(s->c, &s->rq, e);
	if (r < 0) {
		/* committed but stopped: keep the journal, `cmt recover` here resumes it */
		error_wrap(e, "migration %s committed, but the restored copy did not resume", s->mig_id);
		error_hint(e, "run `cmt recover` on %s (it resumes committed copies)", s->c->cfg.name);
		return r;
	}
	fault_point("after-resume");
	/* how much memory this agent needed (it streams: far less than the workload) */
	struct mbuf mb;
	struct rusage ru;
	mb_init(&mb);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		mb_u64(&mb, A_BYTES, (uint64_t)ru.ru_maxrss * 1024);
	if (s->criu_restore_ms > 0)
		mb_u64(&mb, A_CRIU_US, (uint64_t)(s->criu_restore_ms * 1000));
	if (net_warn[0]) /* the migration stands, but the source's user must know */
		mb_str(&mb, A_MESSAGE, net_warn);
	r = proto_send_msg(&s->conn, MSG_DONE, &mb, e);
	mb_free(&mb);
	if (!s->rq.lazy) {
		/* Freeing the images (as large as the workload) takes tens of ms:
		 * after DONE, while the source removes its copy.  A crash in
		 * between leaves the journal (committed), and recovery here
		 * finishes the cleanup. */
		finish(s);
		return r;
	}
	/* Post-copy: the workload runs here; its remaining pages are still
	 * arriving.  The source keeps its frozen copy (and serves the pages)
	 * until LAZY_DONE says all of them are here. */
	double t0 = now_ms();
	error_clear(e);
	r = lazy_daemon_wait(&s->rq, &s->conn, s->lease_ms, e);
	if (r < 0) {
		log_warn("%s", e->msg);
		mem_dir_drop(s->rq.images_dir); /* the logs stay */
		char jp[PATH_MAX + 16];
		snprintf(jp, sizeof(jp), "%s/journal", s->mig_dir);
		unlink(jp); /* resumed already: nothing for recovery to do */
		return r;
	}
	finish(s);
	mb_init(&mb);
	mb_u64(&mb, A_DURATION_US, (uint64_t)((now_ms() - t0) * 1000));
	r = proto_send_msg(&s->conn, MSG_LAZY_DONE, &mb, e);
	mb_free(&mb);
	return r;
}

/* What became of a migration into this host?  Asked by a source that lost
 * the DONE (or crashed after sending COMMIT). */
static int on_query(struct session *s, struct msg *m, struct error *e)
{
	const char *id = m->str[A_MIGRATION_ID];
	struct error re = { 0 };
	struct mbuf mb;
	int oc, r;

	if (!migration_id_valid(id))
		return error_set(e, EINVAL, "invalid migration ID '%s'", id);
	/* a migration whose agent died is finished or rolled back first */
	journal_recover(s->c, true, &re);
	oc = outcome_read(s->c->cfg.root, id);
	if (oc == OUTCOME_UNKNOWN) {
		char jp[PATH_MAX + 96];
		snprintf(jp, sizeof(jp), "%s/migrations/%s/journal", s->c->cfg.root, id);
		if (path_exists(jp))
			oc = OUTCOME_IN_PROGRESS; /* its agent is still alive */
	}
	mb_init(&mb);
	mb_str(&mb, A_MIGRATION_ID, id);
	mb_u32(&mb, A_OUTCOME, (uint32_t)oc);
	r = proto_send_msg(&s->conn, MSG_STATUS, &mb, e);
	mb_free(&mb);
	return r;
}

static int on_facts(struct session *s, struct error *e)
{
	struct facts f;
	struct mbuf mb;
	char *txt;
	int r;

	facts_gather(s->c, &f);
	txt = facts_format(&f);
	if (!txt)
		return error_set(e, ENOMEM, "out of memory");
	mb_init(&mb);
	mb_str(&mb, A_FACTS, txt);
	free(txt);
	r = proto_send_msg(&s->conn, MSG_FACTS, &mb, e);
	mb_free(&mb);
	return r;
}

/* CRIU compares the source's cpuinfo image with this CPU. */
static int on_cpu_check(struct session *s, struct msg *m, struct error *e)
{
	struct mbuf mb;
	char why[512];
	int r;

	mb_init(&mb);
	if (ctx_need_criu(s->c, e) < 0 || ctx_criu_check(s->c, e) < 0) {
		/* no usable CRIU here: the CPU cannot be judged (the criu checks say why) */
		mb_u32(&mb, A_FLAGS, CPU_UNKNOWN);
		mb_str(&mb, A_MESSAGE, e->msg);
		error_clear(e);
		r = proto_send_msg(&s->conn, MSG_CPU_RESULT, &mb, e);
		mb_free(&mb);
		return r;
	}
	mb_free(&mb);
	r = ctx_cpuinfo_check(s->c, m->bytes[A_BLOB], m->blen[A_BLOB], why, sizeof(why), e);
	if (r < 0)
		return r;
	bool ok = r == 1;
	mb_init(&mb);
	mb_u32(&mb, A_FLAGS, ok ? CPU_OK : 0);
	if (!ok)
		mb_str(&mb, A_MESSAGE, why[0] ? why : "criu cpuinfo check failed");
	r = proto_send_msg(&s->conn, MSG_CPU_RESULT, &mb, e);
	mb_free(&mb);
	return r;
}

/* Which of these absolute paths exist here (bind-mount sources of a
 * container): existence only, nothing is read. */
static int on_paths(struct session *s, struct msg *m, struct error *e)
{
	const char *p = m->str[A_FACTS];
	size_t cap = strlen(p) * 2 + 64, l = 0;
	char *out = malloc(cap);
	struct mbuf mb;
	int r, n = 0;

	if (!out)
		return error_set(e, ENOMEM, "out of memory");
	out[0] = 0;
	while (*p && n < 256) {
		size_t k = strcspn(p, "\n");
		char path[PATH_MAX];
		struct stat st;
		if (k > 0 && k < sizeof(path) && p[0] == '/') {
			memcpy(path, p, k);
			path[k] = 0;
			l += (size_t)snprintf(out + l, cap - l, "%d %s\n", stat(path, &st) == 0, path);
		}
		p += k + (p[k] == '\n');
		n++;
	}
	mb_init(&mb);
	mb_str(&mb, A_FACTS, out);
	free(out);
	r = proto_send_msg(&s->conn, MSG_PATHS, &mb, e);
	mb_free(&mb);
	return r;
}

static int handshake(struct session *s, struct error *e)
{
	struct msg m;
	struct mbuf mb;
	int r;

	r = proto_recv_msg(&s->conn, MSG_HELLO, &m, e);
	if (r < 0)
		return r;
	if (m.num[A_MAGIC] != PROTO_HELLO_MAGIC) {
		msg_free(&m);
		return error_set(e, EPROTO, "bad protocol magic in HELLO");
	}
	snprintf(s->conn.peer, sizeof(s->conn.peer), "%s", m.str[A_HOST]);
	r = proto_version_check((unsigned)m.num[A_VER_MAJOR], (unsigned)m.num[A_VER_MINOR], m.str[A_SOFTWARE],
				m.str[A_HOST], e);
	msg_free(&m);
	if (r < 0)
		return r;
	mb_init(&mb);
	mb_u32(&mb, A_MAGIC, PROTO_HELLO_MAGIC);
	mb_u32(&mb, A_VER_MAJOR, PROTO_MAJOR);
	mb_u32(&mb, A_VER_MINOR, PROTO_MINOR);
	mb_str(&mb, A_SOFTWARE, "cmt " CMT_VERSION);
	mb_str(&mb, A_HOST, s->c->cfg.name);
	r = proto_send_msg(&s->conn, MSG_WELCOME, &mb, e);
	mb_free(&mb);
	return r;
}

static int serve(struct session *s)
{
	struct error e = { 0 };
	struct frame f;
	struct msg m;
	int r;

	r = handshake(s, &e);
	if (r < 0) {
		if (e.code != ECONNRESET)
			reply_error(s, &e);
		return 1;
	}
	for (;;) {
		bool reported = false;

		error_clear(&e);
		r = proto_recv(&s->conn, &f, &e);
		if (r < 0) {
			/* connection gone or garbled, or the lease expired: roll back
			 * unless committed */
			if (e.code == ETIMEDOUT && s->prepared) {
				error_wrap(&e, "the lease of %u ms expired; %s rolls back", s->lease_ms, s->c->cfg.name);
				error_hint(&e, "the source was silent for longer than the lease: if it is only slow (a "
					       "loaded host, a slow disk), give it more time with --lease SECONDS");
			}
			if (e.code != ECONNRESET)
				reply_error(s, &e);
			break;
		}
		if (f.type == MSG_STREAM_BEGIN) {
			r = on_stream(s, &f, &e, &reported);
			if (r == -ECANCELED) { /* the source aborted in mid-stream */
				rollback(s);
				proto_send_msg(&s->conn, MSG_DONE, NULL, &e);
				continue;
			}
			if (r < 0 && !reported)
				reply_error(s, &e);
			continue;
		}
		if (f.type == MSG_DATA) {
			error_set(&e, EPROTO, "protocol error: data outside a stream");
			reply_error(s, &e);
			break;
		}
		r = msg_decode(f.type, f.data, f.len, &m, &e);
		if (r < 0) {
			error_wrap(&e, "malformed message from %s", s->conn.peer);
			reply_error(s, &e);
			break;
		}
		switch (f.type) {
		case MSG_PATHS_REQ:
			r = on_paths(s, &m, &e);
			break;
		case MSG_PING:
			r = proto_send_msg(&s->conn, MSG_PONG, NULL, &e);
			break;
		case MSG_FACTS_REQ:
			r = on_facts(s, &e);
			break;
		case MSG_CPU_CHECK:
			r = on_cpu_check(s, &m, &e);
			break;
		case MSG_PREPARE:
			r = on_prepare(s, &m, &e);
			break;
		case MSG_NET_SETUP:
			r = on_net_setup(s, &m, &e);
			break;
		case MSG_RESTORE:
			r = on_restore(s, &m, &e);
			break;
		case MSG_RESTORE_GO:
			r = on_restore_go(s, &m, &e);
			break;
		case MSG_COMMIT:
			r = on_commit(s, &e);
			break;
		case MSG_QUERY:
			r = on_query(s, &m, &e);
			break;
		case MSG_RELAY:
			/* a session of its own: the relay, then the end */
			if (s->prepared) {
				r = error_set(&e, EPROTO, "protocol error: RELAY in a migration's main session");
				break;
			}
			r = agent_relay(s->c, &s->conn, &m, &e);
			msg_free(&m);
			if (r < 0)
				reply_error(s, &e);
			return r < 0 ? 1 : 0;
		case MSG_ABORT:
			rollback(s);
			r = proto_send_msg(&s->conn, MSG_DONE, NULL, &e);
			break;
		default:
			r = error_set(&e, EPROTO, "protocol error: unexpected %s message", msg_type_name(f.type));
			break;
		}
		msg_free(&m);
		if (r < 0)
			reply_error(s, &e);
		if (s->committed)
			break;
	}
	if (!s->committed)
		rollback(s);
	return s->committed || !s->prepared ? 0 : 1;
}

int agent_serve_stdio(struct ctx *c)
{
	struct session s = { .c = c, .lock = -1 };

	pagestore_init(&s.ps, "", ""); /* named by PREPARE */
	struct error e = { 0 };
	int rfd, wfd, null, rc;

	/* The protocol owns the original stdin/stdout; anything a child (CRIU,
	 * runc) prints must never reach the stream, so 0 and 1 become /dev/null.
	 * stderr stays: the remote shell carries it to the user. */
	rfd = fcntl(0, F_DUPFD_CLOEXEC, 3);
	wfd = fcntl(1, F_DUPFD_CLOEXEC, 3);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (rfd < 0 || wfd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0) {
		fprintf(stderr, "cmt agent: cannot set up stdio: %s\n", strerror(errno));
		return 1;
	}
	close(null);
	fcntl(rfd, F_SETPIPE_SZ, 1 << 20); /* when stdio is a pipe: fewer wake-ups (errors ignored) */
	fcntl(wfd, F_SETPIPE_SZ, 1 << 20);
	/* What CRIU, runc and libcriu print on stderr goes to the agent's log
	 * (errors travel in the protocol); with -v it goes to the user. */
	if (log_verbosity < 1) {
		char lp[PATH_MAX + 16];
		snprintf(lp, sizeof(lp), "%s/agent.log", c->cfg.root);
		mkdir_p(c->cfg.root, 0755, &e);
		error_clear(&e);
		int lfd = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (lfd >= 0) {
			dup2(lfd, 2);
			close(lfd);
		}
	}
	if (proto_conn_init(&s.conn, rfd, wfd, "source", &e) < 0) {
		error_print(&e);
		return 1;
	}
	snprintf(s.conn.self, sizeof(s.conn.self), "%s", c->cfg.name);
	fault_init(c->cfg.root, "agent");
	fault_set_conn(rfd, wfd);
	/* an idle session (checks, probes) ends after a while; PREPARE
	 * replaces this with the migration's lease */
	s.conn.timeout_ms = AGENT_IDLE_MS;
	outcome_prune(c->cfg.root);
	migrations_prune(c->cfg.root);
	rc = serve(&s);
	pagestore_close_wait(); /* a store freed in the background: its files are gone before the agent is */
	lock_release(s.lock);
	proto_conn_free(&s.conn);
	close(rfd);
	close(wfd);
	return rc;
}
