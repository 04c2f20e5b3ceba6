/* libFuzzer target for the reader of CRIU's log timestamps
 * (src/criu/logtime.c): cmt reads the dump's and the restore's logs for
 * CRIU's own share of the frozen window, logs CRIU wrote but that a full
 * disk, a crash or another program may have cut or garbled.
 *
 * Checks: every kind of reading returns 0, -ENOENT or -EINVAL; a figure it
 * returns is finite, not negative, and no longer than the log's last
 * timestamp allows; a failed reading leaves the figure alone; a text cut at
 * any length is read without reading past the cut.
 *
 * Build and run: tests/fuzz/run.sh smoke. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_criulog"
#include "fuzz.h"

#include "criu/logtime.h"

static void one(const char *text, size_t len, enum criu_log_op op, bool after)
{
	double ms = -123;
	int r = criu_log_own_ms(text, len, op, after, &ms);

	CHECK(r == 0 || r == -ENOENT || r == -EINVAL);
	if (r == 0)
		CHECK(isfinite(ms) && ms >= 0 && ms <= 1e10 + 1); /* timestamps stop below 1e7 s */
	else
		CHECK(ms == -123);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly 'size' bytes: ASan sees any read past the end */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	for (int op = 0; op < 2; op++)
		for (int after = 0; after < 2; after++) {
			one(text, size, (enum criu_log_op)op, after);
			if (size > 1)
				one(text, size / 2, (enum criu_log_op)op, after);
		}
	free(text);
	return 0;
}
