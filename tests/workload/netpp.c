/* netpp - a TCP ping-pong that checks itself, for cmt's network tests and demo.
 *
 *   netpp server PORT
 *       accepts connections on 0.0.0.0:PORT; on each, answers every line
 *       "N\n" with "N SERVED\n", SERVED being how many requests that
 *       connection has had (kept in memory: a restarted server starts at 1).
 *   netpp client IP PORT [--interval-ms MS] [--status FILE] [--timeout-ms MS]
 *       connects once, then sends 1, 2, 3, ... one request every MS (default 5),
 *       on schedule whether or not the answers keep up, and reads the answers
 *       as they come (the oldest unanswered one may wait --timeout-ms, default
 *       60000). Checks that the K-th answer says "K K": nothing lost,
 *       duplicated or reordered on either side. Every 100 ms and at the end it writes one status line to
 *       FILE (atomically) and, at the end, to stdout:
 *         sent=N ok=N bad=N reset=0|1 timeout=0|1 max_gap_ms=X last_gap_ms=X
 *         gaps_over_100ms=N state=running|stopped|reset|error error="..."
 *       (max_gap_ms: the longest time between two answers). SIGTERM or
 *       SIGINT stops it; it exits 0 when nothing went wrong, 1 otherwise.
 *
 * Static, no dependencies: it runs in a busybox container as well as on a lab host. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void serve_conn(int fd)
{
	char buf[4096], line[64];
	size_t ll = 0;
	unsigned long served = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = 0;
			ll = 0;
			char out[96];
			int k = snprintf(out, sizeof(out), "%s %lu\n", line, ++served);
			if (write_all(fd, out, (size_t)k) < 0)
				return;
		}
	}
}

static int server(int port)
{
	int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0) {
		fprintf(stderr, "netpp server: port %d: %s\n", port, strerror(errno));
		return 1;
	}
	for (;;) {
		int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "netpp server: accept: %s\n", strerror(errno));
			return 1;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pid_t p = fork();
		if (p == 0) {
			close(s);
			serve_conn(c);
			_exit(0);
		}
		close(c);
	}
}

struct cstat {
	unsigned long sent, ok, bad, over100;
	int reset, timeout;
	double max_gap, last_gap;
	const char *state;
	char error[160];
};

static void status_write(const char *path, const struct cstat *st, FILE *also)
{
	char line[512];
	int n = snprintf(line, sizeof(line),
			 "sent=%lu ok=%lu bad=%lu reset=%d timeout=%d max_gap_ms=%.1f last_gap_ms=%.1f gaps_over_100ms=%lu "
			 "state=%s error=\"%s\"\n",
			 st->sent, st->ok, st->bad, st->reset, st->timeout, st->max_gap, st->last_gap, st->over100, st->state,
			 st->error);
	if (also)
		fputs(line, also);
	if (!path)
		return;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write_all(fd, line, (size_t)n) == 0)
		rename(tmp, path);
	close(fd);
}

static int client(const char *ip, int port, int interval_ms, const char *status, int timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct cstat st = { .state = "running" };
	int one = 1, fd;
	char buf[65536];
	size_t bl = 0;
	double last_answer, last_status = 0, next_send, oldest_sent = 0;

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "netpp client: bad IPv4 address '%s'\n", ip);
		return 2;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(st.error, sizeof(st.error), "connect %s:%d: %s", ip, port, strerror(errno));
		st.state = "error";
		status_write(status, &st, stdout);
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	last_answer = next_send = now_ms();
	/* Requests go out on their schedule whether or not the answers keep up
	 * (at most 100000 outstanding): what the network takes while the
	 * server cannot answer must all come back, in order. */
	while (!stop) {
		double t = now_ms();
		if (t >= next_send && st.sent - (st.ok + st.bad) < 100000) {
			char req[32];
			int k = snprintf(req, sizeof(req), "%lu\n", st.sent + 1);
			ssize_t w = send(fd, req, (size_t)k, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				st.reset = errno == ECONNRESET || errno == EPIPE;
				snprintf(st.error, sizeof(st.error), "send: %s", strerror(errno));
				goto out;
			}
			if (w == k) {
				if (st.sent == st.ok + st.bad)
					oldest_sent = t;
				st.sent++;
				next_send += interval_ms;
				if (next_send < t - 1000)
					next_send = t; /* do not burst after a long stall of this process */
			} else if (w > 0) {
				snprintf(st.error, sizeof(st.error), "short send");
				goto out;
			}
		}
		if (st.sent > st.ok + st.bad && t - oldest_sent > timeout_ms) {
			st.timeout = 1;
			snprintf(st.error, sizeof(st.error), "no answer to request %lu in %d ms", st.ok + st.bad + 1, timeout_ms);
			goto out;
		}
		int wait = (int)(next_send - now_ms());
		if (wait < 0)
			wait = 0;
		if (wait > 100)
			wait = 100;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, wait);
		if (pr < 0 && errno != EINTR)
			goto out;
		if (pr > 0) {
			ssize_t n = read(fd, buf + bl, sizeof(buf) - 1 - bl);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				/* the peer went away (a reset, or a restarted server's close):
				 * as bad as a reset here */
				st.reset = 1;
				snprintf(st.error, sizeof(st.error), "%s",
					 n == 0 ? "connection closed by the server" : strerror(errno));
				goto out;
			}
			bl += (size_t)n;
			char *p = buf, *nl;
			while ((nl = memchr(p, '\n', bl - (size_t)(p - buf)))) {
				unsigned long n1 = 0, n2 = 0, want = st.ok + st.bad + 1;
				*nl = 0;
				if (sscanf(p, "%lu %lu", &n1, &n2) == 2 && n1 == want && n2 == want) {
					st.ok++;
				} else {
					st.bad++;
					if (!st.error[0])
						snprintf(st.error, sizeof(st.error), "request %lu answered '%.60s'", want, p);
				}
				double ta = now_ms();
				st.last_gap = ta - last_answer;
				if (st.last_gap > st.max_gap)
					st.max_gap = st.last_gap;
				if (st.last_gap > 100)
					st.over100++;
				last_answer = ta;
				oldest_sent = ta; /* the next outstanding one was sent before: a bound, not exact */
				p = nl + 1;
			}
			bl -= (size_t)(p - buf);
			memmove(buf, p, bl);
			if (bl >= sizeof(buf) - 1) {
				snprintf(st.error, sizeof(st.error), "answer too long");
				goto out;
			}
		}
		if (now_ms() - last_status >= 100) {
			status_write(status, &st, NULL);
			last_status = now_ms();
		}
	}
	/* stopping: collect the answers still under way (up to a second) */
	for (double t0 = now_ms(); st.sent > st.ok + st.bad && now_ms() - t0 < 1000;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t n = read(fd, buf + bl, sizeof(buf) - 1 - bl);
		if (n <= 0)
			break;
		bl += (size_t)n;
		char *p = buf, *nl;
		while ((nl = memchr(p, '\n', bl - (size_t)(p - buf)))) {
			unsigned long n1 = 0, n2 = 0, want = st.ok + st.bad + 1;
			*nl = 0;
			if (sscanf(p, "%lu %lu", &n1, &n2) == 2 && n1 == want && n2 == want)
				st.ok++;
			else
				st.bad++;
			p = nl + 1;
		}
		bl -= (size_t)(p - buf);
		memmove(buf, p, bl);
	}
	if (st.sent > st.ok + st.bad && !st.error[0])
		snprintf(st.error, sizeof(st.error), "%lu request(s) unanswered at the end", st.sent - st.ok - st.bad);
out:
	if (st.reset)
		st.state = "reset";
	else if (st.error[0] || st.timeout)
		st.state = "error";
	else
		st.state = "stopped";
	status_write(status, &st, stdout);
	close(fd);
	return st.reset || st.timeout || st.bad || st.error[0] ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if (argc >= 4 && !strcmp(argv[1], "client")) {
		int interval = 5, timeout = 60000;
		const char *status = NULL;
		for (int i = 4; i + 1 < argc; i += 2) {
			if (!strcmp(argv[i], "--interval-ms"))
				interval = atoi(argv[i + 1]);
			else if (!strcmp(argv[i], "--status"))
				status = argv[i + 1];
			else if (!strcmp(argv[i], "--timeout-ms"))
				timeout = atoi(argv[i + 1]);
			else
				goto usage;
		}
		if ((argc - 4) % 2 || interval < 0 || timeout <= 0)
			goto usage;
		return client(argv[2], atoi(argv[3]), interval, status, timeout);
	}
usage:
	fprintf(stderr, "usage: netpp server PORT\n"
			"       netpp client IP PORT [--interval-ms MS] [--status FILE] [--timeout-ms MS]\n");
	return 2;
}
