/* The destination side of post-copy (see doc/design.md "Post-copy").
 *
 *   relay:  a second `cmt agent --stdio` session, opened by the source with
 *           RELAY, listens on 127.0.0.1 for CRIU's lazy-pages daemon and
 *           carries its TCP stream to the source's page server (which listens
 *           on the source's 127.0.0.1 only) through the remote shell.
 *   daemon: `criu lazy-pages` started before a lazy restore; it pulls the
 *           pages the restored tasks touch and pushes the rest in the
 *           background, and exits once every page has arrived. */
#pragma once
#include <stdbool.h>

#include "drivers/driver.h"
#include "engine/context.h"
#include "transport/proto.h"

/* Answers RELAY on conn (this session does nothing else afterwards). */
int agent_relay(struct ctx *c, struct proto_conn *conn, const struct msg *m, struct error *e);
/* Starts the lazy-pages daemon of rq (connecting to 127.0.0.1:port, the
 * relay) and waits until it listens for the restore; rq->lazy_pid is set. */
int lazy_daemon_start(struct ctx *c, struct restore_req *rq, int port, struct error *e);
/* The relay of migration dir mig_dir records its port there; once the
 * images are in, the daemon can start before RESTORE: it loads the images
 * while the rest arrives, and RESTORE waits for it to listen
 * (lazy_daemon_ready).  Returns the port it was started with, or 0 (not
 * started: the RESTORE starts it). */
int lazy_daemon_start_early(struct ctx *c, struct restore_req *rq, const char *mig_dir);
/* Waits until a daemon started early listens (at once if it said so
 * already, or was not started early); on failure it is gone. */
int lazy_daemon_ready(struct restore_req *rq, struct error *e);
/* What agent_relay records for it. */
void lazy_relay_port_write(const char *root, const char *id, int port);
/* Ends the daemon, if any (rollback). */
void lazy_daemon_kill(struct restore_req *rq);
/* Waits for the daemon to exit once every page has arrived, with KEEPALIVE
 * frames on conn meanwhile; 0 when it succeeded. */
int lazy_daemon_wait(struct restore_req *rq, struct proto_conn *conn, unsigned lease_ms, struct error *e);
