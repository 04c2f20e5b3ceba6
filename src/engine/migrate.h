/* The migration engine, source side: phases, the handoff with the agent,
 * rollback, and statistics.
 *
 * Cold mode:  prepare -> freeze -> dump -> transfer -> restore -> commit.
 * The source copy stays frozen until the destination has confirmed that the
 * workload runs there and has acknowledged the commit; any failure before
 * that thaws the source copy and rolls the destination back. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "engine/checks.h"
#include "engine/converge.h"
#include "engine/images.h"
#include "engine/precopy.h"
#include "engine/timeline.h"
#include "engine/context.h"
#include "engine/hooks.h"
#include "engine/volumes.h"

struct migrate_opts {
	enum workload_kind kind;
	const char *workload;   /* container ID or pid */
	const char *to;         /* [user@]host */
	const char *rsh;        /* remote shell command, default "ssh" */
	const char *remote_cmt; /* cmt on the destination, default "cmt" */
	const char *mode;       /* cold, precopy, postcopy, hybrid, auto (engine/modes.h) */
	bool allow_postcopy;    /* auto may choose a post-copy mode */
	struct converge_policy conv; /* pre-copy: when to stop iterating */
	double max_bandwidth_bps; /* 0 = unlimited */
	enum zmode compress;
	bool force;             /* skip the pre-migration checks */
	struct hooks *hooks;    /* may be NULL */
	bool show_checks;       /* print every check, not only the failing ones */
	unsigned lease_ms;      /* bound of every wait for the other side (0 = HANDOFF_LEASE_MS) */
	bool shared_storage;    /* both hosts see the root filesystem at the same path: not copied */
	enum vol_policy volumes_default;      /* --volumes (VOL_NONE: every bind mount needs a rule) */
	const struct vol_rule *vol_rules;     /* --volume */
	int nvol_rules;
};

struct migrate_stats {
	const char *result;     /* "ok" / "failed" */
	char mode[16];
	char mode_reason[320];  /* why this mode (auto: the choice) */
	char workload[300];
	char source[128], destination[256];
	char migration_id[96];
	double t_start, t_frozen, t_dumped, t_transferred, t_restored, t_running, t_end; /* ms, monotonic; 0 = not reached */
	uint64_t bytes_sent;     /* everything written to the connection */
	uint64_t image_bytes;    /* CRIU image payload */
	uint64_t rootfs_bytes;   /* root filesystem payload sent while frozen (what changed since the pre-copy) */
	uint64_t rootfs_precopy_bytes; /* root filesystem payload sent while the workload ran */
	uint64_t rootfs_deleted; /* entries deleted from the root filesystem since the pre-copy */
	uint64_t volume_precopy_bytes, volume_bytes; /* copied volumes: while running, while frozen */
	uint64_t files;
	uint64_t log_bytes;      /* a monitored container's log: bytes sent while frozen (after the drain) */
	uint64_t log_precopy_bytes; /* and before the freeze */
	int dest_pid;
	uint64_t agent_peak_rss_kib; /* the agent's, from DONE (0 = not told) */
	double restore_ms;       /* as measured by the agent */
	double criu_dump_ms, criu_restore_ms; /* CRIU's own share of the dump and the restore, from its logs
					       * (criu/logtime.h); 0 = not known */
	bool source_thawed;      /* failure: the workload was frozen and runs on the source again */
	bool source_running;     /* failure: the workload runs on the source (never frozen, or thawed) */
	bool in_doubt;           /* commit sent, no answer: see the message */
	bool postcopy;           /* mode postcopy: pages followed the restore */
	bool post_failed;        /* committed and resumed there, but the last page was not confirmed */
	double t_lazy_done;      /* LAZY_DONE: every page arrived */
	double postcopy_ms;      /* running there until the last page arrived */
	uint64_t lazy_bytes;     /* page-server stream relayed to the destination */
	uint64_t lazy_wire_bytes; /* what it took on the connection */
	uint64_t lazy_pages_raw, lazy_pages_store, lazy_pages_zero; /* its pages: in full, from the store, zero */
	bool checked;            /* checks ran; results in 'checks' */
	bool precopied;          /* pre-copy rounds ran: 'pre' */
	struct precopy_stats pre;
	struct image_stats img;  /* the images sent while frozen */
	uint64_t z_batches, z_compressed; /* page batches, of which compressed */
	char netns[256];         /* the container's network namespace path, "" = none moved by cmt */
	bool netns_existed;      /* it existed at that path on the destination (not recreated) */
	struct check_list checks;
	struct timeline tl;      /* the end of each step (JSON steps_ms) */
};

int migrate_run(struct ctx *c, const struct migrate_opts *o, struct migrate_stats *st, struct error *e);
/* One JSON object, one line (for --json and --stats-file). */
char *migrate_stats_json(const struct migrate_stats *st, const struct error *e);
void migrate_stats_print(const struct migrate_stats *st);
/* A migration ID: "<name>-<UTC time>-<random>", safe as a file name. */
void migration_id_make(const char *name, char *out, size_t n);
bool migration_id_valid(const char *id);
