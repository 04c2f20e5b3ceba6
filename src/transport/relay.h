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
#include "transport/psrelay.h"

#define RELAY_CHAN 1
#define RELAY_BUF (256 * 1024)

struct relay_stats {
	uint64_t to_peer;   /* payload bytes read from the socket and sent */
	uint64_t from_peer; /* payload bytes received and written to the socket */
	uint64_t wire_out;  /* bytes sent on the connection (frames) */
	struct psr_stats pages; /* pages of CRIU's answers: sent in full, from the store, zero */
};

/* Pages by content (protocol 1.4, transport/psrelay.h); all zero: bytes as
 * they are, both ways. */
struct relay_opts {
	struct psr_tap *tap; /* source: the socket is CRIU's page server, its answers' pages go as RELAY_PAGES */
	bool pages;          /* destination: RELAY_PAGES frames are accepted */
	int store_fd;        /* destination: the page store they may refer to (-1: none) */
	uint32_t store_pages;
	/* called with the figures so far, at most every RELAY_TICK_MS while
	 * bytes flow (a progress line) */
	void (*tick)(void *arg, const struct relay_stats *st);
	void *tick_arg;
};
#define RELAY_TICK_MS 200

/* Pumps both ways until both directions have ended (0), or the connection
 * or the socket fails, or the peer is silent for lease_ms (negative errno).
 * ro: NULL for bytes as they are. */
int relay_pump(struct proto_conn *c, int sock, unsigned lease_ms, const struct relay_opts *ro, struct relay_stats *st,
	       struct error *e);
/* A TCP socket connected to 127.0.0.1:port (close-on-exec). */
int relay_connect_loopback(int port, struct error *e);
/* A listening TCP socket on 127.0.0.1 with a port of the kernel's choice. */
int relay_listen_loopback(int *ret_port, struct error *e);
