#include "agent/pagestore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "transport/pages.h"
#include "util/fault.h"
#include "util/fs.h"
#include "util/log.h"

#define COPY_CHUNK_PAGES 256u


void pagestore_init(struct pagestore *ps, const char *path, const char *spare_dir)
{
	ps->fd = -1;
	ps->pages = 0;
	ps->dig = NULL;
	ps->dig_cap = 0;
	ps->spare_fd = -1;
	ps->spare_bytes = 0;
	ps->growing = false;
	snprintf(ps->path, sizeof(ps->path), "%s", path);
	snprintf(ps->spare_path, sizeof(ps->spare_path), "%s%s", spare_dir, spare_dir[0] ? "/.cmt-spare" : "");
}

/* <store path>.ref: "PID FD" of the agent holding the store, for the same
 * migration's page relay (agent/lazy.c), which serves pages from it. */
static void ref_path(const char *store, char *buf, size_t n)
{
	snprintf(buf, n, "%s.ref", store);
}

static void publish(struct pagestore *ps)
{
	char rp[sizeof(ps->path) + 8], txt[64];
	struct error e = { 0 };

	ref_path(ps->path, rp, sizeof(rp));
	snprintf(txt, sizeof(txt), "%d %d\n", (int)getpid(), ps->fd);
	if (write_file_atomic(rp, txt, strlen(txt), 0600, &e) < 0)
		log_warn("%s (the page relay will not find the page store)", e.msg);
}

int pagestore_open_published(const char *store_path, int *ret_fd, uint32_t *ret_pages, struct error *e)
{
	char rp[PATH_MAX + 8], proc[64], target[PATH_MAX], *txt = NULL;
	int pid = 0, fd = -1, r;
	struct stat sb;

	*ret_fd = -1;
	*ret_pages = 0;
	ref_path(store_path, rp, sizeof(rp));
	if (!path_exists(rp))
		return 0; /* nothing was pre-copied */
	r = read_file(rp, 64, &txt, NULL, e);
	if (r < 0)
		return r;
	r = sscanf(txt, "%d %d", &pid, &fd);
	free(txt);
	if (r != 2 || pid <= 1 || fd < 0)
		return error_set(e, EINVAL, "%s is malformed", rp);
	snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", pid, fd);
	ssize_t l = readlink(proc, target, sizeof(target) - 1);
	if (l < 0)
		return error_errno(e, errno, "the page store of this migration is gone (%s)", proc);
	target[l] = 0;
	/* the agent's memfd, or the file where memfds are not available */
	if (strncmp(target, "/memfd:cmt-pagestore", 20) != 0 && strcmp(target, store_path) != 0)
		return error_set(e, ESTALE, "%s is not the page store of this migration (it is %s)", proc, target);
	int sfd = open(proc, O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return error_errno(e, errno, "cannot open the page store %s", proc);
	if (fstat(sfd, &sb) < 0 || sb.st_size % PAGE_SZ || sb.st_size / PAGE_SZ > UINT32_MAX) {
		close(sfd);
		return error_set(e, EINVAL, "the page store %s has a size of %lld bytes, not whole pages", proc,
				 (long long)sb.st_size);
	}
	*ret_fd = sfd;
	*ret_pages = (uint32_t)(sb.st_size / PAGE_SZ);
	return 0;
}

void pagestore_close(struct pagestore *ps)
{
	pagestore_prealloc_wait(ps);
	if (ps->path[0]) {
		char rp[sizeof(ps->path) + 8];
		ref_path(ps->path, rp, sizeof(rp));
		unlink(rp);
	}
	if (ps->fd >= 0)
		close(ps->fd);
	if (ps->spare_fd >= 0)
		close(ps->spare_fd);
	ps->fd = ps->spare_fd = -1;
	if (ps->path[0])
		unlink(ps->path);
	if (ps->spare_path[0])
		unlink(ps->spare_path);
	free(ps->dig);
	ps->dig = NULL;
	ps->dig_cap = 0;
}

static atomic_int closing; /* pagestore_close_async threads under way */

static void *close_thread(void *arg)
{
	pagestore_close(arg);
	free(arg);
	atomic_fetch_sub(&closing, 1);
	return NULL;
}

void pagestore_close_async(struct pagestore *ps)
{
	struct pagestore *mine = malloc(sizeof(*mine));
	pthread_attr_t at;
	pthread_t t;

	if (!mine) {
		pagestore_close(ps);
		return;
	}
	*mine = *ps; /* the fds, files, digests and a growth under way go with it */
	ps->fd = ps->spare_fd = -1;
	ps->pages = 0;
	ps->dig = NULL;
	ps->dig_cap = 0;
	ps->path[0] = ps->spare_path[0] = '\0';
	ps->growing = false;
	atomic_fetch_add(&closing, 1);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, close_thread, mine) != 0)
		close_thread(mine);
	pthread_attr_destroy(&at);
}

void pagestore_close_wait(void)
{
	for (int i = 0; i < 10000 && atomic_load(&closing) > 0; i++)
		usleep(1000);
}

/* The growth itself (the thread, or inline): it alone touches spare_fd,
 * spare_bytes and grow_to while 'growing'. */
static void *grow(void *arg)
{
	struct pagestore *ps = arg;

	ps->grow_ok = fallocate(ps->spare_fd, 0, (off_t)ps->spare_bytes, (off_t)(ps->grow_to - ps->spare_bytes)) == 0;
	return NULL;
}

static void grow_done(struct pagestore *ps)
{
	if (ps->grow_ok)
		ps->spare_bytes = ps->grow_to;
	ps->growing = false;
}

void pagestore_prealloc_wait(struct pagestore *ps)
{
	if (!ps->growing)
		return;
	pthread_join(ps->grow_thread, NULL);
	grow_done(ps);
}

void pagestore_prealloc(struct pagestore *ps)
{
	uint64_t want = (uint64_t)ps->pages * PAGE_SZ;

	if (ps->growing) {
		if (pthread_tryjoin_np(ps->grow_thread, NULL) != 0)
			return; /* still growing */
		grow_done(ps);
	}
	if (want <= ps->spare_bytes)
		return;
	if (ps->spare_fd < 0) {
		ps->spare_fd = open(ps->spare_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (ps->spare_fd < 0)
			return;
	}
	ps->grow_to = want;
	ps->grow_ok = false;
	ps->growing = true;
	if (pthread_create(&ps->grow_thread, NULL, grow, ps) != 0) {
		grow(ps); /* no thread: here, as before */
		grow_done(ps);
	}
}

bool pageimage_name_valid(const char *name)
{
	return name_is_safe(name, 255);
}

static int write_all(int fd, const uint8_t *p, size_t n, struct error *e, const char *what)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == ENOSPC) {
			error_errno(e, errno, "cannot write %s", what);
			error_hint(e, "the images directory is full (a tmpfs in memory unless the config says "
				      "images_tmpfs = no): free memory or disk there, raise images_tmpfs, or choose another host");
			return -ENOSPC;
		}
		if (k < 0)
			return error_errno(e, errno, "cannot write %s", what);
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* What a stream is building: the store, or one image file. */
struct build {
	struct pagestore *ps;
	int fd;                 /* the file written (the store's fd for AREA_PAGES) */
	const char *what;       /* for messages */
	XXH3_state_t hash;
	uint64_t bytes;
	uint8_t *buf;           /* COPY_CHUNK_PAGES pages, for copies out of the store */
	bool prealloc;          /* fd is the spare: its space exists already */
};

static int sink_raw(void *arg, const uint8_t *pages, uint32_t count, struct error *e)
{
	struct build *b = arg;
	size_t n = (size_t)count * PAGE_SZ;
	int r = write_all(b->fd, pages, n, e, b->what);

	if (r < 0)
		return r;
	for (uint32_t i = 0; i < count; i++)
		pages_digest_page(&b->hash, page_hash(pages + (size_t)i * PAGE_SZ));
	b->bytes += n;
	return 0;
}

static int sink_store_raw(void *arg, const uint8_t *pages, uint32_t count, struct error *e)
{
	struct build *b = arg;
	struct pagestore *ps = b->ps;

	if (ps->pages > UINT32_MAX - count)
		return error_set(e, E2BIG, "the page store is full (%u pages)", ps->pages);
	if (ps->pages + (size_t)count > ps->dig_cap) {
		size_t cap = ps->dig_cap ? ps->dig_cap : 4096;
		while (cap < ps->pages + (size_t)count)
			cap *= 2;
		struct page_hash *d = realloc(ps->dig, cap * sizeof(*d));
		if (!d)
			return error_set(e, ENOMEM, "out of memory for the page store's index");
		ps->dig = d;
		ps->dig_cap = cap;
	}
	int r = write_all(b->fd, pages, (size_t)count * PAGE_SZ, e, b->what);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < count; i++) {
		struct page_hash h = page_hash(pages + (size_t)i * PAGE_SZ);
		ps->dig[ps->pages + i] = h;
		pages_digest_page(&b->hash, h);
	}
	ps->pages += count;
	b->bytes += (size_t)count * PAGE_SZ;
	return 0;
}

/* Copies store pages into the image: in the kernel (copy_file_range) where
 * the filesystems allow, else through a buffer. */
static int copy_pages(struct build *b, uint32_t first, uint32_t count, struct error *e)
{
	off_t in = (off_t)first * PAGE_SZ;
	size_t left = (size_t)count * PAGE_SZ;

	while (left > 0) {
		ssize_t k = copy_file_range(b->ps->fd, &in, b->fd, NULL, left, 0);
		if (k > 0) {
			left -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 || (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP))
			return error_errno(e, k < 0 ? errno : EIO, "cannot copy from the page store %s", b->ps->path);
		/* no in-kernel copy here: through a buffer */
		while (left > 0) {
			size_t n = left < (size_t)COPY_CHUNK_PAGES * PAGE_SZ ? left : (size_t)COPY_CHUNK_PAGES * PAGE_SZ;
			ssize_t q = pread(b->ps->fd, b->buf, n, in);
			if (q < 0 && errno == EINTR)
				continue;
			if (q <= 0)
				return error_errno(e, q < 0 ? errno : EIO, "cannot read the page store %s", b->ps->path);
			int r = write_all(b->fd, b->buf, (size_t)q, e, b->what);
			if (r < 0)
				return r;
			in += q;
			left -= (size_t)q;
		}
	}
	return 0;
}

static int sink_copy(void *arg, uint32_t first, uint32_t count, struct error *e)
{
	struct build *b = arg;

	if (b->ps->fd < 0 || first >= b->ps->pages || count > b->ps->pages - first)
		return error_set(e, EPROTO, "malformed page stream: COPY of pages %u..%llu, the store holds %u", first,
				 (unsigned long long)first + count - 1, b->ps->pages);
	int r = copy_pages(b, first, count, e);
	if (r < 0)
		return r;
	/* verified with the hashes taken when these pages arrived */
	for (uint32_t i = 0; i < count; i++)
		pages_digest_page(&b->hash, b->ps->dig[first + i]);
	b->bytes += (uint64_t)count * PAGE_SZ;
	return 0;
}

static int sink_zero(void *arg, uint32_t count, struct error *e)
{
	struct build *b = arg;

	/* a hole: CRIU reads it back as zeros */
	off_t at = lseek(b->fd, 0, SEEK_CUR);
	if (at < 0 || lseek(b->fd, (off_t)count * PAGE_SZ, SEEK_CUR) < 0)
		return error_errno(e, errno, "cannot seek in %s", b->what);
	/* in the spare the space exists (and holds zeros): give it back */
	if (b->prealloc &&
	    fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, (off_t)count * PAGE_SZ) < 0 &&
	    errno != EOPNOTSUPP)
		return error_errno(e, errno, "cannot make a hole in %s", b->what);
	struct page_hash z = page_hash_zero();
	for (uint32_t i = 0; i < count; i++)
		pages_digest_page(&b->hash, z);
	b->bytes += (uint64_t)count * PAGE_SZ;
	return 0;
}

static int sink_tail(void *arg, const uint8_t *p, uint16_t len, struct error *e)
{
	struct build *b = arg;
	int r = write_all(b->fd, p, len, e, b->what);

	if (r == 0) {
		XXH3_64bits_update(&b->hash, p, len);
		b->bytes += len;
	}
	return r;
}

/* Reads the rest of a stream after a failure; -ECANCELED on ABORT. */
static int drain(struct proto_conn *c, uint32_t chan)
{
	struct error tmp = { 0 };
	struct frame f;

	for (;;) {
		if (proto_recv(c, &f, &tmp) < 0)
			return -tmp.code;
		if (f.type == MSG_ABORT)
			return -ECANCELED;
		if (f.chan != chan)
			return -EPROTO;
		if (f.type == MSG_STREAM_END)
			return 0;
		if (f.type != MSG_DATA)
			return -EPROTO;
	}
}

static int run_stream(struct proto_conn *c, const struct frame *begin, struct page_sink *k, struct build *b,
		      bool *ret_reported, struct error *e)
{
	uint8_t *scratch = malloc(PAGES_BATCH_MAX);
	struct frame f;
	struct msg m;
	int r = 0;

	*ret_reported = false;
	if (!scratch)
		r = error_set(e, ENOMEM, "out of memory for the page stream");
	while (r == 0) {
		r = proto_recv(c, &f, e);
		if (r < 0)
			break;
		if (f.type == MSG_ABORT) {
			r = error_set(e, ECANCELED, "%s aborted the transfer", c->peer);
			break;
		}
		if (f.chan != begin->chan) {
			r = error_set(e, EPROTO, "protocol error: frame for channel %u inside stream %u", f.chan, begin->chan);
			break;
		}
		if (f.type == MSG_DATA) {
			fault_point("mid-stream");
			if (!k->images)
				fault_point("mid-precopy");
			r = pages_decode(f.data, f.len, scratch, k, e);
			if (r < 0) {
				/* say so at once, then stay in step */
				proto_send_error(c, e, c->self);
				*ret_reported = true;
				int d = drain(c, begin->chan);
				if (d == -ECANCELED)
					r = error_set(e, ECANCELED, "%s aborted the transfer", c->peer);
				break;
			}
			continue;
		}
		if (f.type != MSG_STREAM_END) {
			r = error_set(e, EPROTO, "protocol error: %s inside a page stream", msg_type_name(f.type));
			break;
		}
		r = msg_decode(f.type, f.data, f.len, &m, e);
		if (r < 0)
			break;
		uint64_t want_bytes = m.num[A_BYTES], want_hash = m.num[A_HASH], got_hash = XXH3_64bits_digest(&b->hash);
		msg_free(&m);
		if (want_bytes != b->bytes || want_hash != got_hash) {
			r = error_set(e, EBADMSG,
				      "%s failed its integrity check: rebuilt %llu bytes with hash %016llx, the source has "
				      "%llu bytes with hash %016llx",
				      b->what, (unsigned long long)b->bytes, (unsigned long long)got_hash,
				      (unsigned long long)want_bytes, (unsigned long long)want_hash);
			break;
		}
		struct mbuf mb;
		mb_init(&mb);
		mb_u64(&mb, A_BYTES, b->bytes);
		r = proto_send_msg(c, MSG_STREAM_OK, &mb, e);
		mb_free(&mb);
		break;
	}
	free(scratch);
	return r;
}

int pagestore_recv(struct proto_conn *c, const struct frame *begin, struct pagestore *ps, bool *ret_reported,
		   struct error *e)
{
	struct build b = { .ps = ps, .what = "the page store" };
	struct page_sink k = { .raw = sink_store_raw, .arg = &b };
	int r;

	*ret_reported = false;
	if (ps->fd < 0) {
		/* in memory (a memfd): temporary data that no disk needs to see
		 * (on a disk its writeback throttles the dump and the image
		 * builds while the workload is frozen), and that disappears with
		 * the agent whatever happens; a file only where memfds are not
		 * available */
		ps->fd = memfd_create("cmt-pagestore", MFD_CLOEXEC);
		if (ps->fd < 0)
			ps->fd = open(ps->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (ps->fd < 0) {
			r = error_errno(e, errno, "cannot create the page store %s", ps->path);
			if (drain(c, begin->chan) == -ECANCELED)
				return error_set(e, ECANCELED, "%s aborted the transfer", c->peer);
			return r;
		}
		ps->pages = 0;
		publish(ps);
	}
	if (lseek(ps->fd, (off_t)ps->pages * PAGE_SZ, SEEK_SET) < 0)
		return error_errno(e, errno, "cannot seek in the page store %s", ps->path);
	b.fd = ps->fd;
	XXH3_64bits_reset(&b.hash);
	uint32_t before = ps->pages;
	r = run_stream(c, begin, &k, &b, ret_reported, e);
	if (r < 0) {
		/* keep the store consistent with what the source believes it
		 * holds: a failed round counts for nothing */
		ps->pages = before;
		if (ftruncate(ps->fd, (off_t)before * PAGE_SZ) < 0) {
			/* nothing more to do: the next stream seeks to 'before' */
		}
	}
	return r;
}

int pageimage_recv(struct proto_conn *c, const struct frame *begin, const char *dir, const char *name,
		   struct pagestore *ps, bool *ret_reported, struct error *e)
{
	char path[4400];
	struct build b = { .ps = ps };
	struct page_sink k = {
		.raw = sink_raw, .copy = sink_copy, .zero = sink_zero, .tail = sink_tail, .arg = &b, .images = true
	};
	int r;

	*ret_reported = false;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	b.what = path;
	b.buf = malloc((size_t)COPY_CHUNK_PAGES * PAGE_SZ);
	b.fd = -1;
	pagestore_prealloc_wait(ps);
	if (ps->spare_fd >= 0 && ps->spare_bytes > 0 &&
	    renameat2(AT_FDCWD, ps->spare_path, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
		/* the space allocated while the workload ran becomes this image
		 * (sized at the end) */
		b.fd = ps->spare_fd;
		b.prealloc = true;
		ps->spare_fd = -1;
		ps->spare_bytes = 0;
		if (lseek(b.fd, 0, SEEK_SET) < 0) {
			close(b.fd);
			b.fd = -1;
			unlink(path);
		}
	}
	if (b.fd < 0)
		b.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (b.fd < 0 || !b.buf) {
		r = b.buf ? error_errno(e, errno, "cannot create %s", path) : error_set(e, ENOMEM, "out of memory");
		free(b.buf);
		if (b.fd >= 0)
			close(b.fd);
		if (drain(c, begin->chan) == -ECANCELED)
			return error_set(e, ECANCELED, "%s aborted the transfer", c->peer);
		return r;
	}
	XXH3_64bits_reset(&b.hash);
	r = run_stream(c, begin, &k, &b, ret_reported, e);
	/* trailing zero pages are a hole still to be made part of the file */
	if (r == 0 && ftruncate(b.fd, (off_t)b.bytes) < 0)
		r = error_errno(e, errno, "cannot size %s", path);
	if (close(b.fd) < 0 && r == 0)
		r = error_errno(e, errno, "cannot write %s", path);
	free(b.buf);
	return r;
}
