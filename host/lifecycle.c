/*
 * lifecycle.c - the transition functions of a worker process and of a
 * slot.  Each is a table of what every event does in every state; an event
 * that does not apply leaves the state as it is.
 */
#include "lifecycle.h"
#include "util.h"

/* proc_table[state][event]; PROC_NSTATES marks "unchanged". */
#define SAME	PROC_NSTATES
static const unsigned char proc_table[PROC_NSTATES][PE_EXIT + 1] = {
	/*		  SPAWN		SPAWN_HELD	READY		RELEASE
			  EXPIRE	STOP		TIMEOUT		DEADLINE
			  EXIT */
	[PROC_FREE] =	{ PROC_RUNNING,	PROC_PREPARING,	SAME,		SAME,
			  SAME,		SAME,		SAME,		SAME,
			  SAME },
	[PROC_PREPARING] = { SAME,	SAME,		PROC_HELD,	SAME,
			  SAME,		PROC_STOPPING,	SAME,		PROC_KILLED,
			  PROC_FREE },
	[PROC_HELD] =	{ SAME,		SAME,		SAME,		PROC_RUNNING,
			  SAME,		PROC_STOPPING,	SAME,		SAME,
			  PROC_FREE },
	[PROC_RUNNING] = { SAME,	SAME,		SAME,		SAME,
			  PROC_EXPIRING, PROC_STOPPING,	PROC_TERMINATING, SAME,
			  PROC_FREE },
	[PROC_EXPIRING] = { SAME,	SAME,		SAME,		SAME,
			  SAME,		PROC_STOPPING,	PROC_TERMINATING, SAME,
			  PROC_FREE },
	[PROC_STOPPING] = { SAME,	SAME,		SAME,		SAME,
			  SAME,		SAME,		PROC_TERMINATING, PROC_KILLED,
			  PROC_FREE },
	[PROC_TERMINATING] = { SAME,	SAME,		SAME,		SAME,
			  SAME,		SAME,		SAME,		PROC_KILLED,
			  PROC_FREE },
	[PROC_KILLED] =	{ SAME,		SAME,		SAME,		SAME,
			  SAME,		SAME,		SAME,		SAME,
			  PROC_FREE },
};

enum proc_state
proc_next(enum proc_state s, enum proc_event e)
{
	unsigned next;

	if ((unsigned)s >= PROC_NSTATES || (unsigned)e > PE_EXIT)
		return s;
	next = proc_table[s][e];
	return next == SAME ? s : (enum proc_state)next;
}

enum proc_deadline
proc_deadline_kind(enum proc_state s)
{
	switch (s) {
	case PROC_PREPARING:	return DL_INIT;
	case PROC_RUNNING:	return DL_LIFETIME;
	case PROC_STOPPING:	return DL_STOP;
	case PROC_TERMINATING:	return DL_GRACE;
	default:		return DL_NONE;
	}
}

int
proc_serving(enum proc_state s)
{
	return s == PROC_PREPARING || s == PROC_HELD || s == PROC_RUNNING;
}

const char *
proc_state_name(enum proc_state s)
{
	static const char *const names[] = {
		[PROC_FREE] = "free", [PROC_PREPARING] = "preparing",
		[PROC_HELD] = "held", [PROC_RUNNING] = "running",
		[PROC_EXPIRING] = "expiring", [PROC_STOPPING] = "stopping",
		[PROC_TERMINATING] = "terminating", [PROC_KILLED] = "killed",
	};

	return (unsigned)s < nitems(names) ? names[s] : "?";
}

#undef SAME
#define SAME	SLOT_NSTATES
static const unsigned char slot_table[SLOT_NSTATES][SE_STOP + 1] = {
	/*		  SPAWNED	EXITED		DROPPED		SHRINK
			  GROW		STOP */
	[SLOT_EMPTY] =	{ SLOT_ACTIVE,	SAME,		SAME,		SAME,
			  SLOT_WAITING,	SAME },
	[SLOT_WAITING] = { SLOT_ACTIVE,	SAME,		SAME,		SLOT_EMPTY,
			  SAME,		SLOT_EMPTY },
	[SLOT_ACTIVE] =	{ SAME,		SLOT_WAITING,	SLOT_EMPTY,	SLOT_RETIRING,
			  SAME,		SAME },
	[SLOT_RETIRING] = { SAME,	SLOT_EMPTY,	SLOT_EMPTY,	SAME,
			  SLOT_ACTIVE,	SAME },
};

enum slot_state
slot_next(enum slot_state s, enum slot_event e)
{
	unsigned next;

	if ((unsigned)s >= SLOT_NSTATES || (unsigned)e > SE_STOP)
		return s;
	next = slot_table[s][e];
	return next == SAME ? s : (enum slot_state)next;
}

const char *
slot_state_name(enum slot_state s)
{
	static const char *const names[] = {
		[SLOT_EMPTY] = "empty", [SLOT_WAITING] = "waiting",
		[SLOT_ACTIVE] = "active", [SLOT_RETIRING] = "retiring",
	};

	return (unsigned)s < nitems(names) ? names[s] : "?";
}
