/*
 * master.h - the master process of one task.  master.c owns struct master
 * and its one event loop; each part it holds is owned by its module and
 * touched only through that module's functions: the slots (slots.c), the
 * control socket (control.c), a restart in progress (restart.c), the
 * spawner (spawner.c).  serve.c answers control requests through the
 * functions declared at the end of this file and reads the state for
 * status.  All of it runs in one thread, inside one epoll_wait().
 */
#ifndef PMHOST_MASTER_H
#define PMHOST_MASTER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "control.h"
#include "prepare.h"
#include "restart.h"
#include "scoreboard.h"
#include "slots.h"
#include "spawner.h"
#include "title.h"

enum master_state {
	MASTER_STARTING,	/* first workers coming up */
	MASTER_RUNNING,
	MASTER_STOPPING		/* workers asked to exit; ends with them */
};

enum master_mode {
	MODE_RESIDENT,		/* checkWorkerInterval > 0: respawn */
	MODE_RUN_ONCE		/* <= 0: no respawn; done when all exited */
};

struct master {
	enum master_state	 state;
	enum master_mode	 mode;
	struct task_config	 cfg;		/* the running config */
	struct prepared		 prep;		/* its check: creds, log */
	struct overrides	 ov;		/* the command line's */
	char			 ov_log_file[PATH_MAX];
	unsigned		 gen;		/* config generation */
	char			 run_dir[RUNDIR_PATH_MAX];
	char			 title[PROC_TITLE_MAX];
	char			 wtitle[2][PROC_TITLE_MAX]; /* by gen & 1 */
	int			 pid_fd;
	int			 epfd;
	int			 sigfd;
	int			 ready_fd;	/* eventfd workers ring */
	int			 caller_fd;	/* run -d: tell it; -1 */
	int			 log_watched;	/* the log fd in epoll; -1 */
	int			 any_failed;	/* run once: exit status 1 */
	/*
	 * Children reaped before their spawner named them: a worker that
	 * died at once may be reaped before the reply with its pid.
	 */
	struct {
		pid_t		 pid;
		int		 wstatus;
	}			 early[64];
	unsigned		 nearly;
	int			 startup_failed;/* run -d heard why: status 1 */
	int64_t			 stop_deadline;
	int64_t			 tick_at;	/* reconcile tick; 0: off */
	int64_t			 notify_at;	/* next WATCHDOG=1; 0: none */
	int64_t			 started_real;
	struct scoreboard	*sb;
	struct spawner		 spawners[2];	/* the workers', a restart's */
	int			 cur;		/* which is the workers' */
	int			 spawned;	/* first workers asked for */
	int			 start_next;	/* the next of them to ask for */
	/* The scans of every slot: at most SCAN_BURST per SCAN_WINDOW_NS. */
	int64_t			 scan_window;	/* mono ns it began */
	int			 scans;		/* in it */
	int			 scanned;	/* this turn did them */
	int64_t			 slots_next;	/* their deadline, as last seen */
	struct slots		 slots;
	struct control		 ctl;
	struct restart		 rs;
};

/*
 * Runs a master for the prepared task p until it stops; the exit status
 * for the process.  The caller holds the pid file (pid_fd) in p->run_dir
 * and has opened the log; caller_fd (or -1) hears "ok" once the workers
 * are up.  ov is what the command line set over the config.
 */
int	master_run(const struct prepared *p, const struct overrides *ov,
	    int pid_fd, int caller_fd);

/*
 * The signals a master reads from its signalfd (TERM INT HUP USR1 TTIN
 * TTOU ALRM CHLD); blocked from before its pid file exists, and what a
 * foreground group's parent relays.
 */
void	master_signal_set(sigset_t *set);

/* What serve.c may ask of the master; each logs what it did. */
void	master_stop(struct master *m, const char *why);
int	master_scale(struct master *m, int target, const char *why,
	    char *msg, size_t size);
int	master_wakeup(struct master *m, const char *why);
/* 0 (answered later through tok), or -1 with the refusal in msg. */
int	master_restart(struct master *m, struct reply_token tok,
	    const char *why, char *msg, size_t size);

#endif
