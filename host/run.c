/*
 * run.c - the commands that start masters (run, in the foreground,
 * detached, or one per task of a file) and the one that only checks
 * (check).  Everything that can be refused is refused here, before a
 * master exists: config errors, the run dir, the log, the user, a plugin
 * that does not load (probed in a throwaway child), a title already
 * running.  The tasks of one file start together or not at all: their
 * run dirs are locked for the start, and a failure stops what started.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "log.h"
#include "master.h"
#include "msg.h"
#include "pin.h"
#include "notify.h"
#include "plugin.h"
#include "prepare.h"
#include "run.h"
#include "util.h"

#define READY_TIMEOUT_S		60	/* run -d: the master's start-up */
#define ABANDON_GRACE_NS	(5 * NS_PER_SEC) /* a start-up given up */
#define FAILED_STOP_MARGIN_S	10	/* a failed start-up's stop, beyond
					   its stopTimeout */

/* The signal mask the command was started with (restored in masters). */
static sigset_t caller_mask;

/* Blocks the master's signals: a stop may come once a pid file exists. */
static void
block_master_signals(void)
{
	sigset_t set;

	master_signal_set(&set);
	sigprocmask(SIG_BLOCK, &set, &caller_mask);
}

/*
 * In a process about to become a master: the caller's signal mask, with
 * the master's signals still blocked so that a stop during start-up is
 * read by the loop once it runs.
 */
static void
restore_caller_mask(void)
{
	sigset_t set;

	master_signal_set(&set);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&caller_mask, s))
			sigaddset(&set, s);
	sigprocmask(SIG_SETMASK, &set, NULL);
}

/* An absolute version of a command-line path (relative to the cwd). */
static int
absolute_path(const char *path, char *buf, size_t size)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/')
		n = snprintf(buf, size, "%s", path);
	else if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	else
		n = snprintf(buf, size, "%s/%s", cwd, path);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/*
 * The command line's overrides: --log-file made absolute (the master's
 * cwd is "/"), --log-level, -d.  0, or an exit status after printing why.
 */
static int
cli_overrides(const struct cli *cli, struct overrides *ov, char *buf,
    size_t size)
{
	memset(ov, 0, sizeof(*ov));
	ov->log_level = cli->log_level;
	ov->log_format = cli->log_format;
	ov->detached = cli->daemon;
	if (cli->log_file != NULL) {
		if (absolute_path(cli->log_file, buf, size) < 0) {
			errmsg("--log-file %s: path too long", cli->log_file);
			return EXIT_USAGE;
		}
		ov->log_file = buf;
	}
	return 0;
}

/* The uid a task's log file may belong to besides root's. */
static uid_t
task_uid(const struct prepared *p)
{
	return p->creds.set ? p->creds.uid : (uid_t)-1;
}

/* Prints a probe's refusal of one task (prepare_probe's fail). */
static void
print_refusal(void *arg, size_t i, const char *message)
{
	(void)arg;
	(void)i;
	errmsg("%s", message);
}

/*
 * The one check of every task of a file: each prepared (run dir made,
 * log, user), then the plugins probed, one child per plugin.  0, or the
 * worst exit status after printing every problem.
 */
static int
check_tasks(struct config *cfg, const struct overrides *ov,
    unsigned flags, struct prepared *ps, size_t *nready)
{
	char err[PLUGIN_ERR_MAX + 512];
	int r = 0, ri;

	*nready = 0;
	for (size_t i = 0; i < cfg->ntasks; i++) {
		if ((ri = prepare_task(&cfg->tasks[i], ov, flags, &ps[*nready],
		    err, sizeof(err))) != 0) {
			errmsg("%s", err);
			if (ri > r)
				r = ri;
			continue;
		}
		/* To run: what is checked is the copy the workers load. */
		if ((flags & PREP_MAKE_RUNDIR) && (ri = pin_plugin(
		    &cfg->tasks[i], ps[*nready].run_dir, err,
		    sizeof(err))) < 0) {
			errmsg("%s: plugin: %s", cfg->tasks[i].config_path,
			    err);
			prepared_free(&ps[*nready]);
			ri = ri == PIN_BAD_PLUGIN ? EXIT_USAGE : EXIT_RUNTIME;
			if (ri > r)
				r = ri;
			continue;
		}
		(*nready)++;
	}
	if (r == 0 && prepare_probe(ps, *nready, cfg->ntasks > 1 ?
	    PREP_NAME_TASK : 0, print_refusal, NULL) > 0)
		r = EXIT_USAGE;
	return r;
}

/*
 * Serialises starts in the run dirs of n tasks: a lock on each distinct
 * run dir's ".start.lock", so that two `run` of one file cannot split its
 * tasks between them.  The descriptors go to locks[] (-1 for repeats).
 */
static int
lock_run_dirs(const struct prepared *ps, size_t n, int *locks)
{
	char path[RUNDIR_PATH_MAX + 16];

	for (size_t i = 0; i < n; i++) {
		locks[i] = -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(ps[i].run_dir, ps[j].run_dir) == 0)
				goto next;
		snprintf(path, sizeof(path), "%s/.start.lock", ps[i].run_dir);
		locks[i] = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW | O_NOCTTY, 0600);
		if (locks[i] < 0) {
			errmsg("%s: %s", path, strerror(errno));
			return -1;
		}
		/* Another run's start-up is bounded: wait it out. */
		while (flock(locks[i], LOCK_EX) < 0 && errno == EINTR)
			;
next:		;
	}
	return 0;
}

static void
unlock_run_dirs(int *locks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (locks[i] >= 0)
			close(locks[i]);
}

/* Refuses to start when any task of the file already runs. */
static int
none_running(const struct prepared *ps, size_t n)
{
	char err[512];
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		pid_t pid = 0;
		int found = pidfile_probe(ps[i].run_dir, ps[i].task->base_title,
		    &pid, err, sizeof(err));

		if (found == 1) {
			if (pid > 0)
				errmsg("%s: already running (pid %ld)",
				    ps[i].task->base_title, (long)pid);
			else
				errmsg("%s: already running",
				    ps[i].task->base_title);
			r = EXIT_RUNTIME;
		} else if (found < 0) {
			errmsg("%s: %s", ps[i].task->base_title, err);
			r = EXIT_RUNTIME;
		}
	}
	return r;
}

/*
 * Takes the task's pid file; 0, or an exit status with why in msg.  The
 * pid of a master that died without cleaning up is kept for its log.
 */
static int
take_pidfile(struct prepared *p, int *fd, char *msg, size_t size)
{
	char err[512];
	pid_t holder = 0;
	int r;

	r = pidfile_acquire(p->run_dir, p->task->base_title, fd, &holder, err,
	    sizeof(err));
	if (r == 1) {
		if (holder > 0)
			snprintf(msg, size, "%s: already running (pid %ld)",
			    p->task->base_title, (long)holder);
		else
			snprintf(msg, size, "%s: already running",
			    p->task->base_title);
		return EXIT_RUNTIME;
	}
	if (r < 0) {
		snprintf(msg, size, "%s: %s", p->task->base_title, err);
		return EXIT_RUNTIME;
	}
	p->dead_master = holder;
	return 0;
}

/* Opens the task's log, as the master will write it; 0 or exit status. */
static int
open_log(const struct prepared *p, char *msg, size_t size)
{
	char err[PATH_MAX + 256];

	log_setup(p->log_level, "pmhost");
	/* stderr too: a descriptor of our own that never blocks. */
	if (log_open(p->log_path[0] != '\0' ? p->log_path : NULL,
	    task_uid(p), err, sizeof(err)) < 0) {
		snprintf(msg, size, "%s: log file: %s", p->task->base_title,
		    err);
		return EXIT_USAGE;
	}
	return 0;
}

/*
 * The foreground master for one task, in this process: logs to stderr
 * unless told not to.  ready_fd (or -1) hears "ok" once it is up.
 */
static int
run_foreground(struct prepared *p, const struct overrides *ov, int ready_fd)
{
	char msg[PATH_MAX + 600];
	int fd, r;

	if ((r = take_pidfile(p, &fd, msg, sizeof(msg))) != 0) {
		errmsg("%s", msg);
		return r;
	}
	if ((r = open_log(p, msg, sizeof(msg))) != 0) {
		pidfile_release(p->run_dir, p->task->base_title, fd);
		errmsg("%s", msg);
		return r;
	}
	return master_run(p, ov, fd, ready_fd);
}

/*
 * The detached master's side, after the second fork: only the report
 * pipe kept of the caller's descriptors; the pid file, the log (stdio
 * follows it), then the master.  Reports "pid N" first, then failures as
 * "CODE message"; the master itself says "ok" once ready.
 */
static _Noreturn void
daemon_child(struct prepared *p, const struct overrides *ov, int fd)
{
	char msg[PATH_MAX + 800];
	int pidfd = -1, nullfd, r;

	close_fds_except(&fd, 1);
	if (chdir("/") < 0) {
		/* Nothing relies on the cwd: every config path is absolute. */
	}
	/* A detached master is not the service manager's main process. */
	unsetenv("NOTIFY_SOCKET");
	snprintf(msg, sizeof(msg), "pid %ld\n", (long)getpid());
	(void)write_all(fd, msg, strlen(msg));
	if ((r = take_pidfile(p, &pidfd, msg + 2, sizeof(msg) - 2)) != 0 ||
	    (r = open_log(p, msg + 2, sizeof(msg) - 2)) != 0) {
		msg[0] = (char)('0' + r);
		msg[1] = ' ';
		(void)write_all(fd, msg, strlen(msg));
		if (pidfd >= 0)
			pidfile_release(p->run_dir, p->task->base_title, pidfd);
		_exit(r);
	}
	/* A crash report of ours lands in the log too. */
	log_own_stdio();
	if ((nullfd = open("/dev/null", O_RDONLY | O_NOCTTY)) >= 0) {
		dup2(nullfd, 0);
		if (nullfd != 0)
			close(nullfd);
	}
	restore_caller_mask();
	_exit(master_run(p, ov, pidfd, fd));
}

/* What a detached start-up reported: its master's pid and its verdict. */
struct startup {
	pid_t	 pid;			/* the master, 0: unknown */
	char	 said[800];
	size_t	 len;
};

/*
 * Waits for a detached master's verdict: until "ok", a failure, EOF, the
 * deadline, or SIGINT/SIGTERM/SIGHUP to this command.  0 when it is up;
 * otherwise what went wrong is in st->said and -1 is returned (1: the
 * wait was cut short: deadline or signal).
 */
static int
await_startup(int fd, int timeout_s, struct startup *st)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_s * NS_PER_SEC;
	struct pollfd pfd[2];
	sigset_t stops;
	int sfd;

	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGHUP);
	sigprocmask(SIG_BLOCK, &stops, NULL);
	sfd = signalfd(-1, &stops, SFD_CLOEXEC | SFD_NONBLOCK);
	pfd[0].fd = fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		int64_t left = deadline - mono_ns();
		char *nl;
		ssize_t n;

		st->said[st->len] = '\0';
		if (st->pid == 0 && (nl = strchr(st->said, '\n')) != NULL &&
		    strncmp(st->said, "pid ", 4) == 0) {
			st->pid = (pid_t)strtol(st->said + 4, NULL, 10);
			st->len -= (size_t)(nl + 1 - st->said);
			memmove(st->said, nl + 1, st->len + 1);
		}
		if (left <= 0) {
			snprintf(st->said, sizeof(st->said), "not ready within "
			    "%d s", timeout_s);
			break;
		}
		if (poll(pfd, 2, (int)(left / NS_PER_MS) + 1) < 0 &&
		    errno != EINTR)
			break;
		if (pfd[1].revents) {
			snprintf(st->said, sizeof(st->said), "start-up "
			    "interrupted by a signal");
			break;
		}
		if (!pfd[0].revents)
			continue;
		n = read(fd, st->said + st->len, sizeof(st->said) - 1 -
		    st->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			st->said[st->len] = '\0';
			if (sfd >= 0)
				close(sfd);
			return strncmp(st->said, "ok", 2) == 0 ? 0 : -1;
		}
		st->len += (size_t)n;
		st->said[st->len] = '\0';
		if (strncmp(st->said, "ok", 2) == 0) {
			if (sfd >= 0)
				close(sfd);
			return 0;
		}
	}
	if (sfd >= 0)
		close(sfd);
	return 1;
}

/* Waits up to ns for pid to be gone (a pidfd); 1 if it is. */
static int
wait_gone(pid_t pid, int64_t ns)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), r;
	struct pollfd p;

	if (fd < 0)
		return errno == ESRCH;
	p.fd = fd;
	p.events = POLLIN;
	r = poll(&p, 1, (int)(ns / NS_PER_MS));
	close(fd);
	return r == 1;
}

/* Ends a master whose start we gave up on: TERM, then KILL. */
static void
abandon(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	if (!wait_gone(pid, ABANDON_GRACE_NS))
		kill(pid, SIGKILL);
}

/*
 * run -d for one task: detaches a master (setsid, second fork) and waits
 * until it says it is up, fails, or misses the deadline.  The exit
 * status; *pid is the master's (0 if none is left running).
 */
static int
run_detached(struct prepared *p, const struct overrides *ov, int timeout_s,
    pid_t *pid)
{
	struct startup st;
	int pfd[2], wstatus, r;
	pid_t child;

	*pid = 0;
	memset(&st, 0, sizeof(st));
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		errmsg("%s: pipe: %s", p->task->base_title, strerror(errno));
		return EXIT_RUNTIME;
	}
	fflush(NULL);
	if ((child = fork()) < 0) {
		errmsg("%s: fork: %s", p->task->base_title, strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return EXIT_RUNTIME;
	}
	if (child == 0) {
		close(pfd[0]);
		setsid();
		/* Not a session leader: it can never regain a terminal. */
		if ((child = fork()) != 0)
			_exit(child < 0 ? EXIT_RUNTIME : 0);
		daemon_child(p, ov, pfd[1]);
	}
	close(pfd[1]);
	while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR)
		;
	r = await_startup(pfd[0], timeout_s, &st);
	close(pfd[0]);
	if (r == 0) {
		*pid = st.pid;
		say("%s: started (pid %ld, %d worker%s; log %s)",
		    p->task->base_title, (long)st.pid, p->task->max_workers,
		    p->task->max_workers == 1 ? "" : "s", p->log_path);
		return EXIT_OK;
	}
	if (r == 1) {
		abandon(st.pid);
		errmsg("%s: %s; the master was stopped (see %s)",
		    p->task->base_title, st.said, p->log_path[0] != '\0' ?
		    p->log_path : "its log");
		return EXIT_RUNTIME;
	}
	if (st.len > 2 && st.said[0] >= '1' && st.said[0] <= '2' &&
	    st.said[1] == ' ') {
		st.said[strcspn(st.said, "\n")] = '\0';
		errmsg("%s", st.said + 2);
		/* It stops what it started: return once that is done. */
		if (st.pid > 0 && !wait_gone(st.pid, ((int64_t)
		    p->task->stop_timeout + FAILED_STOP_MARGIN_S) * NS_PER_SEC))
			kill(st.pid, SIGKILL);
		return st.said[0] - '0';
	}
	errmsg("%s: master exited during startup (see %s)",
	    p->task->base_title, p->log_path[0] != '\0' ? p->log_path :
	    "its log in the run dir");
	return EXIT_RUNTIME;
}

/*
 * Detaches a master for each task; if one fails, the ones already up are
 * stopped, so a file's tasks run all or none.  The exit status.
 */
static int
detach_all(struct prepared *ps, size_t n, const struct overrides *ov,
    int timeout_s)
{
	pid_t *pids = calloc(n, sizeof(*pids));
	int r = 0;
	size_t i;

	if (pids == NULL) {
		errmsg("out of memory");
		return EXIT_RUNTIME;
	}
	for (i = 0; i < n && r == 0; i++)
		r = run_detached(&ps[i], ov, timeout_s, &pids[i]);
	if (r != 0 && i > 1) {
		for (size_t k = 0; k + 1 < i; k++)
			kill(pids[k], SIGTERM);
		for (size_t k = 0; k + 1 < i; k++)
			if (pids[k] > 0 && !wait_gone(pids[k],
			    ((int64_t)ps[k].task->stop_timeout + 10) *
			    NS_PER_SEC))
				kill(pids[k], SIGKILL);
		errmsg("stopped the %zu task%s of %s already started: a "
		    "file's tasks run all or none", i - 1,
		    i - 1 == 1 ? "" : "s", ps[0].task->config_path);
	}
	free(pids);
	return r;
}

int
start_detached(const struct task_config *t)
{
	struct overrides ov = { NULL, -1, 1, -1 };
	struct task_config tc;
	struct prepared p;
	char err[PLUGIN_ERR_MAX + 512], why[PLUGIN_ERR_MAX];
	pid_t pid;
	int r;

	block_master_signals();
	if (task_config_copy(&tc, t) < 0) {
		errmsg("out of memory");
		return EXIT_RUNTIME;
	}
	if ((r = prepare_task(&tc, &ov, PREP_MAKE_RUNDIR, &p, err,
	    sizeof(err))) != 0) {
		errmsg("%s", err);
		task_config_free(&tc);
		return r;
	}
	if ((r = pin_plugin(&tc, p.run_dir, why, sizeof(why))) < 0) {
		errmsg("%s: plugin: %s", tc.config_path, why);
		r = r == PIN_BAD_PLUGIN ? EXIT_USAGE : EXIT_RUNTIME;
	} else if (plugin_probe(&tc, &p.creds, why, sizeof(why)) < 0) {
		errmsg("%s: plugin: %s", tc.config_path, why);
		r = EXIT_USAGE;
	} else {
		r = run_detached(&p, &ov, READY_TIMEOUT_S, &pid);
	}
	prepared_free(&p);
	task_config_free(&tc);
	return r;
}

/* A group's master: its pid, and whether it said it is up. */
struct member {
	pid_t	pid;		/* 0: gone */
	int	ready;
};

/*
 * Forks the master of one task of a group.  It keeps nothing of ours but
 * the shared pipe it says "ok" through; 0, or -1 after printing why.
 */
static int
start_member(struct prepared *p, const struct overrides *ov, int ready_fd,
    struct member *mb)
{
	memset(mb, 0, sizeof(*mb));
	fflush(NULL);
	if ((mb->pid = fork()) < 0) {
		errmsg("%s: fork: %s", p->task->base_title, strerror(errno));
		mb->pid = 0;
		return -1;
	}
	if (mb->pid == 0) {
		close_fds_except(&ready_fd, 1);
		/* A master ends with the command that runs it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(EXIT_RUNTIME);
		restore_caller_mask();
		_exit(run_foreground(p, ov, ready_fd));
	}
	return 0;
}

/* Reaps exited members; the worst exit status seen so far. */
static int
reap_members(struct member *mbs, size_t n, size_t *live, size_t *waiting,
    int status)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) :
		    EXIT_RUNTIME;

		for (size_t i = 0; i < n; i++)
			if (mbs[i].pid == pid) {
				mbs[i].pid = 0;
				(*live)--;
				if (!mbs[i].ready)
					(*waiting)--;
			}
		if (code > status)
			status = code;
	}
	return status;
}

/* Takes the "ok PID" lines members wrote to the shared pipe. */
static void
read_ready(int fd, struct member *mbs, size_t n, size_t *waiting)
{
	static char pending[64];
	static size_t plen;
	char buf[4096];
	ssize_t got;

	while ((got = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t k = 0; k < got; k++) {
			pid_t pid;

			if (buf[k] != '\n') {
				if (plen < sizeof(pending) - 1)
					pending[plen++] = buf[k];
				continue;
			}
			pending[plen] = '\0';
			plen = 0;
			if (strncmp(pending, "ok ", 3) != 0)
				continue;
			pid = (pid_t)strtol(pending + 3, NULL, 10);
			for (size_t i = 0; i < n; i++)
				if (mbs[i].pid == pid && !mbs[i].ready) {
					mbs[i].ready = 1;
					(*waiting)--;
				}
		}
	}
}

/*
 * Several tasks in the foreground: one master per task, each a child of
 * this process, which is the service manager's main process: it relays
 * signals to the masters, speaks the notify protocol for the group (READY
 * once every master is up or gone, STOPPING, WATCHDOG), and exits when all
 * have, with the worst of their statuses.  It holds a few descriptors
 * whatever the number of tasks.
 */
static int
run_group(struct prepared *ps, const struct overrides *ov, size_t n)
{
	struct member *mbs = calloc(n, sizeof(*mbs));
	size_t live = 0, waiting = 0;
	int64_t ping = 0;
	int sigfd, rfd[2], status = EXIT_OK, told = 0;
	sigset_t set;

	if (mbs == NULL || pipe2(rfd, O_CLOEXEC) < 0) {
		errmsg("out of memory or descriptors");
		free(mbs);
		return EXIT_RUNTIME;
	}
	fcntl(rfd[0], F_SETFL, O_NONBLOCK);
	/* The masters must not take the notify socket for their own. */
	notify_init();
	master_signal_set(&set);
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		if (start_member(&ps[i], ov, rfd[1], &mbs[i]) < 0) {
			status = EXIT_RUNTIME;
			break;
		}
		live++;
		waiting++;
	}
	close(rfd[1]);
	if (status != EXIT_OK) {
		/* All or none: what started goes. */
		for (size_t i = 0; i < n; i++)
			if (mbs[i].pid > 0)
				kill(mbs[i].pid, SIGTERM);
	}
	if (notify_watchdog_ns() > 0)
		ping = mono_ns() + notify_watchdog_ns();
	while (live > 0) {
		struct pollfd pfds[2] = {
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = rfd[0], .events = POLLIN },
		};
		struct signalfd_siginfo si;
		int ms = -1;

		if (ping != 0) {
			int64_t left = ping - mono_ns();

			ms = left > 0 ? (int)((left + NS_PER_MS - 1) /
			    NS_PER_MS) : 0;
		}
		if (poll(pfds, 2, ms) < 0 && errno != EINTR)
			break;
		if (ping != 0 && mono_ns() >= ping) {
			notify_send("WATCHDOG=1");
			ping = mono_ns() + notify_watchdog_ns();
		}
		read_ready(rfd[0], mbs, n, &waiting);
		while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGCHLD) {
				status = reap_members(mbs, n, &live, &waiting,
				    status);
				continue;
			}
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				notify_send("STOPPING=1");
			for (size_t i = 0; i < n; i++)
				if (mbs[i].pid > 0)
					kill(mbs[i].pid, (int)si.ssi_signo);
		}
		if (waiting == 0 && !told) {
			told = 1;
			notify_send("READY=1\nSTATUS=%zu of %zu tasks running",
			    live, n);
		}
	}
	close(rfd[0]);
	if (sigfd >= 0)
		close(sigfd);
	free(mbs);
	return status;
}

int
cmd_run(const struct cli *cli)
{
	char log_file[PATH_MAX];
	struct overrides ov;
	struct prepared *ps;
	struct config cfg;
	size_t nready = 0;
	int r = 0, *locks;

	block_master_signals();
	if ((r = cli_overrides(cli, &ov, log_file, sizeof(log_file))) != 0)
		return r;
	if (load_config(cli->config, &cfg) < 0)
		return EXIT_USAGE;
	ps = calloc(cfg.ntasks, sizeof(*ps));
	locks = calloc(cfg.ntasks, sizeof(*locks));
	if (ps == NULL || locks == NULL) {
		errmsg("out of memory");
		free(ps);
		free(locks);
		config_free(&cfg);
		return EXIT_RUNTIME;
	}
	/* Nothing starts unless every task can. */
	r = check_tasks(&cfg, &ov, PREP_MAKE_RUNDIR, ps, &nready);
	if (r == 0 && lock_run_dirs(ps, nready, locks) < 0)
		r = EXIT_RUNTIME;
	if (r == 0)
		r = none_running(ps, nready);
	if (r == 0 && cli->daemon) {
		r = detach_all(ps, nready, &ov, cli->timeout >= 0 ?
		    (int)cli->timeout : READY_TIMEOUT_S);
		unlock_run_dirs(locks, nready);
	} else if (r == 0) {
		/* The masters hold their pid files from here on. */
		unlock_run_dirs(locks, nready);
		r = nready == 1 ? run_foreground(&ps[0], &ov, -1) :
		    run_group(ps, &ov, nready);
	} else {
		unlock_run_dirs(locks, nready);
	}
	for (size_t i = 0; i < nready; i++)
		prepared_free(&ps[i]);
	free(ps);
	free(locks);
	config_free(&cfg);
	return r;
}

/* What check says of a task that passed: as whom, with what limits. */
static void
describe(const struct prepared *p)
{
	const struct task_config *t = p->task;
	char who[128], limits[256] = "";
	size_t n = 0;

	if (p->creds.set)
		snprintf(who, sizeof(who), "%s (uid %ld, gid %ld)",
		    p->creds.name[0] != '\0' ? p->creds.name : "user",
		    (long)p->creds.uid, (long)p->creds.gid);
	else
		snprintf(who, sizeof(who), "uid %ld, as pmhost runs",
		    (long)geteuid());
	for (int i = 0; i < LIMIT_COUNT; i++) {
		if (!t->limits[i].set)
			continue;
		if (t->limits[i].value == UINT64_MAX)
			n += (size_t)snprintf(limits + n, sizeof(limits) - n,
			    " %s=infinity", config_limit_name((enum limit_id)i));
		else
			n += (size_t)snprintf(limits + n, sizeof(limits) - n,
			    " %s=%llu", config_limit_name((enum limit_id)i),
			    (unsigned long long)t->limits[i].value);
	}
	printf("%s: workers run as %s; noNewPrivileges %s; limits:%s; "
	    "in %s\n", t->base_title, who, t->no_new_privs ? "on" : "off",
	    n > 0 ? limits : " as inherited", t->working_dir != NULL ?
	    t->working_dir : "the current directory (/ with -d)");
	if (p->warnings[0] != '\0')
		errmsg("warning: %s: strictPaths is false, allowing: %s",
		    t->base_title, p->warnings);
}

int
cmd_check(const struct cli *cli)
{
	struct prepared *ps;
	struct config cfg;
	size_t nready = 0;
	int r;

	if (load_config(cli->config, &cfg) < 0)
		return EXIT_USAGE;
	if ((ps = calloc(cfg.ntasks, sizeof(*ps))) == NULL) {
		errmsg("out of memory");
		config_free(&cfg);
		return EXIT_RUNTIME;
	}
	r = check_tasks(&cfg, NULL, cfg.ntasks > 1 ? PREP_NAME_TASK : 0, ps,
	    &nready);
	for (size_t i = 0; i < nready; i++) {
		if (r == 0)
			describe(&ps[i]);
		prepared_free(&ps[i]);
	}
	free(ps);
	config_free(&cfg);
	if (r != 0)
		return EXIT_USAGE;
	puts("ok");
	return EXIT_OK;
}
