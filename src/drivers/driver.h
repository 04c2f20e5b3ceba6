/* Drivers: what is migrated.  A driver knows how to find, freeze, dump,
 * thaw and remove its kind of workload on the source, and how to restore and
 * undo a restore on the destination.  The engine does the rest.
 *   runc.c  a runc container (runc checkpoint / runc restore)
 *   pid.c   a plain process tree (libcriu, freezer cgroup) */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "criu/gate.h"
#include "engine/context.h"
#include "engine/volumes.h"
#include "transport/proto.h"
#include "util/error.h"

/* runc's descriptors.json (the init's stdio as runc recorded it: a JSON array
 * of paths), at most this long */
#define RUNC_DESCRIPTORS_MAX 4096

struct workload {
	enum workload_kind kind;
	char id[256];              /* container ID, or the pid as text */
	char label[300];           /* for messages: "container web1", "process tree 1234 (sleep)" */
	pid_t pid;                 /* init / root process */
	/* runc */
	char bundle[PATH_MAX];
	char rootfs[PATH_MAX];     /* absolute path of the root filesystem */
	char *config_json;         /* text of config.json */
	char descriptors[RUNC_DESCRIPTORS_MAX + 1]; /* runc: the init's stdio as runc recorded it (its state's
	                            * "external_descriptors", JSON), for a staged restore; "" = unknown */
	/* process tree */
	char freeze_cg[PATH_MAX];  /* freezer cgroup cmt created, "" if none */
	char *orig_cgroups;        /* "tid path\n" of each task's freezer cgroup before the freeze */
	bool shell_job;
	bool tcp_established;      /* has established TCP connections: dump/restore with TCP repair */
	bool netlock_skip;         /* runc: CRIU need not lock the network namespace (net_criu_lock_redundant) */
	const char *action_script; /* late freeze: a CRIU action script for the dump (criu/actionscript.h), which
	                            * freezes the workload; NULL: the workload is frozen before the dump */
	bool frozen;
	pid_t monitor_pid;         /* runc: the cmt monitor that owns its stdio (`cmt run`), 0 if none */
	char moved_to[256];        /* destroy after a commit: the destination (for `cmt logs` here) */
	/* runc: bind mounts and their policies (engine/volumes.h), malloc'ed */
	struct volume *vols;
	int nvols;
};

struct restore_req {
	enum workload_kind kind;
	char id[256];
	char images_dir[PATH_MAX];
	char work_dir[PATH_MAX];
	char bundle[PATH_MAX];     /* runc: bundle received under the state root */
	bool shell_job;
	bool tcp_established;
	bool netlock_skip;         /* runc: CRIU need not lock the network namespace (net_criu_lock_redundant) */
	const char *host;          /* this host's name, for messages */
	unsigned timeout_ms;       /* the restore must finish within this (0: the driver's default) */
	bool stdio_pipes;          /* runc: a monitored container; stdio_fds are the write ends of the
	                            * new monitor's pipes {stdout, stderr} */
	int stdio_fds[2];
	pid_t restored_pid;        /* the restored init (set by restore), 0 until then */
	bool lazy;                 /* post-copy: memory comes from a lazy-pages daemon (agent/lazy.c) */
	pid_t lazy_pid;            /* that daemon, while it runs */
	bool lazy_starting;        /* ... started early, not yet said it listens: lazy_ready_fd is its status */
	int lazy_ready_fd;
	pid_t staged_pid;          /* runc: the staged restore (restore_stage) waiting at its gate, 0 = none */
	struct criu_gate gate;     /* ... and the gate's end here */
	char descriptors[RUNC_DESCRIPTORS_MAX + 1]; /* ... runc's descriptors.json, from the source ("" = none) */
};

/* A_FLAGS bits of MSG_RESTORE */
#define RESTORE_SHELL_JOB 1u
#define RESTORE_TCP_ESTABLISHED 2u
#define RESTORE_SHARED_ROOTFS 4u   /* the root filesystem was not sent: root.path (absolute) is shared storage */
#define RESTORE_LAZY 8u            /* post-copy: memory comes from the page server relayed to 127.0.0.1:A_PORT */
#define RESTORE_NETLOCK_SKIP 16u   /* the source found CRIU's network lock redundant (net_criu_lock_redundant) */
#define RESTORE_STAGED 32u         /* (1.5) prepare now, answer STAGED; RESTORE_GO restores (criu/gate.h) */

struct driver {
	const char *name;
	enum workload_kind kind;
	/* source side */
	int (*inspect)(struct ctx *c, const char *name, struct workload *w, struct error *e);
	int (*freeze)(struct ctx *c, struct workload *w, struct error *e);
	/* The dump can freeze the workload itself, late: its CRIU runs
	 * w->action_script when it is about to freeze the tasks (which then
	 * calls freeze); the engine then does not freeze before the dump. */
	bool late_freeze;
	int (*dump)(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, struct error *e);
	/* Optional (NULL: dump only): the same dump in the background, so that
	 * its page images can travel while CRIU writes them; dump_finish waits
	 * for it (bounded) and says how it went, as dump does. */
	int (*dump_start)(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, pid_t *ret_pid,
			  struct error *e);
	int (*dump_finish)(struct ctx *c, struct workload *w, pid_t pid, const char *work_dir, struct error *e);
	/* post-copy (NULL: not supported): dump everything but memory and
	 * start CRIU's lazy page server on 127.0.0.1:port, in the background;
	 * returns once it listens, with the pid to wait for (it ends when the
	 * destination has every page, or its connection ended).  The tasks stay
	 * frozen and are never killed by it. */
	int (*dump_lazy)(struct ctx *c, struct workload *w, const char *images_dir, const char *work_dir, int port,
			 int timeout_ms, pid_t *ret_pid, struct error *e);
	int (*thaw)(struct ctx *c, struct workload *w, struct error *e);
	int (*destroy)(struct ctx *c, struct workload *w, struct error *e);
	/* destination side: restore leaves every task stopped; resume lets it
	 * run (only after the source committed) */
	int (*restore)(struct ctx *c, struct restore_req *rq, pid_t *ret_pid, struct error *e);
	/* Optional (NULL: restore only): the same restore in two halves, the
	 * first before the freeze.  restore_stage starts it and returns while
	 * it waits at its gate (criu/gate.h); restore_go lets CRIU restore and
	 * ends as restore does; restore_cancel ends a staged one that will not
	 * go (what it made is then undo_restore's). */
	int (*restore_stage)(struct ctx *c, struct restore_req *rq, struct error *e);
	int (*restore_go)(struct ctx *c, struct restore_req *rq, pid_t *ret_pid, struct error *e);
	void (*restore_cancel)(struct ctx *c, struct restore_req *rq);
	int (*resume)(struct ctx *c, struct restore_req *rq, struct error *e);
	int (*undo_restore)(struct ctx *c, struct restore_req *rq, struct error *e);
	/* true when a workload with this id already exists on this host */
	bool (*exists)(struct ctx *c, const char *id);
};

extern const struct driver runc_driver;
extern const struct driver pid_driver;

const struct driver *driver_for(enum workload_kind kind);
/* The freezer cgroup the pid driver uses for the tree rooted at pid. */
void pid_freeze_cgroup_path(const struct ctx *c, pid_t pid, char *out, size_t n);
void workload_free(struct workload *w);
/* The msg="..." part of a runc error line (static buffer). */
const char *runc_msg(const char *err);
