#include "engine/images.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/tree.h"
#include "util/cleanup.h"
#include "util/log.h"

#define READ_PAGES 256u

bool image_is_pages(const char *name)
{
	const char *b = strrchr(name, '/');
	size_t n;

	b = b ? b + 1 : name;
	n = strlen(b);
	return n > 10 && !strncmp(b, "pages-", 6) && !strcmp(b + n - 4, ".img");
}

/* Following a page image the dumper still writes: waits until the file
 * grew (inotify) or the dumper ended.  Returns false once it ended (what is
 * in the file then is all of it). */
static bool wait_growth(int ifd, int pidfd)
{
	struct pollfd pf[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = ifd, .events = POLLIN } };
	char ev[4096];
	int k;

	do
		k = poll(pf, 2, 1000); /* (a timeout only reads again) */
	while (k < 0 && errno == EINTR);
	if (k < 0 || (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return false;
	while (read(ifd, ev, sizeof(ev)) > 0)
		;
	return true;
}

static int send_page_image(struct proto_conn *c, uint32_t chan, const char *dir, const char *name,
			   const struct pageset *set, struct zpolicy *z, void (*on_bytes)(uint64_t, void *), void *arg,
			   int follow_pidfd, struct image_stats *st, struct error *e)
{
	char path[4400];
	struct page_writer w;
	_cleanup_close_ int fd = -1;
	uint8_t *buf = NULL;
	struct page_hash hs[READ_PAGES];
	int64_t idx[READ_PAGES];
	bool zero[READ_PAGES];
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* following: watched before the first read, so no growth is missed */
	_cleanup_close_ int ifd = -1;
	bool following = follow_pidfd >= 0;
	if (following) {
		ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (ifd < 0 || inotify_add_watch(ifd, path, IN_MODIFY | IN_CLOSE_WRITE) < 0)
			return error_errno(e, errno, "cannot watch the image %s", path);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return error_errno(e, errno, "cannot read the image %s", path);
	double t0 = now_ms(), t_read = 0;
	r = pw_begin(&w, c, chan, AREA_PAGE_IMAGE, name, z, e);
	w.on_bytes = on_bytes;
	w.arg = arg;
	if (r == 0 && !(buf = malloc((size_t)READ_PAGES * PAGE_SZ)))
		r = error_set(e, ENOMEM, "out of memory");
	while (r == 0) {
		uint8_t *room;
		uint32_t n;
		/* read straight into the batch; when every page goes as it is
		 * (cold mode), nothing is copied again */
		r = pw_raw_room(&w, READ_PAGES, &room, &n);
		if (r < 0)
			break;
		double tr = now_ms();
		ssize_t k = read(fd, room, (size_t)n * PAGE_SZ);
		t_read += now_ms() - tr;
		if (k < 0 && errno == EINTR) {
			pw_raw_commit(&w, 0);
			continue;
		}
		if (k < 0) {
			r = error_errno(e, errno, "cannot read the image %s", path);
			break;
		}
		if (following && k % PAGE_SZ) {
			/* a page still being written: it comes with a later read */
			if (lseek(fd, -(off_t)(k % PAGE_SZ), SEEK_CUR) < 0) {
				r = error_errno(e, errno, "cannot read the image %s", path);
				break;
			}
			k -= k % PAGE_SZ;
		}
		if (k == 0 && following) {
			pw_raw_commit(&w, 0);
			following = wait_growth(ifd, follow_pidfd);
			continue;
		}
		if (k == 0) {
			pw_raw_commit(&w, 0);
			break;
		}
		st->bytes += (uint64_t)k;
		size_t full = (size_t)k / PAGE_SZ, tail = (size_t)k % PAGE_SZ;
		bool all_raw = true;
		for (size_t i = 0; i < full; i++) {
			const uint8_t *pg = room + i * PAGE_SZ;
			zero[i] = page_is_zero(pg);
			if (!zero[i])
				hs[i] = page_hash(pg);
			idx[i] = zero[i] ? -1 : pageset_find(set, hs[i]);
			all_raw &= !zero[i] && idx[i] < 0;
		}
		if (all_raw) {
			st->pages += full;
			st->pages_raw += full;
			r = pw_raw_commit_hashed(&w, (uint32_t)full, hs);
		} else {
			/* references and zero runs go between the pages: the new
			 * pages (only they are sent as they are) and the tail out
			 * of the batch first */
			size_t nraw = 0;
			for (size_t i = 0; i < full; i++)
				if (!zero[i] && idx[i] < 0)
					memcpy(buf + nraw++ * PAGE_SZ, room + i * PAGE_SZ, PAGE_SZ);
			if (tail)
				memcpy(buf + full * PAGE_SZ, room + full * PAGE_SZ, tail);
			pw_raw_commit(&w, 0);
			nraw = 0;
			for (size_t i = 0; r == 0 && i < full; i++) {
				st->pages++;
				if (zero[i]) {
					st->pages_zero++;
					r = pw_zero(&w);
				} else if (idx[i] >= 0) {
					st->pages_copied++;
					r = pw_copy(&w, (uint32_t)idx[i], hs[i]);
				} else {
					uint8_t *one;
					uint32_t got;
					st->pages_raw++;
					r = pw_raw_room(&w, 1, &one, &got);
					if (r == 0) {
						memcpy(one, buf + nraw++ * PAGE_SZ, PAGE_SZ);
						r = pw_raw_commit_hashed(&w, 1, &hs[i]);
					}
				}
			}
			room = buf;
		}
		if (r == 0 && tail) {
			/* CRIU's page images are whole pages; anything else is the
			 * file's end (a short read in the middle would be too) */
			uint8_t t[PAGE_SZ];
			struct stat sb;
			memcpy(t, room + full * PAGE_SZ, tail); /* past what the batch holds */
			if (fstat(fd, &sb) < 0 || (uint64_t)lseek(fd, 0, SEEK_CUR) != (uint64_t)sb.st_size)
				r = error_set(e, EIO, "the image %s changed while it was read", path);
			else
				r = pw_tail(&w, t, (uint16_t)tail);
		}
	}
	double t_sent = now_ms();
	if (r == 0)
		r = pw_end(&w);
	log_debug("page image %s: %.0f ms (reading it %.0f ms, until the last batch %.0f ms, the destination's "
		  "check %.0f ms), %llu bytes on the wire%s",
		  name, now_ms() - t0, t_read, t_sent - t0, now_ms() - t_sent, (unsigned long long)w.wire_bytes,
		  follow_pidfd >= 0 ? ", sent while the dump wrote it" : "");
	st->wire_bytes += w.wire_bytes;
	pw_free(&w);
	free(buf);
	return r;
}

static bool skip_pages(const char *name)
{
	return image_is_pages(name);
}

int images_send_following(struct proto_conn *c, uint32_t chan, const char *dir, const char *name, int dumper_pidfd,
			  const struct pageset *set, struct zpolicy *z, void (*on_bytes)(uint64_t n, void *arg), void *arg,
			  struct image_stats *st, struct error *e)
{
	char path[4400];
	_cleanup_close_ int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int r;

	memset(st, 0, sizeof(*st));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* until CRIU creates it (it dumps the other images of the task first) */
	if (ifd < 0 || inotify_add_watch(ifd, dir, IN_CREATE) < 0)
		return error_errno(e, errno, "cannot watch the images directory %s", dir);
	bool running = true;
	while (running && access(path, F_OK) < 0)
		running = wait_growth(ifd, dumper_pidfd);
	if (access(path, F_OK) < 0)
		return 1;
	st->files++;
	r = send_page_image(c, chan, dir, name, set, z, on_bytes, arg, running ? dumper_pidfd : -1, st, e);
	return r < 0 ? r : 0;
}

int images_send(struct proto_conn *c, uint32_t chan, const char *dir, const struct pageset *set, struct zpolicy *z,
		void (*on_bytes)(uint64_t n, void *arg), void *arg, struct image_stats *st, struct error *e)
{
	memset(st, 0, sizeof(*st));
	return images_send_rest(c, chan, dir, NULL, set, z, on_bytes, arg, st, e);
}

int images_send_rest(struct proto_conn *c, uint32_t chan, const char *dir, const char *sent, const struct pageset *set,
		     struct zpolicy *z, void (*on_bytes)(uint64_t n, void *arg), void *arg, struct image_stats *st,
		     struct error *e)
{
	struct tree_send_opts to = { .on_bytes = on_bytes, .arg = arg, .skip = set ? skip_pages : NULL };
	struct tree_stats ts;
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	struct pimg { char name[256]; off_t size; } *list = NULL;
	size_t n = 0, cap = 0;

	if (!d)
		return error_errno(e, errno, "cannot read the images directory %s", dir);
	while (set && (de = readdir(d))) {
		struct stat sb;
		if (de->d_type != DT_REG || !image_is_pages(de->d_name) || strlen(de->d_name) >= 256 ||
		    (sent && !strcmp(de->d_name, sent)) || fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			void *nl = realloc(list, cap * sizeof(*list));
			if (!nl) {
				r = error_set(e, ENOMEM, "out of memory");
				break;
			}
			list = nl;
		}
		snprintf(list[n].name, sizeof(list[n].name), "%s", de->d_name);
		list[n++].size = sb.st_size;
	}
	closedir(d);
	/* the largest first: it gets the space the destination allocated
	 * while the workload ran (agent/pagestore.h) */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && list[j].size > list[j - 1].size; j--) {
			struct pimg t = list[j];
			list[j] = list[j - 1];
			list[j - 1] = t;
		}
	for (size_t i = 0; r == 0 && i < n; i++) {
		st->files++;
		r = send_page_image(c, chan, dir, list[i].name, set, z, on_bytes, arg, -1, st, e);
	}
	free(list);
	if (r < 0)
		return r;
	r = tree_send_opts(c, chan, AREA_IMAGES, dir, "", &to, &ts, e);
	if (r < 0)
		return r;
	st->files += ts.files;
	st->bytes += ts.payload_bytes;
	st->wire_bytes += ts.wire_bytes;
	return 0;
}
