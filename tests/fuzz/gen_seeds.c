/* Writes the seed corpora of the fuzz targets:
 *
 *   gen_seeds DIR     -> DIR/fuzz_proto/ and DIR/fuzz_config/
 *
 * fuzz_proto seeds are valid frames built with the codec's own builders (one
 * per message type, a whole session, a stream) and bare TLV payloads; the
 * fuzz_config seeds are small config files.  The output is deterministic, so
 * the corpus in the repository can be regenerated (tests/fuzz/run.sh seeds). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "transport/proto.h"

static char outdir[4096];

static void emit(const char *target, const char *name, const void *p, size_t n)
{
	char path[8192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* A growing byte string of frames. */
struct out {
	uint8_t b[1 << 16];
	size_t len;
};

static void frame(struct out *o, uint16_t type, uint32_t chan, const void *payload, size_t n)
{
	if (o->len + PROTO_HDR_SIZE + n > sizeof(o->b)) {
		fprintf(stderr, "gen_seeds: seed too large\n");
		exit(1);
	}
	proto_hdr_encode(o->b + o->len, type, chan, payload, (uint32_t)n);
	if (n)
		memcpy(o->b + o->len + PROTO_HDR_SIZE, payload, n);
	o->len += PROTO_HDR_SIZE + n;
}

static void msg(struct out *o, uint16_t type, struct mbuf *mb)
{
	frame(o, type, 0, mb ? mb->b : NULL, mb ? mb->len : 0);
	if (mb)
		mb_free(mb);
}

/* Builders of each message's attributes. */
static void hello(struct mbuf *mb, const char *host)
{
	mb_init(mb);
	mb_u32(mb, A_MAGIC, PROTO_HELLO_MAGIC);
	mb_u32(mb, A_VER_MAJOR, PROTO_MAJOR);
	mb_u32(mb, A_VER_MINOR, PROTO_MINOR);
	mb_str(mb, A_SOFTWARE, "cmt 0.1.0");
	mb_str(mb, A_HOST, host);
}

static void error_msg(struct mbuf *mb)
{
	mb_init(mb);
	mb_u32(mb, A_ERRNO, 28);
	mb_str(mb, A_MESSAGE, "cannot write images: No space left on device");
	mb_str(mb, A_HINT, "free space on the destination's state root");
	mb_str(mb, A_DETAIL, "line 1\nline 2");
	mb_str(mb, A_HOST, "node-b");
}

static void prepare(struct mbuf *mb)
{
	mb_init(mb);
	mb_str(mb, A_MIGRATION_ID, "web-20260101T000000-abcd");
	mb_u32(mb, A_KIND, KIND_RUNC);
	mb_str(mb, A_WORKLOAD, "web");
	mb_str(mb, A_MODE, "cold");
}

static void stream_begin(struct mbuf *mb, uint32_t area)
{
	mb_init(mb);
	mb_u32(mb, A_AREA, area);
}

static void stream_end(struct mbuf *mb, uint64_t bytes, uint64_t hash)
{
	mb_init(mb);
	mb_u64(mb, A_BYTES, bytes);
	mb_u64(mb, A_HASH, hash);
}

static void restore(struct mbuf *mb)
{
	static const char cfg[] = "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sleep\",\"1000\"]},\"root\":{\"path\":\"rootfs\"}}";
	mb_init(mb);
	mb_u32(mb, A_FLAGS, 1);
	mb_bytes(mb, A_CONFIG, cfg, sizeof(cfg) - 1);
}

static void one(const char *name, uint16_t type, struct mbuf *mb)
{
	static struct out o;

	o.len = 0;
	msg(&o, type, mb);
	emit("fuzz_proto", name, o.b, o.len);
}

/* The payload alone, for the msg_decode path. */
static void tlv(const char *name, struct mbuf *mb)
{
	emit("fuzz_proto", name, mb->b, mb->len);
	mb_free(mb);
}

static void proto_seeds(void)
{
	static struct out o;
	struct mbuf mb;

	hello(&mb, "node-a");
	one("frame-hello", MSG_HELLO, &mb);
	hello(&mb, "node-b");
	one("frame-welcome", MSG_WELCOME, &mb);
	error_msg(&mb);
	one("frame-error", MSG_ERROR, &mb);
	one("frame-facts-req", MSG_FACTS_REQ, NULL);
	mb_init(&mb);
	mb_str(&mb, A_FACTS, "kernel=6.1.0\narch=x86_64\ncriu=4.2\nmem_free_kb=1048576\n");
	one("frame-facts", MSG_FACTS, &mb);
	mb_init(&mb);
	mb_bytes(&mb, A_BLOB, "\x59\x00\x00\x00cpuinfo-image", 16);
	one("frame-cpu-check", MSG_CPU_CHECK, &mb);
	mb_init(&mb);
	mb_u32(&mb, A_FLAGS, 0);
	mb_str(&mb, A_MESSAGE, "Error: CPU feature avx512f missing");
	one("frame-cpu-result", MSG_CPU_RESULT, &mb);
	one("frame-ping", MSG_PING, NULL);
	prepare(&mb);
	one("frame-prepare", MSG_PREPARE, &mb);
	one("frame-ready", MSG_READY, NULL);
	stream_begin(&mb, AREA_IMAGES);
	one("frame-stream-begin", MSG_STREAM_BEGIN, &mb);
	stream_end(&mb, 10240, 0x0123456789abcdefull);
	one("frame-stream-end", MSG_STREAM_END, &mb);
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, 10240);
	one("frame-stream-ok", MSG_STREAM_OK, &mb);
	restore(&mb);
	one("frame-restore", MSG_RESTORE, &mb);
	mb_init(&mb);
	mb_u32(&mb, A_PID, 4242);
	mb_u64(&mb, A_DURATION_US, 123456);
	one("frame-restored", MSG_RESTORED, &mb);
	one("frame-commit", MSG_COMMIT, NULL);
	one("frame-abort", MSG_ABORT, NULL);
	one("frame-done", MSG_DONE, NULL);
	/* post-copy: the page relay and the end of the lazy transfer */
	mb_init(&mb);
	mb_str(&mb, A_MIGRATION_ID, "web1-20261124T101500-ab12");
	mb_u32(&mb, A_LEASE_MS, 30000);
	one("frame-relay", MSG_RELAY, &mb);
	mb_init(&mb);
	mb_u32(&mb, A_PORT, 41234);
	one("frame-relay-ready", MSG_RELAY_READY, &mb);
	one("frame-relay-open", MSG_RELAY_OPEN, NULL);
	one("frame-relay-close", MSG_RELAY_CLOSE, NULL);
	mb_init(&mb);
	mb_u64(&mb, A_DURATION_US, 2500000);
	one("frame-lazy-done", MSG_LAZY_DONE, &mb);
	mb_init(&mb);
	mb_u32(&mb, A_FLAGS, 8);
	mb_u32(&mb, A_DEADLINE_MS, 60000);
	mb_u32(&mb, A_PORT, 41234);
	one("frame-restore-lazy", MSG_RESTORE, &mb);

	/* a whole session as the agent reads it */
	o.len = 0;
	hello(&mb, "node-a");
	msg(&o, MSG_HELLO, &mb);
	msg(&o, MSG_FACTS_REQ, NULL);
	prepare(&mb);
	msg(&o, MSG_PREPARE, &mb);
	stream_begin(&mb, AREA_IMAGES);
	frame(&o, MSG_STREAM_BEGIN, 1, mb.b, mb.len);
	mb_free(&mb);
	frame(&o, MSG_DATA, 1, "pages-1.img....", 15);
	frame(&o, MSG_DATA, 1, "\0\0\0\0\0\0\0\0", 8);
	stream_end(&mb, 23, 0x1122334455667788ull);
	frame(&o, MSG_STREAM_END, 1, mb.b, mb.len);
	mb_free(&mb);
	restore(&mb);
	msg(&o, MSG_RESTORE, &mb);
	msg(&o, MSG_COMMIT, NULL);
	emit("fuzz_proto", "session-source", o.b, o.len);

	/* and as the source reads it */
	o.len = 0;
	hello(&mb, "node-b");
	msg(&o, MSG_WELCOME, &mb);
	msg(&o, MSG_READY, NULL);
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, 23);
	msg(&o, MSG_STREAM_OK, &mb);
	error_msg(&mb);
	msg(&o, MSG_ERROR, &mb);
	msg(&o, MSG_DONE, NULL);
	emit("fuzz_proto", "session-agent", o.b, o.len);

	/* bare payloads */
	hello(&mb, "node-a");
	tlv("tlv-hello", &mb);
	error_msg(&mb);
	tlv("tlv-error", &mb);
	prepare(&mb);
	tlv("tlv-prepare", &mb);
	stream_end(&mb, 1, 2);
	tlv("tlv-stream-end", &mb);
	restore(&mb);
	tlv("tlv-restore", &mb);
	mb_init(&mb);
	mb_u32(&mb, A_ERRNO, 1);
	mb_str(&mb, A_MESSAGE, "x");
	mb_u32(&mb, (enum attr_tag)200, 7); /* an attribute of a future minor version */
	mb_str(&mb, (enum attr_tag)0x7fff, "future");
	tlv("tlv-unknown-attrs", &mb);
	emit("fuzz_proto", "empty", "", 0);
}

static void config_seeds(void)
{
	static const char *const seeds[][2] = {
		{ "empty", "" },
		{ "all-keys", "# cmt configuration\n"
			      "criu = /opt/criu/sbin/criu\n"
			      "runc = /usr/sbin/runc\n"
			      "runc_root = /run/runc\n"
			      "name = node-a   # the name in messages\n"
			      "cgroup_parent = /cmt.slice\n" },
		{ "comments", "\n# comment\n   \n\t# indented\nname=x\n\n" },
		{ "unknown-key", "name = a\nfrobnicate = yes\n" },
		{ "no-equals", "criu /usr/sbin/criu\n" },
		{ "crlf", "name = a\r\nrunc = /b\r\n" },
		{ "long-name", "name = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" },
		{ "equals-in-value", "cgroup_parent = a=b=c\ncriu =\n" },
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		emit("fuzz_config", seeds[i][0], seeds[i][1], strlen(seeds[i][1]));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	snprintf(outdir, sizeof(outdir), "%s", argv[1]);
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	proto_seeds();
	config_seeds();
	return 0;
}
