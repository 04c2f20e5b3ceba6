/* libFuzzer target for host facts (src/engine/facts.c), which arrive from the
 * other host in FACTS: the parser must refuse malformed text with a message,
 * keep keys and values inside their limits, and what it accepts must format
 * back to text that parses to the same facts.  checks_evaluate() then runs on
 * them (as the source does) and must produce well-formed check lines. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_facts"
#include "fuzz.h"

#include "engine/checks.h"
#include "engine/facts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct facts f, f2, src;
	static struct check_list l;
	struct error e = { 0 };
	char *text;
	int r;

	text = fuzz_text(data, size, 70000);
	if (!text)
		return 0;
	memset(&f, 0, sizeof(f));
	r = facts_parse(&f, text, &e);
	if (r < 0) {
		CHECK(e.code > 0 && e.msg[0]);
	} else {
		char *again = facts_format(&f);
		CHECK(again != NULL);
		memset(&f2, 0, sizeof(f2));
		CHECK(facts_parse(&f2, again, &e) == 0);
		CHECK(f2.n == f.n);
		for (int i = 0; i < f.n; i++)
			CHECK(!strcmp(facts_get(&f2, f.key[i]) ? facts_get(&f2, f.key[i]) : "", facts_get(&f, f.key[i])));
		free(again);
		/* the source judges the destination by these facts */
		memset(&src, 0, sizeof(src));
		memset(&l, 0, sizeof(l));
		checks_evaluate(&src, &f, NULL, NULL, "cold", &l);
		for (int i = 0; i < l.n; i++) {
			CHECK(memchr(l.c[i].detail, 0, sizeof(l.c[i].detail)) != NULL);
			CHECK(memchr(l.c[i].hint, 0, sizeof(l.c[i].hint)) != NULL);
		}
	}
	free(text);
	return 0;
}
