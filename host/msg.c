/*
 * msg.c - a command's words to its user: errors and confirmations.  The
 * quiet switch is per process (a command runs once), hence file-level.
 */
#include <stdarg.h>
#include <stdio.h>

#include "msg.h"

static int quiet;

void
msg_quiet(int q)
{
	quiet = q;
}

void
errmsg(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write: lines from concurrent commands stay whole. */
	fprintf(stderr, "pmhost: %s\n", buf);
}

void
say(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("%s\n", buf);
	fflush(stdout);
}
