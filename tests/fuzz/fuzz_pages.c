/* libFuzzer target for the page stream decoder (src/transport/pages.c): the
 * DATA payloads of pre-copy and page image streams, from the other host.
 * Input: one byte of flags (bit 0: a page image stream, where COPY, ZERO and
 * TAIL are allowed), then one payload.  Invariants: the decoder never hands
 * a sink bytes outside the input or its scratch buffer, RAW pages cover at
 * most the payload (or the announced plain size), a TAIL is last, and a
 * refusal always says why. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_pages"
#include "fuzz.h"

#include "transport/pages.h"

static const uint8_t *in_lo, *in_hi, *sc_lo, *sc_hi;
static uint64_t raw_bytes, copied, zeros;
static int tails;

static int inside(const uint8_t *p, size_t n)
{
	return (p >= in_lo && p + n <= in_hi) || (p >= sc_lo && p + n <= sc_hi);
}

static int f_raw(void *a, const uint8_t *p, uint32_t n, struct error *e)
{
	(void)a; (void)e;
	CHECK(n > 0 && inside(p, (size_t)n * PAGE_SZ));
	CHECK(tails == 0);
	raw_bytes += (uint64_t)n * PAGE_SZ;
	return 0;
}

static int f_copy(void *a, uint32_t first, uint32_t n, struct error *e)
{
	(void)a;
	CHECK(n > 0 && first <= UINT32_MAX - n);
	CHECK(tails == 0);
	/* a store of 1000 pages, as the agent's sink would check */
	if (first >= 1000 || n > 1000 - first)
		return error_set(e, EPROTO, "COPY beyond the store");
	copied += n;
	return 0;
}

static int f_zero(void *a, uint32_t n, struct error *e)
{
	(void)a; (void)e;
	CHECK(n > 0 && tails == 0);
	zeros += n;
	return 0;
}

static int f_tail(void *a, const uint8_t *p, uint16_t n, struct error *e)
{
	(void)a; (void)e;
	CHECK(n > 0 && n < PAGE_SZ && inside(p, n));
	CHECK(tails == 0);
	tails++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t scratch[PAGES_BATCH_MAX];
	struct error e = { 0 };

	if (size < 1)
		return 0;
	struct page_sink k = { f_raw, f_copy, f_zero, f_tail, NULL, data[0] & 1, false };
	in_lo = data + 1;
	in_hi = data + size;
	sc_lo = scratch;
	sc_hi = scratch + sizeof(scratch);
	raw_bytes = copied = zeros = 0;
	tails = 0;
	int r = pages_decode(data + 1, size - 1, scratch, &k, &e);
	if (r < 0) {
		CHECK(e.code > 0 && e.msg[0]);
	} else {
		CHECK(raw_bytes <= PAGES_BATCH_MAX);
		CHECK(k.images || (copied == 0 && zeros == 0 && tails == 0));
	}
	return 0;
}
