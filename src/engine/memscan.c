#include "engine/memscan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"

#define MAX_TREE 4096
#define PM_CHUNK 65536u /* pagemap entries read at once (512 KiB) */
#define PM_PRESENT (1ull << 63)
#define PM_FILE (1ull << 61) /* file page or shared anonymous */

/* Children of every thread of pid, appended to out. */
static int add_children(pid_t pid, pid_t *out, int n, int max)
{
	char path[64];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return n;
	while ((de = readdir(d)) && n < max) {
		char cp[96];
		FILE *f;
		int c;
		if (de->d_name[0] == '.')
			continue;
		snprintf(cp, sizeof(cp), "/proc/%d/task/%s/children", pid, de->d_name);
		f = fopen(cp, "re");
		if (!f)
			continue;
		while (n < max && fscanf(f, "%d", &c) == 1)
			out[n++] = c;
		fclose(f);
	}
	closedir(d);
	return n;
}

int memscan_tree(pid_t root, pid_t *out, int max, struct error *e)
{
	int n = 0;

	if (max < 1)
		return error_set(e, EINVAL, "no room for processes");
	out[n++] = root;
	for (int i = 0; i < n && n < max; i++)
		n = add_children(out[i], out, n, max);
	return n;
}

struct vma {
	unsigned long start, end;
	bool shared;
};

/* Mappings whose pages CRIU dumps: everything but the kernel's special
 * areas and file-backed shared mappings (their data is in the file). */
static bool parse_vma(const char *line, struct vma *v)
{
	char perms[8] = "", path[512] = "";
	unsigned long ino = 0;

	if (sscanf(line, "%lx-%lx %7s %*s %*s %lu %511[^\n]", &v->start, &v->end, perms, &ino, path) < 4)
		return false;
	char *p = path;
	while (*p == ' ')
		p++;
	if (!strcmp(p, "[vsyscall]") || !strcmp(p, "[vvar]") || !strcmp(p, "[vdso]") || !strcmp(p, "[vvar_vclock]"))
		return false;
	v->shared = perms[3] == 's';
	if (v->shared && ino && strncmp(p, "/dev/zero", 9) && strncmp(p, "/SYSV", 5) && strncmp(p, "/memfd:", 7))
		return false;
	return v->end > v->start;
}

static void count_pages(pid_t pid, uint64_t *pages)
{
	char path[64], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long kb;
		if (sscanf(line, "Anonymous: %lu kB", &kb) == 1)
			*pages += kb / 4;
	}
	fclose(f);
}

uint64_t memscan_estimate(pid_t root)
{
	pid_t *pids = malloc(MAX_TREE * sizeof(*pids));
	struct error e = { 0 };
	uint64_t pages = 0;
	int n;

	if (!pids)
		return 0;
	n = memscan_tree(root, pids, MAX_TREE, &e);
	for (int i = 0; i < n; i++)
		count_pages(pids[i], &pages);
	free(pids);
	return pages;
}

/* --- a round: readers and the sender ------------------------------------
 * Reading a page through /proc/PID/mem and hashing it costs far more than
 * deciding whether it is new: a round with little new content is bound by
 * that, not by the link (512 MiB: ~380 ms on one core, for 22 MB to send).
 * So the present pages of a process are cut into chunks, SCAN_READERS
 * threads read and hash chunks ahead (at most SCAN_SLOTS in flight), and
 * this thread takes them in address order: it looks each page up, adds the
 * new ones to the set and copies them into the writer, as before.  Without
 * reader threads it reads the chunks itself. */

#define SCAN_CHUNK 256u  /* pages per chunk (1 MiB) */
#define SCAN_SLOTS 8u
#ifndef SCAN_READERS
#define SCAN_READERS 2
#endif

struct chunk {
	unsigned long vaddr;
	uint32_t n;
};

enum { PG_NONE = 0, PG_DATA, PG_ZERO };

struct slot {
	long job; /* the chunk it holds, -1: none yet */
	uint8_t *buf;
	struct page_hash hs[SCAN_CHUNK];
	uint8_t kind[SCAN_CHUNK]; /* PG_NONE: could not be read */
};

struct scan {
	int memfd;
	const struct chunk *jobs;
	long njobs;
	pthread_mutex_t mu;
	pthread_cond_t done, freed;
	long next;     /* next chunk for a reader */
	long consumed; /* chunks the sender has finished */
	bool stop;
	struct slot slots[SCAN_SLOTS];
};

/* Reads chunk j into slot sl: each page's data, and whether it is zero or
 * its hash; a page that cannot be read (unmapped meanwhile) is skipped. */
static void read_chunk(struct scan *sc, long j, struct slot *sl)
{
	const struct chunk *c = &sc->jobs[j];
	uint32_t off = 0;

	while (off < c->n) {
		ssize_t k = pread(sc->memfd, sl->buf + (size_t)off * PAGE_SZ, (size_t)(c->n - off) * PAGE_SZ,
				  (off_t)(c->vaddr + (unsigned long)off * PAGE_SZ));
		if (k < (ssize_t)PAGE_SZ) {
			sl->kind[off++] = PG_NONE;
			continue;
		}
		uint32_t got = (uint32_t)((size_t)k / PAGE_SZ);
		for (uint32_t i = off; i < off + got; i++) {
			const uint8_t *pg = sl->buf + (size_t)i * PAGE_SZ;
			if (page_is_zero(pg)) {
				sl->kind[i] = PG_ZERO;
			} else {
				sl->kind[i] = PG_DATA;
				sl->hs[i] = page_hash(pg);
			}
		}
		off += got;
	}
}

static void *reader(void *arg)
{
	struct scan *sc = arg;

	pthread_mutex_lock(&sc->mu);
	while (!sc->stop && sc->next < sc->njobs) {
		long j = sc->next;
		if (j >= sc->consumed + (long)SCAN_SLOTS) {
			pthread_cond_wait(&sc->freed, &sc->mu);
			continue;
		}
		sc->next++;
		struct slot *sl = &sc->slots[j % SCAN_SLOTS];
		pthread_mutex_unlock(&sc->mu);
		read_chunk(sc, j, sl);
		pthread_mutex_lock(&sc->mu);
		sl->job = j;
		pthread_cond_broadcast(&sc->done);
	}
	pthread_mutex_unlock(&sc->mu);
	return NULL;
}

/* The sender's half of chunk j (in slot sl): new pages go to the writer. */
static int send_chunk(struct scan *sc, long j, struct slot *sl, struct pageset *set, struct page_writer *w,
		      struct mem_round *st, struct error *e)
{
	uint32_t n = sc->jobs[j].n, i = 0;

	while (i < n) {
		if (sl->kind[i] == PG_NONE) {
			st->unreadable++;
			i++;
			continue;
		}
		st->scanned++;
		if (sl->kind[i] == PG_ZERO) {
			st->zero++;
			i++;
			continue;
		}
		if (pageset_find(set, sl->hs[i]) >= 0) {
			st->unchanged++;
			i++;
			continue;
		}
		/* new content: this page and the new ones after it, into the batch */
		uint8_t *room;
		uint32_t got, kept = 0;
		struct page_hash hs[SCAN_CHUNK];
		int r = pw_raw_room(w, n - i, &room, &got);
		if (r < 0)
			return r;
		for (;;) {
			if (pageset_add(set, sl->hs[i]) < 0)
				return error_set(e, ENOMEM, "out of memory for the pre-copy page index");
			memcpy(room + (size_t)kept * PAGE_SZ, sl->buf + (size_t)i * PAGE_SZ, PAGE_SZ);
			hs[kept++] = sl->hs[i];
			st->sent++;
			i++;
			if (kept == got || i == n || sl->kind[i] != PG_DATA || pageset_find(set, sl->hs[i]) >= 0)
				break;
			st->scanned++;
		}
		r = pw_raw_commit_hashed(w, kept, hs);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The chunks of every mapping CRIU would dump: runs of present anonymous
 * pages (/proc/PID/pagemap), at most SCAN_CHUNK pages each. */
static int plan_chunks(FILE *maps, int pmfd, uint64_t *pm, struct chunk **ret, long *ret_n, struct error *e)
{
	char line[1024];
	struct chunk *jobs = NULL;
	long n = 0, cap = 0;

	while (fgets(line, sizeof(line), maps)) {
		struct vma v;
		if (!parse_vma(line, &v))
			continue;
		for (unsigned long a = v.start; a < v.end;) {
			uint32_t want = (uint32_t)((v.end - a) / PAGE_SZ < PM_CHUNK ? (v.end - a) / PAGE_SZ : PM_CHUNK);
			ssize_t k = pread(pmfd, pm, (size_t)want * 8, (off_t)(a / PAGE_SZ) * 8);
			if (k <= 0)
				break; /* gone */
			uint32_t got = (uint32_t)(k / 8);
			for (uint32_t i = 0; i < got;) {
				bool take = (pm[i] & PM_PRESENT) && (v.shared || !(pm[i] & PM_FILE));
				if (!take) {
					i++;
					continue;
				}
				uint32_t j = i + 1;
				while (j < got && j - i < SCAN_CHUNK && (pm[j] & PM_PRESENT) && (v.shared || !(pm[j] & PM_FILE)))
					j++;
				if (n == cap) {
					long nc = cap ? cap * 2 : 256;
					struct chunk *nj = realloc(jobs, (size_t)nc * sizeof(*nj));
					if (!nj) {
						free(jobs);
						return error_set(e, ENOMEM, "out of memory for the pre-copy scan");
					}
					jobs = nj;
					cap = nc;
				}
				jobs[n++] = (struct chunk){ a + (unsigned long)i * PAGE_SZ, j - i };
				i = j;
			}
			a += (unsigned long)got * PAGE_SZ;
		}
	}
	*ret = jobs;
	*ret_n = n;
	return 0;
}

static int scan_chunks(struct scan *sc, struct pageset *set, struct page_writer *w, struct mem_round *st,
		       struct error *e)
{
	pthread_t th[SCAN_READERS];
	int nth = 0, r = 0;

	pthread_mutex_init(&sc->mu, NULL);
	pthread_cond_init(&sc->done, NULL);
	pthread_cond_init(&sc->freed, NULL);
	for (int i = 0; i < SCAN_READERS && sc->njobs > 1; i++)
		if (pthread_create(&th[nth], NULL, reader, sc) == 0)
			nth++;
	for (long j = 0; r == 0 && j < sc->njobs; j++) {
		struct slot *sl = &sc->slots[j % SCAN_SLOTS];
		if (nth == 0) {
			read_chunk(sc, j, sl); /* no reader threads: read it here */
		} else {
			pthread_mutex_lock(&sc->mu);
			while (sl->job != j)
				pthread_cond_wait(&sc->done, &sc->mu);
			pthread_mutex_unlock(&sc->mu);
		}
		r = send_chunk(sc, j, sl, set, w, st, e);
		pthread_mutex_lock(&sc->mu);
		sc->consumed = j + 1;
		pthread_cond_broadcast(&sc->freed);
		pthread_mutex_unlock(&sc->mu);
	}
	pthread_mutex_lock(&sc->mu);
	sc->stop = true;
	pthread_cond_broadcast(&sc->freed);
	pthread_mutex_unlock(&sc->mu);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_cond_destroy(&sc->freed);
	pthread_cond_destroy(&sc->done);
	pthread_mutex_destroy(&sc->mu);
	return r;
}

static int scan_process(pid_t pid, uint64_t *pm, uint8_t *bufs, struct pageset *set, struct page_writer *w,
			struct mem_round *st, struct error *e)
{
	char path[64];
	_cleanup_close_ int pmfd = -1, memfd = -1;
	struct scan *sc;
	struct chunk *jobs = NULL;
	long njobs = 0;
	FILE *maps;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = fopen(path, "re");
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	pmfd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (!maps || pmfd < 0 || memfd < 0) {
		if (maps)
			fclose(maps);
		return 0; /* exited meanwhile: CRIU will not dump it either */
	}
	st->processes++;
	r = plan_chunks(maps, pmfd, pm, &jobs, &njobs, e);
	fclose(maps);
	if (r < 0)
		return r;
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		free(jobs);
		return error_set(e, ENOMEM, "out of memory for the pre-copy scan");
	}
	sc->memfd = memfd;
	sc->jobs = jobs;
	sc->njobs = njobs;
	for (unsigned i = 0; i < SCAN_SLOTS; i++) {
		sc->slots[i].job = -1;
		sc->slots[i].buf = bufs + (size_t)i * SCAN_CHUNK * PAGE_SZ;
	}
	r = scan_chunks(sc, set, w, st, e);
	free(sc);
	free(jobs);
	return r;
}

int memscan_round(pid_t root, struct pageset *set, struct page_writer *w, struct mem_round *st, struct error *e)
{
	pid_t *pids = malloc(MAX_TREE * sizeof(*pids));
	uint64_t *pm = malloc(PM_CHUNK * sizeof(*pm));
	uint8_t *bufs = malloc((size_t)SCAN_SLOTS * SCAN_CHUNK * PAGE_SZ);
	int n, r = 0;

	memset(st, 0, sizeof(*st));
	if (!pids || !pm || !bufs) {
		free(pids);
		free(pm);
		free(bufs);
		return error_set(e, ENOMEM, "out of memory for the pre-copy scan");
	}
	n = memscan_tree(root, pids, MAX_TREE, e);
	for (int i = 0; r == 0 && i < n; i++)
		r = scan_process(pids[i], pm, bufs, set, w, st, e);
	free(pids);
	free(pm);
	free(bufs);
	return r;
}
