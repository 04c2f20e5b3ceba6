#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <unistd.h>

#include "util/cleanup.h"

int mkdir_p(const char *path, mode_t mode, struct error *e)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return error_set(e, ENAMETOOLONG, "bad directory path '%s'", path);
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return error_errno(e, errno, "cannot create directory %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return error_errno(e, errno, "cannot create directory %s", tmp);
	return 0;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		return rmdir(p) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(p) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path, struct error *e)
{
	if (!path_exists(path))
		return 0;
	if (nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return error_errno(e, errno, "cannot remove %s", path);
	return 0;
}

int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len, struct error *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 4096;

	if (fd < 0)
		return error_errno(e, errno, "cannot open %s", path);
	buf = malloc(cap + 1);
	if (!buf)
		return error_set(e, ENOMEM, "out of memory");
	for (;;) {
		if (len == cap) {
			if (cap >= max)
				return error_set(e, EFBIG, "%s is larger than %zu bytes", path, max);
			cap = cap * 2 > max ? max : cap * 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb)
				return error_set(e, ENOMEM, "out of memory");
			buf = nb;
		}
		ssize_t k = read(fd, buf + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return error_errno(e, errno, "cannot read %s", path);
		if (k == 0)
			break;
		len += (size_t)k;
	}
	buf[len] = 0;
	*ret_buf = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

char *file_last_line(const char *path, size_t max, const char *const *prefer)
{
	char *txt = NULL, *best = NULL, *last = NULL, *r = NULL;
	struct error tmp = { 0 };

	if (read_file(path, max, &txt, NULL, &tmp) < 0)
		return NULL;
	for (char *l = strtok(txt, "\n"); l; l = strtok(NULL, "\n")) {
		size_t n = strlen(l);
		while (n && (l[n - 1] == ' ' || l[n - 1] == '\r' || l[n - 1] == '\t'))
			l[--n] = '\0';
		if (!n)
			continue;
		last = l;
		for (const char *const *p = prefer; p && *p; p++)
			if (strstr(l, *p))
				best = l;
	}
	if (best || last)
		r = strdup(best ? best : last);
	free(txt);
	return r;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct error *e)
{
	char tmp[PATH_MAX];
	const char *p = buf;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return error_set(e, ENAMETOOLONG, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return error_errno(e, errno, "cannot create %s", tmp);
	while (len > 0) {
		ssize_t k = write(fd, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int err = errno;
			close(fd);
			unlink(tmp);
			return error_errno(e, err, "cannot write %s", tmp);
		}
		p += k;
		len -= (size_t)k;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		int err = errno;
		unlink(tmp);
		return error_errno(e, err, "cannot write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int err = errno;
		unlink(tmp);
		return error_errno(e, err, "cannot rename %s to %s", tmp, path);
	}
	return 0;
}

static long long tb_sum;
static int tb_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)p;
	(void)f;
	if (flag == FTW_F && S_ISREG(st->st_mode))
		tb_sum += (long long)st->st_blocks * 512;
	return 0;
}

long long tree_bytes(const char *path)
{
	tb_sum = 0;
	nftw(path, tb_cb, 32, FTW_PHYS | FTW_MOUNT);
	return tb_sum;
}

int path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int find_in_path(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");

	for (const char *p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin"; *p;) {
		size_t k = strcspn(p, ":");
		if (k > 0 && (size_t)snprintf(out, n, "%.*s/%s", (int)k, p, name) < n && access(out, X_OK) == 0)
			return 0;
		p += k + (p[k] == ':');
	}
	return -ENOENT;
}

int path_join(char *buf, size_t n, const char *a, const char *b)
{
	size_t la = strlen(a);
	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	if ((size_t)snprintf(buf, n, "%.*s/%s", (int)la, a, b) >= n)
		return -ENAMETOOLONG;
	return 0;
}

bool path_is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (!n || strncmp(path, dir, n) != 0 || path[n] != '/' || !path[n + 1])
		return false;
	for (const char *p = path + n; *p; p++)
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == 0))
			return false;
	return true;
}

static uint64_t du_total;

static int du_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F && S_ISREG(sb->st_mode))
		du_total += (uint64_t)sb->st_size;
	return 0;
}

uint64_t dir_bytes(const char *dir)
{
	du_total = 0;
	if (nftw(dir, du_cb, 32, FTW_PHYS | FTW_MOUNT) < 0)
		return 0;
	return du_total;
}

bool name_is_safe(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return false;
	return true;
}

/* Whether path is the mount point of a mount whose source is 'source'. */
static bool path_is_mount_of(const char *path, const char *source)
{
	char real[PATH_MAX], line[4096];
	bool found = false;
	FILE *f;

	if (!realpath(path, real) || !(f = fopen("/proc/self/mountinfo", "re")))
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX], src[256];
		const char *dash = strstr(line, " - ");
		/* id parent major:minor root mountpoint ... - fstype source options */
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 || sscanf(dash + 3, "%*s %255s", src) != 1)
			continue;
		found = !strcmp(mp, real) && !strcmp(src, source);
	}
	fclose(f);
	return found;
}

int mem_dir_make(const char *path, const char *policy, struct error *e)
{
	char opts[64] = "mode=0700";
	int r = mkdir_p(path, 0700, e);

	if (r < 0)
		return r;
	if (policy && !strcmp(policy, "no"))
		return 1;
	if (policy && strcmp(policy, "yes") != 0)
		snprintf(opts, sizeof(opts), "mode=0700,size=%s", policy);
	if (mount("cmt-images", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0)
		return 0;
	return 1;
}

void mem_dir_drop(const char *path)
{
	struct error tmp = { 0 };

	if (!path_exists(path))
		return;
	/* our own tmpfs only (its source name), never something else mounted there */
	if (path_is_mount_of(path, "cmt-images"))
		umount2(path, MNT_DETACH);
	rm_rf(path, &tmp);
}
