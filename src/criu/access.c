#include "criu/access.h"

#include <criu/criu.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

static int parse_version(const char *out, char *ver, size_t n)
{
	const char *p = strstr(out, "Version:");
	int a = 0, b = 0, c = 0;

	if (!p)
		return -1;
	p += 8;
	while (*p == ' ')
		p++;
	if (sscanf(p, "%d.%d.%d", &a, &b, &c) < 2)
		return -1;
	snprintf(ver, n, "%.*s", (int)strcspn(p, " \n"), p);
	return a * 10000 + b * 100 + c;
}

static int try_criu(const char *path, const char *source, struct criu_info *ci, struct error *e)
{
	struct run_result rr;
	char *argv[] = { (char *)path, "--version", NULL };
	struct run_opts o = { .timeout_ms = 10000 };
	int r;

	if (access(path, X_OK) < 0)
		return error_errno(e, errno, "CRIU binary %s (from %s) is not executable", path, source);
	r = run_cmd(argv, &o, &rr, e);
	if (r < 0)
		return r;
	if (rr.status != 0) {
		error_set(e, ENOEXEC, "CRIU at %s (from %s) does not run: `criu --version` exited with %d", path, source,
			  rr.status);
		error_detail(e, "%s%s", rr.err, rr.out);
		error_hint(e, "install CRIU >= 4.2 (run `make deps` in the cmt source tree, or point --criu at a working binary)");
		run_result_free(&rr);
		return -ENOEXEC;
	}
	snprintf(ci->path, sizeof(ci->path), "%s", path);
	ci->source = source;
	ci->vnum = parse_version(rr.out, ci->version, sizeof(ci->version));
	run_result_free(&rr);
	if (ci->vnum < 0)
		return error_set(e, ENOEXEC, "cannot read the version of CRIU at %s", path);
	if (ci->vnum < CRIU_MIN_VERSION) {
		error_set(e, ENOTSUP, "CRIU %s at %s (from %s) is too old: cmt needs CRIU >= 4.2", ci->version, path, source);
		error_hint(e, "CRIU before 4.2 cannot dump sockets on kernels >= 6.16; run `make deps` to provision CRIU 4.2, "
			      "or pass --criu");
		return -ENOTSUP;
	}
	return 0;
}

int criu_find(const struct config *cfg, const char *cli_path, struct criu_info *ci, struct error *e)
{
	char buf[PATH_MAX];

	memset(ci, 0, sizeof(*ci));
	if (cli_path && *cli_path)
		return try_criu(cli_path, "--criu", ci, e);
	if (cfg->criu[0])
		return try_criu(cfg->criu, "config", ci, e);
	snprintf(buf, sizeof(buf), "%s/usr/sbin/criu", CMT_CRIU_PREFIX);
	if (access(buf, X_OK) == 0)
		return try_criu(buf, "provisioned prefix", ci, e);
	if (find_in_path("criu", buf, sizeof(buf)) == 0)
		return try_criu(buf, "PATH", ci, e);
	error_set(e, ENOENT, "CRIU not found (looked at --criu, the config file, %s/usr/sbin/criu and PATH)",
		  CMT_CRIU_PREFIX);
	error_hint(e, "install CRIU >= 4.2: `make deps` in the cmt source tree provisions it");
	return -ENOENT;
}

int criu_selfcheck(const struct criu_info *ci, struct error *e)
{
	struct run_result rr;
	char *argv[] = { (char *)ci->path, "check", NULL };
	struct run_opts o = { .timeout_ms = 30000 };
	int r = run_cmd(argv, &o, &rr, e);

	if (r < 0)
		return r;
	if (rr.status != 0) {
		error_set(e, ENOTSUP, "`criu check` fails with CRIU %s at %s (exit %d)", ci->version, ci->path, rr.status);
		error_detail(e, "%s%s", rr.out, rr.err);
		error_hint(e, "this kernel lacks something CRIU needs, or this CRIU does not support it: read the lines above");
		run_result_free(&rr);
		return -ENOTSUP;
	}
	run_result_free(&rr);
	return 0;
}

/* Runs `criu cpuinfo VERB -D <temporary dir>`, with in_img placed there
 * first (check) or the resulting image read back into *out_img (dump). */
static int cpuinfo_run(const struct criu_info *ci, const char *verb, const void *in_img, size_t in_len,
		       char **out_img, size_t *out_len, struct run_result *rr, struct error *e)
{
	char dir[] = "/tmp/cmt-cpuinfo.XXXXXX", img[64];
	struct run_opts o = { .timeout_ms = 30000 };
	int r = 0;

	memset(rr, 0, sizeof(*rr));
	if (!mkdtemp(dir))
		return error_errno(e, errno, "cannot create a temporary directory");
	snprintf(img, sizeof(img), "%s/cpuinfo.img", dir);
	if (in_img)
		r = write_file_atomic(img, in_img, in_len, 0600, e);
	if (r == 0) {
		char *argv[] = { (char *)ci->path, "cpuinfo", (char *)verb, "-D", dir, NULL };
		r = run_cmd(argv, &o, rr, e);
	}
	if (r == 0 && out_img) {
		if (rr->status != 0)
			r = error_set(e, EIO, "`criu cpuinfo dump` exited with %d", rr->status);
		else
			r = read_file(img, 64 * 1024, out_img, out_len, e);
	}
	unlink(img);
	rmdir(dir);
	return r;
}

int criu_cpuinfo_dump(const struct criu_info *ci, char **ret_img, size_t *ret_len, struct error *e)
{
	struct run_result rr;
	int r = cpuinfo_run(ci, "dump", NULL, 0, ret_img, ret_len, &rr, e);

	run_result_free(&rr);
	return r;
}

int criu_cpuinfo_check(const struct criu_info *ci, const void *img, size_t len, char *why, size_t n, struct error *e)
{
	struct run_result rr;
	int r = cpuinfo_run(ci, "check", img, len, NULL, NULL, &rr, e);

	why[0] = 0;
	if (r == 0 && rr.status != 0) {
		/* CRIU names what differs on its error lines */
		for (char *l = rr.err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			if (strstr(l, "Error") && !strstr(l, "RLIMIT")) {
				snprintf(why, n, "%.*s", (int)strcspn(l, "\n"), l);
				break;
			}
		}
	}
	if (r == 0)
		r = rr.status == 0;
	run_result_free(&rr);
	return r;
}

static int setup_opts(criu_opts **opts, const struct criu_info *ci, const struct criu_tree_opts *o, const char *log,
		      int *img_fd, int *work_fd, struct error *e)
{
	if (criu_local_init_opts(opts) < 0)
		return error_set(e, ENOMEM, "cannot initialise libcriu");
	if (criu_local_set_service_binary(*opts, ci->path) < 0)
		return error_set(e, ENOMEM, "cannot initialise libcriu");
	*img_fd = open(o->images_dir, O_DIRECTORY | O_RDONLY);
	if (*img_fd < 0)
		return error_errno(e, errno, "cannot open image directory %s", o->images_dir);
	*work_fd = open(o->work_dir, O_DIRECTORY | O_RDONLY);
	if (*work_fd < 0)
		return error_errno(e, errno, "cannot open work directory %s", o->work_dir);
	criu_local_set_images_dir_fd(*opts, *img_fd);
	criu_local_set_work_dir_fd(*opts, *work_fd);
	criu_local_set_log_file(*opts, log);
	criu_local_set_log_level(*opts, 4);
	criu_local_set_shell_job(*opts, o->shell_job);
	criu_local_set_tcp_established(*opts, o->tcp_established);
	criu_local_set_file_locks(*opts, true);
	if (o->config_file && criu_local_set_config_file(*opts, o->config_file) < 0)
		return error_set(e, ENOMEM, "cannot initialise libcriu");
	return 0;
}

int criu_write_config(const char *work_dir, const char *name, const struct criu_conf *cc, char *out, size_t n,
		      struct error *e)
{
	char text[PATH_MAX + 768];
	size_t l;

	if ((size_t)snprintf(out, n, "%s/%s", work_dir, name) >= n)
		return error_set(e, ENAMETOOLONG, "path too long: %s", work_dir);
	l = (size_t)snprintf(text, sizeof(text), "# written by cmt for this migration only\n");
	if (cc->leave_stopped)
		l += (size_t)snprintf(text + l, sizeof(text) - l,
				      "# restored tasks wait, stopped, for the commit\nleave-stopped\n");
	if (cc->lazy_pages)
		l += (size_t)snprintf(text + l, sizeof(text) - l, "# memory comes (or goes) lazily\nlazy-pages\n");
	if (cc->loopback || cc->port > 0)
		l += (size_t)snprintf(text + l, sizeof(text) - l, "# the page server on loopback only\naddress 127.0.0.1\n");
	if (cc->port > 0)
		l += (size_t)snprintf(text + l, sizeof(text) - l, "port %d\n", cc->port);
	if (cc->netlock_skip)
		l += (size_t)snprintf(text + l, sizeof(text) - l,
				      "# cmt locks the network namespace itself, or nothing outside reaches it\n"
				      "network-lock skip\n");
	if (cc->action_script)
		l += (size_t)snprintf(text + l, sizeof(text) - l,
				      "# cmt freezes the tasks when CRIU is about to\naction-script %s\n", cc->action_script);
	if (l >= sizeof(text))
		return error_set(e, ENAMETOOLONG, "CRIU configuration too long: %s", out);
	return write_file_atomic(out, text, l, 0600, e);
}

static int lazy_ready_fd = -1;

/* CRIU's "status-ready" notification: the lazy page server listens. */
static int notify_ready(char *action, criu_notify_arg_t na)
{
	(void)na;
	if (!strcmp(action, "status-ready") && lazy_ready_fd >= 0) {
		char b = 0;
		if (write(lazy_ready_fd, &b, 1) != 1)
			return 0;
		close(lazy_ready_fd);
		lazy_ready_fd = -1;
	}
	return 0;
}

/* libcriu returns -errno for transport problems and a negative value with
 * errno set by CRIU for a failed operation; the log is what tells. */
int criu_dump_tree(const struct criu_info *ci, pid_t pid, const struct criu_tree_opts *o, const char *host,
		   struct error *e)
{
	criu_opts *opts = NULL;
	int img_fd = -1, work_fd = -1, r;
	char what[64], log[PATH_MAX];

	r = setup_opts(&opts, ci, o, "dump.log", &img_fd, &work_fd, e);
	if (r >= 0) {
		criu_local_set_pid(opts, pid);
		criu_local_set_leave_running(opts, o->leave_running);
		if (o->freeze_cgroup)
			criu_local_set_freeze_cgroup(opts, o->freeze_cgroup);
		if (o->ready_fd >= 0 && o->config_file) {
			lazy_ready_fd = o->ready_fd;
			criu_local_set_notify_cb(opts, notify_ready);
		}
		r = criu_local_dump(opts);
		if (r < 0) {
			snprintf(what, sizeof(what), "dump of process tree %d", (int)pid);
			snprintf(log, sizeof(log), "%s/dump.log", o->work_dir);
			error_set(e, EIO, "CRIU %s failed", what);
			criu_explain(log, what, host, e);
			r = -e->code;
		}
	}
	if (img_fd >= 0)
		close(img_fd);
	if (work_fd >= 0)
		close(work_fd);
	criu_local_free_opts(opts);
	return r < 0 ? r : 0;
}

int criu_restore_tree(const struct criu_info *ci, const struct criu_tree_opts *o, const char *host, pid_t *ret_pid,
		      struct error *e)
{
	criu_opts *opts = NULL;
	int img_fd = -1, work_fd = -1, r;
	char log[PATH_MAX];

	r = setup_opts(&opts, ci, o, "restore.log", &img_fd, &work_fd, e);
	if (r >= 0) {
		/* The destination decides where the tree lives: cgroups are not recreated. */
		criu_local_set_manage_cgroups(opts, true);
		criu_local_set_manage_cgroups_mode(opts, CRIU_CG_MODE_IGNORE);
		r = criu_local_restore(opts);
		if (r < 0) {
			snprintf(log, sizeof(log), "%s/restore.log", o->work_dir);
			error_set(e, EIO, "CRIU restore of the process tree failed");
			criu_explain(log, "restore of the process tree", host, e);
			r = -e->code;
		} else {
			*ret_pid = r;
			r = 0;
		}
	}
	if (img_fd >= 0)
		close(img_fd);
	if (work_fd >= 0)
		close(work_fd);
	criu_local_free_opts(opts);
	return r;
}
