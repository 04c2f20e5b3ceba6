/* Unit tests of the page streams (transport/pages.c, agent/pagestore.c):
 * the content set, the compression policy, the decoder's bounds on hostile
 * batches, and writer -> wire -> page store / rebuilt image round trips over
 * a socketpair, including a damaged frame caught by the end-to-end hash.
 * Also the convergence policy (engine/converge.c), and pre-copy rounds of a
 * live child (engine/memscan.c, its reader threads). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "agent/pagestore.h"
#include "engine/converge.h"
#include "engine/images.h"
#include "engine/memscan.h"
#include "transport/tree.h"
#include "transport/pages.h"
#include "util/fs.h"
#include "tap.h"

static void fill(uint8_t *p, uint32_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < PAGE_SZ; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

/* --- decoder sinks that record what they were told ------------------------------ */
struct rec {
	uint32_t raw, copy_first, copy_count, zero, tail;
};
static int r_raw(void *a, const uint8_t *p, uint32_t n, struct error *e) { (void)p; (void)e; ((struct rec *)a)->raw += n; return 0; }
static int r_copy(void *a, uint32_t f, uint32_t n, struct error *e) { (void)e; ((struct rec *)a)->copy_first = f; ((struct rec *)a)->copy_count += n; return 0; }
static int r_zero(void *a, uint32_t n, struct error *e) { (void)e; ((struct rec *)a)->zero += n; return 0; }
static int r_tail(void *a, const uint8_t *p, uint16_t n, struct error *e) { (void)p; (void)e; ((struct rec *)a)->tail += n; return 0; }

static int decode(const uint8_t *p, size_t n, bool images, struct rec *r, struct error *e)
{
	static uint8_t scratch[PAGES_BATCH_MAX];
	struct page_sink k = { r_raw, r_copy, r_zero, r_tail, r, images, false };
	memset(r, 0, sizeof(*r));
	error_clear(e);
	return pages_decode(p, n, scratch, &k, e);
}

static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

static void test_decoder(void)
{
	static uint8_t b[PAGE_SZ * 2 + 64];
	struct error e = { 0 };
	struct rec r;

	/* plain: RAW 2, COPY 5+3, ZERO 4, TAIL 10 */
	size_t n = 0;
	b[n++] = PENC_PLAIN;
	b[n++] = PREC_RAW; put32(b + n, 2); n += 4; n += 2 * PAGE_SZ;
	b[n++] = PREC_COPY; put32(b + n, 5); put32(b + n + 4, 3); n += 8;
	b[n++] = PREC_ZERO; put32(b + n, 4); n += 4;
	b[n++] = PREC_TAIL; b[n++] = 0; b[n++] = 10; n += 10;
	ok(decode(b, n, true, &r, &e) == 0 && r.raw == 2 && r.copy_first == 5 && r.copy_count == 3 && r.zero == 4 &&
		   r.tail == 10,
	   "a batch of every record type decodes");
	ok(decode(b, n, false, &r, &e) == -EPROTO && strstr(e.msg, "COPY outside"), "pre-copy streams carry only RAW: %s",
	   e.msg);
	ok(decode(b, n - 1, true, &r, &e) == -EPROTO && strstr(e.msg, "TAIL"), "a tail longer than the batch: %s", e.msg);
	ok(decode(b, 6 + 2 * PAGE_SZ + 5, true, &r, &e) == -EPROTO && strstr(e.msg, "truncated"),
	   "a record cut short is refused: %s", e.msg);
	b[n] = PREC_ZERO;
	put32(b + n + 1, 1);
	ok(decode(b, n + 5, true, &r, &e) == -EPROTO && strstr(e.msg, "after the tail"), "nothing may follow the tail: %s",
	   e.msg);

	uint8_t h[16] = { PENC_PLAIN, PREC_RAW };
	put32(h + 2, 1);
	ok(decode(h, 6, true, &r, &e) == -EPROTO && strstr(e.msg, "longer than the batch"), "RAW claiming more pages "
	   "than present: %s", e.msg);
	put32(h + 2, 0);
	ok(decode(h, 6, true, &r, &e) == -EPROTO && strstr(e.msg, "zero pages"), "a RAW of 0 pages: %s", e.msg);
	put32(h + 2, 0xffffffffu);
	ok(decode(h, 6, true, &r, &e) == -EPROTO, "RAW of 2^32-1 pages (overflow) refused");
	uint8_t c[10] = { PENC_PLAIN, PREC_COPY };
	put32(c + 2, 0xfffffff0u);
	put32(c + 6, 0x20);
	ok(decode(c, 10, true, &r, &e) == -EPROTO && strstr(e.msg, "beyond"), "COPY wrapping around: %s", e.msg);
	uint8_t u[2] = { PENC_PLAIN, 9 };
	ok(decode(u, 2, true, &r, &e) == -EPROTO && strstr(e.msg, "unknown record"), "unknown record type: %s", e.msg);
	uint8_t en[2] = { 7, 0 };
	ok(decode(en, 2, true, &r, &e) == -EPROTO && strstr(e.msg, "encoding"), "unknown encoding: %s", e.msg);
	ok(decode(en, 0, true, &r, &e) == -EPROTO, "an empty payload is refused");

	/* zstd: a bomb that claims a small plain size */
	static uint8_t plain[PAGE_SZ * 4], z[PAGE_SZ * 8];
	memset(plain, 0, sizeof(plain));
	plain[0] = PREC_ZERO;
	put32(plain + 1, 1);
	size_t zn = ZSTD_compress(z + 5, sizeof(z) - 5, plain, sizeof(plain), 1);
	z[0] = PENC_ZSTD;
	put32(z + 1, 5);
	ok(decode(z, zn + 5, true, &r, &e) == -EPROTO, "zstd output larger than announced is refused: %s", e.msg);
	put32(z + 1, PAGES_BATCH_MAX + 1);
	ok(decode(z, zn + 5, true, &r, &e) == -EPROTO && strstr(e.msg, "plain length"), "announced plain length above "
	   "the batch maximum: %s", e.msg);
	zn = ZSTD_compress(z + 5, sizeof(z) - 5, plain, 5, 1);
	put32(z + 1, 5);
	ok(decode(z, zn + 5, true, &r, &e) == 0 && r.zero == 1, "a well-formed zstd batch decodes");
	z[7] ^= 0xff;
	ok(decode(z, zn + 5, true, &r, &e) == -EPROTO, "a damaged zstd frame is refused: %s", e.msg);
}

static void test_pageset(void)
{
	struct pageset s = { 0 };
	static uint8_t pg[PAGE_SZ];
	bool all = true;

	for (uint32_t i = 0; i < 20000; i++) {
		fill(pg, i);
		all &= pageset_add(&s, page_hash(pg)) == 0;
	}
	ok(all && s.stored == 20000 && s.n == 20000, "20000 distinct pages stored (grows past its first size)");
	fill(pg, 12345);
	is_int((int)pageset_find(&s, page_hash(pg)), 12345, "content 12345 is at store index 12345");
	fill(pg, 99999);
	is_int((int)pageset_find(&s, page_hash(pg)), -1, "unknown content is not found");
	fill(pg, 7);
	pageset_add(&s, page_hash(pg));
	is_int((int)pageset_find(&s, page_hash(pg)), 20000, "the same content stored again: the newest index");
	memset(pg, 0, sizeof(pg));
	ok(page_is_zero(pg), "a zero page is zero");
	pg[4000] = 1;
	ok(!page_is_zero(pg), "one byte makes it non-zero");
	pageset_free(&s);
	ok(pageset_find(&s, page_hash(pg)) == -1, "an empty set finds nothing");
}

static void test_zpolicy(void)
{
	struct zpolicy z = { .mode = ZMODE_AUTO };

	ok(zpolicy_try(&z), "auto tries compression before it has measured anything");
	zpolicy_update(&z, 1000000, 995000, 0.002); /* incompressible */
	ok(!zpolicy_pays(&z), "incompressible data: it does not pay");
	int tries = 0;
	for (int i = 0; i < ZPOLICY_PROBE_EVERY; i++)
		tries += zpolicy_try(&z);
	ok(tries == 0 && zpolicy_try(&z), "then plain for %d batches, and a probe again", ZPOLICY_PROBE_EVERY);
	struct zpolicy f = { .mode = ZMODE_AUTO, .wire_bps = 125e6 };
	zpolicy_update(&f, 1000000, 300000, 0.5); /* the first: zstd set up its tables */
	ok(zpolicy_pays(&f) && f.skip == 0, "the first compression's speed is not held against it");
	zpolicy_update(&f, 1000000, 300000, 0.5); /* really slow this time */
	ok(!zpolicy_pays(&f) && f.skip == ZPOLICY_RETRY_SLOW, "compressible but slow: plain, and a new try after %d",
	   ZPOLICY_RETRY_SLOW);
		z.wire_bps = 125e6; /* 1 Gbit/s */
	zpolicy_update(&z, 1000000, 300000, 0.002); /* 500 MB/s, ratio 0.3 */
	ok(zpolicy_pays(&z), "ratio 0.3 at 500 MB/s over 1 Gbit/s pays");
	z.wire_bps = 2e9; /* a link much faster than zstd */
	zpolicy_update(&z, 1000000, 300000, 0.002);
	ok(!zpolicy_pays(&z), "the same over a 2 GB/s link does not (compressing is slower than sending)");
	struct zpolicy never = { .mode = ZMODE_NEVER }, always = { .mode = ZMODE_ALWAYS };
	ok(!zpolicy_try(&never) && zpolicy_try(&always), "--compress none / zstd");
	zpolicy_update(&always, 100, 99, 1);
	ok(zpolicy_pays(&always), "--compress zstd compresses even when it does not pay");
}

/* --- writer -> socketpair -> receiver round trips ------------------------------------- */

struct job {
	int fd;
	int area;
	const char *dir, *name;
	struct pagestore *ps;
	int rc;
	char msg[512];
};

static void *receiver(void *arg)
{
	struct job *j = arg;
	struct proto_conn c;
	struct error e = { 0 };
	struct frame f;
	bool rep;

	proto_conn_init(&c, j->fd, j->fd, "source", &e);
	snprintf(c.self, sizeof(c.self), "dest");
	j->rc = proto_recv(&c, &f, &e);
	if (j->rc == 0)
		j->rc = j->area == AREA_PAGES ? pagestore_recv(&c, &f, j->ps, &rep, &e)
					      : pageimage_recv(&c, &f, j->dir, j->name, j->ps, &rep, &e);
	if (j->rc < 0 && !rep)
		proto_send_error(&c, &e, "dest");
	snprintf(j->msg, sizeof(j->msg), "%s", e.msg);
	proto_conn_free(&c);
	return NULL;
}

/* Sends pages [seeds] as one AREA_PAGES stream (set updated); returns the sender's rc. */
static int send_store(int fd, struct pageset *set, const uint32_t *seeds, int n, struct error *e)
{
	struct proto_conn c;
	struct page_writer w;
	struct zpolicy z = { .mode = ZMODE_AUTO };
	int r;

	proto_conn_init(&c, fd, fd, "dest", e);
	r = pw_begin(&w, &c, 3, AREA_PAGES, NULL, &z, e);
	for (int i = 0; r == 0 && i < n; i++) {
		uint8_t *room;
		uint32_t got;
		r = pw_raw_room(&w, 1, &room, &got);
		if (r == 0) {
			fill(room, seeds[i]);
			pageset_add(set, page_hash(room));
			r = pw_raw_commit(&w, 1);
		}
	}
	if (r == 0)
		r = pw_end(&w);
	pw_free(&w);
	proto_conn_free(&c);
	return r;
}

static void test_roundtrip(void)
{
	char dir[] = "/tmp/cmt-test-pages.XXXXXX", store[128], img[160], src[160];
	struct pageset set = { 0 };
	struct pagestore ps;
	struct error e = { 0 };
	int sv[2];
	pthread_t t;

	ok(mkdtemp(dir) != NULL, "a temp dir");
	snprintf(store, sizeof(store), "%s/pagestore", dir);
	pagestore_init(&ps, store, dir);

	/* two pre-copy rounds */
	uint32_t r1[300], r2[5] = { 1000, 1001, 1002, 7, 1003 };
	for (int i = 0; i < 300; i++)
		r1[i] = (uint32_t)i;
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct job j = { .fd = sv[1], .area = AREA_PAGES, .ps = &ps };
	pthread_create(&t, NULL, receiver, &j);
	int rs = send_store(sv[0], &set, r1, 300, &e);
	pthread_join(t, NULL);
	close(sv[0]);
	ok(rs == 0 && j.rc == 0 && ps.pages == 300, "round 1: 300 pages stored (%s %s)", e.msg, j.msg);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	j.fd = sv[1];
	pthread_create(&t, NULL, receiver, &j);
	rs = send_store(sv[0], &set, r2, 5, &e);
	pthread_join(t, NULL);
	close(sv[0]);
	ok(rs == 0 && j.rc == 0 && ps.pages == 305, "round 2: appended, 305 pages in the store");
	pagestore_prealloc(&ps);
	pagestore_prealloc_wait(&ps); /* it grows in a thread */
	ok(ps.spare_fd >= 0 && ps.spare_bytes == 305u * PAGE_SZ, "space for the first image is allocated (305 pages)");

	/* a source image: pages known (runs), new ones, zero runs, and a tail */
	snprintf(src, sizeof(src), "%s/src.img", dir);
	FILE *f = fopen(src, "w");
	static uint8_t pg[PAGE_SZ];
	uint32_t layout[] = { 0, 1, 2, 3, 5000, 1000, 1001, 0xffffffff, 0xffffffff, 299, 7, 5001, 0xffffffff };
	for (size_t i = 0; i < sizeof(layout) / sizeof(layout[0]); i++) {
		if (layout[i] == 0xffffffff)
			memset(pg, 0, sizeof(pg));
		else
			fill(pg, layout[i]);
		fwrite(pg, 1, PAGE_SZ, f);
	}
	fwrite("tail-bytes", 1, 10, f);
	fclose(f);

	for (int damage = 0; damage < 2; damage++) {
		struct proto_conn c;
		struct page_writer w;
		struct zpolicy z = { .mode = damage ? ZMODE_NEVER : ZMODE_ALWAYS };
		uint8_t *room;
		uint32_t got;
		int r;
		char name[32];

		snprintf(name, sizeof(name), "pages-%d.img", damage + 1);
		snprintf(img, sizeof(img), "%s/%s", dir, name);
		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
		struct job ji = { .fd = sv[1], .area = AREA_PAGE_IMAGE, .dir = dir, .name = name, .ps = &ps };
		pthread_create(&t, NULL, receiver, &ji);
		proto_conn_init(&c, sv[0], sv[0], "dest", &e);
		r = pw_begin(&w, &c, 1, AREA_PAGE_IMAGE, name, &z, &e);
		f = fopen(src, "r");
		size_t k;
		uint64_t copied = 0, zero = 0, raw = 0;
		while (r == 0 && (k = fread(pg, 1, PAGE_SZ, f)) > 0) {
			int64_t idx;
			if (k < PAGE_SZ) {
				r = pw_tail(&w, pg, (uint16_t)k);
			} else if (page_is_zero(pg)) {
				zero++;
				r = pw_zero(&w);
			} else if ((idx = pageset_find(&set, page_hash(pg))) >= 0) {
				copied++;
				if (damage && copied == 2)
					idx = (idx + 1) % 300; /* a wrong (but valid) store index */
				r = pw_copy(&w, (uint32_t)idx, page_hash(pg));
			} else {
				raw++;
				r = pw_raw_room(&w, 1, &room, &got);
				if (r == 0) {
					memcpy(room, pg, PAGE_SZ);
					r = pw_raw_commit(&w, 1);
				}
			}
		}
		fclose(f);
		if (r == 0)
			r = pw_end(&w);
		pw_free(&w);
		proto_conn_free(&c);
		pthread_join(t, NULL);
		close(sv[0]);
		if (!damage) {
			ok(r == 0 && ji.rc == 0, "the page image is rebuilt and verified (%s / %s)", e.msg, ji.msg);
			is_int((int)copied, 8, "8 pages came from the store");
			is_int((int)raw, 2, "2 new pages travelled");
			is_int((int)zero, 3, "3 zero pages travelled as runs");
			char *a = NULL, *b = NULL;
			size_t al = 0, bl = 0;
			read_file(src, 1 << 20, &a, &al, &e);
			read_file(img, 1 << 20, &b, &bl, &e);
			ok(al == bl && al == 13 * PAGE_SZ + 10 && !memcmp(a, b, al), "byte-identical to the source's file");
			ok(access(ps.spare_path, F_OK) < 0 && ps.spare_fd < 0, "the first image took the spare (cut to its size)");
			struct stat sb;
			stat(img, &sb);
			ok((uint64_t)sb.st_blocks * 512 < (uint64_t)sb.st_size, "zero pages are holes (%lld blocks)",
			   (long long)sb.st_blocks);
			free(a);
			free(b);
		} else {
			ok(r < 0 && ji.rc == -EBADMSG && strstr(ji.msg, "integrity check"),
			   "a wrong store page is caught by the end-to-end hash: %s", ji.msg);
			ok(strstr(e.msg, "integrity check") != NULL, "and the source is told: %s", e.msg);
		}
	}

	/* a COPY beyond the store, and a name that exists */
	{
		struct proto_conn c;
		struct page_writer w;
		static uint8_t dummy[PAGE_SZ];
		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
		struct job jb = { .fd = sv[1], .area = AREA_PAGE_IMAGE, .dir = dir, .name = "pages-9.img", .ps = &ps };
		pthread_create(&t, NULL, receiver, &jb);
		proto_conn_init(&c, sv[0], sv[0], "dest", &e);
		int r = pw_begin(&w, &c, 1, AREA_PAGE_IMAGE, "pages-9.img", NULL, &e);
		if (r == 0)
			r = pw_copy(&w, 304, page_hash(dummy));
		if (r == 0)
			r = pw_copy(&w, 305, page_hash(dummy)); /* 304..305: one past the end */
		if (r == 0)
			r = pw_end(&w);
		pw_free(&w);
		proto_conn_free(&c);
		pthread_join(t, NULL);
		close(sv[0]);
		ok(r < 0 && jb.rc == -EPROTO && strstr(jb.msg, "the store holds 305"), "COPY past the store's end: %s",
		   jb.msg);
	}
	ok(!pageimage_name_valid("../x") && !pageimage_name_valid(".hidden") && !pageimage_name_valid("a/b") &&
		   !pageimage_name_valid("") && pageimage_name_valid("pages-12.img"),
	   "image names: no paths, no dot files");
	/* freed in the background (the agent, before the restore): the struct at
	 * once, the store's file by the time pagestore_close_wait returns */
	int store_fd = ps.fd;
	bool on_disk = access(store, F_OK) == 0; /* a memfd where the kernel has them */
	ok(store_fd >= 0 && ps.pages > 0, "the store is open before it is closed (%s)", on_disk ? "a file" : "a memfd");
	pagestore_close_async(&ps);
	ok(ps.fd == -1 && ps.pages == 0 && ps.dig == NULL && !ps.path[0], "pagestore_close_async: the struct owns nothing at once");
	pagestore_close_wait();
	ok(fcntl(store_fd, F_GETFD) == -1 && errno == EBADF && access(store, F_OK) != 0,
	   "... and the store is closed (its file gone) once the thread is done");
	pagestore_close(&ps); /* closing it again: nothing to do */
	pageset_free(&set);
	rm_rf(dir, &e);
}

/* images_send: page images by recipe (pages the store has, zero runs, new
 * pages, a tail), the other files in a pax stream; received as the agent
 * does. */
struct ijob {
	int fd;
	const char *dir;
	struct pagestore *ps;
	int rc, streams;
	char msg[512];
};

static void *images_receiver(void *arg)
{
	struct ijob *j = arg;
	struct proto_conn c;
	struct error e = { 0 };
	struct frame f;
	struct msg m;
	bool rep = false;

	proto_conn_init(&c, j->fd, j->fd, "source", &e);
	for (;;) {
		if (proto_recv(&c, &f, &e) < 0 || f.type != MSG_STREAM_BEGIN || msg_decode(f.type, f.data, f.len, &m, &e) < 0)
			break;
		uint32_t area = (uint32_t)m.num[A_AREA];
		char name[256] = "";
		if (msg_has(&m, A_NAME))
			snprintf(name, sizeof(name), "%s", m.str[A_NAME]);
		msg_free(&m);
		struct tree_stats ts;
		j->rc = area == AREA_PAGE_IMAGE ? pageimage_recv(&c, &f, j->dir, name, j->ps, &rep, &e)
						: tree_recv(&c, &f, j->dir, &ts, &rep, &e);
		j->streams++;
		if (j->rc < 0 || area == AREA_IMAGES)
			break;
	}
	if (j->rc < 0 && !rep)
		proto_send_error(&c, &e, "dest");
	snprintf(j->msg, sizeof(j->msg), "%s", e.msg);
	proto_conn_free(&c);
	return NULL;
}

/* The three images of the image tests read back the same in dst as in src. */
static bool images_identical(const char *src, const char *dst)
{
	static const char *names[] = { "pages-1.img", "pages-2.img", "core-1.img" };
	struct error e = { 0 };
	bool same = true;

	for (int i = 0; i < 3; i++) {
		char a[200], b[200];
		char *x = NULL, *y = NULL;
		size_t xl = 0, yl = 0;
		snprintf(a, sizeof(a), "%s/%s", src, names[i]);
		snprintf(b, sizeof(b), "%s/%s", dst, names[i]);
		read_file(a, 32 << 20, &x, &xl, &e);
		read_file(b, 32 << 20, &y, &yl, &e);
		same &= x && y && xl == yl && !memcmp(x, y, xl);
		free(x);
		free(y);
	}
	return same;
}

static void test_images_send(void)
{
	char src[] = "/tmp/cmt-test-img-src.XXXXXX", dst[] = "/tmp/cmt-test-img-dst.XXXXXX", path[160], store[160];
	struct pageset set = { 0 };
	struct pagestore ps;
	struct image_stats st;
	struct error e = { 0 };
	struct zpolicy z = { .mode = ZMODE_AUTO };
	static uint8_t pg[PAGE_SZ];
	int sv[2];
	pthread_t t;

	ok(mkdtemp(src) && mkdtemp(dst), "temp dirs");
	snprintf(store, sizeof(store), "%s/store", dst);
	pagestore_init(&ps, store, dst);
	/* a store of pages 0..99 (as pre-copy would leave it) */
	uint32_t seeds[100];
	for (int i = 0; i < 100; i++)
		seeds[i] = (uint32_t)i;
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct job js = { .fd = sv[1], .area = AREA_PAGES, .ps = &ps };
	pthread_create(&t, NULL, receiver, &js);
	send_store(sv[0], &set, seeds, 100, &e);
	pthread_join(t, NULL);
	close(sv[0]);
	pagestore_prealloc(&ps);
	/* pages-1.img: 300 new pages (more than one read), then known, zero, new, a tail;
	 * pages-2.img: only new pages; core-1.img: not a page image */
	snprintf(path, sizeof(path), "%s/pages-1.img", src);
	FILE *f = fopen(path, "w");
	for (uint32_t i = 0; i < 300; i++) {
		fill(pg, 1000 + i);
		fwrite(pg, 1, PAGE_SZ, f);
	}
	for (uint32_t i = 10; i < 20; i++) {
		fill(pg, i);
		fwrite(pg, 1, PAGE_SZ, f);
	}
	memset(pg, 0, PAGE_SZ);
	fwrite(pg, 1, PAGE_SZ, f);
	fill(pg, 5000);
	fwrite(pg, 1, PAGE_SZ, f);
	fwrite("end", 1, 3, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/pages-2.img", src);
	f = fopen(path, "w");
	fill(pg, 6000);
	fwrite(pg, 1, PAGE_SZ, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/core-1.img", src);
	f = fopen(path, "w");
	fputs("not pages", f);
	fclose(f);

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct ijob ji = { .fd = sv[1], .dir = dst, .ps = &ps };
	pthread_create(&t, NULL, images_receiver, &ji);
	struct proto_conn c;
	proto_conn_init(&c, sv[0], sv[0], "dest", &e);
	int r = images_send(&c, 1, src, &set, &z, NULL, NULL, &st, &e);
	proto_conn_free(&c);
	pthread_join(t, NULL);
	close(sv[0]);
	ok(r == 0 && ji.rc == 0 && ji.streams == 3, "two page images and a pax stream sent and verified (%s / %s)", e.msg,
	   ji.msg);
	ok(st.pages == 313 && st.pages_copied == 10 && st.pages_zero == 1 && st.pages_raw == 302,
	   "313 pages: 10 from the store, 1 zero, 302 new (%llu %llu %llu %llu)", (unsigned long long)st.pages,
	   (unsigned long long)st.pages_copied, (unsigned long long)st.pages_zero, (unsigned long long)st.pages_raw);
	ok(images_identical(src, dst), "every image arrives byte-identical");
	ok(access(ps.spare_path, F_OK) < 0, "the largest page image took the spare");

	/* a peer older than 1.1: no set, everything in the pax stream */
	char dst2[] = "/tmp/cmt-test-img-dst2.XXXXXX";
	ok(mkdtemp(dst2) != NULL, "another temp dir");
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct ijob j2 = { .fd = sv[1], .dir = dst2, .ps = &ps };
	pthread_create(&t, NULL, images_receiver, &j2);
	proto_conn_init(&c, sv[0], sv[0], "dest", &e);
	r = images_send(&c, 1, src, NULL, &z, NULL, NULL, &st, &e);
	proto_conn_free(&c);
	pthread_join(t, NULL);
	close(sv[0]);
	snprintf(path, sizeof(path), "%s/pages-1.img", dst2);
	ok(r == 0 && j2.rc == 0 && j2.streams == 1 && st.pages == 0 && access(path, F_OK) == 0,
	   "for a 1.0 peer the page images travel in the pax stream");
	pagestore_close(&ps);
	pageset_free(&set);
	rm_rf(src, &e);
	rm_rf(dst, &e);
	rm_rf(dst2, &e);
}

static void test_converge(void)
{
	struct converge_policy p;
	struct precopy_round r[4] = { 0 };
	char why[320];

	converge_defaults(&p);
	ok(p.downtime_target_ms == 300 && p.max_rounds == 8 && p.growth_pct == 0 && p.min_pages == 256,
	   "defaults: 300 ms, 8 rounds, 0 %% growth, 256 pages");
	r[0] = (struct precopy_round){ .t_start = 0, .ms = 1000, .sent = 262144, .wire_bytes = 1ull << 30 };
	is_int(converge_next(&p, r, 1, 1e9, why, sizeof(why)), CONV_CONTINUE, "round 1 alone never decides");
	/* round 2: 64 MiB/s dirty, 1 s after round 1 began; 100 MB/s link: 64 MiB pending = 670 ms */
	r[1] = (struct precopy_round){ .t_start = 1000, .ms = 1000, .sent = 16384, .wire_bytes = 64u << 20 };
	converge_measure(r, 2);
	ok(r[1].dirty_bps > 67e6 && r[1].dirty_bps < 67.2e6, "dirty rate: 64 MiB in 1 s (%.0f B/s)", r[1].dirty_bps);
	is_int(converge_next(&p, r, 2, 100e6, why, sizeof(why)), CONV_CONTINUE, "670 ms of dirty data > 300 ms: go on");
	is_int(converge_next(&p, r, 2, 1e9, why, sizeof(why)), CONV_CONVERGED, "at 1 GB/s it fits in 300 ms: converged");
	ok(strstr(why, "target") != NULL, "why: %s", why);
	r[2] = (struct precopy_round){ .t_start = 2000, .ms = 1000, .sent = 20000, .wire_bytes = 80u << 20 };
	converge_measure(r, 3);
	is_int(converge_next(&p, r, 3, 100e6, why, sizeof(why)), CONV_NO_PROGRESS, "round 3 sent more: no progress");
	ok(strstr(why, "faster") != NULL, "why: %s", why);
	p.growth_pct = 50;
	is_int(converge_next(&p, r, 3, 100e6, why, sizeof(why)), CONV_CONTINUE, "within a 50 %% growth allowance: go on");
	p.max_rounds = 3;
	is_int(converge_next(&p, r, 3, 100e6, why, sizeof(why)), CONV_MAX_ROUNDS, "at --max-rounds: stop");
	r[2].sent = 100;
	is_int(converge_next(&p, r, 3, 100e6, why, sizeof(why)), CONV_MIN_PAGES, "100 pages < 256: stop");
	p.max_rounds = 1;
	is_int(converge_next(&p, r, 1, 1e9, why, sizeof(why)), CONV_MAX_ROUNDS, "--max-rounds 1: one round");
	is_str(conv_name(CONV_NO_PROGRESS), "no-progress", "names");
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --max-bandwidth: an idle spell earns no burst (at most 20 ms worth). */
static void test_pacing(void)
{
	static uint8_t buf[1 << 20];
	struct proto_conn c;
	struct error e = { 0 };
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct timespec idle = { 0, 300 * 1000 * 1000 };
	int r = 0;

	proto_conn_init(&c, -1, fd, "null", &e);
	c.max_bps = 20.0 * 1048576;
	r |= proto_send(&c, MSG_DATA, 1, buf, sizeof(buf), &e);
	nanosleep(&idle, NULL);
	double t0 = mono_s();
	for (int i = 0; i < 6; i++)
		r |= proto_send(&c, MSG_DATA, 1, buf, sizeof(buf), &e);
	double dt = mono_s() - t0;
	/* 6 MiB at 20 MiB/s after an idle spell: the first goes at once, the
	 * 20 ms credit covers 0.4 MiB, the other 4.6 MiB take >= 0.23 s */
	ok(r == 0 && dt >= 0.22, "6 MiB at 20 MiB/s after a pause took %.3f s (>= 0.22)", dt);
	proto_conn_free(&c);
	close(fd);
}

/* images_send_following: the root page image read while a "dumper" still
 * writes it (in pieces that are not whole pages, with pauses), then the
 * rest; byte-identical on arrival.  And a dumper that ends without it. */
static void test_images_following(void)
{
	char src[] = "/tmp/cmt-test-fol-src.XXXXXX", dst[] = "/tmp/cmt-test-fol-dst.XXXXXX", store[160];
	struct pageset set = { 0 };
	struct pagestore ps;
	struct image_stats st;
	struct error e = { 0 };
	struct zpolicy z = { .mode = ZMODE_AUTO };
	int sv[2];
	pthread_t t;

	ok(mkdtemp(src) && mkdtemp(dst), "following: temp dirs");
	snprintf(store, sizeof(store), "%s/store", dst);
	pagestore_init(&ps, store, dst);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* other images first, then the page image in 6000-byte writes */
		char p[200];
		static uint8_t buf[3000 * PAGE_SZ]; /* more than images.c's FOLLOW_STEP */
		struct timespec ts = { 0, 3000000 };
		snprintf(p, sizeof(p), "%s/core-1.img", src);
		FILE *f = fopen(p, "w");
		fputs("core", f);
		fclose(f);
		nanosleep(&ts, NULL);
		for (uint32_t i = 0; i < 3000; i++)
			if (i % 7 == 3)
				memset(buf + (size_t)i * PAGE_SZ, 0, PAGE_SZ);
			else
				fill(buf + (size_t)i * PAGE_SZ, 70000 + i);
		snprintf(p, sizeof(p), "%s/pages-1.img", src);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		for (size_t off = 0; fd >= 0 && off < sizeof(buf);) {
			size_t n = sizeof(buf) - off < 6000 ? sizeof(buf) - off : 6000;
			if (write(fd, buf + off, n) != (ssize_t)n)
				_exit(1);
			off += n;
			if (off % (20 * 6000) == 0)
				nanosleep(&ts, NULL);
		}
		close(fd);
		snprintf(p, sizeof(p), "%s/pages-2.img", src);
		f = fopen(p, "w");
		fill(buf, 99);
		fwrite(buf, 1, PAGE_SZ, f);
		fclose(f);
		_exit(0);
	}
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct ijob ji = { .fd = sv[1], .dir = dst, .ps = &ps };
	pthread_create(&t, NULL, images_receiver, &ji);
	struct proto_conn c;
	proto_conn_init(&c, sv[0], sv[0], "dest", &e);
	int r = images_send_following(&c, 1, src, "pages-1.img", pidfd, &set, &z, NULL, NULL, &st, &e);
	int wst = -1;
	waitpid(pid, &wst, 0);
	ok(r == 0 && WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "the page image followed to the dumper's end (%s)", e.msg);
	ok(st.pages == 3000 && st.pages_zero == 429 && st.pages_raw == 2571, "3000 pages: 429 zero, 2571 new (%llu %llu %llu)",
	   (unsigned long long)st.pages, (unsigned long long)st.pages_zero, (unsigned long long)st.pages_raw);
	if (r == 0)
		r = images_send_rest(&c, 1, src, "pages-1.img", &set, &z, NULL, NULL, &st, &e);
	proto_conn_free(&c);
	pthread_join(t, NULL);
	close(sv[0]);
	close(pidfd);
	ok(r == 0 && ji.rc == 0 && ji.streams == 3, "then the other page image and the pax stream (%s / %s)", e.msg, ji.msg);
	ok(images_identical(src, dst), "every image arrives byte-identical (the followed one too)");

	/* a dumper that ends without the page image: nothing is sent */
	pid = fork();
	if (pid == 0)
		_exit(0);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	char none[] = "/tmp/cmt-test-fol-none.XXXXXX";
	ok(mkdtemp(none) != NULL, "an empty images directory");
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	proto_conn_init(&c, sv[0], sv[0], "dest", &e);
	r = images_send_following(&c, 1, none, "pages-1.img", pidfd, &set, &z, NULL, NULL, &st, &e);
	char byte;
	ok(r == 1 && recv(sv[1], &byte, 1, MSG_DONTWAIT) < 0, "no page image: 1, and nothing sent");
	proto_conn_free(&c);
	close(sv[0]);
	close(sv[1]);
	close(pidfd);
	waitpid(pid, NULL, 0);
	pagestore_close(&ps);
	pageset_free(&set);
	struct error tmp = { 0 };
	rm_rf(src, &tmp);
	rm_rf(dst, &tmp);
	rm_rf(none, &tmp);
}

/* --- pre-copy rounds of a live process (engine/memscan.c) ------------------------------ */

/* One memscan round of pid into a page store, over a socketpair. */
static int scan_round(pid_t pid, struct pageset *set, struct pagestore *ps, struct mem_round *mr, struct error *e)
{
	struct proto_conn c;
	struct page_writer w;
	struct zpolicy z = { .mode = ZMODE_NEVER };
	int sv[2], r;
	pthread_t t;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	struct job j = { .fd = sv[1], .area = AREA_PAGES, .ps = ps };
	pthread_create(&t, NULL, receiver, &j);
	proto_conn_init(&c, sv[0], sv[0], "dest", e);
	r = pw_begin(&w, &c, 3, AREA_PAGES, NULL, &z, e);
	if (r == 0)
		r = memscan_round(pid, set, &w, mr, e);
	if (r == 0)
		r = pw_end(&w);
	pw_free(&w);
	proto_conn_free(&c);
	close(sv[0]);
	pthread_join(t, NULL);
	close(sv[1]);
	return r < 0 ? r : j.rc;
}

/* A child with 1000 pages of its own (several chunks for the readers):
 * random ones, zero ones and copies; on a byte from 'go' it rewrites 37
 * pages with new content and answers on 'done'. */
#define MS_PAGES 1000
static void test_memscan(void)
{
	char dir[] = "/tmp/cmt-test-memscan.XXXXXX", store[128];
	int go[2], done[2];
	struct pageset set = { 0 };
	struct pagestore ps;
	struct mem_round m1, m2, m3;
	struct error e = { 0 };
	uint8_t *mem = mmap(NULL, MS_PAGES * PAGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char b = 0;

	ok(mem != MAP_FAILED && mkdtemp(dir) != NULL && pipe2(go, O_CLOEXEC) == 0 && pipe2(done, O_CLOEXEC) == 0,
	   "memscan: setup");
	for (int i = 0; i < MS_PAGES; i++) {
		if (i % 10 == 3)
			memset(mem + (size_t)i * PAGE_SZ, 0, PAGE_SZ); /* present, zero */
		else
			fill(mem + (size_t)i * PAGE_SZ, i % 10 == 7 ? 7u : 5000u + (uint32_t)i); /* 7: copies of one page */
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (read(go[0], &b, 1) == 1) {
			for (int i = 0; i < 37; i++)
				fill(mem + (size_t)(i * 25 + 1) * PAGE_SZ, 900000u + (uint32_t)i);
			if (write(done[1], &b, 1) != 1)
				_exit(1);
			if (read(go[0], &b, 1) < 0)
				_exit(1);
		}
		_exit(0);
	}
	snprintf(store, sizeof(store), "%s/pagestore", dir);
	pagestore_init(&ps, store, dir);
	int r = scan_round(pid, &set, &ps, &m1, &e);
	ok(r == 0 && m1.scanned >= MS_PAGES && m1.zero >= MS_PAGES / 10 && m1.sent >= 800 && m1.sent < m1.scanned,
	   "round 1: every page read, zero pages and copies not sent (%llu scanned, %llu sent, %llu zero) %s",
	   (unsigned long long)m1.scanned, (unsigned long long)m1.sent, (unsigned long long)m1.zero, e.msg);
	ok(ps.pages == set.stored && set.stored == m1.sent, "round 1: the store holds what was sent (%u)", ps.pages);
	r = scan_round(pid, &set, &ps, &m2, &e);
	ok(r == 0 && m2.scanned == m1.scanned && m2.sent == 0, "round 2, nothing changed: nothing sent (%llu) %s",
	   (unsigned long long)m2.sent, e.msg);
	ok(write(go[1], &b, 1) == 1 && read(done[0], &b, 1) == 1, "the child rewrote 37 pages");
	r = scan_round(pid, &set, &ps, &m3, &e);
	/* (its stack may have changed too: a page or two) */
	ok(r == 0 && m3.sent >= 37 && m3.sent <= 37 + 4, "round 3: the 37 new pages sent (%llu) %s",
	   (unsigned long long)m3.sent, e.msg);
	bool all = true;
	for (int i = 0; i < 37; i++) {
		uint8_t pg[PAGE_SZ];
		fill(pg, 900000u + (uint32_t)i);
		all &= pageset_find(&set, page_hash(pg)) >= 0;
	}
	ok(all && ps.pages == set.stored, "round 3: each new content is in the set and the store (%u pages)", ps.pages);
	ok(write(go[1], &b, 1) == 1, "the child may end");
	int st = -1;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ran to its end");
	pagestore_close(&ps);
	pageset_free(&set);
	struct error tmp = { 0 };
	rm_rf(dir, &tmp);
	munmap(mem, MS_PAGES * PAGE_SZ);
	close(go[0]), close(go[1]), close(done[0]), close(done[1]);
}

/* The set the relay process reads back (hybrid): same content, same indices. */
static void test_pageset_export(void)
{
	struct pageset a = { 0 }, b = { 0 };
	struct error e = { 0 };
	uint8_t page[PAGE_SZ];
	int fd = memfd_create("test-set", 0), good = 1;

	ok(pageset_import(&b, fd, &e) == 0 && b.n == 0 && b.stored == 0, "an empty file is an empty set");
	for (int i = 0; i < 5000; i++) {
		memset(page, 0, sizeof(page));
		memcpy(page, &i, sizeof(i));
		pageset_add(&a, page_hash(page));
	}
	memset(page, 0, sizeof(page));
	pageset_add(&a, page_hash(page)); /* content seen again: the newest index */
	ok(pageset_export(&a, fd, &e) == 0, "a set of %zu contents exported", a.n);
	ok(pageset_import(&b, fd, &e) == 0, "and read back (%s)", e.msg);
	ok(b.n == a.n && b.stored == a.stored, "the same size (%zu, %u stored)", b.n, b.stored);
	for (int i = 0; i < 5000; i++) {
		memset(page, 0, sizeof(page));
		memcpy(page, &i, sizeof(i));
		good &= pageset_find(&b, page_hash(page)) == pageset_find(&a, page_hash(page));
	}
	ok(good && pageset_find(&b, page_hash(page)) >= 0, "every content at the same index");
	pageset_free(&b);
	if (ftruncate(fd, 40) < 0)
		abort();
	ok(pageset_import(&b, fd, &e) == -EINVAL && e.msg[0], "a truncated set is refused: %s", e.msg);
	pageset_free(&a);
	close(fd);
}

int main(void)
{
	test_pageset_export();
	test_pacing();
	test_decoder();
	test_pageset();
	test_zpolicy();
	test_roundtrip();
	test_images_send();
	test_converge();
	test_memscan();
	test_images_following();
	return done_testing();
}
