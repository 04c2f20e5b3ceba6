#include "util/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

/* The parent of a process, from /proc/PID/stat (field 4, after the
 * parenthesised command name, which may itself contain ')' or spaces). */
static pid_t parent_of(const char *pid_dir)
{
	char path[300], buf[512];
	_cleanup_close_ int fd = -1;
	ssize_t k;
	char *rp;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	k = read(fd, buf, sizeof(buf) - 1);
	if (k <= 0)
		return -1;
	buf[k] = 0;
	rp = strrchr(buf, ')');
	if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* Collects pid and all its descendants (processes, not threads).  Kernels
 * without CONFIG_PROC_CHILDREN lack /proc/PID/task/TID/children, so the
 * tree is rebuilt from every process's parent. */
int proc_tree(pid_t root, pid_t *out, int max)
{
	pid_t(*pairs)[2] = NULL;
	size_t np = 0, cap = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	out[n++] = root;
	if (!d)
		return n;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid_t pp = parent_of(de->d_name);
		if (pp <= 0)
			continue;
		if (np == cap) {
			cap = cap ? cap * 2 : 256;
			void *nb = realloc(pairs, cap * sizeof(*pairs));
			if (!nb)
				break;
			pairs = nb;
		}
		pairs[np][0] = (pid_t)atoi(de->d_name);
		pairs[np][1] = pp;
		np++;
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		for (size_t k = 0; k < np && n < max; k++)
			if (pairs[k][1] == out[i] && pairs[k][0] != root)
				out[n++] = pairs[k][0];
	free(pairs);
	return n;
}

pid_t proc_parent(pid_t pid)
{
	char b[32];

	snprintf(b, sizeof(b), "%d", (int)pid);
	return parent_of(b);
}

long long proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	_cleanup_fclose_ FILE *f = NULL;
	long long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld", &v) == 1)
			break;
	return v;
}
