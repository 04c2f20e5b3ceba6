#include "engine/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/spawn.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

#define NET_CMD_TIMEOUT_MS 20000
#define NET_HOOK_TIMEOUT_MS 60000

/* --- config.json --------------------------------------------------------- */

int net_path_from_config(const char *config_json, char *path, size_t n, struct error *e)
{
	json_error_t je;
	json_t *root = json_loads(config_json, 0, &je), *nss, *ns;
	size_t i;
	int r = 0;

	if (!root)
		return error_set(e, EINVAL, "config.json is not JSON: %s (line %d)", je.text, je.line);
	nss = json_object_get(json_object_get(root, "linux"), "namespaces");
	json_array_foreach(nss, i, ns) {
		const char *type = json_string_value(json_object_get(ns, "type"));
		const char *p = json_string_value(json_object_get(ns, "path"));
		if (!type || strcmp(type, "network") != 0)
			continue;
		if (!p || !*p) {
			r = NET_NS_PRIVATE;
			break;
		}
		if (strlen(p) >= n) {
			r = error_set(e, ENAMETOOLONG, "the network namespace path in config.json is too long");
			break;
		}
		snprintf(path, n, "%s", p);
		r = NET_NS_PATH;
		break;
	}
	json_decref(root);
	return r;
}

bool net_only_loopback(pid_t pid)
{
	char path[64], line[512];
	bool only_lo = true;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	/* two header lines, then "  NAME: counters..." per interface */
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *name = line;
		if (++n <= 2)
			continue;
		if (!colon) {
			only_lo = false; /* not the format this reads: do not guess */
			break;
		}
		*colon = '\0';
		while (*name == ' ')
			name++;
		if (strcmp(name, "lo") != 0) {
			only_lo = false;
			break;
		}
	}
	if (ferror(f) || n < 2)
		only_lo = false;
	fclose(f);
	return only_lo;
}

bool net_criu_lock_redundant(int ns, bool cmt_locked, pid_t pid)
{
	if (ns == NET_NS_PATH)
		return cmt_locked;
	if (ns == NET_NS_PRIVATE)
		return pid > 0 && net_only_loopback(pid);
	return false;
}

/* --- validation ------------------------------------------------------------ */

static bool ifname_ok(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-' || *p == '.'))
			return false;
	return true;
}

static bool mac_ok(const char *s)
{
	unsigned b[6];
	char tail;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return false;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
						  (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return !(b[0] & 1) && (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]); /* unicast, not zero */
}

static bool ip_ok(int family, const char *s)
{
	unsigned char buf[16];

	return strlen(s) < 46 && inet_pton(family, s, buf) == 1;
}

/* A path for a namespace: absolute, no empty, "." or ".." components, no
 * whitespace or control characters. */
static bool ns_path_ok(const char *p)
{
	size_t l = strlen(p);

	if (l < 2 || l >= 256 || p[0] != '/' || p[l - 1] == '/' || !strncmp(p, "/proc/", 6))
		return false; /* (a /proc/PID/ns/net names a process's, meaningless on another host) */
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '\\')
			return false;
	for (const char *c = p; *c;) {
		const char *s = c + 1, *end = strchr(s, '/');
		size_t k = end ? (size_t)(end - s) : strlen(s);
		if (k == 0 || (k == 1 && s[0] == '.') || (k == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		c = s + k;
	}
	return true;
}

static int family_of(const char *name)
{
	if (!name)
		return 0;
	if (!strcmp(name, "inet"))
		return AF_INET;
	if (!strcmp(name, "inet6"))
		return AF_INET6;
	return 0;
}

static const char *family_name(int f)
{
	return f == AF_INET6 ? "inet6" : "inet";
}

/* "default" or ADDR[/PREFIX] (PREFIX added when missing) */
static bool dst_ok(int family, const char *s, char *out, size_t n)
{
	char a[64];
	const char *slash;
	unsigned long pl;
	char *end;

	if (!strcmp(s, "default")) {
		snprintf(out, n, "default");
		return true;
	}
	if (strlen(s) >= sizeof(a))
		return false;
	slash = strchr(s, '/');
	if (!slash) {
		if (!ip_ok(family, s))
			return false;
		snprintf(out, n, "%s/%u", s, family == AF_INET ? 32u : 128u);
		return true;
	}
	memcpy(a, s, (size_t)(slash - s));
	a[slash - s] = 0;
	errno = 0;
	pl = strtoul(slash + 1, &end, 10);
	if (!slash[1] || *end || errno || pl > (family == AF_INET ? 32u : 128u) || !ip_ok(family, a))
		return false;
	snprintf(out, n, "%s/%lu", a, pl);
	return true;
}

static int bad(struct error *e, const char *what, const char *val)
{
	return error_set(e, EINVAL, "invalid network description: %s '%.80s'", what, val ? val : "(missing)");
}

int net_desc_from_json(const char *txt, size_t len, struct net_desc *d, struct error *e)
{
	json_error_t je;
	json_t *root, *ifs, *routes, *it;
	const char *path;
	size_t i;
	int r = -EINVAL;

	memset(d, 0, sizeof(*d));
	if (len > NET_DESC_MAX)
		return error_set(e, EFBIG, "invalid network description: %zu bytes (at most %d)", len, NET_DESC_MAX);
	root = json_loadb(txt, len, JSON_REJECT_DUPLICATES, &je);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return error_set(e, EINVAL, "invalid network description: not a JSON object (%s)", root ? "" : je.text);
	}
	path = json_string_value(json_object_get(root, "path"));
	if (!path || !ns_path_ok(path)) {
		bad(e, "namespace path", path);
		goto out;
	}
	snprintf(d->path, sizeof(d->path), "%s", path);
	ifs = json_object_get(root, "ifs");
	routes = json_object_get(root, "routes");
	if (!json_is_array(ifs) || json_array_size(ifs) > NET_MAX_IFS || (routes && !json_is_array(routes)) ||
	    json_array_size(routes) > NET_MAX_ROUTES) {
		error_set(e, EINVAL, "invalid network description: at most %d interfaces and %d routes", NET_MAX_IFS,
			  NET_MAX_ROUTES);
		goto out;
	}
	json_array_foreach(ifs, i, it) {
		struct net_if *f = &d->ifs[d->nif];
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *mac = json_string_value(json_object_get(it, "mac"));
		json_t *mtu = json_object_get(it, "mtu"), *addrs = json_object_get(it, "addrs"), *a;
		size_t k;
		if (!name || !ifname_ok(name) || !strcmp(name, "lo")) {
			bad(e, "interface name", name);
			goto out;
		}
		for (int j = 0; j < d->nif; j++)
			if (!strcmp(d->ifs[j].name, name)) {
				bad(e, "duplicate interface", name);
				goto out;
			}
		if (!mac || !mac_ok(mac)) {
			bad(e, "MAC address", mac);
			goto out;
		}
		if (!json_is_integer(mtu) || json_integer_value(mtu) < 68 || json_integer_value(mtu) > 65535) {
			error_set(e, EINVAL, "invalid network description: MTU of %s out of 68..65535", name);
			goto out;
		}
		if (!json_is_array(addrs) || json_array_size(addrs) > NET_MAX_ADDRS) {
			error_set(e, EINVAL, "invalid network description: addresses of %s (at most %d)", name,
				  NET_MAX_ADDRS);
			goto out;
		}
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(f->mac, sizeof(f->mac), "%s", mac);
		f->mtu = (unsigned)json_integer_value(mtu);
		json_array_foreach(addrs, k, a) {
			struct net_addr *na = &f->addr[f->naddr];
			const char *s = json_string_value(a), *slash;
			char ip[64];
			unsigned long pl;
			char *end;
			if (!s || !(slash = strchr(s, '/')) || (size_t)(slash - s) >= sizeof(ip)) {
				bad(e, "address", s);
				goto out;
			}
			memcpy(ip, s, (size_t)(slash - s));
			ip[slash - s] = 0;
			na->family = strchr(ip, ':') ? AF_INET6 : AF_INET;
			errno = 0;
			pl = strtoul(slash + 1, &end, 10);
			if (!slash[1] || *end || errno || pl > (na->family == AF_INET ? 32u : 128u) || !ip_ok(na->family, ip)) {
				bad(e, "address", s);
				goto out;
			}
			snprintf(na->addr, sizeof(na->addr), "%s", ip);
			na->prefix = (unsigned)pl;
			f->naddr++;
		}
		d->nif++;
	}
	json_array_foreach(routes, i, it) {
		struct net_route *rt = &d->routes[d->nroutes];
		const char *fam = json_string_value(json_object_get(it, "family"));
		const char *dst = json_string_value(json_object_get(it, "dst"));
		const char *gw = json_string_value(json_object_get(it, "gw"));
		const char *dev = json_string_value(json_object_get(it, "dev"));
		json_t *metric = json_object_get(it, "metric");
		bool found = false;
		rt->family = family_of(fam);
		if (!rt->family) {
			bad(e, "route family", fam);
			goto out;
		}
		if (!dst || !dst_ok(rt->family, dst, rt->dst, sizeof(rt->dst))) {
			bad(e, "route destination", dst);
			goto out;
		}
		if (gw && *gw && !ip_ok(rt->family, gw)) {
			bad(e, "route gateway", gw);
			goto out;
		}
		for (int j = 0; dev && j < d->nif; j++)
			found |= !strcmp(d->ifs[j].name, dev);
		if (!found) {
			bad(e, "route device (not one of the interfaces)", dev);
			goto out;
		}
		if (metric && (!json_is_integer(metric) || json_integer_value(metric) < 0 ||
			       json_integer_value(metric) > 0xffffffffLL)) {
			bad(e, "route metric of", dst);
			goto out;
		}
		snprintf(rt->gw, sizeof(rt->gw), "%s", gw ? gw : "");
		snprintf(rt->dev, sizeof(rt->dev), "%s", dev);
		rt->metric = metric ? (unsigned)json_integer_value(metric) : 0;
		json_t *onlink = json_object_get(it, "onlink");
		if (onlink && !json_is_boolean(onlink)) {
			bad(e, "route onlink flag of", dst);
			goto out;
		}
		rt->onlink = json_is_true(onlink);
		if (rt->onlink && !rt->gw[0]) {
			bad(e, "onlink route without a gateway", dst);
			goto out;
		}
		d->nroutes++;
	}
	r = 0;
out:
	json_decref(root);
	return r;
}

char *net_desc_to_json(const struct net_desc *d)
{
	json_t *j = json_object(), *ifs = json_array(), *routes = json_array();
	char buf[80], *s;

	json_object_set_new(j, "path", json_string(d->path));
	for (int i = 0; i < d->nif; i++) {
		const struct net_if *f = &d->ifs[i];
		json_t *o = json_object(), *a = json_array();
		json_object_set_new(o, "name", json_string(f->name));
		json_object_set_new(o, "mac", json_string(f->mac));
		json_object_set_new(o, "mtu", json_integer(f->mtu));
		for (int k = 0; k < f->naddr; k++) {
			snprintf(buf, sizeof(buf), "%s/%u", f->addr[k].addr, f->addr[k].prefix);
			json_array_append_new(a, json_string(buf));
		}
		json_object_set_new(o, "addrs", a);
		json_array_append_new(ifs, o);
	}
	for (int i = 0; i < d->nroutes; i++) {
		const struct net_route *rt = &d->routes[i];
		json_t *o = json_object();
		json_object_set_new(o, "family", json_string(family_name(rt->family)));
		json_object_set_new(o, "dst", json_string(rt->dst));
		if (rt->gw[0])
			json_object_set_new(o, "gw", json_string(rt->gw));
		json_object_set_new(o, "dev", json_string(rt->dev));
		if (rt->metric)
			json_object_set_new(o, "metric", json_integer(rt->metric));
		if (rt->onlink)
			json_object_set_new(o, "onlink", json_true());
		json_array_append_new(routes, o);
	}
	json_object_set_new(j, "ifs", ifs);
	json_object_set_new(j, "routes", routes);
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s;
}

void net_desc_addresses(const struct net_desc *d, char *out, size_t n)
{
	size_t l = 0;

	out[0] = 0;
	for (int i = 0; i < d->nif; i++)
		for (int k = 0; k < d->ifs[i].naddr && l < n; k++)
			l += (size_t)snprintf(out + l, n - l, "%s%s/%u", l ? " " : "", d->ifs[i].addr[k].addr,
					      d->ifs[i].addr[k].prefix);
}

/* --- running tools inside a namespace -------------------------------------- */

/* nsenter --net=PATH ARGV..., with input on stdin (a file) when given. */
static int ns_run(const char *path, const char *input, char *const *args, struct run_result *rr, struct error *e)
{
	char *argv[24], netarg[300], tmp[] = "/tmp/cmt-net.XXXXXX";
	struct run_opts o = { .timeout_ms = NET_CMD_TIMEOUT_MS };
	int n = 0, r, fd = -1;

	snprintf(netarg, sizeof(netarg), "--net=%s", path);
	argv[n++] = "nsenter";
	argv[n++] = netarg;
	argv[n++] = "--";
	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (input) {
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return error_errno(e, errno, "cannot create a temporary file");
		if (write(fd, input, strlen(input)) != (ssize_t)strlen(input)) {
			close(fd);
			unlink(tmp);
			return error_errno(e, errno, "cannot write a temporary file");
		}
		close(fd);
		o.stdin_path = tmp;
	}
	r = run_cmd(argv, &o, rr, e);
	if (input)
		unlink(tmp);
	return r;
}

static const char *trimmed(const char *s)
{
	static char buf[512];
	size_t l;

	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	l = strlen(buf);
	while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' '))
		buf[--l] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return buf;
}

/* ns_run, its failure (non-zero exit) an error saying what. */
static int ns_do(const char *path, const char *input, char *const *args, const char *what, struct error *e)
{
	struct run_result rr;
	int r = ns_run(path, input, args, &rr, e);

	if (r < 0)
		return error_wrap(e, "%s", what);
	if (rr.status != 0) {
		error_set(e, EIO, "%s failed (in network namespace %s): %s", what, path, trimmed(rr.err[0] ? rr.err : rr.out));
		run_result_free(&rr);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

static int ns_json(const char *path, char *const *args, json_t **ret, struct error *e)
{
	struct run_result rr;
	json_error_t je;
	int r = ns_run(path, NULL, args, &rr, e);

	if (r < 0)
		return r;
	if (rr.status != 0) {
		error_set(e, EIO, "`%s` in network namespace %s failed: %s", argv_str(args), path, trimmed(rr.err));
		run_result_free(&rr);
		return -EIO;
	}
	*ret = json_loads(rr.out[0] ? rr.out : "[]", 0, &je);
	run_result_free(&rr);
	if (!*ret)
		return error_set(e, EPROTO, "cannot parse the output of `%s`: %s", argv_str(args), je.text);
	return 0;
}

/* --- source: describing a namespace ------------------------------------------ */

static bool is_netns(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)NSFS_MAGIC;
}

/* The namespace at path is the one this process (the host) runs in. */
static bool is_host_ns(const char *path)
{
	struct stat a, b;

	return stat(path, &a) == 0 && stat("/proc/self/ns/net", &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int net_describe(const char *path, struct net_desc *d, struct error *e)
{
	char *addr_args[] = { "ip", "-json", "addr", "show", NULL };
	json_t *links = NULL, *it;
	size_t i;
	int r;

	memset(d, 0, sizeof(*d));
	if (!ns_path_ok(path) || !is_netns(path)) {
		error_set(e, EINVAL, "the container's network namespace %s is not a network namespace cmt can move", path);
		error_hint(e, "config.json names a network namespace by path: it must exist while the container runs, as a "
			      "bind mount outside /proc (e.g. /run/netns/NAME)");
		return -EINVAL;
	}
	if (is_host_ns(path)) {
		error_set(e, EINVAL, "the container's network namespace %s is the host's own: its addresses cannot move "
			  "with it", path);
		error_hint(e, "give the container a network namespace of its own");
		return -EINVAL;
	}
	snprintf(d->path, sizeof(d->path), "%s", path);
	r = ns_json(path, addr_args, &links, e);
	if (r < 0)
		return error_wrap(e, "cannot read the interfaces of the container's network namespace");
	json_array_foreach(links, i, it) {
		const char *name = json_string_value(json_object_get(it, "ifname"));
		const char *type = json_string_value(json_object_get(it, "link_type"));
		const char *mac = json_string_value(json_object_get(it, "address"));
		json_t *ai, *a;
		size_t k;
		if (!name || (type && !strcmp(type, "loopback")))
			continue;
		if (!type || strcmp(type, "ether") != 0 || !mac) {
			error_set(e, ENOTSUP, "interface %s (%s) of the container's network namespace cannot be recreated on "
				  "the destination (only ethernet interfaces can)", name, type ? type : "unknown type");
			json_decref(links);
			return -ENOTSUP;
		}
		if (d->nif == NET_MAX_IFS || !ifname_ok(name)) {
			error_set(e, ENOTSUP, "the container's network namespace has too many interfaces or a bad name (%s)",
				  name);
			json_decref(links);
			return -ENOTSUP;
		}
		struct net_if *f = &d->ifs[d->nif++];
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(f->mac, sizeof(f->mac), "%s", mac);
		f->mtu = (unsigned)json_integer_value(json_object_get(it, "mtu"));
		ai = json_object_get(it, "addr_info");
		json_array_foreach(ai, k, a) {
			int fam = family_of(json_string_value(json_object_get(a, "family")));
			const char *local = json_string_value(json_object_get(a, "local"));
			if (!fam || !local || f->naddr == NET_MAX_ADDRS)
				continue;
			f->addr[f->naddr].family = fam;
			snprintf(f->addr[f->naddr].addr, sizeof(f->addr[0].addr), "%s", local);
			f->addr[f->naddr].prefix = (unsigned)json_integer_value(json_object_get(a, "prefixlen"));
			f->naddr++;
		}
	}
	json_decref(links);
	for (int fam = 0; fam < 2; fam++) {
		char *route_args[] = { "ip", "-json", fam ? "-6" : "-4", "route", "show", NULL };
		json_t *routes = NULL;
		r = ns_json(path, route_args, &routes, e);
		if (r < 0)
			return error_wrap(e, "cannot read the routes of the container's network namespace");
		json_array_foreach(routes, i, it) {
			const char *dst = json_string_value(json_object_get(it, "dst"));
			const char *proto = json_string_value(json_object_get(it, "protocol"));
			const char *gw = json_string_value(json_object_get(it, "gateway"));
			const char *dev = json_string_value(json_object_get(it, "dev"));
			const char *type = json_string_value(json_object_get(it, "type"));
			bool known = false;
			if (!dst || !dev || (proto && !strcmp(proto, "kernel")) || (type && strcmp(type, "unicast") != 0))
				continue;
			for (int j = 0; j < d->nif; j++)
				known |= !strcmp(d->ifs[j].name, dev);
			if (!known || d->nroutes == NET_MAX_ROUTES)
				continue;
			struct net_route *rt = &d->routes[d->nroutes];
			rt->family = fam ? AF_INET6 : AF_INET;
			if (!dst_ok(rt->family, dst, rt->dst, sizeof(rt->dst)))
				continue;
			snprintf(rt->gw, sizeof(rt->gw), "%s", gw ? gw : "");
			snprintf(rt->dev, sizeof(rt->dev), "%s", dev);
			rt->metric = (unsigned)json_integer_value(json_object_get(it, "metric"));
			json_t *fl, *flv;
			size_t fk;
			fl = json_object_get(it, "flags");
			json_array_foreach(fl, fk, flv)
				rt->onlink |= json_string_value(flv) && !strcmp(json_string_value(flv), "onlink");
			rt->onlink &= rt->gw[0] != 0;
			d->nroutes++;
		}
		json_decref(routes);
	}
	return 0;
}

/* --- the lock ----------------------------------------------------------------- */

static const char lock_rules[] = "*filter\n"
				 ":" NET_LOCK_CHAIN " - [0:0]\n"
				 "-I INPUT -j " NET_LOCK_CHAIN "\n"
				 "-I OUTPUT -j " NET_LOCK_CHAIN "\n"
				 "-A " NET_LOCK_CHAIN " -m mark --mark 0xC114 -j ACCEPT\n"
				 "-A " NET_LOCK_CHAIN " -j DROP\n"
				 "COMMIT\n";
static const char unlock_rules[] = "*filter\n"
				   ":" NET_LOCK_CHAIN " - [0:0]\n"
				   "-D INPUT -j " NET_LOCK_CHAIN "\n"
				   "-D OUTPUT -j " NET_LOCK_CHAIN "\n"
				   "-X " NET_LOCK_CHAIN "\n"
				   "COMMIT\n";

static bool have_ip6tables(void)
{
	char p[PATH_MAX];

	return find_in_path("ip6tables-restore", p, sizeof(p)) == 0 && path_exists("/proc/net/if_inet6");
}

/* Applies rules with iptables-restore and, when six, ip6tables-restore at
 * the same time (both are in the downtime): 0, 4 when the IPv4 one failed,
 * 6 when only the IPv6 one did; rr->err says why. */
static int ns_restore_both(const char *path, const char *rules, bool six, struct run_result *rr, struct error *e)
{
	static const char script[] = "f=$1; six=$2\n"
				     "if [ \"$six\" = 1 ]; then ip6tables-restore -w --noflush <\"$f\" & p6=$!; fi\n"
				     "iptables-restore -w --noflush <\"$f\"; r4=$?\n"
				     "r6=0; if [ -n \"${p6:-}\" ]; then wait \"$p6\"; r6=$?; fi\n"
				     "[ \"$r4\" = 0 ] || exit 4\n"
				     "[ \"$r6\" = 0 ] || exit 6\n";
	char tmp[] = "/tmp/cmt-netlock.XXXXXX";
	int fd = mkostemp(tmp, O_CLOEXEC), r;

	if (fd < 0)
		return error_errno(e, errno, "cannot create a temporary file");
	if (write(fd, rules, strlen(rules)) != (ssize_t)strlen(rules)) {
		close(fd);
		unlink(tmp);
		return error_errno(e, errno, "cannot write a temporary file");
	}
	close(fd);
	char *args[] = { "sh", "-c", (char *)script, "sh", tmp, six ? "1" : "0", NULL };
	r = ns_run(path, NULL, args, rr, e);
	unlink(tmp);
	return r < 0 ? r : rr->status;
}

int net_lock(const char *path, struct error *e)
{
	struct run_result rr;
	int r;

	if (net_is_locked(path))
		return 0; /* (twice would leave a jump that the unlock does not remove) */
	r = ns_restore_both(path, lock_rules, have_ip6tables(), &rr, e);
	if (r < 0)
		return error_wrap(e, "locking the network namespace %s", path);
	if (r != 0) {
		error_set(e, EIO, "locking the network namespace %s (%s) failed: %s", path,
			  r == 6 ? "ip6tables-restore" : "iptables-restore", trimmed(rr.err));
		error_hint(e, "the network lock needs iptables and ip6tables (xt_mark); install iptables");
		run_result_free(&rr);
		struct error tmp = { 0 };
		net_unlock(path, &tmp); /* whichever half took */
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

bool net_is_locked(const char *path)
{
	char *args[] = { "iptables", "-w", "-n", "-L", NET_LOCK_CHAIN, NULL };
	struct run_result rr;
	struct error e = { 0 };
	bool locked;

	if (ns_run(path, NULL, args, &rr, &e) < 0)
		return false;
	locked = rr.status == 0;
	run_result_free(&rr);
	return locked;
}

int net_unlock(const char *path, struct error *e)
{
	struct run_result rr;
	int r = ns_restore_both(path, unlock_rules, have_ip6tables(), &rr, e);

	/* (no check first: the unlock is in the downtime.  It fails where there
	 * is no lock, which is then fine; the IPv6 half may be absent) */
	if (r < 0)
		return error_wrap(e, "unlocking the network namespace %s", path);
	if (r == 4 && net_is_locked(path)) {
		error_set(e, EIO, "unlocking the network namespace %s (iptables-restore) failed: %s", path, trimmed(rr.err));
		run_result_free(&rr);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

/* --- gratuitous ARP -------------------------------------------------------------- */

/* The index (in the namespace joined) and the MAC of an interface of the
 * description; false when either cannot be had. */
static bool if_index_mac(const struct net_if *f, unsigned *ret_index, unsigned mac[6])
{
	*ret_index = if_nametoindex(f->name);
	return *ret_index && sscanf(f->mac, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6;
}

/* A gratuitous ARP request and reply for ip (sender = target = ip, from
 * mac, broadcast); returns how many went out. */
static int send_garp(int s, unsigned ifindex, const unsigned mac[6], const struct in_addr *ip)
{
	int sent = 0;

	for (int op = 1; op <= 2; op++) {
		uint8_t pkt[28];
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
					  .sll_ifindex = (int)ifindex, .sll_halen = 6 };
		memset(to.sll_addr, 0xff, 6);
		pkt[0] = 0, pkt[1] = 1;       /* ethernet */
		pkt[2] = 0x08, pkt[3] = 0x00; /* IPv4 */
		pkt[4] = 6, pkt[5] = 4;
		pkt[6] = 0, pkt[7] = (uint8_t)op;
		for (int b = 0; b < 6; b++)
			pkt[8 + b] = (uint8_t)mac[b];
		memcpy(pkt + 14, ip, 4);
		for (int b = 0; b < 6; b++)
			pkt[18 + b] = op == 2 ? (uint8_t)mac[b] : 0;
		memcpy(pkt + 24, ip, 4);
		if (sendto(s, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)sizeof(pkt))
			sent++;
	}
	return sent;
}

/* An unsolicited neighbour advertisement (override) of a6 to all nodes,
 * with mac as the target link-layer address; 1 when it went out. */
static int send_na(int s6, unsigned ifindex, const unsigned mac[6], const struct in6_addr *a6)
{
	uint8_t na[32] = { 136, 0 };        /* type NA, code 0, checksum by the kernel */
	struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_scope_id = ifindex };

	setsockopt(s6, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex));
	na[4] = 0x20;                       /* flags: override */
	memcpy(na + 8, a6, 16);             /* target */
	na[24] = 2, na[25] = 1;             /* option: target link-layer address, 8 bytes */
	for (int b = 0; b < 6; b++)
		na[26 + b] = (uint8_t)mac[b];
	inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
	return sendto(s6, na, sizeof(na), 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)sizeof(na);
}

/* In a child that joins the namespace: for each IPv4 address a gratuitous
 * ARP request and reply, for each IPv6 address a neighbour advertisement. */
static int garp_child(const char *path, const struct net_desc *d)
{
	int nsfd = open(path, O_RDONLY | O_CLOEXEC), sent = 0, want = 0;

	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
		return 2;
	close(nsfd);
	int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)), s6 = -1;
	if (s < 0)
		return 3;
	for (int i = 0; i < d->nif; i++) {
		const struct net_if *f = &d->ifs[i];
		unsigned mac[6], ifindex;
		if (!if_index_mac(f, &ifindex, mac))
			continue;
		for (int k = 0; k < f->naddr; k++) {
			struct in_addr ip;
			struct in6_addr a6;
			if (f->addr[k].family == AF_INET && inet_pton(AF_INET, f->addr[k].addr, &ip) == 1) {
				want++;
				sent += send_garp(s, ifindex, mac, &ip);
			} else if (f->addr[k].family == AF_INET6 && inet_pton(AF_INET6, f->addr[k].addr, &a6) == 1) {
				want++;
				if (s6 < 0) {
					int hops = 255;
					s6 = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
					if (s6 < 0 || setsockopt(s6, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0)
						return 5;
				}
				sent += send_na(s6, ifindex, mac, &a6);
			}
		}
	}
	close(s);
	if (s6 >= 0)
		close(s6);
	return sent > 0 || !want ? 0 : 4;
}

int net_announce(const struct net_desc *d, struct error *e)
{
	int st = 0;
	pid_t pid = fork();

	if (pid < 0)
		return error_errno(e, errno, "cannot fork to announce the container's addresses");
	if (pid == 0)
		_exit(garp_child(d->path, d));
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return error_set(e, EIO, "cannot send gratuitous ARP from network namespace %s (step %d)", d->path,
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

/* --- creating and removing namespaces ------------------------------------------ */

/* /run/netns/NAME or /var/run/netns/NAME: `ip netns` manages it (for
 * others: umount and unlink). */
static const char *ip_netns_name(const char *path)
{
	static const char *dirs[] = { "/run/netns/", "/var/run/netns/" };

	for (size_t i = 0; i < 2; i++) {
		size_t l = strlen(dirs[i]);
		if (!strncmp(path, dirs[i], l) && path[l] && !strchr(path + l, '/'))
			return path + l;
	}
	return NULL;
}

static int run_simple(char *const *argv, const char *what, struct error *e)
{
	struct run_opts o = { .timeout_ms = NET_CMD_TIMEOUT_MS };
	struct run_result rr;
	int r = run_cmd(argv, &o, &rr, e);

	if (r < 0)
		return error_wrap(e, "%s", what);
	if (rr.status != 0) {
		error_set(e, EIO, "%s failed: %s", what, trimmed(rr.err));
		run_result_free(&rr);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

int net_remove_ns(const char *path, const struct net_desc *d, struct error *e)
{
	const char *name = ip_netns_name(path);
	struct error tmp = { 0 };

	if (!is_netns(path))
		return 0;
	if (!strncmp(path, "/proc/", 6) || is_host_ns(path))
		return error_set(e, EPERM, "%s is not a container's network namespace; left alone", path);
	/* the interfaces first: their host-side peers go with them at once
	 * (the namespace itself is freed when nothing holds it any more) */
	for (int i = 0; d && i < d->nif; i++) {
		char *del[] = { "ip", "link", "del", (char *)d->ifs[i].name, NULL };
		error_clear(&tmp);
		ns_do(path, NULL, del, "removing an interface", &tmp);
	}
	if (name) {
		char *args[] = { "ip", "netns", "delete", (char *)name, NULL };
		return run_simple(args, "removing the network namespace", e);
	}
	if (umount2(path, MNT_DETACH) < 0)
		return error_errno(e, errno, "cannot unmount the network namespace %s", path);
	unlink(path);
	return 0;
}

static int create_ns(const char *path, struct error *e)
{
	const char *name = ip_netns_name(path);

	if (!name)
		return error_set(e, EINVAL, "cannot create a network namespace at %s (not under /run/netns)", path);
	char *args[] = { "ip", "netns", "add", (char *)name, NULL };
	return run_simple(args, "creating the network namespace", e);
}

/* The namespace at src appears at dst too (a bind mount of its nsfs file). */
static int bind_ns(const char *src, const char *dst, struct error *e)
{
	char dir[256];
	int fd;

	snprintf(dir, sizeof(dir), "%s", dst);
	*strrchr(dir, '/') = 0;
	if (dir[0] && mkdir_p(dir, 0755, e) < 0)
		return -e->code;
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return error_errno(e, errno, "cannot create %s for the network namespace", dst);
	close(fd);
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
		int err = errno;
		unlink(dst);
		return error_errno(e, err, "cannot bind the network namespace to %s", dst);
	}
	return 0;
}

static void host_if_name(const char *mig_id, int i, char *out, size_t n)
{
	XXH64_hash_t h = XXH3_64bits(mig_id, strlen(mig_id));
	snprintf(out, n, "cmt%08x%d", (unsigned)(h & 0xffffffffu), i);
}

/* Where cmt may create a namespace for a container: under /run (the
 * conventional place of named namespaces); anywhere else the path must
 * exist (a hook or the host's network plugin makes it). */
static bool may_create_at(const char *path)
{
	return !strncmp(path, "/run/", 5) || !strncmp(path, "/var/run/", 9);
}

/* Takes the namespace that exists at the path: locked until COMMIT. */
static int take_existing(struct net_state *ns, struct error *e)
{
	int r;

	if (is_host_ns(ns->d.path)) {
		error_set(e, EPERM, "the container's network namespace %s is this host's own: refused", ns->d.path);
		return -EPERM;
	}
	if (!is_netns(ns->d.path)) {
		error_set(e, EEXIST, "%s exists but is not a network namespace", ns->d.path);
		error_hint(e, "remove it, or let the pre-restore hook put the container's namespace there");
		return -EEXIST;
	}
	r = net_lock(ns->d.path, e);
	if (r < 0)
		return r;
	ns->existed = ns->locked = true;
	log_info("network namespace %s exists here: the container is restored into it", ns->d.path);
	return 0;
}

int net_prepare(const struct config *cfg, const struct net_desc *d, const char *mig_id, struct net_state *ns,
		struct error *e)
{
	char batch[8192], pidbuf[16];
	size_t l = 0;
	int r;

	memset(ns, 0, sizeof(*ns));
	ns->d = *d;
	if (path_exists(d->path))
		return take_existing(ns, e);
	if (!may_create_at(d->path)) {
		error_set(e, EPERM, "the container's network namespace %s does not exist here, and cmt creates namespaces "
			  "only under /run (or /var/run)", d->path);
		error_hint(e, "create it before the restore (a --hook-pre-restore can), or use a path under /run/netns");
		return -EPERM;
	}
	if (strcmp(cfg->net_attach, "bridge") == 0) {
		/* (not /sys/class/net: sysfs shows the namespace that mounted it) */
		if (if_nametoindex(cfg->net_bridge) == 0) {
			error_set(e, ENODEV, "there is no bridge %s to attach the container's network to", cfg->net_bridge);
			error_hint(e, "create it (ip link add %s type bridge), or name another one with `net_bridge = NAME` "
				      "(or an attachment program with `net_attach = /path`) in %s/config",
				   cfg->net_bridge, cfg->root);
			return -ENODEV;
		}
	}
	/* Built under a name of cmt's own: a hook may still put the real one at
	 * the path before the restore (net_place decides). */
	snprintf(ns->staging, sizeof(ns->staging), "/run/netns/cmt-%08x",
		 (unsigned)(XXH3_64bits(mig_id, strlen(mig_id)) & 0xffffffffu));
	if (is_netns(ns->staging)) {
		struct error tmp = { 0 };
		net_remove_ns(ns->staging, d, &tmp); /* a leftover of a dead agent of this migration */
	}
	r = create_ns(ns->staging, e);
	if (r < 0)
		return r;
	ns->created = true;
	r = net_lock(ns->staging, e);
	if (r < 0)
		goto fail;
	ns->locked = true;
	/* the interfaces: veth pairs made inside, the host end moved out to
	 * this process's namespace and left down (nothing reaches the
	 * container until net_place attaches it) */
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
	l += (size_t)snprintf(batch + l, sizeof(batch) - l, "link set lo up\n");
	for (int i = 0; i < d->nif; i++) {
		const struct net_if *f = &d->ifs[i];
		host_if_name(mig_id, i, ns->host_if[i], sizeof(ns->host_if[i]));
		l += (size_t)snprintf(batch + l, sizeof(batch) - l,
				      "link add %s address %s mtu %u type veth peer name %s mtu %u\n"
				      "link set %s netns %s\n"
				      "link set %s addrgenmode none\n",
				      f->name, f->mac, f->mtu, ns->host_if[i], f->mtu, ns->host_if[i], pidbuf, f->name);
		for (int k = 0; k < f->naddr; k++)
			l += (size_t)snprintf(batch + l, sizeof(batch) - l, "addr add %s/%u dev %s%s\n", f->addr[k].addr,
					      f->addr[k].prefix, f->name, f->addr[k].family == AF_INET6 ? " nodad" : "");
		l += (size_t)snprintf(batch + l, sizeof(batch) - l, "link set %s up\n", f->name);
	}
	/* routes without a gateway first: a gateway may be reachable only
	 * through one of them (e.g. a /32 link route to it) */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < d->nroutes; i++) {
			const struct net_route *rt = &d->routes[i];
			char metric[32] = "";
			if ((rt->gw[0] != 0) != (pass == 1))
				continue;
			if (rt->metric)
				snprintf(metric, sizeof(metric), " metric %u", rt->metric);
			l += (size_t)snprintf(batch + l, sizeof(batch) - l, "%sroute add %s%s%s dev %s%s%s\n",
					      rt->family == AF_INET6 ? "-6 " : "", rt->dst, rt->gw[0] ? " via " : "", rt->gw,
					      rt->dev, metric, rt->onlink ? " onlink" : "");
		}
	if (l >= sizeof(batch)) {
		r = error_set(e, E2BIG, "the network description is too large");
		goto fail;
	}
	{
		char *args[] = { "ip", "-batch", "-", NULL };
		r = ns_do(ns->staging, batch, args, "recreating the container's interfaces", e);
		if (r < 0)
			goto fail;
	}
	log_debug("network namespace for %s recreated as %s (%d interfaces, %d routes), locked", d->path, ns->staging,
		  d->nif, d->nroutes);
	return 0;
fail:
	net_rollback(cfg, ns, "");
	return r;
}

static int run_net_hook(const struct config *cfg, const char *prog, const char *verb, const struct net_state *ns,
			const char *container, const char *source, struct error *e)
{
	char env[8][1200], addrs[1024], ifs[200] = "", hifs[200] = "", macs[200] = "";
	char *envp[9], *argv[] = { (char *)prog, (char *)verb, NULL };
	struct run_opts o = { .timeout_ms = NET_HOOK_TIMEOUT_MS, .env_add = envp };
	struct run_result rr;
	size_t a = 0, b = 0, m = 0;
	int r;

	net_desc_addresses(&ns->d, addrs, sizeof(addrs));
	for (int i = 0; i < ns->d.nif; i++) {
		a += (size_t)snprintf(ifs + a, sizeof(ifs) - a, "%s%s", i ? " " : "", ns->d.ifs[i].name);
		b += (size_t)snprintf(hifs + b, sizeof(hifs) - b, "%s%s", i ? " " : "", ns->host_if[i]);
		m += (size_t)snprintf(macs + m, sizeof(macs) - m, "%s%s", i ? " " : "", ns->d.ifs[i].mac);
	}
	snprintf(env[0], sizeof(env[0]), "CMT_NETNS=%s", ns->d.path);
	snprintf(env[1], sizeof(env[1]), "CMT_CONTAINER=%s", container);
	snprintf(env[2], sizeof(env[2]), "CMT_ADDRESSES=%s", addrs);
	snprintf(env[3], sizeof(env[3]), "CMT_CONTAINER_IFS=%s", ifs);
	snprintf(env[4], sizeof(env[4]), "CMT_HOST_IFS=%s", ns->created ? hifs : "");
	snprintf(env[5], sizeof(env[5]), "CMT_MACS=%s", macs);
	snprintf(env[6], sizeof(env[6]), "CMT_SOURCE=%s", source ? source : "");
	snprintf(env[7], sizeof(env[7]), "CMT_HOST=%s", cfg->name);
	for (int i = 0; i < 8; i++)
		envp[i] = env[i];
	envp[8] = NULL;
	r = run_cmd(argv, &o, &rr, e);
	if (r < 0)
		return error_wrap(e, "cannot run the network hook %s", prog);
	if (rr.status != 0) {
		error_set(e, EIO, "the network hook `%s %s` failed (status %d): %s", prog, verb, rr.status,
			  trimmed(rr.err[0] ? rr.err : rr.out));
		run_result_free(&rr);
		return -EIO;
	}
	run_result_free(&rr);
	return 0;
}

/* The state for recovery, at each step that changes what a rollback must undo. */
static void save_step(const char *mig_dir, const struct net_state *ns)
{
	struct error e = { 0 };

	if (mig_dir && net_state_save(mig_dir, ns, &e) < 0)
		log_warn("cannot record the network state: %s", e.msg);
}

int net_bind(struct net_state *ns, const char *mig_dir, struct error *e)
{
	struct error tmp = { 0 };
	int r = 0;

	if (ns->existed) {
		/* it was there at NET_SETUP: still? */
		if (!is_netns(ns->d.path))
			return error_set(e, ENOENT, "the network namespace %s disappeared before the restore", ns->d.path);
		return 0;
	}
	if (ns->placed)
		return 1; /* bound already (at the staged restore) */
	if (path_exists(ns->d.path)) {
		/* a pre-restore hook put it there meanwhile: it wins, cmt's goes */
		r = take_existing(ns, e);
		if (r < 0)
			return r;
		net_remove_ns(ns->staging, &ns->d, &tmp);
		ns->created = false;
		ns->staging[0] = 0;
		save_step(mig_dir, ns);
		return 0;
	}
	/* recorded before it happens: a rollback removes what is at the path
	 * only when it is a namespace (and the path did not exist before) */
	ns->placed = true;
	save_step(mig_dir, ns);
	r = bind_ns(ns->staging, ns->d.path, e);
	if (r < 0) {
		ns->placed = false;
		save_step(mig_dir, ns);
		return r;
	}
	{
		/* only the path in config.json names it from here on */
		const char *name = ip_netns_name(ns->staging);
		char *args[] = { "ip", "netns", "delete", (char *)name, NULL };
		if (run_simple(args, "removing the staging name of the network namespace", &tmp) < 0)
			log_warn("%s", tmp.msg);
		else
			ns->staging[0] = 0;
	}
	return 1;
}

int net_place(const struct config *cfg, struct net_state *ns, const char *container, const char *mig_dir,
	      struct error *e)
{
	int r = net_bind(ns, mig_dir, e);

	if (r <= 0)
		return r; /* (one that was there, or a hook's, is attached already) */
	r = 0;
	/* a program that fails halfway is told to detach too */
	ns->attached = true;
	save_step(mig_dir, ns);
	if (strcmp(cfg->net_attach, "bridge") == 0) {
		for (int i = 0; i < ns->d.nif && r == 0; i++) {
			char *args[] = { "ip", "link", "set", ns->host_if[i], "master", (char *)cfg->net_bridge, "up", NULL };
			r = run_simple(args, "attaching the container's interface to the bridge", e);
		}
	} else {
		r = run_net_hook(cfg, cfg->net_attach, "attach", ns, container, NULL, e);
	}
	if (r < 0) {
		error_host(e, cfg->name);
		return r;
	}
	return 0;
}

/* A problem after COMMIT: logged here, and kept in warn (for DONE). */
static void commit_warn(char *warn, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void commit_warn(char *warn, size_t n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s", msg);
	if (warn && n) {
		size_t l = strlen(warn);
		snprintf(warn + l, n - l, "%s%s", l ? "; " : "", msg);
	}
}

void net_commit(const struct config *cfg, struct net_state *ns, const char *container, const char *source, char *warn,
		size_t n)
{
	struct error e = { 0 };

	if (warn && n)
		warn[0] = 0;
	if (ns->locked && net_unlock(ns->d.path, &e) < 0)
		commit_warn(warn, n, "%s (the container cannot talk until its namespace is unlocked: iptables -D INPUT/OUTPUT -j %s)",
			    e.msg, NET_LOCK_CHAIN);
	ns->locked = false;
	error_clear(&e);
	if (net_announce(&ns->d, &e) < 0)
		commit_warn(warn, n, "%s (neighbours learn the new place of the address when their ARP entries expire)", e.msg);
	if (cfg->net_route_hook[0]) {
		error_clear(&e);
		if (run_net_hook(cfg, cfg->net_route_hook, "route", ns, container, source, &e) < 0)
			commit_warn(warn, n, "%s (the container runs here; its address may not be routed here yet)", e.msg);
	}
}

void net_rollback(const struct config *cfg, struct net_state *ns, const char *container)
{
	struct error e = { 0 };

	if (ns->attached && strcmp(cfg->net_attach, "bridge") != 0 &&
	    run_net_hook(cfg, cfg->net_attach, "detach", ns, container, NULL, &e) < 0)
		log_warn("%s", e.msg);
	error_clear(&e);
	if (ns->created) {
		/* the one at the path (if cmt bound it there), then its staging
		 * name (if still there: the interfaces went with the first) */
		if (ns->placed && net_remove_ns(ns->d.path, &ns->d, &e) < 0)
			log_warn("cannot remove the network namespace %s made for the migration: %s", ns->d.path, e.msg);
		error_clear(&e);
		if (ns->staging[0] && net_remove_ns(ns->staging, &ns->d, &e) < 0)
			log_warn("cannot remove the network namespace %s made for the migration: %s", ns->staging, e.msg);
	} else if (ns->locked && net_unlock(ns->d.path, &e) < 0) {
		log_warn("%s", e.msg);
	}
	ns->created = ns->locked = ns->attached = ns->placed = false;
}

/* --- the state on disk, for recovery ------------------------------------------ */

int net_state_save(const char *mig_dir, const struct net_state *ns, struct error *e)
{
	char path[PATH_MAX + 16], *desc = net_desc_to_json(&ns->d), *txt;
	json_t *j = json_object(), *hifs = json_array();
	int r;

	if (!desc) {
		json_decref(j);
		json_decref(hifs);
		return error_set(e, ENOMEM, "out of memory");
	}
	json_object_set_new(j, "desc", json_string(desc));
	free(desc);
	json_object_set_new(j, "existed", json_boolean(ns->existed));
	json_object_set_new(j, "created", json_boolean(ns->created));
	json_object_set_new(j, "placed", json_boolean(ns->placed));
	json_object_set_new(j, "locked", json_boolean(ns->locked));
	json_object_set_new(j, "attached", json_boolean(ns->attached));
	json_object_set_new(j, "staging", json_string(ns->staging));
	for (int i = 0; i < ns->d.nif; i++)
		json_array_append_new(hifs, json_string(ns->host_if[i]));
	json_object_set_new(j, "host_ifs", hifs);
	txt = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!txt)
		return error_set(e, ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/net", mig_dir);
	r = write_file_atomic(path, txt, strlen(txt), 0600, e);
	free(txt);
	return r;
}

static bool staging_ok(const char *s)
{
	size_t l = strlen(s);

	if (l == 0)
		return true;
	if (l != 23 || strncmp(s, "/run/netns/cmt-", 15) != 0)
		return false;
	for (size_t i = 15; i < l; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int net_state_load(const char *mig_dir, struct net_state *ns, struct error *e)
{
	char path[PATH_MAX + 16], *txt = NULL;
	json_error_t je;
	json_t *j, *hifs;
	const char *desc, *staging;
	int r;

	memset(ns, 0, sizeof(*ns));
	snprintf(path, sizeof(path), "%s/net", mig_dir);
	if (!path_exists(path))
		return 0;
	r = read_file(path, 4 * NET_DESC_MAX, &txt, NULL, e);
	if (r < 0)
		return r;
	j = json_loads(txt, 0, &je);
	free(txt);
	desc = json_string_value(json_object_get(j, "desc"));
	staging = json_string_value(json_object_get(j, "staging"));
	hifs = json_object_get(j, "host_ifs");
	if (!j || !desc || !staging || !staging_ok(staging) || !json_is_array(hifs)) {
		json_decref(j);
		return error_set(e, EINVAL, "corrupted network state %s; left alone", path);
	}
	r = net_desc_from_json(desc, strlen(desc), &ns->d, e);
	if (r < 0 || json_array_size(hifs) > (size_t)ns->d.nif) {
		json_decref(j);
		return error_set(e, EINVAL, "corrupted network state %s; left alone", path);
	}
	for (size_t i = 0; i < json_array_size(hifs); i++) {
		const char *h = json_string_value(json_array_get(hifs, i));
		if (!h || (h[0] && !ifname_ok(h))) {
			json_decref(j);
			return error_set(e, EINVAL, "corrupted network state %s; left alone", path);
		}
		snprintf(ns->host_if[i], sizeof(ns->host_if[i]), "%s", h);
	}
	snprintf(ns->staging, sizeof(ns->staging), "%s", staging);
	ns->existed = json_is_true(json_object_get(j, "existed"));
	ns->created = json_is_true(json_object_get(j, "created"));
	ns->placed = json_is_true(json_object_get(j, "placed"));
	ns->locked = json_is_true(json_object_get(j, "locked"));
	ns->attached = json_is_true(json_object_get(j, "attached"));
	json_decref(j);
	return 1;
}

void net_recover_source(const char *mig_dir, bool moved)
{
	struct net_state ns;
	struct error e = { 0 };
	int r = net_state_load(mig_dir, &ns, &e);

	if (r <= 0) {
		if (r < 0)
			log_warn("%s", e.msg);
		return;
	}
	if (moved) {
		if (net_remove_ns(ns.d.path, &ns.d, &e) < 0)
			log_warn("cannot remove the network namespace %s of the moved container: %s", ns.d.path, e.msg);
	} else if (net_unlock(ns.d.path, &e) < 0 || net_announce(&ns.d, &e) < 0) {
		log_warn("network namespace %s: %s", ns.d.path, e.msg);
	}
}

/* The parent of pid, from /proc/PID/stat (0 when unknown). */
static pid_t parent_of(pid_t pid)
{
	char p[64], buf[512];
	int fd, ppid = 0;
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

static bool same_ns(pid_t a, pid_t b, const char *kind)
{
	char pa[64], pb[64];
	struct stat sa, sb;

	snprintf(pa, sizeof(pa), "/proc/%d/ns/%s", (int)a, kind);
	snprintf(pb, sizeof(pb), "/proc/%d/ns/%s", (int)b, kind);
	return stat(pa, &sa) == 0 && stat(pb, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int net_check_exclusive(const char *path, pid_t init, struct error *e)
{
	struct stat ns;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (stat(path, &ns) < 0)
		return error_errno(e, errno, "cannot stat the network namespace %s", path);
	bool own_pidns = !same_ns(getpid(), init, "pid");
	d = opendir("/proc");
	if (!d)
		return error_errno(e, errno, "cannot read /proc");
	while ((de = readdir(d)) && r == 0) {
		char p[300], comm[64] = "?";
		struct stat st;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == init)
			continue;
		snprintf(p, sizeof(p), "/proc/%d/ns/net", (int)pid);
		if (stat(p, &st) < 0 || st.st_dev != ns.st_dev || st.st_ino != ns.st_ino)
			continue;
		/* in the namespace: one of the container's processes? (a
		 * descendant of its init, or in its PID namespace when that is
		 * not this one's: `runc exec` processes are no descendants) */
		pid_t a = pid;
		for (int depth = 0; a > 1 && a != init && depth < 4096; depth++)
			a = parent_of(a);
		if (a == init || (own_pidns && same_ns(pid, init, "pid")))
			continue;
		snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, comm, sizeof(comm) - 1);
			comm[n > 0 ? n : 0] = 0;
			comm[strcspn(comm, "\n")] = 0;
			close(fd);
		}
		error_set(e, EBUSY, "its network namespace %s is shared with process %d (%s), which is not part of it", path,
			  (int)pid, comm);
		error_hint(e, "cmt moves a namespace with the one container in it: stop or move the other process first (a "
			      "namespace shared by several containers, as in a pod, does not move yet)");
		r = -EBUSY;
	}
	closedir(d);
	return r;
}
