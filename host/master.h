/*
 * master.h - the master process of one task: its state, shared by the
 * files that make up the master (master.c: the event loop and lifecycle;
 * slots.c: the slot table and respawns; control.c: the control socket).
 * All of it runs in one thread, inside one epoll_wait().
 */
#ifndef PMHOST_MASTER_H
#define PMHOST_MASTER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "privs.h"
#include "proto.h"
#include "rundir.h"
#include "scoreboard.h"
#include "title.h"
#include "util.h"

#define EXIT_TEXT_MAX	192
#define CTL_MAX_CLIENTS	64
#define CTL_CLIENT_NS	(10 * NS_PER_SEC)	/* a request's whole budget */
#define INIT_TIMEOUT_NS	(60 * NS_PER_SEC)	/* a held worker's work_init */
#define TIMEOUT_GRACE_NS (1 * NS_PER_SEC)	/* workTimeout: TERM, then KILL */

/* What an epoll event is about: tag in the high half, index in the low. */
enum ev_tag {
	EV_SIGNAL,
	EV_LISTEN,
	EV_CLIENT,
	EV_HELD
};
#define EV_DATA(tag, i)	(((uint64_t)(tag) << 32) | (uint32_t)(i))

/* A live worker process; its index is its scoreboard cell. */
struct proc {
	pid_t		 pid;		/* 0: the cell is free */
	int		 slot;
	unsigned	 gen;		/* config generation it runs */
	int64_t		 started;	/* mono ns */
	int64_t		 started_real;	/* wall ns, for status */
	int		 retiring;	/* asked to exit; not respawned */
	int		 held;		/* replacement waiting for its slot */
	int64_t		 kill_at;	/* mono ns to SIGKILL it; 0: none */
	int64_t		 expire_at;	/* mono ns to look at its lifetime; 0 */
	int64_t		 lifetime;	/* limitSeconds in ns; 0: none */
	int		 hot;		/* executeUSleep 0: calls untimed */
	int		 stop_killed;	/* SIGKILLed at the stop deadline */
	int		 timed_out;	/* ended for workTimeout */
	int64_t		 timeout_call_ns;
	uint64_t	 watch_calls;	/* workTimeout: calls when last seen */
	int64_t		 watch_since;	/* mono ns that count was first seen */
};

/* A worker position: its index is what pm_worker_slot() returns. */
struct slot {
	int		 cur;		/* proc running it, -1: none */
	int		 next;		/* its replacement in a rollout, -1 */
	int64_t		 respawn_at;	/* mono ns of a pending respawn; 0 */
	unsigned	 failures;	/* failed exits in a row */
	uint64_t	 restarts;	/* respawns so far */
	int64_t		 next_due;	/* carried to the next worker's cell */
	char		 last_exit[EXIT_TEXT_MAX];
	int		 last_failed;	/* last_exit was a failure */
	unsigned	 tried_gen;	/* rollout: replacement spawned for */
};

/* A control socket connection. */
struct client {
	int		 fd;		/* -1: free */
	char		*in;		/* PROTO_REQUEST_MAX bytes, while open */
	size_t		 inlen;
	struct buf	 out;
	size_t		 outoff;
	int64_t		 deadline;	/* mono ns; 0 while a reload runs */
	int		 replying;	/* request taken; out is the answer */
};

enum rollout_phase {
	RO_IDLE,
	RO_PROBE,		/* the new plugin loads in a throwaway child */
	RO_CANARY,		/* one new worker runs work_init */
	RO_REPLACE		/* committed: old workers make way */
};

/* A restart in progress (restart command or SIGHUP). */
struct rollout {
	enum rollout_phase	 phase;
	int			 client;	/* waiting client, -1 */
	struct task_config	 cfg;		/* the new config */
	struct creds		 creds;
	unsigned		 gen;
	pid_t			 probe_pid;
	int			 probe_fd;
	int64_t			 probe_deadline;
	int			 canary;	/* proc index */
	int64_t			 started;
};

enum master_state {
	MASTER_RUNNING,
	MASTER_STOPPING
};

struct master {
	struct task_config	 cfg;
	struct creds		 creds;
	unsigned		 gen;
	char			 run_dir[RUNDIR_PATH_MAX];
	char			 title[PROC_TITLE_MAX];
	int			 pid_fd;
	int			 epfd;
	int			 sigfd;
	int			 ready_fd;	/* run -d: tell the caller; -1 */
	struct scoreboard	*sb;
	struct proc		*procs;		/* SB_CELLS of them */
	int			*free_cells;	/* stack of free proc indexes */
	int			 nfree;
	int			 ncells;	/* cells ever used: loops stop here */
	int			 nlive;		/* procs with a pid */
	struct slot		*slots;		/* slots_cap of them */
	int			 slots_cap;
	int			 nslots;	/* slots in use (>= target) */
	int			 target;	/* workers wanted */
	enum master_state	 state;
	int			 run_once;	/* checkWorkerInterval <= 0 */
	int			 any_failed;	/* run once: exit status 1 */
	int64_t			 stop_deadline;
	int64_t			 tick_at;	/* next checkWorkerInterval */
	int64_t			 started_real;
	int			 listen_fd;	/* NAME.sock */
	char			 sock_path[RUNDIR_PATH_MAX];
	struct client		 clients[CTL_MAX_CLIENTS];
	int			 held_fd;	/* eventfd held workers ring */
	int64_t			 watch_at;	/* next workTimeout check; 0 */
	int64_t			 notify_at;	/* next WATCHDOG=1; 0: none */
	struct rollout		 ro;
};

/*
 * Runs a master for cfg until it stops; the exit status for the process.
 * The caller holds the pid file (pid_fd) in run_dir; ready_fd (or -1)
 * receives "ok" once the first workers are up.
 */
int	master_run(const struct task_config *cfg, const struct creds *creds,
	    const char *run_dir, int pid_fd, int ready_fd);

/* master.c */
/*
 * The signals a master reads from its signalfd (TERM INT HUP USR1 TTIN
 * TTOU ALRM CHLD); blocked from before its pid file exists, and what a
 * foreground group's parent relays.
 */
void	master_signal_set(sigset_t *set);
void	master_begin_stop(struct master *m, const char *why);
int	master_scale(struct master *m, int target, const char *why,
	    char *msg, size_t size);
int	master_wakeup(struct master *m, const char *why);
void	master_notify_status(struct master *m, const char *state);

/* slots.c */
int	slots_init(struct master *m);
void	slots_free(struct master *m);
int	slots_spawn(struct master *m, int slot, const struct task_config *cfg,
	    const struct creds *creds, unsigned gen, int hold);
void	slots_promote(struct master *m, int slot);
void	slots_retire(struct master *m, int idx, int64_t now);
void	slots_reap(struct master *m);
void	slots_respawn_due(struct master *m, int64_t now, int skip_backoff);
int	slots_resize(struct master *m, int target);
void	slots_request_exit(struct master *m, int idx);
void	slots_kill_overdue(struct master *m, int64_t now);
int64_t	slots_next_deadline(const struct master *m);
void	slots_watchdog(struct master *m, int64_t now);
void	slots_kill_strays(struct master *m);

/* control.c */
int	control_open(struct master *m);
void	control_close(struct master *m);
void	control_accept(struct master *m);
void	control_event(struct master *m, int i, uint32_t events);
void	control_expire(struct master *m, int64_t now);
int64_t	control_next_deadline(const struct master *m);
void	control_reply(struct master *m, int i, int ok, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* reload.c */
void	reload_begin(struct master *m, int client, const char *why);
void	reload_cancel(struct master *m, const char *why);
void	reload_held(struct master *m);
void	reload_probe_exited(struct master *m, int wstatus);
void	reload_worker_exited(struct master *m, int idx, const char *text);
void	reload_step(struct master *m, int64_t now);
int64_t	reload_next_deadline(const struct master *m);

#endif
