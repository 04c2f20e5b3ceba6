/* CRIU's own share of the frozen window, read from the timestamps of its
 * log (doc/design.md "The frozen window").
 *
 * Every line CRIU logs begins with "(SS.UUUUUU)": seconds since the log was
 * opened.  A dump's share runs from the freeze (the log's start, or, when cmt
 * freezes from CRIU's pre-dump action script, the end of that step) to the
 * images being complete ("Starting lazy pages server" for a lazy dump,
 * "Dumping finished successfully" otherwise); a restore's from the log's
 * start to "Restore finished successfully".  The time CRIU waits for cmt's
 * action script at its other steps ("\t[path]" lines) is cmt's, not CRIU's,
 * and is left out.  What runs before CRIU opens its log (its start, runc's
 * before it) is not in it: the rest of each step is cmt's and runc's. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

enum criu_log_op { CRIU_LOG_DUMP, CRIU_LOG_RESTORE };

/* CRIU's own time in ms from a log text; 'after_pre_dump': the freeze happened
 * in the pre-dump step (count from its end).  0 on success; -ENOENT when the
 * log lacks the end marker (CRIU failed, or a log of another kind), -EINVAL
 * when a timestamp is malformed.  Lines out of order (the restored tasks
 * log into the same file) are taken as they come. */
int criu_log_own_ms(const char *text, size_t len, enum criu_log_op op, bool after_pre_dump, double *ms);
/* The same for a log file (read up to 16 MiB: a longer log is cut there). */
int criu_log_own_ms_file(const char *path, enum criu_log_op op, bool after_pre_dump, double *ms);
