/* Unit tests of tree streaming (src/transport/tree.c): a directory tree sent
 * with tree_send by a forked child and received with tree_recv over a
 * socketpair; then hostile streams built by hand (path escapes, symlink
 * tricks, a wrong STREAM_END hash, garbage, ABORT, a foreign channel). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "tap.h"
#include "transport/tree.h"
#include "util/fs.h"

#define MiB (1024 * 1024)
#define BIG_SIZE (700 * 1024 + 123)
#define SPARSE_SIZE (8 * MiB)

static char base[PATH_MAX]; /* the test's temp dir: nothing may appear here but what the test makes */
static char src[PATH_MAX + 8];

static void path(char *buf, size_t n, const char *a, const char *b)
{
	if ((size_t)snprintf(buf, n, "%s/%s", a, b) >= n)
		BAIL_OUT("path too long");
}

static void put_file(const char *dir, const char *name, const void *data, size_t n, mode_t mode)
{
	char p[PATH_MAX * 2];
	int fd;

	path(p, sizeof(p), dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		BAIL_OUT("open %s: %s", p, strerror(errno));
	if (n && write(fd, data, n) != (ssize_t)n)
		BAIL_OUT("write %s: %s", p, strerror(errno));
	if (fchmod(fd, mode) < 0)
		BAIL_OUT("chmod %s: %s", p, strerror(errno));
	close(fd);
}

static void make_dir(const char *dir, const char *name, mode_t mode)
{
	char p[PATH_MAX * 2];

	path(p, sizeof(p), dir, name);
	if (mkdir(p, mode) < 0 || chmod(p, mode) < 0)
		BAIL_OUT("mkdir %s: %s", p, strerror(errno));
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);
	uint32_t x = seed * 2654435761u + 1;

	if (!b)
		BAIL_OUT("out of memory");
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	return b;
}

/* Reads a whole file into a malloc'd buffer; returns its size or -1. */
static ssize_t slurp(const char *p, uint8_t **out)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint8_t *b;
	size_t got = 0;

	*out = NULL;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	b = malloc((size_t)st.st_size + 1);
	while (b && got < (size_t)st.st_size) {
		ssize_t k = read(fd, b + got, (size_t)st.st_size - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	*out = b;
	return (ssize_t)got;
}

static int file_is(const char *dir, const char *name, const void *want, size_t n)
{
	char p[PATH_MAX * 2];
	uint8_t *b;
	ssize_t k;
	int same;

	path(p, sizeof(p), dir, name);
	k = slurp(p, &b);
	same = k == (ssize_t)n && (n == 0 || memcmp(b, want, n) == 0);
	free(b);
	return same;
}

static mode_t mode_of(const char *dir, const char *name)
{
	char p[PATH_MAX * 2];
	struct stat st;

	path(p, sizeof(p), dir, name);
	if (lstat(p, &st) < 0)
		return (mode_t)-1;
	return st.st_mode;
}

/* The names directly in base, sorted, joined by ','. */
static void list_base(char *out, size_t n)
{
	struct dirent **ents;
	int k = scandir(base, &ents, NULL, alphasort);
	size_t l = 0;

	out[0] = 0;
	for (int i = 0; i < k; i++) {
		if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, ".."))
			l += (size_t)snprintf(out + l, l < n ? n - l : 0, "%s,", ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
}

/* --- building the source tree --------------------------------------------------- */

static const struct timespec a_mtime = { 1234567890, 0 };
static const struct timespec dir_mtime = { 1111111111, 0 };

static void build_source(void)
{
	char p[PATH_MAX * 2], q[PATH_MAX * 2];
	uint8_t *big = pattern(BIG_SIZE, 1);
	int fd;

	path(src, sizeof(src), base, "src");
	if (mkdir(src, 0755) < 0)
		BAIL_OUT("mkdir %s: %s", src, strerror(errno));
	put_file(src, "a.txt", "hello world\n", 12, 0640);
	make_dir(src, "sub", 0750);
	put_file(src, "sub/big.bin", big, BIG_SIZE, 0600);
	make_dir(src, "sub/deeper", 0700);
	put_file(src, "sub/deeper/x.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	put_file(src, "empty", "", 0, 0444);
	make_dir(src, "emptydir", 0711);
	put_file(src, "sub/h1", "linked content\n", 15, 0604);
	path(p, sizeof(p), src, "sub/h1");
	path(q, sizeof(q), src, "h2");
	if (link(p, q) < 0)
		BAIL_OUT("link: %s", strerror(errno));
	path(p, sizeof(p), src, "link");
	if (symlink("a.txt", p) < 0)
		BAIL_OUT("symlink: %s", strerror(errno));
	path(p, sizeof(p), src, "sub/dangling");
	if (symlink("../nowhere/at/all", p) < 0)
		BAIL_OUT("symlink: %s", strerror(errno));
	path(p, sizeof(p), src, "fifo");
	if (mkfifo(p, 0620) < 0 || chmod(p, 0620) < 0)
		BAIL_OUT("mkfifo: %s", strerror(errno));

	/* sparse: 8 MiB with three small extents */
	path(p, sizeof(p), src, "sparse");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, SPARSE_SIZE) < 0 || pwrite(fd, "start", 5, 0) != 5 ||
	    pwrite(fd, "middle", 6, 4 * MiB) != 6 || pwrite(fd, "end", 3, SPARSE_SIZE - 3) != 3)
		BAIL_OUT("sparse file: %s", strerror(errno));
	close(fd);

	/* times last: creating entries changes a directory's mtime */
	struct timespec ts[2] = { a_mtime, a_mtime };
	path(p, sizeof(p), src, "a.txt");
	if (utimensat(AT_FDCWD, p, ts, 0) < 0)
		BAIL_OUT("utimensat: %s", strerror(errno));
	ts[0] = ts[1] = dir_mtime;
	path(p, sizeof(p), src, "sub/deeper");
	if (utimensat(AT_FDCWD, p, ts, 0) < 0)
		BAIL_OUT("utimensat: %s", strerror(errno));
	free(big);
}

#define N_ENTRIES 13 /* entries below src, the top directory not counted */

/* --- the real thing ---------------------------------------------------------------- */

static void verify_tree(const char *dst, const char *label)
{
	char p[PATH_MAX * 2], q[PATH_MAX * 2], lnk[256];
	uint8_t *big = pattern(BIG_SIZE, 1);
	struct stat st, st2;
	ssize_t k;

	ok(file_is(dst, "a.txt", "hello world\n", 12), "%s: a.txt content", label);
	is_int(mode_of(dst, "a.txt"), S_IFREG | 0640, "%s: a.txt mode 0640", label);
	path(p, sizeof(p), dst, "a.txt");
	ok(stat(p, &st) == 0 && st.st_mtim.tv_sec == a_mtime.tv_sec, "%s: a.txt mtime", label);
	ok(file_is(dst, "sub/big.bin", big, BIG_SIZE), "%s: a %d byte file spanning several DATA frames", label, BIG_SIZE);
	is_int(mode_of(dst, "sub/big.bin"), S_IFREG | 0600, "%s: big.bin mode 0600", label);
	is_int(mode_of(dst, "sub"), S_IFDIR | 0750, "%s: directory mode 0750", label);
	is_int(mode_of(dst, "sub/deeper"), S_IFDIR | 0700, "%s: nested directory mode 0700", label);
	path(p, sizeof(p), dst, "sub/deeper");
	ok(stat(p, &st) == 0 && st.st_mtim.tv_sec == dir_mtime.tv_sec, "%s: directory mtime", label);
	ok(file_is(dst, "sub/deeper/x.sh", "#!/bin/sh\necho hi\n", 18), "%s: nested file content", label);
	is_int(mode_of(dst, "sub/deeper/x.sh"), S_IFREG | 0755, "%s: executable mode 0755", label);
	ok(file_is(dst, "empty", "", 0), "%s: empty file", label);
	is_int(mode_of(dst, "empty"), S_IFREG | 0444, "%s: empty file mode 0444", label);
	is_int(mode_of(dst, "emptydir"), S_IFDIR | 0711, "%s: empty directory mode 0711", label);
	is_int(mode_of(dst, "fifo"), S_IFIFO | 0620, "%s: fifo", label);

	path(p, sizeof(p), dst, "link");
	k = readlink(p, lnk, sizeof(lnk) - 1);
	ok(k == 5 && !memcmp(lnk, "a.txt", 5) && S_ISLNK(mode_of(dst, "link")), "%s: symlink -> a.txt", label);
	path(p, sizeof(p), dst, "sub/dangling");
	k = readlink(p, lnk, sizeof(lnk) - 1);
	ok(k == 17 && !memcmp(lnk, "../nowhere/at/all", 17), "%s: dangling symlink kept as it is", label);

	path(p, sizeof(p), dst, "sub/h1");
	path(q, sizeof(q), dst, "h2");
	ok(stat(p, &st) == 0 && stat(q, &st2) == 0 && st.st_ino == st2.st_ino && st.st_dev == st2.st_dev &&
		   st.st_nlink == 2,
	   "%s: hard links share one inode", label);
	ok(file_is(dst, "h2", "linked content\n", 15) && mode_of(dst, "h2") == (S_IFREG | 0604),
	   "%s: hard link content and mode", label);

	/* sparse */
	uint8_t *b;
	path(p, sizeof(p), dst, "sparse");
	k = slurp(p, &b);
	int data_ok = k == SPARSE_SIZE && !memcmp(b, "start", 5) && !memcmp(b + 4 * MiB, "middle", 6) &&
		      !memcmp(b + SPARSE_SIZE - 3, "end", 3);
	for (size_t i = 5; data_ok && i < 4 * MiB; i++)
		data_ok = b[i] == 0;
	for (size_t i = 4 * MiB + 6; data_ok && i < SPARSE_SIZE - 3; i++)
		data_ok = b[i] == 0;
	free(b);
	ok(data_ok, "%s: sparse file size and data (zeros between the extents)", label);
	struct stat sst;
	char sp[PATH_MAX * 2];
	path(sp, sizeof(sp), src, "sparse");
	ok(stat(p, &st) == 0 && stat(sp, &sst) == 0, "%s: stat sparse", label);
	if (sst.st_blocks * 512 < SPARSE_SIZE / 4)
		ok(st.st_blocks * 512 < SPARSE_SIZE / 4, "%s: the sparse file stays sparse (%lld bytes allocated)", label,
		   (long long)st.st_blocks * 512);
	else
		ok(1, "# SKIP %s: this filesystem does not keep holes", label);
	free(big);
}

/* Runs tree_send in a child: stream 1 of src into the receiver, then stream 2
 * of src with trailing slashes and the prefix "rootfs". */
static pid_t start_sender(int fd)
{
	pid_t pid = fork();

	if (pid < 0)
		BAIL_OUT("fork: %s", strerror(errno));
	if (pid == 0) {
		struct proto_conn c;
		struct tree_stats st;
		struct error e = { 0 };
		char slashed[PATH_MAX + 16];
		int bad = 0;

		if (proto_conn_init(&c, fd, fd, "dest", &e) < 0)
			_exit(10);
		if (tree_send(&c, 1, AREA_IMAGES, src, "", &st, &e) < 0) {
			diag("sender, stream 1: %s", e.msg);
			bad |= 1;
		} else if (st.files != N_ENTRIES || st.payload_bytes != 12 + BIG_SIZE + 18 + 15 + SPARSE_SIZE ||
			   st.wire_bytes == 0) {
			diag("sender, stream 1: files %llu payload %llu wire %llu", (unsigned long long)st.files,
			     (unsigned long long)st.payload_bytes, (unsigned long long)st.wire_bytes);
			bad |= 2;
		}
		snprintf(slashed, sizeof(slashed), "%s//", src);
		if (tree_send(&c, 2, AREA_BUNDLE, slashed, "rootfs", &st, &e) < 0) {
			diag("sender, stream 2: %s", e.msg);
			bad |= 4;
		}
		proto_conn_free(&c);
		_exit(bad);
	}
	return pid;
}

static void test_roundtrip(void)
{
	int sv[2];
	struct proto_conn c;
	struct frame f;
	struct tree_stats st;
	struct error e = { 0 };
	char dst1[PATH_MAX + 8], dst2[PATH_MAX + 8], cwd0[PATH_MAX], cwd1[PATH_MAX];
	bool reported = true;
	int r, status = 0;

	build_source();
	path(dst1, sizeof(dst1), base, "dst1");
	path(dst2, sizeof(dst2), base, "dst2");
	if (mkdir(dst1, 0700) < 0 || mkdir(dst2, 0700) < 0)
		BAIL_OUT("mkdir: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		BAIL_OUT("socketpair: %s", strerror(errno));
	pid_t pid = start_sender(sv[1]);
	close(sv[1]);
	if (proto_conn_init(&c, sv[0], sv[0], "source", &e) < 0)
		BAIL_OUT("%s", e.msg);
	snprintf(c.self, sizeof(c.self), "desthost");
	c.timeout_ms = 60000;
	if (!getcwd(cwd0, sizeof(cwd0)))
		BAIL_OUT("getcwd: %s", strerror(errno));

	r = proto_recv(&c, &f, &e);
	ok(r == 0 && f.type == MSG_STREAM_BEGIN && f.chan == 1, "stream 1 opens with STREAM_BEGIN on channel 1");
	r = tree_recv(&c, &f, dst1, &st, &reported, &e);
	if (!is_int(r, 0, "tree_recv of stream 1"))
		diag("%s", e.msg);
	ok(!reported, "nothing reported to the sender");
	is_int(st.files, N_ENTRIES, "the receiver counted every entry");
	ok(st.wire_bytes > 0 && st.payload_bytes >= 12 + BIG_SIZE + 18 + 15 + 14,
	   "the receiver counted the bytes (%llu on the wire, %llu of file data)", (unsigned long long)st.wire_bytes,
	   (unsigned long long)st.payload_bytes);
	ok(getcwd(cwd1, sizeof(cwd1)) && !strcmp(cwd0, cwd1), "the working directory is restored");
	verify_tree(dst1, "stream 1");

	r = proto_recv(&c, &f, &e);
	ok(r == 0 && f.type == MSG_STREAM_BEGIN && f.chan == 2, "stream 2 follows on the same connection");
	r = tree_recv(&c, &f, dst2, &st, &reported, &e);
	if (!is_int(r, 0, "tree_recv of stream 2"))
		diag("%s", e.msg);
	is_int(mode_of(dst2, "rootfs"), S_IFDIR | 0755, "with a prefix, the top directory comes too, with its mode");
	char dst2r[PATH_MAX + 16];
	path(dst2r, sizeof(dst2r), dst2, "rootfs");
	verify_tree(dst2r, "stream 2 (prefix)");
	is_int(st.files, N_ENTRIES + 1, "stream 2 has the prefix directory as one more entry");

	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sender got both STREAM_OKs and its stats are right (status %d)",
	   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	r = proto_recv(&c, &f, &e);
	ok(r == -ECONNRESET, "then the connection ends cleanly");
	proto_conn_free(&c);
	close(sv[0]);
}

/* --- hostile streams -------------------------------------------------------------- */

struct tent {
	const char *name;
	mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, or 0 for a hard link */
	const char *data;     /* file content or link target */
};

static uint8_t tarbuf[256 * 1024];

/* A pax archive of the entries, as any peer could build it. */
static size_t build_tar(const struct tent *ents, int n)
{
	struct archive *a = archive_write_new();
	size_t used = 0;

	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_memory(a, tarbuf, sizeof(tarbuf), &used) != ARCHIVE_OK)
		BAIL_OUT("archive_write_open_memory: %s", archive_error_string(a));
	for (int i = 0; i < n; i++) {
		struct archive_entry *en = archive_entry_new();
		size_t len = ents[i].type == AE_IFREG && ents[i].data ? strlen(ents[i].data) : 0;

		archive_entry_set_pathname(en, ents[i].name);
		archive_entry_set_mtime(en, 1600000000, 0);
		if (ents[i].type == 0) {
			archive_entry_set_filetype(en, AE_IFREG);
			archive_entry_set_perm(en, 0644);
			archive_entry_set_hardlink(en, ents[i].data);
			archive_entry_set_size(en, 0);
		} else {
			archive_entry_set_filetype(en, (unsigned)ents[i].type);
			archive_entry_set_perm(en, ents[i].type == AE_IFDIR ? 0755 : 0644);
			archive_entry_set_size(en, (la_int64_t)len);
			if (ents[i].type == AE_IFLNK)
				archive_entry_set_symlink(en, ents[i].data);
		}
		if (archive_write_header(a, en) != ARCHIVE_OK)
			BAIL_OUT("archive_write_header %s: %s", ents[i].name, archive_error_string(a));
		if (len && archive_write_data(a, ents[i].data, len) != (la_ssize_t)len)
			BAIL_OUT("archive_write_data: %s", archive_error_string(a));
		archive_entry_free(en);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		BAIL_OUT("archive_write_close: %s", archive_error_string(a));
	archive_write_free(a);
	return used;
}

struct hostile {
	int sv[2];
	struct proto_conn snd, rcv;
	char dst[PATH_MAX + 8];
	char before[4096];
};

static int dst_counter;

static void hostile_open(struct hostile *h)
{
	struct error e = { 0 };
	char name[32];

	snprintf(name, sizeof(name), "hdst%d", ++dst_counter);
	path(h->dst, sizeof(h->dst), base, name);
	if (mkdir(h->dst, 0700) < 0)
		BAIL_OUT("mkdir: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, h->sv) < 0)
		BAIL_OUT("socketpair: %s", strerror(errno));
	if (proto_conn_init(&h->snd, h->sv[0], h->sv[0], "desthost", &e) < 0 ||
	    proto_conn_init(&h->rcv, h->sv[1], h->sv[1], "source", &e) < 0)
		BAIL_OUT("%s", e.msg);
	snprintf(h->rcv.self, sizeof(h->rcv.self), "desthost");
	h->rcv.timeout_ms = 10000;
	h->snd.timeout_ms = 10000;
	list_base(h->before, sizeof(h->before));
}

static void hostile_close(struct hostile *h)
{
	proto_conn_free(&h->snd);
	proto_conn_free(&h->rcv);
	close(h->sv[0]);
	close(h->sv[1]);
}

static void send_begin(struct hostile *h, uint32_t chan)
{
	struct mbuf mb;
	struct error e = { 0 };

	mb_init(&mb);
	mb_u32(&mb, A_AREA, AREA_IMAGES);
	if (proto_send(&h->snd, MSG_STREAM_BEGIN, chan, mb.b, (uint32_t)mb.len, &e) < 0)
		BAIL_OUT("%s", e.msg);
	mb_free(&mb);
}

static void send_data(struct hostile *h, uint32_t chan, const uint8_t *p, size_t n)
{
	struct error e = { 0 };

	while (n > 0) {
		uint32_t k = n > 3000 ? 3000 : (uint32_t)n; /* several frames */
		if (proto_send(&h->snd, MSG_DATA, chan, p, k, &e) < 0)
			BAIL_OUT("%s", e.msg);
		p += k;
		n -= k;
	}
}

static void send_end(struct hostile *h, uint32_t chan, uint64_t bytes, uint64_t hash)
{
	struct mbuf mb;
	struct error e = { 0 };

	mb_init(&mb);
	mb_u64(&mb, A_BYTES, bytes);
	mb_u64(&mb, A_HASH, hash);
	if (proto_send(&h->snd, MSG_STREAM_END, chan, mb.b, (uint32_t)mb.len, &e) < 0)
		BAIL_OUT("%s", e.msg);
	mb_free(&mb);
}

/* Sends a whole stream of 'n' archive bytes with a correct or broken trailer. */
static void send_stream(struct hostile *h, const uint8_t *p, size_t n, uint64_t bytes_delta, uint64_t hash_xor)
{
	send_begin(h, 5);
	send_data(h, 5, p, n);
	send_end(h, 5, n + bytes_delta, XXH3_64bits(p, n) ^ hash_xor);
}

/* Receives the stream; returns tree_recv's result. */
static int receive(struct hostile *h, bool *reported, struct error *e)
{
	struct frame f;
	struct tree_stats st;
	int r;

	error_clear(e);
	r = proto_recv(&h->rcv, &f, e);
	if (r < 0 || f.type != MSG_STREAM_BEGIN)
		BAIL_OUT("no STREAM_BEGIN: %s", e->msg);
	*reported = false;
	return tree_recv(&h->rcv, &f, h->dst, &st, reported, e);
}

/* After a reported failure the sender reads the ERROR, and the connection is
 * still in sync: a message sent next arrives intact. */
static void check_reported(struct hostile *h, int want_code, const char *what)
{
	struct msg m;
	struct error e = { 0 };
	int r = proto_recv_msg(&h->snd, MSG_STREAM_OK, &m, &e);

	ok(r == -want_code && !strcmp(e.host, "desthost"), "%s: the sender receives the ERROR (%s)", what, e.msg);
	proto_send_msg(&h->snd, MSG_DONE, NULL, &e);
	r = proto_recv_msg(&h->rcv, MSG_DONE, &m, &e);
	ok(r == 0, "%s: the connection is still in sync", what);
	msg_free(&m);
}

static void check_nothing_outside(struct hostile *h, const char *what)
{
	char after[4096];

	list_base(after, sizeof(after));
	if (!ok(!strcmp(h->before, after), "%s: nothing was created outside the target directory", what))
		diag("before: %s\n#  after: %s", h->before, after);
}

static void refuse_case(const char *what, const struct tent *ents, int n, const char *want_msg)
{
	struct hostile h;
	struct error e;
	bool reported;
	size_t len;
	int r;

	hostile_open(&h);
	len = build_tar(ents, n);
	send_stream(&h, tarbuf, len, 0, 0);
	r = receive(&h, &reported, &e);
	ok(r < 0 && reported, "%s: refused (%s)", what, e.msg);
	if (want_msg)
		has_str(e.msg, want_msg, "%s: the message says why", what);
	check_nothing_outside(&h, what);
	check_reported(&h, r < 0 ? -r : EIO, what);
	hostile_close(&h);
}

/* A stream that would write through a symlink: accepted, but the symlink
 * is replaced by a directory and everything lands inside the target. */
static void replace_case(const char *what, const struct tent *ents, int n, const char *link, const char *inner)
{
	struct hostile h;
	struct error e;
	struct msg m;
	bool reported;
	size_t len;
	int r;

	hostile_open(&h);
	len = build_tar(ents, n);
	send_stream(&h, tarbuf, len, 0, 0);
	r = receive(&h, &reported, &e);
	if (r < 0) {
		/* refusing would be as good */
		ok(reported, "%s: refused (%s)", what, e.msg);
		check_reported(&h, -r, what);
	} else {
		ok(S_ISDIR(mode_of(h.dst, link)), "%s: the symlink in the way became a directory", what);
		ok(mode_of(h.dst, inner) != (mode_t)-1, "%s: the entry landed inside the target", what);
		r = proto_recv_msg(&h.snd, MSG_STREAM_OK, &m, &e);
		msg_free(&m);
	}
	check_nothing_outside(&h, what);
	hostile_close(&h);
}

static void test_hostile(void)
{
	char abs_name[PATH_MAX + 32], abs_target[PATH_MAX + 32], outside[PATH_MAX + 16];

	/* a file outside, which links must not reach */
	put_file(base, "outside", "original\n", 9, 0644);
	path(outside, sizeof(outside), base, "outside");

	refuse_case("../escape",
		    (const struct tent[]){ { "ok.txt", AE_IFREG, "fine" }, { "../escape", AE_IFREG, "pwned" } }, 2,
		    "refusing archive entry '../escape': it would land outside");
	path(abs_name, sizeof(abs_name), base, "abs-pwned");
	refuse_case("/abs", (const struct tent[]){ { abs_name, AE_IFREG, "pwned" } }, 1, "refusing archive entry '/");
	refuse_case("a/../../escape2",
		    (const struct tent[]){ { "a", AE_IFDIR, NULL }, { "a/../../escape2", AE_IFREG, "pwned" } }, 2,
		    "would land outside");
	refuse_case("..", (const struct tent[]){ { "..", AE_IFDIR, NULL } }, 1, "refusing archive entry '..");
	refuse_case("a/..", (const struct tent[]){ { "a/..", AE_IFDIR, NULL } }, 1, "would land outside");
	refuse_case("hard link to ../outside", (const struct tent[]){ { "hl", 0, "../outside" } }, 1,
		    "refusing archive entry '../outside'");
	refuse_case("hard link to an absolute path", (const struct tent[]){ { "hl", 0, outside } }, 1, "refusing archive entry '/");
	{
		struct stat st;
		ok(stat(outside, &st) == 0 && st.st_nlink == 1, "the outside file got no new hard link");
	}

	/* through a symlink that points out of the target: the symlink in the
	 * way is removed and a real directory made, never followed */
	replace_case("file through a symlink to ..",
		     (const struct tent[]){ { "evil", AE_IFLNK, ".." }, { "evil/escape3", AE_IFREG, "inside" } }, 2, "evil",
		     "evil/escape3");
	replace_case("file through an absolute symlink",
		     (const struct tent[]){ { "evil2", AE_IFLNK, base }, { "evil2/escape4", AE_IFREG, "inside" } }, 2,
		     "evil2", "evil2/escape4");
	replace_case("directory through a symlink",
		     (const struct tent[]){ { "evil3", AE_IFLNK, base }, { "evil3/newdir", AE_IFDIR, NULL } }, 2, "evil3",
		     "evil3/newdir");

	/* a symlink pointing out is stored as a symlink; a later file of the same
	 * name replaces the link instead of writing through it */
	{
		struct hostile h;
		struct error e;
		bool reported;
		path(abs_target, sizeof(abs_target), base, "outside");
		const struct tent ents[] = { { "ln", AE_IFLNK, abs_target }, { "ln", AE_IFREG, "replaced" } };
		size_t len;
		int r;

		hostile_open(&h);
		len = build_tar(ents, 2);
		send_stream(&h, tarbuf, len, 0, 0);
		r = receive(&h, &reported, &e);
		ok(r == 0, "a symlink out, then a file of the same name: accepted%s%s", r ? ": " : "", r ? e.msg : "");
		ok(file_is(base, "outside", "original\n", 9), "the file outside is untouched");
		ok(file_is(h.dst, "ln", "replaced", 8) && S_ISREG(mode_of(h.dst, "ln")), "the link was replaced by the file");
		check_nothing_outside(&h, "symlink then file");
		struct msg m;
		r = proto_recv_msg(&h.snd, MSG_STREAM_OK, &m, &e);
		ok(r == 0 && m.num[A_BYTES] == len, "the sender gets STREAM_OK with the byte count");
		msg_free(&m);
		hostile_close(&h);
	}

	/* integrity: wrong hash, wrong byte count */
	static const struct tent good[] = { { "good.txt", AE_IFREG, "good data\n" } };
	for (int which = 0; which < 2; which++) {
		struct hostile h;
		struct error e;
		bool reported;
		size_t len;
		int r;

		hostile_open(&h);
		len = build_tar(good, 1);
		if (which == 0)
			send_stream(&h, tarbuf, len, 0, 0x1);
		else
			send_stream(&h, tarbuf, len, 1, 0);
		r = receive(&h, &reported, &e);
		ok(r == -EBADMSG && reported, "a wrong STREAM_END %s fails", which == 0 ? "hash" : "byte count");
		has_str(e.msg, "transfer stream 5 failed its integrity check", "the integrity message names the stream");
		has_str(e.hint, "altered between the hosts", "with a hint");
		check_reported(&h, EBADMSG, which == 0 ? "bad hash" : "bad count");
		hostile_close(&h);
	}

	/* not an archive at all */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;
		static uint8_t junk[4096];

		memset(junk, 'J', sizeof(junk));
		memcpy(junk, "this is not a tar archive", 25);
		hostile_open(&h);
		send_stream(&h, junk, sizeof(junk), 0, 0);
		r = receive(&h, &reported, &e);
		ok(r == -EBADMSG && reported && strstr(e.msg, "malformed archive stream"), "garbage instead of an archive: %s",
		   e.msg);
		check_reported(&h, EBADMSG, "garbage");
		hostile_close(&h);
	}

	/* an archive cut short */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;
		static char bigdata[20000];
		memset(bigdata, 'b', sizeof(bigdata) - 1);
		const struct tent ents[] = { { "big", AE_IFREG, bigdata } };

		hostile_open(&h);
		size_t len = build_tar(ents, 1);
		send_stream(&h, tarbuf, len / 2, 0, 0);
		r = receive(&h, &reported, &e);
		ok(r == -EBADMSG && reported, "an archive cut in the middle of a file fails: %s", e.msg);
		check_reported(&h, EBADMSG, "truncated");
		hostile_close(&h);
	}

	/* ABORT in the middle */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;

		hostile_open(&h);
		size_t len = build_tar(good, 1);
		send_begin(&h, 5);
		send_data(&h, 5, tarbuf, len / 3);
		proto_send_msg(&h.snd, MSG_ABORT, NULL, &e);
		r = receive(&h, &reported, &e);
		ok(r == -ECANCELED && !reported && strstr(e.msg, "aborted the transfer"), "ABORT inside a stream: %s", e.msg);
		hostile_close(&h);
	}

	/* the receiver refuses an entry and reports it; the sender, told so
	 * before it could end the stream, sends ABORT instead of STREAM_END */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;
		static char bigdata[20000];
		memset(bigdata, 'b', sizeof(bigdata) - 1);
		const struct tent ents[] = { { "../evil", AE_IFREG, bigdata } };

		hostile_open(&h);
		size_t len = build_tar(ents, 1);
		send_begin(&h, 5);
		send_data(&h, 5, tarbuf, len / 2);
		proto_send_msg(&h.snd, MSG_ABORT, NULL, &e);
		r = receive(&h, &reported, &e);
		ok(r == -ECANCELED && reported, "ABORT while draining after a refusal ends the stream: %s", e.msg);
		struct msg m;
		r = proto_recv_msg(&h.snd, 0, &m, &e);
		ok(r == -EPERM && strstr(e.msg, "refusing archive entry '../evil'"), "the sender got the refusal first");
		proto_send_msg(&h.snd, MSG_DONE, NULL, &e);
		r = proto_recv_msg(&h.rcv, MSG_DONE, &m, &e);
		ok(r == 0, "and the connection is in sync for the DONE");
		msg_free(&m);
		check_nothing_outside(&h, "refusal then ABORT");
		hostile_close(&h);
	}

	/* a frame of another channel */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;

		hostile_open(&h);
		size_t len = build_tar(good, 1);
		send_begin(&h, 5);
		send_data(&h, 6, tarbuf, len);
		r = receive(&h, &reported, &e);
		ok(r == -EPROTO && strstr(e.msg, "frame for channel 6 inside stream 5"), "a foreign channel: %s", e.msg);
		hostile_close(&h);
	}

	/* a control message other than STREAM_END inside the stream */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;

		hostile_open(&h);
		size_t len = build_tar(good, 1);
		send_begin(&h, 5);
		send_data(&h, 5, tarbuf, 100);
		struct mbuf mb;
		mb_init(&mb);
		mb_u32(&mb, A_AREA, 1);
		proto_send(&h.snd, MSG_STREAM_BEGIN, 5, mb.b, (uint32_t)mb.len, &e);
		mb_free(&mb);
		(void)len;
		r = receive(&h, &reported, &e);
		ok(r == -EPROTO && strstr(e.msg, "STREAM_BEGIN inside a transfer stream"), "a nested STREAM_BEGIN: %s", e.msg);
		hostile_close(&h);
	}

	/* a STREAM_END without its attributes */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;

		hostile_open(&h);
		size_t len = build_tar(good, 1);
		send_begin(&h, 5);
		send_data(&h, 5, tarbuf, len);
		proto_send(&h.snd, MSG_STREAM_END, 5, NULL, 0, &e);
		r = receive(&h, &reported, &e);
		ok(r == -EPROTO && strstr(e.msg, "lacks the required attribute"), "STREAM_END without bytes/hash: %s", e.msg);
		hostile_close(&h);
	}

	/* the target directory must exist */
	{
		struct hostile h;
		struct error e;
		bool reported;
		int r;

		hostile_open(&h);
		size_t len = build_tar(good, 1);
		send_stream(&h, tarbuf, len, 0, 0);
		rmdir(h.dst);
		r = receive(&h, &reported, &e);
		ok(r == -ENOENT && reported && strstr(e.msg, "cannot enter"), "a missing target directory: %s", e.msg);
		check_reported(&h, ENOENT, "missing target");
		hostile_close(&h);
		mkdir(h.dst, 0700); /* for the cleanup's listing */
	}
}

int main(void)
{
	char tmpl[] = "/tmp/cmt-test-tree.XXXXXX";
	struct error e = { 0 };

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmpl))
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	snprintf(base, sizeof(base), "%s", tmpl);
	test_roundtrip();
	test_hostile();
	if (rm_rf(base, &e) < 0)
		diag("cleanup of %s failed: %s", base, e.msg);
	return done_testing();
}
