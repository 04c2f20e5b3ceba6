/* Reading and rewriting an OCI runtime config (config.json). */
#pragma once
#include <stddef.h>

#include "util/error.h"

#define OCI_CONFIG_MAX (512 * 1024)

/* The absolute path of the root filesystem named by root.path. */
int oci_rootfs_path(const char *config, const char *bundle, char *out, size_t n, struct error *e);
/* The config as the destination must run it: root.path becomes "rootfs"
 * (the bundle carries the root filesystem there) and, when cgroup_parent is
 * not empty, linux.cgroupsPath becomes "/<cgroup_parent>/<id>".  Returns a
 * malloc'ed JSON text in *ret. */
int oci_rewrite_for_restore(const char *config, const char *cgroup_parent, const char *id, char **ret,
			    struct error *e);
