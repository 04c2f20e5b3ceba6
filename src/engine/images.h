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
