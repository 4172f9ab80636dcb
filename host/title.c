/*
 * title.c - sets the process title by overwriting the argv area, which the
 * kernel reports as /proc/PID/cmdline.  The environment strings that follow
 * argv are moved to the heap first so the title may use their space too.
 * The area is the kernel's, hence the file-level state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "title.h"

extern char **environ;

static char	*area;		/* argv[0] */
static size_t	 area_len;	/* argv and environ strings, contiguous */
static size_t	 arg_len;	/* argv strings alone */
static size_t	 title_used;	/* bytes the last title wrote, NUL included */
/*
 * Every moved environment string, in an array of our own: unsetenv()
 * drops entries from environ's array, and a leak checker (which does not
 * scan libc's environ anyway) must still find the strings.
 */
static char	**volatile env_strings;
static char	**volatile env_array;	/* environ's first array, likewise */

int
title_compose(char *buf, size_t size, const char *prefix,
    enum title_role role, const char *base)
{
	static const char *const roles[] = {
		[TITLE_MASTER] = "Master", [TITLE_WORKER] = "Worker",
		[TITLE_PRELOAD] = "Preload", [TITLE_SPAWNER] = "Spawner",
	};

	return snprintf(buf, size, "%s:%s:%s", prefix, roles[role], base);
}

/*
 * GCC 12's analyzer forgets the strings stored at env[i] and strs[i]
 * from one pass of the loop to the next, and reports them leaked: they
 * are kept (env_strings) or freed on every path.
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* loses env[i] */
#endif
void
title_init(int argc, char **argv)
{
	char *end, **env, **strs;
	size_t n = 0;

	if (argc < 1 || argv[0] == NULL)
		return;
	end = argv[0] + strlen(argv[0]) + 1;
	for (int i = 1; i < argc; i++)
		if (argv[i] == end)
			end += strlen(argv[i]) + 1;
	arg_len = (size_t)(end - argv[0]);

	for (n = 0; environ[n] != NULL; n++)
		;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL ||
	    (strs = calloc(n + 1, sizeof(*strs))) == NULL) {
		free(env);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (environ[i] == end)
			end += strlen(environ[i]) + 1;
		if ((env[i] = strs[i] = strdup(environ[i])) == NULL) {
			/* Keep the old environment and the argv-only area. */
			while (i > 0)
				free(strs[--i]);
			free(strs);
			free(env);
			return;
		}
	}
	env_strings = strs;
	environ = env_array = env;
	area = argv[0];
	area_len = (size_t)(end - argv[0]);
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

void
title_set(const char *title)
{
	size_t n, clear;

	if (area == NULL || area_len < 2)
		return;
	n = strlen(title);
	if (n > area_len - 1)
		n = area_len - 1;
	/*
	 * A title that fits the argv strings leaves the environment strings
	 * alone (/proc/PID/environ still shows them); one that needs their
	 * room takes all of it, leaving no half-overwritten string behind.
	 */
	clear = n + 1 > arg_len ? area_len : arg_len;
	if (title_used > clear)
		clear = title_used;
	memset(area, 0, clear);
	memcpy(area, title, n);
	title_used = clear;
	/*
	 * The kernel shows the whole argv range when its last byte is NUL,
	 * and the string up to the first NUL when it is not; the second reads
	 * as one clean argument, so mark that byte when the title is shorter.
	 */
	if (n + 1 < arg_len)
		area[arg_len - 1] = '.';
}
