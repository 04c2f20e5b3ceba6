#include "engine/memscan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* Reads n present pages at vaddr into the writer, keeps the new ones. */
static int read_run(int memfd, unsigned long vaddr, uint32_t n, struct pageset *set, struct page_writer *w,
		    struct mem_round *st, struct error *e)
{
	while (n > 0) {
		uint8_t *room;
		uint32_t got, kept = 0;
		int r = pw_raw_room(w, n, &room, &got);
		if (r < 0)
			return r;
		ssize_t k = pread(memfd, room, (size_t)got * PAGE_SZ, (off_t)vaddr);
		if (k < (ssize_t)PAGE_SZ) {
			/* unmapped meanwhile, or not readable: skip this page */
			st->unreadable++;
			vaddr += PAGE_SZ;
			n--;
			continue;
		}
		uint32_t read_pages = (uint32_t)((size_t)k / PAGE_SZ);
		struct page_hash hs[PAGES_BATCH_MAX / PAGE_SZ];
		for (uint32_t i = 0; i < read_pages; i++) {
			uint8_t *pg = room + (size_t)i * PAGE_SZ;
			st->scanned++;
			if (page_is_zero(pg)) {
				st->zero++;
				continue;
			}
			struct page_hash h = page_hash(pg);
			if (pageset_find(set, h) >= 0) {
				st->unchanged++;
				continue;
			}
			if (pageset_add(set, h) < 0)
				return error_set(e, ENOMEM, "out of memory for the pre-copy page index");
			if (kept != i)
				memmove(room + (size_t)kept * PAGE_SZ, pg, PAGE_SZ);
			hs[kept++] = h;
			st->sent++;
		}
		r = pw_raw_commit_hashed(w, kept, hs);
		if (r < 0)
			return r;
		vaddr += (unsigned long)read_pages * PAGE_SZ;
		n -= read_pages;
	}
	return 0;
}

static int scan_vma(int pmfd, int memfd, const struct vma *v, uint64_t *pm, struct pageset *set,
		    struct page_writer *w, struct mem_round *st, struct error *e)
{
	for (unsigned long a = v->start; a < v->end;) {
		uint32_t want = (uint32_t)((v->end - a) / PAGE_SZ < PM_CHUNK ? (v->end - a) / PAGE_SZ : PM_CHUNK);
		ssize_t k = pread(pmfd, pm, (size_t)want * 8, (off_t)(a / PAGE_SZ) * 8);
		if (k <= 0)
			return 0; /* gone */
		uint32_t got = (uint32_t)(k / 8);
		for (uint32_t i = 0; i < got;) {
			bool take = (pm[i] & PM_PRESENT) && (v->shared || !(pm[i] & PM_FILE));
			if (!take) {
				i++;
				continue;
			}
			uint32_t j = i + 1;
			while (j < got && (pm[j] & PM_PRESENT) && (v->shared || !(pm[j] & PM_FILE)))
				j++;
			int r = read_run(memfd, a + (unsigned long)i * PAGE_SZ, j - i, set, w, st, e);
			if (r < 0)
				return r;
			i = j;
		}
		a += (unsigned long)got * PAGE_SZ;
	}
	return 0;
}

static int scan_process(pid_t pid, uint64_t *pm, struct pageset *set, struct page_writer *w, struct mem_round *st,
			struct error *e)
{
	char path[64], line[1024];
	_cleanup_close_ int pmfd = -1, memfd = -1;
	FILE *maps;
	int r = 0;

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
	while (r == 0 && fgets(line, sizeof(line), maps)) {
		struct vma v;
		if (parse_vma(line, &v))
			r = scan_vma(pmfd, memfd, &v, pm, set, w, st, e);
	}
	fclose(maps);
	return r;
}

int memscan_round(pid_t root, struct pageset *set, struct page_writer *w, struct mem_round *st, struct error *e)
{
	pid_t *pids = malloc(MAX_TREE * sizeof(*pids));
	uint64_t *pm = malloc(PM_CHUNK * sizeof(*pm));
	int n, r = 0;

	memset(st, 0, sizeof(*st));
	if (!pids || !pm) {
		free(pids);
		free(pm);
		return error_set(e, ENOMEM, "out of memory for the pre-copy scan");
	}
	n = memscan_tree(root, pids, MAX_TREE, e);
	for (int i = 0; r == 0 && i < n; i++)
		r = scan_process(pids[i], pm, set, w, st, e);
	free(pids);
	free(pm);
	return r;
}
