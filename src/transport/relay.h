/* A TCP stream carried through a protocol connection (post-copy's page
 * server relay, see doc/protocol.md "Page relay").  Bytes read from the
 * socket travel as DATA frames on one channel; DATA frames received are
 * written to the socket; RELAY_CLOSE says one side's socket reached its end
 * (the other side half-closes its socket).  KEEPALIVE frames keep the
 * peer's silence bound (the lease) from expiring while the stream is idle.
 * Every descriptor is used non-blocking with bounded queues, so neither
 * direction ever waits for the other. */
#pragma once
#include <stdint.h>

#include "transport/proto.h"

#define RELAY_CHAN 1
#define RELAY_BUF (256 * 1024)

struct relay_stats {
	uint64_t to_peer;   /* payload bytes read from the socket and sent */
	uint64_t from_peer; /* payload bytes received and written to the socket */
};

/* Pumps both ways until both directions have ended (0), or the connection
 * or the socket fails, or the peer is silent for lease_ms (negative errno). */
int relay_pump(struct proto_conn *c, int sock, unsigned lease_ms, struct relay_stats *st, struct error *e);
/* A TCP socket connected to 127.0.0.1:port (close-on-exec). */
int relay_connect_loopback(int port, struct error *e);
/* A listening TCP socket on 127.0.0.1 with a port of the kernel's choice. */
int relay_listen_loopback(int *ret_port, struct error *e);
