/* The monitor: the small process that owns the stdio of a container started
 * by `cmt run` (as conmon does for Podman).  The container's stdin is
 * /dev/null, its stdout and stderr are pipes whose read ends only the monitor
 * holds; the monitor appends what it reads to <root>/logs/ID.log
 * (monitor/logfmt.h) and exits when both pipes reach end-of-file.
 *
 * A monitor listens on <root>/monitors/ID.sock for one-line commands:
 *   ping     -> "ok PID"
 *   drain    -> reads whatever is left in the pipes into the log (the
 *               container is frozen: nothing more can come) and answers
 *               "ok SIZE", the log's size in bytes
 *   release  -> "ok", then exits at once without reading or writing more
 *               (its container moved to another host)
 * Its own diagnostics go to <root>/monitors/ID.err, its pid to ID.pid. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/context.h"
#include "util/error.h"

/* <root>/logs/ID.log ("log"), <root>/monitors/ID.sock, .pid, .err, .runc
 * (runc's own log), .moved (the host the container and its log went to) */
int monitor_path(const char *root, const char *id, const char *what, char *out, size_t n);
/* The pid of the live monitor of container id (it answers on its socket),
 * 0 when there is none. */
pid_t monitor_alive(const char *root, const char *id);
/* The pid of container id's monitor process from its pid file when that
 * process is alive and is a cmt monitor of id, whether it answers or not
 * (a stopped monitor must not make the container look unmonitored). */
pid_t monitor_find(const char *root, const char *id);
int monitor_drain(const char *root, const char *id, uint64_t *ret_size, struct error *e);
int monitor_release(const char *root, const char *id, struct error *e);

/* Starts a monitor for a container just restored here whose stdout and
 * stderr are pipes with the read ends out_r and err_r (the caller closes its
 * copies afterwards); the log must already be at its place. */
int monitor_spawn_adopt(struct ctx *c, const char *id, int out_r, int err_r, pid_t *ret_pid, struct error *e);
/* Starts a daemonized monitor that runs `runc run -d` of bundle as id and
 * waits until the container runs (or failed to start). */
int monitor_spawn_run(struct ctx *c, const char *id, const char *bundle, pid_t *ret_pid, struct error *e);

/* The monitor process itself (`cmt monitor`, started by the two above). */
int monitor_main(struct ctx *c, int argc, char **argv);
