#include "engine/hooks.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

static const char *names[HOOK_MAX] = { "pre-dump", "post-dump", "pre-restore", "post-restore", "failed-restore" };

const char *hook_name(enum hook_phase p)
{
	return p < HOOK_MAX ? names[p] : "?";
}

static void setenv_opt(const char *k, const char *v)
{
	if (v)
		setenv(k, v, 1);
	else
		unsetenv(k);
}

int hook_run(struct hooks *h, enum hook_phase p, const struct hook_env *env, struct error *e)
{
	int timeout_s = h->timeout_s > 0 ? h->timeout_s : 60, st = 0;
	struct timespec ts = { 0, 5000000 };
	pid_t pid, k = 0;
	double t0;

	if (p >= HOOK_MAX || !h->cmd[p] || h->ran[p])
		return 0;
	h->ran[p] = true;
	log_info("running %s hook: %s", names[p], h->cmd[p]);
	pid = fork();
	if (pid < 0)
		return error_errno(e, errno, "cannot run the %s hook", names[p]);
	if (pid == 0) {
		setenv("CMT_PHASE", names[p], 1);
		setenv_opt("CMT_WORKLOAD", env->workload);
		setenv_opt("CMT_WORKLOAD_KIND", env->kind);
		setenv_opt("CMT_SOURCE", env->source);
		setenv_opt("CMT_DESTINATION", env->destination);
		setenv_opt("CMT_MODE", env->mode);
		setenv_opt("CMT_MIGRATION_ID", env->migration_id);
		setenv_opt("CMT_ERROR", env->error);
		/* stdout of a hook goes to stderr: stdout is for --json */
		dup2(2, 1);
		close_range(3, ~0U, 0);
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", h->cmd[p], (char *)NULL);
		_exit(127);
	}
	t0 = now_ms();
	while ((k = waitpid(pid, &st, WNOHANG)) == 0) {
		if (now_ms() - t0 > timeout_s * 1000.0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			error_set(e, ETIMEDOUT, "the %s hook did not finish within %d s: %s", names[p], timeout_s, h->cmd[p]);
			error_hint(e, "make the hook faster, or raise --hook-timeout");
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
	if (k < 0)
		return error_errno(e, errno, "waiting for the %s hook", names[p]);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	error_set(e, ECANCELED, "the %s hook failed (%s %d): %s", names[p], WIFEXITED(st) ? "exit status" : "signal",
		  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), h->cmd[p]);
	return -ECANCELED;
}
