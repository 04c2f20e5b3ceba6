#include "engine/context.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criu/criu.h>
#include <xxhash.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

int ctx_need_criu(struct ctx *c, struct error *e)
{
	if (c->criu.path[0])
		return 0;
	return criu_find(&c->cfg, c->cli_criu, &c->criu, e);
}

int ctx_need_runc(struct ctx *c, struct error *e)
{
	struct run_result rr;
	struct run_opts o = { .timeout_ms = 10000 };
	const char *src;
	char *argv[3];
	int r;

	if (c->runc[0])
		return 0;
	if (c->cli_runc && *c->cli_runc) {
		snprintf(c->runc, sizeof(c->runc), "%s", c->cli_runc);
		src = "--runc";
	} else if (c->cfg.runc[0]) {
		snprintf(c->runc, sizeof(c->runc), "%s", c->cfg.runc);
		src = "the config file";
	} else if (find_in_path("runc", c->runc, sizeof(c->runc)) < 0) {
		c->runc[0] = 0;
		error_set(e, ENOENT, "runc not found in PATH");
		error_hint(e, "install runc (Debian package runc; `make deps` does it) or pass --runc");
		return -ENOENT;
	} else {
		src = "PATH";
	}
	argv[0] = c->runc;
	argv[1] = "--version";
	argv[2] = NULL;
	r = run_cmd(argv, &o, &rr, e);
	if (r < 0 || rr.status != 0) {
		if (r >= 0) {
			error_set(e, ENOEXEC, "runc at %s (from %s) does not run (exit %d)", c->runc, src, rr.status);
			error_detail(e, "%s", rr.err);
			run_result_free(&rr);
		}
		c->runc[0] = 0;
		return -e->code;
	}
	sscanf(rr.out, "runc version %31s", c->runc_version);
	run_result_free(&rr);
	return 0;
}

/* --- per-boot cache of what CRIU says about this host ---------------------
 * `criu check` and `criu cpuinfo dump` take 0.3-1 s each and their answers
 * only change with the kernel (a reboot) or the CRIU binary; a successful
 * answer is kept in <root>/cache/ under a key naming both, so that every
 * migration and check after the first skips them.  Failures are never
 * cached: a fix is noticed at once. */

static int cache_key(const struct ctx *c, char *key, size_t n)
{
	_cleanup_free_ char *boot = NULL;
	struct error e = { 0 };
	struct stat st;

	if (read_file("/proc/sys/kernel/random/boot_id", 128, &boot, NULL, &e) < 0 || stat(c->criu.path, &st) < 0)
		return -1;
	boot[strcspn(boot, "\n")] = 0;
	snprintf(key, n, "boot=%s criu=%s size=%lld mtime=%lld.%09ld\n", boot, c->criu.path, (long long)st.st_size,
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	return 0;
}

/* The cached value of name when its key matches, else NULL (malloc'ed). */
static char *cache_get(const struct ctx *c, const char *name, size_t max, size_t *len)
{
	char key[PATH_MAX + 256], path[PATH_MAX + 64];
	char *text = NULL;
	size_t n = 0, kl;
	struct error e = { 0 };

	if (cache_key(c, key, sizeof(key)) < 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/cache/%s", c->cfg.root, name);
	if (!path_exists(path) || read_file(path, max + sizeof(key), &text, &n, &e) < 0)
		return NULL;
	kl = strlen(key);
	if (n < kl || memcmp(text, key, kl) != 0) {
		free(text);
		return NULL;
	}
	memmove(text, text + kl, n - kl + 1);
	if (len)
		*len = n - kl;
	return text;
}

static void cache_put(const struct ctx *c, const char *name, const void *val, size_t len)
{
	char key[PATH_MAX + 256], path[PATH_MAX + 64];
	struct error e = { 0 };
	size_t kl;
	char *buf;

	if (cache_key(c, key, sizeof(key)) < 0)
		return;
	snprintf(path, sizeof(path), "%s/cache", c->cfg.root);
	if (mkdir_p(path, 0700, &e) < 0)
		return;
	snprintf(path, sizeof(path), "%s/cache/%s", c->cfg.root, name);
	kl = strlen(key);
	buf = malloc(kl + len);
	if (!buf)
		return;
	memcpy(buf, key, kl);
	memcpy(buf + kl, val, len);
	write_file_atomic(path, buf, kl + len, 0600, &e);
	free(buf);
}

int ctx_criu_check(struct ctx *c, struct error *e)
{
	char *v;
	int r;

	if (c->criu_checked)
		return 0;
	r = ctx_need_criu(c, e);
	if (r < 0)
		return r;
	v = cache_get(c, "criu-check", 16, NULL);
	if (v && !strcmp(v, "ok\n")) {
		free(v);
		c->criu_checked = true;
		return 0;
	}
	free(v);
	r = criu_selfcheck(&c->criu, e);
	if (r < 0)
		return r;
	cache_put(c, "criu-check", "ok\n", 3);
	c->criu_checked = true;
	return 0;
}

int ctx_cpuinfo_dump(struct ctx *c, char **ret_img, size_t *ret_len, struct error *e)
{
	size_t n = 0;
	char *v;
	int r;

	r = ctx_need_criu(c, e);
	if (r < 0)
		return r;
	v = cache_get(c, "cpuinfo.img", 64 * 1024, &n);
	if (v && n > 0) {
		*ret_img = v;
		*ret_len = n;
		return 0;
	}
	free(v);
	r = criu_cpuinfo_dump(&c->criu, ret_img, ret_len, e);
	if (r == 0)
		cache_put(c, "cpuinfo.img", *ret_img, *ret_len);
	return r;
}

int ctx_cpuinfo_check(struct ctx *c, const void *img, size_t len, char *why, size_t n, struct error *e)
{
	char name[64];
	char *v;
	int r;

	r = ctx_need_criu(c, e);
	if (r < 0)
		return r;
	/* keyed by the other host's image: the same source CPU, the same answer */
	snprintf(name, sizeof(name), "cpuinfo-ok-%016llx", (unsigned long long)XXH3_64bits(img, len));
	v = cache_get(c, name, 16, NULL);
	if (v && !strcmp(v, "ok\n")) {
		free(v);
		return 1;
	}
	free(v);
	r = criu_cpuinfo_check(&c->criu, img, len, why, n, e);
	if (r == 1)
		cache_put(c, name, "ok\n", 3);
	return r;
}

int ctx_criu_features(struct ctx *c, bool *mem_track, bool *lazy_pages)
{
	struct criu_feature_check fc = { .mem_track = true, .lazy_pages = true };
	struct error e = { 0 };
	criu_opts *o = NULL;
	char *v;
	int r = -1;

	if (ctx_need_criu(c, &e) < 0)
		return -1;
	v = cache_get(c, "criu-features", 64, NULL);
	{
		int a = 0, b = 0;
		if (v && sscanf(v, "mem_track=%d lazy_pages=%d", &a, &b) == 2) {
			*mem_track = a, *lazy_pages = b;
			free(v);
			return 0;
		}
	}
	free(v);
	if (criu_local_init_opts(&o) == 0 && criu_local_set_service_binary(o, c->criu.path) == 0 &&
	    criu_local_feature_check(o, &fc, sizeof(fc)) == 0) {
		char txt[64];
		int k = snprintf(txt, sizeof(txt), "mem_track=%d lazy_pages=%d\n", fc.mem_track ? 1 : 0,
				 fc.lazy_pages ? 1 : 0);
		cache_put(c, "criu-features", txt, (size_t)k);
		*mem_track = fc.mem_track, *lazy_pages = fc.lazy_pages;
		r = 0;
	}
	criu_local_free_opts(o);
	return r;
}
