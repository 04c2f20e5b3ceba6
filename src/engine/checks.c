#include "engine/checks.h"
#include "engine/net.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "criu/precheck.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

void check_add(struct check_list *l, const char *name, enum check_status st, const char *hint, const char *fmt, ...)
{
	struct check *k;
	va_list ap;

	if (l->n == CHECKS_MAX)
		return;
	k = &l->c[l->n++];
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->status = st;
	snprintf(k->hint, sizeof(k->hint), "%s", hint ? hint : "");
	va_start(ap, fmt);
	vsnprintf(k->detail, sizeof(k->detail), fmt, ap);
	va_end(ap);
}

int checks_failed(const struct check_list *l)
{
	int n = 0;

	for (int i = 0; i < l->n; i++)
		n += l->c[i].status == CHECK_FAIL;
	return n;
}

bool check_is_about_destination(const char *name)
{
	static const char *dest[] = { "criu-destination", "criu-versions", "runc", "memory", "disk", "cpu", "lazy-pages",
				       "mounts", "network" };

	for (size_t i = 0; i < sizeof(dest) / sizeof(dest[0]); i++)
		if (!strcmp(name, dest[i]))
			return true;
	return false;
}

const char *check_status_name(enum check_status st)
{
	return st == CHECK_PASS ? "pass" : st == CHECK_WARN ? "warn" : "fail";
}

static void check_criu(struct check_list *l, const struct facts *f, const char *side)
{
	char name[40];
	const char *err = facts_get(f, "criu_error"), *chk = facts_get(f, "criu_check");

	snprintf(name, sizeof(name), "criu-%s", side);
	if (err)
		check_add(l, name, CHECK_FAIL, "install CRIU >= 4.2 there (`make deps` in the cmt source tree provisions it)",
			  "on %s: %s", facts_get(f, "host"), err);
	else if (!chk || strncmp(chk, "ok", 2) != 0)
		check_add(l, name, CHECK_FAIL,
			  "CRIU cannot run on this kernel: run `criu check` there and use a CRIU that passes it (>= 4.2)",
			  "on %s: CRIU %s at %s: `criu check` %s", facts_get(f, "host"), facts_get(f, "criu_version"),
			  facts_get(f, "criu_path"), chk ? chk : "did not run");
	else
		check_add(l, name, CHECK_PASS, NULL, "on %s: CRIU %s, `criu check` passes", facts_get(f, "host"),
			  facts_get(f, "criu_version"));
}

static const char *human_kib(long long kib, char *buf, size_t n)
{
	if (kib >= 1024 * 1024)
		snprintf(buf, n, "%.1f GiB", kib / 1048576.0);
	else
		snprintf(buf, n, "%.0f MiB", kib / 1024.0);
	return buf;
}

void checks_evaluate(const struct facts *src, const struct facts *dst, const struct workload *w,
		     const struct precheck *pc, const char *mode, struct check_list *l)
{
	const char *dh = facts_get(dst, "host") ? facts_get(dst, "host") : "destination";
	char b1[32], b2[32];

	check_add(l, "cmt", CHECK_PASS, NULL, "cmt %s here, %s on %s (protocol %s)", CMT_VERSION,
		  facts_get(dst, "cmt_version") ? facts_get(dst, "cmt_version") : "?", dh,
		  facts_get(dst, "protocol") ? facts_get(dst, "protocol") : "?");
	check_criu(l, src, "source");
	check_criu(l, dst, "destination");
	long long sv = facts_num(src, "criu_vnum", -1), dv = facts_num(dst, "criu_vnum", -1);
	if (sv > 0 && dv > 0) {
		if (sv / 10000 != dv / 10000)
			check_add(l, "criu-versions", CHECK_FAIL, "install the same major version of CRIU on both hosts",
				  "CRIU %s here, %s on %s: images of one major version are not read by another",
				  facts_get(src, "criu_version"), facts_get(dst, "criu_version"), dh);
		else if (sv != dv)
			check_add(l, "criu-versions", CHECK_WARN, "the same CRIU version on both hosts is the safest",
				  "CRIU %s here, %s on %s", facts_get(src, "criu_version"), facts_get(dst, "criu_version"),
				  dh);
		else
			check_add(l, "criu-versions", CHECK_PASS, NULL, "CRIU %s on both", facts_get(src, "criu_version"));
	}
	{
		/* kernel C/R features, per host: what each migration mode relies on */
		const char *need_dirty = mode && !strcmp(mode, "precopy") ? " (native pre-copy)" : "";
		check_add(l, "kernel-features", CHECK_PASS, NULL,
			  "dirty-memory tracking%s: %s here, %s on %s; userfaultfd lazy pages: %s here, %s on %s", need_dirty,
			  facts_num(src, "feature_mem_dirty_track", 0) ? "yes" : "no",
			  facts_num(dst, "feature_mem_dirty_track", 0) ? "yes" : "no", dh,
			  facts_num(src, "feature_lazy_pages", 0) ? "yes" : "no",
			  facts_num(dst, "feature_lazy_pages", 0) ? "yes" : "no", dh);
	}
	if (w && w->kind == KIND_RUNC) {
		if (facts_get(dst, "runc_error"))
			check_add(l, "runc", CHECK_FAIL, "install runc on the destination (Debian package runc)", "on %s: %s",
				  dh, facts_get(dst, "runc_error"));
		else
			check_add(l, "runc", CHECK_PASS, NULL, "runc %s here, %s on %s",
				  facts_get(src, "runc_version") ? facts_get(src, "runc_version") : "?",
				  facts_get(dst, "runc_version"), dh);
	}
	if (w && pc) {
		/* with its images in memory (images_tmpfs), the destination holds
		 * them too while the workload is restored: twice its memory */
		bool inmem = facts_num(dst, "images_in_memory", 0) > 0;
		/* hybrid: the pre-copied pages stay in the destination's store
		 * (memory) until the last lazy page is there */
		bool hybrid = mode && !strcmp(mode, "hybrid");
		long long least = pc->rss_kib * (inmem || hybrid ? 2 : 1);
		long long need = least + pc->rss_kib / 4; /* plus a margin */
		long long avail = facts_num(dst, "mem_available_kib", -1);
		const char *also = hybrid  ? " (and its pre-copied pages as much again in memory while its memory follows)"
				   : inmem ? " (and its images as much again in memory while it moves)"
					   : "";
		l->need_kib = need;
		if (avail < 0)
			check_add(l, "memory", CHECK_WARN, NULL, "cannot tell how much memory %s has free", dh);
		else if (avail < least)
			check_add(l, "memory", CHECK_FAIL,
				  inmem ? "free memory on the destination, choose another host (`cmt hosts`), or keep the "
					  "images on its disk there (images_tmpfs = no in its config)"
					: "free memory on the destination or choose another host (`cmt hosts`)",
				  "%s has %s available, the workload holds %s%s", dh, human_kib(avail, b1, sizeof(b1)),
				  human_kib(pc->rss_kib, b2, sizeof(b2)), also);
		else if (avail < need)
			check_add(l, "memory", CHECK_WARN, "the destination will be short of memory after the move",
				  "%s has %s available, the workload holds %s%s", dh, human_kib(avail, b1, sizeof(b1)),
				  human_kib(pc->rss_kib, b2, sizeof(b2)), also);
		else
			check_add(l, "memory", CHECK_PASS, NULL, "%s has %s available, the workload holds %s%s", dh,
				  human_kib(avail, b1, sizeof(b1)), human_kib(pc->rss_kib, b2, sizeof(b2)), also);
		long long disk = facts_num(dst, "disk_free_bytes", -1) / 1024;
		if (inmem)
			check_add(l, "disk", CHECK_PASS, NULL, "%s keeps the images in memory (images_tmpfs)", dh);
		else if (disk >= 0 && disk < pc->rss_kib)
			check_add(l, "disk", CHECK_FAIL, "free space in the destination's state root (/var/lib/cmt)",
				  "%s has %s free for images, they need about %s", dh, human_kib(disk, b1, sizeof(b1)),
				  human_kib(pc->rss_kib, b2, sizeof(b2)));
		else if (disk >= 0)
			check_add(l, "disk", CHECK_PASS, NULL, "%s has %s free for images (about %s needed)", dh,
				  human_kib(disk, b1, sizeof(b1)), human_kib(pc->rss_kib, b2, sizeof(b2)));

		if (pc->n_external)
			check_add(l, "workload-files", CHECK_FAIL,
				  "CRIU cannot dump files opened outside the workload's mounts: run it with stdio on /dev/null "
				  "or pipes opened inside it (`cmt run` gives containers a log monitor)",
				  "%d file descriptor(s) on files outside the workload's mounts, e.g. %s", pc->n_external,
				  pc->external[0]);
		else
			check_add(l, "workload-files", CHECK_PASS, NULL, "all %d process(es) have only files CRIU can dump",
				  pc->nproc);
		if (pc->n_traced)
			check_add(l, "workload-tracer", CHECK_FAIL, "detach the debugger (or strace) from the workload",
				  "%s", pc->traced[0]);
		if (pc->n_unknown_sockets)
			check_add(l, "workload-sockets", CHECK_WARN, "CRIU may refuse this socket: close it before migrating",
				  "%d socket(s) of a kind cmt does not recognise, e.g. %s", pc->n_unknown_sockets,
				  pc->unknown_sockets[0]);
		if (pc->tcp_established) {
			l->tcp_established = true;
			bool ipt_s = facts_num(src, "iptables_restore", 0), ipt_d = facts_num(dst, "iptables_restore", 0);
			if (!ipt_s || !ipt_d)
				check_add(l, "tcp-repair", CHECK_FAIL,
					  "install iptables (Debian package iptables): CRIU locks the network with it",
					  "%d established TCP connection(s) need the network lock, and iptables-restore is "
					  "missing on %s",
					  pc->tcp_established, !ipt_s ? facts_get(src, "host") : dh);
			else
				check_add(l, "tcp-repair", CHECK_PASS, NULL,
					  "%d established TCP connection(s), carried with TCP repair (--tcp-established)",
					  pc->tcp_established);
		}
		if (w->kind == KIND_RUNC && w->config_json) {
			char np[256];
			struct error ne = { 0 };
			const char *how = facts_get(dst, "net_attach");
			if (net_path_from_config(w->config_json, np, sizeof(np), &ne) == NET_NS_PATH) {
				if (!how)
					check_add(l, "network", CHECK_WARN, "upgrade cmt on the destination",
						  "the container's network namespace %s moves, and %s cannot say how it "
						  "would attach it", np, dh);
				else if (!facts_num(dst, "net_attach_ok", 0))
					check_add(l, "network", CHECK_FAIL,
						  "create the bridge, or set net_bridge / net_attach in the destination's "
						  "config (README, \"Network identity\")",
						  "the container's network namespace %s moves; %s attaches it with %s, which "
						  "is missing there", np, dh, how);
				else
					check_add(l, "network", CHECK_PASS, NULL,
						  "the network namespace %s moves with its addresses (attached with %s on %s "
						  "unless one exists there at the restore)", np, how, dh);
			}
		}
		if (w->kind == KIND_PID && !facts_num(src, "freezer_v1", 0))
			check_add(l, "freezer", CHECK_FAIL, "run the workload as a container (runc) on this host",
				  "no cgroup v1 freezer here: cmt cannot freeze a process tree");
	}
	if (mode && (!strcmp(mode, "postcopy") || !strcmp(mode, "hybrid"))) {
		if (!facts_num(dst, "feature_lazy_pages", 0))
			check_add(l, "lazy-pages", CHECK_FAIL, "use --mode cold or precopy",
				  "%s: CRIU reports no userfaultfd lazy-pages support", dh);
		else if (!facts_num(dst, "cap_sys_resource", 0) && facts_num(dst, "pipe_max_size", 0) < 4194304)
			check_add(l, "lazy-pages", CHECK_FAIL, "run `sysctl fs.pipe-max-size=4194304` on the destination",
				  "%s: fs.pipe-max-size is %lld and root lacks CAP_SYS_RESOURCE: CRIU's lazy page transfer "
				  "would fail",
				  dh, facts_num(dst, "pipe_max_size", 0));
		else
			check_add(l, "lazy-pages", CHECK_PASS, NULL, "%s supports lazy (post-copy) restore", dh);
	}
}

/* A container's bundle: config.json readable and valid, the root filesystem
 * readable, and the source of every bind mount outside it present here and
 * on the destination (cmt does not carry such mounts yet). */
static int check_bundle(struct peer *p, const struct workload *w, struct check_list *l, struct error *e)
{
	json_error_t je;
	json_t *cfg, *mounts, *mt;
	size_t i;
	char *req = NULL;
	size_t rl = 0, rcap = 0;
	int nbind = 0, r = 0;

	if (access(w->rootfs, R_OK | X_OK) < 0) {
		check_add(l, "bundle", CHECK_FAIL, "check the container's bundle on this host",
			  "root filesystem %s is not readable: %s", w->rootfs, strerror(errno));
		return 0;
	}
	cfg = json_loads(w->config_json, 0, &je);
	if (!cfg) {
		check_add(l, "bundle", CHECK_FAIL, "fix the container's config.json", "config.json of %s: %s", w->id,
			  je.text);
		return 0;
	}
	mounts = json_object_get(cfg, "mounts");
	json_array_foreach(mounts, i, mt)
	{
		const char *type = json_string_value(json_object_get(mt, "type"));
		const char *src = json_string_value(json_object_get(mt, "source"));
		json_t *opts = json_object_get(mt, "options"), *o;
		size_t k;
		bool bind = type && !strcmp(type, "bind");
		json_array_foreach(opts, k, o)
		{
			const char *os = json_string_value(o);
			bind |= os && (!strcmp(os, "bind") || !strcmp(os, "rbind"));
		}
		if (!bind || !src || src[0] != '/')
			continue;
		/* copied or skipped volumes need nothing on the destination */
		const char *mdst = json_string_value(json_object_get(mt, "destination"));
		bool carried = false;
		for (int v = 0; v < w->nvols && mdst; v++)
			if (!strcmp(w->vols[v].dest, mdst) && w->vols[v].policy != VOL_SHARED)
				carried = true;
		if (carried)
			continue;
		if (access(src, F_OK) < 0) {
			check_add(l, "bundle", CHECK_FAIL, "create it or remove the mount from config.json",
				  "bind mount source %s of %s is missing here", src, w->id);
			json_decref(cfg);
			free(req);
			return 0;
		}
		size_t need = rl + strlen(src) + 2;
		if (need > rcap) {
			rcap = need * 2;
			char *nr = realloc(req, rcap);
			if (!nr) {
				json_decref(cfg);
				free(req);
				return error_set(e, ENOMEM, "out of memory");
			}
			req = nr;
		}
		rl += (size_t)sprintf(req + rl, "%s\n", src);
		nbind++;
	}
	json_decref(cfg);
	check_add(l, "bundle", CHECK_PASS, NULL, "config.json and root filesystem %s readable, %d bind mount(s)", w->rootfs,
		  nbind);
	if (!nbind)
		return 0;
	struct mbuf mb;
	struct msg m;
	mb_init(&mb);
	mb_str(&mb, A_FACTS, req);
	free(req);
	r = proto_send_msg(&p->conn, MSG_PATHS_REQ, &mb, e);
	mb_free(&mb);
	if (r < 0 || (r = proto_recv_msg(&p->conn, MSG_PATHS, &m, e)) < 0)
		return r;
	char missing[400] = "";
	size_t ml = 0;
	int nmiss = 0;
	for (const char *q = m.str[A_FACTS]; *q; q += strcspn(q, "\n") + (q[strcspn(q, "\n")] == '\n')) {
		if (q[0] == '0' && q[1] == ' ') {
			nmiss++;
			ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "%s%.*s", ml ? ", " : "",
					       (int)strcspn(q + 2, "\n"), q + 2);
			if (ml >= sizeof(missing))
				ml = sizeof(missing) - 1;
		}
	}
	msg_free(&m);
	if (nmiss)
		check_add(l, "mounts", CHECK_FAIL,
			  "create these paths on the destination (or use shared storage) before migrating",
			  "%d bind mount source(s) missing on %s: %s", nmiss, p->name, missing);
	else
		check_add(l, "mounts", CHECK_PASS, NULL, "all %d bind mount source(s) exist on %s", nbind, p->name);
	return 0;
}

/* CPU: CRIU's cpuinfo image of this host, checked by CRIU on the other. */
static int check_cpu(struct ctx *c, struct peer *p, struct check_list *l, struct error *e)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct mbuf mb;
	struct msg m;
	struct error tmp = { 0 };
	int r;

	if (!c->criu.path[0])
		return 0;
	if (ctx_cpuinfo_dump(c, &buf, &len, &tmp) < 0) {
		check_add(l, "cpu", CHECK_WARN, NULL, "cannot describe this host's CPU (criu cpuinfo dump failed)");
		return 0;
	}
	mb_init(&mb);
	mb_bytes(&mb, A_BLOB, buf, len);
	r = proto_send_msg(&p->conn, MSG_CPU_CHECK, &mb, e);
	mb_free(&mb);
	if (r < 0)
		return r;
	r = proto_recv_msg(&p->conn, MSG_CPU_RESULT, &m, e);
	if (r < 0)
		return r;
	if (m.num[A_FLAGS] & CPU_UNKNOWN)
		check_add(l, "cpu", CHECK_WARN, NULL, "cannot compare the CPUs: %s",
			  msg_has(&m, A_MESSAGE) ? m.str[A_MESSAGE] : "no usable CRIU on the destination");
	else if (m.num[A_FLAGS] & CPU_OK)
		check_add(l, "cpu", CHECK_PASS, NULL, "%s's CPU has every feature this host's CPU offers to the workload",
			  p->name);
	else
		check_add(l, "cpu", CHECK_FAIL,
			  "choose a destination with the same or a newer CPU; a process moved anyway could die with SIGILL",
			  "%s's CPU lacks features of this host's CPU: %s", p->name,
			  msg_has(&m, A_MESSAGE) ? m.str[A_MESSAGE] : "criu cpuinfo check failed");
	msg_free(&m);
	return 0;
}

/* A container's stdout and stderr: pipes of a cmt monitor move with it (the
 * log goes on on the destination); pipes of anything else do not. */
static void check_stdio(const struct workload *w, struct check_list *l)
{
	int pipes = 0;

	for (int fd = 1; fd <= 2; fd++) {
		char p[64], t[128];
		snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)w->pid, fd);
		ssize_t k = readlink(p, t, sizeof(t) - 1);
		if (k <= 0)
			return; /* cannot tell */
		t[k] = 0;
		pipes += !strncmp(t, "pipe:", 5);
	}
	if (w->monitor_pid > 0)
		check_add(l, "workload-stdio", CHECK_PASS, NULL,
			  "stdout and stderr belong to cmt monitor %d: the log goes on on the destination (`cmt logs %s`)",
			  (int)w->monitor_pid, w->id);
	else if (pipes)
		check_add(l, "workload-stdio", CHECK_WARN,
			  "start the container with `cmt run` to have its output logged and moved with it",
			  "stdout or stderr of %s is a pipe no cmt monitor owns: on the destination that output goes to "
			  "runc's restore log and is lost",
			  w->label);
}

int checks_run(struct ctx *c, struct peer *p, const struct workload *w, const char *mode, struct check_list *l,
	       struct error *e)
{
	struct msg m;
	struct precheck pc;
	int r;

	memset(l, 0, sizeof(*l));
	/* the destination gathers its facts while this host gathers its own */
	r = proto_send_msg(&p->conn, MSG_FACTS_REQ, NULL, e);
	if (r < 0)
		return r;
	facts_gather(c, &l->src);
	r = proto_recv_msg(&p->conn, MSG_FACTS, &m, e);
	if (r < 0)
		return r;
	r = facts_parse(&l->dst, m.str[A_FACTS], e);
	msg_free(&m);
	if (r < 0)
		return error_wrap(e, "from %s", p->name);
	if (w)
		criu_precheck(w->pid, &pc);
	checks_evaluate(&l->src, &l->dst, w, w ? &pc : NULL, mode, l);
	if (w && w->kind == KIND_RUNC && w->config_json && (r = check_bundle(p, w, l, e)) < 0)
		return r;
	if (w && w->kind == KIND_RUNC)
		check_stdio(w, l);
	if (w)
		return check_cpu(c, p, l, e);
	return 0;
}

void checks_print(const struct check_list *l, const char *dest, bool all)
{
	fprintf(stderr, "cmt: checks for %s:\n", dest);
	for (int i = 0; i < l->n; i++) {
		const struct check *k = &l->c[i];
		if (!all && k->status == CHECK_PASS)
			continue;
		fprintf(stderr, "  %-4s  %-18s %s\n", check_status_name(k->status), k->name, k->detail);
		if (k->status != CHECK_PASS && k->hint[0])
			fprintf(stderr, "        %-18s -> %s\n", "", k->hint);
	}
}

void checks_to_json(const struct check_list *l, void *into)
{
	json_t *arr = json_array();

	for (int i = 0; i < l->n; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(l->c[i].name));
		json_object_set_new(o, "status", json_string(check_status_name(l->c[i].status)));
		json_object_set_new(o, "detail", json_string(l->c[i].detail));
		json_object_set_new(o, "hint", json_string(l->c[i].hint));
		json_array_append_new(arr, o);
	}
	json_object_set_new((json_t *)into, "checks", arr);
}
