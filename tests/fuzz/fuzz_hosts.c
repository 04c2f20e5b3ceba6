/* libFuzzer target for host lists (src/engine/hosts.c): `--candidates` and
 * <root>/hosts.  Every accepted host is a non-empty, NUL-terminated word that
 * cannot be taken for an option of the remote shell. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_hosts"
#include "fuzz.h"

#include "engine/hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char hosts[HOSTS_MAX][256];
	struct error e = { 0 };
	char *text;
	int n;

	text = fuzz_text(data, size, 65536);
	if (!text)
		return 0;
	n = hosts_parse_list(text, "/nonexistent", hosts, HOSTS_MAX, &e);
	if (n < 0) {
		CHECK(e.code > 0 && e.msg[0]);
	} else {
		CHECK(n <= HOSTS_MAX);
		for (int i = 0; i < n; i++) {
			CHECK(memchr(hosts[i], 0, sizeof(hosts[i])) != NULL);
			CHECK(hosts[i][0] != 0 && hosts[i][0] != '-');
			CHECK(strpbrk(hosts[i], " \t\n,") == NULL);
		}
	}
	free(text);
	return 0;
}
