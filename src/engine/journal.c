#include "engine/journal.h"
#include "engine/postcopy.h"
#include "engine/net.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/handoff.h"
#include "transport/proto.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

static const char *names[] = { "prepared", "frozen", "committing", "dest-prepared", "dest-restored", "dest-committed" };

const char *journal_state_name(enum journal_state s)
{
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

int journal_write(const char *mig_dir, const struct journal *j, struct error *e)
{
	char path[PATH_MAX + 16], buf[4 * PATH_MAX + 4096];
	int n;

	snprintf(path, sizeof(path), "%s/journal", mig_dir);
	for (const char *f = j->rsh; *f; f++)
		if (*f == '\n')
			return error_set(e, EINVAL, "journal: a newline in the remote shell command");
	for (const char *f = j->remote_cmt; *f; f++)
		if (*f == '\n')
			return error_set(e, EINVAL, "journal: a newline in the remote cmt command");
	n = snprintf(buf, sizeof(buf),
		     "state=%s\nkind=%d\nworkload=%s\nfreeze_cg=%s\npeer=%s\nbundle=%s\nrsh=%s\nremote_cmt=%s\n",
		     journal_state_name(j->state), (int)j->kind, j->workload, j->freeze_cg, j->peer, j->bundle, j->rsh,
		     j->remote_cmt);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return error_set(e, ENAMETOOLONG, "journal entry too long");
	return write_file_atomic(path, buf, (size_t)n, 0600, e);
}

int journal_parse(char *text, struct journal *j, const char *path, struct error *e)
{
	bool have_state = false;

	memset(j, 0, sizeof(*j));
	snprintf(j->path, sizeof(j->path), "%s", path);
	for (char *l = text, *nl; l && *l; l = nl) {
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = 0;
		char *eq = strchr(l, '=');
		if (!eq)
			return error_set(e, EINVAL, "corrupted journal %s: line '%.80s'", path, l);
		*eq = 0;
		const char *v = eq + 1;
		if (!strcmp(l, "state")) {
			for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				if (!strcmp(v, names[i])) {
					j->state = (enum journal_state)i;
					have_state = true;
				}
		} else if (!strcmp(l, "kind")) {
			j->kind = (enum workload_kind)atoi(v);
		} else if (!strcmp(l, "workload")) {
			snprintf(j->workload, sizeof(j->workload), "%s", v);
		} else if (!strcmp(l, "freeze_cg")) {
			snprintf(j->freeze_cg, sizeof(j->freeze_cg), "%s", v);
		} else if (!strcmp(l, "peer")) {
			snprintf(j->peer, sizeof(j->peer), "%s", v);
		} else if (!strcmp(l, "bundle")) {
			snprintf(j->bundle, sizeof(j->bundle), "%s", v);
		} else if (!strcmp(l, "rsh")) {
			snprintf(j->rsh, sizeof(j->rsh), "%s", v);
		} else if (!strcmp(l, "remote_cmt")) {
			snprintf(j->remote_cmt, sizeof(j->remote_cmt), "%s", v);
		}
	}
	if (!have_state || (j->kind != KIND_RUNC && j->kind != KIND_PID) || !j->workload[0])
		return error_set(e, EINVAL, "corrupted journal %s: missing or unknown state, kind or workload", path);
	/* names that become paths or commands: nothing that leaves its directory */
	if (strchr(j->workload, '/') || !strcmp(j->workload, ".") || !strcmp(j->workload, ".."))
		return error_set(e, EINVAL, "corrupted journal %s: bad workload '%.80s'", path, j->workload);
	if (j->kind == KIND_PID) {
		char *end;
		long v = strtol(j->workload, &end, 10);
		if (*end || v <= 1 || j->workload[0] == '+' || j->workload[0] == '-' || j->workload[0] == ' ')
			return error_set(e, EINVAL, "corrupted journal %s: a process tree's workload must be a pid > 1, "
						    "not '%.40s'", path, j->workload);
	}
	if (j->freeze_cg[0] && (strstr(j->freeze_cg, "/../") || strncmp(j->freeze_cg, "/sys/fs/cgroup/", 15) != 0))
		return error_set(e, EINVAL, "corrupted journal %s: bad freezer cgroup '%.80s'", path, j->freeze_cg);
	return 0;
}

int journal_read(const char *mig_dir, struct journal *j, struct error *e)
{
	char path[PATH_MAX + 16];
	_cleanup_free_ char *text = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/journal", mig_dir);
	r = read_file(path, 64 * 1024, &text, NULL, e);
	if (r < 0) {
		memset(j, 0, sizeof(*j));
		return r;
	}
	return journal_parse(text, j, path, e);
}

int outcome_write(const char *root, const char *mig_id, int outcome, struct error *e)
{
	char dir[PATH_MAX + 16], path[PATH_MAX + 96], text[32];
	int r;

	snprintf(dir, sizeof(dir), "%s/outcomes", root);
	r = mkdir_p(dir, 0700, e);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/%s", dir, mig_id);
	r = snprintf(text, sizeof(text), "%s\n", outcome == OUTCOME_COMMITTED ? "committed" : "aborted");
	return write_file_atomic(path, text, (size_t)r, 0600, e);
}

int outcome_read(const char *root, const char *mig_id)
{
	char path[PATH_MAX + 96];
	_cleanup_free_ char *text = NULL;
	struct error e = { 0 };

	snprintf(path, sizeof(path), "%s/outcomes/%s", root, mig_id);
	if (!path_exists(path) || read_file(path, 64, &text, NULL, &e) < 0)
		return OUTCOME_UNKNOWN;
	if (!strcmp(text, "committed\n"))
		return OUTCOME_COMMITTED;
	if (!strcmp(text, "aborted\n"))
		return OUTCOME_ABORTED;
	return OUTCOME_UNKNOWN;
}

/* Removes what is older than OUTCOME_KEEP_DAYS in <root>/<sub>, except the
 * entries keep() wants (NULL: none). */
static void prune_old(const char *root, const char *sub, bool (*keep)(const char *path))
{
	char dir[PATH_MAX + 16];
	time_t limit = time(NULL) - (time_t)OUTCOME_KEEP_DAYS * 86400;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", root, sub);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX + 300];
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) < 0 || st.st_mtime >= limit || (keep && keep(path)))
			continue;
		struct error e = { 0 };
		{
			char im[PATH_MAX + 320];
			snprintf(im, sizeof(im), "%s/images", path);
			mem_dir_drop(im); /* a tmpfs a crash left mounted */
		}
		rm_rf(path, &e);
	}
	closedir(d);
}

void outcome_prune(const char *root)
{
	prune_old(root, "outcomes", NULL);
}

/* a journal means unfinished business: never pruned */
static bool has_journal(const char *mig)
{
	char jp[PATH_MAX + 320];

	snprintf(jp, sizeof(jp), "%s/journal", mig);
	return path_exists(jp);
}

void migrations_prune(const char *root)
{
	prune_old(root, "migrations", has_journal);
}

/* How long an explicit `cmt recover` waits for a migration's lock. */
#define RECOVER_WAIT_MS 15000

/* Is the cmt that owns this migration still alive?  It holds the lock. */
static bool owner_alive(struct ctx *c, const struct journal *j)
{
	char path[PATH_MAX + 300];
	int fd;
	bool alive;

	if (j->state >= J_DEST_PREPARED)
		snprintf(path, sizeof(path), "%s/locks/incoming-%s.lock", c->cfg.root, j->workload);
	else
		snprintf(path, sizeof(path), "%s/locks/%s-%s.lock", c->cfg.root, j->kind == KIND_RUNC ? "container" : "pid",
			 j->workload);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	alive = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd); /* drops the lock if we just took it */
	return alive;
}

static int recover_one(struct ctx *c, const char *mig_dir, const char *id, bool quiet, struct error *e)
{
	struct journal j;
	struct workload w;
	const struct driver *drv;
	int r;

	r = journal_read(mig_dir, &j, e);
	if (r < 0)
		return r;
	if (owner_alive(c, &j)) {
		if (quiet)
			return 0;
		/* Its cmt, or a page relay (post-copy, hybrid) that outlived a
		 * killed cmt: such a relay ends within moments, once the
		 * destination has rolled back, and then this can recover. */
		log_info("migration %s is held by a running cmt or its page relay; waiting up to %d s for it to end", id,
			 RECOVER_WAIT_MS / 1000);
		double t0 = now_ms();
		while (owner_alive(c, &j) && now_ms() - t0 < RECOVER_WAIT_MS)
			poll(NULL, 0, 100);
		if (owner_alive(c, &j)) {
			log_info("migration %s is still in progress: nothing to recover (run `cmt recover` again once it "
				 "has ended)",
				 id);
			return 0;
		}
	}
	drv = driver_for(j.kind);
	memset(&w, 0, sizeof(w));
	w.kind = j.kind;
	snprintf(w.id, sizeof(w.id), "%s", j.workload);
	snprintf(w.label, sizeof(w.label), "%s %s", j.kind == KIND_RUNC ? "container" : "process tree", j.workload);
	snprintf(w.freeze_cg, sizeof(w.freeze_cg), "%s", j.freeze_cg);
	w.pid = j.kind == KIND_PID ? (pid_t)atoi(j.workload) : 0;
	if (j.kind == KIND_PID) {
		char op[PATH_MAX + 32];
		struct error tmp = { 0 };
		snprintf(op, sizeof(op), "%s/orig_cgroups", mig_dir);
		if (path_exists(op))
			read_file(op, 1 << 20, &w.orig_cgroups, NULL, &tmp);
		if (!w.freeze_cg[0])
			pid_freeze_cgroup_path(c, w.pid, w.freeze_cg, sizeof(w.freeze_cg));
	}
	/* post-copy: a page server left running holds the tasks */
	postcopy_recover(mig_dir);
	switch (j.state) {
	case J_PREPARED:
	case J_FROZEN:
		/* the commit was never sent: the workload belongs here */
		w.frozen = j.state == J_FROZEN;
		r = drv->thaw(c, &w, e);
		workload_free(&w);
		if (r < 0 && r != -ENOENT)
			return error_wrap(e, "cannot resume %s (migration %s)", w.label, id);
		net_recover_source(mig_dir, false);
		if (!quiet)
			printf("recovered migration %s: %s resumed on %s (the migration to %s had not committed)\n", id,
			       w.label, c->cfg.name, j.peer);
		break;
	case J_COMMITTING: {
		/* COMMIT was sent but not acknowledged: ask the destination, which
		 * decided when (and whether) COMMIT reached it. */
		struct error qe = { 0 };
		int oc = j.rsh[0] ? handoff_query(j.rsh, j.peer, j.remote_cmt[0] ? j.remote_cmt : "cmt", c->cfg.name, id,
						  HANDOFF_LEASE_MS, &qe)
				  : -error_set(&qe, ENOENT, "the journal does not say how to reach %s", j.peer);
		if (oc == OUTCOME_COMMITTED) {
			w.frozen = true;
			snprintf(w.moved_to, sizeof(w.moved_to), "%s", j.peer);
			r = drv->destroy(c, &w, e);
			workload_free(&w);
			if (r < 0)
				return error_wrap(e, "migration %s committed on %s, but removing the frozen copy of %s here "
						     "failed", id, j.peer, w.label);
			net_recover_source(mig_dir, true);
			if (!quiet)
				printf("recovered migration %s: %s runs on %s (committed); the frozen copy on %s was "
				       "removed\n", id, w.label, j.peer, c->cfg.name);
			break;
		}
		if (oc == OUTCOME_ABORTED) {
			w.frozen = true;
			r = drv->thaw(c, &w, e);
			workload_free(&w);
			if (r < 0 && r != -ENOENT)
				return error_wrap(e, "cannot resume %s (migration %s)", w.label, id);
			net_recover_source(mig_dir, false);
			if (!quiet)
				printf("recovered migration %s: %s rolled back on %s (the commit never took effect); it "
				       "runs on %s again\n", id, w.label, j.peer, c->cfg.name);
			break;
		}
		workload_free(&w);
		if (!quiet)
			printf("migration %s is in doubt: %s is left frozen on %s; %s (%s). Run `cmt recover` again when %s "
			       "answers, or check whether it runs on %s, then remove the copy here (runc delete --force) "
			       "or resume it (runc resume)\n",
			       id, w.label, c->cfg.name,
			       oc < 0 ? "cannot ask the destination" : "the destination says the migration is",
			       oc < 0 ? qe.msg : outcome_name(oc), j.peer, j.peer);
		return 1; /* keep the journal: ask again next time */
	}
	case J_DEST_PREPARED:
	case J_DEST_RESTORED: {
		/* the journal is data from disk: it names what is removed, so it
		 * must name something cmt made under its own state root */
		char bundles[PATH_MAX + 16];
		snprintf(bundles, sizeof(bundles), "%s/bundles", c->cfg.root);
		if (j.bundle[0] && !path_is_under(j.bundle, bundles)) {
			workload_free(&w);
			return error_set(e, EINVAL, "corrupted journal %s: bundle %.200s is not under %s; left alone",
					 j.path, j.bundle, bundles);
		}
		/* the source never got DONE: it still has its copy; remove ours */
		struct restore_req rq = { .kind = j.kind };
		snprintf(rq.id, sizeof(rq.id), "%s", j.workload);
		snprintf(rq.bundle, sizeof(rq.bundle), "%s", j.bundle);
		rq.host = c->cfg.name;
		drv->undo_restore(c, &rq, e);
		error_clear(e);
		{
			/* the namespace made for it, after it (or only the lock of one
			 * that existed) */
			struct net_state ns;
			if (net_state_load(mig_dir, &ns, e) > 0)
				net_rollback(&c->cfg, &ns, j.workload);
			else if (e->code)
				log_warn("%s", e->msg);
			error_clear(e);
		}
		outcome_write(c->cfg.root, id, OUTCOME_ABORTED, e);
		error_clear(e);
		if (!quiet)
			printf("recovered incoming migration %s: the half-restored %s was removed from %s\n", id, w.label,
			       c->cfg.name);
		break;
	}
	case J_DEST_COMMITTED: {
		/* COMMIT arrived and was journaled: the copy here is the one; make
		 * sure it runs (the agent may have died before resuming it) */
		struct restore_req rq = { .kind = j.kind };
		snprintf(rq.id, sizeof(rq.id), "%s", j.workload);
		snprintf(rq.bundle, sizeof(rq.bundle), "%s", j.bundle);
		rq.host = c->cfg.name;
		outcome_write(c->cfg.root, id, OUTCOME_COMMITTED, e);
		error_clear(e);
		{
			struct net_state ns;
			if (net_state_load(mig_dir, &ns, e) > 0)
				net_commit(&c->cfg, &ns, j.workload, j.peer, NULL, 0);
			else if (e->code)
				log_warn("%s", e->msg);
			error_clear(e);
		}
		if (drv->resume(c, &rq, e) < 0) {
			workload_free(&w);
			return error_wrap(e, "migration %s committed, but %s cannot be resumed", id, w.label);
		}
		if (!quiet)
			printf("recovered incoming migration %s: committed; %s runs on %s\n", id, w.label, c->cfg.name);
		break;
	}
	}
	char images[PATH_MAX + 24];
	snprintf(images, sizeof(images), "%s/images", mig_dir);
	mem_dir_drop(images);
	/* pre-copied pages (agent/pagestore.h): as large as the workload */
	snprintf(images, sizeof(images), "%s/pagestore", mig_dir);
	unlink(images);
	unlink(j.path);
	return 1;
}

int journal_recover(struct ctx *c, bool quiet, struct error *e)
{
	char dir[PATH_MAX + 16];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/migrations", c->cfg.root);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char mig[PATH_MAX + 300], jp[PATH_MAX + 320];
		if (de->d_name[0] == '.')
			continue;
		snprintf(mig, sizeof(mig), "%s/%s", dir, de->d_name);
		snprintf(jp, sizeof(jp), "%s/journal", mig);
		if (!path_exists(jp))
			continue;
		struct error one = { 0 };
		int r = recover_one(c, mig, de->d_name, quiet, &one);
		if (r < 0) {
			log_warn("%s", one.msg);
			if (!e->code)
				*e = one;
		}
		n += r > 0;
	}
	closedir(d);
	return e->code ? -e->code : n;
}
