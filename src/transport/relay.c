#include "transport/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"

/* A byte queue: [off, len) is pending. */
struct q {
	uint8_t *b;
	size_t off, len, cap;
};

static size_t q_free(const struct q *q) { return q->cap - q->len; }
static size_t q_pending(const struct q *q) { return q->len - q->off; }
static void q_compact(struct q *q)
{
	if (q->off == 0)
		return;
	memmove(q->b, q->b + q->off, q->len - q->off);
	q->len -= q->off;
	q->off = 0;
}

/* Appends one frame to q (the caller checked the room). */
static void q_frame(struct q *q, uint16_t type, const void *payload, uint32_t len)
{
	q_compact(q);
	proto_hdr_encode(q->b + q->len, type, type == MSG_DATA || type == MSG_RELAY_PAGES ? RELAY_CHAN : 0, payload,
			 len);
	if (len)
		memcpy(q->b + q->len + PROTO_HDR_SIZE, payload, len);
	q->len += PROTO_HDR_SIZE + len;
}

/* Writes what it can of q to fd (non-blocking): 0, or negative errno. */
static int q_flush(struct q *q, int fd)
{
	while (q_pending(q)) {
		ssize_t k = write(fd, q->b + q->off, q_pending(q));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN ? 0 : -errno;
		q->off += (size_t)k;
	}
	q->off = q->len = 0;
	return 0;
}

static int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0 ? -1 : fl;
}

/* The frames in the inbound queue: DATA to the socket's queue (while it
 * has room), RELAY_CLOSE, KEEPALIVE; anything else ends the relay. */
/* Where the frames of the tap go: the outbound queue (with room, see relay_pump). */
static int tap_emit(void *arg, uint16_t type, const uint8_t *p, uint32_t n)
{
	struct q *out = arg;

	q_compact(out);
	if (q_free(out) < PROTO_HDR_SIZE + (size_t)n)
		return -ENOBUFS;
	q_frame(out, type, p, n);
	return 0;
}

static int parse_frames(struct proto_conn *c, struct q *in, struct q *to_sock, bool *peer_eof,
			const struct relay_opts *ro, uint8_t *scratch, struct relay_stats *st, struct error *e)
{
	for (;;) {
		struct frame f;
		int k = proto_frame_parse(in->b + in->off, q_pending(in), &f, e);
		if (k < 0)
			return error_wrap(e, "from %s (page relay)", c->peer);
		if (k == 0)
			break;
		if (f.type == MSG_DATA) {
			if (f.chan != RELAY_CHAN || *peer_eof)
				return error_set(e, EPROTO, "protocol error: relay data on channel %u%s", f.chan,
						 *peer_eof ? " after RELAY_CLOSE" : "");
			if (f.len > q_free(to_sock)) {
				q_compact(to_sock);
				if (f.len > q_free(to_sock))
					break; /* when the socket has taken more */
			}
			if (ro && ro->tap && psr_tap_request(ro->tap, f.data, f.len, e) < 0)
				return error_wrap(e, "from %s (page relay)", c->peer);
			memcpy(to_sock->b + to_sock->len, f.data, f.len);
			to_sock->len += f.len;
		} else if (f.type == MSG_RELAY_PAGES) {
			size_t got;
			if (!ro || !ro->pages || f.chan != RELAY_CHAN || *peer_eof)
				return error_set(e, EPROTO, "protocol error: %s sent RELAY_PAGES %s", c->peer,
						 *peer_eof ? "after RELAY_CLOSE" : "where bytes were expected");
			if ((size_t)PSR_FRAME_PAGES * PAGE_SZ > q_free(to_sock)) {
				q_compact(to_sock);
				if ((size_t)PSR_FRAME_PAGES * PAGE_SZ > q_free(to_sock))
					break; /* when the socket has taken more */
			}
			if (psr_pages_decode(f.data, f.len, ro->store_fd, ro->store_pages, to_sock->b + to_sock->len, &got,
					     scratch, &st->pages, e) < 0)
				return error_wrap(e, "from %s (page relay)", c->peer);
			to_sock->len += got;
		} else if (f.type == MSG_RELAY_CLOSE) {
			*peer_eof = true;
		} else if (f.type == MSG_ERROR) {
			struct msg m;
			if (msg_decode(f.type, f.data, f.len, &m, e) < 0)
				return error_wrap(e, "malformed ERROR from %s", c->peer);
			error_set(e, EIO, "%s", m.str[A_MESSAGE]);
			error_host(e, c->peer);
			msg_free(&m);
			return -EIO;
		} else if (f.type != MSG_KEEPALIVE) {
			return error_set(e, EPROTO, "protocol error: %s inside the page relay", msg_type_name(f.type));
		}
		c->bytes_in += (uint64_t)k;
		in->off += (size_t)k;
	}
	q_compact(in);
	return 0;
}

int relay_pump(struct proto_conn *c, int sock, unsigned lease_ms, const struct relay_opts *ro, struct relay_stats *st,
	       struct error *e)
{
	bool sock_eof = false, peer_eof = false, shut = false, conn_eof = false;
	int ping_ms = lease_ms >= 3 ? (int)(lease_ms / 3) : 1000;
	double last_in = now_ms(), last_out = now_ms(), last_tick = 0;
	struct q in = { .cap = PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD }, out = { .cap = 2 * (PROTO_HDR_SIZE + RELAY_BUF) },
		 to_sock = { .cap = PROTO_MAX_PAYLOAD };
	uint8_t *buf = malloc(RELAY_BUF), *scratch = NULL;
	int r = 0, fl_r, fl_w, fl_s;
	/* through the tap, what a read brings may grow a little (frames, records) */
	size_t chunk = ro && ro->tap ? RELAY_BUF / 2 : RELAY_BUF;

	memset(st, 0, sizeof(*st));
	if (ro && ro->tap) {
		ro->tap->emit = tap_emit;
		ro->tap->arg = &out;
	}
	if (ro && ro->pages && !(scratch = malloc(PAGES_BATCH_MAX))) {
		free(buf);
		return error_set(e, ENOMEM, "out of memory");
	}
	in.b = malloc(in.cap);
	out.b = malloc(out.cap);
	to_sock.b = malloc(to_sock.cap);
	if (!buf || !in.b || !out.b || !to_sock.b) {
		r = error_set(e, ENOMEM, "out of memory");
		goto done_free;
	}
	int one = 1;
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Nothing here ever blocks: each direction waits only for its own
	 * reader, so two relays (or CRIU's two ends) cannot wait on each other. */
	fl_r = set_nonblock(c->rfd, true);
	fl_w = c->wfd == c->rfd ? fl_r : set_nonblock(c->wfd, true);
	fl_s = set_nonblock(sock, true);
	while (!(sock_eof && peer_eof && !q_pending(&out) && !q_pending(&to_sock) && shut)) {
		bool room = q_free(&out) >= PROTO_HDR_SIZE + RELAY_BUF || (q_compact(&out), q_free(&out) >= PROTO_HDR_SIZE + RELAY_BUF);
		struct pollfd pf[4] = {
			{ q_free(&in) && !conn_eof ? c->rfd : -1, POLLIN, 0 },
			{ !sock_eof && room ? sock : -1, POLLIN, 0 },
			{ q_pending(&to_sock) ? sock : -1, POLLOUT, 0 },
			{ q_pending(&out) ? c->wfd : -1, POLLOUT, 0 },
		};
		int k = poll(pf, 4, ping_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = error_errno(e, errno, "poll");
			break;
		}
		if (pf[1].revents) {
			ssize_t n = read(sock, buf, chunk);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				n = -2;
			else if (n < 0 && errno != ECONNRESET) {
				r = error_errno(e, errno, "reading the relayed socket");
				break;
			}
			if (n == 0 || n == -1) {
				sock_eof = true;
				q_frame(&out, MSG_RELAY_CLOSE, NULL, 0);
			} else if (n > 0 && ro && ro->tap) {
				st->to_peer += (uint64_t)n;
				r = psr_tap_answer(ro->tap, buf, (size_t)n, e);
				if (r == -ENOBUFS)
					r = error_set(e, ENOBUFS, "internal error: the page relay's queue overflowed");
				if (r < 0) {
					error_wrap(e, "relaying CRIU's page server");
					break;
				}
				st->pages = ro->tap->st;
			} else if (n > 0) {
				st->to_peer += (uint64_t)n;
				q_frame(&out, MSG_DATA, buf, (uint32_t)n);
			}
		}
		if (q_pending(&out)) {
			size_t pend = q_pending(&out);
			r = q_flush(&out, c->wfd);
			st->wire_out += pend - q_pending(&out);
			if (r < 0) {
				error_errno(e, -r, "connection to %s lost (page relay)", c->peer);
				break;
			}
			last_out = now_ms();
		}
		if (pf[0].revents) {
			q_compact(&in);
			ssize_t n = read(c->rfd, in.b + in.len, q_free(&in));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				n = -2;
			else if (n < 0) {
				r = error_errno(e, errno, "connection to %s lost (page relay)", c->peer);
				break;
			}
			if (n == 0)
				conn_eof = true;
			if (n > 0) {
				in.len += (size_t)n;
				last_in = now_ms();
			}
		}
		/* Frames wait in 'in' while the socket's queue has no room for
		 * them; when the socket then takes everything, they are parsed at
		 * once: nothing else would wake this loop for them (the daemon
		 * waits for their pages, the peer for the daemon). */
		bool again;
		do {
			size_t before = q_pending(&to_sock);
			r = parse_frames(c, &in, &to_sock, &peer_eof, ro, scratch, st, e);
			if (r < 0)
				break;
			st->from_peer += q_pending(&to_sock) - before;
			size_t pend = q_pending(&to_sock);
			if (pend) {
				r = q_flush(&to_sock, sock);
				if (r < 0) {
					error_errno(e, -r, "writing the relayed socket");
					break;
				}
			}
			again = q_pending(&in) && pend && !q_pending(&to_sock);
		} while (again);
		if (r < 0)
			break;
		if (conn_eof && !q_pending(&to_sock) && !(peer_eof && sock_eof)) {
			/* everything received is parsed, and the peer left before both
			 * directions had ended */
			r = error_set(e, ECONNRESET, "connection to %s closed (page relay)", c->peer);
			break;
		}
		if (peer_eof && !q_pending(&to_sock) && !shut) {
			shutdown(sock, SHUT_WR);
			shut = true;
		}
		double t = now_ms();
		if (ro && ro->tick && t - last_tick >= RELAY_TICK_MS) {
			ro->tick(ro->tick_arg, st);
			last_tick = t;
		}
		if (t - last_in > lease_ms && !conn_eof) {
			r = error_set(e, ETIMEDOUT, "the page relay heard nothing from %s for %u ms", c->peer, lease_ms);
			break;
		}
		if (t - last_out >= ping_ms && !q_pending(&out)) {
			q_frame(&out, MSG_KEEPALIVE, NULL, 0);
			last_out = t; /* flushed on the next turn */
		}
	}
	if (fl_r >= 0)
		fcntl(c->rfd, F_SETFL, fl_r);
	if (fl_w >= 0 && c->wfd != c->rfd)
		fcntl(c->wfd, F_SETFL, fl_w);
	if (fl_s >= 0)
		fcntl(sock, F_SETFL, fl_s);
done_free:
	free(buf);
	free(scratch);
	free(in.b);
	free(out.b);
	free(to_sock.b);
	return r < 0 ? r : 0;
}

int relay_connect_loopback(int port, struct error *e)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return error_errno(e, errno, "socket");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = errno;
		close(s);
		return error_errno(e, err, "cannot connect to 127.0.0.1:%d", port);
	}
	return s;
}

int relay_listen_loopback(int *ret_port, struct error *e)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return error_errno(e, errno, "socket");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &l) < 0) {
		int err = errno;
		close(s);
		return error_errno(e, err, "cannot listen on 127.0.0.1");
	}
	*ret_port = ntohs(a.sin_port);
	return s;
}
