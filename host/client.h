/*
 * client.h - what every command that talks to masters shares: its
 * targets (the tasks it names), finding a target's master by its locked
 * pid file, calling it over NAME.sock, and reading the answer's verdict.
 * Errors are printed (msg.h) where the context is known.
 */
#ifndef PMHOST_CLIENT_H
#define PMHOST_CLIENT_H

#include <sys/types.h>

#include "cli.h"
#include "config.h"
#include "names.h"
#include "proto.h"
#include "rundir.h"

#define REQUEST_TIMEOUT_MS	5000	/* status, wakeup, scale, stop */

/* A task a command names: where its files are and what it is called. */
struct target {
	char		 run_dir[RUNDIR_PATH_MAX];
	char		 title[TITLE_MAX + 1];
	const struct task_config *task;	/* from CONFIG, else NULL */
	pid_t		 pid;		/* when found running, or dead */
	int		 dead;		/* its master died, leaving its files */
	int		 pidfd;
};

struct targets {
	struct target	*v;
	size_t		 n;
	struct config	 cfg;		/* CONFIG's tasks, when given */
	int		 have_cfg;
};

/* Loads a config file, printing every problem; 0 or -1. */
int	load_config(const char *path, struct config *cfg);

/*
 * The targets named by --title, CONFIG, or (with neither) every pid file
 * of the run dir.  0, or an exit status after printing why.
 */
int	targets_collect(const struct cli *cli, struct targets *ts);
void	targets_free(struct targets *ts);

/*
 * Is t's master running?  1 (t->pid set), 0 (t->dead if one died leaving
 * its pid file), or -1 (printed).
 */
int	target_find(struct target *t);

/*
 * Sends req to t's master.  PROTO_OK with the reply in *reply;
 * PROTO_NO_MASTER; or PROTO_FAILED after printing why.
 */
enum proto_result target_call(const struct target *t, const char *req,
	    int timeout_ms, struct buf *reply, int *pidfd);

/* target_call() that prints nothing: PROTO_FAILED's reason is in err. */
enum proto_result target_try(const struct target *t, const char *req,
	    int timeout_ms, struct buf *reply, int *pidfd, char *err,
	    size_t errlen);

/*
 * The verdict on the answer's last non-empty line: 1 ok, 0 error; its
 * text, cut from the reply in place (the line's newline becomes a NUL).
 */
int	reply_ok(struct buf *reply, const char **text);

/*
 * Prints that t is not running, where it was looked for, and whether a
 * master died there without cleaning up.
 */
void	target_not_running(const struct target *t);

/* Prints a master's error answer for t. */
void	target_error(const struct target *t, const char *text);

#endif
