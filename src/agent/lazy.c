#include "agent/lazy.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/handoff.h"
#include "agent/pagestore.h"
#include "engine/migrate.h"
#include "transport/keepalive.h"
#include "transport/relay.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

/* How long the daemon may take to listen for the restore. */
#define LAZY_READY_MS 20000

int agent_relay(struct ctx *c, struct proto_conn *conn, const struct msg *m, struct error *e)
{
	const char *id = m->str[A_MIGRATION_ID];
	uint32_t lease = handoff_lease_clamp(msg_has(m, A_LEASE_MS) ? (uint32_t)m->num[A_LEASE_MS] : 0);
	char jp[PATH_MAX + 96];
	struct relay_stats rs;
	struct mbuf mb;
	int ls, port = 0, sock = -1, r;

	if (!migration_id_valid(id))
		return error_set(e, EINVAL, "invalid migration ID '%s'", id);
	/* only for a migration this host has prepared and not finished */
	snprintf(jp, sizeof(jp), "%s/migrations/%s/journal", c->cfg.root, id);
	if (!path_exists(jp))
		return error_set(e, ENOENT, "no migration %s in progress on %s: nothing to relay pages for", id, c->cfg.name);
	ls = relay_listen_loopback(&port, e);
	if (ls < 0)
		return ls;
	/* for the main session: it may start the daemon as soon as the images are in */
	lazy_relay_port_write(c->cfg.root, id, port);
	mb_init(&mb);
	mb_u32(&mb, A_PORT, (uint32_t)port);
	r = proto_send_msg(conn, MSG_RELAY_READY, &mb, e);
	mb_free(&mb);
	if (r < 0) {
		close(ls);
		return r;
	}
	log_debug("agent: relaying the pages of migration %s from 127.0.0.1:%d", id, port);
	/* Wait for the daemon (it connects during the restore); the source may
	 * give up meanwhile (its end of the session closes), and the silence is
	 * bounded by the lease both ways. */
	double last = now_ms(), last_ka = now_ms();
	for (;;) {
		struct pollfd pf[2] = { { ls, POLLIN, 0 }, { conn->rfd, POLLIN, 0 } };
		int k = poll(pf, 2, lease / 3 < 1000 ? (int)(lease / 3) : 1000);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = error_errno(e, errno, "poll");
			break;
		}
		if (pf[1].revents) {
			/* the source says nothing before OPEN: this is its end (or an ABORT) */
			r = error_set(e, ECONNRESET, "the source closed the page relay of migration %s before it was used", id);
			break;
		}
		if (pf[0].revents) {
			sock = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
			if (sock < 0 && errno == EINTR)
				continue;
			if (sock < 0)
				r = error_errno(e, errno, "accept on 127.0.0.1:%d", port);
			break;
		}
		if (!path_exists(jp)) {
			/* the main session rolled back (or finished): nothing will connect */
			r = error_set(e, ECANCELED, "migration %s ended on %s before its pages were asked for", id,
				      c->cfg.name);
			break;
		}
		if (now_ms() - last > 1000.0 * 60 * 60) {
			r = error_set(e, ETIMEDOUT, "nothing connected to the page relay of migration %s for an hour", id);
			break;
		}
		if (now_ms() - last_ka >= lease / 3.0) {
			r = proto_send_keepalive(conn, e);
			if (r < 0)
				break;
			last_ka = now_ms();
		}
	}
	close(ls);
	if (sock < 0)
		return r < 0 ? r : -EIO;
	/* the pages the pre-copy rounds sent (hybrid): RELAY_PAGES refer to them */
	struct relay_opts ro = { .pages = true, .store_fd = -1 };
	char sp[PATH_MAX + 96];
	snprintf(sp, sizeof(sp), "%s/migrations/%s/pagestore", c->cfg.root, id);
	r = pagestore_open_published(sp, &ro.store_fd, &ro.store_pages, e);
	if (r < 0) {
		close(sock);
		return error_wrap(e, "page relay of migration %s", id);
	}
	r = proto_send_msg(conn, MSG_RELAY_OPEN, NULL, e);
	if (r == 0)
		r = relay_pump(conn, sock, lease, &ro, &rs, e);
	close(sock);
	if (ro.store_fd >= 0)
		close(ro.store_fd);
	if (r == 0)
		log_debug("agent: page relay of %s done: %llu bytes in, %llu out; pages %llu in full, %llu from the store "
			  "(of %u), %llu zero",
			  id, (unsigned long long)rs.from_peer, (unsigned long long)rs.to_peer,
			  (unsigned long long)rs.pages.raw, (unsigned long long)rs.pages.copied, ro.store_pages,
			  (unsigned long long)rs.pages.zero);
	return r;
}

/* Starts the daemon; its status descriptor says when it listens. */
static int lazy_daemon_spawn(struct ctx *c, struct restore_req *rq, int port, struct error *e)
{
	char ps[16], out[PATH_MAX + 32];
	char *argv[] = { c->criu.path, "lazy-pages", "--page-server", "--address", "127.0.0.1", "--port", ps,
			 "--images-dir", rq->images_dir, "--work-dir", rq->work_dir, "--log-file", "lazy-pages.log",
			 "--status-fd", "3", NULL };
	struct run_opts o = { .cwd = rq->work_dir, .output_path = out };
	int sfd = -1, r;

	r = ctx_need_criu(c, e);
	if (r < 0)
		return r;
	if (port <= 0 || port > 65535)
		return error_set(e, EINVAL, "invalid relay port %d", port);
	snprintf(ps, sizeof(ps), "%d", port);
	snprintf(out, sizeof(out), "%s/lazy-pages.out", rq->work_dir);
	r = spawn_bg(argv, &o, &sfd, &rq->lazy_pid, e);
	if (r < 0)
		return r;
	rq->lazy_ready_fd = sfd;
	rq->lazy_starting = true;
	return 0;
}

int lazy_daemon_ready(struct restore_req *rq, struct error *e)
{
	char log[PATH_MAX + 32], b;
	int k;

	if (!rq->lazy_starting)
		return 0;
	struct pollfd pf = { rq->lazy_ready_fd, POLLIN, 0 };
	do
		k = poll(&pf, 1, LAZY_READY_MS);
	while (k < 0 && errno == EINTR);
	ssize_t got = k > 0 ? read(rq->lazy_ready_fd, &b, 1) : 0;
	close(rq->lazy_ready_fd);
	rq->lazy_ready_fd = -1;
	rq->lazy_starting = false;
	if (got == 1)
		return 0;
	lazy_daemon_kill(rq);
	if (k == 0)
		error_set(e, ETIMEDOUT, "CRIU's lazy-pages daemon did not get ready in %d ms", LAZY_READY_MS);
	else
		error_set(e, EIO, "CRIU's lazy-pages daemon failed to start");
	snprintf(log, sizeof(log), "%s/lazy-pages.log", rq->work_dir);
	if (path_exists(log)) {
		criu_explain(log, "lazy-pages daemon", rq->host, e);
		return -e->code;
	}
	/* it ended before it had a log: its own words, if any */
	char out[PATH_MAX + 32];
	snprintf(out, sizeof(out), "%s/lazy-pages.out", rq->work_dir);
	char *said = file_last_line(out, 64 * 1024, NULL);
	if (said) {
		size_t l = strlen(e->msg);
		snprintf(e->msg + l, sizeof(e->msg) - l, ": %s", said);
		free(said);
	}
	error_hint(e, "check CRIU on %s (`criu check`, `cmt check`)", rq->host ? rq->host : "this host");
	error_host(e, rq->host);
	return -e->code;
}

int lazy_daemon_start(struct ctx *c, struct restore_req *rq, int port, struct error *e)
{
	int r = lazy_daemon_spawn(c, rq, port, e);

	return r < 0 ? r : lazy_daemon_ready(rq, e);
}

void lazy_relay_port_write(const char *root, const char *id, int port)
{
	char p[PATH_MAX + 128], txt[16];
	struct error e = { 0 };

	snprintf(p, sizeof(p), "%s/migrations/%s/relay-port", root, id);
	snprintf(txt, sizeof(txt), "%d\n", port);
	if (write_file_atomic(p, txt, strlen(txt), 0600, &e) < 0)
		log_debug("agent: %s", e.msg);
}

int lazy_daemon_start_early(struct ctx *c, struct restore_req *rq, const char *mig_dir)
{
	char p[PATH_MAX + 32], *txt = NULL;
	struct error e = { 0 };
	int port = 0;

	snprintf(p, sizeof(p), "%s/relay-port", mig_dir);
	if (!path_exists(p) || read_file(p, 16, &txt, NULL, &e) < 0)
		return 0;
	if (sscanf(txt, "%d", &port) != 1 || port <= 0 || port > 65535)
		port = 0;
	free(txt);
	if (!port || lazy_daemon_spawn(c, rq, port, &e) < 0) {
		if (port)
			log_debug("agent: the lazy-pages daemon did not start early (%s); the restore starts it", e.msg);
		return 0;
	}
	return port;
}

void lazy_daemon_kill(struct restore_req *rq)
{
	int st;

	if (rq->lazy_starting) {
		close(rq->lazy_ready_fd);
		rq->lazy_ready_fd = -1;
		rq->lazy_starting = false;
	}
	if (rq->lazy_pid <= 0)
		return;
	kill(-rq->lazy_pid, SIGKILL);
	wait_child_ms(rq->lazy_pid, 10000, &st);
	rq->lazy_pid = 0;
}

int lazy_daemon_wait(struct restore_req *rq, struct proto_conn *conn, unsigned lease_ms, struct error *e)
{
	struct keepalive ka = { 0 };
	char log[PATH_MAX + 32];
	int st = -1, r;

	if (rq->lazy_pid <= 0)
		return 0;
	/* as long as pages flow (the relay session bounds the source's
	 * silence); the source hears keepalives meanwhile */
	keepalive_start(&ka, conn, lease_ms / 3);
	r = wait_child_ms(rq->lazy_pid, -1, &st);
	keepalive_stop(&ka);
	rq->lazy_pid = 0;
	if (r < 0)
		return error_errno(e, -r, "waiting for the lazy-pages daemon");
	if (st == 0)
		return 0;
	snprintf(log, sizeof(log), "%s/lazy-pages.log", rq->work_dir);
	error_set(e, EIO, "CRIU's lazy-pages daemon exited with status %d", st);
	if (path_exists(log))
		criu_explain(log, "the post-copy memory transfer", rq->host, e);
	error_wrap(e, "%s resumed here with pages still on the source, and those that did not arrive are lost",
		   rq->id);
	error_host(e, rq->host);
	return -e->code;
}
