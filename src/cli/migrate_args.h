/* Options of `cmt migrate` (parsed separately so they can be unit tested). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct migrate_args {
	const char *container;
	const char *pid;
	const char *to;
	const char *mode;
	const char *rsh;
	const char *remote_cmt;
	const char *stats_file;
	const char *candidates;  /* with --to auto */
	const char *hook[5];     /* indexed by enum hook_phase */
	int hook_timeout_s;
	int lease_s;             /* --lease; 0 = default */
	bool json;
	bool force;
	bool allow_postcopy;     /* --allow-postcopy: auto may pick a post-copy mode */
	double downtime_target_ms;  /* --downtime-target; 0 = default */
	int max_rounds;          /* --max-rounds; 0 = default */
	double growth_pct;       /* --converge-growth; < 0 = default */
	long min_pages;          /* --min-dirty-pages; < 0 = default */
	double max_bandwidth_mib; /* --max-bandwidth MiB/s; 0 = unlimited */
	const char *compress;    /* --compress auto|zstd|none */
	bool shared_storage;
	const char *volumes;            /* --volumes POLICY */
	const char *volume[32];         /* --volume /DEST=POLICY, repeatable */
	int nvolume;
};

/* argv[0] is the verb.  Returns 0, or -EINVAL with a message in err. */
int migrate_parse_args(int argc, char **argv, struct migrate_args *a, char *err, size_t n);
