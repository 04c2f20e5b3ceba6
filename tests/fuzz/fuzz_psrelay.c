/* libFuzzer target for the page relay's codecs (src/transport/psrelay.c):
 * the destination's decoder of RELAY_PAGES payloads (from the other host),
 * and the source's tap over CRIU's page-server stream (requests from the
 * other host's daemon, answers from CRIU).
 * Input: one byte of flags; bit 0 clear: a tap session, the rest being
 * chunks (2 bytes: bit 0 = answer or request, the others a length, then
 * that many bytes); bit 0 set: one RELAY_PAGES payload.  A store of 8 pages
 * (page i filled with i + 1) is both the destination's store and the
 * source's content set.  Invariants: a refusal says why; what the decoder
 * accepts is whole pages, at most 64 of them, counted by kind; every frame
 * the tap emits is a DATA frame of at most what it was fed, or a
 * RELAY_PAGES payload that the decoder accepts (digest included), and the
 * tap never emits more pages than it was fed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_NAME "fuzz_psrelay"
#include "fuzz.h"

#include "transport/proto.h"
#include "transport/psrelay.h"

#define STORE 8
static int store_fd = -1;
static struct pageset set;
static uint8_t out[PSR_FRAME_PAGES * PAGE_SZ];
static uint8_t scratch[PAGES_BATCH_MAX];
static uint64_t fed_answer, emitted_pages, emitted_data;

static void setup(void)
{
	uint8_t page[PAGE_SZ];

	if (store_fd >= 0)
		return;
	store_fd = memfd_create("fuzz-store", 0);
	CHECK(store_fd >= 0);
	for (int i = 0; i < STORE; i++) {
		memset(page, i + 1, sizeof(page));
		CHECK(write(store_fd, page, sizeof(page)) == (ssize_t)sizeof(page));
		CHECK(pageset_add(&set, page_hash(page)) == 0);
	}
}

static int emit(void *arg, uint16_t type, const uint8_t *p, uint32_t n)
{
	struct error e = { 0 };
	struct psr_stats st = { 0 };
	size_t got = 0;

	(void)arg;
	CHECK(type == MSG_DATA || type == MSG_RELAY_PAGES);
	if (type == MSG_DATA) {
		CHECK(n > 0);
		emitted_data += n;
		return 0;
	}
	int r = psr_pages_decode(p, n, store_fd, STORE, out, &got, scratch, &st, &e);
	if (r < 0)
		fprintf(stderr, "fuzz_psrelay: the tap emitted a frame its decoder refuses: %s\n", e.msg);
	CHECK(r == 0);
	CHECK(got > 0 && got % PAGE_SZ == 0 && got <= sizeof(out));
	emitted_pages += got / PAGE_SZ;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct error e = { 0 };

	setup();
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		struct psr_stats st = { 0 };
		size_t got = 1;
		int r = psr_pages_decode(data + 1, size - 1, store_fd, STORE, out, &got, scratch, &st, &e);
		if (r < 0) {
			CHECK(e.code > 0 && e.msg[0]);
			CHECK(got == 0);
		} else {
			CHECK(got > 0 && got % PAGE_SZ == 0 && got <= sizeof(out));
			CHECK((st.raw + st.copied + st.zero) * PAGE_SZ == got);
		}
		return 0;
	}
	struct psr_tap t;
	CHECK(psr_tap_init(&t, &set, emit, NULL, &e) == 0);
	fed_answer = emitted_pages = emitted_data = 0;
	size_t off = 1;
	int r = 0;
	while (off + 2 <= size && r == 0) {
		unsigned answer = data[off] & 1;
		size_t len = ((size_t)data[off] >> 1 | (size_t)data[off + 1] << 7) & 0x7fff;
		off += 2;
		if (len > size - off)
			len = size - off;
		if (answer) {
			fed_answer += len;
			r = psr_tap_answer(&t, data + off, len, &e);
		} else {
			r = psr_tap_request(&t, data + off, len, &e);
		}
		if (r < 0)
			CHECK(e.code > 0 && e.msg[0]);
		off += len;
	}
	CHECK(emitted_pages * PAGE_SZ + emitted_data <= fed_answer);
	CHECK(t.st.raw + t.st.copied + t.st.zero <= fed_answer / PAGE_SZ);
	CHECK(emitted_pages <= t.st.raw + t.st.copied + t.st.zero);
	psr_tap_free(&t);
	return 0;
}
