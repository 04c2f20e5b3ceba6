/* Network identity: a container whose config.json names its network
 * namespace by path (as CNI-managed setups do) keeps its interfaces,
 * addresses, MAC and routes on the destination, and its established TCP
 * connections survive (doc/design.md, "Network identity").
 *
 * Source:       net_path_from_config, net_describe (before the freeze),
 *               net_lock (after the freeze, kept after the dump), and either
 *               net_release (after the frozen copy is gone) or, on failure,
 *               net_unlock + net_announce (after the thaw).
 * Destination:  net_desc_from_json (validates everything), net_prepare
 *               (takes the namespace at the path, locked, or builds one
 *               locked under a name of its own),
 *               net_place (before the restore), net_commit (after COMMIT:
 *               unlock, announce, route hook) or net_rollback. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/config.h"
#include "util/error.h"

#define NET_MAX_IFS 8
#define NET_MAX_ADDRS 16   /* per interface */
#define NET_MAX_ROUTES 32
#define NET_DESC_MAX 65536 /* bytes of the JSON description */
#define NET_LOCK_CHAIN "CMT-NETLOCK"

struct net_addr {
	int family;        /* AF_INET, AF_INET6 */
	char addr[46];
	unsigned prefix;
};

struct net_if {
	char name[16];
	char mac[18];      /* aa:bb:cc:dd:ee:ff */
	unsigned mtu;
	int naddr;
	struct net_addr addr[NET_MAX_ADDRS];
};

struct net_route {
	int family;
	char dst[52];      /* "default" or ADDR/PREFIX */
	char gw[46];       /* "" = none (on-link) */
	char dev[16];
	unsigned metric;
	bool onlink;       /* the gateway is on the link whatever the addresses say */
};

struct net_desc {
	char path[256];    /* the namespace's path in config.json */
	int nif;
	struct net_if ifs[NET_MAX_IFS];
	int nroutes;
	struct net_route routes[NET_MAX_ROUTES];
};

/* Destination state of one namespace. */
struct net_state {
	struct net_desc d;
	bool existed;      /* the path named a namespace already: not ours to remove */
	bool created;      /* cmt created the namespace (and its veths) */
	bool placed;       /* cmt's namespace is bound at d.path */
	bool locked, attached;
	char staging[64];  /* where cmt built it until net_place, "" = gone */
	char host_if[NET_MAX_IFS][16]; /* host-side veth of each interface */
};

/* Which network namespace config.json gives the container: NET_NS_PATH and
 * the path (an existing namespace: cmt recreates it on the destination),
 * NET_NS_PRIVATE (runc makes a new one: CRIU carries it), NET_NS_HOST (none
 * in the list: the host's), negative on a bad config. */
#define NET_NS_HOST 0
#define NET_NS_PATH 1
#define NET_NS_PRIVATE 2
int net_path_from_config(const char *config_json, char *path, size_t n, struct error *e);
/* true when the network namespace of pid has no interface but lo (from
 * /proc/PID/net/dev; false when it cannot be read). */
bool net_only_loopback(pid_t pid);
/* Whether CRIU's own lock of the container's network namespace (iptables
 * rules taken for the dump and the restore; `network-lock skip` otherwise)
 * adds nothing: the namespace has a path and cmt holds its own lock on it
 * from before the dump until the frozen copy is gone (and on the destination
 * from before the restore until the commit), or runc made it and lo is its
 * only interface, so nothing outside the frozen container reaches it.  Never
 * for a container in the host's namespace: there CRIU locks each TCP
 * connection with its own rules.  ns: net_path_from_config's answer;
 * cmt_locked: cmt's lock holds that namespace; pid: the container's init
 * (whose namespace is looked at for NET_NS_PRIVATE). */
bool net_criu_lock_redundant(int ns, bool cmt_locked, pid_t pid);
/* Reads the namespace's interfaces (ethernet ones; lo is implied) and its
 * main-table routes (not the kernel's own). */
int net_describe(const char *path, struct net_desc *d, struct error *e);
/* Refuses (EBUSY, naming it) a namespace that a process outside the
 * container (not init or a descendant of it) is in: it would lose its
 * network when the namespace moves. */
int net_check_exclusive(const char *path, pid_t init, struct error *e);
char *net_desc_to_json(const struct net_desc *d);
/* Parses and validates a description from a peer (names, MACs, MTUs,
 * addresses, prefix lengths, counts, route devices, the path). */
int net_desc_from_json(const char *txt, size_t len, struct net_desc *d, struct error *e);
/* "10.0.0.5/24 fd00::5/64": every address, for hooks. */
void net_desc_addresses(const struct net_desc *d, char *out, size_t n);

/* The lock: chain NET_LOCK_CHAIN in INPUT and OUTPUT of the namespace,
 * accepting CRIU's mark 0xC114 and dropping everything else (as CRIU's own
 * network lock does), IPv4 and IPv6. */
int net_lock(const char *path, struct error *e);
int net_unlock(const char *path, struct error *e);
/* true when the lock chain is in the namespace (IPv4 table) */
bool net_is_locked(const char *path);
/* Gratuitous ARP for every IPv4 address, an unsolicited neighbour
 * advertisement (override) for every IPv6 one, from inside the namespace:
 * the switches and the neighbours learn where the address is now. */
int net_announce(const struct net_desc *d, struct error *e);
/* Removes the namespace at path (its interfaces go with it, and their
 * host-side peers). */
int net_remove_ns(const char *path, const struct net_desc *d, struct error *e);

/* destination */
int net_prepare(const struct config *cfg, const struct net_desc *d, const char *mig_id, struct net_state *ns,
		struct error *e);
/* At RESTORE (the source is frozen and locked): a namespace a hook put at
 * the path meanwhile is taken (cmt's own goes); otherwise cmt's is bound
 * at the path (net_bind) and its host ends attached (bridge or net_attach
 * program).  Each step is recorded in <mig_dir>/net before it happens
 * (mig_dir may be NULL). */
int net_place(const struct config *cfg, struct net_state *ns, const char *container, const char *mig_dir,
	      struct error *e);
/* net_place's first half, alone for a staged restore (runc opens the path
 * before the freeze): the namespace at its path, still detached and locked
 * (nothing outside reaches it).  1 when cmt's own namespace is bound (it
 * needs attaching), 0 when the one at the path is used, negative on error. */
int net_bind(struct net_state *ns, const char *mig_dir, struct error *e);
/* After COMMIT: unlock, announce, route hook.  Problems are warnings: the
 * migration stands; they go to the log and, when warn is not NULL, into
 * warn (for the source: DONE's message). */
void net_commit(const struct config *cfg, struct net_state *ns, const char *container, const char *source, char *warn,
		size_t n);
void net_rollback(const struct config *cfg, struct net_state *ns, const char *container);

/* The state of a migration's namespace in <mig_dir>/net, for `cmt recover`
 * (either side).  load: 1 loaded, 0 no file, negative when corrupted (data
 * from disk: validated like a peer's description). */
int net_state_save(const char *mig_dir, const struct net_state *ns, struct error *e);
int net_state_load(const char *mig_dir, struct net_state *ns, struct error *e);
/* Recovery: the source's workload stays here (unlock, announce), or moved
 * (remove its namespace); the destination's copy goes (net_rollback) or
 * stays (net_commit). */
void net_recover_source(const char *mig_dir, bool moved);
