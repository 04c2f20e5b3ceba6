/* cmt's per-host configuration: <state root>/config, lines of `key = value`,
 * '#' starts a comment.  Unknown keys are an error (a typo must not be
 * silently ignored). */
#pragma once
#include <limits.h>
#include <stdbool.h>

#include "util/error.h"

struct config {
	char root[PATH_MAX];          /* state root (--root), default /var/lib/cmt */
	char runc_root[PATH_MAX];     /* runc's state root (--runc-root), default /run/runc */
	char criu[PATH_MAX];          /* CRIU binary, "" = search */
	char runc[PATH_MAX];          /* runc binary, "" = search */
	char name[64];                /* this host's name for messages, default hostname */
	char cgroup_parent[256];      /* cgroup under which restored containers live, "" = as in config.json */
	/* network identity (engine/net.h): how a recreated namespace is attached here */
	char net_attach[PATH_MAX];    /* "bridge" (default) or an executable: `PROG attach|detach` */
	char net_bridge[16];          /* the bridge of net_attach = bridge (default cmt0) */
	char net_route_hook[PATH_MAX]; /* executable run as `PROG route` after a container arrived, "" = none */
	char images_tmpfs[32];        /* CRIU's images in memory: "yes" (default), "no", or the tmpfs's size (512m, 2g, 25%) */
	bool early_freeze;            /* early_freeze = yes: freeze a container before runc checkpoint starts, not when
	                               * CRIU is about to (the late freeze, doc/design.md "Late freeze") */
	bool staged_restore;          /* staged_restore = no: the destination starts runc's restore only once the
	                               * images are there, not before the freeze (criu/gate.h); default yes */
};

void config_defaults(struct config *c);
/* Parses the text of a config file into c (fields set by the command line
 * are kept when keep_criu/keep_runc say so).  'origin' names the file in
 * errors. */
int config_parse(struct config *c, const char *text, const char *origin, struct error *e);
/* Loads <root>/config if it exists. */
int config_load(struct config *c, struct error *e);
