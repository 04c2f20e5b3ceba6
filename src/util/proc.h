/* Reading processes from /proc. */
#pragma once
#include <sys/types.h>

/* pid and all its descendants (processes, not threads), parents first;
 * at most max entries.  Returns the count (>= 1). */
int proc_tree(pid_t root, pid_t *out, int max);
/* The parent pid, or -1. */
pid_t proc_parent(pid_t pid);
/* VmRSS in KiB, or -1. */
long long proc_rss_kib(pid_t pid);
