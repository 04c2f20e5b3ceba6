/* Unit tests of the wire protocol codec (src/transport/proto.c) against the
 * specification in doc/protocol.md: frame header, checksum, limits, TLV
 * attributes, per-message required attributes, builders, and the connection
 * API over a socketpair.
 *
 * The message and attribute tables below are written from the specification,
 * not taken from the codec; the test fails when the codec knows a message type
 * or attribute that is not listed here (then update the doc and this table). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "tap.h"
#include "transport/proto.h"

/* --- the specification's tables ------------------------------------------ */

enum kind { U32, U64, STR, BYTES };

struct aspec {
	uint16_t tag;
	enum kind kind;
	uint32_t max; /* STR / BYTES */
	const char *name;
};

static const struct aspec attrs[] = {
	{ 1, U32, 0, "magic" },
	{ 2, U32, 0, "version-major" },
	{ 3, U32, 0, "version-minor" },
	{ 4, STR, 128, "software" },
	{ 5, STR, 128, "host" },
	{ 6, U32, 0, "errno" },
	{ 7, STR, 4096, "message" },
	{ 8, STR, 4096, "hint" },
	{ 9, STR, 4096, "detail" },
	{ 10, STR, 64, "migration-id" },
	{ 11, U32, 0, "kind" },
	{ 12, STR, 1024, "workload" },
	{ 13, STR, 32, "mode" },
	{ 14, U32, 0, "area" },
	{ 15, U64, 0, "bytes" },
	{ 16, U64, 0, "hash" },
	{ 17, U32, 0, "pid" },
	{ 18, U64, 0, "duration-us" },
	{ 19, U32, 0, "flags" },
	{ 20, STR, 256, "key" },
	{ 21, STR, 65536, "facts" },
	{ 22, BYTES, 524288, "config" },
	{ 23, BYTES, 65536, "blob" },
	{ 24, U32, 0, "lease-ms" },
	{ 25, U32, 0, "outcome" },
	{ 26, U32, 0, "deadline-ms" },
	{ 40, STR, 255, "name" },
	{ 50, U32, 0, "port" },
	{ 56, BYTES, 65536, "net-desc" },
	{ 60, U64, 0, "criu-us" },
	{ 61, BYTES, 4096, "descriptors" },
};
#define NATTRS (sizeof(attrs) / sizeof(attrs[0]))

struct mspec {
	uint16_t type;
	const char *name;
	bool control;
	uint16_t req[6]; /* required tags, 0-terminated */
};

static const struct mspec msgs[] = {
	{ 0x0001, "HELLO", true, { 1, 2, 3, 4, 5 } },
	{ 0x0002, "WELCOME", true, { 1, 2, 3, 4, 5 } },
	{ 0x0003, "ERROR", true, { 6, 7 } },
	{ 0x0004, "FACTS_REQ", true, { 0 } },
	{ 0x0005, "FACTS", true, { 21 } },
	{ 0x0006, "CPU_CHECK", true, { 23 } },
	{ 0x0007, "CPU_RESULT", true, { 19 } },
	{ 0x0008, "PING", true, { 0 } },
	{ 0x0009, "PONG", true, { 0 } },
	{ 0x000A, "PATHS_REQ", true, { 21 } },
	{ 0x000B, "PATHS", true, { 21 } },
	{ 0x0010, "PREPARE", true, { 10, 11, 12, 13 } },
	{ 0x0011, "READY", true, { 0 } },
	{ 0x0020, "STREAM_BEGIN", true, { 14 } },
	{ 0x0021, "DATA", false, { 0 } },
	{ 0x0022, "STREAM_END", true, { 15, 16 } },
	{ 0x0023, "STREAM_OK", true, { 15 } },
	{ 0x0030, "RESTORE", true, { 0 } },
	{ 0x0031, "RESTORED", true, { 17 } },
	{ 0x0032, "RESTORE_GO", true, { 0 } },
	{ 0x0033, "STAGED", true, { 0 } },
	{ 0x0040, "COMMIT", true, { 0 } },
	{ 0x0041, "ABORT", true, { 0 } },
	{ 0x0042, "DONE", true, { 0 } },
	{ 0x0043, "QUERY", true, { 10 } },
	{ 0x0044, "STATUS", true, { 10, 25 } },
	{ 0x0045, "KEEPALIVE", true, { 0 } },
	{ 0x0050, "RELAY", true, { 10 } },
	{ 0x0051, "RELAY_READY", true, { 50 } },
	{ 0x0052, "RELAY_OPEN", true, { 0 } },
	{ 0x0053, "RELAY_CLOSE", true, { 0 } },
	{ 0x0054, "LAZY_DONE", true, { 18 } },
	{ 0x0055, "RELAY_PAGES", false, { 0 } },
	{ 0x0060, "NET_SETUP", true, { 56 } },
	{ 0x0061, "NET_READY", true, { 19 } },
};
#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

#define T_READY 0x0011 /* a control message without required attributes */
#define T_DATA 0x0021
#define MAX_PAYLOAD (1u << 20)
#define MAX_CONTROL (MAX_PAYLOAD / 2)

static const struct aspec *attr_by_tag(uint16_t tag)
{
	for (size_t i = 0; i < NATTRS; i++)
		if (attrs[i].tag == tag)
			return &attrs[i];
	return NULL;
}

static const struct mspec *msg_by_type(uint16_t type)
{
	for (size_t i = 0; i < NMSGS; i++)
		if (msgs[i].type == type)
			return &msgs[i];
	return NULL;
}

/* --- raw encoding, independent of the codec --------------------------------- */

struct raw {
	uint8_t b[MAX_PAYLOAD + 64];
	size_t len;
};

static void raw_be(struct raw *r, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		r->b[r->len++] = (uint8_t)(v >> (8 * i));
}

/* An attribute header claiming alen bytes, followed by n bytes of data. */
static void raw_attr_n(struct raw *r, uint16_t tag, uint32_t alen, const void *data, size_t n)
{
	raw_be(r, tag, 2);
	raw_be(r, alen, 4);
	if (n)
		memcpy(r->b + r->len, data, n);
	r->len += n;
}

static void raw_attr(struct raw *r, uint16_t tag, const void *data, uint32_t n)
{
	raw_attr_n(r, tag, n, data, n);
}

static void raw_u32(struct raw *r, uint16_t tag, uint32_t v)
{
	raw_be(r, tag, 2);
	raw_be(r, 4, 4);
	raw_be(r, v, 4);
}

static void raw_u64(struct raw *r, uint16_t tag, uint64_t v)
{
	raw_be(r, tag, 2);
	raw_be(r, 8, 4);
	raw_be(r, v, 8);
}

/* A valid value of the attribute's kind. */
static void raw_valid(struct raw *r, const struct aspec *a)
{
	switch (a->kind) {
	case U32:
		raw_u32(r, a->tag, 0x01020304u + a->tag);
		break;
	case U64:
		raw_u64(r, a->tag, 0x1122334455667700ull + a->tag);
		break;
	case STR:
		raw_attr(r, a->tag, a->name, (uint32_t)strlen(a->name));
		break;
	case BYTES:
		raw_attr(r, a->tag, "\0\1\2", 3);
		break;
	}
}

/* Decodes from an exactly sized heap copy, so that ASan sees any overread. */
static int decode_exact(uint16_t type, const void *p, size_t len, struct msg *m, struct error *e)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	if (!copy)
		BAIL_OUT("out of memory");
	memcpy(copy, p, len);
	error_clear(e);
	r = msg_decode(type, copy, (uint32_t)len, m, e);
	free(copy);
	return r;
}

static int parse_exact(const void *p, size_t len, struct frame *f, struct error *e, uint8_t **keep)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	if (!copy)
		BAIL_OUT("out of memory");
	memcpy(copy, p, len);
	error_clear(e);
	memset(f, 0, sizeof(*f));
	r = proto_frame_parse(copy, len, f, e);
	if (keep)
		*keep = copy;
	else
		free(copy);
	return r;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A complete frame with a correct header, into r. */
static void make_frame(struct raw *r, uint16_t type, uint32_t chan, const void *payload, uint32_t len)
{
	proto_hdr_encode(r->b, type, chan, payload, len);
	if (len)
		memcpy(r->b + PROTO_HDR_SIZE, payload, len);
	r->len = PROTO_HDR_SIZE + len;
}

/* A header with arbitrary fields and a correct checksum over hdr[0..12) + payload. */
static void make_hdr_raw(uint8_t *h, uint32_t len, uint16_t type, uint8_t magic, uint8_t flags, uint32_t chan,
			 const void *payload)
{
	XXH3_state_t st;

	h[0] = (uint8_t)(len >> 24), h[1] = (uint8_t)(len >> 16), h[2] = (uint8_t)(len >> 8), h[3] = (uint8_t)len;
	h[4] = (uint8_t)(type >> 8), h[5] = (uint8_t)type;
	h[6] = magic;
	h[7] = flags;
	h[8] = (uint8_t)(chan >> 24), h[9] = (uint8_t)(chan >> 16), h[10] = (uint8_t)(chan >> 8), h[11] = (uint8_t)chan;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, h, 12);
	if (payload && len)
		XXH3_64bits_update(&st, payload, len);
	uint32_t ck = (uint32_t)XXH3_64bits_digest(&st);
	h[12] = (uint8_t)(ck >> 24), h[13] = (uint8_t)(ck >> 16), h[14] = (uint8_t)(ck >> 8), h[15] = (uint8_t)ck;
}

static struct raw R, R2; /* large: static */

/* --- schema agreement ---------------------------------------------------- */

static void test_schema(void)
{
	int unknown_listed = 0, unlisted_known = 0;
	char first[128] = "";

	for (size_t i = 0; i < NMSGS; i++) {
		if (!msg_type_known(msgs[i].type))
			unknown_listed++;
		if (strcmp(msg_type_name(msgs[i].type), msgs[i].name) != 0)
			unknown_listed++;
	}
	ok(unknown_listed == 0, "every message type of the specification is known to the codec under its name");
	for (uint32_t t = 0; t <= 0xffff; t++) {
		if (msg_type_known((uint16_t)t) && !msg_by_type((uint16_t)t)) {
			if (!unlisted_known++)
				snprintf(first, sizeof(first), "0x%04x %s", t, msg_type_name((uint16_t)t));
		}
	}
	if (!ok(unlisted_known == 0, "the codec knows no message type that the specification lacks"))
		diag("e.g. %s: add it to doc/protocol.md and to this test's table", first);
	is_str(msg_type_name(0x0000), "UNKNOWN", "type 0 has no name");
	is_str(msg_type_name(0xffff), "UNKNOWN", "type 0xffff has no name");
	ok(!msg_type_known(0) && !msg_type_known(0xffff), "types 0 and 0xffff are unknown");

	/* attributes: the codec skips an unknown tag silently; a known one is
	 * either refused with 3 NUL bytes as its value (numbers, strings) or
	 * accepted and marked present (bytes) */
	int unlisted_attr = 0;
	for (uint32_t tag = 1; tag < 256; tag++) {
		struct msg m;
		struct error e = { 0 };

		if (attr_by_tag((uint16_t)tag))
			continue;
		R.len = 0;
		raw_attr(&R, (uint16_t)tag, "\0\0\0", 3);
		int r = decode_exact(T_READY, R.b, R.len, &m, &e);
		if ((r < 0 || m.present != 0) && !unlisted_attr++)
			snprintf(first, sizeof(first), "tag %u (%s)", tag, r < 0 ? e.msg : "accepted");
		msg_free(&m);
	}
	if (!ok(unlisted_attr == 0, "the codec knows no attribute tag (1..255) that the specification lacks"))
		diag("e.g. %s: add it to doc/protocol.md and to this test's table", first);
}

/* --- frame header ------------------------------------------------------------ */

static void test_header_roundtrip(void)
{
	static const struct {
		uint16_t type;
		uint32_t chan, len;
	} cases[] = {
		{ 0x0001, 0, 0 }, { 0x0011, 0, 0 }, { 0x0021, 1, 1 }, { 0x0021, 0xffffffffu, 4096 },
		{ 0x0022, 7, 36 }, { 0x0003, 0, 1000 }, { 0x0021, 2, MAX_PAYLOAD }, { 0x0042, 0x80000000u, MAX_CONTROL },
	};
	static uint8_t payload[MAX_PAYLOAD];

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct frame f;
		struct error e = { 0 };
		uint8_t *kept;
		uint8_t hdr[PROTO_HDR_SIZE], want[PROTO_HDR_SIZE];

		proto_hdr_encode(hdr, cases[i].type, cases[i].chan, payload, cases[i].len);
		make_hdr_raw(want, cases[i].len, cases[i].type, 0xCA, 0, cases[i].chan, payload);
		ok(memcmp(hdr, want, sizeof(hdr)) == 0,
		   "header of %s chan %u len %u: big-endian length, type, magic 0xCA, flags 0, channel, XXH3 check",
		   msg_type_name(cases[i].type), cases[i].chan, cases[i].len);
		make_frame(&R, cases[i].type, cases[i].chan, payload, cases[i].len);
		int r = parse_exact(R.b, R.len, &f, &e, &kept);
		is_int(r, PROTO_HDR_SIZE + cases[i].len, "frame %zu parses, consuming header + payload", i);
		ok(f.type == cases[i].type && f.chan == cases[i].chan && f.len == cases[i].len && f.flags == 0,
		   "frame %zu: type, channel, length and flags round-trip", i);
		ok(r > 0 && f.data == kept + PROTO_HDR_SIZE && memcmp(f.data, payload, f.len) == 0,
		   "frame %zu: data points at the payload", i);
		free(kept);
	}

	/* the checksum is the low 32 bits of XXH3-64 over header bytes 0..11 then the payload */
	uint8_t hdr[PROTO_HDR_SIZE], cat[12 + 5];
	proto_hdr_encode(hdr, 0x0021, 9, "hello", 5);
	memcpy(cat, hdr, 12);
	memcpy(cat + 12, "hello", 5);
	is_int(be32(hdr + 12), (uint32_t)XXH3_64bits(cat, sizeof(cat)), "checksum = low 32 bits of XXH3_64(hdr[0..12) || payload)");
	ok(hdr[0] == 0 && hdr[1] == 0 && hdr[2] == 0 && hdr[3] == 5 && hdr[4] == 0 && hdr[5] == 0x21 && hdr[6] == 0xCA &&
		   hdr[7] == 0 && hdr[8] == 0 && hdr[9] == 0 && hdr[10] == 0 && hdr[11] == 9,
	   "header byte layout: len@0 type@4 magic@6 flags@7 chan@8 check@12");

	/* proto_hdr_parse alone */
	struct frame f;
	struct error e = { 0 };
	proto_hdr_encode(hdr, 0x0020, 77, NULL, 0);
	is_int(proto_hdr_parse(hdr, &f, &e), 0, "proto_hdr_parse accepts a good header");
	ok(f.type == 0x0020 && f.chan == 77 && f.len == 0 && f.flags == 0, "proto_hdr_parse fills type, chan, len, flags");

	/* several frames back to back */
	R2.len = 0;
	make_frame(&R, 0x0011, 0, NULL, 0);
	memcpy(R2.b + R2.len, R.b, R.len), R2.len += R.len;
	make_frame(&R, 0x0021, 3, "abcdef", 6);
	memcpy(R2.b + R2.len, R.b, R.len), R2.len += R.len;
	make_frame(&R, 0x0042, 0, NULL, 0);
	memcpy(R2.b + R2.len, R.b, R.len), R2.len += R.len;
	size_t off = 0;
	int n = 0, r;
	uint16_t types[3] = { 0 };
	while ((r = proto_frame_parse(R2.b + off, R2.len - off, &f, &e)) > 0) {
		if (n < 3)
			types[n] = f.type;
		n++;
		off += (size_t)r;
	}
	ok(n == 3 && off == R2.len && r == 0 && types[0] == 0x0011 && types[1] == 0x0021 && types[2] == 0x0042,
	   "three frames in one buffer are consumed in order, then 0 (need more)");
}

static void test_header_rejects(void)
{
	uint8_t h[PROTO_HDR_SIZE];
	struct frame f;
	struct error e;
	int r;

	/* bad magic byte */
	for (int mg = 0; mg < 256; mg += 51) { /* never 0xCA */
		make_hdr_raw(h, 0, 0x0011, (uint8_t)mg, 0, 0, NULL);
		error_clear(&e);
		r = proto_frame_parse(h, sizeof(h), &f, &e);
		ok(r == -EPROTO && strstr(e.msg, "bad magic byte") && e.code == EPROTO, "magic byte 0x%02x is refused: %s", mg, e.msg);
	}
	make_hdr_raw(h, 0, 0x0011, 0xCB, 0, 0, NULL);
	error_clear(&e);
	is_int(proto_hdr_parse(h, &f, &e), -EPROTO, "proto_hdr_parse refuses a bad magic byte too");

	/* oversized length */
	make_hdr_raw(h, MAX_PAYLOAD + 1, T_DATA, 0xCA, 0, 0, NULL);
	error_clear(&e);
	r = proto_frame_parse(h, sizeof(h), &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "exceeds the limit"), "a DATA payload of 1 MiB + 1 is refused before reading it: %s", e.msg);
	make_hdr_raw(h, 0xffffffffu, T_DATA, 0xCA, 0, 0, NULL);
	error_clear(&e);
	is_int(proto_frame_parse(h, sizeof(h), &f, &e), -EPROTO, "a length of 0xffffffff is refused");
	make_hdr_raw(h, MAX_PAYLOAD, T_DATA, 0xCA, 0, 0, NULL);
	error_clear(&e);
	is_int(proto_frame_parse(h, sizeof(h), &f, &e), 0, "a DATA payload of exactly 1 MiB is acceptable (need more)");
	make_hdr_raw(h, MAX_CONTROL + 1, T_DATA, 0xCA, 0, 0, NULL);
	error_clear(&e);
	is_int(proto_hdr_parse(h, &f, &e), 0, "a DATA payload above the control limit is acceptable");

	/* control messages over their limit */
	for (size_t i = 0; i < NMSGS; i++) {
		if (!msgs[i].control)
			continue;
		make_hdr_raw(h, MAX_CONTROL + 1, msgs[i].type, 0xCA, 0, 0, NULL);
		error_clear(&e);
		r = proto_hdr_parse(h, &f, &e);
		int bad = r == -EPROTO && strstr(e.msg, "too large") && strstr(e.msg, msgs[i].name);
		make_hdr_raw(h, MAX_CONTROL, msgs[i].type, 0xCA, 0, 0, NULL);
		error_clear(&e);
		int good = proto_hdr_parse(h, &f, &e) == 0;
		ok(bad && good, "%s: 512 KiB payload accepted, 512 KiB + 1 refused", msgs[i].name);
	}

	/* unknown types */
	static const uint16_t unknown[] = { 0x0000, 0x000c, 0x000f, 0x0012, 0x0024, 0x0034, 0x00f0, 0x0100, 0x2100, 0xffff };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		make_hdr_raw(h, 0, unknown[i], 0xCA, 0, 0, NULL);
		error_clear(&e);
		r = proto_frame_parse(h, sizeof(h), &f, &e);
		char want[64];
		snprintf(want, sizeof(want), "unknown message type 0x%04x", unknown[i]);
		ok(r == -EPROTO && strstr(e.msg, want), "type 0x%04x is refused: %s", unknown[i], e.msg);
	}

	/* flags */
	for (int fl = 1; fl < 256; fl <<= 1) {
		make_hdr_raw(h, 0, 0x0011, 0xCA, (uint8_t)fl, 0, NULL);
		error_clear(&e);
		r = proto_frame_parse(h, sizeof(h), &f, &e);
		ok(r == -EPROTO && strstr(e.msg, "unknown flags"), "flags 0x%02x are refused", fl);
	}
	make_hdr_raw(h, 0, 0x0011, 0xCA, 0xff, 0, NULL);
	error_clear(&e);
	is_int(proto_frame_parse(h, sizeof(h), &f, &e), -EPROTO, "flags 0xff are refused");

	/* the channel is free */
	make_hdr_raw(h, 0, 0x0011, 0xCA, 0, 0xdeadbeefu, NULL);
	error_clear(&e);
	is_int(proto_frame_parse(h, sizeof(h), &f, &e), PROTO_HDR_SIZE, "any channel number is accepted");
	is_int(f.chan, 0xdeadbeefu, "channel 0xdeadbeef round-trips");
}

static void test_checksum(void)
{
	static const char payload[] = "the quick brown fox jumps over the lazy dog";
	const uint32_t plen = sizeof(payload) - 1;
	static const uint8_t masks[] = { 0x01, 0x80, 0xff, 0x5a };
	struct frame f;
	struct error e;
	int r;

	make_frame(&R, 0x0021, 5, payload, plen);
	const size_t total = R.len;

	/* Padded with zeroes up to the largest frame: whatever a flip does to the
	 * length, the bytes are there, so every flip must be an error.  With the
	 * exact frame, a flip of a length byte may also mean "need more" (0), but
	 * a corrupted frame is never accepted. */
	memset(R2.b, 0, sizeof(R2.b));
	for (size_t i = 0; i < total; i++) {
		int refused = 1;
		char why[160] = "";

		for (size_t k = 0; k < sizeof(masks); k++) {
			uint8_t *kept;

			memcpy(R2.b, R.b, total);
			R2.b[i] ^= masks[k];
			error_clear(&e);
			r = proto_frame_parse(R2.b, PROTO_HDR_SIZE + MAX_PAYLOAD, &f, &e);
			if (r >= 0 && refused) {
				refused = 0;
				snprintf(why, sizeof(why), "(mask 0x%02x, padded: r=%d)", masks[k], r);
			}
			r = parse_exact(R2.b, total, &f, &e, &kept);
			free(kept);
			if ((r > 0 || (r == 0 && i >= 4)) && refused) {
				refused = 0;
				snprintf(why, sizeof(why), "(mask 0x%02x, exact: r=%d)", masks[k], r);
			}
		}
		memset(R2.b + total, 0, 8);
		if (i < 4)
			ok(refused, "flipping bits of header byte %zu (length) is always detected %s", i, why);
		else if (i < PROTO_HDR_SIZE)
			ok(refused, "flipping bits of header byte %zu is detected %s", i, why);
		else
			ok(refused, "flipping bits of payload byte %zu is detected %s", i - PROTO_HDR_SIZE, why);
	}
	/* a payload flip is reported as a checksum mismatch */
	memcpy(R2.b, R.b, total);
	R2.b[PROTO_HDR_SIZE + 3] ^= 1;
	error_clear(&e);
	r = proto_frame_parse(R2.b, total, &f, &e);
	ok(r == -EBADMSG && strstr(e.msg, "checksum mismatch"), "payload corruption is EBADMSG 'checksum mismatch': %s", e.msg);
	memcpy(R2.b, R.b, total);
	R2.b[9] ^= 0x10; /* channel */
	error_clear(&e);
	r = proto_frame_parse(R2.b, total, &f, &e);
	is_int(r, -EBADMSG, "channel corruption is a checksum mismatch");
	memcpy(R2.b, R.b, total);
	R2.b[13] ^= 0x10; /* the checksum itself */
	error_clear(&e);
	is_int(proto_frame_parse(R2.b, total, &f, &e), -EBADMSG, "checksum field corruption is a checksum mismatch");

	/* truncated buffers: 0 = need more, for every prefix */
	int all_zero = 1;
	for (size_t n = 0; n < total; n++) {
		uint8_t *kept;
		r = parse_exact(R.b, n, &f, &e, &kept);
		free(kept);
		if (r != 0) {
			all_zero = 0;
			diag("prefix of %zu bytes gave %d", n, r);
		}
	}
	ok(all_zero, "every truncated prefix (0..%zu bytes) returns 0 = need more", total - 1);
	r = proto_frame_parse(R.b, 0, &f, &e);
	is_int(r, 0, "an empty buffer returns 0");
	make_hdr_raw(R2.b, MAX_PAYLOAD, T_DATA, 0xCA, 0, 0, NULL);
	is_int(proto_frame_parse(R2.b, PROTO_HDR_SIZE + MAX_PAYLOAD - 1, &f, &e), 0,
	       "a 1 MiB DATA frame one byte short returns 0");
}

/* --- control messages ------------------------------------------------------ */

static void test_required(void)
{
	for (size_t i = 0; i < NMSGS; i++) {
		const struct mspec *ms = &msgs[i];
		struct msg m;
		struct error e;
		int r;

		if (!ms->control) {
			error_clear(&e);
			r = decode_exact(ms->type, "", 0, &m, &e);
			ok(r == -EPROTO && strstr(e.msg, "not a control message"), "%s cannot be decoded as a control message: %s",
			   ms->name, e.msg);
			msg_free(&m);
			continue;
		}
		/* complete */
		R.len = 0;
		uint64_t want_present = 0;
		for (int k = 0; ms->req[k]; k++) {
			raw_valid(&R, attr_by_tag(ms->req[k]));
			want_present |= 1ull << ms->req[k];
		}
		r = decode_exact(ms->type, R.b, R.len, &m, &e);
		ok(r == 0 && m.present == want_present && m.type == ms->type, "%s with its required attributes decodes%s%s",
		   ms->name, r ? ": " : "", r ? e.msg : "");
		int vals = 1;
		for (int k = 0; r == 0 && ms->req[k]; k++) {
			const struct aspec *a = attr_by_tag(ms->req[k]);
			if (a->kind == U32 && m.num[a->tag] != 0x01020304u + a->tag)
				vals = 0;
			if (a->kind == U64 && m.num[a->tag] != 0x1122334455667700ull + a->tag)
				vals = 0;
			if (a->kind == STR && (!m.str[a->tag] || strcmp(m.str[a->tag], a->name)))
				vals = 0;
			if (a->kind == BYTES && (m.blen[a->tag] != 3 || memcmp(m.bytes[a->tag], "\0\1\2", 3)))
				vals = 0;
		}
		ok(vals, "%s: every attribute value round-trips", ms->name);
		msg_free(&m);

		/* in reverse order too: attribute order does not matter */
		R.len = 0;
		int nreq = 0;
		while (ms->req[nreq])
			nreq++;
		for (int k = nreq - 1; k >= 0; k--)
			raw_valid(&R, attr_by_tag(ms->req[k]));
		r = decode_exact(ms->type, R.b, R.len, &m, &e);
		ok(r == 0 && m.present == want_present, "%s: attributes in any order", ms->name);
		msg_free(&m);

		/* each one missing */
		for (int miss = 0; miss < nreq; miss++) {
			const struct aspec *a = attr_by_tag(ms->req[miss]);
			char want[160];

			R.len = 0;
			for (int k = 0; k < nreq; k++)
				if (k != miss)
					raw_valid(&R, attr_by_tag(ms->req[k]));
			r = decode_exact(ms->type, R.b, R.len, &m, &e);
			snprintf(want, sizeof(want), "%s message lacks the required attribute '%s'", ms->name, a->name);
			ok(r == -EPROTO && strstr(e.msg, want) && m.pool == NULL && m.present == 0,
			   "%s without '%s' fails naming it: %s", ms->name, a->name, e.msg);
			msg_free(&m);
		}

		/* empty payload */
		r = decode_exact(ms->type, "", 0, &m, &e);
		if (nreq == 0) {
			ok(r == 0 && m.present == 0, "%s with an empty payload decodes", ms->name);
		} else {
			char want[160];
			uint16_t lowest = 0xffff;
			for (int k = 0; k < nreq; k++)
				if (ms->req[k] < lowest)
					lowest = ms->req[k];
			snprintf(want, sizeof(want), "lacks the required attribute '%s'", attr_by_tag(lowest)->name);
			ok(r == -EPROTO && strstr(e.msg, want), "%s with an empty payload fails naming '%s'", ms->name,
			   attr_by_tag(lowest)->name);
		}
		msg_free(&m);
	}
	struct msg m;
	struct error e;
	int r = decode_exact(0x1234, "", 0, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "unknown message type 0x1234"), "msg_decode of an unknown type fails: %s", e.msg);
	msg_free(&m);
}

static void test_attr_kinds(void)
{
	static char big[600 * 1024];
	struct msg m;
	struct error e;
	int r;

	memset(big, 'a', sizeof(big));
	for (size_t i = 0; i < NATTRS; i++) {
		const struct aspec *a = &attrs[i];
		char want[160];

		snprintf(want, sizeof(want), "attribute '%s' has a bad length", a->name);
		switch (a->kind) {
		case U32:
		case U64: {
			uint32_t good = a->kind == U32 ? 4 : 8;
			static const uint32_t bad[] = { 0, 1, 3, 4, 5, 7, 8, 9, 16 };
			R.len = 0;
			if (a->kind == U32)
				raw_u32(&R, a->tag, 0xfedcba98u);
			else
				raw_u64(&R, a->tag, 0xfedcba9876543210ull);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && msg_has(&m, (enum attr_tag)a->tag) &&
				   m.num[a->tag] == (a->kind == U32 ? 0xfedcba98u : 0xfedcba9876543210ull),
			   "%s (%s): big-endian value decodes", a->name, a->kind == U32 ? "u32" : "u64");
			msg_free(&m);
			int all = 1;
			for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
				if (bad[k] == good)
					continue;
				R.len = 0;
				raw_attr(&R, a->tag, "0123456789abcdef", bad[k]);
				r = decode_exact(T_READY, R.b, R.len, &m, &e);
				if (!(r == -EPROTO && strstr(e.msg, want))) {
					all = 0;
					diag("length %u: r=%d %s", bad[k], r, e.msg);
				}
				msg_free(&m);
			}
			ok(all, "%s: any length but %u is refused naming the attribute", a->name, good);
			break;
		}
		case STR: {
			R.len = 0;
			raw_attr(&R, a->tag, "", 0);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && m.str[a->tag] && m.str[a->tag][0] == 0, "%s: an empty string decodes", a->name);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, big, a->max);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && m.str[a->tag] && strlen(m.str[a->tag]) == a->max, "%s: a string of the maximum %u bytes decodes",
			   a->name, a->max);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, big, a->max + 1);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == -EPROTO && strstr(e.msg, want), "%s: %u bytes are refused: %s", a->name, a->max + 1, e.msg);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, "ab\0cd", 5);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			snprintf(want, sizeof(want), "string attribute '%s' contains a NUL byte", a->name);
			ok(r == -EPROTO && strstr(e.msg, want), "%s: a NUL inside is refused", a->name);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, "x\0", 2);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == -EPROTO, "%s: a trailing NUL is refused", a->name);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, "h\xc3\xa9\xff\x01", 5);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && !strcmp(m.str[a->tag], "h\xc3\xa9\xff\x01"), "%s: any non-NUL bytes are kept as they are",
			   a->name);
			msg_free(&m);
			break;
		}
		case BYTES: {
			R.len = 0;
			raw_attr(&R, a->tag, "", 0);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && msg_has(&m, (enum attr_tag)a->tag) && m.blen[a->tag] == 0, "%s: empty bytes decode", a->name);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, "\0x\0y\0", 5);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && m.blen[a->tag] == 5 && !memcmp(m.bytes[a->tag], "\0x\0y\0", 5),
			   "%s: bytes may contain NULs", a->name);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, big, a->max);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == 0 && m.blen[a->tag] == a->max, "%s: the maximum of %u bytes decodes", a->name, a->max);
			msg_free(&m);
			R.len = 0;
			raw_attr(&R, a->tag, big, a->max + 1);
			r = decode_exact(T_READY, R.b, R.len, &m, &e);
			ok(r == -EPROTO && strstr(e.msg, want), "%s: %u bytes are refused: %s", a->name, a->max + 1, e.msg);
			msg_free(&m);
			break;
		}
		}

		/* duplicate */
		R.len = 0;
		raw_valid(&R, a);
		raw_valid(&R, a);
		r = decode_exact(T_READY, R.b, R.len, &m, &e);
		snprintf(want, sizeof(want), "attribute '%s' appears twice", a->name);
		ok(r == -EPROTO && strstr(e.msg, want) && m.pool == NULL, "%s twice is refused", a->name);
		msg_free(&m);
	}

	/* the same attribute twice with an unknown one between, and both required */
	R.len = 0;
	raw_u64(&R, 15, 1);
	raw_attr(&R, 999, "zz", 2);
	raw_u64(&R, 16, 2);
	raw_u64(&R, 15, 3);
	r = decode_exact(0x0022, R.b, R.len, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "'bytes' appears twice"), "STREAM_END with 'bytes' twice is refused");
	msg_free(&m);
}

static void test_tlv_structure(void)
{
	struct msg m;
	struct error e;
	int r;

	/* attribute longer than the rest of the payload */
	R.len = 0;
	raw_attr_n(&R, 7, 10, "short", 5);
	r = decode_exact(T_READY, R.b, R.len, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "claims 10 bytes, only 5 left"), "an attribute longer than the payload is refused: %s",
	   e.msg);
	msg_free(&m);
	R.len = 0;
	raw_u32(&R, 19, 1);
	raw_attr_n(&R, 19, 0xffffffffu, "", 0);
	r = decode_exact(T_READY, R.b, R.len, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "claims 4294967295 bytes, only 0 left"), "a length of 0xffffffff is refused: %s", e.msg);
	msg_free(&m);
	R.len = 0;
	raw_attr_n(&R, 500, 3, "ab", 2);
	r = decode_exact(T_READY, R.b, R.len, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "claims"), "an unknown attribute longer than the payload is refused too");
	msg_free(&m);

	/* truncated attribute header: 1..5 bytes left over */
	for (int n = 1; n < 6; n++) {
		R.len = 0;
		raw_u32(&R, 19, 1);
		memset(R.b + R.len, 0, (size_t)n);
		R.len += (size_t)n;
		r = decode_exact(T_READY, R.b, R.len, &m, &e);
		ok(r == -EPROTO && strstr(e.msg, "truncated attribute header at offset 10"),
		   "%d stray byte(s) after the last attribute are refused: %s", n, e.msg);
		msg_free(&m);
	}

	/* unknown attributes are skipped */
	static const uint16_t unknown[] = { 0, 62, 63, 64, 100, 0x7fff, 0xffff };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		R.len = 0;
		raw_attr(&R, unknown[i], "whatever\0with NUL", 17);
		raw_u64(&R, 15, 42);
		raw_attr(&R, unknown[i], "", 0);
		raw_attr(&R, unknown[i], "again", 5);
		r = decode_exact(0x0023, R.b, R.len, &m, &e);
		ok(r == 0 && m.present == 1ull << 15 && m.num[15] == 42,
		   "unknown attribute tag %u is skipped, even repeated (forward compatibility)%s%s", unknown[i], r ? ": " : "",
		   r ? e.msg : "");
		msg_free(&m);
	}
	/* an unknown attribute does not satisfy a required one */
	R.len = 0;
	raw_attr(&R, 200, "x", 1);
	r = decode_exact(0x0023, R.b, R.len, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "'bytes'"), "STREAM_OK with only an unknown attribute lacks 'bytes'");
	msg_free(&m);

	/* every attribute at once */
	R.len = 0;
	for (size_t i = 0; i < NATTRS; i++)
		raw_valid(&R, &attrs[i]);
	r = decode_exact(T_READY, R.b, R.len, &m, &e);
	uint64_t all = 0;
	for (size_t i = 0; i < NATTRS; i++)
		all |= 1ull << attrs[i].tag;
	ok(r == 0 && m.present == all, "a message carrying every attribute decodes");
	int good = r == 0;
	for (size_t i = 0; good && i < NATTRS; i++) {
		const struct aspec *a = &attrs[i];
		good = msg_has(&m, (enum attr_tag)a->tag);
		if (a->kind == STR)
			good = good && !strcmp(m.str[a->tag], a->name);
	}
	ok(good, "msg_has and the strings are right for every attribute");
	msg_free(&m);
	ok(m.pool == NULL && m.present == 0, "msg_free clears the message");
	msg_free(&m);
	ok(1, "msg_free twice is harmless");

	ok(!msg_has(&m, (enum attr_tag)0) && !msg_has(&m, (enum attr_tag)200), "msg_has of tag 0 or out of range is false");
}

/* --- builders ---------------------------------------------------------------- */

static void test_builders(void)
{
	struct mbuf mb;
	struct msg m;
	struct error e;
	int r;

	mb_init(&mb);
	ok(mb.len == 0 && !mb.overflow, "mb_init: empty");
	mb_u32(&mb, (enum attr_tag)19, 0xa1b2c3d4u);
	static const uint8_t w32[] = { 0, 19, 0, 0, 0, 4, 0xa1, 0xb2, 0xc3, 0xd4 };
	ok(mb.len == sizeof(w32) && !memcmp(mb.b, w32, sizeof(w32)), "mb_u32 encodes tag, length 4, big-endian value");
	mb_free(&mb);

	mb_init(&mb);
	mb_u64(&mb, (enum attr_tag)15, 0x0102030405060708ull);
	static const uint8_t w64[] = { 0, 15, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8 };
	ok(mb.len == sizeof(w64) && !memcmp(mb.b, w64, sizeof(w64)), "mb_u64 encodes tag, length 8, big-endian value");
	mb_free(&mb);

	mb_init(&mb);
	mb_str(&mb, (enum attr_tag)5, "node-a");
	static const uint8_t ws[] = { 0, 5, 0, 0, 0, 6, 'n', 'o', 'd', 'e', '-', 'a' };
	ok(mb.len == sizeof(ws) && !memcmp(mb.b, ws, sizeof(ws)), "mb_str encodes without a terminating NUL");
	mb_free(&mb);

	mb_init(&mb);
	mb_bytes(&mb, (enum attr_tag)22, "{\0}", 3);
	static const uint8_t wb[] = { 0, 22, 0, 0, 0, 3, '{', 0, '}' };
	ok(mb.len == sizeof(wb) && !memcmp(mb.b, wb, sizeof(wb)), "mb_bytes encodes the bytes as they are");
	mb_free(&mb);

	/* round trips of every kind with edge values */
	static const uint32_t u32s[] = { 0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu };
	static const uint64_t u64s[] = { 0, 1, 0xffffffffull, 0x100000000ull, 0x8000000000000000ull, UINT64_MAX };
	int good = 1;
	for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
		mb_init(&mb);
		mb_u32(&mb, (enum attr_tag)17, u32s[i]);
		r = decode_exact(0x0031, mb.b, mb.len, &m, &e);
		good = good && r == 0 && m.num[17] == u32s[i];
		msg_free(&m);
		mb_free(&mb);
	}
	ok(good, "u32 edge values round-trip (RESTORED pid)");
	good = 1;
	for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++) {
		mb_init(&mb);
		mb_u64(&mb, (enum attr_tag)15, u64s[i]);
		mb_u64(&mb, (enum attr_tag)16, ~u64s[i]);
		r = decode_exact(0x0022, mb.b, mb.len, &m, &e);
		good = good && r == 0 && m.num[15] == u64s[i] && m.num[16] == ~u64s[i];
		msg_free(&m);
		mb_free(&mb);
	}
	ok(good, "u64 edge values round-trip (STREAM_END bytes, hash)");

	/* every attribute through the builders */
	static char big[600 * 1024];
	memset(big, 'q', sizeof(big) - 1);
	mb_init(&mb);
	for (size_t i = 0; i < NATTRS; i++) {
		const struct aspec *a = &attrs[i];
		switch (a->kind) {
		case U32:
			mb_u32(&mb, (enum attr_tag)a->tag, 1000u + a->tag);
			break;
		case U64:
			mb_u64(&mb, (enum attr_tag)a->tag, (uint64_t)a->tag << 40);
			break;
		case STR:
			mb_str(&mb, (enum attr_tag)a->tag, a->name);
			break;
		case BYTES:
			mb_bytes(&mb, (enum attr_tag)a->tag, a->name, strlen(a->name) + 1);
			break;
		}
	}
	ok(!mb.overflow, "a message with every attribute fits");
	r = decode_exact(T_READY, mb.b, mb.len, &m, &e);
	good = r == 0;
	for (size_t i = 0; good && i < NATTRS; i++) {
		const struct aspec *a = &attrs[i];
		switch (a->kind) {
		case U32:
			good = m.num[a->tag] == 1000u + a->tag;
			break;
		case U64:
			good = m.num[a->tag] == (uint64_t)a->tag << 40;
			break;
		case STR:
			good = !strcmp(m.str[a->tag], a->name);
			break;
		case BYTES:
			good = m.blen[a->tag] == strlen(a->name) + 1 && !memcmp(m.bytes[a->tag], a->name, m.blen[a->tag]);
			break;
		}
		if (!good)
			diag("attribute %s did not round-trip", a->name);
	}
	ok(good, "every attribute round-trips through mb_* and msg_decode");
	msg_free(&m);
	mb_free(&mb);

	/* strings are truncated to what the peer accepts */
	for (size_t i = 0; i < NATTRS; i++) {
		const struct aspec *a = &attrs[i];
		if (a->kind != STR)
			continue;
		big[a->max + 10] = 0;
		mb_init(&mb);
		mb_str(&mb, (enum attr_tag)a->tag, big);
		r = decode_exact(T_READY, mb.b, mb.len, &m, &e);
		ok(!mb.overflow && r == 0 && strlen(m.str[a->tag]) == a->max, "mb_str truncates '%s' to %u bytes", a->name,
		   a->max);
		msg_free(&m);
		mb_free(&mb);
		big[a->max + 10] = 'q';
	}

	/* bytes over the limit overflow instead */
	mb_init(&mb);
	mb_bytes(&mb, (enum attr_tag)23, big, 65537);
	ok(mb.overflow, "mb_bytes over the attribute's maximum sets overflow");
	mb_u32(&mb, (enum attr_tag)19, 1);
	ok(mb.overflow && mb.len == 0, "overflow is sticky: later attributes are not added");
	mb_free(&mb);
	mb_init(&mb);
	mb_bytes(&mb, (enum attr_tag)23, big, 65536);
	ok(!mb.overflow && mb.len == 6 + 65536, "mb_bytes at the maximum fits");
	mb_free(&mb);

	/* the whole control payload is bounded by 512 KiB */
	mb_init(&mb);
	mb_bytes(&mb, (enum attr_tag)22, big, MAX_CONTROL - 6);
	ok(!mb.overflow && mb.len == MAX_CONTROL, "a control payload of exactly 512 KiB can be built");
	mb_u32(&mb, (enum attr_tag)19, 0);
	ok(mb.overflow, "one more attribute overflows it");
	mb_free(&mb);
	mb_init(&mb);
	mb_bytes(&mb, (enum attr_tag)22, big, MAX_CONTROL - 5);
	ok(mb.overflow, "config of 512 KiB - 5 bytes does not fit one control message");
	mb_free(&mb);
	mb_init(&mb);
	big[65536] = 0;
	for (int i = 0; i < 7; i++)
		mb_str(&mb, (enum attr_tag)21, big);
	ok(!mb.overflow, "seven 64 KiB strings fit");
	mb_str(&mb, (enum attr_tag)21, big);
	ok(mb.overflow, "the eighth overflows 512 KiB");
	mb_free(&mb);
	big[65536] = 'q';
}

/* --- connection ---------------------------------------------------------------- */

struct pair {
	int fd[2];
	struct proto_conn a, b; /* a = fd[0] ("source"), b = fd[1] ("agent") */
};

static void pair_open(struct pair *p)
{
	struct error e = { 0 };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd) < 0)
		BAIL_OUT("socketpair: %s", strerror(errno));
	if (proto_conn_init(&p->a, p->fd[0], p->fd[0], "agent-host", &e) < 0 ||
	    proto_conn_init(&p->b, p->fd[1], p->fd[1], "source-host", &e) < 0)
		BAIL_OUT("proto_conn_init: %s", e.msg);
}

static void pair_close(struct pair *p)
{
	proto_conn_free(&p->a);
	proto_conn_free(&p->b);
	if (p->fd[0] >= 0)
		close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
}

static void write_raw(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = write(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			BAIL_OUT("write: %s", strerror(errno));
		b += k;
		n -= (size_t)k;
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_conn_basic(void)
{
	struct pair p;
	struct frame f;
	struct msg m;
	struct mbuf mb;
	struct error e = { 0 };
	int r;

	pair_open(&p);
	r = proto_send(&p.a, 0x0021, 42, "payload", 7, &e);
	is_int(r, 0, "proto_send of a DATA frame");
	r = proto_recv(&p.b, &f, &e);
	ok(r == 0 && f.type == 0x0021 && f.chan == 42 && f.len == 7 && !memcmp(f.data, "payload", 7),
	   "proto_recv gets it back");
	ok(p.a.bytes_out == 23 && p.b.bytes_in == 23 && p.b.got_first, "byte counters include the header");

	mb_init(&mb);
	mb_u32(&mb, (enum attr_tag)1, PROTO_HELLO_MAGIC);
	mb_u32(&mb, (enum attr_tag)2, PROTO_MAJOR);
	mb_u32(&mb, (enum attr_tag)3, PROTO_MINOR);
	mb_str(&mb, (enum attr_tag)4, "cmt test");
	mb_str(&mb, (enum attr_tag)5, "node-a");
	r = proto_send_msg(&p.a, 0x0001, &mb, &e);
	mb_free(&mb);
	is_int(r, 0, "proto_send_msg HELLO");
	r = proto_recv_msg(&p.b, 0x0001, &m, &e);
	ok(r == 0 && m.type == 0x0001 && m.num[1] == PROTO_HELLO_MAGIC && !strcmp(m.str[5], "node-a"),
	   "proto_recv_msg(HELLO) decodes it");
	msg_free(&m);

	r = proto_send_msg(&p.b, 0x0011, NULL, &e);
	is_int(r, 0, "proto_send_msg with no builder sends an empty payload");
	r = proto_recv_msg(&p.a, 0, &m, &e);
	ok(r == 0 && m.type == 0x0011 && m.present == 0, "proto_recv_msg(0) accepts any control message");
	msg_free(&m);

	/* unexpected message type */
	proto_send_msg(&p.b, 0x0011, NULL, &e);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0x0002, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "agent-host sent READY where WELCOME was expected") && m.pool == NULL,
	   "a message of another type is a protocol error: %s", e.msg);

	/* DATA where a control message is expected */
	proto_send(&p.b, 0x0021, 1, "x", 1, &e);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0x0023, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "sent data where a STREAM_OK message was expected"), "DATA instead of a message: %s",
	   e.msg);
	proto_send(&p.b, 0x0021, 1, "x", 1, &e);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "sent data where a control message was expected"),
	   "DATA when any message is expected: %s", e.msg);

	/* malformed message */
	R.len = 0;
	raw_attr_n(&R, 7, 99, "", 0);
	proto_send(&p.b, 0x0011, 0, R.b, (uint32_t)R.len, &e);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0x0011, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "malformed message from agent-host: READY: attribute 7 claims"),
	   "a malformed message names the peer: %s", e.msg);

	/* a message with unknown attributes is fine */
	R.len = 0;
	raw_attr(&R, 300, "future", 6);
	proto_send(&p.b, 0x0011, 0, R.b, (uint32_t)R.len, &e);
	r = proto_recv_msg(&p.a, 0x0011, &m, &e);
	ok(r == 0 && m.present == 0, "an unknown attribute from a newer peer is ignored");
	msg_free(&m);

	/* too large to send */
	error_clear(&e);
	r = proto_send(&p.a, 0x0021, 0, R.b, MAX_PAYLOAD + 1, &e);
	ok(r == -EMSGSIZE, "proto_send refuses a payload over 1 MiB: %s", e.msg);
	mb_init(&mb);
	mb.overflow = true;
	error_clear(&e);
	r = proto_send_msg(&p.a, 0x0011, &mb, &e);
	ok(r == -EMSGSIZE && strstr(e.msg, "READY message too large"), "proto_send_msg refuses an overflowed builder");
	mb_free(&mb);

	/* a corrupted frame after the first good one */
	make_frame(&R, 0x0011, 0, NULL, 0);
	R.b[13] ^= 0xff;
	write_raw(p.fd[1], R.b, R.len);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EBADMSG && strstr(e.msg, "from agent-host: corrupted frame: checksum mismatch"), "checksum mismatch: %s", e.msg);
	make_hdr_raw(R.b, 0, 0x0099, 0xCA, 0, 0, NULL);
	write_raw(p.fd[1], R.b, PROTO_HDR_SIZE);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "from agent-host: malformed frame: unknown message type 0x0099"),
	   "unknown type over the connection: %s", e.msg);
	pair_close(&p);
}

static void test_conn_error_msg(void)
{
	struct pair p;
	struct msg m;
	struct mbuf mb;
	struct error e = { 0 }, sent = { 0 };
	int r;

	pair_open(&p);
	error_set(&sent, ENOSPC, "cannot write images: No space left on device");
	error_hint(&sent, "free space on the destination");
	error_detail(&sent, "line one\nline two");
	r = proto_send_error(&p.b, &sent, "dest-1");
	is_int(r, 0, "proto_send_error");
	r = proto_recv_msg(&p.a, 0x0011, &m, &e);
	is_int(r, -ENOSPC, "MSG_ERROR becomes an error with the peer's errno");
	is_int(e.code, ENOSPC, "e.code");
	is_str(e.msg, "cannot write images: No space left on device", "the peer's message");
	is_str(e.hint, "free space on the destination", "the peer's hint");
	is_str(e.detail, "line one\nline two", "the peer's detail");
	is_str(e.host, "dest-1", "the host the peer named");
	ok(m.pool == NULL, "no message is left to free");

	/* the error's own host wins over the default */
	error_clear(&sent);
	error_set(&sent, EPERM, "denied");
	error_host(&sent, "inner-host");
	proto_send_error(&p.b, &sent, "dest-1");
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0, &m, &e);
	ok(r == -EPERM && !strcmp(e.host, "inner-host") && e.hint[0] == 0 && e.detail[0] == 0,
	   "an error with its own host keeps it; no hint, no detail");

	/* no host at all: the connection's peer name */
	error_clear(&sent);
	error_set(&sent, EINVAL, "bad");
	proto_send_error(&p.b, &sent, NULL);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0, &m, &e);
	ok(r == -EINVAL && !strcmp(e.host, "agent-host"), "without a host, the error is placed on the peer: %s", e.host);

	/* errno 0 or out of range becomes EIO */
	static const uint32_t odd[] = { 0, 4096, 0xffffffffu };
	for (size_t i = 0; i < 3; i++) {
		mb_init(&mb);
		mb_u32(&mb, (enum attr_tag)6, odd[i]);
		mb_str(&mb, (enum attr_tag)7, "odd errno");
		proto_send_msg(&p.b, 0x0003, &mb, &e);
		mb_free(&mb);
		error_clear(&e);
		r = proto_recv_msg(&p.a, 0, &m, &e);
		ok(r == -EIO && e.code == EIO && !strcmp(e.msg, "odd errno"), "errno %u from the peer becomes EIO", odd[i]);
	}
	error_clear(&sent);
	sent.code = 0;
	snprintf(sent.msg, sizeof(sent.msg), "no code");
	proto_send_error(&p.b, &sent, NULL);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0, &m, &e);
	is_int(r, -EIO, "an error without a code is sent as EIO");

	/* ERROR lacking its message is malformed */
	mb_init(&mb);
	mb_u32(&mb, (enum attr_tag)6, 5);
	proto_send_msg(&p.b, 0x0003, &mb, &e);
	mb_free(&mb);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "lacks the required attribute 'message'"), "ERROR without a message: %s", e.msg);

	/* a long message is cut to the local buffer, not overflowing it */
	static char longmsg[8000];
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	mb_init(&mb);
	mb_u32(&mb, (enum attr_tag)6, EIO);
	mb_str(&mb, (enum attr_tag)7, longmsg);
	mb_str(&mb, (enum attr_tag)8, longmsg);
	mb_str(&mb, (enum attr_tag)9, longmsg);
	mb_str(&mb, (enum attr_tag)5, longmsg);
	proto_send_msg(&p.b, 0x0003, &mb, &e);
	mb_free(&mb);
	error_clear(&e);
	r = proto_recv_msg(&p.a, 0, &m, &e);
	ok(r == -EIO && strlen(e.msg) == ERROR_MSG_MAX - 1 && strlen(e.hint) == ERROR_HINT_MAX - 1 &&
		   strlen(e.detail) == ERROR_DETAIL_MAX - 1 && strlen(e.host) == sizeof(e.host) - 1,
	   "over-long error fields are truncated to the local limits");
	pair_close(&p);
}

static void test_conn_eof(void)
{
	struct pair p;
	struct frame f;
	struct error e = { 0 };
	int r;

	/* clean close between frames */
	pair_open(&p);
	close(p.fd[1]);
	p.fd[1] = -1;
	r = proto_recv(&p.a, &f, &e);
	ok(r == -ECONNRESET && strstr(e.msg, "connection to agent-host closed") && !strstr(e.msg, "middle"),
	   "EOF between frames: %s", e.msg);
	pair_close(&p);

	/* close in the middle of the payload */
	pair_open(&p);
	proto_send(&p.b, 0x0011, 0, NULL, 0, &e); /* a good first frame */
	make_frame(&R, 0x0021, 1, "0123456789", 10);
	write_raw(p.fd[1], R.b, R.len - 4);
	close(p.fd[1]);
	p.fd[1] = -1;
	r = proto_recv(&p.a, &f, &e);
	is_int(r, 0, "the first frame arrives");
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -ECONNRESET && strstr(e.msg, "closed in the middle of a frame"), "EOF inside a payload: %s", e.msg);
	pair_close(&p);

	/* close in the middle of a header */
	pair_open(&p);
	proto_send(&p.b, 0x0011, 0, NULL, 0, &e);
	make_frame(&R, 0x0011, 0, NULL, 0);
	write_raw(p.fd[1], R.b, 9);
	close(p.fd[1]);
	p.fd[1] = -1;
	proto_recv(&p.a, &f, &e);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -ECONNRESET && strstr(e.msg, "closed in the middle of a frame"), "EOF inside a header: %s", e.msg);
	pair_close(&p);

	/* sending to a closed peer */
	signal(SIGPIPE, SIG_IGN);
	pair_open(&p);
	close(p.fd[1]);
	p.fd[1] = -1;
	error_clear(&e);
	r = proto_send_msg(&p.a, 0x0040, NULL, &e);
	ok(r == -EPIPE && strstr(e.msg, "connection to agent-host lost while sending COMMIT"), "send after close: %s", e.msg);
	pair_close(&p);
}

static void test_conn_garbage(void)
{
	struct pair p;
	struct frame f;
	struct error e = { 0 };
	int r;
	static const char motd[] = "Last login: Mon Jan  1 00:00:00 2024\nWelcome!\n";

	pair_open(&p);
	write_raw(p.fd[1], motd, sizeof(motd) - 1);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "agent-host did not speak the cmt protocol: it sent \"Last login: Mon ...\""),
	   "text before the first frame: %s", e.msg);
	has_str(e.hint, "cmt agent --stdio", "the hint names the remote command");
	has_str(e.hint, "print nothing", "the hint mentions shell startup files");
	pair_close(&p);

	/* non-printable bytes are escaped */
	pair_open(&p);
	write_raw(p.fd[1], "\x1b[0m\tline\r\n----\x01", 16);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "it sent \"\\x1b[0m\\x09line\\x0d\\x0a----\\x01...\""), "escaped: %s", e.msg);
	pair_close(&p);

	/* text shorter than a header, then the remote shell exits */
	pair_open(&p);
	write_raw(p.fd[1], "sh: cmt: nope\n", 14);
	close(p.fd[1]);
	p.fd[1] = -1;
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "did not speak the cmt protocol: it sent \"sh: cmt: nope\\x0a...\""),
	   "short text then EOF is still recognized as garbage: %s", e.msg);
	pair_close(&p);

	/* through proto_recv_msg, as the handshake does */
	pair_open(&p);
	write_raw(p.fd[1], "bash: cmt: command not found\n", 29);
	error_clear(&e);
	struct msg m;
	r = proto_recv_msg(&p.a, 0x0002, &m, &e);
	ok(r == -EPROTO && strstr(e.msg, "did not speak the cmt protocol"), "proto_recv_msg reports it the same way");
	pair_close(&p);

	/* after a good frame, a bad magic byte is a malformed frame, not garbage */
	pair_open(&p);
	proto_send(&p.b, 0x0011, 0, NULL, 0, &e);
	proto_recv(&p.a, &f, &e);
	write_raw(p.fd[1], motd, 16);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "from agent-host: malformed frame: bad magic byte"),
	   "garbage after the first frame is a malformed frame: %s", e.msg);
	pair_close(&p);

	/* a first header with the right magic but bad flags is malformed, not garbage */
	pair_open(&p);
	make_hdr_raw(R.b, 0, 0x0011, 0xCA, 1, 0, NULL);
	write_raw(p.fd[1], R.b, PROTO_HDR_SIZE);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	ok(r == -EPROTO && strstr(e.msg, "unknown flags"), "bad flags on the first frame: %s", e.msg);
	pair_close(&p);
}

static void test_conn_timeout(void)
{
	struct pair p;
	struct frame f;
	struct error e = { 0 };
	double t0;
	int r;

	pair_open(&p);
	p.a.timeout_ms = 150;
	t0 = now_s();
	r = proto_recv(&p.a, &f, &e);
	double dt = now_s() - t0;
	ok(r == -ETIMEDOUT && strstr(e.msg, "agent-host did not answer within 150 ms"), "receive timeout: %s", e.msg);
	ok(dt >= 0.14 && dt < 5, "it took about 150 ms (%.3f s)", dt);

	/* a header arrives, the payload does not */
	make_frame(&R, 0x0021, 1, "0123456789", 10);
	write_raw(p.fd[1], R.b, 20);
	error_clear(&e);
	r = proto_recv(&p.a, &f, &e);
	is_int(r, -ETIMEDOUT, "a stalled payload times out too");
	pair_close(&p);

	/* timeout 0 waits; data arriving late is received */
	pair_open(&p);
	pid_t pid = fork();
	if (pid == 0) {
		usleep(200000);
		proto_send(&p.b, 0x0042, 0, NULL, 0, NULL);
		_exit(0);
	}
	struct msg m;
	r = proto_recv_msg(&p.a, 0x0042, &m, &e);
	ok(r == 0, "with timeout 0 a late message is waited for");
	msg_free(&m);
	waitpid(pid, NULL, 0);
	pair_close(&p);
}

static void test_conn_large(void)
{
	struct pair p;
	struct frame f;
	struct error e = { 0 };
	static uint8_t big[MAX_PAYLOAD];
	int r;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	pair_open(&p);
	pid_t pid = fork();
	if (pid == 0) {
		struct mbuf mb;
		int bad = proto_send(&p.b, 0x0021, 3, big, MAX_PAYLOAD, NULL) < 0;
		bad |= proto_send(&p.b, 0x0021, 3, big, 1, NULL) < 0;
		mb_init(&mb);
		mb_bytes(&mb, (enum attr_tag)22, big, 400000);
		bad |= proto_send_msg(&p.b, 0x0030, &mb, NULL) < 0;
		mb_free(&mb);
		_exit(bad);
	}
	r = proto_recv(&p.a, &f, &e);
	ok(r == 0 && f.len == MAX_PAYLOAD && !memcmp(f.data, big, MAX_PAYLOAD), "a 1 MiB DATA frame crosses the socket");
	r = proto_recv(&p.a, &f, &e);
	ok(r == 0 && f.len == 1 && f.data[0] == big[0], "and the next frame follows in sync");
	struct msg m;
	r = proto_recv_msg(&p.a, 0x0030, &m, &e);
	ok(r == 0 && m.blen[22] == 400000 && !memcmp(m.bytes[22], big, 400000), "a RESTORE with a 400 kB config");
	msg_free(&m);
	int st = 0;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sender finished");
	pair_close(&p);
}

/* --- the document ---------------------------------------------------------------- */

/* Splits a markdown table row into trimmed cells; returns the count. */
static int cells(char *line, char *out[], int max)
{
	int n = 0;
	char *p = strchr(line, '|');

	while (p && n < max) {
		char *q = strchr(p + 1, '|'), *b, *e;
		if (!q)
			break;
		*q = 0;
		for (b = p + 1; *b == ' ' || *b == '`'; b++)
			;
		for (e = q; e > b && (e[-1] == ' ' || e[-1] == '`'); e--)
			;
		*e = 0;
		out[n++] = b;
		p = q;
	}
	return n;
}

/* doc/protocol.md's attribute and message tables say what this test's tables
 * (checked against the codec above) say. */
static void test_doc(void)
{
	FILE *f = fopen("doc/protocol.md", "r");
	char line[1024];
	int attr_rows = 0, msg_rows = 0, attr_bad = 0, msg_bad = 0;
	uint64_t attrs_seen = 0;
	int msgs_seen[NMSGS] = { 0 };

	if (!f) {
		ok(1, "# SKIP doc/protocol.md not found from %s", getenv("PWD") ? getenv("PWD") : ".");
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *c[8];
		int n = cells(line, c, 8);
		unsigned v;
		char *end;

		if (n >= 5 && (v = (unsigned)strtoul(c[0], &end, 10), *end == 0 && end != c[0])) {
			/* | tag | name | kind | max length | meaning | */
			const struct aspec *a = attr_by_tag((uint16_t)v);
			static const char *const kinds[] = { "u32", "u64", "str", "bytes" };
			attr_rows++;
			if (!a || strcmp(c[1], a->name) || strcmp(c[2], kinds[a->kind]) ||
			    strtoul(c[3], NULL, 10) != (a->kind == U32 ? 4 : a->kind == U64 ? 8 : a->max)) {
				attr_bad++;
				diag("doc/protocol.md attribute row %u: '%s' %s %s", v, c[1], c[2], c[3]);
			} else {
				attrs_seen |= 1ull << v;
			}
		} else if (n >= 6 && !strncmp(c[0], "0x", 2) && (v = (unsigned)strtoul(c[0], &end, 16), *end == 0)) {
			/* | type | name | direction | required | optional | answer | */
			const struct mspec *ms = msg_by_type((uint16_t)v);
			msg_rows++;
			int good = ms && !strcmp(c[1], ms->name);
			uint64_t doc_req = 0, want_req = 0;
			for (int k = 0; ms && ms->req[k]; k++)
				want_req |= 1ull << ms->req[k];
			if (good && ms->control) {
				for (char *tok = strtok(c[3], ", "); tok; tok = strtok(NULL, ", ")) {
					int found = 0;
					for (size_t i = 0; i < NATTRS; i++)
						if (!strcmp(tok, attrs[i].name))
							doc_req |= 1ull << attrs[i].tag, found = 1;
					if (!found)
						good = 0;
				}
				good = good && doc_req == want_req;
			}
			if (!good) {
				msg_bad++;
				diag("doc/protocol.md message row 0x%04x: '%s', required '%s'", v, c[1], c[3]);
			} else {
				msgs_seen[ms - msgs]++;
			}
		}
	}
	fclose(f);
	uint64_t all = 0;
	for (size_t i = 0; i < NATTRS; i++)
		all |= 1ull << attrs[i].tag;
	ok(attr_rows > 0 && attr_bad == 0 && attrs_seen == all,
	   "doc/protocol.md's attribute table matches the codec (tag, name, kind, maximum)");
	int all_msgs = 1;
	for (size_t i = 0; i < NMSGS; i++)
		if (msgs_seen[i] != 1) {
			all_msgs = 0;
			diag("message %s appears %d times in doc/protocol.md's table", msgs[i].name, msgs_seen[i]);
		}
	ok(msg_rows > 0 && msg_bad == 0 && all_msgs,
	   "doc/protocol.md's message table matches the codec (type, name, required attributes)");
}

int main(void)
{
	test_schema();
	test_header_roundtrip();
	test_header_rejects();
	test_checksum();
	test_required();
	test_attr_kinds();
	test_tlv_structure();
	test_builders();
	test_conn_basic();
	test_conn_error_msg();
	test_conn_eof();
	test_conn_garbage();
	test_conn_timeout();
	test_conn_large();
	test_doc();
	return done_testing();
}
