/* Migration modes and how `--mode auto` picks one.
 *
 *   cold      freeze, dump, copy everything, restore
 *   precopy   copy memory while the workload runs, in rounds; only what
 *             changed since travels after the freeze
 *   postcopy  freeze, move everything but memory, run on the destination at
 *             once; pages follow on demand (CRIU lazy pages)
 *   hybrid    pre-copy rounds, then post-copy for what is still dirty
 *
 * auto never picks a post-copy mode unless allowed (--allow-postcopy): while
 * pages are still on the source, losing the source (crash, network) loses
 * the workload, which no other mode risks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "engine/facts.h"

enum mig_mode { MODE_COLD, MODE_PRECOPY, MODE_POSTCOPY, MODE_HYBRID, MODE_AUTO };

/* Below this resident size, pre-copy rounds cost more than they save. */
#define MODE_SMALL_KIB (16 * 1024)

const char *mode_name(enum mig_mode m);
/* 0, or -EINVAL for an unknown name. */
int mode_parse(const char *name, enum mig_mode *ret);
/* Whether this cmt can migrate in mode m as the source. */
bool mode_source_supports(enum mig_mode m);
/* Whether this cmt can take a migration in mode m as the destination. */
bool mode_agent_supports(enum mig_mode m);
/* true for the modes whose failure after the restore can lose the workload */
bool mode_is_postcopy(enum mig_mode m);

/* Why a host cannot do lazy (post-copy) restores, or NULL when it can.
 * which: "here" / the host's name, for the message. */
const char *mode_lazy_unsupported(const struct facts *f, char *buf, size_t n);

/* The mode for --mode auto, with the reason in why (one sentence). */
enum mig_mode mode_choose(const struct facts *src, const struct facts *dst, long long rss_kib, bool allow_postcopy,
			  char *why, size_t n);
