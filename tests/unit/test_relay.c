/* Unit tests of the page relay (src/transport/relay.c): a TCP-like stream
 * carried both ways through a pair of protocol connections, its half
 * closes, a protocol violation and the silence bound. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "transport/relay.h"
#include "util/log.h"

struct pump {
	struct proto_conn *c;
	int sock;
	unsigned lease;
	const struct relay_opts *ro;
	struct relay_stats st;
	struct error e;
	int r;
};

static void *pump_thread(void *arg)
{
	struct pump *p = arg;
	p->r = relay_pump(p->c, p->sock, p->lease, p->ro, &p->st, &p->e);
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
	int r = relay_pump(&ca, s[1], 5000, NULL, &st, &e);
	ok(r == -EPROTO && strstr(e.msg, "STREAM_BEGIN"), "another message inside the relay is a protocol error: %s", e.msg);
	error_clear(&e);
	proto_send(&cb, MSG_DATA, 7, "x", 1, &e);
	r = relay_pump(&ca, s[1], 5000, NULL, &st, &e);
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
	int r = relay_pump(&ca, s[1], 1200, NULL, &st, &e);
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

/* --- pages by content (hybrid): a CRIU-like page server and daemon ------------- */

#define STORE_PAGES 40
#define NREQ 50
static uint8_t store_pages[STORE_PAGES][PAGE_SZ];

/* the content of page j of the workload: from the store, zero, or new */
static void content(uint64_t j, uint8_t *p)
{
	if (j % 3 == 0) {
		memcpy(p, store_pages[(j / 3) % STORE_PAGES], PAGE_SZ);
	} else if (j % 3 == 1) {
		memset(p, 0, PAGE_SZ);
	} else {
		for (size_t i = 0; i < PAGE_SZ; i++)
			p[i] = (uint8_t)((j * 7919 + i) * 2654435761u >> 17);
	}
}

static void put_iov(uint8_t *b, uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t dst)
{
	memset(b, 0, PSR_IOV_SIZE);
	memcpy(b, &cmd, 4);
	memcpy(b + 8, &nr, 8);
	memcpy(b + 16, &vaddr, 8);
	memcpy(b + 24, &dst, 8);
}

static int read_n(int fd, void *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t k = read(fd, (uint8_t *)p + off, n - off);
		if (k <= 0)
			return -1;
		off += (size_t)k;
	}
	return 0;
}

/* request i: 1 + i % 9 pages at page 100 * i; the server answers at most 6 */
static uint64_t req_nr(int i) { return 1 + (uint64_t)(i % 9); }
static uint64_t ans_nr(int i) { return req_nr(i) < 6 ? req_nr(i) : 6; }

static void *fake_server(void *arg)
{
	int fd = *(int *)arg;
	uint8_t b[PSR_IOV_SIZE], page[PAGE_SZ];
	for (;;) {
		struct psr_iov q;
		if (read_n(fd, b, sizeof(b)) < 0)
			break;
		psr_iov_decode(b, &q);
		if (q.cmd == PSR_CMD_CLOSE) {
			int32_t status = 0;
			if (write(fd, &status, 4) != 4)
				break;
			continue; /* until the daemon closes */
		}
		uint64_t n = q.nr_pages < 6 ? q.nr_pages : 6;
		put_iov(b, PSR_CMD_ADD_F | PSR_PE_PRESENT << 16, n, q.vaddr, q.dst_id);
		if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			break;
		for (uint64_t k = 0; k < n; k++) {
			content(q.vaddr / PAGE_SZ + k, page);
			if (write(fd, page, PAGE_SZ) != PAGE_SZ)
				return NULL;
		}
	}
	shutdown(fd, SHUT_WR);
	return NULL;
}

struct daemon_res {
	int fd, bad, answered;
	bool closed;
};

static void *fake_daemon(void *arg)
{
	struct daemon_res *d = arg;
	uint8_t b[PSR_IOV_SIZE], page[PAGE_SZ], want[PAGE_SZ];
	/* all requests at once, as the daemon's background transfer does */
	for (int i = 0; i < NREQ; i++) {
		put_iov(b, PSR_CMD_GET, req_nr(i), (uint64_t)i * 100 * PAGE_SZ, (uint64_t)(1234 + i % 2) << 8 | 1);
		if (write(d->fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			return NULL;
	}
	for (int i = 0; i < NREQ; i++) {
		struct psr_iov a;
		if (read_n(d->fd, b, sizeof(b)) < 0)
			return NULL;
		psr_iov_decode(b, &a);
		if (a.nr_pages != ans_nr(i) || a.vaddr != (uint64_t)i * 100 * PAGE_SZ)
			d->bad++;
		for (uint64_t k = 0; k < a.nr_pages && k < 16; k++) {
			if (read_n(d->fd, page, PAGE_SZ) < 0)
				return NULL;
			content((uint64_t)i * 100 + k, want);
			if (memcmp(page, want, PAGE_SZ))
				d->bad++;
		}
		d->answered++;
	}
	put_iov(b, PSR_CMD_CLOSE, 0, 0, 0);
	int32_t status = -1;
	if (write(d->fd, b, sizeof(b)) == (ssize_t)sizeof(b) && read_n(d->fd, &status, 4) == 0 && status == 0)
		d->closed = true;
	shutdown(d->fd, SHUT_WR);
	return NULL;
}

/* One relay run: the daemon's requests and the server's answers through a
 * source pump with a tap and an agent pump with the store. */
static void run_paged(int store_fd, struct pump *pa, struct pump *pb, struct daemon_res *dr)
{
	struct proto_conn ca, cb;
	int daemon[2], server[2];
	pthread_t ta, tb, ts, td;
	struct pageset set = { 0 };
	struct psr_tap tap;
	struct error e = { 0 };

	for (int i = 0; i < STORE_PAGES; i++)
		pageset_add(&set, page_hash(store_pages[i]));
	psr_tap_init(&tap, &set, NULL, NULL, &e);
	struct relay_opts ra = { .tap = &tap, .store_fd = -1 };
	static struct relay_opts rb;
	rb = (struct relay_opts){ .pages = true, .store_fd = store_fd, .store_pages = STORE_PAGES };
	conn_pair(&ca, &cb);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, daemon) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, server) < 0)
		abort();
	*pa = (struct pump){ .c = &ca, .sock = server[1], .lease = 5000, .ro = &ra };
	*pb = (struct pump){ .c = &cb, .sock = daemon[1], .lease = 5000, .ro = &rb };
	*dr = (struct daemon_res){ .fd = daemon[0] };
	pthread_create(&ta, NULL, pump_thread, pa);
	pthread_create(&tb, NULL, pump_thread, pb);
	pthread_create(&ts, NULL, fake_server, &server[0]);
	pthread_create(&td, NULL, fake_daemon, dr);
	/* a failed agent pump leaves the daemon waiting: its end closes */
	pthread_join(tb, NULL);
	close(daemon[1]);
	pthread_join(td, NULL);
	close(daemon[0]);
	pthread_join(ta, NULL);
	close(server[1]);
	pthread_join(ts, NULL);
	close(server[0]);
	psr_tap_free(&tap);
	pageset_free(&set);
	proto_conn_free(&ca);
	proto_conn_free(&cb);
}

static void test_pages_by_content(void)
{
	struct pump pa, pb;
	struct daemon_res dr;
	uint64_t pages = 0, in_store = 0, zero = 0;

	for (int i = 0; i < STORE_PAGES; i++)
		for (size_t k = 0; k < PAGE_SZ; k++)
			store_pages[i][k] = (uint8_t)((i + 1) * 131 + k * 17 + (k >> 9));
	for (int i = 0; i < NREQ; i++)
		for (uint64_t k = 0; k < ans_nr(i); k++) {
			uint64_t j = (uint64_t)i * 100 + k;
			pages++;
			in_store += j % 3 == 0;
			zero += j % 3 == 1;
		}
	int fd = memfd_create("test-store", 0);
	for (int i = 0; i < STORE_PAGES; i++)
		if (write(fd, store_pages[i], PAGE_SZ) != PAGE_SZ)
			abort();

	run_paged(fd, &pa, &pb, &dr);
	is_int(pa.r, 0, "source pump with the tap ends cleanly (%s)", pa.e.msg);
	is_int(pb.r, 0, "agent pump with the store ends cleanly (%s)", pb.e.msg);
	ok(dr.answered == NREQ && dr.bad == 0 && dr.closed,
	   "the daemon gets every answer, byte for byte, and the CLOSE status (%d answered, %d bad)", dr.answered, dr.bad);
	ok(pa.st.pages.copied == in_store && pa.st.pages.zero == zero && pa.st.pages.raw == pages - in_store - zero,
	   "the source sent %llu of %llu pages as store references, %llu as zero, %llu in full",
	   (unsigned long long)pa.st.pages.copied, (unsigned long long)pages, (unsigned long long)pa.st.pages.zero,
	   (unsigned long long)pa.st.pages.raw);
	ok(pb.st.pages.copied == pa.st.pages.copied && pb.st.pages.raw == pa.st.pages.raw,
	   "the agent rebuilt the same pages from its store");
	ok(pa.st.wire_out < pa.st.to_peer - (in_store + zero) * PAGE_SZ + 64 * 1024,
	   "what crossed the link (%llu bytes) is about the CRIU stream (%llu) less the pages not sent",
	   (unsigned long long)pa.st.wire_out, (unsigned long long)pa.st.to_peer);

	/* a store page that is not what the source believes: the digest says so */
	uint8_t junk[PAGE_SZ];
	memset(junk, 0xa5, sizeof(junk));
	if (pwrite(fd, junk, PAGE_SZ, 0) != PAGE_SZ) /* page 0 of the workload's content */
		abort();
	run_paged(fd, &pa, &pb, &dr);
	ok(pb.r == -EPROTO && strstr(pb.e.msg, "digest"), "a damaged store page is caught on the destination: %s",
	   pb.e.msg);
	ok(dr.answered < NREQ, "and the daemon never gets the damaged answer (%d of %d answered)", dr.answered, NREQ);

	/* without a store, a reference is a protocol error */
	run_paged(-1, &pa, &pb, &dr);
	ok(pb.r == -EPROTO && strstr(pb.e.msg, "has none"), "a reference without a store is refused: %s", pb.e.msg);
	close(fd);
}

/* Frames that waited for room in the socket's queue go on as soon as the
 * socket has taken the queue, not at the next sign of life of the peer. */
static size_t want_bytes;
static void *slow_reader(void *arg)
{
	struct reader *r = arg;
	struct pollfd none;
	poll(&none, 0, 300); /* the queue fills meanwhile */
	size_t cap = want_bytes;
	r->buf = malloc(cap);
	r->n = 0;
	double t0 = now_ms();
	while (r->n < cap && now_ms() - t0 < 4000) {
		struct pollfd pf = { r->fd, POLLIN, 0 };
		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t k = read(r->fd, r->buf + r->n, cap - r->n);
		if (k <= 0)
			break;
		r->n += (size_t)k;
		if (r->n >= want_bytes)
			break;
	}
	return NULL;
}

static void test_waiting_frames(void)
{
	struct proto_conn ca, cb;
	struct error e = { 0 };
	int s[2];
	pthread_t tp, tr;
	static uint8_t chunk[256 * 1024];

	conn_pair(&ca, &cb);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0)
		abort();
	/* a socket whose buffer, once the reader drains it, takes the whole
	 * queue at once, as a loopback TCP socket to CRIU's daemon does (the
	 * kernel doubles the 2 MiB; a unix socket is writable again when 3/4
	 * of it is free) */
	int big = 2 << 20, eff = 0;
	socklen_t el = sizeof(eff);
	setsockopt(s[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	getsockopt(s[1], SOL_SOCKET, SO_SNDBUF, &eff, &el);
	/* what the socket holds, then the socket's queue (1 MiB), then what
	 * waits in the inbound queue: the peer has sent everything */
	int frames = (int)(((size_t)eff + (1u << 20) + (3u << 18)) / sizeof(chunk));
	/* a long lease: the peer's keepalives would come only after 20 s */
	struct pump pa = { .c = &ca, .sock = s[1], .lease = 60000 };
	struct reader rd = { .fd = s[0] };
	pthread_create(&tp, NULL, pump_thread, &pa);
	pthread_create(&tr, NULL, slow_reader, &rd);
	want_bytes = (size_t)frames * sizeof(chunk);
	for (int i = 0; i < frames; i++) {
		memset(chunk, i + 1, sizeof(chunk));
		proto_send(&cb, MSG_DATA, RELAY_CHAN, chunk, sizeof(chunk), &e);
	}
	double t0 = now_ms();
	pthread_join(tr, NULL);
	ok(rd.n == want_bytes, "%zu bytes reach a slow reader without waiting for the peer (%zu bytes in %.0f ms)", want_bytes, rd.n,
	   now_ms() - t0);
	free(rd.buf);
	proto_send(&cb, MSG_RELAY_CLOSE, 0, NULL, 0, &e);
	shutdown(s[0], SHUT_WR);
	pthread_join(tp, NULL);
	close(s[0]);
	close(s[1]);
	proto_conn_free(&ca);
	proto_conn_free(&cb);
}

int main(void)
{
	test_waiting_frames();
	test_pages_by_content();
	test_both_ways();
	test_violation();
	test_silence();
	test_loopback();
	return done_testing();
}
