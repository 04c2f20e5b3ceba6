/* The migration journal: each side writes the state of a migration in
 * progress to <root>/migrations/<id>/journal before each step, so that after
 * a crash (SIGKILL at any point) the next cmt on that host can finish or roll
 * the migration back.  A migration whose lock is still held is alive and is
 * left alone.
 *
 * Source states:  prepared -> frozen -> committing -> (removed when done)
 * Destination:    the agent rolls back by itself when the source goes away
 *                 before COMMIT; its journal says what to remove after a crash. */
#pragma once
#include <limits.h>
#include <stdbool.h>

#include "drivers/driver.h"
#include "engine/context.h"

enum journal_state { J_PREPARED, J_FROZEN, J_COMMITTING, J_DEST_PREPARED, J_DEST_RESTORED, J_DEST_COMMITTED };

struct journal {
	char path[PATH_MAX];
	enum journal_state state;
	enum workload_kind kind;
	char workload[256];     /* container ID or pid */
	char freeze_cg[PATH_MAX];
	char peer[256];
	char bundle[PATH_MAX];  /* destination: received bundle */
	char rsh[1024];         /* source: how to reach the peer again (QUERY after a lost DONE) */
	char remote_cmt[1024];
};

const char *journal_state_name(enum journal_state s);
/* Writes (atomically) the journal of migration dir mig_dir. */
int journal_write(const char *mig_dir, const struct journal *j, struct error *e);
int journal_read(const char *mig_dir, struct journal *j, struct error *e);
/* Parses a journal's text (modified in place); path is for messages.  A
 * journal is data from disk: anything malformed is refused (fuzzed). */
int journal_parse(char *text, struct journal *j, const char *path, struct error *e);

/* Outcomes: the agent records what became of every incoming migration in
 * <root>/outcomes/<id> (committed / aborted), written before it answers, so
 * that a source that lost the answer can ask later (QUERY).  Kept for
 * OUTCOME_KEEP_DAYS days. */
#define OUTCOME_KEEP_DAYS 14
int outcome_write(const char *root, const char *mig_id, int outcome, struct error *e);
/* enum outcome (transport/proto.h); OUTCOME_UNKNOWN when there is no record. */
int outcome_read(const char *root, const char *mig_id);
/* Removes records older than OUTCOME_KEEP_DAYS. */
void outcome_prune(const char *root);
/* Removes what failed migrations left for the post-mortem (CRIU logs under
 * <root>/migrations/<id>) once older than OUTCOME_KEEP_DAYS; a migration
 * with a journal is never touched. */
void migrations_prune(const char *root);

/* Finishes or rolls back every migration of this host whose cmt is gone.
 * Prints what it did (one line each) unless quiet.  Returns how many
 * migrations it handled, negative on error. */
int journal_recover(struct ctx *c, bool quiet, struct error *e);
