/* Turning CRIU's logs into explanations: what failed, why, and what to do.
 * Each rule matches a line of the log; the first rule that matches wins. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "criu/access.h"
#include "util/cleanup.h"
#include "util/fs.h"

struct rule {
	const char *re;   /* extended regex matched against each line */
	int code;         /* errno to report */
	const char *why;  /* printf format; %1..%3 are replaced by capture groups */
	const char *hint;
};

static const struct rule rules[] = {
	{ "Can't lookup mount=([0-9]+) for fd=([0-9]+) path=(.*)", EBADF,
	  "file descriptor %2 refers to %3 on a mount that is not part of the workload's mount namespace (it was "
	  "opened outside the workload, e.g. a host file given as its stdio), which CRIU cannot dump",
	  "start the workload with its stdio on /dev/null or on pipes opened inside its own mounts (`cmt run` gives "
	  "containers a log monitor), or close that file before migrating" },
	{ "Connected TCP socket, consider using --tcp-established", EOPNOTSUPP,
	  "the workload has an established TCP connection, and CRIU was not asked to carry TCP connections",
	  "migrate with TCP connection support (cmt enables it when the workload has such sockets), or close the "
	  "connections first" },
	{ "Can't get [0-9]+:[0-9]+ opt: Operation not supported", EOPNOTSUPP,
	  "this CRIU cannot dump sockets on this kernel (socket option query not supported)",
	  "use CRIU >= 4.2 (kernels >= 6.16 need it): `make deps` provisions it" },
	{ "Can't fork for ([0-9]+): File exists", EEXIST,
	  "PID %1 is already in use, and CRIU restores processes with their original PIDs",
	  "restore into a fresh PID namespace (containers have their own), or stop whatever holds PID %1 on this host" },
	{ "(iptables-restore|ip6tables-restore|nft).*(No such file|not found|Can't exec|Failed to exec)", ENOENT,
	  "the network lock tool is missing (CRIU locks the network with iptables-restore or nftables)",
	  "install iptables (Debian package iptables) on this host, or use nftables for the network lock" },
	{ "page-pipe: splice: -1: Bad file descriptor|F_SETPIPE_SZ", EPERM,
	  "CRIU could not grow a pipe for page transfer: fs.pipe-max-size is too small and this root lacks "
	  "CAP_SYS_RESOURCE",
	  "raise the limit: `sysctl fs.pipe-max-size=4194304`" },
	{ "Unexpected rt vDSO area bounds", ENOTSUP,
	  "this CRIU does not understand this kernel's vDSO layout (CRIU too old for the kernel)",
	  "use CRIU >= 4.2: `make deps` provisions it" },
	{ "([Cc][Pp][Uu]|cpuinfo).*([Mm]ismatch|not supported|[Dd]iffer|missing)", ENOTSUP,
	  "the CPU of this host lacks features the workload's CPU state uses",
	  "choose a destination with the same or a newer CPU (`cmt check` compares them before moving)" },
	{ "(Unsupported|Unknown) socket (family|type)|Can't dump (socket|unix socket)|sk unix: Can't|Unsupported "
	  "socket",
	  EOPNOTSUPP, "the workload uses a kind of socket CRIU cannot dump (%0)",
	  "close that socket before migrating, or run the workload in a way that does not need it" },
	{ "has bad size|has bad mode", ESTALE,
	  "a file the workload keeps open changed between the dump and the restore (%0)",
	  "make sure nothing writes to the workload's files after the freeze; the root filesystem must be copied after "
	  "the dump" },
	{ "(Can't|Unable to) (dump|handle|restore) mount|mnt: .*(unsupported|Unsupported|Can't)|External mount "
	  "is not supported|[Mm]ount .* not found",
	  ENOTSUP, "CRIU cannot handle one of the workload's mounts (%0)",
	  "check the workload's bind mounts and volumes: each must exist on the destination" },
	{ "(Unable to seize|seize.*Operation not permitted|is being traced|PTRACE_SEIZE.*failed)", EBUSY,
	  "CRIU could not take control of a process: another tracer (a debugger or strace) is attached",
	  "detach the debugger from the workload and retry" },
	{ "(userfaultfd|uffd).*(failed|not supported|Function not implemented|Operation not permitted)", ENOTSUP,
	  "userfaultfd is not available, so post-copy (lazy) migration cannot work here",
	  "use a pre-copy or cold migration, or enable userfaultfd (vm.unprivileged_userfaultfd, kernel config)" },
	{ "No space left on device", ENOSPC, "the disk filled up (%0)",
	  "free space where images are written (the state root), or choose another host" },
};

static void subst(char *out, size_t n, const char *fmt, const char *line, const regmatch_t *m)
{
	size_t o = 0;

	for (const char *p = fmt; *p && o + 1 < n; p++) {
		if (*p == '%' && p[1] >= '0' && p[1] <= '3') {
			int g = p[1] - '0';
			if (m[g].rm_so >= 0) {
				int len = (int)(m[g].rm_eo - m[g].rm_so);
				o += (size_t)snprintf(out + o, n - o, "%.*s", len, line + m[g].rm_so);
				if (o >= n)
					o = n - 1;
			}
			p++;
			continue;
		}
		out[o++] = *p;
	}
	out[o] = 0;
}

/* The line with CRIU's timestamp prefix removed: "(00.123) Error (x.c:1): msg". */
static const char *strip_ts(const char *l)
{
	if (*l == '(') {
		const char *c = strchr(l, ')');
		if (c) {
			l = c + 1;
			while (*l == ' ')
				l++;
		}
	}
	return l;
}

int criu_explain_text(const char *text, const char *what, const char *host, const char *log_path, struct error *e)
{
	_cleanup_free_ char *copy = strdup(text ? text : "");
	char errs[ERROR_DETAIL_MAX] = "", why[ERROR_MSG_MAX] = "", hint[ERROR_HINT_MAX] = "", decisive[1024] = "";
	size_t el = 0;
	int matched = -1, nerr = 0;
	regex_t res[ARRAY_SIZE(rules)];

	if (!copy)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
		if (regcomp(&res[i], rules[i].re, REG_EXTENDED) != 0)
			abort(); /* the rules are constants: a bad one is a programming error */
	for (char *l = copy, *next; l; l = next) {
		next = strchr(l, '\n');
		if (next)
			*next++ = 0;
		/* errors CRIU always logs without CAP_SYS_RESOURCE, harmless */
		bool is_err = (strstr(l, "Error (") || strstr(l, "Error:")) && !strstr(l, "Can't setup RLIMIT_NOFILE");
		for (size_t i = 0; matched < 0 && i < ARRAY_SIZE(rules); i++) {
			regmatch_t m[4];
			if (regexec(&res[i], l, 4, m, 0) == 0) {
				matched = (int)i;
				/* group 0 quoted as the line itself without timestamps */
				const char *s = strip_ts(l);
				regmatch_t m0[4];
				regexec(&res[i], s, 4, m0, 0);
				m0[0].rm_so = 0;
				m0[0].rm_eo = (regoff_t)strlen(s);
				subst(why, sizeof(why), rules[i].why, s, m0);
				subst(hint, sizeof(hint), rules[i].hint, s, m0);
				snprintf(decisive, sizeof(decisive), "%s", s);
			}
		}
		if (is_err && nerr < 6 && el < sizeof(errs) - 2) {
			el += (size_t)snprintf(errs + el, sizeof(errs) - el, "%s\n", strip_ts(l));
			if (el >= sizeof(errs))
				el = sizeof(errs) - 1;
			nerr++;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
		regfree(&res[i]);

	if (matched >= 0) {
		error_set(e, rules[matched].code, "%s failed: %s", what, why);
		error_hint(e, "%s", hint);
	} else {
		error_set(e, e && e->code ? e->code : EIO, "%s failed (CRIU gave no reason cmt recognises)", what);
		error_hint(e, "read the CRIU log%s%s for the full story", log_path ? " " : "", log_path ? log_path : "");
	}
	if (e) {
		size_t dl = 0;
		if (matched >= 0 && !strstr(errs, decisive))
			dl += (size_t)snprintf(e->detail + dl, sizeof(e->detail) - dl, "%s\n", decisive);
		dl += (size_t)snprintf(e->detail + dl, sizeof(e->detail) - dl, "%s", errs);
		if (log_path && dl < sizeof(e->detail))
			snprintf(e->detail + dl, sizeof(e->detail) - dl, "(CRIU log kept: %s)", log_path);
		error_host(e, host);
	}
	return matched;
}

void criu_explain(const char *log_path, const char *what, const char *host, struct error *e)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	struct error tmp = { 0 };

	if (read_file(log_path, 64 << 20, &text, &len, &tmp) < 0) {
		error_set(e, e->code ? e->code : EIO, "%s failed, and its CRIU log %s cannot be read", what, log_path);
		error_host(e, host);
		return;
	}
	criu_explain_text(text, what, host, log_path, e);
}
