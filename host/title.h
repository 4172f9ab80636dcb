/*
 * title.h - process titles as process_management shows them:
 * "<titlePrefix>:Master:<baseTitle>", "<titlePrefix>:Worker:<baseTitle>",
 * visible in ps and /proc/PID/cmdline.
 */
#ifndef PMHOST_TITLE_H
#define PMHOST_TITLE_H

#include <stddef.h>

#define PROC_TITLE_MAX	160

enum title_role { TITLE_MASTER, TITLE_WORKER, TITLE_PRELOAD, TITLE_SPAWNER };

/* Writes "<prefix>:<Role>:<base>" into buf; its length, like snprintf. */
int	title_compose(char *buf, size_t size, const char *prefix,
	    enum title_role role, const char *base);

/*
 * Claims the argv/environ area for titles; environ is moved to the heap.
 * Call once, first thing in main().
 */
void	title_init(int argc, char **argv);

/* Shows title as this process's command line (truncated to the area). */
void	title_set(const char *title);

#endif
