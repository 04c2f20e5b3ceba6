#include "engine/facts.h"

#include <criu/criu.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "transport/proto.h"
#include "util/cleanup.h"
#include "util/fs.h"

void facts_set(struct facts *f, const char *key, const char *fmt, ...)
{
	va_list ap;
	int i;

	for (i = 0; i < f->n; i++)
		if (!strcmp(f->key[i], key))
			break;
	if (i == f->n) {
		if (f->n == FACTS_MAX)
			return;
		f->n++;
		snprintf(f->key[i], sizeof(f->key[i]), "%s", key);
	}
	va_start(ap, fmt);
	vsnprintf(f->val[i], sizeof(f->val[i]), fmt, ap);
	va_end(ap);
	for (char *p = f->val[i]; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

const char *facts_get(const struct facts *f, const char *key)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->key[i], key))
			return f->val[i];
	return NULL;
}

long long facts_num(const struct facts *f, const char *key, long long dflt)
{
	const char *v = facts_get(f, key);
	char *end;
	long long n;

	if (!v || !*v)
		return dflt;
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno || *end ? dflt : n;
}

char *facts_format(const struct facts *f)
{
	size_t cap = 1, l = 0;
	char *s;

	for (int i = 0; i < f->n; i++)
		cap += strlen(f->key[i]) + strlen(f->val[i]) + 2;
	s = malloc(cap);
	if (!s)
		return NULL;
	s[0] = 0;
	for (int i = 0; i < f->n; i++)
		l += (size_t)snprintf(s + l, cap - l, "%s=%s\n", f->key[i], f->val[i]);
	return s;
}

int facts_parse(struct facts *f, const char *text, struct error *e)
{
	const char *p = text;
	int line = 0;

	memset(f, 0, sizeof(*f));
	while (*p) {
		const char *nl = strchr(p, '\n'), *eq;
		size_t len = nl ? (size_t)(nl - p) : strlen(p), kl;
		line++;
		eq = memchr(p, '=', len);
		if (!eq)
			return error_set(e, EPROTO, "malformed host facts, line %d has no '='", line);
		kl = (size_t)(eq - p);
		if (kl == 0 || kl >= sizeof(f->key[0]))
			return error_set(e, EPROTO, "malformed host facts, line %d: bad key length %zu", line, kl);
		for (size_t i = 0; i < kl; i++)
			if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == '.' || p[i] == '-'))
				return error_set(e, EPROTO, "malformed host facts, line %d: bad key", line);
		if (len - kl - 1 >= sizeof(f->val[0]))
			return error_set(e, EPROTO, "malformed host facts, line %d: value too long", line);
		if (f->n == FACTS_MAX)
			return error_set(e, EPROTO, "malformed host facts: more than %d entries", FACTS_MAX);
		memcpy(f->key[f->n], p, kl);
		f->key[f->n][kl] = 0;
		memcpy(f->val[f->n], eq + 1, len - kl - 1);
		f->val[f->n][len - kl - 1] = 0;
		f->n++;
		p += len + (nl ? 1 : 0);
	}
	return 0;
}

static long long meminfo_kib(const char *field)
{
	_cleanup_fclose_ FILE *fp = fopen("/proc/meminfo", "re");
	char line[256];
	size_t fl = strlen(field);

	while (fp && fgets(line, sizeof(line), fp))
		if (!strncmp(line, field, fl) && line[fl] == ':')
			return atoll(line + fl + 1);
	return -1;
}

static long long read_ll(const char *path)
{
	_cleanup_fclose_ FILE *fp = fopen(path, "re");
	long long v = -1;

	if (fp && fscanf(fp, "%lld", &v) != 1)
		v = -1;
	return v;
}

/* Bit 24 of the effective capabilities: CAP_SYS_RESOURCE. */
static bool have_sys_resource(void)
{
	_cleanup_fclose_ FILE *fp = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long cap = 0;

	while (fp && fgets(line, sizeof(line), fp))
		if (sscanf(line, "CapEff: %llx", &cap) == 1)
			return cap & (1ull << 24);
	return false;
}

/* The network-lock tool CRIU runs; /usr/sbin may be missing from the PATH
 * of a non-login shell. */
static bool have_iptables_restore(void)
{
	char buf[4096];

	return find_in_path("iptables-restore", buf, sizeof(buf)) == 0 || access("/usr/sbin/iptables-restore", X_OK) == 0;
}

void facts_gather(struct ctx *c, struct facts *f)
{
	struct error e = { 0 };
	struct utsname u;
	struct statvfs sv;
	double load[3];

	memset(f, 0, sizeof(*f));
	facts_set(f, "host", "%s", c->cfg.name);
	facts_set(f, "cmt_version", "%s", CMT_VERSION);
	facts_set(f, "protocol", "%d.%d", PROTO_MAJOR, PROTO_MINOR);
	if (uname(&u) == 0)
		facts_set(f, "kernel", "%s", u.release);
	facts_set(f, "ncpu", "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	if (getloadavg(load, 1) == 1)
		facts_set(f, "load1_x100", "%d", (int)(load[0] * 100));
	facts_set(f, "mem_total_kib", "%lld", meminfo_kib("MemTotal"));
	facts_set(f, "mem_available_kib", "%lld", meminfo_kib("MemAvailable"));
	/* CRIU's images in a tmpfs while a migration runs (config images_tmpfs) */
	facts_set(f, "images_in_memory", "%d", strcmp(c->cfg.images_tmpfs, "no") != 0);
	mkdir_p(c->cfg.root, 0755, &e);
	error_clear(&e);
	if (statvfs(c->cfg.root, &sv) == 0)
		facts_set(f, "disk_free_bytes", "%llu", (unsigned long long)sv.f_bavail * sv.f_frsize);
	facts_set(f, "pipe_max_size", "%lld", read_ll("/proc/sys/fs/pipe-max-size"));
	facts_set(f, "cap_sys_resource", "%d", have_sys_resource() ? 1 : 0);
	facts_set(f, "iptables_restore", "%d", have_iptables_restore() ? 1 : 0);
	facts_set(f, "freezer_v1", "%d", access("/sys/fs/cgroup/freezer/cgroup.procs", W_OK) == 0 ? 1 : 0);
	/* how a container's network namespace would be attached here (engine/net.h) */
	if (!strcmp(c->cfg.net_attach, "bridge")) {
		facts_set(f, "net_attach", "bridge %s", c->cfg.net_bridge);
		facts_set(f, "net_attach_ok", "%d", if_nametoindex(c->cfg.net_bridge) ? 1 : 0);
	} else {
		facts_set(f, "net_attach", "%s", c->cfg.net_attach);
		facts_set(f, "net_attach_ok", "%d", access(c->cfg.net_attach, X_OK) == 0 ? 1 : 0);
	}

	if (ctx_need_criu(c, &e) < 0) {
		facts_set(f, "criu_error", "%s", e.msg);
	} else {
		facts_set(f, "criu_path", "%s", c->criu.path);
		facts_set(f, "criu_version", "%s", c->criu.version);
		facts_set(f, "criu_vnum", "%d", c->criu.vnum);
		error_clear(&e);
		if (ctx_criu_check(c, &e) < 0) {
			/* first line of what CRIU said */
			char first[400] = "";
			for (const char *p = e.detail; *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] == '\n')) {
				size_t l = strcspn(p, "\n");
				if (l && !strstr(p, "Warn") && !strstr(p, "RLIMIT_NOFILE")) {
					snprintf(first, sizeof(first), "%.*s", (int)l, p);
					break;
				}
			}
			facts_set(f, "criu_check", "fail: %s", first[0] ? first : e.msg);
		} else {
			facts_set(f, "criu_check", "ok");
		}
		bool mt, lp;
		if (ctx_criu_features(c, &mt, &lp) == 0) {
			facts_set(f, "feature_mem_dirty_track", "%d", mt ? 1 : 0);
			facts_set(f, "feature_lazy_pages", "%d", lp ? 1 : 0);
		}
	}
	error_clear(&e);
	if (ctx_need_runc(c, &e) < 0)
		facts_set(f, "runc_error", "%s", e.msg);
	else
		facts_set(f, "runc_version", "%s", c->runc_version);
}
