#include "transport/proto.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/fault.h"

_Static_assert(A_ATTR_MAX <= 64, "attribute bitmask is 64 bits");

enum attr_kind { K_NONE, K_U32, K_U64, K_STR, K_BYTES };

static const struct {
	enum attr_kind kind;
	uint32_t max; /* for STR/BYTES */
	const char *name;
} attr_schema[A_ATTR_MAX] = {
	[A_MAGIC] = { K_U32, 0, "magic" },
	[A_VER_MAJOR] = { K_U32, 0, "version-major" },
	[A_VER_MINOR] = { K_U32, 0, "version-minor" },
	[A_SOFTWARE] = { K_STR, 128, "software" },
	[A_HOST] = { K_STR, 128, "host" },
	[A_ERRNO] = { K_U32, 0, "errno" },
	[A_MESSAGE] = { K_STR, PROTO_MAX_STR, "message" },
	[A_HINT] = { K_STR, PROTO_MAX_STR, "hint" },
	[A_DETAIL] = { K_STR, PROTO_MAX_STR, "detail" },
	[A_MIGRATION_ID] = { K_STR, 64, "migration-id" },
	[A_KIND] = { K_U32, 0, "kind" },
	[A_WORKLOAD] = { K_STR, 1024, "workload" },
	[A_MODE] = { K_STR, 32, "mode" },
	[A_AREA] = { K_U32, 0, "area" },
	[A_BYTES] = { K_U64, 0, "bytes" },
	[A_HASH] = { K_U64, 0, "hash" },
	[A_PID] = { K_U32, 0, "pid" },
	[A_DURATION_US] = { K_U64, 0, "duration-us" },
	[A_FLAGS] = { K_U32, 0, "flags" },
	[A_KEY] = { K_STR, 256, "key" },
	[A_FACTS] = { K_STR, 65536, "facts" },
	[A_CONFIG] = { K_BYTES, 512 * 1024, "config" },
	[A_BLOB] = { K_BYTES, 64 * 1024, "blob" },
	[A_LEASE_MS] = { K_U32, 0, "lease-ms" },
	[A_OUTCOME] = { K_U32, 0, "outcome" },
	[A_DEADLINE_MS] = { K_U32, 0, "deadline-ms" },
	[A_NAME] = { K_STR, 255, "name" },
	[A_PORT] = { K_U32, 0, "port" },
	[A_NET_DESC] = { K_BYTES, 65536, "net-desc" },
	[A_CRIU_US] = { K_U64, 0, "criu-us" },
	[A_DESCRIPTORS] = { K_BYTES, 4096, "descriptors" },
};

#define BIT(t) (1ull << (t))

static const struct {
	uint16_t type;
	const char *name;
	uint64_t required;
	bool control; /* payload is TLV */
} msg_schema[] = {
	{ MSG_HELLO, "HELLO", BIT(A_MAGIC) | BIT(A_VER_MAJOR) | BIT(A_VER_MINOR) | BIT(A_SOFTWARE) | BIT(A_HOST), true },
	{ MSG_WELCOME, "WELCOME", BIT(A_MAGIC) | BIT(A_VER_MAJOR) | BIT(A_VER_MINOR) | BIT(A_SOFTWARE) | BIT(A_HOST), true },
	{ MSG_ERROR, "ERROR", BIT(A_ERRNO) | BIT(A_MESSAGE), true },
	{ MSG_FACTS_REQ, "FACTS_REQ", 0, true },
	{ MSG_FACTS, "FACTS", BIT(A_FACTS), true },
	{ MSG_CPU_CHECK, "CPU_CHECK", BIT(A_BLOB), true },
	{ MSG_CPU_RESULT, "CPU_RESULT", BIT(A_FLAGS), true },
	{ MSG_PING, "PING", 0, true },
	{ MSG_PONG, "PONG", 0, true },
	{ MSG_PATHS_REQ, "PATHS_REQ", BIT(A_FACTS), true },
	{ MSG_PATHS, "PATHS", BIT(A_FACTS), true },
	{ MSG_PREPARE, "PREPARE", BIT(A_MIGRATION_ID) | BIT(A_KIND) | BIT(A_WORKLOAD) | BIT(A_MODE), true },
	{ MSG_READY, "READY", 0, true },
	{ MSG_STREAM_BEGIN, "STREAM_BEGIN", BIT(A_AREA), true },
	{ MSG_DATA, "DATA", 0, false },
	{ MSG_STREAM_END, "STREAM_END", BIT(A_BYTES) | BIT(A_HASH), true },
	{ MSG_STREAM_OK, "STREAM_OK", BIT(A_BYTES), true },
	{ MSG_RESTORE, "RESTORE", 0, true },
	{ MSG_RESTORED, "RESTORED", BIT(A_PID), true },
	{ MSG_RESTORE_GO, "RESTORE_GO", 0, true },
	{ MSG_STAGED, "STAGED", 0, true },
	{ MSG_COMMIT, "COMMIT", 0, true },
	{ MSG_ABORT, "ABORT", 0, true },
	{ MSG_DONE, "DONE", 0, true },
	{ MSG_QUERY, "QUERY", BIT(A_MIGRATION_ID), true },
	{ MSG_STATUS, "STATUS", BIT(A_MIGRATION_ID) | BIT(A_OUTCOME), true },
	{ MSG_KEEPALIVE, "KEEPALIVE", 0, true },
	{ MSG_RELAY, "RELAY", BIT(A_MIGRATION_ID), true },
	{ MSG_RELAY_READY, "RELAY_READY", BIT(A_PORT), true },
	{ MSG_RELAY_OPEN, "RELAY_OPEN", 0, true },
	{ MSG_RELAY_CLOSE, "RELAY_CLOSE", 0, true },
	{ MSG_LAZY_DONE, "LAZY_DONE", BIT(A_DURATION_US), true },
	{ MSG_RELAY_PAGES, "RELAY_PAGES", 0, false },
	{ MSG_NET_SETUP, "NET_SETUP", BIT(A_NET_DESC), true },
	{ MSG_NET_READY, "NET_READY", BIT(A_FLAGS), true },
};

static int schema_index(uint16_t type)
{
	for (size_t i = 0; i < sizeof(msg_schema) / sizeof(msg_schema[0]); i++)
		if (msg_schema[i].type == type)
			return (int)i;
	return -1;
}

bool msg_type_known(uint16_t type)
{
	return schema_index(type) >= 0;
}

const char *msg_type_name(uint16_t type)
{
	int i = schema_index(type);
	return i < 0 ? "UNKNOWN" : msg_schema[i].name;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static uint32_t frame_check(const uint8_t *hdr, const void *payload, uint32_t len)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, 12);
	if (len)
		XXH3_64bits_update(&st, payload, len);
	return (uint32_t)XXH3_64bits_digest(&st);
}

void proto_hdr_encode(uint8_t hdr[PROTO_HDR_SIZE], uint16_t type, uint32_t chan, const void *payload, uint32_t len)
{
	put32(hdr, len);
	put16(hdr + 4, type);
	hdr[6] = PROTO_FRAME_MAGIC;
	hdr[7] = 0;
	put32(hdr + 8, chan);
	put32(hdr + 12, frame_check(hdr, payload, len));
}

int proto_hdr_parse(const uint8_t hdr[PROTO_HDR_SIZE], struct frame *f, struct error *e)
{
	f->len = get32(hdr);
	f->type = get16(hdr + 4);
	f->flags = hdr[7];
	f->chan = get32(hdr + 8);
	if (hdr[6] != PROTO_FRAME_MAGIC)
		return error_set(e, EPROTO, "malformed frame: bad magic byte 0x%02x (expected 0x%02x)", hdr[6],
				 PROTO_FRAME_MAGIC);
	if (f->len > PROTO_MAX_PAYLOAD)
		return error_set(e, EPROTO, "malformed frame: payload of %u bytes exceeds the limit of %u", f->len,
				 PROTO_MAX_PAYLOAD);
	if (f->flags != 0)
		return error_set(e, EPROTO, "malformed frame: unknown flags 0x%02x", f->flags);
	if (!msg_type_known(f->type))
		return error_set(e, EPROTO, "malformed frame: unknown message type 0x%04x", f->type);
	if (f->type != MSG_DATA && f->len > PROTO_MAX_PAYLOAD / 2)
		return error_set(e, EPROTO, "malformed frame: %s message of %u bytes is too large", msg_type_name(f->type),
				 f->len);
	return 0;
}

int proto_frame_parse(const uint8_t *buf, size_t len, struct frame *f, struct error *e)
{
	int r;

	if (len < PROTO_HDR_SIZE)
		return 0;
	r = proto_hdr_parse(buf, f, e);
	if (r < 0)
		return r;
	if (len - PROTO_HDR_SIZE < f->len)
		return 0;
	if (get32(buf + 12) != frame_check(buf, buf + PROTO_HDR_SIZE, f->len))
		return error_set(e, EBADMSG, "corrupted frame: checksum mismatch in a %s frame of %u bytes",
				 msg_type_name(f->type), f->len);
	f->data = buf + PROTO_HDR_SIZE;
	return (int)(PROTO_HDR_SIZE + f->len);
}

/* --- TLV attributes ------------------------------------------------------ */

void msg_free(struct msg *m)
{
	free(m->pool);
	memset(m, 0, sizeof(*m));
}

bool msg_has(const struct msg *m, enum attr_tag t)
{
	return t < A_ATTR_MAX && (m->present & BIT(t));
}

int msg_decode(uint16_t type, const uint8_t *p, uint32_t len, struct msg *m, struct error *e)
{
	int si = schema_index(type);
	uint32_t off = 0;
	size_t pool_off = 0;

	memset(m, 0, sizeof(*m));
	m->type = type;
	if (si < 0)
		return error_set(e, EPROTO, "unknown message type 0x%04x", type);
	if (!msg_schema[si].control)
		return error_set(e, EPROTO, "%s is not a control message", msg_schema[si].name);
	m->pool = malloc((size_t)len + A_ATTR_MAX + 1);
	if (!m->pool)
		return error_set(e, ENOMEM, "out of memory");
	while (off < len) {
		uint16_t tag;
		uint32_t alen;

		if (len - off < 6) {
			msg_free(m);
			return error_set(e, EPROTO, "%s: truncated attribute header at offset %u", msg_schema[si].name, off);
		}
		tag = get16(p + off);
		alen = get32(p + off + 2);
		off += 6;
		if (alen > len - off) {
			msg_free(m);
			return error_set(e, EPROTO, "%s: attribute %u claims %u bytes, only %u left", msg_schema[si].name, tag,
					 alen, len - off);
		}
		if (tag == 0 || tag >= A_ATTR_MAX || attr_schema[tag].kind == K_NONE) {
			off += alen; /* unknown attribute: skipped (minor-version compatibility) */
			continue;
		}
		if (m->present & BIT(tag)) {
			msg_free(m);
			return error_set(e, EPROTO, "%s: attribute '%s' appears twice", msg_schema[si].name, attr_schema[tag].name);
		}
		switch (attr_schema[tag].kind) {
		case K_U32:
			if (alen != 4)
				goto badlen;
			m->num[tag] = get32(p + off);
			break;
		case K_U64:
			if (alen != 8)
				goto badlen;
			m->num[tag] = get64(p + off);
			break;
		case K_STR:
			if (alen > attr_schema[tag].max)
				goto badlen;
			if (memchr(p + off, 0, alen)) {
				msg_free(m);
				return error_set(e, EPROTO, "%s: string attribute '%s' contains a NUL byte", msg_schema[si].name,
						 attr_schema[tag].name);
			}
			m->str[tag] = m->pool + pool_off;
			memcpy(m->pool + pool_off, p + off, alen);
			m->pool[pool_off + alen] = 0;
			pool_off += alen + 1;
			break;
		case K_BYTES:
			if (alen > attr_schema[tag].max)
				goto badlen;
			m->bytes[tag] = (const uint8_t *)m->pool + pool_off;
			m->blen[tag] = alen;
			memcpy(m->pool + pool_off, p + off, alen);
			pool_off += alen + 1;
			break;
		default:
			break;
		}
		m->present |= BIT(tag);
		off += alen;
		continue;
badlen:
		msg_free(m);
		return error_set(e, EPROTO, "%s: attribute '%s' has a bad length (%u bytes)", msg_schema[si].name,
				 attr_schema[tag].name, alen);
	}
	uint64_t missing = msg_schema[si].required & ~m->present;
	if (missing) {
		int t = __builtin_ctzll(missing);
		msg_free(m);
		m->type = type;
		return error_set(e, EPROTO, "%s message lacks the required attribute '%s'", msg_schema[si].name,
				 attr_schema[t].name);
	}
	return 0;
}

void mb_init(struct mbuf *mb)
{
	memset(mb, 0, sizeof(*mb));
}

void mb_free(struct mbuf *mb)
{
	free(mb->b);
	memset(mb, 0, sizeof(*mb));
}

static uint8_t *mb_room(struct mbuf *mb, enum attr_tag t, size_t n)
{
	uint8_t *p;

	if (mb->overflow || n > PROTO_MAX_PAYLOAD / 2 || mb->len + 6 + n > PROTO_MAX_PAYLOAD / 2) {
		mb->overflow = true;
		return NULL;
	}
	if (mb->len + 6 + n > mb->cap) {
		size_t nc = mb->cap ? mb->cap : 256;
		while (nc < mb->len + 6 + n)
			nc *= 2;
		uint8_t *nb = realloc(mb->b, nc);
		if (!nb) {
			mb->overflow = true;
			return NULL;
		}
		mb->b = nb;
		mb->cap = nc;
	}
	p = mb->b + mb->len;
	put16(p, (uint16_t)t);
	put32(p + 2, (uint32_t)n);
	mb->len += 6 + n;
	return p + 6;
}

void mb_u32(struct mbuf *mb, enum attr_tag t, uint32_t v)
{
	uint8_t *p = mb_room(mb, t, 4);
	if (p)
		put32(p, v);
}

void mb_u64(struct mbuf *mb, enum attr_tag t, uint64_t v)
{
	uint8_t *p = mb_room(mb, t, 8);
	if (p) {
		put32(p, (uint32_t)(v >> 32));
		put32(p + 4, (uint32_t)v);
	}
}

void mb_str(struct mbuf *mb, enum attr_tag t, const char *s)
{
	size_t n = strlen(s);
	uint8_t *p;

	if (t < A_ATTR_MAX && attr_schema[t].kind == K_STR && n > attr_schema[t].max)
		n = attr_schema[t].max; /* strings are truncated to what the peer accepts */
	p = mb_room(mb, t, n);
	if (p)
		memcpy(p, s, n);
}

void mb_bytes(struct mbuf *mb, enum attr_tag t, const void *src, size_t n)
{
	uint8_t *p;

	if (t < A_ATTR_MAX && n > attr_schema[t].max) {
		mb->overflow = true;
		return;
	}
	p = mb_room(mb, t, n);
	if (p)
		memcpy(p, src, n);
}

/* --- connection ------------------------------------------------------------ */

int proto_conn_init(struct proto_conn *c, int rfd, int wfd, const char *peer, struct error *e)
{
	memset(c, 0, sizeof(*c));
	c->rfd = rfd;
	c->wfd = wfd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "peer");
	c->rbuf = malloc(PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD);
	if (!c->rbuf)
		return error_set(e, ENOMEM, "out of memory");
	return 0;
}

void proto_conn_free(struct proto_conn *c)
{
	free(c->rbuf);
	c->rbuf = NULL;
}

static int write_all_iov(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t k = writev(fd, iov, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

static int read_full(struct proto_conn *c, uint8_t *p, size_t n, struct error *e, bool at_start);

/* The peer closed the connection while we were sending: it usually said why
 * first (an ERROR, e.g. "the lease expired").  Read what is left, briefly,
 * and make that the error. */
static void last_words(struct proto_conn *c, struct error *e)
{
	int saved = c->timeout_ms;
	struct frame f;
	struct msg m;

	c->timeout_ms = 500;
	for (int i = 0; i < 64; i++) {
		struct error re = { 0 };
		if (proto_recv(c, &f, &re) < 0)
			break;
		if (f.type != MSG_ERROR)
			continue;
		struct error pe = { 0 };
		if (msg_decode(f.type, f.data, f.len, &m, &pe) < 0)
			break;
		int code = (int)m.num[A_ERRNO];
		error_set(e, code > 0 && code < 4096 ? code : EIO, "%s closed the connection: %s", c->peer,
			  m.str[A_MESSAGE]);
		if (msg_has(&m, A_HINT))
			error_hint(e, "%s", m.str[A_HINT]);
		if (msg_has(&m, A_DETAIL))
			error_detail(e, "%s", m.str[A_DETAIL]);
		error_host(e, msg_has(&m, A_HOST) ? m.str[A_HOST] : c->peer);
		msg_free(&m);
		break;
	}
	c->timeout_ms = saved;
}

/* --max-bandwidth: sleeps while the bytes sent run ahead of the rate.  Time
 * spent not sending (scanning, an idle spell) earns at most PACE_CREDIT_S of
 * burst, so the rate holds over any stretch, not only on average. */
#define PACE_CREDIT_S 0.02
static void pace(struct proto_conn *c, uint32_t n)
{
	struct timespec ts;
	double now, ahead;

	if (c->max_bps <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (!c->pace_t0) {
		c->pace_t0 = now;
		c->pace_bytes = 0;
	}
	c->pace_bytes += n;
	ahead = (double)c->pace_bytes / c->max_bps - (now - c->pace_t0);
	if (ahead < -PACE_CREDIT_S) {
		c->pace_t0 += -PACE_CREDIT_S - ahead; /* forget the rest of the lag */
		ahead = -PACE_CREDIT_S;
	}
	if (ahead > 0) {
		ts.tv_sec = (time_t)ahead;
		ts.tv_nsec = (long)((ahead - (double)ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

static int send_frame(struct proto_conn *c, uint16_t type, uint32_t chan, const void *payload, uint32_t len,
		      bool explain, struct error *e)
{
	uint8_t hdr[PROTO_HDR_SIZE];
	struct iovec iov[2];
	int r;

	if (len > PROTO_MAX_PAYLOAD)
		return error_set(e, EMSGSIZE, "internal error: frame of %u bytes is too large", len);
	uint8_t *bad = NULL;
	if (type == MSG_DATA && len > 0 && fault_take_corrupt()) {
		/* fault injection: damage the data, not the frame, so that only
		 * the stream's end-to-end hash can notice */
		bad = malloc(len);
		if (bad) {
			memcpy(bad, payload, len);
			bad[len / 2] ^= 0x5a;
			payload = bad;
		}
	}
	proto_hdr_encode(hdr, type, chan, payload, len);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)payload, len };
	/* a keepalive thread may send too (transport/keepalive.c): frames
	 * must not interleave */
	if (c->send_lock)
		pthread_mutex_lock(c->send_lock);
	r = write_all_iov(c->wfd, iov, len ? 2 : 1);
	if (r >= 0)
		c->bytes_out += PROTO_HDR_SIZE + len;
	if (c->send_lock)
		pthread_mutex_unlock(c->send_lock);
	if (r >= 0 && explain)
		pace(c, PROTO_HDR_SIZE + len);
	free(bad);
	if (r < 0) {
		if (r == -EPIPE) {
			error_set(e, EPIPE, "connection to %s lost while sending %s", c->peer, msg_type_name(type));
			if (explain)
				last_words(c, e);
			return -EPIPE;
		}
		return error_errno(e, -r, "cannot send %s to %s", msg_type_name(type), c->peer);
	}
	return 0;
}

int proto_send(struct proto_conn *c, uint16_t type, uint32_t chan, const void *payload, uint32_t len, struct error *e)
{
	return send_frame(c, type, chan, payload, len, true, e);
}

int proto_send_keepalive(struct proto_conn *c, struct error *e)
{
	/* from the keepalive thread: it must not read the connection */
	return send_frame(c, MSG_KEEPALIVE, 0, NULL, 0, false, e);
}

int proto_send_msg(struct proto_conn *c, uint16_t type, struct mbuf *mb, struct error *e)
{
	if (mb && mb->overflow)
		return error_set(e, EMSGSIZE, "internal error: %s message too large", msg_type_name(type));
	return proto_send(c, type, 0, mb ? mb->b : NULL, mb ? (uint32_t)mb->len : 0, e);
}

/* Text where the first frame should be: the remote shell printed something. */
static int garbage_error(struct proto_conn *c, const uint8_t *hdr, size_t n, struct error *e)
{
	char txt[PROTO_HDR_SIZE * 4 + 1];
	size_t l = 0;

	for (size_t i = 0; i < n; i++) {
		if (isprint(hdr[i]))
			txt[l++] = (char)hdr[i];
		else
			l += (size_t)snprintf(txt + l, sizeof(txt) - l, "\\x%02x", hdr[i]);
	}
	txt[l] = 0;
	error_set(e, EPROTO, "%s did not speak the cmt protocol: it sent \"%s...\"", c->peer, txt);
	error_hint(e, "make sure the remote command is 'cmt agent --stdio' and that shell startup files on %s print nothing "
		      "for non-interactive logins (see --remote-cmt)", c->peer);
	return -EPROTO;
}

static int read_full(struct proto_conn *c, uint8_t *p, size_t n, struct error *e, bool at_start)
{
	size_t got = 0;

	while (got < n) {
		if (c->timeout_ms > 0) {
			struct pollfd pf = { c->rfd, POLLIN, 0 };
			int k = poll(&pf, 1, c->timeout_ms);
			if (k < 0 && errno == EINTR)
				continue;
			if (k == 0)
				return error_set(e, ETIMEDOUT, "%s did not answer within %d ms", c->peer, c->timeout_ms);
		}
		ssize_t k = read(c->rfd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return error_errno(e, errno, "cannot read from %s", c->peer);
		if (k == 0) {
			if (at_start && got == 0)
				return error_set(e, ECONNRESET, "connection to %s closed", c->peer);
			/* a few bytes of text, then EOF: the remote shell printed an
			 * error and exited (a real header starts with a zero byte) */
			if (at_start && !c->got_first && (got > 6 ? p[6] != PROTO_FRAME_MAGIC : p[0] != 0))
				return garbage_error(c, p, got, e);
			return error_set(e, ECONNRESET, "connection to %s closed in the middle of a frame", c->peer);
		}
		got += (size_t)k;
	}
	return 0;
}

int proto_recv(struct proto_conn *c, struct frame *f, struct error *e)
{
	int r;

again:
	r = read_full(c, c->rbuf, PROTO_HDR_SIZE, e, true);
	if (r < 0)
		return r;
	r = proto_hdr_parse(c->rbuf, f, e);
	if (r < 0) {
		if (!c->got_first && c->rbuf[6] != PROTO_FRAME_MAGIC)
			return garbage_error(c, c->rbuf, PROTO_HDR_SIZE, e);
		return error_wrap(e, "from %s", c->peer);
	}
	r = read_full(c, c->rbuf + PROTO_HDR_SIZE, f->len, e, false);
	if (r < 0)
		return r;
	r = proto_frame_parse(c->rbuf, PROTO_HDR_SIZE + f->len, f, e);
	if (r < 0)
		return error_wrap(e, "from %s", c->peer);
	c->got_first = true;
	c->bytes_in += PROTO_HDR_SIZE + f->len;
	if (f->type == MSG_KEEPALIVE) {
		/* the peer is alive but busy: the wait (and its lease) starts over */
		if (f->len != 0)
			return error_set(e, EPROTO, "malformed KEEPALIVE from %s: %u bytes of payload", c->peer, f->len);
		goto again;
	}
	return 0;
}

int proto_recv_msg(struct proto_conn *c, uint16_t want, struct msg *m, struct error *e)
{
	struct frame f;
	int r;

	memset(m, 0, sizeof(*m));
	r = proto_recv(c, &f, e);
	if (r < 0)
		return r;
	if (f.type == MSG_DATA || f.type == MSG_RELAY_PAGES)
		return error_set(e, EPROTO, "protocol error: %s sent data where a %s message was expected", c->peer,
				 want ? msg_type_name(want) : "control");
	r = msg_decode(f.type, f.data, f.len, m, e);
	if (r < 0)
		return error_wrap(e, "malformed message from %s", c->peer);
	if (f.type == MSG_ERROR) {
		int code = (int)m->num[A_ERRNO];
		error_set(e, code > 0 && code < 4096 ? code : EIO, "%s", m->str[A_MESSAGE]);
		if (msg_has(m, A_HINT))
			error_hint(e, "%s", m->str[A_HINT]);
		if (msg_has(m, A_DETAIL))
			error_detail(e, "%s", m->str[A_DETAIL]);
		error_host(e, msg_has(m, A_HOST) ? m->str[A_HOST] : c->peer);
		msg_free(m);
		return -e->code;
	}
	if (want && f.type != want) {
		uint16_t got = f.type;
		msg_free(m);
		return error_set(e, EPROTO, "protocol error: %s sent %s where %s was expected", c->peer, msg_type_name(got),
				 msg_type_name(want));
	}
	return 0;
}

int proto_send_error(struct proto_conn *c, const struct error *err, const char *host)
{
	struct mbuf mb;
	int r;

	mb_init(&mb);
	mb_u32(&mb, A_ERRNO, (uint32_t)(err->code > 0 ? err->code : EIO));
	mb_str(&mb, A_MESSAGE, err->msg);
	if (err->hint[0])
		mb_str(&mb, A_HINT, err->hint);
	if (err->detail[0])
		mb_str(&mb, A_DETAIL, err->detail);
	if (err->host[0] || host)
		mb_str(&mb, A_HOST, err->host[0] ? err->host : host);
	r = proto_send_msg(c, MSG_ERROR, &mb, NULL);
	mb_free(&mb);
	return r;
}
