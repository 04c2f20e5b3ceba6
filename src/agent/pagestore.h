/* The destination's page store and the rebuilding of CRIU page images
 * (the receiving half of transport/pages.h).
 *
 * The store is one memfd per migration (a file, <migration>/pagestore, only
 * where memfds are not available): every page a pre-copy round sent,
 * appended in order, so page i is at offset i * 4096.
 * A page image stream then writes images/pages-N.img from new pages, runs
 * of store pages and zero pages (holes), and is verified against the size
 * and XXH3-64 of the source's file. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/proto.h"
#include "util/error.h"

struct page_hash;
struct pagestore {
	int fd;          /* -1 until the first pre-copy stream */
	uint32_t pages;  /* pages held */
	struct page_hash *dig; /* XXH3-128 of each page, computed when it arrived */
	size_t dig_cap;
	char path[4200];
	/* Space for the first page image, allocated while the workload still
	 * runs (after each pre-copy round, as large as the store): building the
	 * image while frozen then writes into memory or blocks that exist. */
	int spare_fd;
	uint64_t spare_bytes;
	char spare_path[4208];
	/* The spare grows in a thread: allocating the workload's size takes
	 * 0.2-1 s of first touches here, and meanwhile the agent reads the
	 * next round (before, the source's round waited for it). */
	pthread_t grow_thread;
	bool growing, grow_ok;
	uint64_t grow_to;
};

/* path: the store's file where memfds are not available; spare_dir: where
 * the spare goes (the images directory: the spare becomes an image there). */
void pagestore_init(struct pagestore *ps, const char *path, const char *spare_dir);
/* The page relay of the same migration (another agent process): opens the
 * store its main session holds, read-only (*ret_fd -1 when there is none:
 * nothing was pre-copied). */
int pagestore_open_published(const char *store_path, int *ret_fd, uint32_t *ret_pages, struct error *e);
/* Closes the store and removes its files (store and spare). */
void pagestore_close(struct pagestore *ps);
/* The same in a thread of its own: freeing a store as large as the workload
 * takes tens of ms per GiB (about 90 for 512 MiB here), which then overlap
 * the restore instead of preceding it.  ps is closed at once (owns nothing);
 * pagestore_close_wait waits for every such thread to have finished. */
void pagestore_close_async(struct pagestore *ps);
void pagestore_close_wait(void);
/* Grows the spare to the store's size (after a pre-copy round; failures
 * only cost speed), in a thread: it returns at once.  A growth still under
 * way is left to finish (the next call grows the rest). */
void pagestore_prealloc(struct pagestore *ps);
/* Waits for a growth under way (the image build and pagestore_close do). */
void pagestore_prealloc_wait(struct pagestore *ps);
/* An AREA_PAGES stream whose STREAM_BEGIN was just read: appends to the
 * store.  Same contract as tree_recv (answers STREAM_OK; *ret_reported when
 * the error was already sent and the stream drained). */
int pagestore_recv(struct proto_conn *c, const struct frame *begin, struct pagestore *ps, bool *ret_reported,
		   struct error *e);
/* An AREA_PAGE_IMAGE stream: creates dir/name (a plain file name, must not
 * exist) from the stream and the store. */
int pageimage_recv(struct proto_conn *c, const struct frame *begin, const char *dir, const char *name,
		   struct pagestore *ps, bool *ret_reported, struct error *e);
/* Whether name is acceptable as an image file name (no '/', not . or ..). */
bool pageimage_name_valid(const char *name);
