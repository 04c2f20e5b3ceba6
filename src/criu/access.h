/* Access to CRIU: finding a usable binary, its version and self-check,
 * process-tree dump/restore through libcriu, and turning CRIU logs into
 * explanations (explain.c). */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "util/config.h"
#include "util/error.h"

#define CRIU_MIN_VERSION 40200 /* 4.2 */

struct criu_info {
	char path[PATH_MAX];
	char version[32]; /* "4.2.1" */
	int vnum;         /* 40201 */
	const char *source; /* "--criu", "config", "provisioned prefix", "PATH" */
};

/* Finds CRIU: --criu, then the config file, then the provisioned prefix,
 * then PATH; reads its version.  Fails when none is found or it is older
 * than CRIU_MIN_VERSION. */
int criu_find(const struct config *cfg, const char *cli_path, struct criu_info *ci, struct error *e);
/* Runs `criu check`; on failure e explains why. */
int criu_selfcheck(const struct criu_info *ci, struct error *e);

/* `criu cpuinfo dump`: this host's CPU as CRIU describes it (an image of at
 * most 64 KiB, malloc'ed into *ret_img). */
int criu_cpuinfo_dump(const struct criu_info *ci, char **ret_img, size_t *ret_len, struct error *e);
/* `criu cpuinfo check` of another host's image: 1 when this CPU can run
 * what that one ran, 0 when not (CRIU's reason in why), negative on error. */
int criu_cpuinfo_check(const struct criu_info *ci, const void *img, size_t len, char *why, size_t n, struct error *e);

struct criu_tree_opts {
	const char *images_dir;
	const char *work_dir;      /* logs go here */
	const char *freeze_cgroup; /* dump: freezer cgroup holding the tree, or NULL */
	bool shell_job;
	bool leave_running;        /* dump: keep the tasks (frozen if freeze_cgroup was frozen) */
	bool tcp_established;
	const char *config_file;   /* a CRIU configuration file (restore: "leave-stopped"), or NULL */
	int ready_fd;              /* lazy dump (set in config_file): a byte here once the page server listens, or -1 */
};

/* A CRIU configuration file cmt writes for one dump or restore: what libcriu
 * has no setter for, and what runc cannot be asked on its command line.  runc
 * hands CRIU a file named by CRIU_CONFIG_FILE (dump) or by the org.criu.config
 * annotation (restore); libcriu names it in the request. */
struct criu_conf {
	bool leave_stopped;        /* restore: every task waits (SIGSTOP) until cmt resumes it at the commit */
	bool lazy_pages;           /* lazy dump or lazy restore */
	int port;                  /* lazy dump: the page server listens on 127.0.0.1:port (0: runc's --page-server
	                            * names it; CRIU's RPC ignores a lazy page server's address, this file does not) */
	bool loopback;             /* lazy dump: the page server listens on 127.0.0.1 only */
	bool netlock_skip;         /* `network-lock skip`: no iptables lock of the network namespace by CRIU,
	                            * because cmt's own lock holds it or nothing outside can reach it
	                            * (net_criu_lock_redundant, doc/design.md "Network lock") */
	const char *action_script; /* `action-script PATH` (criu/actionscript.h), NULL: none */
};
/* Writes <work_dir>/NAME (criu-dump.conf, criu-restore.conf, ...); out gets its path. */
int criu_write_config(const char *work_dir, const char *name, const struct criu_conf *cc, char *out, size_t n,
		      struct error *e);

/* Dumps the process tree rooted at pid. */
int criu_dump_tree(const struct criu_info *ci, pid_t pid, const struct criu_tree_opts *o, const char *host,
		   struct error *e);
/* Restores a process tree detached from the caller; returns its root pid. */
int criu_restore_tree(const struct criu_info *ci, const struct criu_tree_opts *o, const char *host, pid_t *ret_pid,
		      struct error *e);

/* Reads a CRIU log (dump.log, restore.log, ...) and rewrites e: what went
 * wrong in plain words, the decisive log lines as detail, a hint, and the log
 * path.  'what' is e.g. "dump of container web1". */
void criu_explain(const char *log_path, const char *what, const char *host, struct error *e);
/* Explains a CRIU log text (for tests); returns the index of the matched rule or -1. */
int criu_explain_text(const char *text, const char *what, const char *host, const char *log_path, struct error *e);
