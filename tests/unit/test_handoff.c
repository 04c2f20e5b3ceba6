/* Unit tests of the handoff's pure parts (src/engine/handoff.c): the lease
 * bounds and the restore deadline; and of the records both sides keep
 * (src/engine/journal.c): the journal's round trip and the outcome records
 * a QUERY reads. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "engine/handoff.h"
#include "engine/journal.h"
#include "tap.h"
#include "transport/proto.h"
#include "util/fs.h"

static void test_lease(void)
{
	is_int(handoff_lease_clamp(0), HANDOFF_LEASE_MS, "no lease given: the default");
	is_int(handoff_lease_clamp(1), HANDOFF_LEASE_MIN_MS, "a tiny lease is raised to the minimum");
	is_int(handoff_lease_clamp(5000), 5000, "a sane lease is kept");
	is_int(handoff_lease_clamp(0xffffffffffffull), HANDOFF_LEASE_MAX_MS, "a huge lease (from a peer) is capped");
	is_int(handoff_restore_deadline_ms(30000, 0), 30000, "no images: the deadline is the lease");
	is_int(handoff_restore_deadline_ms(30000, 1ull << 30), 30000 + 128000,
	       "1 GiB of images: the lease plus 128 s at the slowest restore rate");
	ok(handoff_restore_deadline_ms(HANDOFF_LEASE_MAX_MS, UINT64_MAX / 2000) == UINT32_MAX,
	   "the deadline saturates instead of wrapping");
}

static void test_journal(const char *dir)
{
	struct journal j = { .state = J_COMMITTING, .kind = KIND_RUNC }, r;
	struct error e = { 0 };

	snprintf(j.workload, sizeof(j.workload), "web1");
	snprintf(j.peer, sizeof(j.peer), "root@h2");
	snprintf(j.rsh, sizeof(j.rsh), "ssh -F '/run/lab dir/ssh_config'");
	snprintf(j.remote_cmt, sizeof(j.remote_cmt), "/opt/cmt/bin/cmt -v");
	ok(journal_write(dir, &j, &e) == 0, "journal written: %s", e.msg);
	ok(journal_read(dir, &r, &e) == 0, "journal read back: %s", e.msg);
	ok(r.state == J_COMMITTING && r.kind == KIND_RUNC, "state and kind kept");
	is_str(r.workload, "web1", "workload kept");
	is_str(r.peer, "root@h2", "peer kept");
	is_str(r.rsh, "ssh -F '/run/lab dir/ssh_config'", "remote shell kept (for the QUERY after a crash)");
	is_str(r.remote_cmt, "/opt/cmt/bin/cmt -v", "remote cmt kept");
	snprintf(j.rsh, sizeof(j.rsh), "ssh\nstate=prepared");
	error_clear(&e);
	ok(journal_write(dir, &j, &e) == -EINVAL, "a newline in a value is refused, not written: %s", e.msg);
	ok(journal_read(dir, &r, &e) == 0 && r.state == J_COMMITTING, "the journal on disk is unchanged");
}

static void test_outcomes(const char *root)
{
	struct error e = { 0 };
	char path[PATH_MAX];

	is_int(outcome_read(root, "m-1"), OUTCOME_UNKNOWN, "no record: unknown");
	ok(outcome_write(root, "m-1", OUTCOME_COMMITTED, &e) == 0, "committed recorded");
	ok(outcome_write(root, "m-2", OUTCOME_ABORTED, &e) == 0, "aborted recorded");
	is_int(outcome_read(root, "m-1"), OUTCOME_COMMITTED, "committed read back");
	is_int(outcome_read(root, "m-2"), OUTCOME_ABORTED, "aborted read back");
	snprintf(path, sizeof(path), "%s/outcomes/m-3", root);
	write_file_atomic(path, "committed-ish\n", 14, 0600, &e);
	is_int(outcome_read(root, "m-3"), OUTCOME_UNKNOWN, "a garbled record reads as unknown, never as committed");
	/* an old record is pruned, a fresh one stays */
	struct timeval old[2] = { { time(NULL) - (OUTCOME_KEEP_DAYS + 1) * 86400L, 0 },
				  { time(NULL) - (OUTCOME_KEEP_DAYS + 1) * 86400L, 0 } };
	snprintf(path, sizeof(path), "%s/outcomes/m-2", root);
	ok(utimes(path, old) == 0, "record m-2 made old");
	outcome_prune(root);
	is_int(outcome_read(root, "m-2"), OUTCOME_UNKNOWN, "an old record is pruned");
	is_int(outcome_read(root, "m-1"), OUTCOME_COMMITTED, "a fresh record stays");
	is_str(outcome_name(OUTCOME_COMMITTED), "committed", "outcome names");
	is_str(outcome_name(99), "unknown", "an unknown outcome has a name too");
}

static void test_prune(const char *root)
{
	struct error e = { 0 };
	char p[PATH_MAX];
	struct timeval old[2] = { { time(NULL) - (OUTCOME_KEEP_DAYS + 1) * 86400L, 0 },
				  { time(NULL) - (OUTCOME_KEEP_DAYS + 1) * 86400L, 0 } };

	snprintf(p, sizeof(p), "%s/migrations/old-failed/work", root);
	mkdir_p(p, 0700, &e);
	snprintf(p, sizeof(p), "%s/migrations/old-journal/work", root);
	mkdir_p(p, 0700, &e);
	snprintf(p, sizeof(p), "%s/migrations/old-journal/journal", root);
	write_file_atomic(p, "state=frozen\n", 13, 0600, &e);
	snprintf(p, sizeof(p), "%s/migrations/new-failed/work", root);
	mkdir_p(p, 0700, &e);
	snprintf(p, sizeof(p), "%s/migrations/old-failed", root);
	utimes(p, old);
	snprintf(p, sizeof(p), "%s/migrations/old-journal", root);
	utimes(p, old);
	migrations_prune(root);
	snprintf(p, sizeof(p), "%s/migrations/old-failed", root);
	ok(!path_exists(p), "an old failed migration's logs are pruned");
	snprintf(p, sizeof(p), "%s/migrations/old-journal/journal", root);
	ok(path_exists(p), "an old migration with a journal is never pruned");
	snprintf(p, sizeof(p), "%s/migrations/new-failed", root);
	ok(path_exists(p), "a recent failed migration's logs stay");
}

static void test_path_under(void)
{
	ok(path_is_under("/var/lib/cmt/bundles/ct1", "/var/lib/cmt/bundles"), "a bundle under bundles/");
	ok(path_is_under("/var/lib/cmt/bundles/ct1", "/var/lib/cmt/bundles/"), "trailing slash on the directory");
	ok(!path_is_under("/var/lib/cmt/bundles", "/var/lib/cmt/bundles"), "the directory itself is not under itself");
	ok(!path_is_under("/var/lib/cmt/bundles/", "/var/lib/cmt/bundles"), "nor with a slash");
	ok(!path_is_under("/var/lib/cmt/bundlesX/a", "/var/lib/cmt/bundles"), "a sibling with the same prefix");
	ok(!path_is_under("/var/lib/cmt/bundles/../../../etc", "/var/lib/cmt/bundles"), "'..' climbs out");
	ok(!path_is_under("/var/lib/cmt/bundles/a/..", "/var/lib/cmt/bundles"), "a trailing '..'");
	ok(path_is_under("/var/lib/cmt/bundles/..a", "/var/lib/cmt/bundles"), "'..a' is a name, not '..'");
	ok(!path_is_under("/", "/var/lib/cmt/bundles"), "/ is not under it");
	ok(!path_is_under("", "/var/lib/cmt/bundles"), "nor is nothing");
}

int main(void)
{
	char dir[] = "/tmp/cmt-test-handoff.XXXXXX";
	struct error e = { 0 };

	if (!mkdtemp(dir))
		return 1;
	test_lease();
	test_path_under();
	test_journal(dir);
	test_outcomes(dir);
	test_prune(dir);
	rm_rf(dir, &e);
	return done_testing();
}
