/* Shared by cmt's libFuzzer targets. */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz.h"
#endif

/* An invariant of the code under test: a failure is a finding. */
#define CHECK(cond)                                                                                                    \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			fprintf(stderr, FUZZ_NAME ": check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)
#define TERMINATED(f) CHECK(memchr((f), 0, sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated text (cut at its first NUL, as a file read
 * as text would be), or NULL when larger than max or out of memory. */
static inline char *fuzz_text(const uint8_t *data, size_t size, size_t max)
{
	char *t;

	if (size > max || !(t = malloc(size + 1)))
		return NULL;
	memcpy(t, data, size);
	t[size] = 0;
	return t;
}
