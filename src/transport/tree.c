#include "transport/tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "transport/manifest.h"
#include "util/cleanup.h"
#include "util/fault.h"
#include "util/log.h"

#define CHUNK (256 * 1024)

struct sender {
	struct proto_conn *c;
	uint32_t chan;
	XXH3_state_t hash;
	uint64_t bytes;
	struct error *e;
	int failed;
	const struct tree_send_opts *o;
};

/* If the receiver has already said something (an ERROR), stop early. */
static int peer_spoke(struct sender *s)
{
	struct pollfd pf = { s->c->rfd, POLLIN, 0 };
	struct msg m;

	if (poll(&pf, 1, 0) <= 0)
		return 0;
	if (proto_recv_msg(s->c, MSG_STREAM_OK, &m, s->e) < 0)
		return -1;
	msg_free(&m);
	error_set(s->e, EPROTO, "protocol error: %s acknowledged a stream before it ended", s->c->peer);
	return -1;
}

static la_ssize_t send_cb(struct archive *a, void *ud, const void *buf, size_t n)
{
	struct sender *s = ud;
	const uint8_t *p = buf;
	size_t left = n;

	(void)a;
	while (left > 0) {
		uint32_t k = left > PROTO_MAX_PAYLOAD ? PROTO_MAX_PAYLOAD : (uint32_t)left;
		if (s->bytes > 0)
			fault_point("mid-stream"); /* fires at most once per process */
		if (peer_spoke(s) < 0 || proto_send(s->c, MSG_DATA, s->chan, p, k, s->e) < 0) {
			s->failed = 1;
			return -1;
		}
		XXH3_64bits_update(&s->hash, p, k);
		s->bytes += k;
		if (s->o && s->o->on_bytes)
			s->o->on_bytes(k, s->o->arg);
		p += k;
		left -= k;
	}
	return (la_ssize_t)n;
}

static int add_file_data(struct archive *w, const char *src, struct tree_stats *st, struct error *e)
{
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = malloc(CHUNK);

	if (fd < 0)
		return error_errno(e, errno, "cannot open %s", src);
	if (!buf)
		return error_set(e, ENOMEM, "out of memory");
	for (;;) {
		ssize_t k = read(fd, buf, CHUNK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return error_errno(e, errno, "cannot read %s", src);
		if (k == 0)
			return 0;
		if (archive_write_data(w, buf, (size_t)k) != k)
			return -1; /* caller reports the archive/sender error */
		st->payload_bytes += (uint64_t)k;
	}
}

int tree_send(struct proto_conn *c, uint32_t chan, uint32_t area, const char *dir, const char *prefix,
	      struct tree_stats *st, struct error *e)
{
	return tree_send_opts(c, chan, area, dir, prefix, NULL, st, e);
}

int tree_send_opts(struct proto_conn *c, uint32_t chan, uint32_t area, const char *dir, const char *prefix,
		   const struct tree_send_opts *o, struct tree_stats *st, struct error *e)
{
	struct sender s = { .c = c, .chan = chan, .e = e, .o = o };
	struct archive *w = NULL, *disk = NULL;
	struct archive_entry_linkresolver *lr = NULL;
	struct mbuf mb;
	struct msg m;
	size_t dlen = strlen(dir);
	int r = 0;

	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	memset(st, 0, sizeof(*st));
	XXH3_64bits_reset(&s.hash);

	mb_init(&mb);
	mb_u32(&mb, A_AREA, area);
	r = proto_send(c, MSG_STREAM_BEGIN, chan, mb.b, (uint32_t)mb.len, e);
	mb_free(&mb);
	if (r < 0)
		return r;

	w = archive_write_new();
	disk = archive_read_disk_new();
	lr = archive_entry_linkresolver_new();
	if (!w || !disk || !lr) {
		r = error_set(e, ENOMEM, "out of memory");
		goto out;
	}
	archive_write_set_format_pax(w); /* full pax: sub-second times, xattrs */
	archive_write_set_bytes_per_block(w, CHUNK);
	archive_write_set_bytes_in_last_block(w, 1);
	archive_entry_linkresolver_set_strategy(lr, archive_format(w));
	if (archive_write_open2(w, &s, NULL, send_cb, NULL, NULL) != ARCHIVE_OK) {
		r = error_set(e, EIO, "cannot start the archive stream: %s", archive_error_string(w));
		goto out;
	}
	archive_read_disk_set_standard_lookup(disk);
	archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
	if (archive_read_disk_open(disk, dir) != ARCHIVE_OK) {
		r = error_set(e, EIO, "cannot read %s: %s", dir, archive_error_string(disk));
		goto out;
	}
	for (;;) {
		struct archive_entry *ent = archive_entry_new(), *sparse = NULL;
		char name[PATH_MAX];
		const char *path, *rel;
		int k = archive_read_next_header2(disk, ent);

		if (k == ARCHIVE_EOF) {
			archive_entry_free(ent);
			break;
		}
		if (k != ARCHIVE_OK && k != ARCHIVE_WARN) {
			r = error_set(e, EIO, "cannot read %s: %s", dir, archive_error_string(disk));
			archive_entry_free(ent);
			goto out;
		}
		archive_read_disk_descend(disk);
		path = archive_entry_pathname(ent);
		rel = path + (strncmp(path, dir, dlen) == 0 ? dlen : 0);
		while (*rel == '/')
			rel++;
		if (!*rel && !*prefix) {
			archive_entry_free(ent); /* the top directory itself */
			continue;
		}
		if ((size_t)snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix && *rel ? "/" : "", rel) >= sizeof(name)) {
			r = error_set(e, ENAMETOOLONG, "path too long below %s: %s", dir, rel);
			archive_entry_free(ent);
			goto out;
		}
		if (o && o->skip && o->skip(name)) {
			archive_entry_free(ent);
			continue;
		}
		if (o && (o->record || o->since)) {
			struct stat sb;
			if (lstat(path, &sb) < 0) {
				r = error_errno(e, errno, "cannot read %s", path);
				archive_entry_free(ent);
				goto out;
			}
			if (o->since && manifest_check(o->since, name, &sb) == MF_SAME) {
				st->skipped++;
				archive_entry_free(ent); /* sent before and unchanged since */
				continue;
			}
			if (o->record && manifest_put(o->record, name, &sb) < 0) {
				r = error_set(e, ENOMEM, "out of memory");
				archive_entry_free(ent);
				goto out;
			}
		}
		archive_entry_copy_sourcepath(ent, path);
		archive_entry_copy_pathname(ent, name);
		archive_entry_linkify(lr, &ent, &sparse);
		for (struct archive_entry *cur = ent; cur; cur = sparse, sparse = NULL) {
			if (archive_write_header(w, cur) < ARCHIVE_WARN) {
				r = s.failed ? -e->code : error_set(e, EIO, "cannot archive %s: %s", archive_entry_sourcepath(cur), archive_error_string(w));
				archive_entry_free(cur);
				goto out;
			}
			if (archive_entry_filetype(cur) == AE_IFREG && archive_entry_size(cur) > 0) {
				if (add_file_data(w, archive_entry_sourcepath(cur), st, e) < 0) {
					if (!e->code)
						error_set(e, EIO, "cannot archive %s: %s", archive_entry_sourcepath(cur), archive_error_string(w));
					r = -e->code;
					archive_entry_free(cur);
					goto out;
				}
			}
			st->files++;
			archive_entry_free(cur);
		}
	}
	/* Entries held back by the link resolver (hard links seen once). */
	for (;;) {
		struct archive_entry *ent = NULL, *sparse = NULL;
		archive_entry_linkify(lr, &ent, &sparse);
		if (!ent)
			break;
		if (archive_write_header(w, ent) < ARCHIVE_WARN) {
			r = error_set(e, EIO, "cannot archive %s: %s", archive_entry_pathname(ent), archive_error_string(w));
			archive_entry_free(ent);
			goto out;
		}
		archive_entry_free(ent);
	}
	if (archive_write_close(w) != ARCHIVE_OK) {
		r = s.failed ? -e->code : error_set(e, EIO, "cannot finish the archive stream: %s", archive_error_string(w));
		goto out;
	}
	st->wire_bytes = s.bytes;
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, s.bytes);
	mb_u64(&mb, A_HASH, XXH3_64bits_digest(&s.hash));
	r = proto_send(c, MSG_STREAM_END, chan, mb.b, (uint32_t)mb.len, e);
	mb_free(&mb);
	if (r < 0)
		goto out;
	r = proto_recv_msg(c, MSG_STREAM_OK, &m, e);
	if (r < 0)
		goto out;
	msg_free(&m);
out:
	if (w) {
		if (r < 0)
			archive_write_fail(w);
		archive_write_free(w);
	}
	if (disk)
		archive_read_free(disk);
	if (lr)
		archive_entry_linkresolver_free(lr);
	return r < 0 ? r : 0;
}

/* --- receiving -------------------------------------------------------------- */

struct receiver {
	struct proto_conn *c;
	uint32_t chan;
	XXH3_state_t hash;
	uint64_t bytes;
	int ended;        /* STREAM_END seen */
	int aborted;      /* ABORT seen instead */
	uint64_t end_bytes, end_hash;
	struct error *e;
	int failed;
};

static la_ssize_t recv_cb(struct archive *a, void *ud, const void **buf)
{
	struct receiver *rc = ud;
	struct frame f;

	(void)a;
	if (rc->ended)
		return 0;
	if (proto_recv(rc->c, &f, rc->e) < 0) {
		rc->failed = 1;
		return -1;
	}
	/* ABORT is a control message (channel 0): it ends any stream */
	if (f.type != MSG_ABORT && f.chan != rc->chan) {
		error_set(rc->e, EPROTO, "protocol error: frame for channel %u inside stream %u", f.chan, rc->chan);
		rc->failed = 1;
		return -1;
	}
	if (f.type == MSG_DATA) {
		if (rc->bytes > 0)
			fault_point("mid-stream");
		XXH3_64bits_update(&rc->hash, f.data, f.len);
		rc->bytes += f.len;
		*buf = f.data;
		return (la_ssize_t)f.len;
	}
	if (f.type == MSG_STREAM_END) {
		struct msg m;
		if (msg_decode(f.type, f.data, f.len, &m, rc->e) < 0) {
			rc->failed = 1;
			return -1;
		}
		rc->end_bytes = m.num[A_BYTES];
		rc->end_hash = m.num[A_HASH];
		rc->ended = 1;
		msg_free(&m);
		return 0;
	}
	if (f.type == MSG_ABORT) {
		rc->aborted = 1; /* the caller rolls back and answers DONE */
		error_set(rc->e, ECANCELED, "%s aborted the transfer", rc->c->peer);
	}
	else
		error_set(rc->e, EPROTO, "protocol error: %s inside a transfer stream", msg_type_name(f.type));
	rc->failed = 1;
	return -1;
}

/* Entries are extracted relative to the destination directory (the process
 * works inside it for the duration); libarchive's SECURE_* flags refuse
 * absolute paths, ".." and extraction through symlinks, and this check says
 * so in cmt's words first. */
static int check_entry_path(const char *dest, const char *p, struct error *e)
{
	size_t n;

	if (!p || !*p)
		return error_set(e, EPERM, "refusing an archive entry without a name");
	n = strlen(p);
	if (p[0] == '/' || !strcmp(p, "..") || !strncmp(p, "../", 3) || strstr(p, "/../") ||
	    (n >= 3 && !strcmp(p + n - 3, "/..")))
		return error_set(e, EPERM, "refusing archive entry '%s': it would land outside %s", p, dest);
	return 0;
}

int tree_recv(struct proto_conn *c, const struct frame *begin, const char *dest_dir, struct tree_stats *st,
	      bool *ret_reported, struct error *e)
{
	struct receiver rc = { .c = c, .chan = begin->chan, .e = e };
	struct archive *in = archive_read_new(), *out = archive_write_disk_new();
	struct mbuf mb;
	int r = 0, cwd = -1;
	int flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
		    ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_FFLAGS | ARCHIVE_EXTRACT_SPARSE |
		    ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK;

	memset(st, 0, sizeof(*st));
	*ret_reported = false;
	XXH3_64bits_reset(&rc.hash);
	if (!in || !out) {
		r = error_set(e, ENOMEM, "out of memory");
		goto drain;
	}
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(dest_dir) < 0) {
		r = error_errno(e, errno, "cannot enter %s", dest_dir);
		goto drain;
	}
	archive_read_support_format_tar(in);
	archive_write_disk_set_options(out, flags);
	archive_write_disk_set_standard_lookup(out);
	if (archive_read_open(in, &rc, NULL, recv_cb, NULL) != ARCHIVE_OK) {
		r = rc.failed ? -e->code : error_set(e, EBADMSG, "malformed archive stream: %s", archive_error_string(in));
		goto drain;
	}
	for (;;) {
		struct archive_entry *ent;
		const char *path;
		int k = archive_read_next_header(in, &ent);

		if (k == ARCHIVE_EOF)
			break;
		if (k < ARCHIVE_WARN) {
			r = rc.failed ? -e->code : error_set(e, EBADMSG, "malformed archive stream: %s", archive_error_string(in));
			goto drain;
		}
		path = archive_entry_pathname(ent);
		if ((r = check_entry_path(dest_dir, path, e)) < 0)
			goto drain;
		if (archive_entry_hardlink(ent) && (r = check_entry_path(dest_dir, archive_entry_hardlink(ent), e)) < 0)
			goto drain;
		if (archive_write_header(out, ent) < ARCHIVE_WARN) {
			int code = archive_errno(out) > 0 ? archive_errno(out) : EIO;
			r = error_set(e, code, "cannot write %s: %s", path, archive_error_string(out));
			if (code == ENOSPC)
				error_hint(e, "free space on the destination's state root, or choose another target");
			goto drain;
		}
		if (archive_entry_size(ent) > 0) {
			const void *buf;
			size_t len;
			la_int64_t off;
			for (;;) {
				k = archive_read_data_block(in, &buf, &len, &off);
				if (k == ARCHIVE_EOF)
					break;
				if (k < ARCHIVE_WARN) {
					r = rc.failed ? -e->code : error_set(e, EBADMSG, "malformed archive stream: %s", archive_error_string(in));
					goto drain;
				}
				if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN) {
					int code = archive_errno(out) > 0 ? archive_errno(out) : EIO;
					r = error_set(e, code, "cannot write %s: %s", path, archive_error_string(out));
					if (code == ENOSPC)
						error_hint(e, "free space on the destination's state root, or choose another target");
					goto drain;
				}
				st->payload_bytes += len;
			}
		}
		if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
			int code = archive_errno(out) > 0 ? archive_errno(out) : EIO;
			r = error_set(e, code, "cannot finish %s: %s", path, archive_error_string(out));
			goto drain;
		}
		st->files++;
	}
	if (archive_write_close(out) != ARCHIVE_OK) {
		int code = archive_errno(out) > 0 ? archive_errno(out) : EIO;
		r = error_set(e, code, "cannot finish writing below %s: %s", dest_dir, archive_error_string(out));
		goto drain;
	}
drain:
	/* Consume the rest of the stream (trailing padding, or everything after a
	 * failure) so the connection stays in sync. */
	if (!rc.failed) {
		if (r < 0) {
			struct error tmp = { 0 };
			rc.e = &tmp;
			/* Tell the sender now so it can stop early, then drain. */
			proto_send_error(c, e, c->self[0] ? c->self : NULL);
			*ret_reported = true;
			while (!rc.ended && !rc.failed) {
				const void *b;
				recv_cb(NULL, &rc, &b);
			}
			rc.e = e;
		} else {
			const void *b;
			while (!rc.ended && !rc.failed)
				if (recv_cb(NULL, &rc, &b) < 0)
					break;
			if (rc.failed)
				r = -e->code;
		}
	}
	if (in)
		archive_read_free(in);
	if (out)
		archive_write_free(out);
	if (cwd >= 0) {
		if (fchdir(cwd) < 0 && r == 0)
			r = error_errno(e, errno, "cannot return to the working directory");
		close(cwd);
	}
	if (rc.aborted) {
		error_set(e, ECANCELED, "%s aborted the transfer", c->peer);
		return -ECANCELED;
	}
	if (r < 0 || rc.failed)
		return r < 0 ? r : -e->code;
	st->wire_bytes = rc.bytes;
	if (rc.bytes != rc.end_bytes || XXH3_64bits_digest(&rc.hash) != rc.end_hash) {
		r = error_set(e, EBADMSG,
			      "transfer stream %u failed its integrity check: received %llu bytes with hash %016llx, sender "
			      "says %llu bytes with hash %016llx",
			      rc.chan, (unsigned long long)rc.bytes, (unsigned long long)XXH3_64bits_digest(&rc.hash),
			      (unsigned long long)rc.end_bytes, (unsigned long long)rc.end_hash);
		error_hint(e, "the data was altered between the hosts; retry, and check the network path and memory of both hosts");
		proto_send_error(c, e, c->self[0] ? c->self : NULL);
		*ret_reported = true;
		return r;
	}
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, rc.bytes);
	r = proto_send_msg(c, MSG_STREAM_OK, &mb, e);
	mb_free(&mb);
	return r;
}
