/*
 * spawner.h - how a worker process comes to exist for a slot: a request
 * to the task's spawner process, a small child of the master that clones
 * workers from its own image (so that a worker's start never copies or
 * closes the master's descriptors, two per worker) and answers with the
 * pid later.  With config "preload" it is the preload process, which has
 * loaded the plugin first.  A plain fork() of the master remains for
 * when no spawner process is running.  spawner.c owns struct spawner: for a
 * preload it starts, watches and restarts the preload process (with the
 * slots' backoff), and reads its output and replies.  The master routes
 * the preload's exit and messages here, and hands the replies to slots.
 */
#ifndef PMHOST_SPAWNER_H
#define PMHOST_SPAWNER_H

#include <stdint.h>
#include <sys/types.h>

#include "output.h"
#include "preload.h"
#include "title.h"
#include "worker.h"

#define SPAWNER_TEXT_MAX	192

enum spawner_state {
	SPAWNER_FORK,		/* plain fork(): always ready */
	SPAWNER_STARTING,	/* the preload process is loading */
	SPAWNER_READY,		/* it takes requests */
	SPAWNER_DOWN,		/* it is gone; started again at respawn_at */
	SPAWNER_STOPPED		/* asked to go; not started again */
};

struct spawner {
	enum spawner_state	 state;
	pid_t			 master;
	int			 epfd;
	int			 index;		/* its tag in the master's epoll */
	/* A spawner process's (a preload process, when loads). */
	int			 loads;		/* it loads the plugin first */
	const struct task_config *cfg;
	const struct creds	*creds;
	struct scoreboard	*sb;
	int			 ready_fd;
	char			 title[PROC_TITLE_MAX];
	pid_t			 pid;
	int			 sock;		/* -1: none */
	int			 inflight;	/* requests not answered yet */
	struct outstream	 out[2];
	int64_t			 started;	/* mono ns */
	int64_t			 started_real;	/* wall ns */
	int64_t			 respawn_at;	/* SPAWNER_DOWN: when */
	unsigned		 failures;	/* in a row */
	uint64_t		 restarts;
	char			 last_exit[SPAWNER_TEXT_MAX];
};

/* A spawner that forks the master (sp->index, its place, is kept). */
void	spawner_init_fork(struct spawner *sp);

/*
 * A spawner that forks workers from a preload process of task cfg,
 * started now; its descriptors go in epfd under sp->index.  0, or -1
 * (logged).
 */
int	spawner_init_preload(struct spawner *sp, int epfd,
	    const struct task_config *cfg, const struct creds *creds,
	    struct scoreboard *sb, int ready_fd, int loads);

/* "preload process" or "spawner process", for messages. */
const char *spawner_what(const struct spawner *sp);

/* Can it start a worker now? */
int	spawner_ready(const struct spawner *sp);

/*
 * The requests a spawner process may have unanswered: beyond them the
 * master waits for answers instead of filling the socket (about 290
 * requests fit) and failing, so that 10 000 starts asked for at once go
 * through in order.  Both directions stay bounded, and a window this
 * wide keeps the spawner forking without a pause.
 */
#define SPAWN_WINDOW	64

/* Will it take a spawn request now (ready, and its window not full)? */
int	spawner_can_take(const struct spawner *sp);

/*
 * Starts a worker for a->slot in cell a->cell.  0 with *pid and out[0],
 * out[1] (the master's ends of its stdout and stderr) set, or with *pid 0
 * when the preload process answers later (spawner_reply); -1 with errno.
 */
int	spawner_spawn(struct spawner *sp, const struct worker_args *a,
	    pid_t *pid, int out[2]);

/*
 * Takes one message of the preload process: 1 with *rep (and fds for a
 * spawned worker), 0 when none waits, -1 when it hung up.
 */
int	spawner_reply(struct spawner *sp, struct preload_rep *rep, int fds[2]);

/* Logs what the preload process wrote on stream (0 stdout, 1 stderr). */
void	spawner_output(struct spawner *sp, int stream);

/* Is pid this spawner's preload process? */
int	spawner_owns(const struct spawner *sp, pid_t pid);

/*
 * Its preload process was reaped: logs why and plans the next start (with
 * backoff) unless it was stopped.  The exit's description in text.
 */
void	spawner_exited(struct spawner *sp, int wstatus, int64_t now,
	    char *text, size_t size);

/* Starts the preload process again once due. */
void	spawner_tick(struct spawner *sp, int64_t now);

int64_t	spawner_next_deadline(const struct spawner *sp);

/* Moves its descriptors to another index of the master's epoll. */
void	spawner_set_index(struct spawner *sp, int index);

/* The config a preload process is started again from (after a commit). */
void	spawner_retarget(struct spawner *sp, const struct task_config *cfg,
	    const struct creds *creds);

/*
 * Lets go of a spawner about to be used again: closes what it holds; a
 * preload process still exiting is reaped as a stray.
 */
void	spawner_release(struct spawner *sp);

/* Asks the preload process to go (it is reaped as usual); no restart. */
void	spawner_stop(struct spawner *sp);

#endif
