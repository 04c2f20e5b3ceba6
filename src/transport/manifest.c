#include "transport/manifest.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct mf_entry {
	char *path;           /* NULL: empty slot */
	uint64_t hash;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	bool seen;
};

struct manifest {
	struct mf_entry *tab;
	size_t cap, n;       /* cap is a power of two; load kept below 3/4 */
};

struct manifest *manifest_new(void)
{
	struct manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->cap = 1024;
	m->tab = calloc(m->cap, sizeof(*m->tab));
	if (!m->tab) {
		free(m);
		return NULL;
	}
	return m;
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->tab[i].path);
	free(m->tab);
	free(m);
}

static struct mf_entry *slot(struct mf_entry *tab, size_t cap, const char *path, uint64_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!tab[i].path || (tab[i].hash == h && !strcmp(tab[i].path, path)))
			return &tab[i];
}

static int grow(struct manifest *m)
{
	size_t cap = m->cap * 2;
	struct mf_entry *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->tab[i].path)
			*slot(tab, cap, m->tab[i].path, m->tab[i].hash) = m->tab[i];
	free(m->tab);
	m->tab = tab;
	m->cap = cap;
	return 0;
}

int manifest_put(struct manifest *m, const char *path, const struct stat *st)
{
	uint64_t h = XXH3_64bits(path, strlen(path));
	struct mf_entry *e;

	if ((m->n + 1) * 4 > m->cap * 3 && grow(m) < 0)
		return -ENOMEM;
	e = slot(m->tab, m->cap, path, h);
	if (!e->path) {
		e->path = strdup(path);
		if (!e->path)
			return -ENOMEM;
		e->hash = h;
		m->n++;
	}
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->ctime = st->st_ctim;
	e->seen = false;
	return 0;
}

enum manifest_diff manifest_check(struct manifest *m, const char *path, const struct stat *st)
{
	uint64_t h = XXH3_64bits(path, strlen(path));
	struct mf_entry *e = slot(m->tab, m->cap, path, h);

	if (!e->path)
		return MF_NEW;
	e->seen = true;
	if ((e->mode & S_IFMT) != (st->st_mode & S_IFMT))
		return MF_TYPE_CHANGED;
	if (e->mode != st->st_mode || e->uid != st->st_uid || e->gid != st->st_gid || e->ino != st->st_ino ||
	    e->size != st->st_size || e->mtime.tv_sec != st->st_mtim.tv_sec || e->mtime.tv_nsec != st->st_mtim.tv_nsec ||
	    e->ctime.tv_sec != st->st_ctim.tv_sec || e->ctime.tv_nsec != st->st_ctim.tv_nsec)
		return MF_CHANGED;
	return MF_SAME;
}

void manifest_each_unseen(const struct manifest *m, void (*fn)(const char *path, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->tab[i].path && !m->tab[i].seen)
			fn(m->tab[i].path, arg);
}

size_t manifest_count(const struct manifest *m)
{
	return m->n;
}
