#include "engine/dumpsend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"

#define ROOT_PAGES "pages-1.img" /* CRIU's page image of the tree's first task */

bool dump_and_send_usable(const struct driver *drv, bool post_dump_hook)
{
	return drv->dump_start && drv->dump_finish && !post_dump_hook;
}

int dump_and_send(struct ctx *c, const struct driver *drv, struct workload *w, const char *images, const char *work,
		  struct proto_conn *conn, uint32_t chan, const struct pageset *set, struct zpolicy *z, double *t_dumped,
		  struct image_stats *st, char *sent, size_t sent_len, struct error *e)
{
	struct error de = { 0 };
	pid_t pid = -1;
	int r, dr, pidfd;

	sent[0] = 0;
	memset(st, 0, sizeof(*st));
	r = drv->dump_start(c, w, images, work, &pid, e);
	if (r < 0)
		return r;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec by itself */
	if (pidfd < 0) {
		/* cannot follow it: the dump first, then everything, as before */
		r = drv->dump_finish(c, w, pid, work, e);
		*t_dumped = now_ms();
		return r;
	}
	r = images_send_following(conn, chan, images, ROOT_PAGES, pidfd, set, z, NULL, NULL, st, e);
	/* the dump is awaited whatever became of the stream */
	dr = drv->dump_finish(c, w, pid, work, &de);
	*t_dumped = now_ms();
	close(pidfd);
	if (dr < 0) {
		if (r < 0)
			log_warn("%s (after the checkpoint failed)", e->msg);
		*e = de;
		return dr;
	}
	if (r < 0)
		return r;
	if (r == 0)
		snprintf(sent, sent_len, "%s", ROOT_PAGES);
	return 0;
}
