/* What a directory tree looked like when it was sent: path -> metadata, so
 * that a later send carries only what changed since (and what was deleted).
 * Used for the root filesystem: copied while the workload runs, then only
 * the difference once it is frozen.  A file counts as unchanged when its type,
 * size, mode, owner, inode, mtime and ctime (nanoseconds) are all the same;
 * ctime changes with every write, chmod, chown, xattr change or link count
 * change, so content, metadata and hard-link changes all show. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct manifest;

struct manifest *manifest_new(void);
void manifest_free(struct manifest *m);
/* Records path (as named in the stream) with its metadata; 0 or -ENOMEM. */
int manifest_put(struct manifest *m, const char *path, const struct stat *st);
enum manifest_diff { MF_SAME, MF_CHANGED, MF_NEW, MF_TYPE_CHANGED };
/* Compares path with what was recorded, and marks it seen. */
enum manifest_diff manifest_check(struct manifest *m, const char *path, const struct stat *st);
/* Calls fn for every recorded path not seen by manifest_check since the
 * last manifest_clear_seen (the deleted ones). */
void manifest_each_unseen(const struct manifest *m, void (*fn)(const char *path, void *arg), void *arg);
size_t manifest_count(const struct manifest *m);
