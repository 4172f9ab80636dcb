/*
 * policy.h - what the master decides when a worker exits: how to describe
 * the exit, whether it was orderly, and how long its slot waits before the
 * respawn.  Pure functions of their inputs, unit-tested without forking.
 */
#ifndef PMHOST_POLICY_H
#define PMHOST_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define BACKOFF_BASE_NS		(100 * NS_PER_MS)
#define BACKOFF_CAP_NS		(30 * NS_PER_SEC)
/* A run this long counts as healthy even if it ended in a failure. */
#define HEALTHY_RUN_NS		(10 * NS_PER_SEC)

enum exit_class {
	EXIT_ORDERLY,		/* ended normally: replace at once */
	EXIT_FAILED		/* crashed, killed, init failed: back off */
};

/* What the master knows of a worker when it reaps it. */
struct exit_facts {
	int		wstatus;	/* from waitpid() */
	unsigned	why;		/* enum exit_why from its cell */
	uint64_t	calls;		/* work() calls it completed */
	int64_t		lived_ns;	/* fork to reap */
	uint64_t	rss_kb;		/* at its last check (memory limit) */
	int		timed_out;	/* the master killed it for workTimeout */
	int64_t		call_ns;	/* duration of the call it was killed in */
	uint64_t	timeout_call;	/* the number of that call */
	int		stop_killed;	/* SIGKILLed after stopTimeout */
};

/*
 * Classifies an exit and writes its reason ("reached executeTimes after 1
 * calls", "killed by SIGSEGV (core dumped)", ...) into text.
 */
enum exit_class	policy_classify(const struct exit_facts *f, char *text,
		    size_t size);

/* Why a worker ended, in the words of metrics: exits by reason. */
#define EXIT_REASONS(X)							\
	X(EXR_DONE, "done")		/* work() returned PM_DONE */	\
	X(EXR_CALLS, "execute_times")					\
	X(EXR_LIFETIME, "limit_seconds")				\
	X(EXR_RSS, "max_rss")						\
	X(EXR_STOP, "stop")		/* stop, scale-down, restart */	\
	X(EXR_TIMEOUT, "work_timeout")					\
	X(EXR_FAIL, "fail")		/* work() returned PM_FAIL */	\
	X(EXR_SIGNAL, "signal")		/* killed or crashed */		\
	X(EXR_STATUS, "exit_status")	/* the plugin called exit() */	\
	X(EXR_INIT, "init_failure")					\
	X(EXR_LOAD, "load_failure")	/* or the worker's own set-up */

#define EXIT_REASON_ENUM(id, name) id,
enum exit_reason {
	EXIT_REASONS(EXIT_REASON_ENUM)
	EXR_COUNT
};
#undef EXIT_REASON_ENUM

/* The reason an exit counts under, and its metric label. */
enum exit_reason policy_reason(const struct exit_facts *f);
const char	*policy_reason_name(enum exit_reason r);

/*
 * Did the run that ended (of class cls) deserve to reset the slot's
 * failure streak?  An orderly end did, and so did a run of
 * HEALTHY_RUN_NS; a failed one if it completed a call, unless it ended
 * for workTimeout or returned PM_FAIL, which say it made no progress.
 */
int		policy_healthy(const struct exit_facts *f, enum exit_class cls);

/*
 * Updates a slot's run of consecutive failures after an exit and returns
 * the delay (ns) before its respawn: 0 for orderly exits and for the first
 * failure after a healthy run, then BACKOFF_BASE_NS doubling per further
 * failure up to BACKOFF_CAP_NS.
 */
int64_t		policy_after_exit(unsigned *failures, enum exit_class cls,
		    int healthy);

/* The delay for a slot that has failed n times in a row. */
int64_t		policy_backoff(unsigned n);

/* "SIGSEGV", or "signal 77" for a number with no name. */
const char	*policy_signal_name(int sig, char *buf, size_t size);

#endif
