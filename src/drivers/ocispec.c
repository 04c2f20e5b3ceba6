#include "drivers/ocispec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *load(const char *config, struct error *e)
{
	json_error_t je;
	json_t *j;

	if (strlen(config) > OCI_CONFIG_MAX) {
		error_set(e, EFBIG, "config.json is larger than %d bytes", OCI_CONFIG_MAX);
		return NULL;
	}
	j = json_loads(config, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		error_set(e, EINVAL, "config.json is not valid JSON: %s at line %d column %d", je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		error_set(e, EINVAL, "config.json is not a JSON object");
		return NULL;
	}
	return j;
}

/* Serialises the config into *ret and drops it. */
static int store(json_t *j, char **ret, struct error *e)
{
	*ret = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	return *ret ? 0 : error_set(e, ENOMEM, "out of memory");
}

int oci_rootfs_path(const char *config, const char *bundle, char *out, size_t n, struct error *e)
{
	json_t *j = load(config, e);
	const char *p;
	int r = 0;

	if (!j)
		return -e->code;
	p = json_string_value(json_object_get(json_object_get(j, "root"), "path"));
	if (!p || !*p)
		r = error_set(e, EINVAL, "config.json has no root.path");
	else if ((size_t)snprintf(out, n, "%s%s%s", p[0] == '/' ? "" : bundle, p[0] == '/' ? "" : "/", p) >= n)
		r = error_set(e, ENAMETOOLONG, "root filesystem path too long");
	json_decref(j);
	return r;
}

int oci_rewrite_for_restore(const char *config, const char *cgroup_parent, const char *id, bool keep_root, char **ret,
			    bool *ret_hooks_removed, struct error *e)
{
	json_t *j = load(config, e), *root, *linux_;
	char cg[1024];

	if (!j)
		return -e->code;
	root = json_object_get(j, "root");
	if (!json_is_object(root)) {
		json_decref(j);
		return error_set(e, EINVAL, "config.json has no root object");
	}
	if (!keep_root) {
		json_object_set_new(root, "path", json_string("rootfs"));
	} else {
		const char *rp = json_string_value(json_object_get(root, "path"));
		if (!rp || rp[0] != '/') {
			json_decref(j);
			return error_set(e, EINVAL, "config.json: with shared storage root.path must be absolute");
		}
	}
	if (ret_hooks_removed)
		*ret_hooks_removed = json_object_get(j, "hooks") != NULL;
	json_object_del(j, "hooks");
	if (cgroup_parent && *cgroup_parent) {
		linux_ = json_object_get(j, "linux");
		if (!json_is_object(linux_)) {
			linux_ = json_object();
			json_object_set_new(j, "linux", linux_);
		}
		while (*cgroup_parent == '/')
			cgroup_parent++;
		if ((size_t)snprintf(cg, sizeof(cg), "/%s/%s", cgroup_parent, id) >= sizeof(cg)) {
			json_decref(j);
			return error_set(e, ENAMETOOLONG, "cgroup path too long");
		}
		json_object_set_new(linux_, "cgroupsPath", json_string(cg));
	}
	return store(j, ret, e);
}

int oci_set_annotation(const char *config, const char *key, const char *value, char **ret, struct error *e)
{
	json_t *j = load(config, e), *ann;

	if (!j)
		return -e->code;
	ann = json_object_get(j, "annotations");
	if (ann && !json_is_object(ann)) {
		json_decref(j);
		return error_set(e, EINVAL, "config.json: annotations is not an object");
	}
	if (!ann) {
		ann = json_object();
		json_object_set_new(j, "annotations", ann);
	}
	json_object_set_new(ann, key, json_string(value));
	return store(j, ret, e);
}

int oci_set_root_path(const char *config, const char *path, char **ret, struct error *e)
{
	json_t *j = load(config, e), *root;

	if (!j)
		return -e->code;
	root = json_object_get(j, "root");
	if (!json_is_object(root)) {
		json_decref(j);
		return error_set(e, EINVAL, "config.json has no root object");
	}
	json_object_set_new(root, "path", json_string(path));
	return store(j, ret, e);
}
