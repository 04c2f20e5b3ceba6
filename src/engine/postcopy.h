/* Post-copy, source side (see doc/design.md "Post-copy").
 *
 * The building blocks, in the order the engine calls them (a hybrid mode
 * calls the same ones after its pre-copy rounds):
 *
 *   postcopy_check        both hosts can do lazy pages (userfaultfd, pipe size)
 *   postcopy_relay_start  after READY: a relay process opens its own session
 *                         to the agent (RELAY), which listens on the
 *                         destination's 127.0.0.1 for the lazy-pages daemon
 *   postcopy_dump         frozen: the driver's lazy dump (everything but
 *                         memory), CRIU's page server on this host's 127.0.0.1
 *   ... the images travel, RESTORE with RESTORE_LAZY and the relay's port
 *       (the agent restores stopped), COMMIT, DONE: it runs there ...
 *   postcopy_finish       LAZY_DONE: every page arrived; the page server and
 *                         the relay have ended; the source copy may go
 *   postcopy_stop         any failure before COMMIT: the relay and the page
 *                         server end, the source tasks stay frozen (intact)
 *                         for the caller to thaw
 *
 * CRIU's page server is unauthenticated: it never listens on anything but
 * 127.0.0.1, and its stream travels inside the remote shell. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "drivers/driver.h"
#include "engine/checks.h"
#include "engine/context.h"
#include "engine/migrate.h"
#include "transport/pages.h"
#include "transport/psrelay.h"
#include "transport/rsh.h"

struct postcopy {
	bool active;
	int ps_port;        /* CRIU's page server, on this host's 127.0.0.1 */
	int dest_port;      /* the relay's listener, on the destination's 127.0.0.1 */
	pid_t relay_pid;    /* the relay process (its own remote shell session) */
	int report_fd;      /* its reports, one a line: "port N", "bytes UP DOWN", "error MESSAGE" */
	pid_t dump_pid;     /* the lazy dump, serving pages until the destination has them all */
	uint64_t lazy_bytes; /* page-server stream relayed to the destination */
	uint64_t lazy_wire_bytes; /* what it took on the connection (pages by content) */
	struct psr_stats pages; /* its pages: sent in full, from the destination's store, zero */
	int set_fd;         /* a memfd: the destination store's content set, for the relay process */
	double postcopy_ms; /* from running there (DONE) until the last page arrived (LAZY_DONE) */
	char marker[PATH_MAX + 32]; /* <work>/lazy-dump while the lazy dump runs (for recovery) */
};

/* Fails, with the reason and what to do, when this host or the destination
 * cannot do lazy pages.  checks: the results of the pre-migration checks,
 * or NULL (--force): the facts are then gathered here. */
int postcopy_check(struct ctx *c, struct peer *p, const struct check_list *checks, const struct driver *drv,
		   const char *label, struct error *e);
/* estimate: the bytes the lazy transfer will carry (the workload's resident
 * memory), for the progress line the relay process draws on a terminal. */
int postcopy_relay_start(struct postcopy *pc, const struct migrate_opts *o, const char *self, const char *mig_id,
			 uint32_t lease_ms, uint64_t estimate, const struct peer *p, struct error *e);
/* Hybrid, after the pre-copy rounds (before the freeze): tells the relay
 * process what the destination's store holds. */
int postcopy_share_pages(struct postcopy *pc, const struct pageset *set, struct error *e);
int postcopy_dump(struct postcopy *pc, struct ctx *c, const struct driver *drv, struct workload *w, const char *images,
		  const char *work, uint32_t lease_ms, struct error *e);
int postcopy_finish(struct postcopy *pc, struct proto_conn *conn, uint32_t lease_ms, const char *dest,
		    struct error *e);
void postcopy_stop(struct postcopy *pc);
/* After COMMIT without LAZY_DONE: waits for the relay to end by itself (the
 * transfer finished or its connection died), then for the page server. */
void postcopy_drain(struct postcopy *pc);
/* Recovery of a source migration whose cmt died: a lazy dump still running
 * (it keeps the tasks seized) is ended, so that they can be resumed or removed. */
void postcopy_recover(const char *mig_dir);
