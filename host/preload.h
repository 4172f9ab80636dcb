/*
 * preload.h - the preload process: a child of the master that loads the
 * task's plugin once, calls its work_preload(), and then forks the task's
 * workers from that loaded image on the master's request, so that each
 * worker starts with the engine (PHP, CPython) already up and shares its
 * pages.  Workers are cloned with CLONE_PARENT: they are the master's
 * children, reaped and watched like any other.  The messages the master
 * and the preload process exchange over their socket are defined here.
 */
#ifndef PMHOST_PRELOAD_H
#define PMHOST_PRELOAD_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "privs.h"
#include "scoreboard.h"

/* Master to preload: start a worker in cell for slot (held or not). */
struct preload_req {
	uint32_t	 cell;
	int32_t		 slot;
	uint32_t	 hold;
	uint32_t	 merged;	/* one pipe for stdout and stderr */
};

enum preload_rep_kind {
	PRELOAD_READY = 1,	/* work_preload() done: requests welcome */
	PRELOAD_SPAWNED		/* a worker: its pid, or -errno; its stdout
				   and stderr pipes ride along */
};

/* Preload to master. */
struct preload_rep {
	uint32_t	 kind;
	uint32_t	 cell;
	int32_t		 pid;		/* > 0, or -errno */
};

/* What the preload process starts from (inherited across its fork). */
struct preload_args {
	const struct task_config *cfg;
	const struct creds	*creds;
	struct scoreboard	*sb;
	pid_t			 master;
	int			 sock;		/* SOCK_SEQPACKET to the master */
	int			 out_fd;	/* its own stdout and stderr */
	int			 err_fd;
	int			 ready_fd;	/* the master's eventfd */
	int			 load;		/* a preload process: the plugin
						   first; else a spawner only */
};

/* The preload process's whole life; ends in _exit(). */
_Noreturn void	preload_main(const struct preload_args *pa);

#endif
