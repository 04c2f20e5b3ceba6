/* Per-invocation context shared by the verbs, the engine, the drivers and
 * the agent: configuration and the resolved tools of this host. */
#pragma once
#include <limits.h>

#include "criu/access.h"
#include "util/config.h"

struct ctx {
	struct config cfg;
	const char *cli_criu;   /* --criu */
	const char *cli_runc;   /* --runc */
	struct criu_info criu;  /* valid after ctx_need_criu() */
	char runc[PATH_MAX];    /* valid after ctx_need_runc() */
	char runc_version[32];
};

int ctx_need_criu(struct ctx *c, struct error *e);
int ctx_need_runc(struct ctx *c, struct error *e);
