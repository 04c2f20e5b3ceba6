#include "engine/postcopy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/facts.h"
#include "engine/modes.h"
#include "engine/progress.h"
#include "transport/relay.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

int postcopy_check(struct ctx *c, struct peer *p, const struct check_list *checks, const struct driver *drv,
		   const char *label, struct error *e)
{
	struct facts *src = NULL, *dst = NULL;
	char why[200];
	const char *w;
	int r = 0;

	if (!drv->dump_lazy) {
		error_set(e, ENOTSUP, "post-copy is not available for %s", label);
		error_hint(e, "use --mode cold");
		return -ENOTSUP;
	}
	if (!checks) {
		struct msg m;
		src = calloc(1, sizeof(*src));
		dst = calloc(1, sizeof(*dst));
		if (!src || !dst) {
			r = error_set(e, ENOMEM, "out of memory");
			goto out;
		}
		r = proto_send_msg(&p->conn, MSG_FACTS_REQ, NULL, e);
		if (r < 0)
			goto out;
		facts_gather(c, src);
		r = proto_recv_msg(&p->conn, MSG_FACTS, &m, e);
		if (r < 0)
			goto out;
		r = facts_parse(dst, m.str[A_FACTS], e);
		msg_free(&m);
		if (r < 0)
			goto out;
		checks = NULL;
	}
	const struct facts *fs = checks ? &checks->src : src, *fd = checks ? &checks->dst : dst;
	for (int side = 0; side < 2; side++) {
		const char *host = side == 0 ? c->cfg.name : p->name;
		w = mode_lazy_unsupported(side == 0 ? fs : fd, why, sizeof(why));
		if (!w)
			continue;
		error_set(e, ENOTSUP, "post-copy cannot work on %s: %s", host, w);
		error_host(e, host);
		if (strstr(w, "pipe-max-size"))
			error_hint(e, "run `sysctl fs.pipe-max-size=4194304` on %s (without CAP_SYS_RESOURCE CRIU cannot grow "
				      "its page pipes and the lazy transfer breaks), or use --mode cold",
				   host);
		else
			error_hint(e, "use --mode cold (post-copy needs userfaultfd and CRIU's lazy pages on both hosts)");
		r = -ENOTSUP;
		break;
	}
out:
	free(src);
	free(dst);
	return r;
}

/* A line from the relay process within timeout_ms ("" on its end). */
static int read_report(int fd, char *buf, size_t n, int timeout_ms)
{
	size_t l = 0;

	while (l < n - 1) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int k = poll(&pf, 1, timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0)
			return -ETIMEDOUT;
		if (k < 0)
			return -errno;
		ssize_t g = read(fd, buf + l, 1);
		if (g < 0 && errno == EINTR)
			continue;
		if (g <= 0)
			break;
		if (buf[l] == '\n')
			break;
		l++;
	}
	buf[l] = 0;
	return 0;
}

/* The relay process draws the lazy transfer's progress line (the main
 * process waits for LAZY_DONE meanwhile). */
struct lazy_progress {
	struct progress pg;
	uint64_t shown;
};

static void lazy_tick(void *arg, const struct relay_stats *st)
{
	struct lazy_progress *lp = arg;
	uint64_t pages = st->pages.raw + st->pages.copied + st->pages.zero;

	if (st->pages.copied) /* hybrid */
		snprintf(lp->pg.note, sizeof(lp->pg.note), "%.0f%% from the store",
			 100.0 * (double)st->pages.copied / (double)pages);
	progress_add(&lp->pg, st->to_peer - lp->shown);
	lp->shown = st->to_peer;
}

/* The relay process: its own session to the agent, then the page stream. */
static void relay_main(const struct migrate_opts *o, const char *self, const char *mig_id, uint32_t lease, int ps_port,
		       int set_fd, uint64_t estimate, int wfd)
{
	struct lazy_progress lp = { .shown = 0 };
	struct error e = { 0 };
	struct relay_stats rs = { 0 };
	struct relay_opts ro = { .store_fd = -1 };
	struct pageset set = { 0 };
	struct psr_tap tap;
	bool tapped = false;
	struct peer p;
	struct mbuf mb;
	struct msg m;
	int r, sock = -1;

	memset(&p, 0, sizeof(p));
	p.pid = -1;
	r = peer_connect(&p, o->rsh, o->to, o->remote_cmt, self, &e);
	if (r < 0)
		goto fail;
	mb_init(&mb);
	mb_str(&mb, A_MIGRATION_ID, mig_id);
	mb_u32(&mb, A_LEASE_MS, lease);
	r = proto_send_msg(&p.conn, MSG_RELAY, &mb, &e);
	mb_free(&mb);
	if (r == 0)
		r = proto_recv_msg(&p.conn, MSG_RELAY_READY, &m, &e);
	if (r < 0)
		goto fail;
	dprintf(wfd, "port %u\n", (unsigned)m.num[A_PORT]);
	msg_free(&m);
	/* until the lazy-pages daemon connects there (during the restore); the
	 * agent's keepalives bound the silence */
	p.conn.timeout_ms = (int)lease;
	r = proto_recv_msg(&p.conn, MSG_RELAY_OPEN, &m, &e);
	if (r < 0)
		goto fail;
	msg_free(&m);
	if (p.peer_minor >= PROTO_MINOR_RELAY_PAGES) {
		/* pages by content: what the pre-copy rounds (hybrid) put in the
		 * destination's store goes as a reference; the set was written
		 * before the freeze, and the daemon connects only after it */
		r = pageset_import(&set, set_fd, &e);
		if (r == 0)
			r = psr_tap_init(&tap, &set, NULL, NULL, &e);
		if (r < 0)
			goto fail;
		tapped = true;
		ro.tap = &tap;
		log_debug("page relay: %u pages in %s's store", set.stored, o->to);
	}
	sock = relay_connect_loopback(ps_port, &e);
	if (sock < 0) {
		r = sock;
		error_wrap(&e, "CRIU's page server");
		goto fail;
	}
	progress_begin(&lp.pg, isatty(STDERR_FILENO) && log_verbosity >= 0, "lazy", estimate);
	ro.tick = lazy_tick;
	ro.tick_arg = &lp;
	r = relay_pump(&p.conn, sock, lease, &ro, &rs, &e);
	progress_end(&lp.pg);
	close(sock);
	if (r < 0)
		goto fail;
	dprintf(wfd, "bytes %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", rs.to_peer, rs.wire_out,
		rs.pages.raw, rs.pages.copied, rs.pages.zero);
	peer_close(&p);
	_exit(0);
fail:
	if (tapped)
		psr_tap_free(&tap);
	pageset_free(&set);
	dprintf(wfd, "error %s (%" PRIu64 " bytes relayed)\n", e.msg, rs.to_peer);
	if (p.pid > 0)
		peer_close(&p);
	_exit(1);
}

/* A port of 127.0.0.1 that nothing listens on now (CRIU binds it soon). */
static int free_port(struct error *e)
{
	int port, s = relay_listen_loopback(&port, e);

	if (s < 0)
		return s;
	close(s);
	return port;
}

int postcopy_relay_start(struct postcopy *pc, const struct migrate_opts *o, const char *self, const char *mig_id,
			 uint32_t lease_ms, uint64_t estimate, const struct peer *p, struct error *e)
{
	int fds[2], r;
	char line[1200];

	memset(pc, 0, sizeof(*pc));
	pc->report_fd = -1;
	pc->set_fd = -1;
	pc->ps_port = free_port(e);
	if (pc->ps_port < 0)
		return pc->ps_port;
	/* what the destination's store holds, for the relay process (written
	 * after the pre-copy rounds: postcopy_share_pages) */
	pc->set_fd = memfd_create("cmt-pageset", MFD_CLOEXEC);
	if (pc->set_fd < 0)
		return error_errno(e, errno, "cannot create the page relay's page set");
	if (pipe2(fds, O_CLOEXEC) < 0) {
		int err = errno;
		close(pc->set_fd);
		pc->set_fd = -1;
		return error_errno(e, err, "pipe");
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		return error_errno(e, err, "cannot start the page relay");
	}
	if (pid == 0) {
		/* With its remote shell, one group to end.  It outlives a cmt that
		 * dies: after COMMIT the destination still needs the pages it
		 * carries; before, the agent ends its side when it rolls back.  It
		 * holds the migration's lock meanwhile, so `cmt recover` waits. */
		setpgid(0, 0);
		close(fds[0]);
		/* cmt's stdout is its caller's (the JSON): not the relay's to hold */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			close(null);
		}
		/* the main session is the parent's alone */
		close(p->conn.rfd);
		close(p->conn.wfd);
		relay_main(o, self, mig_id, lease_ms, pc->ps_port, pc->set_fd, estimate, fds[1]);
		_exit(1);
	}
	setpgid(pid, pid);
	close(fds[1]);
	pc->active = true;
	pc->relay_pid = pid;
	pc->report_fd = fds[0];
	r = read_report(pc->report_fd, line, sizeof(line), RSH_CONNECT_TIMEOUT_MS + (int)lease_ms);
	if (r == 0 && sscanf(line, "port %d", &pc->dest_port) == 1 && pc->dest_port > 0 && pc->dest_port < 65536) {
		log_debug("page relay: %s's 127.0.0.1:%d -> this host's page server at 127.0.0.1:%d", p->name,
			  pc->dest_port, pc->ps_port);
		return 0;
	}
	if (r == 0 && strncmp(line, "error ", 6) == 0)
		error_set(e, EIO, "cannot open the page relay to %s: %s", p->name, line + 6);
	else
		error_set(e, r == -ETIMEDOUT ? ETIMEDOUT : EIO, "cannot open the page relay to %s: %s", p->name,
			  r == -ETIMEDOUT ? "no answer" : "it ended at once");
	error_hint(e, "post-copy needs a second remote-shell session to %s for the pages; check that the agent there "
		      "is this cmt version, or use --mode cold",
		   p->name);
	postcopy_stop(pc);
	return -e->code;
}

/* Ends the page server if nothing ever connected to it: a connection that
 * closes at once ends it (CRIU then leaves the tasks as they were: frozen). */
static void poke_page_server(int port)
{
	struct error e = { 0 };
	int s = relay_connect_loopback(port, &e);

	if (s >= 0)
		close(s);
}

int postcopy_dump(struct postcopy *pc, struct ctx *c, const struct driver *drv, struct workload *w, const char *images,
		  const char *work, uint32_t lease_ms, struct error *e)
{
	char txt[64];
	int r;

	(void)lease_ms;
	r = drv->dump_lazy(c, w, images, work, pc->ps_port, 0, &pc->dump_pid, e);
	if (r < 0)
		return r;
	/* for `cmt recover` after a crash: the page server holds the tasks
	 * until it ends (see postcopy_recover) */
	snprintf(pc->marker, sizeof(pc->marker), "%s/lazy-dump", work);
	snprintf(txt, sizeof(txt), "%d %d\n", pc->ps_port, (int)pc->dump_pid);
	struct error tmp = { 0 };
	if (write_file_atomic(pc->marker, txt, strlen(txt), 0600, &tmp) < 0)
		log_warn("%s", tmp.msg);
	return 0;
}

void postcopy_recover(const char *mig_dir)
{
	char p[PATH_MAX + 32], cmd[PATH_MAX], *txt = NULL;
	struct error e = { 0 };
	int port = 0, pid = 0;

	snprintf(p, sizeof(p), "%s/work/lazy-dump", mig_dir);
	if (!path_exists(p) || read_file(p, 64, &txt, NULL, &e) < 0)
		return;
	if (sscanf(txt, "%d %d", &port, &pid) == 2 && port > 0 && port < 65536 && pid > 1) {
		/* only if that process group is still a lazy checkpoint */
		snprintf(cmd, sizeof(cmd), "/proc/%d/cmdline", pid);
		char *cl = NULL;
		size_t n = 0;
		bool ours = false;
		if (read_file(cmd, 8192, &cl, &n, &e) == 0) {
			for (size_t i = 0; i + 1 < n; i++)
				if (!cl[i])
					cl[i] = ' ';
			/* runc's lazy checkpoint of this migration, or the child cmt
			 * forked for a process tree's lazy dump */
			ours = (strstr(cl, "checkpoint --lazy-pages") != NULL && strstr(cl, mig_dir) != NULL) ||
			       (strstr(cl, " migrate ") != NULL && strstr(cl, "--pid") != NULL && getpgid(pid) == pid);
		}
		free(cl);
		if (ours) {
			poke_page_server(port);
			for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
				struct pollfd none;
				poll(&none, 0, 50); /* the dump ends within moments once poked */
				if (i == 100)
					kill(-pid, SIGKILL);
			}
		}
	}
	free(txt);
	unlink(p);
}

int postcopy_share_pages(struct postcopy *pc, const struct pageset *set, struct error *e)
{
	int r = pageset_export(set, pc->set_fd, e);
	return r < 0 ? error_wrap(e, "page relay") : 0;
}

void postcopy_stop(struct postcopy *pc)
{
	int st;

	if (!pc->active)
		return;
	if (pc->relay_pid > 0) {
		kill(-pc->relay_pid, SIGKILL);
		wait_child_ms(pc->relay_pid, 10000, &st);
		pc->relay_pid = 0;
	}
	if (pc->dump_pid > 0) {
		poke_page_server(pc->ps_port);
		if (wait_child_ms(pc->dump_pid, 30000, &st) == -ETIMEDOUT) {
			log_warn("the lazy dump did not end; killing it");
			kill(-pc->dump_pid, SIGKILL);
			wait_child_ms(pc->dump_pid, 10000, &st);
		}
		pc->dump_pid = 0;
	}
	if (pc->marker[0])
		unlink(pc->marker);
	pc->marker[0] = 0;
	if (pc->report_fd >= 0)
		close(pc->report_fd);
	pc->report_fd = -1;
	if (pc->set_fd >= 0)
		close(pc->set_fd);
	pc->set_fd = -1;
	pc->active = false;
}

void postcopy_drain(struct postcopy *pc)
{
	int st;

	if (!pc->active)
		return;
	if (pc->relay_pid > 0) {
		log_info("waiting for the page relay to end (the destination may still need pages)");
		wait_child_ms(pc->relay_pid, -1, &st);
		pc->relay_pid = 0;
	}
	postcopy_stop(pc);
}

int postcopy_finish(struct postcopy *pc, struct proto_conn *conn, uint32_t lease_ms, const char *dest,
		    struct error *e)
{
	double t0 = now_ms();
	struct msg m;
	char line[1200];
	int r, st = -1;

	conn->timeout_ms = (int)lease_ms;
	r = proto_recv_msg(conn, MSG_LAZY_DONE, &m, e);
	if (r < 0) {
		error_wrap(e, "the workload runs on %s, but the end of its memory transfer was not confirmed", dest);
		return r;
	}
	msg_free(&m);
	pc->postcopy_ms = now_ms() - t0;
	/* the daemon there has closed its page-server session: the dump ends */
	r = wait_child_ms(pc->dump_pid, (int)lease_ms, &st);
	if (r == 0) {
		pc->dump_pid = 0;
		if (st != 0)
			log_warn("the lazy dump exited with status %d after every page had arrived", st);
	}
	if (read_report(pc->report_fd, line, sizeof(line), (int)lease_ms) == 0)
		sscanf(line, "bytes %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &pc->lazy_bytes,
		       &pc->lazy_wire_bytes, &pc->pages.raw, &pc->pages.copied, &pc->pages.zero);
	postcopy_stop(pc);
	return 0;
}
