/* cmt version: cmt's own version, protocol, and the CRIU and runc it uses. */
#include <stdio.h>

#include "cli/cli.h"
#include "transport/proto.h"

const char help_version[] =
	"Usage: cmt version\n"
	"\n"
	"Prints the versions of cmt and of its wire protocol, and which CRIU and runc\n"
	"it uses on this host (and where it found them: --criu/--runc, the config\n"
	"file, the provisioned prefix, or PATH).  Exits 1 if CRIU or runc is missing.\n";

int cmd_version(struct ctx *c, int argc, char **argv)
{
	struct error e = { 0 };
	int rc = EXIT_OK;

	(void)argv;
	if (argc > 1)
		return usage_error("version", "no arguments expected");
	printf("cmt %s (protocol %d.%d)\n", CMT_VERSION, PROTO_MAJOR, PROTO_MINOR);
	if (ctx_need_criu(c, &e) == 0) {
		printf("criu %s (%s, from %s)\n", c->criu.version, c->criu.path, c->criu.source);
	} else {
		printf("criu: not usable\n");
		error_print(&e);
		rc = EXIT_FAIL;
	}
	error_clear(&e);
	if (ctx_need_runc(c, &e) == 0) {
		printf("runc %s (%s)\n", c->runc_version, c->runc);
	} else {
		printf("runc: not usable\n");
		error_print(&e);
		rc = EXIT_FAIL;
	}
	return rc;
}
