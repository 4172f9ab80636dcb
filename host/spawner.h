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
 * Starts a worker for a->slot in cell a->cell.  0 with *pid set; -1 with
 * errno (fork failed).
 */
int	spawner_spawn(struct spawner *sp, const struct worker_args *a,
	    pid_t *pid);

#endif
