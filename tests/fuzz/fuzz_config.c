/* libFuzzer target for the per-host config file parser (src/util/config.c).
 *
 * The input is the text of a config file (cut at its first NUL, as a file
 * read by config_load would be).  Beyond the sanitizers it checks that every
 * field stays NUL-terminated inside its buffer, that a failure comes with a
 * message naming the file and line, and that parsing is deterministic.
 *
 * Build and run: tests/fuzz/run.sh smoke. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_config"
#include "fuzz.h"

#include "util/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config c, c2;
	struct error e, e2;
	char *text = malloc(size + 1);
	int r, r2;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;

	config_defaults(&c);
	error_clear(&e);
	r = config_parse(&c, text, "fuzz.conf", &e);
	TERMINATED(c.root);
	TERMINATED(c.runc_root);
	TERMINATED(c.criu);
	TERMINATED(c.runc);
	TERMINATED(c.name);
	TERMINATED(c.cgroup_parent);
	CHECK(strcmp(c.root, "/var/lib/cmt") == 0); /* not a config key */
	if (r < 0) {
		CHECK(e.code > 0 && -r == e.code);
		CHECK(e.code == ENOMEM || strncmp(e.msg, "fuzz.conf:", 10) == 0);
	} else {
		CHECK(r == 0);
	}

	/* the same text gives the same result */
	config_defaults(&c2);
	error_clear(&e2);
	r2 = config_parse(&c2, text, "fuzz.conf", &e2);
	CHECK(r2 == r && strcmp(e.msg, e2.msg) == 0 && memcmp(&c, &c2, sizeof(c)) == 0);

	free(text);
	return 0;
}
