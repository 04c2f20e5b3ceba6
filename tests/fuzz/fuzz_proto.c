/* libFuzzer target for the wire protocol codec (src/transport/proto.c).
 *
 * Each input is used three ways:
 *   1. as a byte stream of frames: proto_frame_parse repeatedly, consuming
 *      each accepted frame and decoding the payload of control frames;
 *   2. the same stream with every frame's checksum repaired, so that mutations
 *      reach the payload decoder instead of dying at the checksum;
 *   3. as the TLV payload of every known message type (msg_decode).
 * Beyond the sanitizers, it checks the codec's promises and aborts when one is
 * broken: an accepted frame is exactly header + payload with a known type,
 * zero flags and a length within the limits; "need more" only when the bytes
 * are really short; a decoded message re-encodes with the mb_* builders into
 * one that decodes to the same values.
 *
 * Build and run: tests/fuzz/run.sh smoke. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_proto"
#include "fuzz.h"

#include "transport/proto.h"

enum { K_UNKNOWN, K_U32, K_U64, K_STR, K_BYTES };

static uint16_t known_types[256];
static size_t n_known;
static int attr_kind[A_ATTR_MAX];

/* Learns the message types and the kind of each attribute from the codec
 * itself, so that the target keeps up with new ones. */
static void init(void)
{
	static int done;
	struct error e;
	struct msg m;

	if (done)
		return;
	done = 1;
	for (uint32_t t = 0; t <= 0xffff; t++)
		if (msg_type_known((uint16_t)t) && t != MSG_DATA && n_known < sizeof(known_types) / sizeof(known_types[0]))
			known_types[n_known++] = (uint16_t)t;
	/* a control message without required attributes carries the probes */
	uint16_t probe = 0;
	for (size_t i = 0; i < n_known && !probe; i++) {
		if (msg_decode(known_types[i], (const uint8_t *)"", 0, &m, &e) == 0)
			probe = known_types[i];
		msg_free(&m);
	}
	CHECK(probe != 0);
	for (int tag = 1; tag < A_ATTR_MAX; tag++) {
		uint8_t p[6 + 8] = { (uint8_t)(tag >> 8), (uint8_t)tag, 0, 0, 0, 4, 'a', 'b', 'c', 'd' };
		if (msg_decode(probe, p, 10, &m, &e) == 0 && msg_has(&m, (enum attr_tag)tag))
			attr_kind[tag] = m.str[tag] ? K_STR : m.bytes[tag] ? K_BYTES : K_U32;
		msg_free(&m);
		if (attr_kind[tag] == K_UNKNOWN) {
			p[5] = 8;
			if (msg_decode(probe, p, 14, &m, &e) == 0 && msg_has(&m, (enum attr_tag)tag))
				attr_kind[tag] = K_U64;
			msg_free(&m);
		}
	}
}

/* A decoded message, re-encoded with the builders, decodes to the same. */
static void reencode(uint16_t type, const struct msg *m)
{
	struct mbuf mb;
	struct msg m2;
	struct error e;

	mb_init(&mb);
	for (int t = 1; t < A_ATTR_MAX; t++) {
		if (!msg_has(m, (enum attr_tag)t))
			continue;
		switch (attr_kind[t]) {
		case K_U32:
			CHECK(m->num[t] <= UINT32_MAX);
			mb_u32(&mb, (enum attr_tag)t, (uint32_t)m->num[t]);
			break;
		case K_U64:
			mb_u64(&mb, (enum attr_tag)t, m->num[t]);
			break;
		case K_STR:
			CHECK(m->str[t] != NULL);
			mb_str(&mb, (enum attr_tag)t, m->str[t]);
			break;
		case K_BYTES:
			CHECK(m->bytes[t] != NULL);
			mb_bytes(&mb, (enum attr_tag)t, m->bytes[t], m->blen[t]);
			break;
		default:
			CHECK(!"a present attribute of unknown kind");
		}
	}
	if (mb.overflow) { /* larger than a control frame may carry: fine */
		mb_free(&mb);
		return;
	}
	CHECK(msg_decode(type, mb.b, (uint32_t)mb.len, &m2, &e) == 0);
	CHECK(m2.present == m->present);
	for (int t = 1; t < A_ATTR_MAX; t++) {
		if (!msg_has(m, (enum attr_tag)t))
			continue;
		CHECK(m2.num[t] == m->num[t]);
		if (m->str[t])
			CHECK(m2.str[t] && strcmp(m2.str[t], m->str[t]) == 0);
		if (m->bytes[t])
			CHECK(m2.blen[t] == m->blen[t] && memcmp(m2.bytes[t], m->bytes[t], m->blen[t]) == 0);
	}
	msg_free(&m2);
	mb_free(&mb);
}

static void decode(uint16_t type, const uint8_t *p, size_t len)
{
	struct msg m;
	struct error e;
	int r;

	e.msg[0] = 0;
	r = msg_decode(type, p, (uint32_t)len, &m, &e);
	if (r < 0) {
		CHECK(e.msg[0] != 0 && e.code > 0);
		CHECK(m.pool == NULL && m.present == 0);
		return;
	}
	CHECK(r == 0 && m.type == type);
	for (int t = 1; t < A_ATTR_MAX; t++) {
		if (!msg_has(&m, (enum attr_tag)t))
			continue;
		if (m.str[t])
			CHECK(strlen(m.str[t]) <= len);
		if (m.bytes[t])
			CHECK(m.blen[t] <= len);
	}
	reencode(type, &m);
	msg_free(&m);
}

/* Walks the frames in buf; returns how many were accepted. */
static int walk(const uint8_t *buf, size_t size)
{
	size_t off = 0;
	int n = 0;

	while (off < size) {
		struct frame f;
		struct error e;
		int r;

		memset(&f, 0, sizeof(f));
		e.msg[0] = 0;
		r = proto_frame_parse(buf + off, size - off, &f, &e);
		if (r < 0) {
			CHECK(e.msg[0] != 0);
			break;
		}
		if (r == 0) {
			CHECK(size - off < PROTO_HDR_SIZE || size - off < PROTO_HDR_SIZE + (size_t)f.len);
			break;
		}
		CHECK((size_t)r == PROTO_HDR_SIZE + f.len && (size_t)r <= size - off);
		CHECK(f.len <= PROTO_MAX_PAYLOAD && f.flags == 0 && msg_type_known(f.type));
		CHECK(f.type == MSG_DATA || f.len <= PROTO_MAX_PAYLOAD / 2);
		CHECK(f.data == buf + off + PROTO_HDR_SIZE);
		if (f.type != MSG_DATA)
			decode(f.type, f.data, f.len);
		off += (size_t)r;
		n++;
	}
	return n;
}

/* Repairs each frame's checksum (when the rest of its header is valid) and
 * walks the result. */
static void walk_repaired(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	size_t off = 0;
	int repaired = 0;

	if (!buf)
		return;
	memcpy(buf, data, size);
	while (size - off >= PROTO_HDR_SIZE) {
		struct frame f;
		struct error e;

		if (proto_hdr_parse(buf + off, &f, &e) < 0 || size - off - PROTO_HDR_SIZE < f.len)
			break;
		proto_hdr_encode(buf + off, f.type, f.chan, buf + off + PROTO_HDR_SIZE, f.len);
		off += PROTO_HDR_SIZE + f.len;
		repaired++;
	}
	CHECK(walk(buf, size) == repaired);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame f;
	struct error e;

	init();
	walk(data, size);
	walk_repaired(data, size);
	if (size >= PROTO_HDR_SIZE)
		(void)proto_hdr_parse(data, &f, &e);
	for (size_t i = 0; i < n_known; i++)
		decode(known_types[i], data, size);
	/* DATA and unknown types are never decoded as control messages */
	CHECK(msg_decode(MSG_DATA, data, (uint32_t)size, &(struct msg){ 0 }, &e) < 0);
	return 0;
}
