/* Options of `cmt migrate`. */
#include <errno.h>
#include <string.h>

#include "cli/migrate_args.h"
#include "tap.h"

static int parse(struct migrate_args *a, char *err, int n, ...)
{
	char *argv[32];
	va_list ap;
	int argc = 0;

	argv[argc++] = "migrate";
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		argv[argc++] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	return migrate_parse_args(argc, argv, a, err, 256);
}

int main(void)
{
	struct migrate_args a;
	char err[256];

	ok(parse(&a, err, 3, "web1", "--to", "hostB") == 0, "container and --to");
	is_str(a.container, "web1", "container name");
	is_str(a.to, "hostB", "destination");
	is_str(a.mode, "auto", "default mode is auto");
	is_str(a.compress, "auto", "default compression: where it pays");
	ok(!a.allow_postcopy && a.max_rounds == 0 && a.downtime_target_ms == 0 && a.growth_pct < 0 && a.min_pages < 0 &&
		   a.max_bandwidth_mib == 0,
	   "convergence options default to the policy's defaults");
	is_str(a.rsh, "ssh", "default remote shell");
	is_str(a.remote_cmt, "cmt", "default remote cmt");
	ok(!a.json && !a.force, "flags off by default");

	ok(parse(&a, err, 4, "--to", "h2", "--pid", "4242") == 0, "--pid with options first");
	is_str(a.pid, "4242", "pid");
	ok(a.container == NULL, "no container with --pid");

	ok(parse(&a, err, 9, "--to=root@h2", "--rsh", "ssh -p 2222", "--remote-cmt", "/opt/cmt", "--json", "--force",
		 "ct", "--mode=cold") == 0,
	   "every option");
	is_str(a.to, "root@h2", "--to=VALUE form");
	is_str(a.rsh, "ssh -p 2222", "--rsh keeps its words together");
	ok(a.json && a.force, "--json and --force");

	ok(parse(&a, err, 1, "web1") == -EINVAL, "--to is required");
	ok(strstr(err, "--to") != NULL, "message names --to: %s", err);
	ok(parse(&a, err, 2, "--to", "h2") == -EINVAL, "a workload is required");
	ok(parse(&a, err, 5, "web1", "--pid", "12", "--to", "h2") == -EINVAL, "container and --pid conflict");
	ok(parse(&a, err, 4, "--pid", "abc", "--to", "h2") == -EINVAL, "non-numeric pid refused");
	ok(strstr(err, "abc") != NULL, "message quotes the bad pid: %s", err);
	ok(parse(&a, err, 4, "--pid", "1", "--to", "h2") == -EINVAL, "pid 1 refused");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--mode", "warp") == -EINVAL, "unknown mode refused");
	ok(strstr(err, "warp") != NULL, "message quotes the mode: %s", err);
	ok(parse(&a, err, 4, "web1", "--to", "h2", "--bogus") == -EINVAL, "unknown option refused");
	ok(strstr(err, "--bogus") != NULL, "message quotes the option: %s", err);
	ok(parse(&a, err, 3, "web1", "--to", "h2") == 0 && parse(&a, err, 3, "web1", "--to", "h2") == 0,
	   "parsing twice works (getopt reset)");
	ok(parse(&a, err, 4, "web1", "extra", "--to", "h2") == -EINVAL, "extra argument refused");
	ok(parse(&a, err, 2, "web1", "--to") == -EINVAL, "--to without value");
	ok(strstr(err, "needs a value") != NULL, "message says it needs a value: %s", err);
	ok(parse(&a, err, 3, "web1", "--to", "auto") == -EINVAL, "--to auto needs candidates");
	ok(parse(&a, err, 5, "web1", "--to", "auto", "--candidates", "h1,h2") == 0, "--to auto with candidates");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--candidates", "h1,h2") == -EINVAL, "--candidates without auto");
	ok(parse(&a, err, 7, "web1", "--to", "h2", "--hook-pre-restore", "echo pre", "--hook-failed-restore",
		 "echo failed") == 0,
	   "hooks");
	is_str(a.hook[2], "echo pre", "pre-restore hook stored");
	is_str(a.hook[4], "echo failed", "failed-restore hook stored");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--hook-timeout", "0") == -EINVAL, "hook timeout must be positive");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--hook-timeout", "30") == 0 && a.hook_timeout_s == 30,
	   "hook timeout");
	ok(parse(&a, err, 4, "web1", "--to", "h2", "--shared-storage") == 0 && a.shared_storage, "--shared-storage");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--volumes", "copy") == 0 && !strcmp(a.volumes, "copy"), "--volumes copy");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--volumes", "all") == -EINVAL && strstr(err, "copy, shared or skip"),
	   "--volumes with an unknown policy: %s", err);
	ok(parse(&a, err, 7, "web1", "--to", "h2", "--volume", "/data=copy", "--volume", "/cache=skip") == 0 &&
		   a.nvolume == 2,
	   "--volume twice");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--volume", "/data") == -EINVAL && strstr(err, "/data"),
	   "--volume without a policy: %s", err);
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--lease", "5") == 0 && a.lease_s == 5, "--lease in seconds");
	ok(parse(&a, err, 3, "web1", "--to", "h2") == 0 && a.lease_s == 0, "no --lease: the default");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--lease", "0") == -EINVAL && strstr(err, "--lease"),
	   "--lease 0 refused: %s", err);
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--lease", "3601") == -EINVAL, "--lease above an hour refused");
	ok(parse(&a, err, 5, "web1", "--to", "h2", "--lease", "2s") == -EINVAL, "--lease with a unit refused");
	ok(parse(&a, err, 3, "web1", "--to", "-x") == -EINVAL, "a host starting with '-' is refused");
	/* live migration options */
	ok(parse(&a, err, 15, "web1", "--to", "h", "--mode", "precopy", "--downtime-target", "150", "--max-rounds", "5",
		 "--converge-growth", "10", "--min-dirty-pages", "64", "--max-bandwidth", "12.5") == 0 &&
		   !strcmp(a.mode, "precopy") && a.downtime_target_ms == 150 && a.max_rounds == 5 && a.growth_pct == 10 &&
		   a.min_pages == 64 && a.max_bandwidth_mib == 12.5,
	   "precopy options parse (%s)", err);
	ok(parse(&a, err, 4, "web1", "--to", "h", "--allow-postcopy") == 0 && a.allow_postcopy, "--allow-postcopy");
	ok(parse(&a, err, 5, "web1", "--to", "h", "--compress", "none") == 0 && !strcmp(a.compress, "none"),
	   "--compress none");
	ok(parse(&a, err, 5, "web1", "--to", "h", "--compress", "lz9") == -EINVAL && strstr(err, "'lz9'"),
	   "an unknown --compress is refused, quoted: %s", err);
	ok(parse(&a, err, 5, "web1", "--to", "h", "--max-rounds", "0") == -EINVAL && strstr(err, "--max-rounds '0'"),
	   "--max-rounds 0 is refused: %s", err);
	ok(parse(&a, err, 5, "web1", "--to", "h", "--max-rounds", "2.5") == -EINVAL, "--max-rounds must be whole");
	ok(parse(&a, err, 5, "web1", "--to", "h", "--downtime-target", "fast") == -EINVAL &&
		   strstr(err, "milliseconds"),
	   "--downtime-target needs milliseconds: %s", err);
	ok(parse(&a, err, 5, "web1", "--to", "h", "--max-bandwidth", "-1") == -EINVAL, "a negative bandwidth is refused");
	ok(parse(&a, err, 5, "web1", "--to", "h", "--converge-growth", "2000") == -EINVAL, "growth above 1000 %% refused");
	return done_testing();
}
