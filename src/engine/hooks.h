/* User hooks: commands run on the host where cmt was invoked, through
 * /bin/sh -c, at fixed moments of a migration, with the migration's facts in
 * CMT_* environment variables and a timeout.  Each hook runs at most once per
 * migration.  Nothing received from a peer is ever run: hooks are local.
 *
 *   pre-dump        before the workload is frozen        failure aborts
 *   post-dump       after the dump, workload frozen      failure aborts
 *   pre-restore     before the destination restores      failure aborts
 *   post-restore    after the commit (workload moved)    failure is reported
 *   failed-restore  once, after a failed migration has
 *                   been rolled back (workload on the source again)
 */
#pragma once
#include <stdbool.h>

#include "util/error.h"

enum hook_phase { HOOK_PRE_DUMP, HOOK_POST_DUMP, HOOK_PRE_RESTORE, HOOK_POST_RESTORE, HOOK_FAILED_RESTORE, HOOK_MAX };

struct hook_env {
	const char *workload, *kind, *source, *destination, *mode, *migration_id, *error;
};

struct hooks {
	const char *cmd[HOOK_MAX];
	int timeout_s;       /* default 60 */
	bool ran[HOOK_MAX];
};

const char *hook_name(enum hook_phase p);
/* Runs the hook for phase p if one is set and it has not run yet.  Returns 0
 * when there is none or it succeeded, negative with e set when it failed or
 * timed out. */
int hook_run(struct hooks *h, enum hook_phase p, const struct hook_env *env, struct error *e);
