#include "engine/context.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
