/* Running other programs (runc, criu helpers, ssh, hooks). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

struct run_opts {
	int timeout_ms;            /* 0 = none; on expiry the child gets SIGKILL */
	const char *stdin_path;    /* NULL = /dev/null */
	char *const *env_add;      /* "K=V" entries added to the environment, NULL-terminated */
	const char *cwd;
	size_t capture_max;        /* bytes of stdout/stderr kept each (0 = 64 KiB) */
	const char *output_path;   /* if set: stdout+stderr go to this file (appended), and
	                            * its tail is returned as r->err; for programs whose
	                            * children may keep the output open (runc restore -d) */
	const int *stdio_fds;      /* if set: {stdout, stderr} of the child; nothing is captured
	                            * (r->out and r->err are empty) */
};

struct run_result {
	int status;        /* exit code, or 128+signal; -1 if not run */
	int timed_out;
	char *out;         /* captured stdout, NUL-terminated (may be truncated) */
	char *err;         /* captured stderr, NUL-terminated */
};

/* Runs argv to completion, capturing its output.  Returns 0 when the program
 * ran (whatever its exit status), negative errno when it could not run. */
int run_cmd(char *const argv[], const struct run_opts *o, struct run_result *r, struct error *e);
void run_result_free(struct run_result *r);
/* A printable, shell-quoted rendering of argv (for messages), static buffer. */
const char *argv_str(char *const argv[]);

/* Starts argv with its stdin/stdout connected to new pipes (stderr is
 * inherited).  *to_child and *from_child are close-on-exec. */
int spawn_piped(char *const argv[], pid_t *ret_pid, int *ret_to_child, int *ret_from_child, struct error *e);
/* Waits for pid; returns exit code or 128+signal. */
int wait_child(pid_t pid);
/* Starts argv in the background in its own process group, stdin on
 * /dev/null, stdout and stderr appended to o->output_path (NULL: /dev/null),
 * with o->cwd and o->env_add.  With ret_status_fd, the child's fd 3 is the
 * write end of a new pipe whose read end (close-on-exec) is returned. */
int spawn_bg(char *const argv[], const struct run_opts *o, int *ret_status_fd, pid_t *ret_pid, struct error *e);
/* Waits at most timeout_ms (-1: forever) for pid to end: 0 with *status
 * (exit code or 128+signal), -ETIMEDOUT (still running), or negative errno. */
int wait_child_ms(pid_t pid, int timeout_ms, int *status);
