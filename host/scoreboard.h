/*
 * scoreboard.h - the table of live workers that the master and its workers
 * share (anonymous shared memory mapped before the first fork).
 *
 * One cell per worker process.  Each field has one writer at a time: the
 * master writes cmd, the worker its report (see struct sb_report for the
 * two moments the master touches it).  The doorbell alone is a counter
 * that both ring (only ever incremented); a worker sleeps on it with a
 * futex, so the master wakes it without a signal and nothing can be left
 * held if either side dies.  Readers use atomics; there are no locks.
 */
#ifndef PMHOST_SCOREBOARD_H
#define PMHOST_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

/*
 * work() call times, counted in buckets with these upper bounds (ns):
 * 1, 3 and 10 per decade from 1 us to 30 s, then 60 s, then +Inf.
 */
#define SB_BUCKETS	18
extern const int64_t sb_bucket_le_ns[SB_BUCKETS - 1];

/* The bucket of a call of ns. */
static inline int
sb_bucket(int64_t ns)
{
	int b = 0;

	while (b < SB_BUCKETS - 1 && ns > sb_bucket_le_ns[b])
		b++;
	return b;
}

/* Room for every slot to have an old and a new worker during a rollout. */
#define SB_CELLS	(2 * CONFIG_MAX_WORKERS + 2)

enum cell_cmd {
	CELL_RUN,		/* go on */
	CELL_HOLD,		/* initialise, then wait: the old worker is not gone */
	CELL_EXIT,		/* finish the current call, work_fini, exit */
	CELL_EXPIRE,		/* the same, because limitSeconds has passed */
	CELL_TIMEOUT		/* the same, because a call ran too long */
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
	WHY_SETUP,		/* the worker could not set itself up */
	WHY_FAIL		/* work() returned PM_FAIL */
};

/*
 * What a worker reports about itself.  The master resets it in one
 * operation before the worker exists and seeds next_due; from then on the
 * worker alone writes it (the master writes next_due again only while the
 * worker is held, before it lets it go, when the worker does not read it).
 */
struct sb_report {
	_Atomic uint32_t phase;		/* enum cell_phase */
	_Atomic uint32_t why;		/* enum exit_why */
	_Atomic uint32_t wants_term;	/* its plugin took the stop fd: the
					   master adds SIGTERM to a stop */
	_Atomic uint64_t calls;		/* work() calls completed */
	_Atomic uint64_t errors;	/* negative returns */
	_Atomic int64_t	 call_started;	/* mono ns of the last call start it
					   timed (0: none) */
	_Atomic int64_t	 next_due;	/* mono ns before which no call may
					   start: the slot's cadence */
	_Atomic uint64_t rss_kb;	/* RSS at its last check */
	_Atomic int64_t	 ready_at;	/* mono ns work_init ended;
					   limitSeconds counts from it */
	uint64_t	 max_calls;	/* master, at reset: the executeTimes
					   drawn for this life; 0: none */
	/*
	 * work() call times: every call when paced; when hot, one call per
	 * stride, counted as stride calls (hist and sum_ns weighted so).
	 */
	_Atomic uint64_t hist[SB_BUCKETS];
	_Atomic uint64_t sum_ns;
	/* For calls/s: (time, calls) at the two latest marks, a second or
	 * more apart; mark 1 is the newer. */
	_Atomic int64_t	 mark_ns[2];
	_Atomic uint64_t mark_calls[2];
};

/* One worker process's cell. */
struct sb_cell {
	_Atomic uint32_t cmd;		/* master: enum cell_cmd */
	_Atomic uint32_t doorbell;	/* futex word; both ring it */
	struct sb_report w;		/* the worker's */
} __attribute__((aligned(64)));

struct scoreboard {
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
