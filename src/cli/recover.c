/* cmt recover: finish or roll back migrations whose cmt died. */
#include <stdio.h>

#include "cli/cli.h"
#include "engine/journal.h"

const char help_recover[] =
	"Usage: cmt recover\n"
	"\n"
	"Finishes or rolls back the migrations of this host whose cmt process is gone\n"
	"(killed, crashed, host rebooted), from the journal each side writes before\n"
	"each step in <state root>/migrations/<id>/journal:\n"
	"  source, before the commit       the workload is resumed here\n"
	"  source, commit sent, no answer  in doubt: left frozen, reported (check the\n"
	"                                  destination, then remove or resume it)\n"
	"  destination, before the commit  the half-restored copy is removed\n"
	"Migrations still owned by a live cmt are left alone.  `cmt migrate`, `cmt\n"
	"check` and `cmt ps` run this first, quietly.  Prints one line per migration\n"
	"handled.\n";

int cmd_recover(struct ctx *c, int argc, char **argv)
{
	struct error e = { 0 };
	int n;

	(void)argv;
	if (argc > 1)
		return usage_error("recover", "no arguments expected");
	n = journal_recover(c, false, &e);
	if (n < 0) {
		error_print(&e);
		return EXIT_FAIL;
	}
	if (n == 0)
		printf("nothing to recover\n");
	return EXIT_OK;
}
