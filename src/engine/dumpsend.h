/* Pre-copy's dump, its root page image sent while CRIU writes it.
 *
 * After the rounds, the destination's store holds nearly every page: the
 * frozen phase was the dump (CRIU writes all memory into pages-1.img), then
 * the page image stream (the file read and hashed here, each page a
 * reference to the store or sent; the image rebuilt there), one after the
 * other, each 0.2-1 s for 512 MiB.  With a driver that can dump in the
 * background (drivers/driver.h dump_start), the stream follows the file as
 * it grows (engine/images.h images_send_following) and ends when the dump
 * has: the two overlap.  The dump's result is awaited whatever became of the
 * stream; a failed dump is the error (its explanation as always), and a
 * migration whose dump failed never restores (the destination rolls back
 * what it received).  Not with a post-dump hook: it runs before any image
 * travels, as it always did. */
#pragma once
#include <stddef.h>

#include "drivers/driver.h"
#include "engine/images.h"

/* Whether dump_and_send can be used for this driver and hooks. */
bool dump_and_send_usable(const struct driver *drv, bool post_dump_hook);
/* Dumps w (frozen) into images and sends its root page image meanwhile on
 * chan; *t_dumped: when the dump ended (now_ms).  On success 'sent' names
 * the page image already sent ("" when none was), for images_send_rest. */
int dump_and_send(struct ctx *c, const struct driver *drv, struct workload *w, const char *images, const char *work,
		  struct proto_conn *conn, uint32_t chan, const struct pageset *set, struct zpolicy *z, double *t_dumped,
		  struct image_stats *st, char *sent, size_t sent_len, struct error *e);
