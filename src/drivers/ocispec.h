/* Reading and rewriting an OCI runtime config (config.json). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define OCI_CONFIG_MAX (256 * 1024) /* well below the protocol's 512 KiB config attribute */

/* The absolute path of the root filesystem named by root.path. */
int oci_rootfs_path(const char *config, const char *bundle, char *out, size_t n, struct error *e);
/* The config as the destination must run it: root.path becomes "rootfs"
 * (unless keep_root: shared storage, root.path must then be absolute)
 * (the bundle carries the root filesystem there) and, when cgroup_parent is
 * not empty, linux.cgroupsPath becomes "/<cgroup_parent>/<id>".  OCI hooks
 * are removed: they are commands run on the host, and nothing received from
 * a peer is ever run here.  *ret_hooks_removed says whether there were any.  Returns a
 * malloc'ed JSON text in *ret. */
int oci_rewrite_for_restore(const char *config, const char *cgroup_parent, const char *id, bool keep_root, char **ret,
			    bool *ret_hooks_removed, struct error *e);
/* The config with annotations[key] = value (added or replaced). */
int oci_set_annotation(const char *config, const char *key, const char *value, char **ret, struct error *e);
/* The config with root.path = path. */
int oci_set_root_path(const char *config, const char *path, char **ret, struct error *e);
