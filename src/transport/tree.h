/* Streaming a directory tree over the wire protocol.
 *
 * The tree travels as a pax archive (libarchive) cut into DATA frames on one
 * channel, between STREAM_BEGIN and STREAM_END; nothing is written to an
 * archive file first.  STREAM_END carries the byte count and the XXH3-64 of
 * the archive bytes; the receiver checks both before answering STREAM_OK. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "transport/proto.h"

struct tree_stats {
	uint64_t files;
	uint64_t payload_bytes; /* file contents read from disk */
	uint64_t wire_bytes;    /* archive bytes sent */
	uint64_t skipped;       /* entries left out as unchanged (tree_send_opts with 'since') */
};

struct manifest;
struct tree_send_opts {
	struct manifest *record; /* record what is sent (path as named in the stream) */
	struct manifest *since;  /* send only entries new or changed since this manifest */
	void (*on_bytes)(uint64_t n, void *arg); /* archive bytes sent, as they go (progress) */
	bool (*skip)(const char *name);          /* entries (as named in the stream) left out */
	void *arg;
};

/* Sends the tree under dir; each entry is named as its path relative to dir,
 * prefixed with 'prefix' (may be "").  Waits for the receiver's STREAM_OK. */
int tree_send(struct proto_conn *c, uint32_t chan, uint32_t area, const char *dir, const char *prefix,
	      struct tree_stats *st, struct error *e);

/* tree_send with a manifest to record into and/or to compare with (see
 * transport/manifest.h).  Deleted entries are not the stream's business:
 * the caller asks the manifest for them. */
int tree_send_opts(struct proto_conn *c, uint32_t chan, uint32_t area, const char *dir, const char *prefix,
		   const struct tree_send_opts *o, struct tree_stats *st, struct error *e);

/* Receives a stream whose STREAM_BEGIN 'begin' was just read, extracting it
 * below dest_dir (which must exist).  Entries can never land outside dest_dir.
 * Answers STREAM_OK.  On failure returns negative; *ret_reported tells whether
 * the error was already sent to the peer as MSG_ERROR (the stream was then
 * drained and the connection is still in sync). */
int tree_recv(struct proto_conn *c, const struct frame *begin, const char *dest_dir, struct tree_stats *st,
	      bool *ret_reported, struct error *e);
