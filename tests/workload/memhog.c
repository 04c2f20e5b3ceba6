/* memhog - a memory workload that checks itself, for migration benchmarks and tests.
 *
 *   memhog --mib N [--dirty-mib-s R] [--tick-ms T] [--state FILE] [--verify-ms V] [--thp] [--compressible]
 *
 * It allocates N MiB and fills every 4 KiB page with incompressible
 * pseudo-random words derived from (page index, generation).  Then it loops:
 * every T ms (default 5) a tick, which rewrites R MiB/s worth of pages (each
 * rewrite bumps the page's generation, kept in a small array) spread over the
 * ticks.  Every V ms (default 1000; 0 = never) and on SIGUSR1 it verifies all
 * pages against what they should hold and writes one status line to FILE
 * (temp file + rename):
 *
 *   ticks=N maxgap_ms=X verified_ok=N verify_fail=N mib=N ...more fields
 *
 * maxgap_ms is the longest time between two consecutive "heartbeats"
 * (CLOCK_REALTIME) since the fill ended, i.e. the longest stretch the
 * workload did not run: the downtime as the workload saw it.  Heartbeats are
 * taken at each tick and every few pages inside long loops (verification),
 * so memhog's own work never shows up as a gap.  CLOCK_REALTIME is used
 * because CLOCK_MONOTONIC is per boot (it happens to survive a migration
 * between hosts of one machine; maxgap_mono_ms reports it as a cross-check).
 *
 * verified_ok counts full verification passes without a mismatch;
 * verify_fail counts pages found wrong (over all passes).  A failure is
 * recorded (first_bad_page) and memhog goes on; it never exits by itself.
 * SIGUSR2 corrupts one byte of one page behind memhog's back, to prove that
 * the verifier notices (the next pass reports verify_fail >= 1).
 *
 * The memory is prefaulted with MAP_POPULATE (much cheaper than one fault per
 * page in a VM).  --compressible makes each page 16 copies of a 256-byte
 * block (still unique per page and generation, still checked word by word):
 * memory that compresses well, as many programs' does.  --thp asks for transparent huge pages (MADV_HUGEPAGE), which
 * CRIU keeps across a migration; without it the memory is in 4 KiB pages,
 * like most programs'.
 *
 * Single-threaded, static, no dependencies: copy it into any rootfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)
#define BEAT_EVERY 16u /* pages between heartbeats inside long loops (~20 us) */

static volatile sig_atomic_t want_verify, want_corrupt;

static uint8_t *mem;
static uint32_t *gen;
static size_t npages, mib;

/* heartbeat / gap tracking */
static uint64_t last_rt, last_mono, maxgap_rt, maxgap_mono, maxgap_end_rt;
static uint64_t ticks, beats;

/* verification results */
static uint64_t passes_ok, passes_bad, fails, first_bad = UINT64_MAX, usr1_done, corrupted;
static double last_verify_ms, fill_ms;
static uint64_t dirtied, status_writes;

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void beat(void)
{
	uint64_t rt = now_ns(CLOCK_REALTIME), mono = now_ns(CLOCK_MONOTONIC);

	if (last_rt) {
		uint64_t g = rt > last_rt ? rt - last_rt : 0, gm = mono > last_mono ? mono - last_mono : 0;
		if (g > maxgap_rt) {
			maxgap_rt = g;
			maxgap_end_rt = rt;
		}
		if (gm > maxgap_mono)
			maxgap_mono = gm;
	}
	last_rt = rt;
	last_mono = mono;
	beats++;
}

/* splitmix64's finalizer: every output word depends on (page, generation, word). */
static inline uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t page_seed(size_t page, uint32_t g)
{
	return mix(((uint64_t)page << 32 | g) ^ 0x6D656D686F67ull) | 1;
}

static unsigned period = WORDS; /* words before the pattern repeats (--compressible: 32) */

static void fill_page(size_t page)
{
	uint64_t *w = (uint64_t *)(mem + page * PAGE), s = page_seed(page, gen[page]);

	for (unsigned i = 0; i < WORDS; i++)
		w[i] = mix(s + (uint64_t)(i % period) * 0x9E3779B97F4A7C15ull);
}

static int page_ok(size_t page)
{
	const uint64_t *w = (const uint64_t *)(mem + page * PAGE);
	uint64_t s = page_seed(page, gen[page]), diff = 0;

	for (unsigned i = 0; i < WORDS; i++)
		diff |= w[i] ^ mix(s + (uint64_t)(i % period) * 0x9E3779B97F4A7C15ull);
	return diff == 0;
}

static void verify_all(void)
{
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), bad = 0;

	for (size_t p = 0; p < npages; p++) {
		if (!page_ok(p)) {
			if (first_bad == UINT64_MAX)
				first_bad = p;
			bad++;
		}
		if (p % BEAT_EVERY == 0)
			beat();
	}
	fails += bad;
	if (bad)
		passes_bad++;
	else
		passes_ok++;
	last_verify_ms = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e6;
}

static void write_status(const char *path)
{
	char tmp[4096];
	FILE *f;

	if (!path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	status_writes++;
	fprintf(f,
		"ticks=%llu maxgap_ms=%.3f verified_ok=%llu verify_fail=%llu mib=%zu"
		" passes_bad=%llu first_bad_page=%lld usr1=%llu corrupted=%llu dirtied_pages=%llu"
		" maxgap_mono_ms=%.3f maxgap_end_ms=%llu verify_ms=%.1f fill_ms=%.1f seq=%llu pid=%d now_ms=%llu\n",
		(unsigned long long)ticks, (double)maxgap_rt / 1e6, (unsigned long long)passes_ok,
		(unsigned long long)fails, mib, (unsigned long long)passes_bad,
		first_bad == UINT64_MAX ? -1LL : (long long)first_bad, (unsigned long long)usr1_done,
		(unsigned long long)corrupted, (unsigned long long)dirtied, (double)maxgap_mono / 1e6,
		(unsigned long long)(maxgap_end_rt / 1000000), last_verify_ms, fill_ms,
		(unsigned long long)status_writes, (int)getpid(),
		(unsigned long long)(now_ns(CLOCK_REALTIME) / 1000000));
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

static void on_usr1(int sig)
{
	(void)sig;
	want_verify = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	want_corrupt = 1;
}

static void usage(FILE *f)
{
	fputs("usage: memhog --mib N [--dirty-mib-s R] [--tick-ms T] [--state FILE] [--verify-ms V] [--thp] [--compressible]\n"
	      "  N MiB of self-checking pseudo-random memory; R MiB/s rewritten (default 0);\n"
	      "  a tick every T ms (default 5); full verification + status line to FILE every\n"
	      "  V ms (default 1000, 0 = only on SIGUSR1) and on SIGUSR1; SIGUSR2 corrupts a page.\n"
	      "  --thp: transparent huge pages (MADV_HUGEPAGE) instead of 4 KiB pages.\n"
	      "  --compressible: each page repeats a 256-byte block (memory that compresses well).\n",
	      f);
}

static double num_arg(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "memhog: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },	{ "dirty-mib-s", required_argument, NULL, 'd' },
		{ "tick-ms", required_argument, NULL, 't' },	{ "state", required_argument, NULL, 's' },
		{ "verify-ms", required_argument, NULL, 'v' }, { "thp", no_argument, NULL, 'H' },
		{ "compressible", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double dirty_mib_s = 0, tick_ms = 5, verify_ms = 1000, owed = 0;
	const char *state = NULL;
	size_t cursor = 0, stride;
	struct sigaction sa;
	int c, thp = 0;

	while ((c = getopt_long(argc, argv, "m:d:t:s:v:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': mib = (size_t)num_arg(optarg, "--mib"); break;
		case 'd': dirty_mib_s = num_arg(optarg, "--dirty-mib-s"); break;
		case 't': tick_ms = num_arg(optarg, "--tick-ms"); break;
		case 's': state = optarg; break;
		case 'v': verify_ms = num_arg(optarg, "--verify-ms"); break;
		case 'H': thp = 1; break;
		case 'C': period = 32; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || mib == 0 || tick_ms <= 0) {
		usage(stderr);
		return 2;
	}

	npages = mib * (1024 * 1024 / PAGE);
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	if (thp) {
		/* populate only after the advice, or the pages come in 4 KiB */
		mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem != MAP_FAILED && madvise(mem, npages * PAGE, MADV_HUGEPAGE) != 0)
			perror("memhog: madvise(MADV_HUGEPAGE)");
	} else {
		mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1,
			   0);
	}
	gen = calloc(npages, sizeof(*gen));
	if (mem == MAP_FAILED || !gen) {
		fprintf(stderr, "memhog: cannot allocate %zu MiB\n", mib);
		return 1;
	}
	/* Rewrites walk the pages in a scattered order: a stride coprime with npages. */
	stride = (size_t)((double)npages * 0.6180339887) | 1;
	for (;;) {
		size_t a = stride, b = npages;
		while (b) {
			size_t t = a % b;
			a = b;
			b = t;
		}
		if (a == 1)
			break;
		stride += 2;
	}

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);

	for (size_t p = 0; p < npages; p++)
		fill_page(p);
	fill_ms = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e6;

	uint64_t tick_ns = (uint64_t)(tick_ms * 1e6), next = now_ns(CLOCK_MONOTONIC), prev = next;
	uint64_t verify_ns = (uint64_t)(verify_ms * 1e6), next_verify = next + verify_ns;
	beat();
	verify_all();
	write_status(state);
	for (;;) {
		struct timespec ts;

		next += tick_ns;
		ts.tv_sec = (time_t)(next / 1000000000ull);
		ts.tv_nsec = (long)(next % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !want_verify && !want_corrupt)
			;
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		beat();
		ticks++;
		if (now > next + 100 * tick_ns) /* we were stopped for long: do not try to catch up */
			next = now;

		if (dirty_mib_s > 0) {
			/* cap the debt, so that a long stop does not turn into a burst */
			owed += dirty_mib_s * (1024.0 * 1024.0 / PAGE) * (double)(now - prev) / 1e9;
			if (owed > dirty_mib_s * 256.0)
				owed = dirty_mib_s * 256.0;
			for (; owed >= 1; owed--) {
				gen[cursor]++;
				fill_page(cursor);
				dirtied++;
				cursor = (cursor + stride) % npages;
				if (dirtied % BEAT_EVERY == 0)
					beat();
			}
		}
		prev = now;

		if (want_corrupt) {
			want_corrupt = 0;
			mem[(npages / 2) * PAGE + 123] ^= 0x5a;
			corrupted++;
		}
		int usr1 = want_verify;
		if (usr1 || (verify_ns && now >= next_verify)) {
			want_verify = 0;
			verify_all();
			if (usr1)
				usr1_done++;
			write_status(state);
			next_verify = now_ns(CLOCK_MONOTONIC) + verify_ns;
		}
	}
}
