/*
 * restart.h - a restart in place (the restart command, SIGHUP) as a
 * rollout with named phases, advanced by restart_step().  restart.c owns
 * struct restart; it moves workers only through slots.h, and never
 * answers anyone: each call reports what happened in a struct
 * restart_result, and the master commits the new config or answers the
 * waiting client.
 */
#ifndef PMHOST_RESTART_H
#define PMHOST_RESTART_H

#include <stdint.h>
#include <sys/types.h>

#include "control.h"
#include "prepare.h"
#include "slots.h"

enum restart_phase {
	RS_IDLE,
	RS_PROBE,		/* the new plugin loads in a throwaway child */
	RS_PRELOAD,		/* the new preload process loads it */
	RS_CANARY,		/* one new worker runs work_init */
	RS_REPLACE		/* committed: old workers make way */
};

struct restart {
	enum restart_phase	 phase;
	struct reply_token	 token;		/* who waits for the result */
	struct task_config	 cfg;		/* the new config */
	struct prepared		 prep;		/* its check: creds, log */
	unsigned		 gen;		/* the new generation */
	pid_t			 probe_pid;
	int			 probe_fd;
	int64_t			 probe_deadline;
	int			 probe_late;	/* killed at probe_deadline */
	char			*title;		/* the new workers' title (the
						   master's storage) */
	struct spawner		*spawner;	/* the new workers' (the
						   master's spare) */
	int			 canary;	/* cell, -1 */
	int64_t			 started;
	const char		*cur_pinned;	/* the running config's copy */
};

enum restart_what {
	RR_NONE,		/* nothing for the master to do */
	RR_COMMIT,		/* the canary is ready: take the new config */
	RR_DONE			/* finished: answer token with ok and text */
};

struct restart_result {
	enum restart_what	 what;
	int			 ok;
	char			 text[1024];
	struct reply_token	 token;		/* RR_DONE: whom to answer */
};

void	restart_init(struct restart *r);

/*
 * Begins a restart of the running task cur (generation cur_gen, run dir
 * run_dir, command line ov): re-reads cur's config file, checks it,
 * starts the probe.  The new workers' title is written to title (of
 * PROC_TITLE_MAX bytes), which must outlive them; they are started by
 * spare (a new preload process when the config has "preload").
 */
void	restart_begin(struct restart *r, struct reply_token tok,
	    const struct task_config *cur, unsigned cur_gen,
	    const struct overrides *ov, const char *run_dir, char *title,
	    struct spawner *spare, struct restart_result *res);

/* Is pid this restart's probe? */
int	restart_owns(const struct restart *r, pid_t pid);

/* The probe was reaped with wstatus: starts the canary, or fails. */
void	restart_probe_exited(struct restart *r, struct slots *s, int wstatus,
	    struct restart_result *res);

/* The new preload process exited before the commit: the restart fails. */
void	restart_preload_exited(struct restart *r, const char *text,
	    struct restart_result *res);

/* A worker exited (the canary?). */
void	restart_worker_exited(struct restart *r, const struct worker_exit *ex,
	    struct restart_result *res);

/*
 * Advances the rollout: the probe's deadline, the canary's readiness,
 * and in the replace phase each slot's replacement.  ctx is the running
 * config once committed.
 */
void	restart_step(struct restart *r, struct slots *s,
	    const struct spawn_ctx *ctx, int64_t now,
	    struct restart_result *res);

/* Ends a restart in progress (the task is stopping). */
void	restart_cancel(struct restart *r, const char *why, unsigned gen,
	    struct restart_result *res);

/*
 * RR_COMMIT's duty: moves the new config into *cfg and *prep, lets held
 * replacements take over their slots; the new generation.
 */
unsigned restart_take(struct restart *r, struct slots *s,
	    struct task_config *cfg, struct prepared *prep);

int64_t	restart_next_deadline(const struct restart *r);

#endif
