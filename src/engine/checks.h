/* Pre-migration checks: can this workload move to that host, in this mode?
 * Each check has a status, a detail and, when it does not pass, what to do.
 * `cmt check` prints them; `cmt migrate` runs them first and refuses to
 * start when one fails (unless --force). */
#pragma once
#include <stdbool.h>

#include "drivers/driver.h"
#include "engine/facts.h"
#include "transport/rsh.h"

enum check_status { CHECK_PASS, CHECK_WARN, CHECK_FAIL };

struct check {
	char name[40];
	enum check_status status;
	char detail[600];
	char hint[400];
};

#define CHECKS_MAX 40

struct check_list {
	int n;
	struct check c[CHECKS_MAX];
	struct facts src, dst;
	bool tcp_established;  /* the workload has established TCP connections */
	long long need_kib;    /* memory the workload needs on the destination */
};

void check_add(struct check_list *l, const char *name, enum check_status st, const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int checks_failed(const struct check_list *l);
/* True for checks whose failure is a property of the destination host. */
bool check_is_about_destination(const char *name);
const char *check_status_name(enum check_status st);

/* Runs every check against a connected peer.  w may be NULL (host checks
 * only).  Returns 0 when the checks could be run (whatever their results),
 * negative when talking to the peer failed. */
int checks_run(struct ctx *c, struct peer *p, const struct workload *w, const char *mode, struct check_list *l,
	       struct error *e);
/* Evaluates facts and a workload scan into checks (no I/O; unit tested). */
struct precheck;
void checks_evaluate(const struct facts *src, const struct facts *dst, const struct workload *w,
		     const struct precheck *pc, const char *mode, struct check_list *l);

void checks_print(const struct check_list *l, const char *dest, bool all);
/* {"checks":[{name,status,detail,hint}...]} added to j (a json_t object). */
void checks_to_json(const struct check_list *l, void *into);
