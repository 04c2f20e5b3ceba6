/* The handoff's lease and its last resort: asking the destination what
 * became of a migration whose DONE was lost (QUERY / STATUS).
 *
 * Lease: every wait of either side for the other is bounded by the lease
 * (`--lease`, default HANDOFF_LEASE_MS), sent to the agent in PREPARE.  The
 * agent's restore is bounded by a deadline the source computes from the
 * image size (handoff_restore_deadline_ms).  The destination's copy is
 * restored stopped and runs only once COMMIT arrived, so whichever side
 * gives up first, there is never a second running copy: see doc/design.md. */
#pragma once
#include <stdint.h>

#include "util/error.h"

#define HANDOFF_LEASE_MS 30000
#define HANDOFF_LEASE_MIN_MS 1000
#define HANDOFF_LEASE_MAX_MS 3600000
/* The slowest restore rate the deadline allows for (bytes of images per s). */
#define HANDOFF_SLOWEST_RESTORE_BPS (8ull << 20)

/* lease + the time a restore of image_bytes may take at the slowest rate. */
uint32_t handoff_restore_deadline_ms(uint32_t lease_ms, uint64_t image_bytes);
/* Clamps a lease received from a peer (0 = absent: the default). */
uint32_t handoff_lease_clamp(uint64_t lease_ms);

/* Connects to host (as `cmt migrate` did) and asks its agent about migration
 * mig_id.  Returns an enum outcome (transport/proto.h), or negative with e
 * set when the host cannot be asked. */
int handoff_query(const char *rsh, const char *host, const char *remote_cmt, const char *my_name, const char *mig_id,
		  uint32_t timeout_ms, struct error *e);
const char *outcome_name(int outcome);
