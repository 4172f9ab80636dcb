/*
 * worker.h - the worker process: the child side of every fork the master
 * makes for a slot.  worker_main() loads the plugin, runs it on the
 * configured cadence and ends in _exit(); it never returns to the master's
 * stack.
 */
#ifndef PMHOST_WORKER_H
#define PMHOST_WORKER_H

#include <sys/types.h>

#include "config.h"
#include "privs.h"
#include "scoreboard.h"

struct plugin;

/* Exit codes a worker uses for failures it reports itself. */
#define WORKER_EXIT_FAILED	70

/*
 * Sent by the kernel when the master dies (PR_SET_PDEATHSIG): a hangup,
 * as when a terminal's controlling process goes.  A SIGHUP from anyone
 * else, with the master still there, is ignored.
 */
#define WORKER_ORPHAN_SIGNAL	SIGHUP

struct worker_args {
	const struct task_config *cfg;
	const struct creds	*creds;
	struct sb_cell		*cell;
	struct scoreboard	*sb;
	int			 slot;
	pid_t			 master;
	int			 ready_fd;	/* eventfd to ring once held; -1 */
	int			 out_fd;	/* its stdout: to the master */
	int			 err_fd;	/* its stderr and log records */
	int			 merged;	/* one pipe for both (out_fd) */
	/* Cloned from a preload process: the plugin is loaded and the
	 * process has taken on the task's privileges already. */
	const struct plugin	*plugin;	/* NULL: load it */
	int			 preload_sock;	/* the preload's, closed; -1 */
};

_Noreturn void	worker_main(const struct worker_args *a);

#endif
