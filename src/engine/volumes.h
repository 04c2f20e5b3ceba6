/* Volumes: the bind mounts of a container's config.json, each moved by a
 * policy (`--volumes POLICY`, `--volume /DEST=POLICY`):
 *
 *   copy    its contents travel like the root filesystem (copied while the
 *           container runs, the changes while it is frozen) into the
 *           destination's bundle (volumes/N), and the mount points there;
 *   shared  the destination has the same data at the same source path
 *           (checked before anything is frozen);
 *   skip    not carried: the container gets an empty directory there.
 *
 * A bind mount no policy covers stops the migration before anything is
 * frozen, naming the mount: data is never left behind silently. */
#pragma once
#include <limits.h>
#include <stdbool.h>

#include "util/error.h"

enum vol_policy { VOL_NONE = 0, VOL_COPY, VOL_SHARED, VOL_SKIP };

#define VOL_MAX 32

struct volume {
	char dest[PATH_MAX];     /* where the container sees it */
	char source[PATH_MAX];   /* on this host */
	enum vol_policy policy;
	bool is_dir;
};

struct vol_rule {
	const char *dest;
	enum vol_policy policy;
};

const char *vol_policy_name(enum vol_policy p);
int vol_policy_parse(const char *s, enum vol_policy *ret);
/* "--volume /data=copy" -> rule; -EINVAL with a message in e. */
int vol_rule_parse(const char *arg, struct vol_rule *r, struct error *e);

/* The bind mounts of config (with absolute sources) and their policies:
 * rules first, then dflt.  label names the container for messages.
 * stat_sources: look at each source on this host (is it a directory?).
 * Returns the count, or negative with e set (a mount without a policy, a
 * file to copy, too many mounts, malformed config). */
int volumes_plan(const char *config, const char *label, enum vol_policy dflt, const struct vol_rule *rules, int nrules,
		 bool stat_sources, struct volume *out, int max, struct error *e);
/* The config as sent to the destination: the source of every copied or
 * skipped volume becomes "volumes/N" (N its index in vols), which the agent
 * resolves inside the bundle it received. */
int volumes_rewrite_config(const char *config, const struct volume *vols, int n, char **ret, struct error *e);
/* Agent: relative mount sources must be "volumes/N"; they become
 * <bundle>/volumes/N (created empty when absent: skipped volumes). */
int volumes_resolve_config(const char *config, const char *bundle, char **ret, struct error *e);
