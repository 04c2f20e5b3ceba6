/* Unit tests of CRIU's own share of the frozen window, read from its logs
 * (src/criu/logtime.c).  The texts follow CRIU 4.2's log lines. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "criu/logtime.h"
#include "tap.h"
#include "util/fs.h"

/* a late-freeze lazy dump of a runc container: cmt freezes in the pre-dump
 * step (00.0015 -> 00.0177), its script runs again at network-lock (3 ms)
 * and post-dump (2 ms), and the images are complete at status-ready */
static const char lazy_dump[] =
	"(00.000000) CRIU run id = e1bd20b8\n"
	"(00.000240) Running on h1 Linux 6.18\n"
	"(00.001500) Running pre-dump scripts\n"
	"(00.001510) \tRPC\n"
	"(00.001860) \t[/var/lib/cmt/migrations/x/work/criu-action.sh]\n"
	"(00.017730) irmap: Searching irmap cache in work dir\n"
	"(00.018440) freezing cgroup /sys/fs/cgroup/freezer/p/ct: 100 x 100ms attempts, timeout: 10s\n"
	"(00.018940) Running network-lock scripts\n"
	"(00.018950) \tRPC\n"
	"(00.019000) \t[/var/lib/cmt/migrations/x/work/criu-action.sh]\n"
	"(00.022000) RPC NOTIFY query-ext-files: no `opts` returned.\n"
	"a continuation line without a timestamp\n"
	"(00.150000) Running post-dump scripts\n"
	"(00.150010) \tRPC\n"
	"(00.150100) \t[/var/lib/cmt/migrations/x/work/criu-action.sh]\n"
	"(00.152100) net: Unlock network\n"
	"(00.214400) Running status-ready scripts\n"
	"(00.214410) \tRPC\n"
	"(00.214500) \t[/var/lib/cmt/migrations/x/work/criu-action.sh]\n"
	"(00.290300) Accepted connection from 127.0.0.1:52216\n";

static const char cold_dump[] =
	"(00.000000) CRIU run id = 1\n"
	"(00.002000) Running pre-dump scripts\n"
	"(00.002010) \tRPC\n"
	"(00.004000) freezing cgroup /sys/fs/cgroup/freezer/p/ct\n"
	"(01.250000) Writing image inventory (version 1)\n"
	"(01.254000) Dumping finished successfully\n";

/* libCRIU's lazy dump (no notifications: no scripts logged); "finished"
 * comes only once the destination has every page */
static const char lib_lazy_dump[] =
	"(00.000000) CRIU run id = 4\n"
	"(00.002000) freezing processes: 100000 attempts with 100 ms steps\n"
	"(00.090000) Writing image inventory (version 1)\n"
	"(00.091000) Starting lazy pages server\n"
	"(00.091100) Starting page server on port 40643\n"
	"(09.500000) Dumping finished successfully\n";

static const char restore[] =
	"(00.000000) CRIU run id = 2\n"
	"(00.002749) Running pre-restore scripts\n"
	"(00.002758) \tRPC\n"
	"(00.005231)      1: cg: Move into 2\n"
	"(00.037566) Running pre-resume scripts\n"
	"(00.037644) Restore finished successfully. Tasks resumed.\n"
	"(00.037885) Running post-resume scripts\n";

static int own(const char *text, enum criu_log_op op, bool after, double *ms)
{
	*ms = -1;
	return criu_log_own_ms(text, strlen(text), op, after, ms);
}

static bool near(double got, double want)
{
	return fabs(got - want) < 0.01;
}

int main(void)
{
	double ms;

	is_int(own(lazy_dump, CRIU_LOG_DUMP, true, &ms), 0, "a late-freeze lazy dump");
	/* 214.4 - 17.73, less the script at network-lock (3.0) and post-dump (2.0) */
	ok(near(ms, 214.4 - 17.73 - 3.0 - 2.0), "... from the pre-dump step's end to status-ready, without cmt's scripts "
						  "(%.3f ms)", ms);
	is_int(own(lazy_dump, CRIU_LOG_DUMP, false, &ms), 0, "the same log, frozen before CRIU started");
	/* from 0, less every script: pre-dump's 15.87 too */
	ok(near(ms, 214.4 - 15.87 - 3.0 - 2.0), "... counts from the log's start, still without cmt's scripts (%.3f ms)",
	   ms);

	is_int(own(cold_dump, CRIU_LOG_DUMP, true, &ms), 0, "a dump that writes every page");
	ok(near(ms, 1254.0 - 4.0), "... ends at 'Dumping finished successfully' (%.3f ms)", ms);

	is_int(own(lib_lazy_dump, CRIU_LOG_DUMP, false, &ms), 0, "libCRIU's lazy dump");
	ok(near(ms, 91.0), "... ends when its page server starts, not when the last page went (%.3f ms)", ms);

	is_int(own(restore, CRIU_LOG_RESTORE, false, &ms), 0, "a restore");
	ok(near(ms, 37.644), "... from the log's start to 'Restore finished successfully' (%.3f ms)", ms);

	/* the marker of the other operation is not an end */
	is_int(own(restore, CRIU_LOG_DUMP, true, &ms), -ENOENT, "a restore log read as a dump's: no end");
	is_int(own(lazy_dump, CRIU_LOG_RESTORE, false, &ms), -ENOENT, "a dump log read as a restore's: no end");

	/* a failed dump stops before its end marker */
	static const char failed[] = "(00.000000) CRIU run id = 3\n"
				     "(00.010000) Error (criu/cr-dump.c:2093): Dumping FAILED.\n";
	is_int(own(failed, CRIU_LOG_DUMP, true, &ms), -ENOENT, "a failed dump");
	is_int(own("", CRIU_LOG_DUMP, true, &ms), -ENOENT, "an empty log");
	ok(ms == -1, "... leaves the result alone");

	/* malformed timestamps, and time running backwards */
	is_int(own("(00.0x0000) Dumping finished successfully\n", CRIU_LOG_DUMP, false, &ms), -EINVAL,
	       "a timestamp with a letter");
	is_int(own("(.5) Dumping finished successfully\n", CRIU_LOG_DUMP, false, &ms), -EINVAL,
	       "a timestamp without seconds");
	is_int(own("(12) Dumping finished successfully\n", CRIU_LOG_DUMP, false, &ms), -EINVAL,
	       "a timestamp without a fraction");
	is_int(own("(99999999.000000) Dumping finished successfully\n", CRIU_LOG_DUMP, false, &ms), -EINVAL,
	       "a timestamp of more than 8 digits");
	/* a restore's tasks log into the same file: lines a little out of order */
	static const char mixed[] = "(00.000000) CRIU run id = 5\n"
				    "(00.009911) Running post-restore scripts\n"
				    "(00.010029) pie: 85: seccomp: mode 0 on tid 85\n"
				    "(00.010011) pie: 38: seccomp: mode 0 on tid 38\n"
				    "(00.010500) Restore finished successfully. Tasks resumed.\n";
	is_int(own(mixed, CRIU_LOG_RESTORE, false, &ms), 0, "a restore log whose tasks' lines came out of order");
	ok(near(ms, 10.5), "... still counts to its end (%.3f ms)", ms);
	is_int(own("(00.500000) a\n(00.400000) Dumping finished successfully\n", CRIU_LOG_DUMP, false, &ms), 0,
	       "an end marker stamped before the first line");
	ok(ms == 0, "... counts nothing, never less (%.3f ms)", ms);
	is_int(own("(00.100000) a\n(00.400000) Dumping finished successfully", CRIU_LOG_DUMP, false, &ms), 0,
	       "a last line without a newline");
	ok(near(ms, 300.0), "... counts (%.3f ms)", ms);
	/* a marker only as a whole line: "Running status-ready scriptsX" is not one */
	is_int(own("(00.100000) Running status-ready scriptsX\n", CRIU_LOG_DUMP, false, &ms), -ENOENT,
	       "a marker with trailing text is not the marker");
	/* the text is bounded by len, not by a NUL */
	const char cut[] = "(00.100000) a\n(00.200000) Dumping finished successfully\n";
	is_int(criu_log_own_ms(cut, 14, CRIU_LOG_DUMP, false, &ms), -ENOENT, "a text cut before its marker");

	/* the file reader */
	char dir[] = "/tmp/cmt-test-logtime-XXXXXX", path[PATH_MAX];
	struct error e = { 0 };
	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/dump.log", dir);
	is_int(write_file_atomic(path, lazy_dump, strlen(lazy_dump), 0600, &e), 0, "a dump log on disk");
	is_int(criu_log_own_ms_file(path, CRIU_LOG_DUMP, true, &ms), 0, "... read from its file");
	ok(near(ms, 214.4 - 17.73 - 5.0), "... the same figure (%.3f ms)", ms);
	unlink(path);
	is_int(criu_log_own_ms_file(path, CRIU_LOG_DUMP, true, &ms), -ENOENT, "a log that is not there");
	rmdir(dir);
	return done_testing();
}
