#include "util/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define FAULT_MAX 16

static struct {
	char point[48];
	char action[16];
	long arg;
} faults[FAULT_MAX];
static int nfaults = -1;
static char path[4200];
static int conn_r = -1, conn_w = -1;
static bool corrupt_pending;
static const char *phase = "";

void fault_init(const char *root, const char *side)
{
	FILE *f;
	char line[256];

	nfaults = 0;
	snprintf(path, sizeof(path), "%s/faults", root);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && nfaults < FAULT_MAX) {
		char s[16], p[48], a[16];
		long arg = 0;
		int n = sscanf(line, "%15s %47s %15s %ld", s, p, a, &arg);
		if (n < 3 || s[0] == '#' || strcmp(s, side) != 0)
			continue;
		snprintf(faults[nfaults].point, sizeof(faults[0].point), "%s", p);
		snprintf(faults[nfaults].action, sizeof(faults[0].action), "%s", a);
		faults[nfaults].arg = arg;
		nfaults++;
	}
	fclose(f);
	if (nfaults)
		log_warn("fault injection is on (%s): %d fault(s) for the %s", path, nfaults, side);
}

void fault_set_conn(int rfd, int wfd)
{
	conn_r = rfd;
	conn_w = wfd;
}

void fault_set_phase(const char *p)
{
	phase = p ? p : "";
}

/* "NAME" matches the point in any phase, "NAME@PHASE" only in that phase */
static bool matches(const char *spec, const char *point)
{
	size_t n = strlen(point);

	if (strncmp(spec, point, n) != 0)
		return false;
	return spec[n] == 0 || (spec[n] == '@' && phase[0] && !strcmp(spec + n + 1, phase));
}

void fault_point(const char *point)
{
	for (int i = 0; i < nfaults; i++) {
		if (!matches(faults[i].point, point))
			continue;
		const char *a = faults[i].action;
		unlink(path); /* once: the recovery that follows must not crash again */
		nfaults = 0;
		log_warn("fault injection: %s at %s", a, point);
		if (!strcmp(a, "kill")) {
			kill(getpid(), SIGKILL);
		} else if (!strcmp(a, "exit")) {
			_exit(3);
		} else if (!strcmp(a, "stall")) {
			struct timespec ts = { faults[i].arg / 1000, (faults[i].arg % 1000) * 1000000L };
			while (nanosleep(&ts, &ts) < 0)
				;
		} else if (!strcmp(a, "cut")) {
			/* Replace both fds with dead ends (dup2 closes what they were,
			 * so the remote shell / sshd sees the connection end): reads
			 * now see EOF and writes EPIPE, as after a network cut. */
			int rd[2], wr[2];
			if (pipe2(rd, O_CLOEXEC) == 0 && pipe2(wr, O_CLOEXEC) == 0) {
				close(rd[1]);
				close(wr[0]);
				if (conn_r >= 0)
					dup3(rd[0], conn_r, O_CLOEXEC);
				if (conn_w >= 0 && conn_w != conn_r)
					dup3(wr[1], conn_w, O_CLOEXEC);
				close(rd[0]);
				close(wr[1]);
			}
		} else if (!strcmp(a, "corrupt")) {
			corrupt_pending = true;
		}
		return;
	}
}

bool fault_take_corrupt(void)
{
	bool v = corrupt_pending;

	corrupt_pending = false;
	return v;
}
