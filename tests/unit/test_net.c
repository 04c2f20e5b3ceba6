/* Unit tests of the network description (src/engine/net.c): what the agent
 * accepts from a peer in NET_SETUP, the round trip through JSON, the
 * namespace path in config.json, and the network keys of the host config. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "engine/net.h"
#include "tap.h"
#include "util/config.h"

static const char good[] =
	"{\"path\":\"/run/netns/ct1\",\"ifs\":[{\"name\":\"eth0\",\"mac\":\"02:42:0a:00:00:05\",\"mtu\":1500,"
	"\"addrs\":[\"10.0.0.5/24\",\"fd00::5/64\"]}],"
	"\"routes\":[{\"family\":\"inet\",\"dst\":\"default\",\"gw\":\"10.0.0.1\",\"dev\":\"eth0\"},"
	"{\"family\":\"inet\",\"dst\":\"192.0.2.7\",\"dev\":\"eth0\",\"metric\":10},"
	"{\"family\":\"inet6\",\"dst\":\"2001:db8::/32\",\"gw\":\"fd00::1\",\"dev\":\"eth0\"},"
	"{\"family\":\"inet\",\"dst\":\"203.0.113.0/24\",\"gw\":\"169.254.1.1\",\"dev\":\"eth0\",\"onlink\":true}]}";

static int parse(const char *txt, struct net_desc *d, struct error *e)
{
	error_clear(e);
	return net_desc_from_json(txt, strlen(txt), d, e);
}

/* good with one substring replaced */
static int parse_edit(const char *from, const char *to, struct error *e)
{
	static char buf[4096];
	static struct net_desc d;
	const char *p = strstr(good, from);

	if (!p) {
		diag("test bug: '%s' not in the description", from);
		return 99;
	}
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - good), good, to, p + strlen(from));
	return parse(buf, &d, e);
}

static void test_good(void)
{
	static struct net_desc d, d2;
	struct error e;
	char addrs[256];

	is_int(parse(good, &d, &e), 0, "a good description is accepted");
	is_str(d.path, "/run/netns/ct1", "path");
	is_int(d.nif, 1, "one interface");
	is_str(d.ifs[0].name, "eth0", "its name");
	is_str(d.ifs[0].mac, "02:42:0a:00:00:05", "its MAC");
	is_int(d.ifs[0].mtu, 1500, "its MTU");
	is_int(d.ifs[0].naddr, 2, "two addresses");
	ok(d.ifs[0].addr[0].family == AF_INET && d.ifs[0].addr[0].prefix == 24, "an IPv4 one, /24");
	ok(d.ifs[0].addr[1].family == AF_INET6 && d.ifs[0].addr[1].prefix == 64, "an IPv6 one, /64");
	is_int(d.nroutes, 4, "four routes");
	ok(d.routes[3].onlink && !d.routes[0].onlink, "an onlink route (Calico-style gateway) keeps its flag");
	is_str(d.routes[0].dst, "default", "a default route");
	is_str(d.routes[0].gw, "10.0.0.1", "via its gateway");
	is_str(d.routes[1].dst, "192.0.2.7/32", "a host route gets its /32");
	is_int(d.routes[1].metric, 10, "and keeps its metric");
	ok(d.routes[2].family == AF_INET6 && !strcmp(d.routes[2].gw, "fd00::1"), "an IPv6 route");
	net_desc_addresses(&d, addrs, sizeof(addrs));
	is_str(addrs, "10.0.0.5/24 fd00::5/64", "the addresses for hooks");

	char *j = net_desc_to_json(&d);
	ok(j != NULL, "encoded again");
	is_int(parse(j, &d2, &e), 0, "its encoding is accepted");
	ok(memcmp(&d, &d2, sizeof(d)) == 0, "and decodes to the same description");
	free(j);
	is_int(parse("{\"path\":\"/var/run/netns/x\",\"ifs\":[]}", &d, &e), 0, "no interfaces and no routes: accepted");
}

static void test_bad(void)
{
	struct error e;
	static struct net_desc d;
	static const struct {
		const char *from, *to, *why;
	} cases[] = {
		{ "/run/netns/ct1", "run/netns/ct1", "a relative path" },
		{ "/run/netns/ct1", "/run/netns/../../etc/passwd", "a path with .." },
		{ "/run/netns/ct1", "/run/netns/./ct1", "a path with ." },
		{ "/run/netns/ct1", "/run//netns/ct1", "a path with an empty component" },
		{ "/run/netns/ct1", "/run/netns/ct 1", "a path with a space" },
		{ "/run/netns/ct1", "/run/netns/", "a path ending in /" },
		{ "/run/netns/ct1", "/proc/1/ns/net", "a path under /proc (a process's namespace, e.g. the host's)" },
		{ "\"eth0\",\"mac\"", "\"eth0/x\",\"mac\"", "an interface name with /" },
		{ "\"eth0\",\"mac\"", "\"eth0123456789abc\",\"mac\"", "an interface name of 16 characters" },
		{ "\"eth0\",\"mac\"", "\"\",\"mac\"", "an empty interface name" },
		{ "\"eth0\",\"mac\"", "\"lo\",\"mac\"", "lo (always there, never described)" },
		{ "\"eth0\",\"mac\"", "\"..\",\"mac\"", "an interface named .." },
		{ "02:42:0a:00:00:05", "02:42:0a:00:00", "a short MAC" },
		{ "02:42:0a:00:00:05", "03:42:0a:00:00:05", "a multicast MAC" },
		{ "02:42:0a:00:00:05", "00:00:00:00:00:00", "a zero MAC" },
		{ "02:42:0a:00:00:05", "02:42:0a:00:00:5g", "a MAC with a non-hex digit" },
		{ "02:42:0a:00:00:05", "02-42-0a-00-00-05", "a MAC with dashes" },
		{ "1500", "67", "an MTU below 68" },
		{ "1500", "65536", "an MTU above 65535" },
		{ "1500", "\"1500\"", "an MTU as a string" },
		{ "10.0.0.5/24", "10.0.0.5/33", "an IPv4 prefix above 32" },
		{ "10.0.0.5/24", "10.0.0.5", "an address without a prefix" },
		{ "10.0.0.5/24", "10.0.0.5/", "an empty prefix" },
		{ "10.0.0.5/24", "10.0.0.5/-1", "a negative prefix" },
		{ "10.0.0.5/24", "10.0.0.256/24", "a bad IPv4 address" },
		{ "fd00::5/64", "fd00::5/129", "an IPv6 prefix above 128" },
		{ "fd00::5/64", "fd00:::5/64", "a bad IPv6 address" },
		{ "\"gw\":\"10.0.0.1\"", "\"gw\":\"fd00::1\"", "an IPv6 gateway on an IPv4 route" },
		{ "\"family\":\"inet\",\"dst\":\"default\"", "\"family\":\"ipx\",\"dst\":\"default\"", "an unknown family" },
		{ "\"dst\":\"192.0.2.7\"", "\"dst\":\"192.0.2.7/40\"", "a route prefix above 32" },
		{ "\"dst\":\"192.0.2.7\"", "\"dst\":\"somewhere\"", "a route destination that is no address" },
		{ "\"dev\":\"eth0\",\"metric\"", "\"dev\":\"eth1\",\"metric\"", "a route on an interface not described" },
		{ "\"metric\":10", "\"metric\":-1", "a negative metric" },
		{ "\"onlink\":true", "\"onlink\":1", "an onlink flag that is no boolean" },
		{ "\"gw\":\"169.254.1.1\",\"dev\":\"eth0\",\"onlink\":true", "\"dev\":\"eth0\",\"onlink\":true", "an onlink route without a gateway" },
		{ "\"metric\":10", "\"metric\":4294967296", "a metric above 32 bits" },
		{ "\"path\":\"/run/netns/ct1\",", "", "no path" },
		{ "\"ifs\":[", "\"ifs\":{\"x\":[", "interfaces that are no array" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse_edit(cases[i].from, cases[i].to, &e);
		ok(r < 0 && e.msg[0], "refused: %s (%s)", cases[i].why, e.msg);
	}
	/* counts */
	char big[16384];
	size_t l = (size_t)snprintf(big, sizeof(big), "{\"path\":\"/run/netns/x\",\"ifs\":[");
	for (int i = 0; i <= NET_MAX_IFS; i++)
		l += (size_t)snprintf(big + l, sizeof(big) - l, "%s{\"name\":\"e%d\",\"mac\":\"02:00:00:00:00:%02x\",\"mtu\":1500,\"addrs\":[]}",
				      i ? "," : "", i, i + 1);
	snprintf(big + l, sizeof(big) - l, "]}");
	ok(parse(big, &d, &e) < 0, "more than %d interfaces: refused (%s)", NET_MAX_IFS, e.msg);
	l = (size_t)snprintf(big, sizeof(big), "{\"path\":\"/run/netns/x\",\"ifs\":[{\"name\":\"e\",\"mac\":\"02:00:00:00:00:01\",\"mtu\":1500,\"addrs\":[");
	for (int i = 0; i <= NET_MAX_ADDRS; i++)
		l += (size_t)snprintf(big + l, sizeof(big) - l, "%s\"10.0.0.%d/24\"", i ? "," : "", i + 1);
	snprintf(big + l, sizeof(big) - l, "]}]}");
	ok(parse(big, &d, &e) < 0, "more than %d addresses on an interface: refused (%s)", NET_MAX_ADDRS, e.msg);
	l = (size_t)snprintf(big, sizeof(big), "{\"path\":\"/run/netns/x\",\"ifs\":[{\"name\":\"e\",\"mac\":\"02:00:00:00:00:01\",\"mtu\":1500,\"addrs\":[]}],\"routes\":[");
	for (int i = 0; i <= NET_MAX_ROUTES; i++)
		l += (size_t)snprintf(big + l, sizeof(big) - l, "%s{\"family\":\"inet\",\"dst\":\"10.%d.0.0/16\",\"dev\":\"e\"}", i ? "," : "", i);
	snprintf(big + l, sizeof(big) - l, "]}");
	ok(parse(big, &d, &e) < 0, "more than %d routes: refused (%s)", NET_MAX_ROUTES, e.msg);
	ok(parse("{\"path\":\"/run/netns/x\",\"ifs\":[{\"name\":\"e\",\"mac\":\"02:00:00:00:00:01\",\"mtu\":1500,\"addrs\":[]},"
		 "{\"name\":\"e\",\"mac\":\"02:00:00:00:00:02\",\"mtu\":1500,\"addrs\":[]}]}", &d, &e) < 0,
	   "two interfaces of one name: refused");
	ok(parse("[1]", &d, &e) < 0, "no object: refused");
	ok(parse("{\"path\":\"/run/netns/x\",\"path\":\"/etc\",\"ifs\":[]}", &d, &e) < 0, "a duplicate key: refused");
	ok(net_desc_from_json(good, NET_DESC_MAX + 1, &d, &e) < 0, "more than %d bytes: refused", NET_DESC_MAX);
}

static void test_config_path(void)
{
	char p[256];
	struct error e = { 0 };

	is_int(net_path_from_config("{\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/run/netns/a\"}]}}",
				    p, sizeof(p), &e), 1, "a network namespace with a path");
	is_str(p, "/run/netns/a", "its path");
	is_int(net_path_from_config("{\"linux\":{\"namespaces\":[{\"type\":\"network\"}]}}", p, sizeof(p), &e),
	       NET_NS_PRIVATE, "a network namespace runc makes: private, nothing to move (CRIU carries it)");
	is_int(net_path_from_config("{\"linux\":{\"namespaces\":[{\"type\":\"network\",\"path\":\"\"}]}}", p,
				    sizeof(p), &e),
	       NET_NS_PRIVATE, "an empty path: the same");
	is_int(net_path_from_config("{\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}", p, sizeof(p), &e),
	       NET_NS_HOST, "no network namespace in the list: the host's");
	is_int(net_path_from_config("{\"linux\":{}}", p, sizeof(p), &e), NET_NS_HOST, "no namespaces at all: the host's");
	ok(net_path_from_config("{", p, sizeof(p), &e) < 0, "a broken config.json: an error");
}

/* A child in a network namespace of its own, with a dummy interface when
 * asked; answers net_only_loopback of it (and net_criu_lock_redundant of a
 * private namespace like it in *redundant). */
static int child_ns_only_lo(bool dummy, bool *ran, bool *redundant)
{
	int go[2], done[2];
	char b = 0;
	pid_t pid;
	int r = -1;

	*ran = false;
	if (pipe(go) < 0 || pipe(done) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(go[0]);
		close(done[1]);
		b = unshare(CLONE_NEWNET) == 0 ? 1 : 0;
		if (b && dummy)
			b = system("ip link add cmt-t-dummy0 type dummy >/dev/null 2>&1") == 0 ? 1 : 0;
		if (write(go[1], &b, 1) != 1)
			_exit(1);
		(void)!read(done[0], &b, 1); /* until the parent has looked */
		_exit(0);
	}
	close(go[1]);
	close(done[0]);
	if (pid > 0 && read(go[0], &b, 1) == 1 && b == 1) {
		*ran = true;
		r = net_only_loopback(pid);
		*redundant = net_criu_lock_redundant(NET_NS_PRIVATE, true, pid);
	}
	close(go[0]);
	close(done[1]); /* the child ends */
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return r;
}

static void test_only_loopback(void)
{
	bool ran, red;
	int r;

	ok(!net_only_loopback(0), "no process 0: not only lo (cannot tell)");
	ok(!net_criu_lock_redundant(NET_NS_HOST, true, getpid()), "the host's namespace: CRIU locks each connection");
	ok(!net_criu_lock_redundant(NET_NS_PATH, false, 0), "a namespace by path that cmt has not locked: CRIU locks");
	ok(net_criu_lock_redundant(NET_NS_PATH, true, 0), "a namespace by path that cmt holds locked: no CRIU lock");
	ok(!net_criu_lock_redundant(NET_NS_PRIVATE, true, 0), "a private namespace not looked at: CRIU locks");
	r = child_ns_only_lo(false, &ran, &red);
	if (!ran) {
		skip_n(4, "cannot make a network namespace here (needs root)");
		return;
	}
	is_int(r, 1, "a new network namespace holds only lo");
	ok(red, "... so CRIU's lock of such a private namespace is redundant");
	r = child_ns_only_lo(true, &ran, &red);
	if (!ran) {
		skip_n(2, "cannot add a dummy interface here (ip, root)");
		return;
	}
	is_int(r, 0, "... with a dummy interface too: not only lo");
	ok(!red, "... and CRIU locks it");
}

static void test_config_keys(void)
{
	struct config c;
	struct error e = { 0 };

	config_defaults(&c);
	is_str(c.net_attach, "bridge", "net_attach defaults to the bridge");
	is_str(c.net_bridge, "cmt0", "net_bridge defaults to cmt0");
	is_str(c.net_route_hook, "", "no route hook by default");
	is_int(config_parse(&c, "net_bridge = br-ct\nnet_route_hook = /usr/local/lib/cmt/route\n", "f", &e), 0,
	       "net_bridge and net_route_hook");
	ok(!strcmp(c.net_bridge, "br-ct") && !strcmp(c.net_route_hook, "/usr/local/lib/cmt/route"), "are set");
	is_int(config_parse(&c, "net_attach = /usr/local/lib/cmt/attach\n", "f", &e), 0, "net_attach = a program");
	is_str(c.net_attach, "/usr/local/lib/cmt/attach", "is set");
	error_clear(&e);
	ok(config_parse(&c, "net_attach = attach.sh\n", "f", &e) < 0 && strstr(e.msg, "f:1"),
	   "net_attach neither bridge nor absolute: refused (%s)", e.msg);
	error_clear(&e);
	ok(config_parse(&c, "net_bridge = a/b\n", "f", &e) < 0, "net_bridge with a /: refused");
	error_clear(&e);
	ok(config_parse(&c, "net_bridge = abcdefghijklmnop\n", "f", &e) < 0, "net_bridge of 16 characters: refused");
	error_clear(&e);
	ok(config_parse(&c, "net_route_hook = route.sh\n", "f", &e) < 0, "a relative net_route_hook: refused");
}

static void write_net(const char *dir, const char *txt)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/net", dir);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(txt, f);
		fclose(f);
	}
}

static void test_state(void)
{
	char dir[] = "/tmp/cmt-test-net.XXXXXX";
	static struct net_state ns, back;
	struct error e = { 0 };

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	is_int(net_state_load(dir, &back, &e), 0, "no state file: nothing to recover");
	memset(&ns, 0, sizeof(ns));
	is_int(net_desc_from_json(good, strlen(good), &ns.d, &e), 0, "a description");
	ns.created = ns.placed = ns.locked = true;
	snprintf(ns.staging, sizeof(ns.staging), "/run/netns/cmt-0123abcd");
	snprintf(ns.host_if[0], sizeof(ns.host_if[0]), "cmt0123abcd0");
	is_int(net_state_save(dir, &ns, &e), 0, "saved");
	is_int(net_state_load(dir, &back, &e), 1, "loaded");
	ok(back.created && back.placed && back.locked && !back.existed && !back.attached, "its flags");
	is_str(back.staging, "/run/netns/cmt-0123abcd", "its staging name");
	is_str(back.host_if[0], "cmt0123abcd0", "its host interface");
	ok(memcmp(&back.d, &ns.d, sizeof(ns.d)) == 0, "its description");

	static const char *bad[] = {
		"{\"desc\":\"{}\",\"staging\":\"\",\"host_ifs\":[]}",
		"{\"desc\":\"{\\\"path\\\":\\\"/run/netns/a\\\",\\\"ifs\\\":[]}\",\"staging\":\"/etc/passwd\",\"host_ifs\":[]}",
		"{\"desc\":\"{\\\"path\\\":\\\"/run/netns/a\\\",\\\"ifs\\\":[]}\",\"staging\":\"/run/netns/cmt-../../x\",\"host_ifs\":[]}",
		"{\"desc\":\"{\\\"path\\\":\\\"/proc/1/ns/net\\\",\\\"ifs\\\":[]}\",\"staging\":\"\",\"host_ifs\":[]}",
		"{\"desc\":\"{\\\"path\\\":\\\"/run/netns/a\\\",\\\"ifs\\\":[]}\",\"staging\":\"\",\"host_ifs\":[\"x\"]}",
		"not json",
	};
	static const char *why[] = { "a description without a path", "a staging name elsewhere", "a staging name with ..",
				     "a namespace under /proc", "more host interfaces than interfaces", "no JSON" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_net(dir, bad[i]);
		error_clear(&e);
		ok(net_state_load(dir, &back, &e) < 0 && strstr(e.msg, "corrupted"), "a corrupted state is refused: %s",
		   why[i]);
	}
	char p[512];
	snprintf(p, sizeof(p), "%s/net", dir);
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	test_good();
	test_bad();
	test_config_path();
	test_only_loopback();
	test_config_keys();
	test_state();
	return done_testing();
}
