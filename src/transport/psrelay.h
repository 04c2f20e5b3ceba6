/* CRIU's lazy page-server stream, as the page relay carries it
 * (doc/protocol.md 8.5 "Pages in the relay", doc/design.md "Hybrid").
 *
 * The lazy-pages daemon on the destination asks CRIU's page server on the
 * source for pages: each request is a 32-byte page_server_iov (cmd, nr_pages,
 * vaddr, dst_id in the host's byte order; PS_IOV_GET, or PS_IOV_CLOSE at the
 * end), and the server answers in order: a GET with the same iov (cmd
 * PS_IOV_ADD_F with PE_PRESENT, nr_pages possibly fewer) followed by the
 * pages, a CLOSE with a 4-byte status.
 *
 * On the source, a tap reads both directions: the requests, to know what
 * each answer must be, and the answers, whose pages it sends as RELAY_PAGES
 * frames by content: a page the destination's page store holds (a pre-copy
 * round sent it) travels as a reference, a zero page as a count, any other
 * page in full; the iov headers and the status travel as DATA.  A request
 * it does not know (a newer CRIU) makes it pass every later answer through
 * unchanged.  On the destination, psr_pages_decode rebuilds the pages from
 * a RELAY_PAGES payload and the store, and checks them against the digest
 * the source computed from CRIU's pages.  Both are pure (no I/O but reading
 * the store), bounded and fuzzed (tests/fuzz/fuzz_psrelay.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#include "transport/pages.h"
#include "util/error.h"

#define PSR_IOV_SIZE 32
#define PSR_FRAME_PAGES 64u /* the pages one RELAY_PAGES payload rebuilds, at most */
#define PSR_PAYLOAD_MAX (8 + 1 + PSR_FRAME_PAGES * PAGES_REC_MAX)
#define PSR_PENDING_MAX (1u << 20) /* requests not answered yet */

/* CRIU's commands (criu/page-xfer.c), as far as the relay needs them */
#define PSR_CMD_GET 7
#define PSR_CMD_ADD_F 6
#define PSR_CMD_CLOSE 0x1023
#define PSR_CMD_FORCE_CLOSE 0x1024
#define PSR_PE_PRESENT 4u

struct psr_iov {
	uint32_t cmd;
	uint64_t nr_pages, vaddr, dst_id;
};
void psr_iov_decode(const uint8_t *p, struct psr_iov *iov);

struct psr_stats {
	uint64_t raw, copied, zero; /* pages of the answers, by how they travelled */
};

struct psr_tap {
	const struct pageset *set; /* content -> index in the destination's store */
	/* requests, towards CRIU */
	uint8_t req[PSR_IOV_SIZE];
	size_t req_len;
	struct psr_iov *fifo; /* unanswered requests, a ring */
	size_t cap, head, n;
	bool transparent; /* an unknown request was answered: bytes as they are */
	/* answers, from CRIU */
	enum { PSR_AT_HEADER, PSR_AT_PAGES, PSR_AT_STATUS } at;
	uint8_t hdr[PSR_IOV_SIZE];
	size_t hdr_len;
	bool hdr_held;           /* hdr is the current answer's, not sent yet */
	uint64_t left;           /* pages of this answer still to come */
	uint8_t page[PAGE_SZ];   /* a page in the making */
	size_t page_len;
	/* the RELAY_PAGES payload being built */
	uint8_t *buf;
	size_t len;
	struct page_rec_state rs;
	uint32_t npages;
	XXH3_state_t dig;
	struct psr_stats st;
	/* sends one frame (MSG_DATA or MSG_RELAY_PAGES) */
	int (*emit)(void *arg, uint16_t type, const uint8_t *p, uint32_t n);
	void *arg;
};

int psr_tap_init(struct psr_tap *t, const struct pageset *set, int (*emit)(void *, uint16_t, const uint8_t *, uint32_t),
		 void *arg, struct error *e);
void psr_tap_free(struct psr_tap *t);
/* Bytes the daemon sent towards CRIU (they go on unchanged). */
int psr_tap_request(struct psr_tap *t, const uint8_t *p, size_t n, struct error *e);
/* Bytes CRIU answered: frames are emitted for every complete answer (and
 * for each 64 pages of a longer one); the rest waits for the next call. */
int psr_tap_answer(struct psr_tap *t, const uint8_t *p, size_t n, struct error *e);

/* Destination: one RELAY_PAGES payload into out (PSR_FRAME_PAGES pages of
 * room); store_fd -1 when the migration has no store.  scratch:
 * PAGES_BATCH_MAX bytes.  -EPROTO (with the reason) on anything malformed,
 * a reference outside the store, or pages that do not match the digest. */
int psr_pages_decode(const uint8_t *p, size_t n, int store_fd, uint32_t store_pages, uint8_t *out, size_t *out_len,
		     uint8_t *scratch, struct psr_stats *st, struct error *e);
