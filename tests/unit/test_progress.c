/* Unit tests of the progress line's text (src/engine/progress.c). */
#include <string.h>

#include "engine/progress.h"
#include "tap.h"

int main(void)
{
	char b[160];
	struct progress p;

	progress_format(b, sizeof(b), "images", 256u << 20, 512u << 20, 2000);
	is_str(b, "cmt: images    256.0/512.0 MiB   50%  128 MiB/s  ETA 2s", "half way, with rate and ETA");
	progress_format(b, sizeof(b), "rootfs", 10u << 20, 0, 1000);
	is_str(b, "cmt: rootfs    10.0 MiB  10 MiB/s", "no total known: bytes and rate only");
	progress_format(b, sizeof(b), "images", 0, 100, 0);
	ok(strstr(b, "0%") && !strstr(b, "ETA"), "nothing yet: no rate, no ETA: %s", b);
	progress_format(b, sizeof(b), "images", 200, 100, 1000);
	ok(!strstr(b, "%") || strstr(b, "MiB/s"), "more than the estimate: no percentage past 100: %s", b);
	progress_format(b, 8, "images", 1, 2, 1);
	ok(strlen(b) == 7, "a short buffer is not overrun");
	progress_begin(&p, false, "images", 100);
	progress_add(&p, 40);
	progress_add(&p, 60);
	is_int((long long)p.done, 100, "bytes are counted even when nothing is drawn");
	progress_end(&p);
	return done_testing();
}
