/* Reading a running workload's memory for pre-copy, without dirty-page
 * tracking (see "Pre-copy" in doc/design.md).
 *
 * A round walks every process of the tree, and in each mapping CRIU would
 * dump the pages the kernel reports present and anonymous
 * (/proc/PID/pagemap), reads them through /proc/PID/mem while the workload
 * runs, and sends each page whose content (XXH3-128) the destination does
 * not hold yet.  Zero pages are never sent (CRIU dumps them as zero runs,
 * which travel as such).  A page torn by a concurrent write is harmless: its
 * content simply never matches a dumped page. */
#pragma once
#include <stdint.h>
#include <sys/types.h>

#include "transport/pages.h"
#include "util/error.h"

struct mem_round {
	uint64_t scanned;    /* present pages read */
	uint64_t sent;       /* new content, sent */
	uint64_t unchanged;  /* content the destination already holds */
	uint64_t zero;       /* zero pages, not sent */
	uint64_t unreadable; /* present pages that could not be read (the mapping changed meanwhile) */
	uint64_t processes;
};

/* The processes of the tree rooted at root (root first); at most max.
 * Returns the count or negative. */
int memscan_tree(pid_t root, pid_t *out, int max, struct error *e);
/* Present pages of the tree that a round would read (for progress). */
uint64_t memscan_estimate(pid_t root);
/* One round into w (an open AREA_PAGES stream); set is updated with what
 * was sent. */
int memscan_round(pid_t root, struct pageset *set, struct page_writer *w, struct mem_round *st, struct error *e);
