/* A CRIU action script that calls back into cmt at one step of a dump that
 * runc drives (runc owns CRIU's RPC notifications, so cmt cannot hear them
 * itself).  CRIU runs every action script named in its configuration file at
 * each step, with the step's name in CRTOOLS_SCRIPT_ACTION.  The script cmt
 * writes answers every other step at once; at the one it waits for (say
 * "pre-dump": CRIU is up, the tasks are not yet frozen), it writes a request
 * into one FIFO of the work directory and reads the answer from another.  A
 * thread of cmt serves that request with the callback and answers "ok" or
 * "failed"; CRIU goes on only after an "ok" and gives up the dump otherwise
 * (a failing pre-dump script ends it before anything is frozen or written).
 *
 * Used for the late freeze (engine/migrate.c, doc/design.md "Late freeze"):
 * cmt freezes the container when CRIU is about to, not before runc and CRIU
 * have started (about 60-90 ms of frozen time saved on the lab). */
#pragma once
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#include "util/error.h"

typedef int (*criu_action_fn)(void *arg, struct error *e);

struct criu_action {
	char script[PATH_MAX];     /* the script's path, for the configuration file's action-script */
	char req[PATH_MAX], ans[PATH_MAX];
	int req_fd, ans_fd, stop[2];
	pthread_t thread;
	bool running;
	criu_action_fn fn;
	void *arg;
	/* set by the thread, read after criu_action_stop */
	bool called;               /* CRIU reached the step and the callback ran */
	int result;                /* the callback's answer (0 or negative errno) */
	struct error err;          /* its error */
};

/* Writes the script and the FIFOs into work_dir and starts the thread that
 * answers CRIU at 'step' (a CRTOOLS_SCRIPT_ACTION name: letters and '-').
 * Refuses (EINVAL) a work directory whose path would need quoting. */
int criu_action_start(struct criu_action *a, const char *work_dir, const char *step, criu_action_fn fn, void *arg,
		      struct error *e);
/* Ends the thread (after a callback in progress has finished) and removes
 * the FIFOs (the script stays: any later step it answers at once); safe to
 * call twice or after a failed start. */
void criu_action_stop(struct criu_action *a);
