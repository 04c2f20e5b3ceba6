/* The verbs of the command line: one file each, a table in main.c. */
#pragma once
#include "engine/context.h"

struct verb {
	const char *name;
	int (*run)(struct ctx *c, int argc, char **argv);
	const char *summary;
	const char *help; /* full help text, printed by `cmt VERB --help` */
};

int cmd_migrate(struct ctx *c, int argc, char **argv);
int cmd_agent(struct ctx *c, int argc, char **argv);
int cmd_ps(struct ctx *c, int argc, char **argv);
int cmd_version(struct ctx *c, int argc, char **argv);
int cmd_check(struct ctx *c, int argc, char **argv);
int cmd_hosts(struct ctx *c, int argc, char **argv);
int cmd_recover(struct ctx *c, int argc, char **argv);
int cmd_run(struct ctx *c, int argc, char **argv);
int cmd_logs(struct ctx *c, int argc, char **argv);
int cmd_monitor(struct ctx *c, int argc, char **argv);

extern const char help_migrate[], help_agent[], help_ps[], help_version[], help_check[], help_hosts[], help_recover[],
	help_run[], help_logs[], help_monitor[];

/* Exit codes */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Prints "cmt VERB: MSG" and "Try 'cmt VERB --help'." and returns EXIT_USAGE. */
int usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
