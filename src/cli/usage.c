/* Usage errors of the verbs. */
#include <stdarg.h>
#include <stdio.h>

#include "cli/cli.h"

int usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cmt%s%s: ", verb ? " " : "", verb ? verb : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'cmt%s%s --help'.\n", verb ? " " : "", verb ? verb : "");
	return EXIT_USAGE;
}
