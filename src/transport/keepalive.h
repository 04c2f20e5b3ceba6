/* Keepalive: while this side is busy with a long local step (a CRIU dump, a
 * hook) it cannot answer, but the peer bounds every wait by the lease.  A
 * thread sends KEEPALIVE frames every interval meanwhile, so "silent" means
 * "gone", not "busy".  Usage:
 *
 *     struct keepalive ka;
 *     keepalive_start(&ka, &conn, lease_ms / 3);
 *     ... the long step ...
 *     keepalive_stop(&ka);
 *
 * Only KEEPALIVE frames are sent by the thread; proto_send serialises frames
 * with the caller's through conn->send_lock. */
#pragma once
#include <pthread.h>
#include <stdbool.h>

#include "transport/proto.h"

struct keepalive {
	struct proto_conn *conn;
	pthread_t thread;
	pthread_mutex_t lock;      /* conn->send_lock while running */
	pthread_mutex_t mu;        /* guards stop */
	pthread_cond_t cv;
	unsigned interval_ms;
	bool running, stop, failed;
};

/* Starts the thread; does nothing (and returns 0) when interval_ms is 0. */
int keepalive_start(struct keepalive *ka, struct proto_conn *conn, unsigned interval_ms);
/* Stops and joins it; safe to call when not started. */
void keepalive_stop(struct keepalive *ka);
