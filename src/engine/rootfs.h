/* The root filesystem (and, later, volumes) while the workload runs and after:
 *
 *   source: rootfs_precopy() sends the whole tree while the workload still
 *           runs and records a manifest; once it is frozen, rootfs_delta()
 *           sends the list of entries deleted (or replaced by another type)
 *           since, then only the entries that are new or changed.
 *   agent:  the tree lands in the bundle (extraction over what is there);
 *           rootfs_apply_deletions() removes the listed entries first, never
 *           outside the bundle (no "..", no symlink followed on the way).
 *
 * Metadata (owner, mode, times, xattrs, ACLs), hard links, sparse files and
 * device nodes travel as full pax entries (transport/tree.c). */
#pragma once
#include <stdint.h>

#include "transport/proto.h"
#include "transport/tree.h"

struct manifest;

struct rootfs_sync {
	struct manifest *m;       /* what the pre-copy sent */
	uint64_t precopy_bytes;   /* file contents sent while running */
	uint64_t delta_bytes;     /* file contents sent while frozen */
	uint64_t delta_files;     /* entries sent while frozen */
	uint64_t deleted;         /* entries deleted since the pre-copy */
	void (*on_bytes)(uint64_t n, void *arg); /* progress, optional */
	void *arg;
};

#define ROOTFS_DELETED_MAX (64u << 20) /* the deletion list, NUL-separated */

/* dir travels as prefix/... in the bundle stream: "rootfs" for the root
 * filesystem, "volumes/N" for a copied volume (engine/volumes.h). */
int rootfs_precopy(struct proto_conn *c, uint32_t chan, const char *dir, const char *prefix, struct rootfs_sync *rs,
		   struct error *e);
/* work_dir: where the deletion list is written before it is sent. */
int rootfs_delta(struct proto_conn *c, uint32_t chan, const char *dir, const char *prefix, const char *work_dir,
		 struct rootfs_sync *rs, struct error *e);
void rootfs_sync_free(struct rootfs_sync *rs);

/* Agent: removes the entries of the NUL-separated list (names as in the
 * bundle stream: "rootfs/...", "volumes/N/...") below bundle_dir.  A name
 * not below one of those, with a ".." component or leading through a
 * symlink is refused. */
int rootfs_apply_deletions(const char *bundle_dir, const char *list, size_t len, struct error *e);
/* Whether a name from a peer's deletion list is acceptable (pure; tested). */
bool rootfs_deletion_name_ok(const char *name);
