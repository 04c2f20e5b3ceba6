/* Fault injection, for cmt's own fault-injection tests (tests/integration/
 * t60-faults.sh).  A host's state root may hold a file named `faults`:
 *
 *     # SIDE POINT ACTION [ARG]
 *     source after-restored cut
 *     agent  before-restore stall 6000
 *
 * SIDE is `source` (cmt migrate) or `agent` (cmt agent); POINT (or
 * POINT@PHASE, see fault_set_phase) names a step
 * of the handoff (fault_point() calls; `cmt` lists them in
 * doc/design.md, "Fault injection"); ACTION is one of
 *   kill     SIGKILL this process (a crash)
 *   exit     _exit(3) without cleaning up
 *   stall N  sleep N ms (a slow or hung host)
 *   cut      close this side's connection to the peer (a network cut)
 *   corrupt  flip a byte in the next DATA frame this side sends
 * A file is used, not the environment, because the agent is started through
 * ssh.  The first fault that fires removes the file, so a crash is not
 * repeated by the `cmt recover` that follows it.  Without the file this
 * module costs one stat() per process. */
#pragma once
#include <stdbool.h>

/* Reads <root>/faults for this side ("source" / "agent"). */
void fault_init(const char *root, const char *side);
/* The connection's fds, for `cut`. */
void fault_set_conn(int rfd, int wfd);
/* What the process is doing ("frozen" while the workload is): a fault
 * named POINT@PHASE fires only then (e.g. mid-stream@frozen: in a stream
 * sent while the workload is frozen, not in the pre-copy). */
void fault_set_phase(const char *phase);
/* Fires the fault configured for this point, if any. */
void fault_point(const char *point);
/* true once after `corrupt` fired: the next DATA frame must be damaged. */
bool fault_take_corrupt(void);
