/* The log format of `cmt run` containers (src/monitor/logfmt.h): records,
 * their parser, and the cutting of a stream into records. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/logfmt.h"
#include "tap.h"

struct sink {
	char out[2][1 << 17]; /* per stream: the text reassembled from the records */
	size_t len[2];
	int records, partial;
	char last[LOG_HDR_MAX + 64];
};

/* Formats each record as the monitor does, parses it back, and rebuilds
 * the stream from F/P records. */
static int sink_emit(void *arg, enum log_stream s, bool partial, const char *text, size_t len)
{
	struct sink *k = arg;
	struct timespec ts = { 1764617280, 123456789 };
	char *line = malloc(LOG_HDR_MAX + len + 1);
	struct log_record r;
	size_t h = logfmt_header(line, &ts, s, partial);

	memcpy(line + h, text, len);
	if (logfmt_parse(line, h + len, &r) != 0 || r.stream != s || r.partial != partial || r.len != len ||
	    memcmp(r.text, text, len) != 0 || r.ts.tv_sec != ts.tv_sec || r.ts.tv_nsec != ts.tv_nsec) {
		free(line);
		return -EINVAL;
	}
	snprintf(k->last, sizeof(k->last), "%.*s", (int)(h + (len < 40 ? len : 40)), line);
	memcpy(k->out[s] + k->len[s], text, len);
	k->len[s] += len;
	if (!partial)
		k->out[s][k->len[s]++] = '\n';
	k->records++;
	k->partial += partial;
	free(line);
	return 0;
}

static void test_header(void)
{
	struct timespec ts = { 1764617280, 5 }; /* 2025-12-01T19:28:00 */
	char h[LOG_HDR_MAX];
	size_t n = logfmt_header(h, &ts, LOG_STDERR, true);

	is_str(h, "2025-12-01T19:28:00.000000005Z stderr P ", "header: UTC time with nanoseconds, stream, P");
	is_int((long long)n, 40, "header length");
	logfmt_header(h, &ts, LOG_STDOUT, false);
	is_str(h, "2025-12-01T19:28:00.000000005Z stdout F ", "header of a full stdout line");
}

static void test_parse(void)
{
	struct log_record r;
	const char *good = "2026-12-01T19:28:00.123456789Z stdout F hello world";
	const char *empty = "2026-12-01T19:28:00.123456789Z stderr F";
	const char *empty2 = "2026-12-01T19:28:00.123456789Z stderr P ";

	ok(logfmt_parse(good, strlen(good), &r) == 0 && r.stream == LOG_STDOUT && !r.partial && r.len == 11 &&
		   !memcmp(r.text, "hello world", 11) && r.ts.tv_nsec == 123456789,
	   "a full stdout record parses");
	ok(logfmt_parse(empty, strlen(empty), &r) == 0 && r.stream == LOG_STDERR && r.len == 0,
	   "an empty line without the trailing space parses");
	ok(logfmt_parse(empty2, strlen(empty2), &r) == 0 && r.partial && r.len == 0, "an empty P record parses");
	const char *bad[] = {
		"",
		"garbage",
		"2026-12-01T19:28:00.123456789Z stdin F x",
		"2026-12-01T19:28:00.123456789Z stdout X x",
		"2026-12-01T19:28:00.12345678Z stdout F x",
		"2026-13-01T19:28:00.123456789Z stdout F x",
		"2026-12-01 19:28:00.123456789Z stdout F x",
		"2026-12-01T19:28:00.123456789Z stdout Fx",
		"2026-12-01T19:28:00.123456789Z stdout F x\ny",
	};
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += logfmt_parse(bad[i], strlen(bad[i]), &r) == -EINVAL;
	is_int(refused, (int)(sizeof(bad) / sizeof(bad[0])), "malformed records are refused");
}

static void test_asm(void)
{
	static struct sink k;
	struct log_asm a = { .stream = LOG_STDOUT }, b = { .stream = LOG_STDERR };
	const char *in = "one\ntwo\nthr";

	memset(&k, 0, sizeof(k));
	ok(log_asm_feed(&a, in, strlen(in), sink_emit, &k) == 0, "feed");
	is_int(k.records, 2, "two complete lines, the third kept");
	ok(log_asm_feed(&a, "ee\n\nfour", 8, sink_emit, &k) == 0, "feed the rest of the line, an empty line, a part");
	is_int(k.records, 4, "the continued line and the empty line are records");
	ok(log_asm_flush(&a, true, sink_emit, &k) == 0 && k.partial == 1, "a drain flushes the pending part as P");
	ok(log_asm_feed(&a, "teen\n", 5, sink_emit, &k) == 0, "the line goes on after the drain");
	k.out[0][k.len[0]] = 0;
	is_str(k.out[0], "one\ntwo\nthree\n\nfourteen\n", "F/P records rebuild the stream exactly");
	ok(log_asm_flush(&a, false, sink_emit, &k) == 0 && k.records == 6, "flushing an empty assembler emits nothing");

	/* a line longer than LOG_LINE_MAX is cut into P records */
	size_t n = LOG_LINE_MAX * 2 + 100;
	char *big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\n';
	int before = k.records, pb = k.partial;
	ok(log_asm_feed(&b, big, 1000, sink_emit, &k) == 0 && log_asm_feed(&b, big + 1000, n + 1 - 1000, sink_emit, &k) == 0,
	   "a long line in two pieces");
	is_int(k.records - before, 3, "cut into 3 records");
	is_int(k.partial - pb, 2, "the first 2 are P");
	ok(k.len[1] == n + 1 && !memcmp(k.out[1], big, n + 1), "the long line is rebuilt exactly");
	/* exactly LOG_LINE_MAX bytes and a newline: one F record */
	before = k.records;
	k.len[1] = 0;
	big[LOG_LINE_MAX] = '\n';
	ok(log_asm_feed(&b, big, LOG_LINE_MAX + 1, sink_emit, &k) == 0 && k.records - before == 1,
	   "a line of exactly LOG_LINE_MAX bytes is one record");
	/* byte by byte gives the same stream */
	struct log_asm c = { .stream = LOG_STDERR };
	k.len[1] = 0;
	before = k.records;
	const char *s2 = "x\nyy\n\nzzz";
	for (size_t i = 0; i < strlen(s2); i++)
		log_asm_feed(&c, s2 + i, 1, sink_emit, &k);
	log_asm_flush(&c, false, sink_emit, &k);
	k.out[1][k.len[1]] = 0;
	is_str(k.out[1], "x\nyy\n\nzzz\n", "byte by byte: the same records (the end of the stream ends the last line)");
	free(big);
}

int main(void)
{
	test_header();
	test_parse();
	test_asm();
	return done_testing();
}
