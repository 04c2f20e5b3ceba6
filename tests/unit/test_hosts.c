/* Candidate lists and the ranking score. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/hosts.h"
#include "tap.h"

int main(void)
{
	char hosts[HOSTS_MAX][256];
	struct error e = { 0 };
	char dir[] = "/tmp/cmt-test-hosts.XXXXXX", path[64];
	FILE *f;

	is_int(hosts_parse_list("h1,h2, h3", "/nonexistent", hosts, HOSTS_MAX, &e), 3, "comma and space separated");
	is_str(hosts[2], "h3", "third host");
	is_int(hosts_parse_list(",,", "/nonexistent", hosts, HOSTS_MAX, &e), -EINVAL, "empty list refused");
	is_int(hosts_parse_list("a,b,c", "/x", hosts, 2, &e), -E2BIG, "too many hosts refused");
	ok(hosts_parse_list(NULL, "/nonexistent", hosts, HOSTS_MAX, &e) < 0, "no hosts file: error");
	ok(strstr(e.hint, "--candidates") != NULL, "hint names --candidates");
	ok(mkdtemp(dir) != NULL, "temp dir");
	snprintf(path, sizeof(path), "%s/hosts", dir);
	f = fopen(path, "w");
	fputs("# candidates\nroot@h1\nh2 # second\n\n", f);
	fclose(f);
	is_int(hosts_parse_list(NULL, dir, hosts, HOSTS_MAX, &e), 2, "hosts file with comments");
	is_str(hosts[0], "root@h1", "user@host kept");
	is_str(hosts[1], "h2", "comment stripped");
	unlink(path);
	rmdir(dir);

	struct host_probe a = { .mem_available_kib = 8 << 20, .need_kib = 1 << 20, .load1 = 0.1, .ncpu = 4, .rtt_ms = 1,
				.mbps = 1000 };
	struct host_probe b = a, c = a, d = a;
	b.mem_available_kib = 4 << 20;
	c.load1 = 3.9;
	d.rtt_ms = 40;
	ok(hosts_score(&a) > hosts_score(&b), "more free memory ranks higher");
	ok(hosts_score(&a) > hosts_score(&c), "lower load ranks higher");
	ok(hosts_score(&a) > hosts_score(&d), "shorter round trip ranks higher");
	return done_testing();
}
