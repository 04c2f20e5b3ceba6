/* Sending CRIU's images to the destination.  The page images
 * (pages-N.img, raw page data) travel as page image streams
 * (transport/pages.h): each page the destination's store already holds (the
 * pre-copy rounds sent it) as a reference, zero pages as runs, the rest as
 * it is.  Every other image file travels in one pax stream. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "transport/pages.h"
#include "util/error.h"

struct image_stats {
	uint64_t files;         /* image files */
	uint64_t bytes;         /* their size on disk */
	uint64_t pages;         /* pages in the page images */
	uint64_t pages_raw;     /* sent as they are */
	uint64_t pages_copied;  /* taken from the destination's store */
	uint64_t pages_zero;    /* zero runs */
	uint64_t wire_bytes;    /* stream payload sent */
};

bool image_is_pages(const char *name);
/* set may be empty (cold mode: nothing stored).  With set NULL (a peer
 * older than protocol 1.1), the page images go in the pax stream too. */
int images_send(struct proto_conn *c, uint32_t chan, const char *dir, const struct pageset *set, struct zpolicy *z,
		void (*on_bytes)(uint64_t n, void *arg), void *arg, struct image_stats *st, struct error *e);

/* While the dump still runs (dumper_pidfd: a pidfd of the process that
 * writes the images), sends the root process's page image (name, e.g.
 * "pages-1.img") as CRIU writes it: what is in the file so far, then what
 * it grows by, to its end once the dumper has ended.  CRIU writes a page
 * image once, front to back, and is done with it when the dumper ends, so
 * this is the same stream images_send would send afterwards (its size and
 * hash are checked on the destination as always).  Returns 0 when it was
 * sent (whatever became of the dump: the caller checks that next), 1 when
 * the dump ended without it (nothing sent), or negative. */
int images_send_following(struct proto_conn *c, uint32_t chan, const char *dir, const char *name, int dumper_pidfd,
			  const struct pageset *set, struct zpolicy *z, void (*on_bytes)(uint64_t n, void *arg), void *arg,
			  struct image_stats *st, struct error *e);
/* images_send without the page image 'sent' (NULL: none), which
 * images_send_following sent; st adds up. */
int images_send_rest(struct proto_conn *c, uint32_t chan, const char *dir, const char *sent, const struct pageset *set,
		     struct zpolicy *z, void (*on_bytes)(uint64_t n, void *arg), void *arg, struct image_stats *st,
		     struct error *e);
