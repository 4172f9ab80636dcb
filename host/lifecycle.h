/*
 * lifecycle.h - the states of a worker process and of a slot, as the
 * master sees them, each moved by one transition function.  Pure: no
 * clock, no I/O; unit-tested like policy.h.  What a state means for
 * deadlines is decided here too, so no caller re-derives it from flags.
 */
#ifndef PMHOST_LIFECYCLE_H
#define PMHOST_LIFECYCLE_H

#include <stdint.h>

/* A worker process (one scoreboard cell). */
enum proc_state {
	PROC_FREE,		/* no process in this cell */
	PROC_PREPARING,		/* a replacement: loading, in work_init */
	PROC_HELD,		/* a replacement through work_init, waiting */
	PROC_RUNNING,		/* owns its slot (its cell shows init/idle/busy) */
	PROC_EXPIRING,		/* limitSeconds passed: ends after its call */
	PROC_STOPPING,		/* asked to finish its call and exit */
	PROC_TERMINATING,	/* workTimeout: SIGTERM sent */
	PROC_KILLED,		/* SIGKILL sent, not yet reaped */
	PROC_NSTATES
};

enum proc_event {
	PE_SPAWN,		/* forked for its slot */
	PE_SPAWN_HELD,		/* forked as a replacement, held after init */
	PE_READY,		/* a held replacement finished work_init */
	PE_RELEASE,		/* a held replacement takes over its slot */
	PE_EXPIRE,		/* its lifetime (limitSeconds) is over */
	PE_STOP,		/* stop, retire, scale down */
	PE_TIMEOUT,		/* a work() call ran past workTimeout */
	PE_DEADLINE,		/* its state's deadline passed: kill it */
	PE_EXIT			/* reaped */
};

/*
 * The state after event e in state s.  An event that does not apply to s
 * leaves it unchanged (a stop of a process already stopping, a deadline
 * of one with none), so callers need not check first.
 */
enum proc_state	proc_next(enum proc_state s, enum proc_event e);

/* What passing a state's deadline means, or DL_NONE. */
enum proc_deadline {
	DL_NONE,
	DL_INIT,		/* a held replacement did not finish work_init */
	DL_LIFETIME,		/* look at its limitSeconds again */
	DL_STOP,		/* did not exit within stopTimeout: kill */
	DL_GRACE		/* workTimeout's grace after SIGTERM: kill */
};

enum proc_deadline proc_deadline_kind(enum proc_state s);

/* Is the process alive and still meant to serve (not being ended)? */
int		proc_serving(enum proc_state s);

/* "running", "held", ... for logs and tests. */
const char	*proc_state_name(enum proc_state s);

/* A slot: a worker position, kept across respawns. */
enum slot_state {
	SLOT_EMPTY,		/* no worker, none wanted */
	SLOT_WAITING,		/* no worker; its next one is due at a time */
	SLOT_ACTIVE,		/* has its worker */
	SLOT_RETIRING,		/* above the target: its worker is stopping */
	SLOT_NSTATES
};

enum slot_event {
	SE_SPAWNED,		/* a worker was started for it */
	SE_EXITED,		/* its worker ended, and it still wants one */
	SE_DROPPED,		/* its worker ended, and it wants none */
	SE_SHRINK,		/* the target fell below it */
	SE_GROW,		/* the target rose above it again */
	SE_STOP			/* the master is stopping, or run-once is done */
};

enum slot_state	slot_next(enum slot_state s, enum slot_event e);

const char	*slot_state_name(enum slot_state s);

#endif
