/* Unit tests of the page relay (src/transport/relay.c): a TCP-like stream
 * carried both ways through a pair of protocol connections, its half
 * closes, a protocol violation and the silence bound. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "transport/relay.h"
#include "util/log.h"

struct pump {
	struct proto_conn *c;
	int sock;
	unsigned lease;
	struct relay_stats st;
	struct error e;
	int r;
};

static void *pump_thread(void *arg)
{
	struct pump *p = arg;
	p->r = relay_pump(p->c, p->sock, p->lease, &p->st, &p->e);
	return NULL;
}

struct writer {
	int fd;
	const unsigned char *buf;
	size_t n;
	bool shut;
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	size_t off = 0;
	while (off < w->n) {
		ssize_t k = write(w->fd, w->buf + off, w->n - off > 70000 ? 70000 : w->n - off);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	if (w->shut)
		shutdown(w->fd, SHUT_WR);
	return NULL;
}

struct reader {
	int fd;
	unsigned char *buf;
	size_t n;
};

static unsigned char *read_all(int fd, size_t *n);

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	r->buf = read_all(r->fd, &r->n);
	return NULL;
}

/* reads fd to its end into a malloc'ed buffer */
static unsigned char *read_all(int fd, size_t *n)
{
	size_t cap = 1 << 16, l = 0;
	unsigned char *b = malloc(cap);
	for (;;) {
		if (l == cap)
			b = realloc(b, cap *= 2);
		ssize_t k = read(fd, b + l, cap - l);
		if (k <= 0)
			break;
		l += (size_t)k;
	}
	*n = l;
	return b;
}

static void conn_pair(struct proto_conn *a, struct proto_conn *b)
{
	int ab[2], ba[2];
	struct error e = { 0 };
	if (pipe(ab) < 0 || pipe(ba) < 0)
		abort();
	proto_conn_init(a, ba[0], ab[1], "peer-b", &e);
	proto_conn_init(b, ab[0], ba[1], "peer-a", &e);
	a->timeout_ms = b->timeout_ms = 5000;
}

static void test_both_ways(void)
{
	struct proto_conn ca, cb;
	int daemon[2], server[2];
	size_t big = 3u << 20, small = 700000, got_n;
	unsigned char *up = malloc(big), *down = malloc(small), *got;
	pthread_t ta, tb, tw1, tw2;
	(void)got_n;

	for (size_t i = 0; i < big; i++)
		up[i] = (unsigned char)(i * 2654435761u >> 13);
	for (size_t i = 0; i < small; i++)
		down[i] = (unsigned char)(i * 40503u >> 5);
	conn_pair(&ca, &cb);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, daemon) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, server) < 0)
		abort();
	/* A: the source's side (page server socket), B: the agent's (daemon socket) */
	struct pump pa = { .c = &ca, .sock = server[1], .lease = 5000 }, pb = { .c = &cb, .sock = daemon[1], .lease = 5000 };
	pthread_create(&ta, NULL, pump_thread, &pa);
	pthread_create(&tb, NULL, pump_thread, &pb);
	/* the daemon asks (3 MiB), the page server answers (700 KB), then each ends its side */
	struct writer w1 = { daemon[0], up, big, true }, w2 = { server[0], down, small, true };
	pthread_create(&tw1, NULL, writer_thread, &w1);
	pthread_create(&tw2, NULL, writer_thread, &w2);
	/* both ends read at once, as CRIU's do */
	struct reader rd = { .fd = daemon[0] };
	pthread_t tr;
	pthread_create(&tr, NULL, reader_thread, &rd);
	got = read_all(server[0], &got_n);
	ok(got_n == big && memcmp(got, up, big) == 0, "3 MiB from the daemon's side arrive intact at the server's (%zu bytes)",
	   got_n);
	free(got);
	pthread_join(tr, NULL);
	ok(rd.n == small && memcmp(rd.buf, down, small) == 0,
	   "700 KB from the server's side arrive intact at the daemon's (%zu bytes)", rd.n);
	free(rd.buf);
	pthread_join(tw1, NULL);
	pthread_join(tw2, NULL);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	is_int(pa.r, 0, "the source's pump ends cleanly once both sides closed (%s)", pa.e.msg);
	is_int(pb.r, 0, "the agent's pump ends cleanly once both sides closed (%s)", pb.e.msg);
	ok(pb.st.to_peer == big && pa.st.from_peer == big && pa.st.to_peer == small && pb.st.from_peer == small,
	   "the byte counts match both ways");
	free(up);
	free(down);
	close(daemon[0]);
	close(daemon[1]);
	close(server[0]);
	close(server[1]);
	proto_conn_free(&ca);
	proto_conn_free(&cb);
}

static void test_violation(void)
{
	struct proto_conn ca, cb;
	int s[2];
	struct mbuf mb;
	struct error e = { 0 };
	struct relay_stats st;

	conn_pair(&ca, &cb);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0)
		abort();
	mb_init(&mb);
	mb_u32(&mb, A_AREA, 1);
	proto_send_msg(&cb, MSG_STREAM_BEGIN, &mb, &e);
	mb_free(&mb);
	int r = relay_pump(&ca, s[1], 5000, &st, &e);
	ok(r == -EPROTO && strstr(e.msg, "STREAM_BEGIN"), "another message inside the relay is a protocol error: %s", e.msg);
	error_clear(&e);
	proto_send(&cb, MSG_DATA, 7, "x", 1, &e);
	r = relay_pump(&ca, s[1], 5000, &st, &e);
	ok(r == -EPROTO && strstr(e.msg, "channel 7"), "data on another channel is refused: %s", e.msg);
	close(s[0]);
	close(s[1]);
	proto_conn_free(&ca);
	proto_conn_free(&cb);
}

static void test_silence(void)
{
	struct proto_conn ca, cb;
	int s[2];
	struct error e = { 0 };
	struct relay_stats st;
	double t0 = now_ms();

	conn_pair(&ca, &cb);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0)
		abort();
	/* cb never answers: the pump pings, then gives up after the lease */
	int r = relay_pump(&ca, s[1], 1200, &st, &e);
	double took = now_ms() - t0;
	ok(r == -ETIMEDOUT && took >= 1100 && took < 4000, "a silent peer ends the relay after its lease (%.0f ms): %s",
	   took, e.msg);
	close(s[0]);
	close(s[1]);
	proto_conn_free(&ca);
	proto_conn_free(&cb);
}

static void test_loopback(void)
{
	struct error e = { 0 };
	int port = 0, l = relay_listen_loopback(&port, &e);
	ok(l >= 0 && port > 0, "listens on 127.0.0.1 with a port of the kernel's choice (%d)", port);
	int c = relay_connect_loopback(port, &e);
	ok(c >= 0, "connects to it");
	if (c >= 0)
		close(c);
	close(l);
	c = relay_connect_loopback(port, &e);
	ok(c < 0 && strstr(e.msg, "127.0.0.1"), "a closed port says where: %s", e.msg);
}

int main(void)
{
	test_both_ways();
	test_violation();
	test_silence();
	test_loopback();
	return done_testing();
}
