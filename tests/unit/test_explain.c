/* CRIU logs turned into explanations. */
#include <errno.h>
#include <string.h>

#include "criu/access.h"
#include "tap.h"

static struct error e;

static int explain(const char *log)
{
	memset(&e, 0, sizeof(e));
	return criu_explain_text(log, "dump of container web1", "h1", "/var/lib/cmt/x/dump.log", &e);
}

int main(void)
{
	int r;

	r = explain("(00.01) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n"
		    "(00.20) Error (criu/files-reg.c:1790): Can't lookup mount=27 for fd=1 path=/tmp/out.log\n"
		    "(00.21) Error (criu/cr-dump.c:1975): Dumping FAILED.\n");
	ok(r >= 0, "external fd recognised");
	ok(strstr(e.msg, "file descriptor 1") && strstr(e.msg, "/tmp/out.log"), "names the fd and the file: %s", e.msg);
	ok(strstr(e.hint, "/dev/null") != NULL, "hint says what to do: %s", e.hint);
	ok(strstr(e.detail, "Can't lookup mount=27") != NULL, "quotes the decisive line");
	ok(strstr(e.detail, "RLIMIT_NOFILE") == NULL, "harmless rlimit error left out");
	ok(strstr(e.detail, "/var/lib/cmt/x/dump.log") != NULL, "names the kept log");
	is_str(e.host, "h1", "host");
	is_int(e.code, EBADF, "errno");

	r = explain("Error (criu/sk-inet.c:1): Connected TCP socket, consider using --tcp-established option.\n");
	ok(r >= 0 && strstr(e.msg, "established TCP connection"), "tcp: %s", e.msg);
	r = explain("Error (criu/sockets.c:1): sockets: Can't get 1:16 opt: Operation not supported\n");
	ok(r >= 0 && strstr(e.hint, "4.2"), "old CRIU on new kernel: %s", e.hint);
	r = explain("Error (criu/cr-restore.c:1): Can't fork for 57: File exists\n");
	ok(r >= 0 && strstr(e.msg, "PID 57"), "pid in use: %s", e.msg);
	is_int(e.code, EEXIST, "pid in use errno");
	r = explain("Error (criu/net.c:1): iptables-restore: No such file or directory\n");
	ok(r >= 0 && strstr(e.hint, "iptables"), "network lock tool: %s", e.hint);
	r = explain("Error (criu/page-pipe.c:1): page-pipe: splice: -1: Bad file descriptor\n");
	ok(r >= 0 && strstr(e.hint, "pipe-max-size"), "lazy pages pipe: %s", e.hint);
	r = explain("Error (criu/vdso.c:1): vdso: Unexpected rt vDSO area bounds\n");
	ok(r >= 0 && strstr(e.msg, "vDSO"), "vdso: %s", e.msg);
	r = explain("Error (criu/cpu.c:1): cpu: CPU capabilities mismatch\n");
	ok(r >= 0 && strstr(e.msg, "CPU"), "cpu: %s", e.msg);
	r = explain("Error (criu/sk-queue.c:1): Unsupported socket family 42\n");
	ok(r >= 0 && strstr(e.msg, "socket"), "socket kind: %s", e.msg);
	r = explain("Error (criu/files-reg.c:1): File /data/x.log has bad size 100 (expect 50)\n");
	ok(r >= 0 && strstr(e.msg, "changed"), "file size change: %s", e.msg);
	r = explain("Error (criu/mount.c:1): mnt: Can't dump mount 55\n");
	ok(r >= 0 && strstr(e.msg, "mount"), "mount: %s", e.msg);
	r = explain("Error (criu/seize.c:1): Unable to seize 42: Operation not permitted\n");
	ok(r >= 0 && strstr(e.hint, "debugger"), "tracer: %s", e.hint);
	r = explain("Error (criu/uffd.c:1): uffd: userfaultfd failed: Function not implemented\n");
	ok(r >= 0 && strstr(e.msg, "userfaultfd"), "uffd: %s", e.msg);
	r = explain("Error (criu/image.c:1): write: No space left on device\n");
	ok(r >= 0 && e.code == ENOSPC, "disk full: %s", e.msg);

	r = explain("(00.1) Error (criu/foo.c:1): something nobody has seen\n(00.2) Error (x): second\n");
	ok(r < 0, "unknown failure: no rule");
	ok(strstr(e.msg, "no reason cmt recognises") != NULL, "says so: %s", e.msg);
	ok(strstr(e.detail, "something nobody has seen") && strstr(e.detail, "second"), "quotes the error lines");
	ok(strstr(e.hint, "dump.log") != NULL, "points to the log");
	r = explain("");
	ok(r < 0 && e.msg[0], "empty log still gives a message");
	return done_testing();
}
