/* Unit tests of the CRIU configuration files cmt writes (criu_write_config,
 * src/criu/access.c): each setting as CRIU spells it, nothing else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "criu/access.h"
#include "tap.h"
#include "util/fs.h"

/* the configuration's non-comment lines, joined by '|' */
static void settings(const char *path, char *out, size_t n)
{
	char *txt = NULL;
	struct error e = { 0 };
	size_t l = 0;

	out[0] = '\0';
	if (read_file(path, 1 << 16, &txt, NULL, &e) < 0)
		return;
	for (char *ln = strtok(txt, "\n"); ln; ln = strtok(NULL, "\n"))
		if (ln[0] != '#' && l < n)
			l += (size_t)snprintf(out + l, n - l, "%s%s", l ? "|" : "", ln);
	free(txt);
}

int main(void)
{
	char dir[] = "/tmp/cmt-test-criuconf-XXXXXX", path[PATH_MAX], got[1024];
	struct error e = { 0 };

	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));

	is_int(criu_write_config(dir, "a.conf", &(struct criu_conf){ 0 }, path, sizeof(path), &e), 0, "nothing set");
	settings(path, got, sizeof(got));
	is_str(got, "", "... no setting at all");

	criu_write_config(dir, "r.conf", &(struct criu_conf){ .leave_stopped = true, .lazy_pages = true }, path,
			  sizeof(path), &e);
	settings(path, got, sizeof(got));
	is_str(got, "leave-stopped|lazy-pages", "a lazy restore left stopped");

	criu_write_config(dir, "d.conf", &(struct criu_conf){ .lazy_pages = true, .port = 4711 }, path, sizeof(path),
			  &e);
	settings(path, got, sizeof(got));
	is_str(got, "lazy-pages|address 127.0.0.1|port 4711", "libcriu's lazy dump: its page server on loopback");

	criu_write_config(dir, "c.conf",
			  &(struct criu_conf){ .loopback = true, .netlock_skip = true, .action_script = "/x/criu-action.sh" },
			  path, sizeof(path), &e);
	settings(path, got, sizeof(got));
	is_str(got, "address 127.0.0.1|network-lock skip|action-script /x/criu-action.sh",
	       "runc's lazy dump: loopback, no CRIU network lock, the late freeze's script");
	has_str(path, "/c.conf", "the path names the file");

	char longdir[PATH_MAX + 8];
	memset(longdir, 'a', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = '\0';
	is_int(criu_write_config(longdir, "x.conf", &(struct criu_conf){ 0 }, path, sizeof(path), &e), -ENAMETOOLONG,
	       "a work directory too long is refused");

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("cannot remove %s", dir);
	return done_testing();
}
