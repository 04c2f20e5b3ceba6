/* Reading and rewriting config.json for the destination. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/ocispec.h"
#include "tap.h"

static const char *get(const char *json, const char *a, const char *b)
{
	static char out[512];
	json_t *j = json_loads(json, 0, NULL);
	const char *v = json_string_value(json_object_get(json_object_get(j, a), b));
	snprintf(out, sizeof(out), "%s", v ? v : "(none)");
	json_decref(j);
	return out;
}

int main(void)
{
	struct error e = { 0 };
	char out[4096], *txt = NULL;
	const char *cfg = "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\",\"readonly\":false},"
			  "\"linux\":{\"cgroupsPath\":\"/h1/ct1\",\"namespaces\":[{\"type\":\"pid\"}]}}";

	ok(oci_rootfs_path(cfg, "/b/ct1", out, sizeof(out), &e) == 0, "relative root.path");
	is_str(out, "/b/ct1/rootfs", "resolved against the bundle");
	ok(oci_rootfs_path("{\"root\":{\"path\":\"/srv/root\"}}", "/b", out, sizeof(out), &e) == 0, "absolute root.path");
	is_str(out, "/srv/root", "absolute kept");
	ok(oci_rootfs_path("{\"root\":{}}", "/b", out, sizeof(out), &e) == -EINVAL, "missing root.path");
	ok(strstr(e.msg, "root.path") != NULL, "error names root.path: %s", e.msg);
	ok(oci_rootfs_path("{\"root\":", "/b", out, sizeof(out), &e) == -EINVAL, "malformed JSON refused");
	ok(strstr(e.msg, "line") != NULL, "error says where: %s", e.msg);
	ok(oci_rootfs_path("[1,2]", "/b", out, sizeof(out), &e) == -EINVAL, "not an object");
	ok(oci_rootfs_path("{\"root\":{\"path\":\"a\"},\"root\":{\"path\":\"b\"}}", "/b", out, sizeof(out), &e) < 0,
	   "duplicate keys refused");

	ok(oci_rewrite_for_restore(cfg, "cmt-lab-h2", "ct1", false, &txt, NULL, &e) == 0, "rewrite");
	is_str(get(txt, "root", "path"), "rootfs", "root.path becomes rootfs");
	is_str(get(txt, "linux", "cgroupsPath"), "/cmt-lab-h2/ct1", "cgroupsPath under the destination parent");
	ok(strstr(txt, "\"namespaces\"") != NULL, "other fields kept");
	free(txt);
	txt = NULL;
	ok(oci_rewrite_for_restore("{\"root\":{\"path\":\"/abs/rootfs\"},\"linux\":{\"cgroupsPath\":\"/x/y\"}}", "", "c",
				   false, &txt, NULL, &e) == 0,
	   "rewrite without cgroup parent");
	is_str(get(txt, "root", "path"), "rootfs", "absolute root.path rewritten");
	is_str(get(txt, "linux", "cgroupsPath"), "/x/y", "cgroupsPath kept without a parent");
	free(txt);
	txt = NULL;
	ok(oci_rewrite_for_restore("{\"root\":{\"path\":\"r\"}}", "/p/", "c", false, &txt, NULL, &e) == 0, "no linux object");
	is_str(get(txt, "linux", "cgroupsPath"), "/p//c", "linux object created, leading slash not doubled");
	free(txt);
	txt = NULL;
	ok(oci_rewrite_for_restore("{}", "p", "c", false, &txt, NULL, &e) == -EINVAL, "config without root refused");
	char *big = malloc(OCI_CONFIG_MAX + 16);
	memset(big, ' ', OCI_CONFIG_MAX + 8);
	big[0] = '{';
	big[OCI_CONFIG_MAX + 8] = '}';
	big[OCI_CONFIG_MAX + 9] = 0;
	ok(oci_rewrite_for_restore(big, "p", "c", false, &txt, NULL, &e) == -EFBIG, "oversized config refused");
	free(big);
	bool removed = false;
	ok(oci_rewrite_for_restore("{\"root\":{\"path\":\"r\"},\"hooks\":{\"prestart\":[{\"path\":\"/bin/sh\","
				   "\"args\":[\"sh\",\"-c\",\"touch /pwned\"]}]}}",
				   "p", "c", false, &txt, &removed, &e) == 0,
	   "config with OCI hooks");
	ok(removed && strstr(txt, "hooks") == NULL && strstr(txt, "pwned") == NULL, "hooks from a peer are removed");
	free(txt);
	txt = NULL;
	ok(oci_rewrite_for_restore(cfg, "p", "c", false, &txt, &removed, &e) == 0 && !removed, "no hooks: nothing removed");
	free(txt);

	/* shared storage: root.path stays, and must be absolute */
	txt = NULL;
	ok(oci_rewrite_for_restore("{\"root\":{\"path\":\"/srv/ct1/rootfs\"}}", "p", "c", true, &txt, NULL, &e) == 0 &&
		   strstr(txt, "/srv/ct1/rootfs") != NULL,
	   "shared storage: the absolute root.path is kept");
	free(txt);
	txt = NULL;
	ok(oci_rewrite_for_restore("{\"root\":{\"path\":\"rootfs\"}}", "p", "c", true, &txt, NULL, &e) == -EINVAL,
	   "shared storage: a relative root.path is refused: %s", e.msg);

	/* annotations: added, replaced, and a malformed one refused */
	txt = NULL;
	ok(oci_set_annotation("{\"root\":{\"path\":\"r\"}}", "org.criu.config", "/w/c.conf", &txt, &e) == 0 &&
		   strstr(txt, "\"org.criu.config\": \"/w/c.conf\"") != NULL,
	   "annotation added");
	free(txt);
	txt = NULL;
	ok(oci_set_annotation("{\"annotations\":{\"org.criu.config\":\"/src\",\"k\":\"v\"}}", "org.criu.config", "/dst",
			      &txt, &e) == 0 &&
		   strstr(txt, "/dst") && !strstr(txt, "/src") && strstr(txt, "\"k\""),
	   "annotation replaced, others kept");
	free(txt);
	txt = NULL;
	ok(oci_set_annotation("{\"annotations\":[1]}", "a", "b", &txt, &e) == -EINVAL && txt == NULL,
	   "annotations that are not an object are refused: %s", e.msg);
	return done_testing();
}
