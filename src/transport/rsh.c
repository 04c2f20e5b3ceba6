#include "transport/rsh.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

int split_words(char *buf, char *words[], int max, struct error *e)
{
	char *r = buf, *w = buf;
	int n = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == '\n')
			r++;
		if (!*r)
			break;
		if (n == max)
			/* not quoting buf: the words before were already cut out of it */
			return error_set(e, E2BIG, "too many words in command (at most %d)", max);
		words[n++] = w;
		while (*r && *r != ' ' && *r != '\t' && *r != '\n') {
			if (*r == '\'' || *r == '"') {
				char q = *r++;
				while (*r && *r != q) {
					if (q == '"' && *r == '\\' && r[1])
						r++;
					*w++ = *r++;
				}
				if (!*r)
					return error_set(e, EINVAL, "unterminated %c quote in command", q);
				r++;
			} else if (*r == '\\' && r[1]) {
				r++;
				*w++ = *r++;
			} else {
				*w++ = *r++;
			}
		}
		if (*r)
			r++;
		*w++ = 0; /* w never passes r: a word is written where it was read */
	}
	return n;
}

char rsh_control_dir[256];

/* argv[0..n) is the remote shell: add connection sharing to a plain ssh. */
static int add_sharing(char *argv[], int n, const char *rsh, char *opts, size_t olen)
{
	const char *base = strrchr(argv[0], '/');

	base = base ? base + 1 : argv[0];
	if (!rsh_control_dir[0] || strcmp(base, "ssh") != 0 || strstr(rsh, "ControlPath") || strstr(rsh, "ControlMaster") ||
	    strstr(rsh, " -S"))
		return n;
	/* a socket path is at most 108 bytes: %C is 40, ssh adds ~17 while binding */
	struct error tmp = { 0 };
	if (strlen(rsh_control_dir) > 48 || mkdir_p(rsh_control_dir, 0700, &tmp) < 0)
		return n;
	snprintf(opts, olen, "ControlPath=%s/%%C", rsh_control_dir);
	memmove(argv + 7, argv + 1, (size_t)(n - 1) * sizeof(argv[0]));
	argv[1] = "-o";
	argv[2] = "ControlMaster=auto";
	argv[3] = "-o";
	argv[4] = "ControlPersist=60";
	argv[5] = "-o";
	argv[6] = opts;
	return n + 6;
}

int proto_version_check(unsigned major, unsigned minor, const char *software, const char *where, struct error *e)
{
	if (major != PROTO_MAJOR) {
		error_set(e, EPROTONOSUPPORT,
			  "incompatible cmt on %s: it speaks protocol %u.%u (%s), this cmt speaks %d.%d (cmt %s)", where, major,
			  minor, software, PROTO_MAJOR, PROTO_MINOR, CMT_VERSION);
		error_hint(e, "install the same major version of cmt on both hosts");
		return -EPROTONOSUPPORT;
	}
	return 0;
}

int peer_connect(struct peer *p, const char *rsh, const char *host, const char *remote_cmt, const char *my_name,
		 struct error *e)
{
	char rbuf[1024], cbuf[1024], ctl[320];
	char *argv[2 * RSH_MAX_WORDS + 12];
	int n, m, to, from, r;
	struct mbuf mb;
	struct msg msg;
	const char *at;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	snprintf(p->host, sizeof(p->host), "%s", host);
	at = strchr(host, '@');
	snprintf(p->name, sizeof(p->name), "%s", at ? at + 1 : host);
	if (snprintf(rbuf, sizeof(rbuf), "%s", rsh) >= (int)sizeof(rbuf) ||
	    snprintf(cbuf, sizeof(cbuf), "%s", remote_cmt) >= (int)sizeof(cbuf))
		return error_set(e, E2BIG, "--rsh or --remote-cmt is too long");
	n = split_words(rbuf, argv, RSH_MAX_WORDS, e);
	if (n < 0)
		return error_wrap(e, "bad --rsh");
	if (n == 0)
		return error_set(e, EINVAL, "--rsh is empty");
	n = add_sharing(argv, n, rsh, ctl, sizeof(ctl));
	argv[n++] = (char *)host;
	m = split_words(cbuf, argv + n, RSH_MAX_WORDS, e);
	if (m < 0)
		return error_wrap(e, "bad --remote-cmt");
	if (m == 0)
		return error_set(e, EINVAL, "--remote-cmt is empty");
	n += m;
	argv[n++] = "agent";
	argv[n++] = "--stdio";
	argv[n] = NULL;

	r = spawn_piped(argv, &p->pid, &to, &from, e);
	if (r < 0)
		return error_wrap(e, "cannot start the remote shell for %s", p->name);
	r = proto_conn_init(&p->conn, from, to, p->name, e);
	if (r < 0) {
		close(to);
		close(from);
		peer_close(p);
		return r;
	}
	/* the remote shell and the agent's start are bounded too (a host that
	 * accepts the connection and then hangs must not hang cmt) */
	p->conn.timeout_ms = RSH_CONNECT_TIMEOUT_MS;
	mb_init(&mb);
	mb_u32(&mb, A_MAGIC, PROTO_HELLO_MAGIC);
	mb_u32(&mb, A_VER_MAJOR, PROTO_MAJOR);
	mb_u32(&mb, A_VER_MINOR, PROTO_MINOR);
	mb_str(&mb, A_SOFTWARE, "cmt " CMT_VERSION);
	mb_str(&mb, A_HOST, my_name);
	r = proto_send_msg(&p->conn, MSG_HELLO, &mb, e);
	mb_free(&mb);
	if (r >= 0)
		r = proto_recv_msg(&p->conn, MSG_WELCOME, &msg, e);
	if (r < 0) {
		/* Find out why: the remote shell's exit status says more than EOF. */
		peer_close(p);
		if (e->code == ECONNRESET || e->code == EPIPE) {
			error_set(e, EHOSTUNREACH, "cannot start the cmt agent on %s: the remote shell exited (%s)", p->name,
				  argv_str(argv));
			error_hint(e, "check that '%s %s true' works without a password prompt and that '%s' exists on %s "
				      "(see --rsh and --remote-cmt); the remote shell's own message is printed above",
				  rsh, host, remote_cmt, p->name);
		}
		error_host(e, p->name);
		return -e->code;
	}
	if (msg.num[A_MAGIC] != PROTO_HELLO_MAGIC) {
		msg_free(&msg);
		peer_close(p);
		return error_set(e, EPROTO, "%s answered with a bad protocol magic", p->name);
	}
	p->peer_major = (unsigned)msg.num[A_VER_MAJOR];
	p->peer_minor = (unsigned)msg.num[A_VER_MINOR];
	snprintf(p->peer_software, sizeof(p->peer_software), "%s", msg.str[A_SOFTWARE]);
	snprintf(p->peer_host, sizeof(p->peer_host), "%s", msg.str[A_HOST]);
	msg_free(&msg);
	r = proto_version_check(p->peer_major, p->peer_minor, p->peer_software, p->name, e);
	if (r < 0) {
		peer_close(p);
		return r;
	}
	log_debug("connected to %s (%s, protocol %u.%u, calls itself %s)", p->name, p->peer_software, p->peer_major,
		  p->peer_minor, p->peer_host);
	return 0;
}

void peer_close(struct peer *p)
{
	if (p->conn.rbuf) {
		close(p->conn.rfd);
		close(p->conn.wfd);
		proto_conn_free(&p->conn);
	}
	if (p->pid > 0) {
		/* The remote shell ends when its stdin closes; do not wait forever. */
		for (int i = 0; i < 200; i++) {
			int st;
			pid_t k = waitpid(p->pid, &st, WNOHANG);
			if (k == p->pid || (k < 0 && errno != EINTR))
				goto reaped;
			usleep(10000);
		}
		kill(p->pid, SIGTERM);
		wait_child(p->pid);
reaped:
		p->pid = -1;
	}
}
