/* libFuzzer target for the network description (src/engine/net.c), which
 * arrives from the other host in NET_SETUP and is read back from disk by
 * `cmt recover`: the parser must refuse what is malformed with a message,
 * keep every field terminated and within its limits, and what it accepts
 * must encode to JSON that parses to the same description. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "fuzz_netdesc"
#include "fuzz.h"

#include "engine/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct net_desc d, d2;
	struct error e = { 0 };
	int r;

	r = net_desc_from_json((const char *)data, size, &d, &e);
	if (r < 0) {
		CHECK(e.msg[0] != 0);
		return 0;
	}
	CHECK(d.nif >= 0 && d.nif <= NET_MAX_IFS && d.nroutes >= 0 && d.nroutes <= NET_MAX_ROUTES);
	TERMINATED(d.path);
	CHECK(d.path[0] == '/');
	for (int i = 0; i < d.nif; i++) {
		TERMINATED(d.ifs[i].name);
		TERMINATED(d.ifs[i].mac);
		CHECK(d.ifs[i].name[0] && !strchr(d.ifs[i].name, '/'));
		CHECK(d.ifs[i].mtu >= 68 && d.ifs[i].mtu <= 65535);
		CHECK(d.ifs[i].naddr >= 0 && d.ifs[i].naddr <= NET_MAX_ADDRS);
		for (int k = 0; k < d.ifs[i].naddr; k++)
			CHECK(d.ifs[i].addr[k].prefix <= 128);
	}
	for (int i = 0; i < d.nroutes; i++) {
		TERMINATED(d.routes[i].dst);
		TERMINATED(d.routes[i].gw);
		TERMINATED(d.routes[i].dev);
	}
	char *j = net_desc_to_json(&d);
	CHECK(j != NULL);
	memset(&d2, 0, sizeof(d2));
	CHECK(net_desc_from_json(j, strlen(j), &d2, &e) == 0);
	CHECK(memcmp(&d, &d2, sizeof(d)) == 0);
	free(j);
	return 0;
}
