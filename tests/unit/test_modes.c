/* Unit tests of the mode names and of --mode auto's choice (src/engine/modes.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/modes.h"
#include "tap.h"

static void host(struct facts *f, int lazy, long long pipe, int cap)
{
	struct error e = { 0 };
	char txt[256];

	snprintf(txt, sizeof(txt), "feature_lazy_pages=%d\npipe_max_size=%lld\ncap_sys_resource=%d\n", lazy, pipe, cap);
	facts_parse(f, txt, &e);
}

int main(void)
{
	struct facts good, nolazy, smallpipe, capok;
	enum mig_mode m;
	char why[512];

	for (int i = MODE_COLD; i <= MODE_AUTO; i++) {
		ok(mode_parse(mode_name((enum mig_mode)i), &m) == 0 && m == (enum mig_mode)i, "mode %s round trip",
		   mode_name((enum mig_mode)i));
	}
	ok(mode_parse("lazy", &m) == -EINVAL, "an unknown mode is refused");
	ok(mode_parse(NULL, &m) == -EINVAL, "no mode is refused");
	ok(mode_is_postcopy(MODE_POSTCOPY) && mode_is_postcopy(MODE_HYBRID) && !mode_is_postcopy(MODE_PRECOPY) &&
		   !mode_is_postcopy(MODE_COLD),
	   "post-copy modes are postcopy and hybrid");

	host(&good, 1, 4194304, 0);
	host(&nolazy, 0, 4194304, 1);
	host(&smallpipe, 1, 1048576, 0);
	host(&capok, 1, 1048576, 1);
	is_int(mode_choose(&good, &good, 8 * 1024, true, why, sizeof(why)), MODE_COLD, "small workload: cold");
	ok(strstr(why, "small") != NULL, "and why: %s", why);
	is_int(mode_choose(&good, &good, 512 * 1024, false, why, sizeof(why)), MODE_PRECOPY,
	       "post-copy not allowed: precopy, even where both hosts could");
	ok(strstr(why, "--allow-postcopy") != NULL, "the reason names --allow-postcopy: %s", why);
	is_int(mode_choose(&good, &good, 512 * 1024, true, why, sizeof(why)), mode_source_supports(MODE_HYBRID) ? MODE_HYBRID : MODE_POSTCOPY,
	       "allowed and supported: the lowest-downtime post-copy mode this cmt has");
	is_int(mode_choose(&good, &nolazy, 512 * 1024, true, why, sizeof(why)), MODE_PRECOPY,
	       "destination without lazy pages: precopy");
	ok(strstr(why, "destination") && strstr(why, "lazy-pages"), "the reason says where and what: %s", why);
	is_int(mode_choose(&smallpipe, &good, 512 * 1024, true, why, sizeof(why)), MODE_PRECOPY,
	       "source with a small pipe limit: precopy");
	ok(strstr(why, "this host") && strstr(why, "pipe-max-size"), "the reason: %s", why);
	is_int(mode_choose(&capok, &capok, 512 * 1024, true, why, sizeof(why)),
	       mode_source_supports(MODE_HYBRID) ? MODE_HYBRID : MODE_POSTCOPY,
	       "a small pipe limit does not matter with CAP_SYS_RESOURCE");
	ok(mode_source_supports(MODE_HYBRID) && mode_source_supports(MODE_POSTCOPY) &&
		   mode_source_supports(MODE_PRECOPY) && mode_agent_supports(MODE_POSTCOPY) && mode_agent_supports(MODE_HYBRID),
	   "this cmt: cold, precopy, postcopy and hybrid");
	is_int(mode_choose(&good, &good, 512 * 1024, true, why, sizeof(why)), MODE_HYBRID,
	       "allowed, both hosts can: hybrid");
	ok(strstr(why, "hybrid") && strstr(why, "--allow-postcopy"), "and why: %s", why);
	is_int(mode_choose(&good, &good, -1, false, why, sizeof(why)), MODE_PRECOPY, "unknown size: precopy");
	return done_testing();
}
