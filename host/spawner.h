/*
 * spawner.h - how a worker process comes to exist for a slot.  Today a
 * plain fork() of the master; the interface allows a spawn to complete
 * later (a preload process that forks workers on the master's behalf
 * answers with the pid asynchronously).  The spawner never runs plugin
 * code in the master.
 */
#ifndef PMHOST_SPAWNER_H
#define PMHOST_SPAWNER_H

#include <sys/types.h>

#include "worker.h"

struct spawner {
	pid_t	master;		/* getpid() of the master */
};

void	spawner_init(struct spawner *sp);

/*
 * Starts a worker for a->slot in cell a->cell.  0 with *pid set and
 * out[0], out[1] the master's ends of the worker's stdout and stderr
 * (non-blocking); -1 with errno (no descriptors, fork failed).
 */
int	spawner_spawn(struct spawner *sp, const struct worker_args *a,
	    pid_t *pid, int out[2]);

#endif
