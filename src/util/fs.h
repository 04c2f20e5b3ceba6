/* Small filesystem helpers. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

int mkdir_p(const char *path, mode_t mode, struct error *e);
/* Removes a tree (no following of symlinks, stays on one filesystem). */
int rm_rf(const char *path, struct error *e);
/* Reads a whole file (at most max bytes, else -EFBIG); NUL-terminated. */
int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len, struct error *e);
/* A program's last word in its output file: the last non-empty line (its
 * trailing blanks cut), or the last that contains one of prefer (a NULL-
 * terminated list, may be NULL).  Malloc'd; NULL when the file cannot be
 * read within max bytes or has no such line. */
char *file_last_line(const char *path, size_t max, const char *const *prefer);
/* Writes via a temporary file and rename. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct error *e);
/* Sum of st_blocks*512 of regular files below path. */
long long tree_bytes(const char *path);
/* True when path exists. */
int path_exists(const char *path);
/* Finds an executable called name in $PATH (or the standard system
 * directories when PATH is unset); its path goes to out.  -ENOENT if none. */
int find_in_path(const char *name, char *out, size_t n);
/* Joins a and b with one '/', into buf; returns -ENAMETOOLONG if it does not fit. */
int path_join(char *buf, size_t n, const char *a, const char *b);
/* true when path is strictly inside dir: it starts with dir + "/", has
 * something after it, and no ".." component (no symlinks are resolved: for
 * paths cmt itself built under its state root, read back from disk). */
bool path_is_under(const char *path, const char *dir);
/* A directory for temporary migration data (CRIU's images): created, then
 * a private tmpfs mounted over it, so that the images live in memory as they
 * are written and read while the workload is frozen, and never go through a
 * disk's writeback.  policy (config images_tmpfs): "yes", "no" (a plain
 * directory), or the tmpfs's size ("512m", "25%").  Where mounting is
 * refused it stays a plain directory (returns 1; 0 when in memory). */
int mem_dir_make(const char *path, const char *policy, struct error *e);
/* Unmounts (lazily: open files keep working) and removes such a directory;
 * harmless on a plain one or none. */
void mem_dir_drop(const char *path);
/* A name safe as one file name from anywhere (a peer, a journal, the
 * command line): 1..max of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool name_is_safe(const char *s, size_t max);
/* The sum of the sizes of the regular files below dir (0 on error). */
uint64_t dir_bytes(const char *dir);
