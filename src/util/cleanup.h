/* Scope-bound cleanup (as in systemd/crun): a variable declared with one of
 * these is released when it goes out of scope; TAKE_PTR/TAKE_FD hand it on. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }

#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_fclose_ __attribute__((cleanup(fclosep)))

#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
