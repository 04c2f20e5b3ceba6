/* The restore gate: runc's restore started ahead, its CRIU held back
 * (doc/design.md "The staged restore").
 *
 * Before the workload freezes, the agent starts `runc restore` with
 * `--criu <work>/criu-gate`, a link to cmt itself.  Run under that name, cmt
 * is the gate (criu_gate_main): runc runs it first for its CRIU version
 * check, then for the restore, each time as `criu-gate swrk FD` with runc's
 * request waiting on the socket FD.  The gate peeks at the request's type
 * (the first field of the CriuReq protobuf): any other request goes to the
 * real CRIU at once (exec, same process: runc sees no difference); a RESTORE
 * waits until the agent writes "go" into the gate's FIFO, after the images
 * are complete, and then becomes CRIU.  So runc's own start, its version
 * check and its preparation run while the workload still runs; only CRIU's
 * restore is in the frozen window.  Anything but "go" (the agent closes the
 * FIFO, or exits) makes the gate exit 1: runc's restore fails before CRIU
 * ran and runc removes what it had made. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

#define CRIU_GATE_NAME "criu-gate"
#define CRIU_REQ_RESTORE 2 /* criu_req_type RESTORE (CRIU's rpc.proto) */

/* The gate's end, in the agent. */
struct criu_gate {
	char link[PATH_MAX];  /* <work>/criu-gate -> cmt: runc's --criu */
	char fifo[PATH_MAX];  /* <work>/criu-gate.fifo */
	bool made;            /* criu_gate_make succeeded and criu_gate_close has not run */
	int fd;               /* the FIFO, read-write (the gate never sees EOF while it is open) */
	char env[3][PATH_MAX + 32]; /* CMT_GATE_CRIU=, CMT_GATE_FIFO=, CMT_GATE_PID= */
	char *envp[4];        /* the above, NULL-terminated, for run_opts.env_add */
};

/* The type of the CriuReq a buffer begins with (field 1, a varint), or -1
 * when it does not say (not protobuf, cut short, no field 1 among the
 * fields it holds).  Pure, bounded by n. */
int criu_req_type_peek(const uint8_t *buf, size_t n);

/* Makes the link, the FIFO and the environment in work_dir for a gate
 * that runs criu_path; g->fd stays open until criu_gate_close. */
int criu_gate_make(struct criu_gate *g, const char *work_dir, const char *criu_path, struct error *e);
/* Lets a held (or future) RESTORE go on to CRIU. */
int criu_gate_open(struct criu_gate *g, struct error *e);
/* Closes the agent's end (a gate still waiting gives up) and removes the
 * link and the FIFO.  Idempotent; nothing for a zeroed struct. */
void criu_gate_close(struct criu_gate *g);
/* Whether argv[0] names the gate (main() dispatches on it). */
bool criu_gate_invoked(const char *argv0);
/* The gate's program: never returns when it execs CRIU; 1 when the agent
 * gave up, 127 when it is not set up (no CMT_GATE_CRIU). */
int criu_gate_main(int argc, char **argv);
