/* Page streams: memory pages by content (doc/protocol.md, "Page streams").
 *
 * Two stream areas carry pages instead of a pax archive:
 *   AREA_PAGES       pre-copy: pages of the running workload, appended in
 *                    order to the destination's page store for this
 *                    migration (page i of the store = the i-th page sent)
 *   AREA_PAGE_IMAGE  one CRIU pages-N.img, rebuilt on the destination from
 *                    new pages, pages of its store and runs of zero pages
 *
 * The DATA payload of such a stream is one batch:
 *   byte 0       encoding: 0 plain, 1 zstd
 *   zstd only:   u32 length of the plain batch, then one zstd frame
 *   plain batch: records, each
 *     0x01 RAW   u32 count, count * 4096 bytes of pages
 *     0x02 COPY  u32 first, u32 count: pages first.. of the store (images only)
 *     0x03 ZERO  u32 count: zero pages (images only)
 *     0x04 TAIL  u16 length (1..4095), bytes: the end of a file that is not
 *                a whole number of pages; nothing may follow (images only)
 * STREAM_END carries the size and the digest of what the stream produces
 * on the receiver (the pages appended to the store, or the rebuilt file):
 * an XXH3-64 over the XXH3-128 of each whole page (canonical, 16 bytes) and
 * then the tail bytes (pages_digest_*).  The receiver keeps each stored
 * page's XXH3-128 from its arrival, so a page image is verified without
 * reading the store's pages again.
 *
 * Which pages the destination already has is the source's business (a set
 * of 128-bit content hashes, struct pageset); the receiver only checks that
 * every record stays inside its bounds, and the end-to-end hash. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#include "transport/proto.h"
#include "util/error.h"

#define PAGE_SZ 4096u
#define PAGES_BATCH_MAX (PROTO_MAX_PAYLOAD - 64) /* a plain batch, so a plain payload fits in a frame */

enum page_rec { PREC_RAW = 1, PREC_COPY = 2, PREC_ZERO = 3, PREC_TAIL = 4 };
enum page_enc { PENC_PLAIN = 0, PENC_ZSTD = 1 };

/* --- content set (source side) ------------------------------------------ */

struct page_hash {
	uint64_t lo, hi;
};

/* Open-addressing map: content hash -> index in the destination's store. */
struct pageset {
	struct page_hash *keys;
	uint32_t *idx1;  /* store index + 1; 0 = empty slot */
	size_t cap, n;   /* cap is a power of two */
	uint32_t stored; /* pages the destination's store holds */
};

struct page_hash page_hash(const void *page);
/* The stream digest: feed each whole page's hash, then the tail bytes. */
void pages_digest_page(XXH3_state_t *st, struct page_hash h);
struct page_hash page_hash_zero(void);
bool page_is_zero(const void *page);
void pageset_free(struct pageset *s);
/* The store index of content h, or -1. */
int64_t pageset_find(const struct pageset *s, struct page_hash h);
/* Records that the destination stores content h at index 'stored' (then
 * stored++). -ENOMEM on allocation failure. */
int pageset_add(struct pageset *s, struct page_hash h);

/* Writes the set to fd (replacing what it held) / reads it back (an empty
 * file is an empty set): how the page relay's process learns, after the
 * pre-copy rounds, what the destination's store holds. */
int pageset_export(const struct pageset *s, int fd, struct error *e);
int pageset_import(struct pageset *s, int fd, struct error *e);

/* --- compression policy -------------------------------------------------- */

/* zstd is used only when it pays: a batch is worth compressing when the wire
 * time it saves is more than the time compressing costs, judged from the
 * last measured ratio, compression speed and wire rate.  When it does not
 * pay, batches go plain and compression is tried again after
 * ZPOLICY_PROBE_EVERY batches when the data did not compress (it may
 * change), or after ZPOLICY_RETRY_SLOW when it compressed but too slowly
 * (one slow sample on a busy machine should not cost much).  The speed of
 * the first compression (zstd sets up its tables) is not taken. */
#define ZPOLICY_PROBE_EVERY 32
#define ZPOLICY_RETRY_SLOW 4
enum zmode { ZMODE_AUTO, ZMODE_ALWAYS, ZMODE_NEVER };
struct zpolicy {
	enum zmode mode;
	double ratio;     /* last compressed/plain size, 0 = not measured */
	double z_bps;     /* last compression speed, plain bytes per second */
	double wire_bps;  /* measured wire rate, bytes per second (0 = unknown) */
	unsigned skip;    /* plain batches left before the next probe */
	unsigned samples; /* compressions measured */
	uint64_t batches, compressed;
};
bool zpolicy_try(struct zpolicy *z);
/* After a compression attempt of 'plain' bytes into 'comp' bytes in 'secs'. */
void zpolicy_update(struct zpolicy *z, size_t plain, size_t comp, double secs);
/* Whether the batch just measured should go compressed. */
bool zpolicy_pays(const struct zpolicy *z);

/* --- writer (source side) ------------------------------------------------ */

struct page_writer {
	struct proto_conn *c;
	uint32_t chan, area;
	uint8_t *buf, *zbuf;    /* plain batch, compressed payload */
	size_t len, zcap;
	size_t rec;             /* offset of the open record, or SIZE_MAX */
	uint8_t rec_type;
	XXH3_state_t out_hash;  /* what the receiver produces */
	uint64_t out_bytes;
	uint64_t wire_bytes;    /* payload bytes sent */
	double send_secs;       /* time spent sending (for the wire rate) */
	struct zpolicy *z;      /* shared between the streams of a migration */
	void (*on_bytes)(uint64_t n, void *arg);
	void *arg;
	struct error *e;
	void *zctx;
};

/* Opens a stream (STREAM_BEGIN with area and, for images, the file name). */
int pw_begin(struct page_writer *w, struct proto_conn *c, uint32_t chan, uint32_t area, const char *name,
	     struct zpolicy *z, struct error *e);
/* Room for up to max pages of a RAW record at the end of the batch: the
 * caller writes *ret_n (>= 1) pages there and then calls pw_raw_commit with
 * how many it keeps (they must be at the start of the room). */
int pw_raw_room(struct page_writer *w, uint32_t max, uint8_t **ret_p, uint32_t *ret_n);
int pw_raw_commit(struct page_writer *w, uint32_t n);
/* The same with the pages' hashes already known (hs[0..n-1]). */
int pw_raw_commit_hashed(struct page_writer *w, uint32_t n, const struct page_hash *hs);
/* One page the store holds at 'index' (runs are merged); h is its content's
 * hash, for the end-to-end digest. */
int pw_copy(struct page_writer *w, uint32_t index, struct page_hash h);
/* One zero page. */
int pw_zero(struct page_writer *w);
int pw_tail(struct page_writer *w, const void *p, uint16_t len);
/* Flushes, sends STREAM_END, waits for STREAM_OK. */
int pw_end(struct page_writer *w);
void pw_free(struct page_writer *w);

/* --- batch records (shared by the writer and the page relay) --------------- */

/* The record a plain batch ends with, which the next page may extend. */
struct page_rec_state {
	size_t rec;   /* its offset in the batch, or SIZE_MAX */
	uint8_t type; /* its type */
};
/* The most bytes one pages_rec_add appends (a new RAW record). */
#define PAGES_REC_MAX (5 + PAGE_SZ)
/* Appends one page to the plain batch b[0..len) (the caller checked that
 * PAGES_REC_MAX bytes are free): a RAW page (its content), a COPY of store
 * page 'first' or a ZERO page, merged into the last record when it continues
 * it.  Returns the batch's new length. */
size_t pages_rec_add(uint8_t *b, size_t len, struct page_rec_state *rs, uint8_t type, uint32_t first,
		     const void *page);

/* --- decoder (destination side), pure, fuzzed ---------------------------- */

struct page_sink {
	int (*raw)(void *arg, const uint8_t *pages, uint32_t count, struct error *e);
	int (*copy)(void *arg, uint32_t first, uint32_t count, struct error *e);
	int (*zero)(void *arg, uint32_t count, struct error *e);
	int (*tail)(void *arg, const uint8_t *p, uint16_t len, struct error *e);
	void *arg;
	bool images;   /* COPY, ZERO and TAIL allowed (AREA_PAGE_IMAGE) */
	bool tailed;   /* a TAIL was seen: nothing may follow */
};

/* Decodes one DATA payload.  scratch: PAGES_BATCH_MAX bytes (for zstd).
 * Every count and length is checked against the payload before a sink is
 * called; -EPROTO with a message on malformed input. */
int pages_decode(const uint8_t *p, size_t n, uint8_t *scratch, struct page_sink *k, struct error *e);
