/* What a host is: versions of cmt, CRIU and runc, kernel C/R features, free
 * memory and disk, load.  Gathered on each side (the agent sends its own in
 * MSG_FACTS as "key=value" lines) and compared by the checks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "engine/context.h"

#define FACTS_MAX 64

struct facts {
	int n;
	char key[FACTS_MAX][32];
	char val[FACTS_MAX][512];
};

void facts_set(struct facts *f, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *facts_get(const struct facts *f, const char *key); /* NULL if absent */
long long facts_num(const struct facts *f, const char *key, long long dflt);
/* "key=value\n" lines; values never contain newlines. */
char *facts_format(const struct facts *f);
/* Parses lines from a peer: bounded, rejects malformed lines. */
int facts_parse(struct facts *f, const char *text, struct error *e);
/* Gathers this host's facts.  Never fails: what cannot be found is reported
 * as such (e.g. criu_error=...). */
void facts_gather(struct ctx *c, struct facts *f);
