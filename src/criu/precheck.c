#include "criu/precheck.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/proc.h"

#define MAX_PROCS 4096

static void comm_of(pid_t pid, char *out, size_t n)
{
	char p[64];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	f = fopen(p, "re");
	if (!f || !fgets(out, (int)n, f))
		snprintf(out, n, "?");
	out[strcspn(out, "\n")] = 0;
}

static bool mount_visible(pid_t pid, int mnt_id)
{
	char p[64], line[1024];
	_cleanup_fclose_ FILE *f = NULL;

	snprintf(p, sizeof(p), "/proc/%d/mountinfo", (int)pid);
	f = fopen(p, "re");
	while (f && fgets(line, sizeof(line), f))
		if (atoi(line) == mnt_id)
			return true;
	return f == NULL; /* cannot tell: do not claim a problem */
}

static int fd_mnt_id(pid_t pid, const char *fd)
{
	char p[96], line[256];
	_cleanup_fclose_ FILE *f = NULL;
	int id = -1;

	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%s", (int)pid, fd);
	f = fopen(p, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "mnt_id: %d", &id) == 1)
			break;
	return id;
}

/* Finds a socket inode in one of /proc/PID/net/<table>; returns the TCP
 * state (hex) for tcp tables, 0 when found elsewhere, -1 when absent. */
static int sock_lookup(pid_t pid, const char *table, unsigned long ino)
{
	char p[96], line[512];
	_cleanup_fclose_ FILE *f = NULL;
	bool tcp = !strncmp(table, "tcp", 3);
	int col = !strcmp(table, "unix") ? 6 : !strcmp(table, "netlink") ? 9 : !strcmp(table, "packet") ? 8 : 9;

	snprintf(p, sizeof(p), "/proc/%d/net/%s", (int)pid, table);
	f = fopen(p, "re");
	if (!f || !fgets(line, sizeof(line), f)) /* header */
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, " \t\n", &save);
		int i = 0, st = 0;
		for (; tok; tok = strtok_r(NULL, " \t\n", &save), i++) {
			if (tcp && i == 3)
				st = (int)strtol(tok, NULL, 16);
			if (i == col) {
				if (strtoul(tok, NULL, 10) == ino)
					return tcp ? st : 0;
				break;
			}
		}
	}
	return -1;
}

static void add_item(char items[][320], int *n, const char *s)
{
	if (*n < PRECHECK_MAX_ITEMS)
		snprintf(items[*n], 320, "%s", s);
	(*n)++;
}

void criu_precheck(pid_t root, struct precheck *pc)
{
	pid_t *pids = calloc(MAX_PROCS, sizeof(pid_t));
	static const char *tables[] = { "unix", "udp", "udp6", "raw", "raw6", "packet", "netlink", "udplite", "udplite6" };

	memset(pc, 0, sizeof(*pc));
	if (!pids)
		return;
	pc->nproc = proc_tree(root, pids, MAX_PROCS);
	for (int i = 0; i < pc->nproc; i++) {
		pid_t pid = pids[i];
		char comm[32], path[64], status[256];
		DIR *d;
		struct dirent *de;
		long long rss = proc_rss_kib(pid);

		if (rss > 0)
			pc->rss_kib += rss;
		comm_of(pid, comm, sizeof(comm));
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		{
			_cleanup_fclose_ FILE *f = fopen(path, "re");
			int tracer = 0;
			while (f && fgets(status, sizeof(status), f))
				if (sscanf(status, "TracerPid: %d", &tracer) == 1)
					break;
			if (tracer > 0 && pc->n_traced < PRECHECK_MAX_ITEMS)
				snprintf(pc->traced[pc->n_traced++], 160, "process %d (%s) is traced by process %d", (int)pid,
					 comm, tracer);
		}
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
		d = opendir(path);
		while (d && (de = readdir(d))) {
			char lp[96], target[512], item[400];
			ssize_t k;
			if (de->d_name[0] == '.')
				continue;
			snprintf(lp, sizeof(lp), "/proc/%d/fd/%s", (int)pid, de->d_name);
			k = readlink(lp, target, sizeof(target) - 1);
			if (k <= 0)
				continue;
			target[k] = 0;
			if (target[0] == '/') {
				int mid = fd_mnt_id(pid, de->d_name);
				if (mid >= 0 && !mount_visible(pid, mid)) {
					snprintf(item, sizeof(item), "fd %s of process %d (%s) is %s", de->d_name, (int)pid, comm,
						 target);
					add_item(pc->external, &pc->n_external, item);
				}
			} else if (!strncmp(target, "socket:[", 8)) {
				unsigned long ino = strtoul(target + 8, NULL, 10);
				int st = sock_lookup(pid, "tcp", ino);
				if (st < 0)
					st = sock_lookup(pid, "tcp6", ino);
				if (st == 1)
					pc->tcp_established++;
				else if (st == 0x0A)
					pc->tcp_listen++;
				if (st >= 0)
					continue;
				bool found = false;
				for (size_t t = 0; !found && t < sizeof(tables) / sizeof(tables[0]); t++)
					found = sock_lookup(pid, tables[t], ino) >= 0;
				if (!found && pc->n_unknown_sockets < PRECHECK_MAX_ITEMS)
					snprintf(pc->unknown_sockets[pc->n_unknown_sockets++], 160,
						 "fd %s of process %d (%s) is a socket of an unknown kind", de->d_name, (int)pid,
						 comm);
			}
		}
		if (d)
			closedir(d);
	}
	free(pids);
}
