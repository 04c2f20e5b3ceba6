/* What CRIU would refuse in a particular workload, found before freezing it:
 * file descriptors on files outside the workload's mounts, sockets of kinds
 * CRIU cannot dump, a tracer attached, and the memory it holds. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#define PRECHECK_MAX_ITEMS 16

struct precheck {
	int nproc;
	long long rss_kib;
	int tcp_established;           /* connected TCP sockets (need TCP repair) */
	int tcp_listen;
	int n_external;                /* fds on files outside the workload's mounts */
	char external[PRECHECK_MAX_ITEMS][320];
	int n_traced;
	char traced[PRECHECK_MAX_ITEMS][160];
	int n_unknown_sockets;
	char unknown_sockets[PRECHECK_MAX_ITEMS][160];
};

/* Scans the tree rooted at pid (as seen in this host's /proc). */
void criu_precheck(pid_t root, struct precheck *pc);
