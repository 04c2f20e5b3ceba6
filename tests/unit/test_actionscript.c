/* Unit tests of the CRIU action script that calls back into cmt
 * (src/criu/actionscript.c): the script is run here as CRIU runs it (sh,
 * CRTOOLS_SCRIPT_ACTION in the environment). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criu/actionscript.h"
#include "tap.h"

static int calls;
static int answer_with;

static int cb(void *arg, struct error *e)
{
	(void)arg;
	calls++;
	if (answer_with < 0)
		return error_set(e, -answer_with, "the freeze failed (test)");
	return 0;
}

/* runs the script for one step as CRIU would; its exit status */
static int run_step(const char *script, const char *step)
{
	pid_t pid = fork();
	int st = -1;

	if (pid == 0) {
		setenv("CRTOOLS_SCRIPT_ACTION", step, 1);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(void)
{
	char dir[] = "/tmp/cmt-test-action-XXXXXX", script[PATH_MAX];
	struct criu_action a;
	struct error e = { 0 };
	struct stat sb;

	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));

	/* the step CRIU waits for: the callback runs once, the script says ok */
	calls = 0;
	answer_with = 0;
	is_int(criu_action_start(&a, dir, "pre-dump", cb, NULL, &e), 0, "started in %s", dir);
	snprintf(script, sizeof(script), "%s", a.script);
	ok(stat(script, &sb) == 0 && (sb.st_mode & 0100), "the script is there, executable");
	is_int(run_step(script, "network-lock"), 0, "another step: answered at once");
	is_int(calls, 0, "... without calling back");
	is_int(run_step(script, "pre-dump"), 0, "pre-dump: the callback said yes, the script exits 0");
	is_int(calls, 1, "... after one call");
	is_int(run_step(script, "pre-dump"), 1, "pre-dump again: refused (one call per dump)");
	is_int(calls, 1, "... the callback did not run twice");
	criu_action_stop(&a);
	ok(a.called && a.result == 0, "the outcome is kept after the stop");
	is_int(run_step(script, "post-dump"), 0, "after the stop, a later step is still answered at once");
	criu_action_stop(&a); /* twice: harmless */

	/* a callback that fails: CRIU must give up the dump */
	calls = 0;
	answer_with = -EIO;
	is_int(criu_action_start(&a, dir, "pre-dump", cb, NULL, &e), 0, "started again");
	is_int(run_step(a.script, "pre-dump"), 1, "the callback failed: the script exits 1 (CRIU gives up)");
	criu_action_stop(&a);
	ok(a.called && a.result == -EIO && strstr(a.err.msg, "freeze failed"), "... and its error is kept: %s",
	   a.err.msg);

	/* not started: nothing to serve */
	is_int(criu_action_start(&a, "/tmp/with space", "pre-dump", cb, NULL, &e), -EINVAL,
	       "a work directory that would need quoting is refused: %s", e.msg);
	criu_action_stop(&a);
	is_int(criu_action_start(&a, dir, "pre dump;", cb, NULL, &e), -EINVAL, "so is a strange step name");
	criu_action_stop(&a);

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("cannot remove %s", dir);
	return done_testing();
}
