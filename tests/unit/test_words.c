/* Unit tests of split_words (the --rsh / --remote-cmt splitter) and of
 * proto_version_check (src/transport/rsh.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "transport/rsh.h"

#define MAXW 16

/* Splits 'in' and checks the words against want[] (NULL-terminated). */
static void split_is(const char *in, const char *const want[], const char *desc)
{
	char buf[512];
	char *w[MAXW];
	struct error e = { 0 };
	int n, nwant = 0, same;

	snprintf(buf, sizeof(buf), "%s", in);
	while (want[nwant])
		nwant++;
	n = split_words(buf, w, MAXW, &e);
	same = n == nwant;
	for (int i = 0; same && i < n; i++)
		same = strcmp(w[i], want[i]) == 0;
	if (!ok(same, "%s", desc)) {
		diag("input: [%s] -> %d word(s)%s%s", in, n, n < 0 ? ": " : "", n < 0 ? e.msg : "");
		for (int i = 0; i < n; i++)
			diag("  word %d: [%s]", i, w[i]);
	}
}

#define W(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

static void test_split(void)
{
	split_is("ssh", W("ssh"), "one word");
	split_is("ssh -p 2222 -o BatchMode=yes", W("ssh", "-p", "2222", "-o", "BatchMode=yes"), "words separated by spaces");
	split_is("  ssh\t-p\n2222  ", W("ssh", "-p", "2222"), "leading, trailing, tab and newline blanks");
	split_is("ssh    -v", W("ssh", "-v"), "runs of blanks are one separator");
	split_is("", NONE, "empty string: no words");
	split_is(" \t\n ", NONE, "only blanks: no words");

	split_is("ssh -o 'ProxyCommand ssh -W %h:%p bastion'", W("ssh", "-o", "ProxyCommand ssh -W %h:%p bastion"),
		 "single quotes keep blanks");
	split_is("ssh -i \"/home/me/my key\"", W("ssh", "-i", "/home/me/my key"), "double quotes keep blanks");
	split_is("'a\\b'", W("a\\b"), "backslash is literal inside single quotes");
	split_is("\"a\\\"b\"", W("a\"b"), "backslash escapes a double quote inside double quotes");
	split_is("\"a\\\\b\"", W("a\\b"), "backslash escapes a backslash inside double quotes");
	split_is("\"it's\"", W("it's"), "a single quote inside double quotes");
	split_is("'say \"hi\"'", W("say \"hi\""), "double quotes inside single quotes");
	split_is("a\\ b c", W("a b", "c"), "backslash escapes a blank outside quotes");
	split_is("\\'x", W("'x"), "backslash escapes a quote outside quotes");
	split_is("foo\"bar baz\"qux", W("foobar bazqux"), "quotes in the middle of a word join it");
	split_is("'a''b'", W("ab"), "adjacent quoted parts are one word");
	split_is("'' x", W("", "x"), "'' is an empty word");
	split_is("\"\"", W(""), "\"\" is an empty word");
	split_is("abc\\", W("abc\\"), "a trailing backslash is kept");
	split_is("/usr/local/bin/cmt --config /etc/cmt.conf", W("/usr/local/bin/cmt", "--config", "/etc/cmt.conf"),
		 "a --remote-cmt with arguments");

	/* word limit */
	char buf[256];
	char *w[8];
	struct error e = { 0 };
	int n;

	snprintf(buf, sizeof(buf), "a b c d");
	n = split_words(buf, w, 4, &e);
	ok(n == 4 && !strcmp(w[3], "d"), "exactly the maximum of words is fine");
	snprintf(buf, sizeof(buf), "a b c d e");
	error_clear(&e);
	n = split_words(buf, w, 4, &e);
	is_int(n, -E2BIG, "one word too many is E2BIG");
	has_str(e.msg, "too many words", "the message says why");
	has_str(e.msg, "at most 4", "and names the limit");
	snprintf(buf, sizeof(buf), "a b c d    ");
	n = split_words(buf, w, 4, &e);
	is_int(n, 4, "trailing blanks after the last allowed word are fine");
	snprintf(buf, sizeof(buf), "x");
	error_clear(&e);
	is_int(split_words(buf, w, 0, &e), -E2BIG, "max 0 with a word is E2BIG");
	snprintf(buf, sizeof(buf), "  ");
	is_int(split_words(buf, w, 0, &e), 0, "max 0 without words is fine");

	/* the real limit */
	char many[4 * RSH_MAX_WORDS + 8] = "";
	char *ww[RSH_MAX_WORDS];
	for (int i = 0; i < RSH_MAX_WORDS; i++)
		strcat(many, "w ");
	is_int(split_words(many, ww, RSH_MAX_WORDS, &e), RSH_MAX_WORDS, "RSH_MAX_WORDS words are accepted");
	many[0] = 0;
	for (int i = 0; i <= RSH_MAX_WORDS; i++)
		strcat(many, "w ");
	is_int(split_words(many, ww, RSH_MAX_WORDS, &e), -E2BIG, "RSH_MAX_WORDS + 1 words are refused");

	/* bad quoting */
	snprintf(buf, sizeof(buf), "ssh -o 'unterminated");
	error_clear(&e);
	n = split_words(buf, w, 8, &e);
	ok(n == -EINVAL && strstr(e.msg, "unterminated ' quote"), "unterminated single quote: %s", e.msg);
	snprintf(buf, sizeof(buf), "ssh \"abc");
	error_clear(&e);
	n = split_words(buf, w, 8, &e);
	ok(n == -EINVAL && strstr(e.msg, "unterminated \" quote"), "unterminated double quote: %s", e.msg);
	snprintf(buf, sizeof(buf), "\"abc\\\"");
	error_clear(&e);
	n = split_words(buf, w, 8, &e);
	is_int(n, -EINVAL, "an escaped closing quote leaves the quote open");
	snprintf(buf, sizeof(buf), "'");
	is_int(split_words(buf, w, 8, &e), -EINVAL, "a lone quote is unterminated");

	/* words point into buf, which is not overrun */
	char small[16] = "ab 'c d' e";
	memset(small + 11, 'Z', sizeof(small) - 11);
	n = split_words(small, w, 8, &e);
	ok(n == 3 && w[0] >= small && w[2] < small + 11 && small[15] == 'Z', "words are cut out of buf in place");
}

static void test_version(void)
{
	struct error e = { 0 };
	int r;

	is_int(proto_version_check(PROTO_MAJOR, PROTO_MINOR, "cmt 1", "here", &e), 0, "the same version is compatible");
	is_int(proto_version_check(PROTO_MAJOR, PROTO_MINOR + 7, "cmt 9", "here", &e), 0,
	       "a newer minor version is compatible");
	if (PROTO_MINOR > 0)
		is_int(proto_version_check(PROTO_MAJOR, 0, "cmt 0", "here", &e), 0, "an older minor version is compatible");
	else
		ok(1, "an older minor version is compatible (no older minor exists)");

	error_clear(&e);
	r = proto_version_check(PROTO_MAJOR + 1, 3, "cmt 7.0.0", "dest-host", &e);
	is_int(r, -EPROTONOSUPPORT, "another major version is refused");
	is_int(e.code, EPROTONOSUPPORT, "with EPROTONOSUPPORT");
	char want[128];
	snprintf(want, sizeof(want), "it speaks protocol %d.3 (cmt 7.0.0)", PROTO_MAJOR + 1);
	has_str(e.msg, want, "the message names the peer's protocol and software");
	has_str(e.msg, "incompatible cmt on dest-host", "the message names the host");
	snprintf(want, sizeof(want), "this cmt speaks %d.%d (cmt %s)", PROTO_MAJOR, PROTO_MINOR, CMT_VERSION);
	has_str(e.msg, want, "the message names our protocol and version");
	has_str(e.hint, "same major version", "the hint says what to do");

	error_clear(&e);
	is_int(proto_version_check(0, 0, "old", "h", &e), -EPROTONOSUPPORT, "major 0 is refused");
	error_clear(&e);
	is_int(proto_version_check(0xffffffffu, 0, "x", "h", &e), -EPROTONOSUPPORT, "major 0xffffffff is refused");
}

int main(void)
{
	test_split();
	test_version();
	return done_testing();
}
