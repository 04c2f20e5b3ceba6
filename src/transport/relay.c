#include "transport/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int relay_pump(struct proto_conn *c, int sock, unsigned lease_ms, struct relay_stats *st, struct error *e)
{
	bool sock_eof = false, peer_eof = false;
	int ping_ms = lease_ms >= 3 ? (int)(lease_ms / 3) : 1000;
	double last_in = now_ms(), last_out = now_ms();
	uint8_t *buf = malloc(RELAY_BUF);
	int r = 0;

	if (!buf)
		return error_set(e, ENOMEM, "out of memory");
	memset(st, 0, sizeof(*st));
	int one = 1;
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (!(sock_eof && peer_eof)) {
		struct pollfd pf[2] = { { c->rfd, POLLIN, 0 }, { sock_eof ? -1 : sock, POLLIN, 0 } };
		int k = poll(pf, 2, ping_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = error_errno(e, errno, "poll");
			break;
		}
		if (pf[1].revents) {
			ssize_t n = read(sock, buf, RELAY_BUF);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != ECONNRESET) {
				r = error_errno(e, errno, "reading the relayed socket");
				break;
			}
			if (n <= 0) {
				sock_eof = true;
				r = proto_send_msg(c, MSG_RELAY_CLOSE, NULL, e);
			} else {
				st->to_peer += (uint64_t)n;
				r = proto_send(c, MSG_DATA, RELAY_CHAN, buf, (uint32_t)n, e);
			}
			if (r < 0)
				break;
			last_out = now_ms();
		}
		if (pf[0].revents) {
			struct frame f;
			r = proto_recv(c, &f, e);
			if (r < 0)
				break;
			last_in = now_ms();
			if (f.type == MSG_DATA) {
				if (f.chan != RELAY_CHAN || peer_eof) {
					r = error_set(e, EPROTO, "protocol error: relay data on channel %u%s", f.chan,
						      peer_eof ? " after RELAY_CLOSE" : "");
					break;
				}
				if (f.len == 0)
					continue; /* ping */
				r = write_all(sock, f.data, f.len);
				if (r < 0) {
					error_errno(e, -r, "writing the relayed socket");
					break;
				}
				st->from_peer += f.len;
			} else if (f.type == MSG_RELAY_CLOSE) {
				peer_eof = true;
				shutdown(sock, SHUT_WR);
			} else if (f.type == MSG_ERROR) {
				struct msg m;
				if (msg_decode(f.type, f.data, f.len, &m, e) == 0) {
					error_set(e, EIO, "%s: %s", c->peer, m.str[A_MESSAGE]);
					msg_free(&m);
				}
				r = -EIO;
				break;
			} else {
				r = error_set(e, EPROTO, "protocol error: %s inside the page relay", msg_type_name(f.type));
				break;
			}
		}
		double t = now_ms();
		if (t - last_in > lease_ms) {
			r = error_set(e, ETIMEDOUT, "the page relay heard nothing from %s for %u ms", c->peer, lease_ms);
			break;
		}
		if (t - last_out >= ping_ms) {
			r = proto_send(c, MSG_DATA, RELAY_CHAN, NULL, 0, e);
			if (r < 0)
				break;
			last_out = t;
		}
	}
	free(buf);
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
