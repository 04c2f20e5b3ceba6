#include "transport/psrelay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/proto.h"

static void put64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64be(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void psr_iov_decode(const uint8_t *p, struct psr_iov *iov)
{
	/* struct page_server_iov { u32 cmd; u64 nr_pages, vaddr, dst_id; }: the
	 * u64s are aligned, so 4 bytes of padding follow cmd */
	memcpy(&iov->cmd, p, 4);
	memcpy(&iov->nr_pages, p + 8, 8);
	memcpy(&iov->vaddr, p + 16, 8);
	memcpy(&iov->dst_id, p + 24, 8);
}

/* --- source: the tap ------------------------------------------------------------- */

static void batch_reset(struct psr_tap *t)
{
	t->len = 9; /* digest, encoding byte */
	t->npages = 0;
	t->rs.rec = SIZE_MAX;
	XXH3_64bits_reset(&t->dig);
}

int psr_tap_init(struct psr_tap *t, const struct pageset *set, int (*emit)(void *, uint16_t, const uint8_t *, uint32_t),
		 void *arg, struct error *e)
{
	memset(t, 0, sizeof(*t));
	t->set = set;
	t->emit = emit;
	t->arg = arg;
	t->buf = malloc(PSR_PAYLOAD_MAX);
	if (!t->buf)
		return error_set(e, ENOMEM, "out of memory for the page relay");
	batch_reset(t);
	return 0;
}

void psr_tap_free(struct psr_tap *t)
{
	free(t->buf);
	free(t->fifo);
	t->buf = NULL;
	t->fifo = NULL;
}

static int flush(struct psr_tap *t)
{
	if (t->hdr_held) {
		/* the answer's header goes with its first pages (one write) */
		t->hdr_held = false;
		int r = t->emit(t->arg, MSG_DATA, t->hdr, PSR_IOV_SIZE);
		if (r < 0)
			return r;
	}
	if (!t->npages)
		return 0;
	put64be(t->buf, XXH3_64bits_digest(&t->dig));
	t->buf[8] = PENC_PLAIN;
	int r = t->emit(t->arg, MSG_RELAY_PAGES, t->buf, (uint32_t)t->len);
	batch_reset(t);
	return r;
}

static int add_page(struct psr_tap *t, const uint8_t *page)
{
	struct page_hash h;
	uint8_t type;
	int64_t idx = -1;

	if (t->npages == PSR_FRAME_PAGES) {
		int r = flush(t);
		if (r < 0)
			return r;
	}
	if (page_is_zero(page)) {
		h = page_hash_zero();
		type = PREC_ZERO;
		t->st.zero++;
	} else {
		h = page_hash(page);
		idx = t->set ? pageset_find(t->set, h) : -1;
		type = idx >= 0 ? PREC_COPY : PREC_RAW;
		if (idx >= 0)
			t->st.copied++;
		else
			t->st.raw++;
	}
	pages_digest_page(&t->dig, h);
	t->len = pages_rec_add(t->buf, t->len, &t->rs, type, idx >= 0 ? (uint32_t)idx : 0, page);
	t->npages++;
	return 0;
}

/* Moves input into buf (holding *have of want bytes): whether it is full. */
static bool gather(uint8_t *buf, size_t *have, size_t want, const uint8_t **p, size_t *n)
{
	size_t k = want - *have < *n ? want - *have : *n;

	memcpy(buf + *have, *p, k);
	*have += k;
	*p += k;
	*n -= k;
	return *have == want;
}

int psr_tap_request(struct psr_tap *t, const uint8_t *p, size_t n, struct error *e)
{
	while (n) {
		if (!gather(t->req, &t->req_len, PSR_IOV_SIZE, &p, &n))
			break;
		t->req_len = 0;
		if (t->transparent)
			continue;
		if (t->n >= PSR_PENDING_MAX)
			return error_set(e, EPROTO, "the lazy-pages daemon has more than %u page requests unanswered",
					 PSR_PENDING_MAX);
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 64;
			struct psr_iov *f = malloc(cap * sizeof(*f));
			if (!f)
				return error_set(e, ENOMEM, "out of memory for the page relay");
			for (size_t i = 0; i < t->n; i++)
				f[i] = t->fifo[(t->head + i) % t->cap];
			free(t->fifo);
			t->fifo = f;
			t->cap = cap;
			t->head = 0;
		}
		psr_iov_decode(t->req, &t->fifo[(t->head + t->n) % t->cap]);
		t->n++;
	}
	return 0;
}

static void pop(struct psr_tap *t)
{
	t->head = (t->head + 1) % t->cap;
	t->n--;
}

/* The next answer's header is complete: it must answer the oldest GET. */
static int answer_header(struct psr_tap *t, struct error *e)
{
	const struct psr_iov *q = &t->fifo[t->head];
	struct psr_iov a;

	psr_iov_decode(t->hdr, &a);
	if ((a.cmd & 0xffff) != PSR_CMD_ADD_F || a.cmd >> 16 != PSR_PE_PRESENT || a.nr_pages == 0 ||
	    a.nr_pages > q->nr_pages || a.vaddr != q->vaddr || a.dst_id != q->dst_id)
		return error_set(e, EPROTO,
				 "CRIU's page server answered a request for %" PRIu64 " pages at 0x%" PRIx64 " (id %" PRIu64
				 ") with command 0x%x, %" PRIu64 " pages at 0x%" PRIx64 " (id %" PRIu64 ")",
				 q->nr_pages, q->vaddr, q->dst_id, a.cmd, a.nr_pages, a.vaddr, a.dst_id);
	pop(t);
	/* held until its pages go (flush): the daemon needs the whole answer
	 * anyway, and one write instead of two spares the answer a wait for
	 * the remote shell's TCP acknowledgement (Nagle) */
	t->hdr_held = true;
	t->left = a.nr_pages;
	t->at = PSR_AT_PAGES;
	t->page_len = 0;
	return 0;
}

int psr_tap_answer(struct psr_tap *t, const uint8_t *p, size_t n, struct error *e)
{
	int r = 0;

	while (n && r == 0) {
		if (t->transparent) {
			r = flush(t);
			if (r == 0)
				r = t->emit(t->arg, MSG_DATA, p, (uint32_t)n);
			return r;
		}
		if (t->at == PSR_AT_HEADER) {
			if (t->hdr_len == 0) {
				if (!t->n)
					return error_set(e, EPROTO, "CRIU's page server sent %zu bytes nobody asked for", n);
				uint32_t cmd = t->fifo[t->head].cmd;
				if (cmd == PSR_CMD_CLOSE || cmd == PSR_CMD_FORCE_CLOSE) {
					t->at = PSR_AT_STATUS;
					t->hdr_len = 0;
					continue;
				}
				if ((cmd & 0xffff) != PSR_CMD_GET) {
					/* a command this cmt does not know: from here on,
					 * the answers travel as they are */
					t->transparent = true;
					continue;
				}
			}
			if (gather(t->hdr, &t->hdr_len, PSR_IOV_SIZE, &p, &n)) {
				t->hdr_len = 0;
				r = answer_header(t, e);
			}
		} else if (t->at == PSR_AT_PAGES) {
			if (t->page_len == 0 && n >= PAGE_SZ) {
				r = add_page(t, p); /* straight from the input */
				p += PAGE_SZ;
				n -= PAGE_SZ;
			} else {
				if (!gather(t->page, &t->page_len, PAGE_SZ, &p, &n))
					break;
				t->page_len = 0;
				r = add_page(t, t->page);
			}
			if (r == 0 && --t->left == 0) {
				r = flush(t);
				t->at = PSR_AT_HEADER;
			}
		} else {
			/* the 4-byte status of CLOSE (hdr_len counts it) */
			size_t k = 4 - t->hdr_len < n ? 4 - t->hdr_len : n;
			r = t->emit(t->arg, MSG_DATA, p, (uint32_t)k);
			t->hdr_len += k;
			p += k;
			n -= k;
			if (t->hdr_len == 4) {
				t->hdr_len = 0;
				pop(t);
				t->at = PSR_AT_HEADER;
			}
		}
	}
	/* an answer's pages go when it is complete (or when a frame is full):
	 * the daemon cannot use a part of it */
	return r;
}

/* --- destination: the decoder --------------------------------------------------- */

struct dec {
	uint8_t *out;
	size_t len;
	uint32_t pages;
	int fd;
	uint32_t store_pages;
	XXH3_state_t dig;
	struct psr_stats *st;
};

static int room(struct dec *d, uint32_t count, struct error *e)
{
	if (count > PSR_FRAME_PAGES - d->pages)
		return error_set(e, EPROTO, "malformed page relay frame: more than %u pages", PSR_FRAME_PAGES);
	return 0;
}

/* count pages were written at the end of out (their hashes fed to the
 * digest): they count, by kind */
static void took(struct dec *d, uint32_t count, uint64_t *kind)
{
	d->len += (size_t)count * PAGE_SZ;
	d->pages += count;
	*kind += count;
}

static void digest(struct dec *d, const uint8_t *p, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		pages_digest_page(&d->dig, page_hash(p + (size_t)i * PAGE_SZ));
}

static int dec_raw(void *arg, const uint8_t *pages, uint32_t count, struct error *e)
{
	struct dec *d = arg;
	int r = room(d, count, e);
	if (r < 0)
		return r;
	memcpy(d->out + d->len, pages, (size_t)count * PAGE_SZ);
	digest(d, pages, count);
	took(d, count, &d->st->raw);
	return 0;
}

static int dec_copy(void *arg, uint32_t first, uint32_t count, struct error *e)
{
	struct dec *d = arg;
	int r = room(d, count, e);
	if (r < 0)
		return r;
	if (d->fd < 0)
		return error_set(e, EPROTO, "malformed page relay frame: a reference to the page store, but this "
					    "migration has none");
	if ((uint64_t)first + count > d->store_pages)
		return error_set(e, EPROTO, "malformed page relay frame: pages %" PRIu32 "..%" PRIu64
					    " of a store of %" PRIu32,
				 first, (uint64_t)first + count - 1, d->store_pages);
	size_t want = (size_t)count * PAGE_SZ, got = 0;
	while (got < want) {
		ssize_t k = pread(d->fd, d->out + d->len + got, want - got, (off_t)first * PAGE_SZ + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return error_set(e, k < 0 ? errno : EIO, "cannot read the page store: %s",
					 k < 0 ? strerror(errno) : "it is shorter than it was");
		got += (size_t)k;
	}
	digest(d, d->out + d->len, count);
	took(d, count, &d->st->copied);
	return 0;
}

static int dec_zero(void *arg, uint32_t count, struct error *e)
{
	struct dec *d = arg;
	int r = room(d, count, e);
	if (r < 0)
		return r;
	memset(d->out + d->len, 0, (size_t)count * PAGE_SZ);
	for (uint32_t i = 0; i < count; i++)
		pages_digest_page(&d->dig, page_hash_zero());
	took(d, count, &d->st->zero);
	return 0;
}

static int dec_tail(void *arg, const uint8_t *p, uint16_t len, struct error *e)
{
	(void)arg;
	(void)p;
	(void)len;
	return error_set(e, EPROTO, "malformed page relay frame: a TAIL record");
}

int psr_pages_decode(const uint8_t *p, size_t n, int store_fd, uint32_t store_pages, uint8_t *out, size_t *out_len,
		     uint8_t *scratch, struct psr_stats *st, struct error *e)
{
	struct psr_stats none = { 0 };
	struct dec d = { .out = out, .fd = store_fd, .store_pages = store_pages, .st = st ? st : &none };
	struct page_sink k = { .raw = dec_raw, .copy = dec_copy, .zero = dec_zero, .tail = dec_tail, .arg = &d,
			       .images = true };
	int r;

	*out_len = 0;
	if (n < 9 || n > PSR_PAYLOAD_MAX)
		return error_set(e, EPROTO, "malformed page relay frame: %zu bytes", n);
	XXH3_64bits_reset(&d.dig);
	r = pages_decode(p + 8, n - 8, scratch, &k, e);
	if (r < 0)
		return r;
	if (!d.pages)
		return error_set(e, EPROTO, "malformed page relay frame: no pages");
	if (XXH3_64bits_digest(&d.dig) != get64be(p))
		return error_set(e, EPROTO, "the pages of a page relay frame do not match their digest (%" PRIu32
					    " pages, rebuilt from the frame and this host's page store)",
				 d.pages);
	*out_len = d.len;
	return 0;
}
