/*
 * ctorwho.c - a plugin whose constructor records who runs it: one line
 * "ctor PID EUID NONEWPRIVS" appended to the file named by the environment
 * variable PMHOST_CTOR_LOG, in every process that loads it (the load
 * check, the preload process, each worker).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <pmhost.h>

PMHOST_PLUGIN;

__attribute__((constructor)) static void
who_loads_me(void)
{
	const char *path = getenv("PMHOST_CTOR_LOG");
	char line[128];
	int fd, n;

	if (path == NULL)
		return;
	n = snprintf(line, sizeof(line), "ctor %ld %ld %d\n", (long)getpid(),
	    (long)geteuid(), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0666)) < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		abort();
	close(fd);
}

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
	return PM_CONTINUE;
}
