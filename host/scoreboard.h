/*
 * scoreboard.h - the table of live workers that the master and its workers
 * share (anonymous shared memory mapped before the first fork).
 *
 * One cell per worker process.  Each field has one writer at a time: the
 * master initialises a cell before forking and then writes only cmd; the
 * worker writes the rest.  The doorbell alone is a counter that both ring
 * (only ever incremented); a worker sleeps on it with a futex, so the
 * master wakes it without a signal and nothing can be left held if either
 * side dies.  Readers use atomics; there are no locks.
 */
#ifndef PMHOST_SCOREBOARD_H
#define PMHOST_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

/* Room for every slot to have an old and a new worker during a rollout. */
#define SB_CELLS	(2 * CONFIG_MAX_WORKERS + 2)

enum cell_cmd {
	CELL_RUN,		/* go on */
	CELL_HOLD,		/* initialise, then wait: the old worker is not gone */
	CELL_EXIT,		/* finish the current call, work_fini, exit */
	CELL_EXPIRE		/* the same, because limitSeconds has passed */
};

enum cell_phase {
	PHASE_STARTING,		/* forked, loading the plugin */
	PHASE_INIT,		/* in work_init() */
	PHASE_HELD,		/* initialised, waiting for CELL_RUN */
	PHASE_IDLE,		/* between calls */
	PHASE_BUSY,		/* in work() (or looping without pauses) */
	PHASE_EXITING		/* in work_fini() or on the way out */
};

/* Why a worker ended on its own terms, set just before it exits. */
enum exit_why {
	WHY_NONE,		/* not set: crashed, killed, or exit() by plugin */
	WHY_CALLS,		/* executeTimes reached */
	WHY_LIFETIME,		/* limitSeconds reached */
	WHY_DONE,		/* work() returned PM_DONE */
	WHY_RSS,		/* above maxRssMb after a call */
	WHY_STOP,		/* asked to stop */
	WHY_LOAD,		/* the plugin did not load */
	WHY_INIT,		/* work_init() failed */
	WHY_SETUP		/* the worker could not set itself up */
};

struct sb_cell {
	_Atomic uint32_t cmd;		/* master: enum cell_cmd */
	_Atomic uint32_t doorbell;	/* futex word, both ring */
	_Atomic uint32_t phase;		/* worker: enum cell_phase */
	_Atomic uint32_t why;		/* worker: enum exit_why */
	_Atomic uint64_t calls;		/* worker: work() calls completed */
	_Atomic uint64_t errors;	/* worker: negative returns */
	_Atomic int64_t	 call_started;	/* worker: mono ns of the last call
					   start it timed (0: none) */
	_Atomic int64_t	 next_due;	/* worker (master seeds it): mono ns
					   before which no call may start */
	_Atomic uint64_t rss_kb;	/* worker: RSS at its last check */
	_Atomic int64_t	 ready_at;	/* worker: mono ns work_init ended;
					   limitSeconds counts from it */
	_Atomic uint32_t wants_term;	/* worker: its plugin took the stop
					   fd; the master adds SIGTERM to a
					   stop request */
} __attribute__((aligned(64)));

struct scoreboard {
	_Atomic uint32_t log_generation;/* master: bumped on log reopen */
	_Atomic uint32_t rss_warned;	/* latch: "over maxRssMb after init"
					   was logged (master clears it) */
	struct sb_cell	 cells[SB_CELLS];
};

/* Maps a zeroed scoreboard shared with future children; NULL on error. */
struct scoreboard *scoreboard_create(void);
void	scoreboard_destroy(struct scoreboard *sb);

/* Rings a cell's doorbell and wakes its sleeping worker. */
void	scoreboard_ring(struct sb_cell *c);

/*
 * Sleeps until the doorbell moves from seen, a signal arrives, or the
 * CLOCK_MONOTONIC deadline (ns; 0: none) passes.
 */
void	scoreboard_wait(struct sb_cell *c, uint32_t seen, int64_t deadline);

#endif
