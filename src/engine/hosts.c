#include "engine/hosts.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "engine/checks.h"
#include "transport/rsh.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

#define PROBE_BYTES (8u << 20)

int hosts_parse_list(const char *list, const char *root, char hosts[][256], int max, struct error *e)
{
	_cleanup_free_ char *text = NULL;
	int n = 0;

	if (!list) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/hosts", root);
		if (read_file(path, 1 << 20, &text, NULL, e) < 0) {
			error_hint(e, "give --candidates H1,H2,... or list one host per line in %s", path);
			return -e->code;
		}
		/* drop comments */
		for (char *p = text; (p = strchr(p, '#'));)
			while (*p && *p != '\n')
				*p++ = ' ';
		list = text;
	}
	for (const char *p = list; *p;) {
		size_t k;
		p += strspn(p, ", \t\n");
		k = strcspn(p, ", \t\n");
		if (!k)
			break;
		if (k >= 256)
			return error_set(e, EINVAL, "host name too long: %.40s...", p);
		if (*p == '-')
			/* it would reach the remote shell as an option */
			return error_set(e, EINVAL, "bad host '%.*s': a host name cannot start with '-'", (int)(k > 60 ? 60 : k), p);
		if (n == max)
			return error_set(e, E2BIG, "too many candidate hosts (at most %d)", max);
		memcpy(hosts[n], p, k);
		hosts[n][k] = 0;
		n++;
		p += k;
	}
	if (!n)
		return error_set(e, EINVAL, "no candidate hosts given");
	return n;
}

double hosts_score(const struct host_probe *p)
{
	double free_after_gib = (double)(p->mem_available_kib - p->need_kib) / 1048576.0;
	double load_per_cpu = p->ncpu > 0 ? p->load1 / p->ncpu : p->load1;
	double bw = p->mbps > 0 ? log2(p->mbps) : 0;

	/* memory left after the move dominates, then idle CPUs, then the link */
	return free_after_gib * 10.0 - load_per_cpu * 20.0 + bw * 2.0 - p->rtt_ms * 0.5;
}

static int measure(struct peer *p, struct host_probe *hp, struct error *e)
{
	struct msg m;
	double t0;
	int r;
	_cleanup_free_ uint8_t *buf = calloc(1, 1 << 20);
	struct mbuf mb;

	if (!buf)
		return error_set(e, ENOMEM, "out of memory");
	hp->rtt_ms = 1e9;
	for (int i = 0; i < 3; i++) {
		t0 = now_ms();
		if ((r = proto_send_msg(&p->conn, MSG_PING, NULL, e)) < 0 || (r = proto_recv_msg(&p->conn, MSG_PONG, &m, e)) < 0)
			return r;
		msg_free(&m);
		if (now_ms() - t0 < hp->rtt_ms)
			hp->rtt_ms = now_ms() - t0;
	}
	mb_init(&mb);
	mb_u32(&mb, A_AREA, AREA_PROBE);
	t0 = now_ms();
	r = proto_send(&p->conn, MSG_STREAM_BEGIN, 9, mb.b, (uint32_t)mb.len, e);
	mb_free(&mb);
	for (uint32_t sent = 0; r >= 0 && sent < PROBE_BYTES; sent += 1 << 20)
		r = proto_send(&p->conn, MSG_DATA, 9, buf, 1 << 20, e);
	if (r < 0)
		return r;
	mb_init(&mb);
	mb_u64(&mb, A_BYTES, PROBE_BYTES);
	mb_u64(&mb, A_HASH, 0);
	r = proto_send(&p->conn, MSG_STREAM_END, 9, mb.b, (uint32_t)mb.len, e);
	mb_free(&mb);
	if (r < 0 || (r = proto_recv_msg(&p->conn, MSG_STREAM_OK, &m, e)) < 0)
		return r;
	msg_free(&m);
	hp->mbps = PROBE_BYTES / 1048576.0 / ((now_ms() - t0) / 1000.0);
	return 0;
}

/* Runs in a child: one candidate. */
static void probe_one(struct ctx *c, const struct hosts_opts *o, const struct workload *w, const char *host,
		      struct host_probe *hp)
{
	struct error e = { 0 };
	struct peer p;
	struct check_list *l = calloc(1, sizeof(*l));

	memset(hp, 0, sizeof(*hp));
	snprintf(hp->host, sizeof(hp->host), "%s", host);
	if (!l) {
		snprintf(hp->error, sizeof(hp->error), "out of memory");
		return;
	}
	if (peer_connect(&p, o->rsh, host, o->remote_cmt, c->cfg.name, &e) < 0) {
		snprintf(hp->error, sizeof(hp->error), "%s", e.msg);
		free(l);
		return;
	}
	hp->reachable = true;
	if (checks_run(c, &p, w, o->mode, l, &e) < 0 || measure(&p, hp, &e) < 0) {
		snprintf(hp->error, sizeof(hp->error), "%s", e.msg);
		hp->reachable = false;
	} else {
		size_t fl = 0;
		hp->compatible = !checks_failed(l);
		for (int i = 0; i < l->n; i++)
			if (l->c[i].status == CHECK_FAIL)
				fl += (size_t)snprintf(hp->failed + fl, sizeof(hp->failed) - fl, "%s%s: %s", fl ? "; " : "",
						       l->c[i].name, l->c[i].detail);
		hp->mem_available_kib = facts_num(&l->dst, "mem_available_kib", 0);
		hp->need_kib = l->need_kib;
		hp->load1 = (double)facts_num(&l->dst, "load1_x100", 0) / 100.0;
		hp->ncpu = (double)facts_num(&l->dst, "ncpu", 1);
		hp->score = hosts_score(hp);
	}
	proto_send_msg(&p.conn, MSG_ABORT, NULL, &e);
	peer_close(&p);
	free(l);
}

static int by_rank(const void *a, const void *b)
{
	const struct host_probe *x = a, *y = b;

	if (x->compatible != y->compatible)
		return x->compatible ? -1 : 1;
	if (x->reachable != y->reachable)
		return x->reachable ? -1 : 1;
	return x->score < y->score ? 1 : x->score > y->score ? -1 : 0;
}

int hosts_probe(struct ctx *c, const struct hosts_opts *o, struct host_probe *out, int *n, struct error *e)
{
	char hosts[HOSTS_MAX][256];
	pid_t pids[HOSTS_MAX];
	int fds[HOSTS_MAX];
	struct workload w;
	const struct driver *drv = driver_for(o->kind);
	int nh, r, timeout_s = o->timeout_s > 0 ? o->timeout_s : 20;
	double deadline;

	nh = hosts_parse_list(o->candidates, c->cfg.root, hosts, HOSTS_MAX, e);
	if (nh < 0)
		return nh;
	memset(&w, 0, sizeof(w));
	if (o->workload && (r = drv->inspect(c, o->workload, &w, e)) < 0)
		return r;
	ctx_need_criu(c, e); /* resolved once, before the children inherit it */
	ctx_need_runc(c, e);
	error_clear(e);
	fflush(NULL);
	for (int i = 0; i < nh; i++) {
		int pf[2];
		memset(&out[i], 0, sizeof(out[i]));
		snprintf(out[i].host, sizeof(out[i].host), "%s", hosts[i]);
		fds[i] = -1;
		pids[i] = -1;
		if (pipe2(pf, O_CLOEXEC) < 0) {
			snprintf(out[i].error, sizeof(out[i].error), "pipe: %s", strerror(errno));
			continue;
		}
		pids[i] = fork();
		if (pids[i] == 0) {
			struct host_probe hp;
			close(pf[0]);
			probe_one(c, o, o->workload ? &w : NULL, hosts[i], &hp);
			ssize_t k = write(pf[1], &hp, sizeof(hp));
			_exit(k == (ssize_t)sizeof(hp) ? 0 : 1);
		}
		close(pf[1]);
		if (pids[i] < 0) {
			close(pf[0]);
			snprintf(out[i].error, sizeof(out[i].error), "fork: %s", strerror(errno));
			continue;
		}
		fds[i] = pf[0];
	}
	/* Collect; a probe that hangs is killed at the deadline, the others go on. */
	deadline = now_ms() + timeout_s * 1000.0;
	for (;;) {
		struct pollfd pfd[HOSTS_MAX];
		int idx[HOSTS_MAX], np = 0;
		for (int i = 0; i < nh; i++)
			if (fds[i] >= 0) {
				pfd[np] = (struct pollfd){ fds[i], POLLIN, 0 };
				idx[np++] = i;
			}
		if (!np)
			break;
		double left = deadline - now_ms();
		if (left <= 0)
			break;
		int k = poll(pfd, (nfds_t)np, (int)left + 1);
		if (k < 0 && errno == EINTR)
			continue;
		for (int j = 0; j < np; j++) {
			if (!(pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int i = idx[j];
			struct host_probe hp;
			ssize_t got = read(fds[i], &hp, sizeof(hp));
			if (got == (ssize_t)sizeof(hp))
				out[i] = hp;
			else
				snprintf(out[i].error, sizeof(out[i].error), "the probe of %s crashed", hosts[i]);
			close(fds[i]);
			fds[i] = -1;
		}
	}
	for (int i = 0; i < nh; i++) {
		if (fds[i] >= 0) {
			snprintf(out[i].error, sizeof(out[i].error), "no answer within %d s (probe timed out)", timeout_s);
			close(fds[i]);
		}
		if (pids[i] > 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
		}
	}
	workload_free(&w);
	qsort(out, (size_t)nh, sizeof(out[0]), by_rank);
	*n = nh;
	return 0;
}

int hosts_pick_best(struct ctx *c, enum workload_kind kind, const char *workload, const char *candidates,
		    const char *rsh, const char *remote_cmt, const char *mode, char *best, size_t n, struct error *e)
{
	struct host_probe *hp = calloc(HOSTS_MAX, sizeof(*hp));
	struct hosts_opts o = { kind, workload, candidates, rsh, remote_cmt, mode, 0 };
	int nh = 0, r;

	if (!hp)
		return error_set(e, ENOMEM, "out of memory");
	r = hosts_probe(c, &o, hp, &nh, e);
	if (r == 0) {
		if (nh > 0 && hp[0].compatible) {
			snprintf(best, n, "%s", hp[0].host);
		} else {
			char why[1024];
			size_t l = 0;
			for (int i = 0; i < nh; i++)
				l += (size_t)snprintf(why + l, sizeof(why) - l, "%s%s: %s", i ? "; " : "", hp[i].host,
						      hp[i].error[0] ? hp[i].error : hp[i].failed);
			r = error_set(e, EHOSTUNREACH, "no compatible host among the candidates");
			error_detail(e, "%s", why);
			error_hint(e, "`cmt hosts` shows each candidate's checks");
		}
	}
	free(hp);
	return r;
}
