#include "engine/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "transport/manifest.h"
#include "util/fs.h"

#define PREFIX "rootfs"

int rootfs_precopy(struct proto_conn *c, uint32_t chan, const char *rootfs, const char *prefix, struct rootfs_sync *rs,
		   struct error *e)
{
	struct tree_stats ts;
	struct tree_send_opts o = { .on_bytes = rs->on_bytes, .arg = rs->arg };
	int r;

	rs->m = manifest_new();
	if (!rs->m)
		return error_set(e, ENOMEM, "out of memory");
	o.record = rs->m;
	r = tree_send_opts(c, chan, AREA_BUNDLE, rootfs, prefix, &o, &ts, e);
	if (r < 0)
		return error_wrap(e, "copying %s while the workload runs", rootfs);
	rs->precopy_bytes = ts.payload_bytes;
	return 0;
}

/* --- the scan for deletions (nftw has no user argument) -------------------- */
static struct {
	struct manifest *m;
	const char *root;
	const char *prefix;
	size_t root_len;
	char *buf;
	size_t len, cap;
	uint64_t n;
	int err;
} scan;

static void add_deleted(const char *name, void *arg)
{
	size_t k = strlen(name) + 1;

	(void)arg;
	if (scan.err)
		return;
	if (scan.len + k > ROOTFS_DELETED_MAX) {
		scan.err = E2BIG;
		return;
	}
	if (scan.len + k > scan.cap) {
		size_t cap = scan.cap ? scan.cap * 2 : 65536;
		while (cap < scan.len + k)
			cap *= 2;
		char *b = realloc(scan.buf, cap);
		if (!b) {
			scan.err = ENOMEM;
			return;
		}
		scan.buf = b;
		scan.cap = cap;
	}
	memcpy(scan.buf + scan.len, name, k);
	scan.len += k;
	scan.n++;
}

static int scan_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	char name[PATH_MAX + 16];
	const char *rel = path + scan.root_len;

	(void)flag;
	(void)ftw;
	while (*rel == '/')
		rel++;
	if ((size_t)snprintf(name, sizeof(name), "%s%s%s", scan.prefix, *rel ? "/" : "", rel) >= sizeof(name))
		return 0; /* tree_send reports it */
	/* replaced by another type: remove the old one first, then extract */
	if (manifest_check(scan.m, name, sb) == MF_TYPE_CHANGED)
		add_deleted(name, NULL);
	return 0;
}

int rootfs_delta(struct proto_conn *c, uint32_t chan, const char *rootfs, const char *prefix, const char *work_dir,
		 struct rootfs_sync *rs, struct error *e)
{
	struct tree_send_opts o = { .since = rs->m, .on_bytes = rs->on_bytes, .arg = rs->arg };
	struct tree_stats ts;
	int r;

	memset(&scan, 0, sizeof(scan));
	scan.m = rs->m;
	scan.root = rootfs;
	scan.root_len = strlen(rootfs);
	scan.prefix = prefix;
	if (nftw(rootfs, scan_cb, 64, FTW_PHYS | FTW_MOUNT) < 0) {
		free(scan.buf);
		return error_errno(e, errno, "cannot read %s", rootfs);
	}
	manifest_each_unseen(rs->m, add_deleted, NULL);
	if (scan.err) {
		free(scan.buf);
		return error_set(e, scan.err, "the list of files deleted from %s is too long", rootfs);
	}
	rs->deleted = scan.n;
	if (scan.len) {
		char dir[PATH_MAX + 32], file[PATH_MAX + 48];
		snprintf(dir, sizeof(dir), "%s/rootfs-deleted", work_dir);
		snprintf(file, sizeof(file), "%s/deleted", dir);
		r = mkdir_p(dir, 0700, e);
		if (r == 0)
			r = write_file_atomic(file, scan.buf, scan.len, 0600, e);
		free(scan.buf);
		scan.buf = NULL;
		if (r == 0)
			r = tree_send(c, chan, AREA_DELETED, dir, "", &ts, e);
		if (r < 0)
			return error_wrap(e, "sending the files deleted from %s", rootfs);
	}
	r = tree_send_opts(c, chan, AREA_BUNDLE, rootfs, prefix, &o, &ts, e);
	if (r < 0)
		return error_wrap(e, "sending what changed in %s", rootfs);
	rs->delta_bytes = ts.payload_bytes;
	rs->delta_files = ts.files;
	return 0;
}

void rootfs_sync_free(struct rootfs_sync *rs)
{
	manifest_free(rs->m);
	rs->m = NULL;
}

/* --- agent side ---------------------------------------------------------------- */

bool rootfs_deletion_name_ok(const char *name)
{
	size_t n = strlen(name), top;

	/* below rootfs/ or below volumes/N/ (a copied volume) */
	if (!strncmp(name, PREFIX "/", sizeof(PREFIX))) {
		top = sizeof(PREFIX);
	} else if (!strncmp(name, "volumes/", 8) && name[8] >= '0' && name[8] <= '9') {
		top = 8 + strspn(name + 8, "0123456789");
		if (name[top] != '/' || top > 12)
			return false;
		top++;
	} else {
		return false;
	}
	if (n <= top)
		return false;
	for (const char *p = name; *p;) {
		size_t k = strcspn(p, "/");
		if (k == 0 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.'))
			return false; /* empty, "." or ".." component */
		p += k;
		if (*p == '/')
			p++;
		else
			break;
	}
	return name[n - 1] != '/';
}

static long openat2_beneath(int dirfd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int rootfs_apply_deletions(const char *bundle_dir, const char *list, size_t len, struct error *e)
{
	int bfd = open(bundle_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (bfd < 0)
		return error_errno(e, errno, "cannot open %s", bundle_dir);
	for (size_t off = 0; off < len;) {
		const char *name = list + off;
		size_t k = strnlen(name, len - off);
		char parent[PATH_MAX], via[64];
		const char *base;
		if (k == len - off) {
			close(bfd);
			return error_set(e, EPROTO, "malformed deletion list: the last name is not terminated");
		}
		off += k + 1;
		if (k >= sizeof(parent) || !rootfs_deletion_name_ok(name)) {
			close(bfd);
			return error_set(e, EPROTO, "refused deletion of '%.100s': not a plain path below rootfs/", name);
		}
		memcpy(parent, name, k + 1);
		char *slash = strrchr(parent, '/');
		*slash = 0;
		base = name + (slash - parent) + 1;
		long pfd = openat2_beneath(bfd, parent);
		if (pfd < 0) {
			if (errno == ENOENT)
				continue; /* already gone with its parent */
			int err = errno;
			close(bfd);
			return error_errno(e, err, "refused deletion of '%.100s' (its directory is not a plain directory "
						   "below the bundle)", name);
		}
		if (unlinkat((int)pfd, base, 0) < 0 && errno != ENOENT) {
			if (errno == EISDIR || errno == EPERM) {
				struct error tmp = { 0 };
				snprintf(via, sizeof(via), "/proc/self/fd/%ld/", pfd);
				char full[PATH_MAX + 80];
				snprintf(full, sizeof(full), "%s%s", via, base);
				if (rm_rf(full, &tmp) < 0) {
					close((int)pfd);
					close(bfd);
					return error_set(e, tmp.code, "cannot delete %s in %s: %s", name, bundle_dir, tmp.msg);
				}
			} else {
				int err = errno;
				close((int)pfd);
				close(bfd);
				return error_errno(e, err, "cannot delete %s in %s", name, bundle_dir);
			}
		}
		close((int)pfd);
	}
	close(bfd);
	return 0;
}
