/* Per-workload locks: flock(2) on a file in the state root.  The kernel
 * releases a lock when its holder dies, so a crashed cmt never leaves one. */
#pragma once
#include "util/error.h"

/* Takes <root>/locks/<name>.lock without waiting.  Returns the fd (>= 0) or
 * -EBUSY with e naming the holder's pid when it is held. */
int lock_take(const char *root, const char *name, const char *what, struct error *e);
void lock_release(int fd);
