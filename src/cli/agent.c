/* cmt agent --stdio: the destination side of a migration. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"

const char help_agent[] =
	"Usage: cmt agent --stdio\n"
	"\n"
	"The destination side of a migration.  `cmt migrate` starts it on the\n"
	"destination through the remote shell (like rsync or git do) and speaks the\n"
	"cmt wire protocol with it on stdin/stdout (doc/protocol.md).  It receives\n"
	"images and bundles under this host's state root, restores the workload, and\n"
	"rolls everything back unless the source commits.  It runs no command it is\n"
	"sent, and nothing it receives can land outside the state root.\n"
	"\n"
	"To allow a key to do nothing but migrations, restrict it in authorized_keys:\n"
	"  command=\"cmt agent --stdio\",restrict ssh-ed25519 AAAA... migrations\n";

int cmd_agent(struct ctx *c, int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], "--stdio") != 0)
		return usage_error("agent", "the agent only speaks over stdio: use 'cmt agent --stdio'");
	return agent_serve_stdio(c);
}
