/* Unit tests of the per-host config file parser (src/util/config.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "util/config.h"
#include "util/fs.h"

static int parse(struct config *c, const char *text, struct error *e)
{
	config_defaults(c);
	error_clear(e);
	return config_parse(c, text, "/etc/cmt/config", e);
}

static void test_defaults(void)
{
	struct config c;

	config_defaults(&c);
	is_str(c.root, "/var/lib/cmt", "default state root");
	is_str(c.runc_root, "/run/runc", "default runc root");
	is_str(c.criu, "", "criu: search by default");
	is_str(c.runc, "", "runc: search by default");
	is_str(c.cgroup_parent, "", "cgroup_parent: as in config.json by default");
	ok(c.name[0] != 0, "name defaults to the host name (%s)", c.name);
}

static void test_keys(void)
{
	struct config c;
	struct error e;

	is_int(parse(&c, "criu = /opt/criu/sbin/criu\n", &e), 0, "criu");
	is_str(c.criu, "/opt/criu/sbin/criu", "criu is set");
	is_int(parse(&c, "runc = /usr/local/sbin/runc\n", &e), 0, "runc");
	is_str(c.runc, "/usr/local/sbin/runc", "runc is set");
	is_int(parse(&c, "name = node-a\n", &e), 0, "name");
	is_str(c.name, "node-a", "name is set");
	is_int(parse(&c, "cgroup_parent = /cmt.slice\n", &e), 0, "cgroup_parent");
	is_str(c.cgroup_parent, "/cmt.slice", "cgroup_parent is set");
	is_int(parse(&c, "runc_root = /run/runc-alt\n", &e), 0, "runc_root");
	is_str(c.runc_root, "/run/runc-alt", "runc_root is set");
	is_str(c.root, "/var/lib/cmt", "keys not in the file keep their values");

	/* all at once, no trailing newline, odd spacing */
	int r = parse(&c,
		      "criu=/a\n"
		      "   runc\t=\t/b   \n"
		      "name =n1\n"
		      "cgroup_parent= /c\n"
		      "runc_root = /d",
		      &e);
	ok(r == 0 && !strcmp(c.criu, "/a") && !strcmp(c.runc, "/b") && !strcmp(c.name, "n1") &&
		   !strcmp(c.cgroup_parent, "/c") && !strcmp(c.runc_root, "/d"),
	   "every key, any spacing around '=', no final newline");
	is_int(parse(&c, "name = a\nname = b\n", &e), 0, "a key may be repeated");
	is_str(c.name, "b", "the last value wins");
	is_int(parse(&c, "cgroup_parent = a=b=c\n", &e), 0, "'=' inside a value");
	is_str(c.cgroup_parent, "a=b=c", "the value is everything after the first '='");
	is_int(parse(&c, "criu =\n", &e), 0, "an empty value");
	is_str(c.criu, "", "is the empty string");
	is_int(parse(&c, "name = two words\n", &e), 0, "blanks inside a value");
	is_str(c.name, "two words", "are kept");
	is_int(parse(&c, "name = crlf\r\n", &e), 0, "a CRLF line ending");
	is_str(c.name, "crlf", "the CR is trimmed");
}

static void test_comments(void)
{
	struct config c;
	struct error e;

	int r = parse(&c,
		      "# cmt configuration\n"
		      "\n"
		      "   \n"
		      "\t# indented comment\n"
		      "name = box # the name in messages\n"
		      "#criu = /nope\n"
		      "\n",
		      &e);
	is_int(r, 0, "comments and blank lines are skipped");
	is_str(c.name, "box", "a trailing comment is not part of the value");
	is_str(c.criu, "", "a commented-out key is not set");
	is_int(parse(&c, "", &e), 0, "an empty file");
	is_int(parse(&c, "\n\n\n", &e), 0, "only newlines");
	is_int(parse(&c, "#", &e), 0, "only '#'");
	is_int(parse(&c, "cgroup_parent = /a#b\n", &e), 0, "'#' inside a value starts a comment");
	is_str(c.cgroup_parent, "/a", "so the value ends before it");
}

static void test_errors(void)
{
	struct config c;
	struct error e;
	int r;

	r = parse(&c, "# header\n\nname = x\nfrobnicate = yes\n", &e);
	is_int(r, -EINVAL, "an unknown key is an error");
	has_str(e.msg, "/etc/cmt/config:4:", "it quotes file:line");
	has_str(e.msg, "unknown key 'frobnicate'", "and the key");
	has_str(e.msg, "criu, runc, runc_root, name, cgroup_parent", "and lists the known keys");

	r = parse(&c, "Name = x\n", &e);
	ok(r == -EINVAL && strstr(e.msg, "unknown key 'Name'"), "keys are case-sensitive");
	r = parse(&c, "= x\n", &e);
	ok(r == -EINVAL && strstr(e.msg, ":1: unknown key ''"), "an empty key is unknown: %s", e.msg);
	r = parse(&c, "root = /srv/cmt\n", &e);
	ok(r == -EINVAL && strstr(e.msg, "unknown key 'root'"), "the state root is not a config key (it holds the file)");

	r = parse(&c, "\n\ncriu /usr/sbin/criu\n", &e);
	is_int(r, -EINVAL, "a line without '=' is an error");
	has_str(e.msg, "/etc/cmt/config:3: expected 'key = value', got 'criu /usr/sbin/criu'", "quoting file:line and the line");
	r = parse(&c, "name = ok\n  justaword   # c\n", &e);
	ok(r == -EINVAL && strstr(e.msg, ":2: expected 'key = value', got 'justaword'"), "the line is quoted trimmed: %s",
	   e.msg);

	/* lengths: name is char[64] */
	char text[PATH_MAX + 64], val[PATH_MAX + 8];
	memset(val, 'n', 63);
	val[63] = 0;
	snprintf(text, sizeof(text), "name = %s\n", val);
	r = parse(&c, text, &e);
	ok(r == 0 && strlen(c.name) == 63, "a name of 63 bytes fits");
	val[63] = 'n', val[64] = 0;
	snprintf(text, sizeof(text), "\nname = %s\n", val);
	r = parse(&c, text, &e);
	is_int(r, -EINVAL, "a name of 64 bytes is too long");
	has_str(e.msg, "/etc/cmt/config:2: value of 'name' is too long (64 bytes, at most 63)", "the message says so");
	memset(val, 'p', PATH_MAX);
	val[PATH_MAX] = 0;
	snprintf(text, sizeof(text), "criu = %s\n", val);
	r = parse(&c, text, &e);
	ok(r == -EINVAL && strstr(e.msg, "value of 'criu' is too long"), "a path of PATH_MAX bytes is too long");
	val[PATH_MAX - 1] = 0;
	snprintf(text, sizeof(text), "criu = %s\n", val);
	r = parse(&c, text, &e);
	ok(r == 0 && strlen(c.criu) == PATH_MAX - 1, "a path of PATH_MAX - 1 bytes fits");
	memset(val, 'g', 256);
	val[256] = 0;
	snprintf(text, sizeof(text), "cgroup_parent = %s\n", val);
	r = parse(&c, text, &e);
	ok(r == -EINVAL && strstr(e.msg, "value of 'cgroup_parent' is too long (256 bytes, at most 255)"),
	   "cgroup_parent of 256 bytes is too long");

	/* an error stops parsing: later lines are not applied */
	r = parse(&c, "name = first\nbogus\nname = second\n", &e);
	ok(r < 0 && !strcmp(c.name, "first"), "parsing stops at the first error");
}

static void test_load(void)
{
	char dir[] = "/tmp/cmt-test-config.XXXXXX", path[PATH_MAX];
	struct config c;
	struct error e = { 0 };
	FILE *f;
	int r;

	if (!mkdtemp(dir))
		BAIL_OUT("mkdtemp: %s", strerror(errno));
	config_defaults(&c);
	snprintf(c.root, sizeof(c.root), "%s", dir);
	is_int(config_load(&c, &e), 0, "no config file is fine");

	snprintf(path, sizeof(path), "%s/config", dir);
	f = fopen(path, "w");
	if (!f)
		BAIL_OUT("fopen: %s", strerror(errno));
	fputs("# test\nname = loaded\nrunc_root = /run/x\n", f);
	fclose(f);
	r = config_load(&c, &e);
	ok(r == 0 && !strcmp(c.name, "loaded") && !strcmp(c.runc_root, "/run/x"), "config_load reads <root>/config");
	is_str(c.root, dir, "the root stays");

	f = fopen(path, "w");
	fputs("name = x\ntypo = 1\n", f);
	fclose(f);
	error_clear(&e);
	r = config_load(&c, &e);
	char want[PATH_MAX + 32];
	snprintf(want, sizeof(want), "%s:2: unknown key 'typo'", path);
	ok(r == -EINVAL && strstr(e.msg, want), "config_load errors name the file: %s", e.msg);

	unlink(path);
	rmdir(dir);
}

static void test_images_tmpfs(void)
{
	struct config c;
	struct error e = { 0 };

	config_defaults(&c);
	is_str(c.images_tmpfs, "yes", "images in memory by default");
	ok(parse(&c, "images_tmpfs = 512m\n", &e) == 0 && !strcmp(c.images_tmpfs, "512m"), "images_tmpfs = 512m");
	ok(parse(&c, "images_tmpfs = 25%\n", &e) == 0 && !strcmp(c.images_tmpfs, "25%"), "images_tmpfs = 25%%");
	ok(parse(&c, "images_tmpfs = no\n", &e) == 0 && !strcmp(c.images_tmpfs, "no"), "images_tmpfs = no");
	ok(parse(&c, "images_tmpfs = 2x\n", &e) == -EINVAL && strstr(e.msg, "'2x'") && strstr(e.msg, ":1:"),
	   "a bad size is refused, quoted with its line: %s", e.msg);
	ok(parse(&c, "images_tmpfs = 0\n", &e) == -EINVAL, "size 0 is refused");
	ok(parse(&c, "images_tmpfs = 1g,nr_inodes=1\n", &e) == -EINVAL, "no extra mount options can slip in");
}

static void test_early_freeze(void)
{
	struct config c;
	struct error e = { 0 };

	config_defaults(&c);
	ok(!c.early_freeze, "the late freeze by default");
	ok(parse(&c, "early_freeze = yes\n", &e) == 0 && c.early_freeze, "early_freeze = yes");
	ok(parse(&c, "early_freeze = no\n", &e) == 0 && !c.early_freeze, "early_freeze = no");
	ok(parse(&c, "early_freeze = 1\n", &e) == -EINVAL && strstr(e.msg, "'1'") && strstr(e.msg, "yes or no"),
	   "anything else is refused: %s", e.msg);
}

static void test_staged_restore(void)
{
	struct config c;
	struct error e = { 0 };

	config_defaults(&c);
	ok(c.staged_restore, "the staged restore by default");
	ok(parse(&c, "staged_restore = no\n", &e) == 0 && !c.staged_restore, "staged_restore = no");
	ok(parse(&c, "staged_restore = yes\n", &e) == 0 && c.staged_restore, "staged_restore = yes");
	ok(parse(&c, "staged_restore = off\n", &e) == -EINVAL && strstr(e.msg, "'off'") && strstr(e.msg, "yes or no"),
	   "anything else is refused: %s", e.msg);
}

int main(void)
{
	test_defaults();
	test_keys();
	test_comments();
	test_errors();
	test_load();
	test_images_tmpfs();
	test_early_freeze();
	test_staged_restore();
	return done_testing();
}
