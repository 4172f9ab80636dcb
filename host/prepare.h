/*
 * prepare.h - the one check of a task that every way of starting it goes
 * through: run (before a master exists), check, and restart (in the
 * command, and again in the master before it touches a worker).  It
 * settles the run dir, the log file, the user and group, and loads the
 * plugin in a throwaway child (its mark, its symbols, its work_check).
 */
#ifndef PMHOST_PREPARE_H
#define PMHOST_PREPARE_H

#include <limits.h>
#include <stddef.h>

#include "config.h"
#include "privs.h"
#include "rundir.h"

/* What the command line sets over the config (run's options). */
struct overrides {
	const char	*log_file;	/* absolute; NULL: the config's */
	int		 log_level;	/* PM_LOG_*; -1: the config's */
	int		 detached;	/* run -d: no log file means NAME.log */
	int		 log_format;	/* LOG_*; -1: the config's */
};

/* A task ready for a master: where its files go, as whom it runs. */
struct prepared {
	const struct task_config *task;
	char		 run_dir[RUNDIR_PATH_MAX];
	char		 log_path[PATH_MAX];	/* "": stderr */
	int		 log_level;
	struct creds	 creds;
	char		 warnings[2048];	/* strictPaths false: what it
						   let through, "; "-joined */	pid_t		 dead_master;	/* one died leaving its pid file */
};

enum prepare_flags {
	PREP_MAKE_RUNDIR = 1 << 0,	/* create the run dir if missing */
	PREP_PROBE	 = 1 << 1,	/* load the plugin in a child */
	PREP_NAME_TASK	 = 1 << 2	/* say "task NAME:" (a file of many) */
};

/*
 * Checks task t under the overrides ov (NULL: none).  0 with *p filled
 * (free it with prepared_free), or an exit status (EXIT_USAGE for the
 * config's faults, EXIT_RUNTIME for the machine's) with the reason in err.
 */
int	prepare_task(const struct task_config *t, const struct overrides *ov,
	    unsigned flags, struct prepared *p, char *err, size_t errlen);

/*
 * Loads and checks the plugins of n tasks prepared without PREP_PROBE:
 * one throwaway child for all the tasks that share a plugin file, a user
 * and limits (a config of many tasks loads its plugin once, not once per
 * task).  fail(arg, i, message) for each task refused, the message as
 * prepare_task() words it (flags: PREP_NAME_TASK); the number refused.
 */
size_t	prepare_probe(const struct prepared *ps, size_t n, unsigned flags,
	    void (*fail)(void *arg, size_t i, const char *message), void *arg);

void	prepared_free(struct prepared *p);

#endif
