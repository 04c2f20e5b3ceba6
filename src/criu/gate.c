#include "criu/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define GO_LINE "go\n"
#define TICK_MS 200 /* how often a waiting gate checks that the agent lives */

/* a protobuf varint at *p (at most 10 bytes, inside [*p, end)) */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

int criu_req_type_peek(const uint8_t *buf, size_t n)
{
	const uint8_t *p = buf, *end = buf + n;

	while (p < end) {
		uint64_t key, v;
		if (varint(&p, end, &key) < 0)
			return -1;
		unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
		if (field == 0)
			return -1;
		switch (wt) {
		case 0: /* varint */
			if (varint(&p, end, &v) < 0)
				return -1;
			if (field == 1)
				return v <= 0x7fffffff ? (int)v : -1;
			break;
		case 1: /* 64-bit */
			if ((size_t)(end - p) < 8)
				return -1;
			p += 8;
			break;
		case 2: /* length-delimited */
			if (varint(&p, end, &v) < 0 || v > (uint64_t)(end - p))
				return -1;
			p += v;
			break;
		case 5: /* 32-bit */
			if ((size_t)(end - p) < 4)
				return -1;
			p += 4;
			break;
		default: /* groups (never in CRIU's messages) and invalid types */
			return -1;
		}
	}
	return -1;
}

int criu_gate_make(struct criu_gate *g, const char *work_dir, const char *criu_path, struct error *e)
{
	char self[PATH_MAX];
	ssize_t k;
	int r;

	memset(g, 0, sizeof(*g));
	g->fd = -1;
	if ((size_t)snprintf(g->link, sizeof(g->link), "%s/%s", work_dir, CRIU_GATE_NAME) >= sizeof(g->link) ||
	    (size_t)snprintf(g->fifo, sizeof(g->fifo), "%s/%s.fifo", work_dir, CRIU_GATE_NAME) >= sizeof(g->fifo) ||
	    strlen(criu_path) + 16 > sizeof(g->env[0]))
		return error_set(e, ENAMETOOLONG, "path too long: %s", work_dir);
	k = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (k <= 0)
		return error_errno(e, errno, "cannot find cmt's own program (/proc/self/exe)");
	self[k] = '\0';
	unlink(g->link);
	unlink(g->fifo);
	g->made = true; /* from here criu_gate_close undoes what is made */
	if (symlink(self, g->link) < 0) {
		r = error_errno(e, errno, "cannot create %s", g->link);
		goto fail;
	}
	if (mkfifo(g->fifo, 0600) < 0) {
		r = error_errno(e, errno, "cannot create the FIFO %s", g->fifo);
		goto fail;
	}
	/* read-write: never blocks, and the gate sees EOF only once it is closed */
	g->fd = open(g->fifo, O_RDWR | O_CLOEXEC);
	if (g->fd < 0) {
		r = error_errno(e, errno, "cannot open the FIFO %s", g->fifo);
		goto fail;
	}
	snprintf(g->env[0], sizeof(g->env[0]), "CMT_GATE_CRIU=%s", criu_path);
	snprintf(g->env[1], sizeof(g->env[1]), "CMT_GATE_FIFO=%s", g->fifo);
	snprintf(g->env[2], sizeof(g->env[2]), "CMT_GATE_PID=%d", (int)getpid());
	for (int i = 0; i < 3; i++)
		g->envp[i] = g->env[i];
	g->envp[3] = NULL;
	return 0;
fail:
	criu_gate_close(g);
	return r;
}

int criu_gate_open(struct criu_gate *g, struct error *e)
{
	if (!g->made || g->fd < 0)
		return error_set(e, EBADF, "the restore gate is not set up");
	if (write(g->fd, GO_LINE, strlen(GO_LINE)) != (ssize_t)strlen(GO_LINE))
		return error_errno(e, errno, "cannot open the restore gate (%s)", g->fifo);
	return 0;
}

void criu_gate_close(struct criu_gate *g)
{
	if (!g->made)
		return;
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
	unlink(g->fifo);
	unlink(g->link);
	g->made = false;
}

bool criu_gate_invoked(const char *argv0)
{
	const char *b = argv0 ? strrchr(argv0, '/') : NULL;
	b = b ? b + 1 : argv0;
	return b && !strcmp(b, CRIU_GATE_NAME);
}

/* Waits for the agent's word: 0 for "go", -1 when it closed the FIFO, said
 * anything else, or is gone. */
static int wait_go(const char *fifo, pid_t agent)
{
	char buf[8];
	size_t have = 0;
	int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "cmt criu-gate: cannot open %s: %s\n", fifo, strerror(errno));
		return -1;
	}
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int k = poll(&pf, 1, TICK_MS);
		if (k < 0 && errno != EINTR)
			break;
		/* read at every wake-up: a FIFO opened after its last writer
		 * closed never reports POLLHUP, but reads EOF */
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			if (agent > 0 && kill(agent, 0) < 0 && errno == ESRCH) {
				fprintf(stderr, "cmt criu-gate: the agent (pid %d) is gone: no restore\n", (int)agent);
				break;
			}
			continue;
		}
		if (n <= 0) {
			fprintf(stderr, "cmt criu-gate: the migration was abandoned before the restore\n");
			break;
		}
		have += (size_t)n;
		buf[have] = '\0';
		if (have >= strlen(GO_LINE) || strchr(buf, '\n')) {
			bool go = !strcmp(buf, GO_LINE);
			if (!go)
				fprintf(stderr, "cmt criu-gate: the agent said no: no restore\n");
			close(fd);
			return go ? 0 : -1;
		}
	}
	close(fd);
	return -1;
}

int criu_gate_main(int argc, char **argv)
{
	const char *real = getenv("CMT_GATE_CRIU"), *fifo = getenv("CMT_GATE_FIFO"), *pid = getenv("CMT_GATE_PID");
	char *end = NULL;

	if (!real || !*real) {
		fprintf(stderr, "cmt criu-gate: CMT_GATE_CRIU is not set (only cmt's agent runs this)\n");
		return 127;
	}
	if (argc == 3 && !strcmp(argv[1], "swrk") && fifo && *fifo) {
		long fd = strtol(argv[2], &end, 10);
		uint8_t buf[512];
		ssize_t k = -1;
		if (end && !*end && fd >= 0 && fd < 1 << 20)
			do
				k = recv((int)fd, buf, sizeof(buf), MSG_PEEK);
			while (k < 0 && errno == EINTR);
		/* runc's request stays in the socket for CRIU; only a restore waits */
		if (k > 0 && criu_req_type_peek(buf, (size_t)k) == CRIU_REQ_RESTORE &&
		    wait_go(fifo, pid ? (pid_t)atoi(pid) : 0) < 0)
			return 1;
	}
	char *criu = strdup(real);
	if (!criu)
		return 127;
	unsetenv("CMT_GATE_CRIU");
	unsetenv("CMT_GATE_FIFO");
	unsetenv("CMT_GATE_PID");
	argv[0] = criu;
	execv(criu, argv);
	fprintf(stderr, "cmt criu-gate: cannot run %s: %s\n", criu, strerror(errno));
	return 127;
}
