/* libFuzzer target for config.json handling (src/drivers/ocispec.c): the
 * agent rewrites a config.json it received from the other host.  Anything
 * malformed is refused with a message; what is accepted comes out with
 * root.path "rootfs", the cgroup under this host's parent, and no hooks (a
 * peer's commands are never run). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define FUZZ_NAME "fuzz_ocispec"
#include "fuzz.h"

#include "drivers/ocispec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct error e = { 0 };
	char *text, *out = NULL, *out2 = NULL, path[4096];
	bool hooks = false;
	int r;

	text = fuzz_text(data, size, OCI_CONFIG_MAX + 16);
	if (!text)
		return 0;
	oci_rootfs_path(text, "/bundle", path, sizeof(path), &e);
	error_clear(&e);
	r = oci_rewrite_for_restore(text, "cmt-parent", "ct1", false, &out, &hooks, &e);
	if (r < 0) {
		CHECK(e.code > 0 && e.msg[0] && out == NULL);
	} else {
		json_error_t je;
		json_t *j = json_loads(out, 0, &je);
		CHECK(j != NULL);
		CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "root"), "path")), "rootfs"));
		CHECK(json_object_get(j, "hooks") == NULL);
		CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "linux"), "cgroupsPath")),
			      "/cmt-parent/ct1"));
		json_decref(j);
		/* annotations of the wrong type are refused there, with a message */
		error_clear(&e);
		if (oci_set_annotation(out, "org.criu.config", "/w/c.conf", &out2, &e) < 0)
			CHECK(e.code > 0 && e.msg[0] && out2 == NULL);
		free(out2);
	}
	free(out);
	free(text);
	return 0;
}
