/* Unit tests of the volume policies (src/engine/volumes.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/volumes.h"
#include "tap.h"

static const char cfg[] =
	"{\"root\":{\"path\":\"rootfs\"},\"mounts\":["
	"{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
	"{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/srv/data\",\"options\":[\"rbind\"]},"
	"{\"destination\":\"/cache/\",\"source\":\"/srv/cache\",\"options\":[\"bind\",\"ro\"]},"
	"{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"/srv/hosts\"},"
	"{\"destination\":\"/tmp\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}]}";

int main(void)
{
	struct volume v[VOL_MAX];
	struct vol_rule rules[4];
	struct error e = { 0 };
	enum vol_policy p;
	char *out = NULL, *out2 = NULL;
	int n;

	ok(vol_policy_parse("copy", &p) == 0 && p == VOL_COPY, "copy");
	ok(vol_policy_parse("shared", &p) == 0 && p == VOL_SHARED, "shared");
	ok(vol_policy_parse("skip", &p) == 0 && p == VOL_SKIP, "skip");
	ok(vol_policy_parse("none", &p) < 0 && vol_policy_parse("", &p) < 0, "none / empty are not policies");
	ok(vol_rule_parse("/data=copy", &rules[0], &e) == 0 && !strcmp(rules[0].dest, "/data") && rules[0].policy == VOL_COPY,
	   "--volume /data=copy");
	ok(vol_rule_parse("/cache/=skip", &rules[1], &e) == 0 && !strcmp(rules[1].dest, "/cache"), "a trailing slash is dropped");
	ok(vol_rule_parse("data=copy", &rules[2], &e) == -EINVAL && strstr(e.msg, "/PATH"), "a relative path is refused: %s",
	   e.msg);
	ok(vol_rule_parse("/data=move", &rules[2], &e) == -EINVAL && strstr(e.msg, "move"), "an unknown policy: %s", e.msg);
	ok(vol_rule_parse("/data", &rules[2], &e) == -EINVAL, "no policy");
	ok(vol_rule_parse("/a=b=shared", &rules[2], &e) == 0 && !strcmp(rules[2].dest, "/a=b"), "'=' in the path: the last one splits");

	/* no policy: refused, naming the first uncovered mount */
	error_clear(&e);
	n = volumes_plan(cfg, "container ct1", VOL_NONE, rules, 1, false, v, VOL_MAX, &e);
	ok(n == -EINVAL && strstr(e.msg, "/cache/") && strstr(e.msg, "/srv/cache") && strstr(e.hint, "--volume"),
	   "an uncovered bind mount stops the plan, naming it: %s / %s", e.msg, e.hint);
	ok(strstr(e.hint, "nothing was frozen") != NULL, "and says nothing was frozen");
	/* a default covers the rest; rules win */
	error_clear(&e);
	n = volumes_plan(cfg, "container ct1", VOL_SHARED, rules, 2, false, v, VOL_MAX, &e);
	is_int(n, 3, "three bind mounts (proc and tmpfs are not)");
	ok(n == 3 && v[0].policy == VOL_COPY && v[1].policy == VOL_SKIP && v[2].policy == VOL_SHARED,
	   "rules first (/data copy, /cache skip), then the default (/etc/hosts shared)");
	ok(n == 3 && !strcmp(v[0].source, "/srv/data") && !strcmp(v[2].dest, "/etc/hosts"), "sources and destinations");

	/* the config as sent: copied and skipped mounts point into the bundle */
	ok(volumes_rewrite_config(cfg, v, n, &out, &e) == 0, "rewrite");
	ok(out && strstr(out, "\"volumes/0\"") && strstr(out, "\"volumes/1\"") && strstr(out, "/srv/hosts") &&
		   !strstr(out, "/srv/data"),
	   "copy and skip -> volumes/N, shared keeps its path");
	/* the agent resolves them inside its bundle */
	ok(volumes_resolve_config(out, "/tmp/cmt-test-volumes-bundle", &out2, &e) == 0, "resolve: %s", e.msg);
	ok(out2 && strstr(out2, "/tmp/cmt-test-volumes-bundle/volumes/0") && strstr(out2, "/srv/hosts"),
	   "volumes/N become paths in the bundle");
	free(out2);
	out2 = NULL;
	ok(volumes_resolve_config("{\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\",\"source\":\"../../etc\"}]}",
				  "/tmp/b", &out2, &e) == -EINVAL,
	   "a relative source other than volumes/N is refused: %s", e.msg);
	ok(volumes_resolve_config("{\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\",\"source\":\"volumes/0/../..\"}]}",
				  "/tmp/b", &out2, &e) == -EINVAL,
	   "volumes/0/../.. is refused");
	free(out);
	system("rm -rf /tmp/cmt-test-volumes-bundle");

	/* copying a single file is refused with a way out */
	error_clear(&e);
	struct vol_rule all_copy[] = { { "/etc/hosts", VOL_COPY } };
	static const char filecfg[] = "{\"mounts\":[{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"/etc/hostname\"}]}";
	n = volumes_plan(filecfg, "container ct1", VOL_NONE, all_copy, 1, true, v, VOL_MAX, &e);
	ok(n == -ENOTSUP && strstr(e.hint, "shared"), "copy of a file bind mount: refused with a hint: %s", e.msg);
	ok(volumes_plan("{", "c", VOL_COPY, NULL, 0, false, v, VOL_MAX, &e) == -EINVAL, "malformed config refused");
	error_clear(&e);
	n = volumes_plan("{\"mounts\":[{\"destination\":\"/d\",\"type\":\"bind\",\"source\":\"/nonexistent/cmt-src\"}]}",
			 "container ct1", VOL_COPY, NULL, 0, true, v, VOL_MAX, &e);
	ok(n == -ENOENT && strstr(e.msg, "/nonexistent/cmt-src") && strstr(e.msg, "container ct1"),
	   "a missing source is named: %s", e.msg);
	return done_testing();
}
