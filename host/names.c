/*
 * names.c - title syntax, log level names and the edit distance behind
 * every "did you mean", shared by cli.c, commands.c and config.c so that
 * a title valid on the command line is valid in a config file.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "names.h"

static const char *const level_names[] = {
	[PM_LOG_DEBUG] = "debug",
	[PM_LOG_INFO] = "info",
	[PM_LOG_NOTICE] = "notice",
	[PM_LOG_WARNING] = "warning",
	[PM_LOG_ERROR] = "error",
};

int
title_valid(const char *s)
{
	size_t n = 0;

	for (const char *p = s; *p != '\0'; p++, n++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
		    *p == '-'))
			return 0;
	}
	if (n == 0 || n > TITLE_MAX)
		return 0;
	/* "." and ".." would name the run dir itself or its parent. */
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int
log_level_from_name(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0]));
	    i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < 0 ||
	    level >= (int)(sizeof(level_names) / sizeof(level_names[0])))
		return "?";
	return level_names[level];
}

size_t
names_distance(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b), i, j, best, w = lb + 1;
	size_t	*d;

	/* Optimal string alignment: edits, and swaps of neighbours. */
	if ((d = calloc((la + 1) * w, sizeof(*d))) == NULL)
		return SIZE_MAX;
	for (i = 0; i <= la; i++)
		d[i * w] = i;
	for (j = 0; j <= lb; j++)
		d[j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			int ne = tolower((unsigned char)a[i - 1]) !=
			    tolower((unsigned char)b[j - 1]);

			best = d[(i - 1) * w + j - 1] + (size_t)ne;
			if (d[(i - 1) * w + j] + 1 < best)
				best = d[(i - 1) * w + j] + 1;
			if (d[i * w + j - 1] + 1 < best)
				best = d[i * w + j - 1] + 1;
			if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) ==
			    tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) ==
			    tolower((unsigned char)b[j - 1]) &&
			    d[(i - 2) * w + j - 2] + 1 < best)
				best = d[(i - 2) * w + j - 2] + 1;
			d[i * w + j] = best;
		}
	}
	best = d[la * w + lb];
	free(d);
	return best;
}
