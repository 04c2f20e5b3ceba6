#include "util/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/fs.h"

int lock_take(const char *root, const char *name, const char *what, struct error *e)
{
	char dir[PATH_MAX], path[PATH_MAX + 300], pidbuf[32] = "";
	int fd, r;

	snprintf(dir, sizeof(dir), "%s/locks", root);
	r = mkdir_p(dir, 0700, e);
	if (r < 0)
		return r;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.lock", dir, name) >= sizeof(path))
		return error_set(e, ENAMETOOLONG, "lock name too long");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return error_errno(e, errno, "cannot open lock %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		ssize_t k = pread(fd, pidbuf, sizeof(pidbuf) - 1, 0);
		pidbuf[k > 0 ? k : 0] = 0;
		pidbuf[strcspn(pidbuf, "\n")] = 0;
		close(fd);
		if (err == EWOULDBLOCK) {
			error_set(e, EBUSY, "another migration of %s is in progress (cmt process %s)", what,
				  pidbuf[0] ? pidbuf : "?");
			error_hint(e, "wait for it to finish; a lock is released as soon as its cmt process exits");
			return -EBUSY;
		}
		return error_errno(e, err, "cannot lock %s", path);
	}
	snprintf(pidbuf, sizeof(pidbuf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pidbuf, strlen(pidbuf), 0) < 0) {
		/* the pid is informational only */
	}
	return fd;
}

void lock_release(int fd)
{
	if (fd >= 0)
		close(fd); /* closing drops the flock */
}
