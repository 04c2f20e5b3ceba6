#include "transport/pages.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "util/fault.h"

static const uint8_t zero_page[PAGE_SZ];

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* --- content set ------------------------------------------------------------ */

struct page_hash page_hash(const void *page)
{
	XXH128_hash_t h = XXH3_128bits(page, PAGE_SZ);
	return (struct page_hash){ h.low64, h.high64 };
}

void pages_digest_page(XXH3_state_t *st, struct page_hash h)
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, (XXH128_hash_t){ .low64 = h.lo, .high64 = h.hi });
	XXH3_64bits_update(st, &c, sizeof(c));
}

struct page_hash page_hash_zero(void)
{
	static struct page_hash z;
	static bool done;

	if (!done) {
		z = page_hash(zero_page);
		done = true;
	}
	return z;
}

bool page_is_zero(const void *page)
{
	const uint8_t *p = page;
	uint64_t a, b, c;
	/* most non-zero pages differ in the first words (pages in a batch are
	 * not 8-byte aligned: load through memcpy) */
	memcpy(&a, p, 8);
	memcpy(&b, p + 8, 8);
	memcpy(&c, p + PAGE_SZ - 8, 8);
	if (a | b | c)
		return false;
	return memcmp(page, zero_page, PAGE_SZ) == 0;
}

void pageset_free(struct pageset *s)
{
	free(s->keys);
	free(s->idx1);
	memset(s, 0, sizeof(*s));
}

static size_t slot_of(const struct pageset *s, struct page_hash h)
{
	size_t i = (size_t)(h.lo ^ (h.hi >> 7)) & (s->cap - 1);
	while (s->idx1[i] && (s->keys[i].lo != h.lo || s->keys[i].hi != h.hi))
		i = (i + 1) & (s->cap - 1);
	return i;
}

int64_t pageset_find(const struct pageset *s, struct page_hash h)
{
	if (!s->cap)
		return -1;
	size_t i = slot_of(s, h);
	return s->idx1[i] ? (int64_t)s->idx1[i] - 1 : -1;
}

static int grow(struct pageset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 4096;
	struct pageset n = { .cap = cap, .n = s->n, .stored = s->stored };

	n.keys = malloc(cap * sizeof(*n.keys));
	n.idx1 = calloc(cap, sizeof(*n.idx1));
	if (!n.keys || !n.idx1) {
		free(n.keys);
		free(n.idx1);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++)
		if (s->idx1[i]) {
			size_t j = slot_of(&n, s->keys[i]);
			n.keys[j] = s->keys[i];
			n.idx1[j] = s->idx1[i];
		}
	free(s->keys);
	free(s->idx1);
	*s = n;
	return 0;
}

/* Content h is at store index idx1 - 1 (the newest copy wins); the caller
 * made room. */
static void put(struct pageset *s, struct page_hash h, uint32_t idx1)
{
	size_t i = slot_of(s, h);
	if (!s->idx1[i]) {
		s->keys[i] = h;
		s->n++;
	}
	s->idx1[i] = idx1;
	if (s->stored < idx1)
		s->stored = idx1;
}

int pageset_add(struct pageset *s, struct page_hash h)
{
	if (s->stored >= UINT32_MAX - 1)
		return -E2BIG;
	if ((s->n + 1) * 2 > s->cap && grow(s) < 0)
		return -ENOMEM;
	put(s, h, s->stored + 1);
	return 0;
}

/* The export: "CMTPSET1", u64 count, then count * (u64 lo, u64 hi, u64 index),
 * all little-endian (written and read on the same host). */
#define SET_MAGIC "CMTPSET1"
#define SET_REC 24

int pageset_export(const struct pageset *s, int fd, struct error *e)
{
	size_t n = 0, cap = 16 + s->n * SET_REC;
	uint8_t *b = malloc(cap);

	if (!b)
		return error_set(e, ENOMEM, "out of memory");
	memcpy(b, SET_MAGIC, 8);
	for (size_t i = 0; i < s->cap; i++)
		if (s->idx1[i]) {
			uint64_t v[3] = { s->keys[i].lo, s->keys[i].hi, (uint64_t)s->idx1[i] - 1 };
			memcpy(b + 16 + n * SET_REC, v, SET_REC);
			n++;
		}
	uint64_t cnt = n;
	memcpy(b + 8, &cnt, 8);
	size_t len = 16 + n * SET_REC, off = 0;
	int r = 0;
	if (ftruncate(fd, 0) < 0)
		r = error_errno(e, errno, "cannot write the page set");
	while (r == 0 && off < len) {
		ssize_t k = pwrite(fd, b + off, len - off, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			r = error_errno(e, k < 0 ? errno : EIO, "cannot write the page set");
		else
			off += (size_t)k;
	}
	free(b);
	return r;
}

int pageset_import(struct pageset *s, int fd, struct error *e)
{
	struct stat sb;
	uint8_t hdr[16];
	uint64_t cnt;

	memset(s, 0, sizeof(*s));
	if (fstat(fd, &sb) < 0)
		return error_errno(e, errno, "cannot read the page set");
	if (sb.st_size == 0)
		return 0; /* nothing was pre-copied */
	if (pread(fd, hdr, 16, 0) != 16 || memcmp(hdr, SET_MAGIC, 8))
		return error_set(e, EINVAL, "the page set is not one (%lld bytes)", (long long)sb.st_size);
	memcpy(&cnt, hdr + 8, 8);
	if (cnt > UINT32_MAX || (uint64_t)sb.st_size != 16 + cnt * SET_REC)
		return error_set(e, EINVAL, "the page set says %llu entries in %lld bytes", (unsigned long long)cnt,
				 (long long)sb.st_size);
	while ((s->n + cnt) * 2 > s->cap)
		if (grow(s) < 0)
			return error_set(e, ENOMEM, "out of memory for the page set");
	uint8_t buf[SET_REC * 1024];
	for (uint64_t i = 0; i < cnt;) {
		size_t m = cnt - i < 1024 ? (size_t)(cnt - i) : 1024;
		if (pread(fd, buf, m * SET_REC, (off_t)(16 + i * SET_REC)) != (ssize_t)(m * SET_REC)) {
			pageset_free(s);
			return error_errno(e, errno ? errno : EIO, "cannot read the page set");
		}
		for (size_t j = 0; j < m; j++) {
			uint64_t v[3];
			memcpy(v, buf + j * SET_REC, SET_REC);
			struct page_hash h = { v[0], v[1] };
			if (v[2] >= UINT32_MAX - 1) {
				pageset_free(s);
				return error_set(e, EINVAL, "the page set has a bad index");
			}
			put(s, h, (uint32_t)v[2] + 1);
		}
		i += m;
	}
	return 0;
}

/* --- compression policy ------------------------------------------------------ */

bool zpolicy_try(struct zpolicy *z)
{
	z->batches++;
	if (z->mode == ZMODE_NEVER)
		return false;
	if (z->mode == ZMODE_ALWAYS || !z->ratio)
		return true;
	if (z->skip) {
		z->skip--;
		return false;
	}
	return true;
}

bool zpolicy_pays(const struct zpolicy *z)
{
	if (z->mode != ZMODE_AUTO)
		return z->mode == ZMODE_ALWAYS;
	if (z->ratio <= 0 || z->ratio >= 0.97)
		return false; /* (almost) incompressible */
	if (z->wire_bps <= 0 || z->z_bps <= 0)
		return true;
	/* per plain byte: compressing costs 1/z_bps, and the wire then takes
	 * ratio/wire instead of 1/wire */
	return 1.0 / z->z_bps + z->ratio / z->wire_bps < 1.0 / z->wire_bps;
}

void zpolicy_update(struct zpolicy *z, size_t plain, size_t comp, double secs)
{
	if (!plain)
		return;
	z->ratio = (double)comp / (double)plain;
	if (secs > 0 && z->samples++ > 0)
		z->z_bps = (double)plain / secs;
	if (z->mode == ZMODE_AUTO && !zpolicy_pays(z))
		z->skip = z->ratio >= 0.97 ? ZPOLICY_PROBE_EVERY : ZPOLICY_RETRY_SLOW;
}

/* --- writer --------------------------------------------------------------------- */

int pw_begin(struct page_writer *w, struct proto_conn *c, uint32_t chan, uint32_t area, const char *name,
	     struct zpolicy *z, struct error *e)
{
	struct mbuf mb;
	int r;

	memset(w, 0, sizeof(*w));
	w->c = c;
	w->chan = chan;
	w->area = area;
	w->z = z;
	w->e = e;
	w->rec = SIZE_MAX;
	w->zcap = ZSTD_compressBound(PAGES_BATCH_MAX) + 5;
	w->buf = malloc(PAGES_BATCH_MAX);
	w->zbuf = malloc(w->zcap);
	if (!w->buf || !w->zbuf)
		return error_set(e, ENOMEM, "out of memory for the page stream");
	XXH3_64bits_reset(&w->out_hash);
	mb_init(&mb);
	mb_u32(&mb, A_AREA, area);
	if (name)
		mb_str(&mb, A_NAME, name);
	r = proto_send(c, MSG_STREAM_BEGIN, chan, mb.b, (uint32_t)mb.len, e);
	mb_free(&mb);
	return r;
}

void pw_free(struct page_writer *w)
{
	free(w->buf);
	free(w->zbuf);
	if (w->zctx)
		ZSTD_freeCCtx(w->zctx);
	w->buf = w->zbuf = NULL;
	w->zctx = NULL;
}

static int send_payload(struct page_writer *w, const uint8_t *p, size_t n)
{
	double t0 = mono_s();
	int r;

	fault_point("mid-stream"); /* the stream is open: any DATA frame is mid-stream */
	if (w->area == AREA_PAGES)
		fault_point("mid-precopy");
	r = proto_send(w->c, MSG_DATA, w->chan, p, (uint32_t)n, w->e);
	if (r < 0)
		return r;
	w->send_secs += mono_s() - t0;
	w->wire_bytes += n;
	if (w->z && w->send_secs > 0)
		w->z->wire_bps = (double)w->wire_bytes / w->send_secs;
	if (w->on_bytes)
		w->on_bytes(n, w->arg);
	return 0;
}

static int flush(struct page_writer *w)
{
	if (w->len <= 1) {
		w->len = 0;
		w->rec = SIZE_MAX;
		return 0;
	}
	size_t plain = w->len;
	w->rec = SIZE_MAX;
	w->len = 0;
	if (w->z && zpolicy_try(w->z)) {
		if (!w->zctx && !(w->zctx = ZSTD_createCCtx()))
			return error_set(w->e, ENOMEM, "out of memory for zstd");
		double t0 = mono_s();
		size_t k = ZSTD_compressCCtx(w->zctx, w->zbuf + 5, w->zcap - 5, w->buf + 1, plain - 1, 1);
		if (!ZSTD_isError(k)) {
			zpolicy_update(w->z, plain - 1, k, mono_s() - t0);
			if (zpolicy_pays(w->z) && k + 5 < plain) {
				w->z->compressed++;
				w->zbuf[0] = PENC_ZSTD;
				put32(w->zbuf + 1, (uint32_t)(plain - 1));
				return send_payload(w, w->zbuf, k + 5);
			}
		}
	}
	w->buf[0] = PENC_PLAIN;
	return send_payload(w, w->buf, plain);
}

/* Makes room for 'need' more bytes in the batch (flushing it if needed). */
static int room(struct page_writer *w, size_t need)
{
	if (w->len && w->len + need > PAGES_BATCH_MAX) {
		int r = flush(w);
		if (r < 0)
			return r;
	}
	if (!w->len)
		w->len = 1; /* the encoding byte */
	return 0;
}

int pw_raw_room(struct page_writer *w, uint32_t max, uint8_t **ret_p, uint32_t *ret_n)
{
	size_t left;
	int r;

	if (w->rec == SIZE_MAX || w->rec_type != PREC_RAW || w->len + PAGE_SZ > PAGES_BATCH_MAX) {
		r = room(w, 5 + PAGE_SZ);
		if (r < 0)
			return r;
		w->rec = w->len;
		w->rec_type = PREC_RAW;
		w->buf[w->len] = PREC_RAW;
		put32(w->buf + w->len + 1, 0);
		w->len += 5;
	}
	left = (PAGES_BATCH_MAX - w->len) / PAGE_SZ;
	*ret_n = max < left ? max : (uint32_t)left;
	*ret_p = w->buf + w->len;
	return 0;
}

int pw_raw_commit_hashed(struct page_writer *w, uint32_t n, const struct page_hash *hs)
{
	if (!n) {
		if (w->rec != SIZE_MAX && get32(w->buf + w->rec + 1) == 0) {
			w->len = w->rec; /* an empty record is not sent */
			w->rec = SIZE_MAX;
		}
		return 0;
	}
	for (uint32_t i = 0; i < n; i++)
		pages_digest_page(&w->out_hash, hs ? hs[i] : page_hash(w->buf + w->len + (size_t)i * PAGE_SZ));
	w->out_bytes += (uint64_t)n * PAGE_SZ;
	put32(w->buf + w->rec + 1, get32(w->buf + w->rec + 1) + n);
	w->len += (size_t)n * PAGE_SZ;
	return 0;
}

int pw_raw_commit(struct page_writer *w, uint32_t n)
{
	return pw_raw_commit_hashed(w, n, NULL);
}

size_t pages_rec_add(uint8_t *b, size_t len, struct page_rec_state *rs, uint8_t type, uint32_t first,
		     const void *page)
{
	if (rs->rec != SIZE_MAX && rs->type == type) {
		uint8_t *h = b + rs->rec + 1;
		if (type == PREC_ZERO) {
			put32(h, get32(h) + 1);
			return len;
		}
		if (type == PREC_RAW) {
			put32(h, get32(h) + 1);
			memcpy(b + len, page, PAGE_SZ);
			return len + PAGE_SZ;
		}
		if (get32(h) + get32(h + 4) == first) {
			put32(h + 4, get32(h + 4) + 1);
			return len;
		}
	}
	rs->rec = len;
	rs->type = type;
	b[len] = type;
	if (type == PREC_COPY) {
		put32(b + len + 1, first);
		put32(b + len + 5, 1);
		return len + 9;
	}
	put32(b + len + 1, 1);
	if (type == PREC_RAW) {
		memcpy(b + len + 5, page, PAGE_SZ);
		return len + 5 + PAGE_SZ;
	}
	return len + 5;
}

/* Extends the open record of 'type' by one (COPY: when 'first' follows it). */
static int run_add(struct page_writer *w, uint8_t type, uint32_t first)
{
	int r = room(w, 9);
	if (r < 0)
		return r;
	struct page_rec_state rs = { w->rec, w->rec_type };
	w->len = pages_rec_add(w->buf, w->len, &rs, type, first, NULL);
	w->rec = rs.rec;
	w->rec_type = rs.type;
	return 0;
}

int pw_copy(struct page_writer *w, uint32_t index, struct page_hash h)
{
	pages_digest_page(&w->out_hash, h);
	w->out_bytes += PAGE_SZ;
	return run_add(w, PREC_COPY, index);
}

int pw_zero(struct page_writer *w)
{
	pages_digest_page(&w->out_hash, page_hash_zero());
	w->out_bytes += PAGE_SZ;
	return run_add(w, PREC_ZERO, 0);
}

int pw_tail(struct page_writer *w, const void *p, uint16_t len)
{
	int r;

	if (!len || len >= PAGE_SZ)
		return error_set(w->e, EINVAL, "page stream: bad tail length %u", len);
	r = room(w, 3u + len);
	if (r < 0)
		return r;
	w->buf[w->len] = PREC_TAIL;
	put16(w->buf + w->len + 1, len);
	memcpy(w->buf + w->len + 3, p, len);
	w->len += 3u + len;
	w->rec = SIZE_MAX;
	XXH3_64bits_update(&w->out_hash, p, len);
	w->out_bytes += len;
	return 0;
}

int pw_end(struct page_writer *w)
{
	struct mbuf mb;
	struct msg m;
	int r = flush(w);

	if (r < 0)
		return r;
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, w->out_bytes);
	mb_u64(&mb, A_HASH, XXH3_64bits_digest(&w->out_hash));
	r = proto_send(w->c, MSG_STREAM_END, w->chan, mb.b, (uint32_t)mb.len, w->e);
	mb_free(&mb);
	if (r < 0)
		return r;
	r = proto_recv_msg(w->c, MSG_STREAM_OK, &m, w->e);
	if (r < 0)
		return r;
	msg_free(&m);
	return 0;
}

/* --- decoder ------------------------------------------------------------------ */

static int bad(struct error *e, const char *what, size_t off)
{
	return error_set(e, EPROTO, "malformed page stream: %s (at byte %zu of a batch)", what, off);
}

static int decode_plain(const uint8_t *p, size_t n, struct page_sink *k, struct error *e)
{
	size_t off = 0;
	int r = 0;

	while (off < n) {
		uint8_t t = p[off];
		if (k->tailed)
			return bad(e, "a record after the tail", off);
		if (t == PREC_RAW || t == PREC_ZERO) {
			if (n - off < 5)
				return bad(e, "truncated record", off);
			uint32_t cnt = get32(p + off + 1);
			if (!cnt)
				return bad(e, "a record of zero pages", off);
			if (t == PREC_ZERO) {
				if (!k->images)
					return bad(e, "ZERO outside a page image", off);
				r = k->zero(k->arg, cnt, e);
				off += 5;
			} else {
				if ((uint64_t)cnt * PAGE_SZ > n - off - 5)
					return bad(e, "RAW record longer than the batch", off);
				r = k->raw(k->arg, p + off + 5, cnt, e);
				off += 5 + (size_t)cnt * PAGE_SZ;
			}
		} else if (t == PREC_COPY) {
			if (!k->images)
				return bad(e, "COPY outside a page image", off);
			if (n - off < 9)
				return bad(e, "truncated record", off);
			uint32_t first = get32(p + off + 1), cnt = get32(p + off + 5);
			if (!cnt)
				return bad(e, "a record of zero pages", off);
			if (first > UINT32_MAX - cnt)
				return bad(e, "COPY beyond any store", off);
			r = k->copy(k->arg, first, cnt, e);
			off += 9;
		} else if (t == PREC_TAIL) {
			if (!k->images)
				return bad(e, "TAIL outside a page image", off);
			if (n - off < 3)
				return bad(e, "truncated record", off);
			uint16_t len = get16(p + off + 1);
			if (!len || len >= PAGE_SZ || len > n - off - 3)
				return bad(e, "bad TAIL length", off);
			r = k->tail(k->arg, p + off + 3, len, e);
			k->tailed = true;
			off += 3u + len;
		} else {
			return bad(e, "unknown record type", off);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int pages_decode(const uint8_t *p, size_t n, uint8_t *scratch, struct page_sink *k, struct error *e)
{
	if (n < 1)
		return bad(e, "empty batch", 0);
	if (p[0] == PENC_PLAIN) {
		if (n - 1 > PAGES_BATCH_MAX)
			return bad(e, "batch too large", 0);
		return decode_plain(p + 1, n - 1, k, e);
	}
	if (p[0] != PENC_ZSTD)
		return bad(e, "unknown encoding", 0);
	if (n < 5)
		return bad(e, "truncated zstd header", 0);
	uint32_t plain = get32(p + 1);
	if (plain == 0 || plain > PAGES_BATCH_MAX)
		return bad(e, "bad plain length of a zstd batch", 1);
	size_t got = ZSTD_decompress(scratch, plain, p + 5, n - 5);
	if (ZSTD_isError(got))
		return error_set(e, EPROTO, "malformed page stream: zstd: %s", ZSTD_getErrorName(got));
	if (got != plain)
		return bad(e, "zstd batch shorter than announced", 1);
	return decode_plain(scratch, plain, k, e);
}
