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
	size_t	 la = strlen(a), lb = strlen(b), i, j, diag, up, best;
	size_t	*row;

	if ((row = calloc(lb + 1, sizeof(*row))) == NULL)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			best = diag + (tolower((unsigned char)a[i - 1]) !=
			    tolower((unsigned char)b[j - 1]));
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	best = row[lb];
	free(row);
	return best;
}
