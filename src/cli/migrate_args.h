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
	bool shared_storage;
	const char *volumes;            /* --volumes POLICY */
	const char *volume[32];         /* --volume /DEST=POLICY, repeatable */
	int nvolume;
};

/* argv[0] is the verb.  Returns 0, or -EINVAL with a message in err. */
int migrate_parse_args(int argc, char **argv, struct migrate_args *a, char *err, size_t n);
