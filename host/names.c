/*
 * names.c - title syntax and log level names, shared by cli.c and config.c
 * so that a title valid on the command line is valid in a config file.
 */
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
