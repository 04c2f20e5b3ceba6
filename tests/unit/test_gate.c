/* Unit tests of the restore gate (src/criu/gate.c): the request-type peek
 * on CRIU's own protobuf encoding, and the gate itself between a socket
 * that holds runc's request and a stand-in CRIU (a script that records
 * that it ran and with which arguments). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criu/rpc.pb-c.h>

#include "criu/gate.h"
#include "tap.h"
#include "util/fs.h"

/* a CriuReq of this type, as libcriu (and runc, in the same wire format) sends it */
static size_t pack_req(CriuReqType type, bool with_opts, uint8_t *buf, size_t n)
{
	CriuReq req = CRIU_REQ__INIT;
	CriuOpts opts = CRIU_OPTS__INIT;

	req.type = type;
	if (with_opts) {
		opts.images_dir_fd = 5;
		opts.has_log_level = true;
		opts.log_level = 4;
		opts.log_file = "restore.log";
		opts.root = "/run/runc/ct1/criu-root";
		opts.has_lazy_pages = true;
		opts.lazy_pages = true;
		req.opts = &opts;
	}
	size_t len = criu_req__get_packed_size(&req);
	if (len > n)
		return 0;
	return criu_req__pack(&req, buf);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* runs the gate in a child as runc would (argv "criu-gate swrk FD", the
 * request in the socket); returns its pid */
static pid_t run_gate(const char *dir, const char *fake_criu, const struct criu_gate *g, CriuReqType type, int *sk_keep)
{
	int sv[2];
	uint8_t buf[1024];
	size_t n = pack_req(type, true, buf, sizeof(buf));

	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0 || n == 0 || write(sv[0], buf, n) != (ssize_t)n)
		BAIL_OUT("cannot set up the socket: %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		char fd[16], link[PATH_MAX + 16];
		snprintf(fd, sizeof(fd), "%d", sv[1]);
		snprintf(link, sizeof(link), "%s/criu-gate", dir);
		close(sv[0]);
		if (g->fd >= 0)
			close(g->fd); /* runc execs the gate: the agent's end (close-on-exec) is not the gate's */
		setenv("CMT_GATE_CRIU", fake_criu, 1);
		setenv("CMT_GATE_FIFO", g->fifo, 1);
		char pidtxt[16];
		snprintf(pidtxt, sizeof(pidtxt), "%d", (int)getppid());
		setenv("CMT_GATE_PID", pidtxt, 1);
		char *argv[] = { link, "swrk", fd, NULL };
		_exit(criu_gate_main(3, argv));
	}
	close(sv[1]);
	*sk_keep = sv[0];
	return pid;
}

/* waits up to ms for pid: its exit status, or -1 while it still runs */
static int wait_ms(pid_t pid, int ms)
{
	double t0 = now_ms();
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (now_ms() - t0 > ms)
			return -1;
		poll(NULL, 0, 10);
	}
}

int main(void)
{
	uint8_t buf[2048];
	size_t n;

	/* --- the peek ---------------------------------------------------------- */
	n = pack_req(CRIU_REQ_TYPE__RESTORE, true, buf, sizeof(buf));
	is_int(criu_req_type_peek(buf, n), CRIU_REQ_RESTORE, "a RESTORE with its options");
	n = pack_req(CRIU_REQ_TYPE__VERSION, false, buf, sizeof(buf));
	is_int(criu_req_type_peek(buf, n), CRIU_REQ_TYPE__VERSION, "a VERSION request (runc's version check)");
	n = pack_req(CRIU_REQ_TYPE__FEATURE_CHECK, true, buf, sizeof(buf));
	is_int(criu_req_type_peek(buf, n), CRIU_REQ_TYPE__FEATURE_CHECK, "a FEATURE_CHECK");
	n = pack_req(CRIU_REQ_TYPE__RESTORE, true, buf, sizeof(buf));
	is_int(criu_req_type_peek(buf, 2), CRIU_REQ_RESTORE, "the type from the first two bytes (a peek that is cut)");
	is_int(criu_req_type_peek(buf, 1), -1, "one byte: no type yet");
	is_int(criu_req_type_peek(buf, 0), -1, "nothing: no type");
	/* field 1 after another field (a different encoder's order) */
	static const uint8_t later[] = { 0x12, 0x02, 0x28, 0x05, 0x08, 0x02 }; /* opts{images_dir_fd=5}, type=2 */
	is_int(criu_req_type_peek(later, sizeof(later)), CRIU_REQ_RESTORE, "the type after an embedded message");
	static const uint8_t bad_len[] = { 0x12, 0x7f, 0x08, 0x02 };
	is_int(criu_req_type_peek(bad_len, sizeof(bad_len)), -1, "a length past the end: no type");
	static const uint8_t group[] = { 0x13, 0x08, 0x02 };
	is_int(criu_req_type_peek(group, sizeof(group)), -1, "a group (wire type 3): no type");
	static const uint8_t endless[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	is_int(criu_req_type_peek(endless, sizeof(endless)), -1, "a varint of more than 10 bytes: no type");
	static const uint8_t huge[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f };
	is_int(criu_req_type_peek(huge, sizeof(huge)), -1, "a type beyond an int: no type");
	static const uint8_t zero_field[] = { 0x00, 0x02 };
	is_int(criu_req_type_peek(zero_field, sizeof(zero_field)), -1, "field number 0: no type");

	ok(criu_gate_invoked("/var/lib/cmt/migrations/x/work/criu-gate") && criu_gate_invoked("criu-gate") &&
		   !criu_gate_invoked("/usr/bin/cmt") && !criu_gate_invoked("criu-gate2") && !criu_gate_invoked(NULL),
	   "the gate is cmt run under the name criu-gate");

	/* --- the gate ---------------------------------------------------------- */
	char dir[] = "/tmp/cmt-test-gate-XXXXXX", fake[PATH_MAX], marker[PATH_MAX], script[PATH_MAX * 2 + 64];
	struct error e = { 0 };
	struct criu_gate g;
	int sk;

	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	snprintf(fake, sizeof(fake), "%s/criu", dir);
	snprintf(marker, sizeof(marker), "%s/ran", dir);
	snprintf(script, sizeof(script), "#!/bin/sh\necho \"$0 $*\" >%s\n", marker);
	if (write_file_atomic(fake, script, strlen(script), 0700, &e) < 0)
		BAIL_OUT("%s", e.msg);

	is_int(criu_gate_make(&g, dir, fake, &e), 0, "the gate's link, FIFO and environment");
	char target[PATH_MAX] = "";
	ssize_t tl = readlink(g.link, target, sizeof(target) - 1);
	if (tl > 0)
		target[tl] = '\0';
	char self[PATH_MAX] = "";
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl > 0)
		self[sl] = '\0';
	is_str(target, self, "... the link names this program");
	struct stat sb;
	ok(stat(g.fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "... the FIFO is there");
	has_str(g.envp[0], "CMT_GATE_CRIU=", "... the environment names the real CRIU");

	/* a VERSION request goes to CRIU at once */
	pid_t pid = run_gate(dir, fake, &g, CRIU_REQ_TYPE__VERSION, &sk);
	is_int(wait_ms(pid, 5000), 0, "a VERSION request: the gate becomes CRIU at once");
	char *txt = NULL;
	ok(read_file(marker, 4096, &txt, NULL, &e) == 0 && strstr(txt, "swrk") && strstr(txt, fake),
	   "... CRIU ran, as itself, with runc's arguments (%s)", txt ? txt : e.msg);
	free(txt);
	txt = NULL;
	close(sk);
	unlink(marker);

	/* a RESTORE waits for "go" */
	pid = run_gate(dir, fake, &g, CRIU_REQ_TYPE__RESTORE, &sk);
	is_int(wait_ms(pid, 300), -1, "a RESTORE waits at the gate");
	ok(access(marker, F_OK) != 0, "... and CRIU has not run");
	is_int(criu_gate_open(&g, &e), 0, "go");
	is_int(wait_ms(pid, 5000), 0, "... the gate becomes CRIU");
	ok(access(marker, F_OK) == 0, "... which runs");
	close(sk);
	unlink(marker);
	criu_gate_close(&g);
	ok(access(g.link, F_OK) != 0 && access(g.fifo, F_OK) != 0, "closing removes the link and the FIFO");
	criu_gate_close(&g); /* twice: nothing */

	/* the agent closes its end: a waiting RESTORE gives up, CRIU never runs */
	is_int(criu_gate_make(&g, dir, fake, &e), 0, "a new gate");
	pid = run_gate(dir, fake, &g, CRIU_REQ_TYPE__RESTORE, &sk);
	is_int(wait_ms(pid, 300), -1, "a RESTORE waits");
	criu_gate_close(&g);
	is_int(wait_ms(pid, 5000), 1, "the agent closes the gate: it exits 1");
	ok(access(marker, F_OK) != 0, "... without running CRIU");
	close(sk);

	/* the agent's end closed before the gate opened the FIFO (an agent that
	 * died early): no POLLHUP ever comes, the read says EOF */
	is_int(criu_gate_make(&g, dir, fake, &e), 0, "a gate whose agent is gone before it waits");
	close(g.fd);
	g.fd = -1;
	pid = run_gate(dir, fake, &g, CRIU_REQ_TYPE__RESTORE, &sk);
	is_int(wait_ms(pid, 5000), 1, "... the gate exits 1 at once");
	ok(access(marker, F_OK) != 0, "... without running CRIU");
	close(sk);
	criu_gate_close(&g);

	/* a word other than go */
	is_int(criu_gate_make(&g, dir, fake, &e), 0, "a third gate");
	pid = run_gate(dir, fake, &g, CRIU_REQ_TYPE__RESTORE, &sk);
	if (write(g.fd, "no\n", 3) != 3)
		diag("write: %s", strerror(errno));
	is_int(wait_ms(pid, 5000), 1, "\"no\": the gate exits 1");
	ok(access(marker, F_OK) != 0, "... without running CRIU");
	close(sk);
	criu_gate_close(&g);

	/* run by anyone else: nothing set up */
	unsetenv("CMT_GATE_CRIU");
	char *argv[] = { "criu-gate", "swrk", "3", NULL };
	is_int(criu_gate_main(3, argv), 127, "without CMT_GATE_CRIU the gate refuses");

	unlink(fake);
	rmdir(dir);
	return done_testing();
}
