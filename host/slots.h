/*
 * slots.h - the slot table and the worker processes in it.  slots.c owns
 * every field here: it spawns workers into slots (through the spawner),
 * moves processes and slots through their states (lifecycle.h), applies
 * the respawn policy when a worker exits, and enforces each process's
 * deadline.  It never reaps and never calls up: the master reaps and
 * hands it the exit, and gets the exit back as a value.
 */
#ifndef PMHOST_SLOTS_H
#define PMHOST_SLOTS_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "hist.h"
#include "log.h"
#include "output.h"
#include "lifecycle.h"
#include "policy.h"
#include "privs.h"
#include "scoreboard.h"
#include "spawner.h"

#define EXIT_TEXT_MAX	192
#define INIT_TIMEOUT_NS	(60 * NS_PER_SEC)	/* a held worker's work_init */
#define TIMEOUT_GRACE_NS (1 * NS_PER_SEC)	/* workTimeout: TERM, then KILL */

/* What a worker is spawned with: the config generation it runs. */
struct spawn_ctx {
	const struct task_config *cfg;
	const struct creds	*creds;
	unsigned		 gen;
	const char		*title;		/* its process title */
	struct spawner		*spawner;	/* fork, or a preload's */
};



/* A live worker process; its index is its scoreboard cell. */
struct proc {
	enum proc_state	 state;
	pid_t		 pid;
	int		 slot;
	unsigned	 gen;		/* config generation it runs */
	int64_t		 started;	/* mono ns */
	int64_t		 started_real;	/* wall ns, for status */
	int64_t		 deadline;	/* mono ns; its state says what of */
	int64_t		 lifetime;	/* limitSeconds (ns) as drawn; 0: none */
	uint64_t	 max_calls;	/* executeTimes, as drawn; 0: none */
	int		 hot;		/* executeUSleep 0: calls untimed */
	int		 timed_out;	/* went through workTimeout */
	int64_t		 timeout_call_ns;
	uint64_t	 timeout_call;	/* the call workTimeout ended */
	int		 killed_at_stop;/* SIGKILLed at the master's stop */
	uint64_t	 watch_calls;	/* workTimeout: calls when last seen */
	int64_t		 watch_since;	/* mono ns that count was first seen */
	const char	*title;		/* its title (its generation's) */
	const struct spawner *spawner;	/* what started it */
	struct outstream out[2];	/* its stdout, stderr */
};

#define SLOT_HISTORY	5	/* the exits a slot remembers */
#define CRASH_LOOP_FAILS 3	/* failures in a row that make a crash loop */

/* One worker's end, as a slot remembers it. */
struct exit_rec {
	int64_t		 at_ms;		/* wall clock */
	int64_t		 lived_ms;
	uint64_t	 calls;
	int		 failed;
	char		 text[EXIT_TEXT_MAX];
};

/* A worker position: its index is what pm_worker_slot() returns. */
struct slot {
	enum slot_state	 state;
	int		 cur;		/* proc owning it, -1: none */
	int		 next;		/* a restart's replacement, -1 */
	int64_t		 respawn_at;	/* SLOT_WAITING: when */
	unsigned	 failures;	/* failed exits in a row */
	uint64_t	 respawns;	/* workers started after the first */
	int64_t		 next_due;	/* cadence, carried to the next worker */
	char		 last_exit[EXIT_TEXT_MAX];
	int		 last_failed;	/* last_exit was a failure */
	int		 went_ready;	/* a worker of it got through
					   work_init */
	unsigned	 tried_gen;	/* restart: replacement spawned for */
	/* Its health, from its making (a scale-down ends it): */
	uint64_t	 calls_done;	/* work() calls of its ended workers */
	uint64_t	 recycles;	/* workers that ended in order */
	uint64_t	 failures_total;/* workers that failed */
	struct exit_rec	*hist;		/* a ring of SLOT_HISTORY; NULL: none */
	uint64_t	 nhist;		/* exits recorded */
	uint64_t	 errors_done;	/* failed calls of its ended workers */
	struct hist	*times_done;	/* their call times; NULL: none yet */
	int64_t		 backoff_ns;	/* time spent waiting out backoffs */
	/* (time, calls_done) at exits a second or more apart: the pace of
	 * a slot whose workers live less than a second. */
	int64_t		 mark_ns[2];
	uint64_t	 mark_calls[2];
	int64_t		 backoff_since;	/* mono ns, while in one; 0 */
};

/* Is slot sl failing over and over? */
#define SLOT_CRASH_LOOP(sl)	((sl)->failures >= CRASH_LOOP_FAILS)

/* What the master learns when slots_exited() takes a worker's exit. */
struct worker_exit {
	int		 idx;		/* its (now free) cell */
	int		 slot;
	pid_t		 pid;
	unsigned	 gen;
	enum exit_class	 cls;
	char		 text[EXIT_TEXT_MAX];
};

struct slots {
	int		 epfd;		/* workers' output is watched here */
	struct scoreboard *sb;
	pid_t		 master;
	int		 ready_fd;	/* eventfd held workers ring */
	struct proc	*procs;		/* SB_CELLS of them */
	int		*free_cells;	/* stack of free proc indexes */
	int		*pidmap;	/* open addressing: pid -> cell + 1 */
	int		 nfree;
	int		 ncells;	/* cells ever used: loops stop here */
	int		 nlive;		/* procs with a pid */
	struct slot	*v;		/* cap of them */
	int		 cap;
	int		 n;		/* slots in use (>= target) */
	int		 target;	/* workers wanted */
	int		 respawn;	/* 0: stopping, or run once */
	int		 paused;	/* no spawner ready: respawns wait */
	int		 merged_streams;/* a worker's stdout and stderr share a
					   pipe: too few descriptors for two */
	int		 starting;	/* the master's start-up: every worker
					   says when it is through work_init */
	int		 stopping;	/* the master is stopping */
	unsigned	 release_gen;	/* held replacements of this generation
					   take over when their slot frees */
	unsigned	 stop_timeout;	/* s, for procs asked to stop */
	/* For the task's totals, which never go backwards: */
	uint64_t	 retired_calls;	/* of slots a scale-down removed */
	uint64_t	 retired_errors;
	struct hist	 retired_times;
	uint64_t	 exits_by[EXR_COUNT];	/* every exit, by reason */
};

/*
 * A slot's calls, failed calls and call times so far, its live workers'
 * included; *cur_calls (may be NULL): its current worker's, as read.
 */
void	slots_slot_stats(const struct slots *s, int i, uint64_t *calls,
	    uint64_t *errors, struct hist *h, uint64_t *cur_calls);

/* A slot's calls per second, in thousandths: its live worker's pace. */
long long slots_rate_mcps(const struct slots *s, int i, int64_t now);

/* The same summed over the task, removed slots included. */
void	slots_task_stats(const struct slots *s, uint64_t *calls,
	    uint64_t *errors, struct hist *h);

int	slots_init(struct slots *s, int epfd, struct scoreboard *sb,
	    int ready_fd, int target, unsigned stop_timeout);
void	slots_free(struct slots *s);

/* Starts a worker for slot i (held: a replacement); 0 or -1 (logged). */
int	slots_spawn(struct slots *s, int i, const struct spawn_ctx *ctx,
	    int hold);

/*
 * A worker the spawner started later (a preload's answer): its pid and
 * its output pipes, or -errno when it could not be started.
 */
void	slots_spawned(struct slots *s, int idx, pid_t pid, const int fds[2]);

/* Gives up the workers sp was to start (its preload process is gone). */
void	slots_abandon(struct slots *s, const struct spawner *sp);

/* Spawns workers for waiting slots that are due (all, if force). */
int	slots_respawn_due(struct slots *s, const struct spawn_ctx *ctx,
	    int64_t now, int force);

/* Asks proc idx to finish its call and exit within stopTimeout. */
void	slots_stop_proc(struct slots *s, int idx, int64_t now);

/* Asks every process to stop within stopTimeout; no respawns from now. */
void	slots_stop_all(struct slots *s, int64_t now);

/* Sets the target: surplus slots retire, returning ones wait. */
int	slots_resize(struct slots *s, int target, int64_t now);

/* A held replacement takes over its slot (its old worker is gone). */
void	slots_release(struct slots *s, int i);

/* The cell of a worker pid, or -1. */
int	slots_find_pid(const struct slots *s, pid_t pid);

/*
 * Takes the exit of the worker in cell idx (already reaped): classifies
 * it, logs it, frees the cell and plans its slot (respawn, backoff, or
 * nothing).  The exit is also described in *ex.
 */
void	slots_exited(struct slots *s, int idx, int wstatus, int64_t now,
	    struct worker_exit *ex);

/* Acts on every process deadline and workTimeout due by now. */
void	slots_run_deadlines(struct slots *s, const struct task_config *cfg,
	    int64_t now);

/* The nearest deadline of any slot or process; 0: none. */
int64_t	slots_next_deadline(const struct slots *s,
	    const struct task_config *cfg);

/* Is any slot wanting a worker without one and without a due time? */
int	slots_any_unattended(const struct slots *s);

/* Arms every unattended slot's respawn for now (the reconcile tick). */
void	slots_reconcile(struct slots *s, int64_t now);

/* Kills what is left besides workers: adopted orphans. */
void	slots_kill_strays(const struct slots *s);

/*
 * Reads what cell idx's worker wrote to stream (0 stdout, 1 stderr) and
 * logs it, a line at a time: stdout at info, stderr at warning, records
 * (pm_log, host messages) at their level.
 */
void	slots_output(struct slots *s, int idx, int stream);

/*
 * The master's start-up: 1 once every slot's worker is through
 * work_init (or has made its first call, or ended normally), 0 while one
 * is not yet, -1 with the failure in why when a slot's worker failed
 * before one got through work_init.
 */
int	slots_started(const struct slots *s, char *why, size_t size);

/* Moves replacements that finished work_init from preparing to held. */
void	slots_collect_ready(struct slots *s);

/* Has cell idx's worker finished work_init (and not failed since)? */
int	slots_proc_ready(const struct slots *s, int idx);

#endif
