/* Per-invocation context shared by the verbs, the engine, the drivers and
 * the agent: configuration and the resolved tools of this host. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "criu/access.h"
#include "util/config.h"

struct ctx {
	struct config cfg;
	const char *cli_criu;   /* --criu */
	const char *cli_runc;   /* --runc */
	struct criu_info criu;  /* valid after ctx_need_criu() */
	char runc[PATH_MAX];    /* valid after ctx_need_runc() */
	char runc_version[32];
	bool criu_checked;      /* `criu check` passed (this run, or cached for this boot) */
};

int ctx_need_criu(struct ctx *c, struct error *e);
int ctx_need_runc(struct ctx *c, struct error *e);
/* `criu check`, at most once per boot and CRIU binary (cached in
 * <root>/cache; only successes are cached). */
int ctx_criu_check(struct ctx *c, struct error *e);
/* criu_cpuinfo_dump, cached the same way. */
int ctx_cpuinfo_dump(struct ctx *c, char **ret_img, size_t *ret_len, struct error *e);
/* criu_cpuinfo_check; a positive answer is cached per source image. */
int ctx_cpuinfo_check(struct ctx *c, const void *img, size_t len, char *why, size_t n, struct error *e);
/* CRIU's feature check (dirty-memory tracking, lazy pages), cached; -1 when
 * CRIU cannot say. */
int ctx_criu_features(struct ctx *c, bool *mem_track, bool *lazy_pages);
