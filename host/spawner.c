/*
 * spawner.c - worker processes forked from the master.  Signals stay
 * blocked across fork() (the master's mask is its set-up), so the child
 * cannot act on one before worker_main() has reset them.
 */
#include <unistd.h>

#include "spawner.h"

void
spawner_init(struct spawner *sp)
{
	sp->master = getpid();
}

int
spawner_spawn(struct spawner *sp, const struct worker_args *a, pid_t *pid)
{
	pid_t p;

	(void)sp;
	if ((p = fork()) < 0)
		return -1;
	if (p == 0)
		worker_main(a);
	/* Both sides set the group, so neither can act before it exists. */
	setpgid(p, p);
	*pid = p;
	return 0;
}
