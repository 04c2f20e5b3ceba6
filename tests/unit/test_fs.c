/* Unit tests of file_last_line (src/util/fs.c): a program's last word in
 * its output file, as runc's restore and CRIU's lazy-pages daemon report
 * their failures. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "util/fs.h"

static char *last_of(const char *dir, const char *text, const char *const *prefer)
{
	char p[PATH_MAX];
	struct error e = { 0 };

	snprintf(p, sizeof(p), "%s/out", dir);
	if (write_file_atomic(p, text, strlen(text), 0600, &e) < 0)
		BAIL_OUT("%s", e.msg);
	return file_last_line(p, 1 << 16, prefer);
}

static void is_last(const char *dir, const char *text, const char *const *prefer, const char *want, const char *what)
{
	char *got = last_of(dir, text, prefer);
	if (want)
		is_str(got ? got : "(none)", want, "%s", what);
	else
		ok(got == NULL, "%s (got %s)", what, got ? got : "none");
	free(got);
}

int main(void)
{
	static const char *const levels[] = { "level=error", "level=fatal", NULL };
	char dir[] = "/tmp/cmt-test-fs-XXXXXX", p[PATH_MAX];

	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	is_last(dir, "one\ntwo\nthree\n", NULL, "three", "the last line");
	is_last(dir, "one\ntwo  \n\n \n", NULL, "two", "trailing blank lines and blanks are not a line");
	is_last(dir, "three", NULL, "three", "a last line without a newline");
	is_last(dir, "", NULL, NULL, "an empty file has none");
	is_last(dir, "\n  \n", NULL, NULL, "blank lines only: none");
	is_last(dir,
		"time=\"x\" level=warning msg=\"a\"\ntime=\"x\" level=error msg=\"the reason\"\n"
		"time=\"x\" level=info msg=\"after\"\n",
		levels, "time=\"x\" level=error msg=\"the reason\"", "the last preferred line wins over later ones");
	is_last(dir, "level=error first\nlevel=fatal second\nplain\n", levels, "level=fatal second",
		"of several preferred lines, the last");
	is_last(dir, "plain one\nplain two\n", levels, "plain two", "no preferred line: the last line");
	snprintf(p, sizeof(p), "%s/none", dir);
	ok(file_last_line(p, 1 << 16, NULL) == NULL, "a file that is not there: none");
	char big[10000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(p, sizeof(p), "%s/out", dir);
	struct error e = { 0 };
	write_file_atomic(p, big, strlen(big), 0600, &e);
	ok(file_last_line(p, 4096, NULL) == NULL, "a file larger than max: none");
	unlink(p);
	rmdir(dir);
	return done_testing();
}
