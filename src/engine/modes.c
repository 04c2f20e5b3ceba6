#include "engine/modes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *names[] = { "cold", "precopy", "postcopy", "hybrid", "auto" };

const char *mode_name(enum mig_mode m)
{
	return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : "?";
}

int mode_parse(const char *name, enum mig_mode *ret)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (name && !strcmp(name, names[i])) {
			*ret = (enum mig_mode)i;
			return 0;
		}
	return -EINVAL;
}

bool mode_source_supports(enum mig_mode m)
{
	return m == MODE_COLD || m == MODE_PRECOPY || m == MODE_POSTCOPY || m == MODE_HYBRID;
}

bool mode_agent_supports(enum mig_mode m)
{
	return m == MODE_COLD || m == MODE_PRECOPY || m == MODE_POSTCOPY || m == MODE_HYBRID;
}

bool mode_is_postcopy(enum mig_mode m)
{
	return m == MODE_POSTCOPY || m == MODE_HYBRID;
}

const char *mode_lazy_unsupported(const struct facts *f, char *buf, size_t n)
{
	if (!facts_num(f, "feature_lazy_pages", 0)) {
		snprintf(buf, n, "CRIU reports no userfaultfd lazy-pages support");
		return buf;
	}
	if (!facts_num(f, "cap_sys_resource", 0) && facts_num(f, "pipe_max_size", 0) < 4194304) {
		snprintf(buf, n, "fs.pipe-max-size is %lld and root lacks CAP_SYS_RESOURCE",
			 facts_num(f, "pipe_max_size", 0));
		return buf;
	}
	return NULL;
}

enum mig_mode mode_choose(const struct facts *src, const struct facts *dst, long long rss_kib, bool allow_postcopy,
			  char *why, size_t n)
{
	char a[160], b[160];
	const char *ls = mode_lazy_unsupported(src, a, sizeof(a)), *ld = mode_lazy_unsupported(dst, b, sizeof(b));

	if (rss_kib >= 0 && rss_kib < MODE_SMALL_KIB) {
		snprintf(why, n, "cold: the workload is small (%lld KiB resident), copying it once while frozen is "
				 "quicker than pre-copy rounds", rss_kib);
		return MODE_COLD;
	}
	if (allow_postcopy && !ls && !ld) {
		if (mode_source_supports(MODE_HYBRID)) {
			snprintf(why, n, "hybrid: pre-copy rounds, then post-copy for what is still dirty (lowest downtime; "
					 "post-copy allowed by --allow-postcopy, both hosts support lazy pages)");
			return MODE_HYBRID;
		}
		snprintf(why, n, "postcopy: the workload runs on the destination at once and its memory follows (lowest "
				 "downtime; allowed by --allow-postcopy, both hosts support lazy pages)");
		return MODE_POSTCOPY;
	}
	if (allow_postcopy)
		snprintf(why, n, "precopy: post-copy is allowed but %s cannot do it (%s)", ls ? "this host" : "the destination",
			 ls ? ls : ld);
	else
		snprintf(why, n, "precopy: copies memory while the workload runs; post-copy modes are only chosen with "
				 "--allow-postcopy (if the source fails while pages are still remote, the workload is lost)");
	return MODE_PRECOPY;
}
