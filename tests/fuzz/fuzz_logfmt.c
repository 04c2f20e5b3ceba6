/* libFuzzer target for the log format of `cmt run` containers
 * (src/monitor/logfmt.c): the record parser `cmt logs` runs on a log file
 * (from disk, possibly moved from another host), and the assembler that cuts
 * a container's output into records.
 *
 * Checks: a parsed record's text lies inside its line and has no newline, its
 * stream and time are in range; a record the monitor formats parses back to
 * the same fields; the assembler's records are at most LOG_LINE_MAX bytes,
 * hold no newline, and rebuild the input exactly (P continues, F ends a line).
 *
 * Build and run: tests/fuzz/run.sh smoke. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_logfmt"
#include "fuzz.h"

#include "monitor/logfmt.h"

struct rebuild {
	char *out;
	size_t len, cap;
};

static int emit(void *arg, enum log_stream s, bool partial, const char *text, size_t len)
{
	struct rebuild *b = arg;
	char hdr[LOG_HDR_MAX];
	struct timespec ts = { (time_t)len * 7919, (long)(len % 1000000000) };
	struct log_record r;

	CHECK(len <= LOG_LINE_MAX);
	CHECK(!memchr(text, '\n', len));
	/* formatted as the monitor does, it parses back */
	size_t h = logfmt_header(hdr, &ts, s, partial);
	char *line = malloc(h + len + 1);
	CHECK(line != NULL);
	memcpy(line, hdr, h);
	memcpy(line + h, text, len);
	CHECK(logfmt_parse(line, h + len, &r) == 0);
	CHECK(r.stream == s && r.partial == partial && r.len == len && !memcmp(r.text, text, len));
	CHECK(r.ts.tv_sec == ts.tv_sec && r.ts.tv_nsec == ts.tv_nsec);
	free(line);
	CHECK(b->len + len + 1 <= b->cap);
	memcpy(b->out + b->len, text, len);
	b->len += len;
	if (!partial)
		b->out[b->len++] = '\n';
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct log_record r;

	/* every line of the input as a log record */
	for (size_t off = 0; off < size;) {
		const char *nl = memchr(p + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (p + off)) : size - off;
		if (logfmt_parse(p + off, n, &r) == 0) {
			CHECK(r.text >= p + off && r.text + r.len == p + off + n);
			CHECK(!memchr(r.text, '\n', r.len));
			CHECK(r.stream == LOG_STDOUT || r.stream == LOG_STDERR);
			CHECK(r.ts.tv_nsec >= 0 && r.ts.tv_nsec < 1000000000);
		}
		off += n + 1;
	}

	/* the input as a container's output, fed in uneven pieces */
	static struct log_asm a;
	struct rebuild b = { .cap = size + 2 };
	b.out = malloc(b.cap);
	if (!b.out)
		return 0;
	memset(&a, 0, sizeof(a));
	a.stream = size && (data[0] & 1) ? LOG_STDERR : LOG_STDOUT;
	for (size_t off = 0, k = 1; off < size; off += k, k = k * 3 % 4099 + 1) {
		if (k > size - off)
			k = size - off;
		CHECK(log_asm_feed(&a, p + off, k, emit, &b) == 0);
	}
	bool ended = size && p[size - 1] == '\n';
	CHECK(log_asm_flush(&a, false, emit, &b) == 0);
	/* the end of the stream ends its last line */
	CHECK(b.len == size + (ended || !size ? 0 : 1));
	CHECK(!memcmp(b.out, p, size));
	free(b.out);
	return 0;
}
