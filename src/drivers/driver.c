#include "drivers/driver.h"

#include <stdlib.h>
#include <string.h>

const struct driver *driver_for(enum workload_kind kind)
{
	switch (kind) {
	case KIND_RUNC:
		return &runc_driver;
	case KIND_PID:
		return &pid_driver;
	}
	return NULL;
}

void workload_free(struct workload *w)
{
	free(w->config_json);
	free(w->orig_cgroups);
	free(w->vols);
	w->config_json = w->orig_cgroups = NULL;
	w->vols = NULL;
	w->nvols = 0;
}
