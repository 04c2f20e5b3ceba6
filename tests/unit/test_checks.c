/* Pre-migration checks evaluated from host facts and a workload scan. */
#include <string.h>

#include "criu/precheck.h"
#include "engine/checks.h"
#include "engine/facts.h"
#include "tap.h"

static const struct check *find(const struct check_list *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->c[i].name, name))
			return &l->c[i];
	return NULL;
}

static void healthy(struct facts *f, const char *host)
{
	memset(f, 0, sizeof(*f));
	facts_set(f, "host", "%s", host);
	facts_set(f, "cmt_version", "0.1.0");
	facts_set(f, "protocol", "1.0");
	facts_set(f, "criu_path", "/usr/sbin/criu");
	facts_set(f, "criu_version", "4.2.1");
	facts_set(f, "criu_vnum", "40201");
	facts_set(f, "criu_check", "ok");
	facts_set(f, "runc_version", "1.1.5");
	facts_set(f, "mem_available_kib", "%d", 8 * 1024 * 1024);
	facts_set(f, "disk_free_bytes", "%lld", 100ll << 30);
	facts_set(f, "iptables_restore", "1");
	facts_set(f, "freezer_v1", "1");
	facts_set(f, "feature_lazy_pages", "1");
	facts_set(f, "pipe_max_size", "1048576");
	facts_set(f, "cap_sys_resource", "0");
}

int main(void)
{
	struct facts src, dst;
	struct workload w = { .kind = KIND_RUNC, .id = "web1" };
	struct precheck pc = { .nproc = 2, .rss_kib = 256 * 1024 };
	static struct check_list l;
	const struct check *k;

	healthy(&src, "h1");
	healthy(&dst, "h2");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	is_int(checks_failed(&l), 0, "healthy hosts: nothing fails");
	ok(find(&l, "criu-destination") && find(&l, "memory") && find(&l, "runc") && find(&l, "workload-files"),
	   "the expected checks are there");
	ok(find(&l, "lazy-pages") == NULL, "no lazy-pages check in cold mode");
	ok(find(&l, "network") == NULL, "no network check for a container without a namespace path");

	/* a container whose network namespace moves */
	{
		struct workload wn = { .kind = KIND_RUNC, .id = "web2" };
		wn.config_json = "{\"linux\":{\"namespaces\":[{\"type\":\"network\",\"path\":\"/run/netns/web2\"}]}}";
		memset(&l, 0, sizeof(l));
		checks_evaluate(&src, &dst, &wn, &pc, "cold", &l);
		k = find(&l, "network");
		ok(k && k->status == CHECK_WARN, "a destination that says nothing of its attachment: warning");
		facts_set(&dst, "net_attach", "bridge cmt0");
		facts_set(&dst, "net_attach_ok", "0");
		memset(&l, 0, sizeof(l));
		checks_evaluate(&src, &dst, &wn, &pc, "cold", &l);
		k = find(&l, "network");
		ok(k && k->status == CHECK_FAIL && strstr(k->detail, "bridge cmt0") && strstr(k->detail, "/run/netns/web2") &&
			   k->hint[0],
		   "a destination without its bridge fails the network check: %s", k ? k->detail : "");
		ok(check_is_about_destination("network"), "and that is about the destination");
		facts_set(&dst, "net_attach_ok", "1");
		memset(&l, 0, sizeof(l));
		checks_evaluate(&src, &dst, &wn, &pc, "cold", &l);
		k = find(&l, "network");
		ok(k && k->status == CHECK_PASS, "with its bridge: pass");
	}

	facts_set(&dst, "criu_check", "fail: Error (criu/kerndat.c:1): vdso");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "criu-destination");
	ok(k && k->status == CHECK_FAIL, "a destination whose criu check fails");
	ok(k && strstr(k->detail, "h2") && k->hint[0], "names the host and says what to do: %s", k ? k->detail : "");

	healthy(&dst, "h2");
	memset(dst.val, 0, sizeof(dst.val));
	dst.n = 0;
	facts_set(&dst, "host", "h2");
	facts_set(&dst, "criu_error", "CRIU not found");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "criu-destination");
	ok(k && k->status == CHECK_FAIL && strstr(k->detail, "not found"), "missing CRIU");

	healthy(&dst, "h2");
	facts_set(&dst, "criu_vnum", "50001");
	facts_set(&dst, "criu_version", "5.0.1");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "criu-versions");
	ok(k && k->status == CHECK_FAIL, "different major CRIU fails");
	facts_set(&dst, "criu_vnum", "40300");
	facts_set(&dst, "criu_version", "4.3");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "criu-versions");
	ok(k && k->status == CHECK_WARN, "different minor CRIU warns");

	healthy(&dst, "h2");
	facts_set(&dst, "mem_available_kib", "%d", 100 * 1024);
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "memory");
	ok(k && k->status == CHECK_FAIL, "too little memory fails: %s", k ? k->detail : "");
	facts_set(&dst, "mem_available_kib", "%d", 300 * 1024);
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "memory");
	ok(k && k->status == CHECK_WARN, "tight memory warns");
	facts_set(&dst, "images_in_memory", "1");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "memory");
	ok(k && k->status == CHECK_FAIL && strstr(k->detail, "images") && strstr(k->hint, "images_tmpfs = no"),
	   "the same memory fails when the images take as much again in memory there: %s / %s", k ? k->detail : "",
	   k ? k->hint : "");
	k = find(&l, "disk");
	ok(k && k->status == CHECK_PASS && strstr(k->detail, "in memory"), "and the disk does not matter then");
	facts_set(&dst, "mem_available_kib", "%d", 8 * 1024 * 1024);
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "memory");
	ok(k && k->status == CHECK_PASS, "8 GiB is plenty for both");
	facts_set(&dst, "images_in_memory", "0");

	healthy(&dst, "h2");
	facts_set(&dst, "disk_free_bytes", "%d", 1 << 20);
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "disk");
	ok(k && k->status == CHECK_FAIL, "no disk for images fails");

	healthy(&dst, "h2");
	facts_set(&dst, "runc_error", "runc not found in PATH");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "cold", &l);
	k = find(&l, "runc");
	ok(k && k->status == CHECK_FAIL, "missing runc fails for a container");
	struct workload wp = { .kind = KIND_PID, .id = "42" };
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &wp, &pc, "cold", &l);
	ok(find(&l, "runc") == NULL, "runc not needed for a process tree");

	healthy(&dst, "h2");
	struct precheck bad = pc;
	bad.n_external = 1;
	snprintf(bad.external[0], sizeof(bad.external[0]), "fd 1 of process 7 (sh) is /tmp/out");
	bad.n_traced = 1;
	snprintf(bad.traced[0], sizeof(bad.traced[0]), "process 7 (sh) is traced by process 9");
	bad.tcp_established = 2;
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &bad, "cold", &l);
	k = find(&l, "workload-files");
	ok(k && k->status == CHECK_FAIL && strstr(k->detail, "/tmp/out"), "external fd fails, names the file");
	k = find(&l, "workload-tracer");
	ok(k && k->status == CHECK_FAIL, "tracer fails");
	k = find(&l, "tcp-repair");
	ok(k && k->status == CHECK_PASS && l.tcp_established, "tcp connections: repair planned");
	facts_set(&dst, "iptables_restore", "0");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &bad, "cold", &l);
	k = find(&l, "tcp-repair");
	ok(k && k->status == CHECK_FAIL && strstr(k->detail, "h2"), "no network lock tool fails");

	healthy(&dst, "h2");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "postcopy", &l);
	k = find(&l, "lazy-pages");
	ok(k && k->status == CHECK_FAIL && strstr(k->hint, "pipe-max-size"), "post-copy: pipe limit detected");
	facts_set(&dst, "pipe_max_size", "4194304");
	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, &w, &pc, "postcopy", &l);
	k = find(&l, "lazy-pages");
	ok(k && k->status == CHECK_PASS, "post-copy possible with a big enough pipe limit");

	memset(&l, 0, sizeof(l));
	checks_evaluate(&src, &dst, NULL, NULL, "cold", &l);
	ok(find(&l, "memory") == NULL && find(&l, "criu-destination"), "host-only checks without a workload");

	/* facts over the wire */
	struct facts f;
	struct error e = { 0 };
	char *txt = facts_format(&src);
	ok(txt && facts_parse(&f, txt, &e) == 0, "facts round trip");
	is_str(facts_get(&f, "criu_version"), "4.2.1", "value survives");
	free(txt);
	ok(facts_parse(&f, "novalue\n", &e) < 0, "line without '=' refused");
	ok(facts_parse(&f, "=x\n", &e) < 0, "empty key refused");
	ok(facts_parse(&f, "bad key=1\n", &e) < 0, "bad key characters refused");
	char longv[700];
	memset(longv, 'a', sizeof(longv));
	memcpy(longv, "k=", 2);
	longv[sizeof(longv) - 1] = 0;
	ok(facts_parse(&f, longv, &e) < 0, "over-long value refused");
	is_int(facts_num(&src, "criu_vnum", -1), 40201, "facts_num");
	is_int(facts_num(&src, "host", -1), -1, "facts_num of a non-number gives the default");
	return done_testing();
}
