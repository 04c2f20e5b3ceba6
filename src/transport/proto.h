/* The cmt wire protocol between `cmt` (source) and `cmt agent --stdio`
 * (destination).  Specified in doc/protocol.md; this is its only codec.
 *
 * Every frame: a 16-byte header (big-endian) and a payload of at most
 * PROTO_MAX_PAYLOAD bytes.  Control messages carry TLV attributes, data
 * frames carry raw bytes of a transfer stream. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define PROTO_MAJOR 1
#define PROTO_MINOR 5 /* 1.1: page streams (AREA_PAGES, AREA_PAGE_IMAGE, A_NAME), mode precopy; 1.2: AREA_LOG;
		       * 1.3: NET_SETUP / NET_READY (network identity); 1.4: RELAY_PAGES, mode hybrid;
		       * 1.5: RESTORE_STAGED, STAGED, RESTORE_GO (the staged restore) */
#define PROTO_MINOR_PAGES 1 /* the first minor version with page streams */
#define PROTO_MINOR_LOG 2   /* the first with AREA_LOG (the log of a `cmt run` container) */
#define PROTO_MINOR_NET 3   /* the first with NET_SETUP / NET_READY */
#define PROTO_MINOR_RELAY_PAGES 4 /* the first with RELAY_PAGES (and mode hybrid) */
#define PROTO_MINOR_STAGED 5 /* the first with the staged restore (RESTORE_STAGED, STAGED, RESTORE_GO) */
#define PROTO_HELLO_MAGIC 0x434d5450u /* "CMTP" */
#define PROTO_HDR_SIZE 16
#define PROTO_FRAME_MAGIC 0xCA
#define PROTO_MAX_PAYLOAD (1u << 20)
#define PROTO_MAX_STR 4096

enum msg_type {
	MSG_HELLO = 0x0001,        /* source -> agent: who I am, protocol version */
	MSG_WELCOME = 0x0002,      /* agent -> source: accepted, who I am */
	MSG_ERROR = 0x0003,        /* either way: the operation failed, with why and hint */
	MSG_FACTS_REQ = 0x0004,    /* source -> agent: describe your host */
	MSG_FACTS = 0x0005,        /* agent -> source: key/value facts */
	MSG_CPU_CHECK = 0x0006,    /* source -> agent: CRIU cpuinfo image of the source */
	MSG_CPU_RESULT = 0x0007,   /* agent -> source: can this CPU run it (A_FLAGS bit 0), why */
	MSG_PING = 0x0008,         /* source -> agent: round-trip probe */
	MSG_PONG = 0x0009,         /* agent -> source: answer to PING */
	MSG_PATHS_REQ = 0x000A,    /* source -> agent: do these paths exist? (A_FACTS: one path per line) */
	MSG_PATHS = 0x000B,        /* agent -> source: "1 path" / "0 path" lines, same order */
	MSG_PREPARE = 0x0010,      /* source -> agent: a migration starts */
	MSG_READY = 0x0011,        /* agent -> source: prepared */
	MSG_STREAM_BEGIN = 0x0020, /* source -> agent: a transfer stream opens on a channel */
	MSG_DATA = 0x0021,         /* source -> agent: bytes of an open stream */
	MSG_STREAM_END = 0x0022,   /* source -> agent: stream complete: size and hash */
	MSG_STREAM_OK = 0x0023,    /* agent -> source: stream stored and verified */
	MSG_RESTORE = 0x0030,      /* source -> agent: restore the workload */
	MSG_RESTORED = 0x0031,     /* agent -> source: the workload runs here */
	MSG_RESTORE_GO = 0x0032,   /* source -> agent: the staged restore goes on (1.5) */
	MSG_STAGED = 0x0033,       /* agent -> source: the restore is staged, waiting for RESTORE_GO (1.5) */
	MSG_COMMIT = 0x0040,       /* source -> agent: source copy is gone, keep yours */
	MSG_ABORT = 0x0041,        /* source -> agent: roll back everything */
	MSG_DONE = 0x0042,         /* agent -> source: commit/abort finished */
	MSG_QUERY = 0x0043,        /* source -> agent: what became of this migration? (after a lost DONE) */
	MSG_STATUS = 0x0044,       /* agent -> source: its outcome (A_OUTCOME) */
	MSG_KEEPALIVE = 0x0045,    /* either way: busy but alive (restarts the peer's lease); no answer */
	/* post-copy (engine/postcopy.c, agent/lazy.c) */
	MSG_RELAY = 0x0050,        /* source -> agent, own session: relay CRIU's page server for this migration */
	MSG_RELAY_READY = 0x0051,  /* agent -> source: listening on 127.0.0.1:A_PORT for the lazy-pages daemon */
	MSG_RELAY_OPEN = 0x0052,   /* agent -> source: the daemon connected: connect to the page server */
	MSG_RELAY_CLOSE = 0x0053,  /* either way: this side's socket reached its end (half close) */
	MSG_LAZY_DONE = 0x0054,    /* agent -> source, main session after DONE: every page arrived */
	MSG_RELAY_PAGES = 0x0055,  /* source -> agent, relay session: pages of CRIU's answers by content (raw payload) */
	/* 0x0060-0x006f: network identity (engine/net.h) */
	MSG_NET_SETUP = 0x0060,    /* source -> agent: recreate (or take) the container's network namespace, locked */
	MSG_NET_READY = 0x0061,    /* agent -> source: done; A_FLAGS NET_EXISTED when it was there already */
};

enum attr_tag {
	A_MAGIC = 1,      /* u32 PROTO_HELLO_MAGIC */
	A_VER_MAJOR,      /* u32 */
	A_VER_MINOR,      /* u32 */
	A_SOFTWARE,       /* str: "cmt 0.1.0" */
	A_HOST,           /* str: host name */
	A_ERRNO,          /* u32 */
	A_MESSAGE,        /* str */
	A_HINT,           /* str */
	A_DETAIL,         /* str */
	A_MIGRATION_ID,   /* str [A-Za-z0-9._-], <= 64 */
	A_KIND,           /* u32 enum workload_kind */
	A_WORKLOAD,       /* str: container ID or pid */
	A_MODE,           /* str */
	A_AREA,           /* u32 enum stream_area */
	A_BYTES,          /* u64 */
	A_HASH,           /* u64 XXH3-64 */
	A_PID,            /* u32 */
	A_DURATION_US,    /* u64 */
	A_FLAGS,          /* u32 */
	A_KEY,            /* str, repeated in FACTS is not allowed: see A_FACTS */
	A_FACTS,          /* str: "key=value\n" lines */
	A_CONFIG,         /* bytes: the container's config.json */
	A_BLOB,           /* bytes: a small file (cpuinfo.img) */
	A_LEASE_MS = 24,  /* u32: how long either side waits for the other before giving up (PREPARE) */
	A_OUTCOME = 25,   /* u32 enum outcome (STATUS) */
	A_DEADLINE_MS = 26, /* u32: how long the agent may take to restore (RESTORE) */
	A_NAME = 40,      /* str: a file name (STREAM_BEGIN of AREA_PAGE_IMAGE), [A-Za-z0-9._-], <= 255 */
	A_PORT = 50,      /* u32: a TCP port on the agent's 127.0.0.1 (RELAY_READY, RESTORE with RESTORE_LAZY) */
	/* 56-59: network identity (tags must stay below 64: the block asked for,
	 * 0x0160-0x017f, does not fit the presence mask) */
	A_NET_DESC = 56,  /* bytes: JSON description of the container's network namespace (NET_SETUP) */
	A_CRIU_US = 60,   /* u64: CRIU's own time in the restore, from its log (DONE; criu/logtime.h) */
	A_DESCRIPTORS = 61, /* bytes: runc's descriptors.json of the container (staged RESTORE) */
	A_ATTR_MAX = 64   /* tags are < 64: struct msg keeps a 64-bit presence mask */
};

/* A_FLAGS of MSG_NET_READY */
#define NET_EXISTED 1u /* the namespace existed at that path: the container is restored into it */

/* A_OUTCOME: what the agent knows of a migration (answer to QUERY). */
enum outcome { OUTCOME_UNKNOWN = 0, OUTCOME_COMMITTED = 1, OUTCOME_ABORTED = 2, OUTCOME_IN_PROGRESS = 3 };

enum workload_kind { KIND_RUNC = 1, KIND_PID = 2 };
/* A_FLAGS of MSG_CPU_RESULT */
#define CPU_OK 1u      /* this CPU can run what the source's CPU ran */
#define CPU_UNKNOWN 2u /* cannot tell (no usable CRIU here) */
enum stream_area {
	AREA_IMAGES = 1,
	AREA_BUNDLE = 2,
	AREA_PROBE = 3,   /* bandwidth probe: discarded */
	AREA_DELETED = 10, /* a file "deleted": NUL-separated bundle paths to remove (engine/rootfs.h) */
	AREA_PAGES = 20,      /* pre-copy pages for the page store (transport/pages.h) */
	AREA_PAGE_IMAGE = 21, /* one CRIU pages-N.img, rebuilt from the page store (transport/pages.h) */
	AREA_LOG = 112     /* the log of a monitored container (`cmt run`): one file "ID.log" */
};

struct frame {
	uint16_t type;
	uint8_t flags;
	uint32_t chan;
	uint32_t len;
	const uint8_t *data; /* points into the connection's buffer until the next recv */
};

/* Decoded control message.  Strings are NUL-terminated copies. */
struct msg {
	uint16_t type;
	uint64_t present; /* bit per attr_tag */
	uint64_t num[A_ATTR_MAX];
	char *str[A_ATTR_MAX];
	const uint8_t *bytes[A_ATTR_MAX];
	uint32_t blen[A_ATTR_MAX];
	char *pool;
};

/* Builder for control messages. */
struct mbuf {
	uint8_t *b;
	size_t len, cap;
	bool overflow;
};

/* --- pure codec (no I/O), fuzzed --------------------------------------- */
void proto_hdr_encode(uint8_t hdr[PROTO_HDR_SIZE], uint16_t type, uint32_t chan, const void *payload, uint32_t len);
/* Validates a complete header + payload in buf.  Returns the frame size
 * consumed (> 0), 0 when more bytes are needed, or negative errno with e set. */
int proto_frame_parse(const uint8_t *buf, size_t len, struct frame *f, struct error *e);
/* Checks only a header; fills f->type/chan/len/flags. */
int proto_hdr_parse(const uint8_t hdr[PROTO_HDR_SIZE], struct frame *f, struct error *e);
int msg_decode(uint16_t type, const uint8_t *p, uint32_t len, struct msg *m, struct error *e);
void msg_free(struct msg *m);
bool msg_has(const struct msg *m, enum attr_tag t);
const char *msg_type_name(uint16_t type);
bool msg_type_known(uint16_t type);

void mb_init(struct mbuf *mb);
void mb_free(struct mbuf *mb);
void mb_u32(struct mbuf *mb, enum attr_tag t, uint32_t v);
void mb_u64(struct mbuf *mb, enum attr_tag t, uint64_t v);
void mb_str(struct mbuf *mb, enum attr_tag t, const char *s);
void mb_bytes(struct mbuf *mb, enum attr_tag t, const void *p, size_t n);

/* --- connection -------------------------------------------------------- */
struct proto_conn {
	int rfd, wfd;
	char peer[128];       /* the other host's name, for messages */
	char self[128];       /* this host's name, sent with errors */
	uint8_t *rbuf;
	uint64_t bytes_in, bytes_out;
	int timeout_ms;       /* per receive, 0 = wait forever */
	bool got_first;       /* a valid frame has been received */
	pthread_mutex_t *send_lock; /* set while a keepalive thread also sends */
	double max_bps;       /* pace sending to this many bytes per second (0 = no limit) */
	double pace_t0;       /* monotonic seconds when pacing started */
	uint64_t pace_bytes;  /* bytes sent since pace_t0 */
};

int proto_conn_init(struct proto_conn *c, int rfd, int wfd, const char *peer, struct error *e);
void proto_conn_free(struct proto_conn *c);
int proto_send(struct proto_conn *c, uint16_t type, uint32_t chan, const void *payload, uint32_t len, struct error *e);
int proto_send_msg(struct proto_conn *c, uint16_t type, struct mbuf *mb, struct error *e);
/* A KEEPALIVE frame, for the keepalive thread: unlike proto_send it never
 * reads the connection (to explain a lost connection). */
int proto_send_keepalive(struct proto_conn *c, struct error *e);
/* Receives the next frame; KEEPALIVE frames are consumed here (each one
 * restarts the timeout). */
int proto_recv(struct proto_conn *c, struct frame *f, struct error *e);
/* Receives the next control message; MSG_ERROR from the peer becomes an
 * error (with the peer's host, hint and detail) and returns negative. A
 * message of another type than 'want' (0 = any) is a protocol error. */
int proto_recv_msg(struct proto_conn *c, uint16_t want, struct msg *m, struct error *e);
/* Sends e to the peer as MSG_ERROR. */
int proto_send_error(struct proto_conn *c, const struct error *err, const char *host);
