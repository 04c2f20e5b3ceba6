/* The destination side: `cmt agent --stdio`, started by the source through
 * the remote shell.  It speaks the wire protocol on its stdin/stdout,
 * receives images and the bundle under its own state root, restores the
 * workload, and rolls everything back unless the source commits. */
#pragma once
#include "engine/context.h"

int agent_serve_stdio(struct ctx *c);
