/*
 * run.c - the commands that start masters (run, in the foreground or
 * detached) and the one that only checks (check).  Everything that can be
 * refused is refused here, before a master exists: config errors, the run
 * dir, the user, a plugin that does not load (probed in a throwaway
 * child), a title that is already running.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "log.h"
#include "master.h"
#include "msg.h"
#include "notify.h"
#include "plugin.h"
#include "prepare.h"
#include "run.h"
#include "util.h"

/*
 * Blocks the master's signals (a stop may come as soon as the pid file
 * exists); the previous mask in *old (may be NULL).
 */
static void
block_master_signals(sigset_t *old)
{
	sigset_t set;

	master_signal_set(&set);
	sigprocmask(SIG_BLOCK, &set, old);
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

/* The one check of a task before a master is started; an exit status. */
static int
check_task(const struct task_config *t, const struct overrides *ov,
    struct prepared *p)
{
	char err[PLUGIN_ERR_MAX + 512];
	int r;

	r = prepare_task(t, ov, PREP_MAKE_RUNDIR | PREP_PROBE, p, err,
	    sizeof(err));
	if (r != 0)
		errmsg("%s", err);
	return r;
}

/* The uid a task's log file may belong to besides root's. */
static uid_t
task_uid(const struct prepared *p)
{
	return p->creds.set ? p->creds.uid : (uid_t)-1;
}

/* Takes the task's pid file; 0, or an exit status after printing why. */
static int
take_pidfile(const struct prepared *p, int *fd, char *msg, size_t size)
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
	return 0;
}

/*
 * The foreground master for one task: logs to stderr unless told not to.
 * ready_fd (or -1) hears "ok" once its workers are up.
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
	log_setup(p->log_level, "pmhost");
	if (p->log_path[0] != '\0' && log_open(p->log_path, task_uid(p), msg,
	    sizeof(msg)) < 0) {
		errmsg("%s: log file: %s", p->task->base_title, msg);
		pidfile_release(p->run_dir, p->task->base_title, fd);
		return EXIT_USAGE;
	}
	return master_run(p, ov, fd, ready_fd);
}

/*
 * The detached master's side: after the second fork, take the pid file,
 * move logging and stdio to the log file, run.  Reports failures through
 * fd as "CODE message" before it exits; the master itself writes "ok".
 */
static _Noreturn void
daemon_child(struct prepared *p, const struct overrides *ov, int fd)
{
	char msg[PATH_MAX + 800], why[PATH_MAX + 256];
	int pidfd, nullfd, r;

	if (chdir("/") < 0) {
		/* Nothing relies on the cwd: every config path is absolute. */
	}
	/* A detached master is not the service manager's main process. */
	unsetenv("NOTIFY_SOCKET");
	if ((r = take_pidfile(p, &pidfd, msg + 2, sizeof(msg) - 2)) != 0) {
		msg[0] = (char)('0' + r);
		msg[1] = ' ';
		(void)write_all(fd, msg, strlen(msg));
		_exit(r);
	}
	log_setup(p->log_level, "pmhost");
	if (log_open(p->log_path, task_uid(p), why, sizeof(why)) < 0) {
		snprintf(msg, sizeof(msg), "2 %s: log file: %s",
		    p->task->base_title, why);
		(void)write_all(fd, msg, strlen(msg));
		pidfile_release(p->run_dir, p->task->base_title, pidfd);
		_exit(EXIT_USAGE);
	}
	/* A crash report of ours lands in the log too. */
	log_own_stdio();
	if ((nullfd = open("/dev/null", O_RDONLY | O_NOCTTY)) >= 0) {
		dup2(nullfd, 0);
		if (nullfd != 0)
			close(nullfd);
	}
	_exit(master_run(p, ov, pidfd, fd));
}

/*
 * run -d: detaches a master (setsid, second fork) and waits until it says
 * it is ready or fails.  Returns the exit status for the caller.
 */
static int
run_detached(struct prepared *p, const struct overrides *ov)
{
	char buf[800];
	int pfd[2], wstatus;
	sigset_t old;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		errmsg("%s: pipe: %s", p->task->base_title, strerror(errno));
		return EXIT_RUNTIME;
	}
	fflush(NULL);
	block_master_signals(&old);
	if ((pid = fork()) < 0) {
		errmsg("%s: fork: %s", p->task->base_title, strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return EXIT_RUNTIME;
	}
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		/* Not a session leader: it can never regain a terminal. */
		if ((pid = fork()) != 0)
			_exit(pid < 0 ? EXIT_RUNTIME : 0);
		daemon_child(p, ov, pfd[1]);
	}
	close(pfd[1]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	n = read_full(pfd[0], buf, sizeof(buf) - 1);
	close(pfd[0]);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	buf[n > 0 ? n : 0] = '\0';
	if (strcmp(buf, "ok") == 0)
		return EXIT_OK;
	if (n > 2 && buf[0] >= '1' && buf[0] <= '2' && buf[1] == ' ') {
		errmsg("%s", buf + 2);
		return buf[0] - '0';
	}
	errmsg("%s: master exited during startup (see %s)",
	    p->task->base_title, p->log_path[0] != '\0' ? p->log_path :
	    "its log in the run dir");
	return EXIT_RUNTIME;
}

int
start_detached(const struct task_config *t)
{
	struct overrides ov = { NULL, -1, 1 };
	struct prepared p;
	int r;

	if ((r = check_task(t, &ov, &p)) != 0)
		return r;
	r = run_detached(&p, &ov);
	prepared_free(&p);
	return r;
}

/* A group's master: its pid and the pipe it says "ok" through. */
struct member {
	pid_t	pid;		/* 0: gone */
	int	ready_fd;	/* -1: answered or gone */
};

/* Forks the master of one task of a group; 0, or -1 after printing why. */
static int
start_member(struct prepared *p, const struct overrides *ov,
    struct member *mb)
{
	int pfd[2];

	mb->pid = 0;
	mb->ready_fd = -1;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		errmsg("%s: pipe: %s", p->task->base_title, strerror(errno));
		return -1;
	}
	fflush(NULL);
	if ((mb->pid = fork()) < 0) {
		errmsg("%s: fork: %s", p->task->base_title, strerror(errno));
		mb->pid = 0;
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (mb->pid == 0) {
		close(pfd[0]);
		/* A master ends with the command that runs it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(EXIT_RUNTIME);
		_exit(run_foreground(p, ov, pfd[1]));
	}
	close(pfd[1]);
	mb->ready_fd = pfd[0];
	return 0;
}

/* Reaps exited members; the worst exit status seen so far. */
static int
reap_members(struct member *mbs, size_t n, size_t *live, int status)
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
			}
		if (code > status)
			status = code;
	}
	return status;
}

/*
 * Several tasks in the foreground: one master per task, each a child of
 * this process, which is the service manager's main process: it relays
 * signals to the masters, speaks the notify protocol for the group (READY
 * once every master is up or gone, STOPPING, WATCHDOG), and exits when all
 * have, with the worst of their statuses.
 */
static int
run_group(struct prepared *ps, const struct overrides *ov, size_t n)
{
	struct member *mbs = calloc(n, sizeof(*mbs));
	struct pollfd *pfds = calloc(n + 1, sizeof(*pfds));
	size_t live = 0, waiting = 0;
	int64_t ping = 0;
	sigset_t set;
	int sigfd, status = EXIT_OK;

	if (mbs == NULL || pfds == NULL) {
		errmsg("out of memory");
		free(mbs);
		free(pfds);
		return EXIT_RUNTIME;
	}
	/* The masters must not take the notify socket for their own. */
	notify_init();
	master_signal_set(&set);
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	for (size_t i = 0; i < n; i++) {
		if (start_member(&ps[i], ov, &mbs[i]) < 0) {
			status = EXIT_RUNTIME;
			continue;
		}
		live++;
		waiting++;
	}
	if (notify_watchdog_ns() > 0)
		ping = mono_ns() + notify_watchdog_ns();
	while (live > 0) {
		struct signalfd_siginfo si;
		int ms = -1;

		pfds[0].fd = sigfd;
		pfds[0].events = POLLIN;
		for (size_t i = 0; i < n; i++) {
			pfds[i + 1].fd = mbs[i].ready_fd;
			pfds[i + 1].events = POLLIN;
		}
		if (ping != 0) {
			int64_t left = ping - mono_ns();

			ms = left > 0 ? (int)((left + NS_PER_MS - 1) /
			    NS_PER_MS) : 0;
		}
		if (poll(pfds, n + 1, ms) < 0 && errno != EINTR)
			break;
		if (ping != 0 && mono_ns() >= ping) {
			notify_send("WATCHDOG=1");
			ping = mono_ns() + notify_watchdog_ns();
		}
		for (size_t i = 0; i < n; i++) {
			if (mbs[i].ready_fd < 0 || pfds[i + 1].revents == 0)
				continue;
			/* "ok", or EOF from a master that failed to start. */
			close(mbs[i].ready_fd);
			mbs[i].ready_fd = -1;
			if (--waiting == 0)
				notify_send("READY=1\nSTATUS=%zu of %zu tasks "
				    "running", live, n);
		}
		while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGCHLD) {
				status = reap_members(mbs, n, &live, status);
				continue;
			}
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				notify_send("STOPPING=1");
			for (size_t i = 0; i < n; i++)
				if (mbs[i].pid > 0)
					kill(mbs[i].pid, (int)si.ssi_signo);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (mbs[i].ready_fd >= 0)
			close(mbs[i].ready_fd);
	if (sigfd >= 0)
		close(sigfd);
	free(mbs);
	free(pfds);
	return status;
}

/* Refuses to start when any task of the file already runs. */
static int
none_running(struct prepared *ps, size_t n)
{
	char err[512];
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		pid_t pid = 0;

		if (pidfile_probe(ps[i].run_dir, ps[i].task->base_title, &pid,
		    err, sizeof(err)) == 1) {
			errmsg("%s: already running (pid %ld)",
			    ps[i].task->base_title, (long)pid);
			r = EXIT_RUNTIME;
		}
	}
	return r;
}

int
cmd_run(const struct cli *cli)
{
	char log_file[PATH_MAX];
	struct overrides ov;
	struct prepared *ps;
	struct config cfg;
	size_t ready = 0;
	int r = 0;

	block_master_signals(NULL);
	if ((r = cli_overrides(cli, &ov, log_file, sizeof(log_file))) != 0)
		return r;
	if (load_config(cli->config, &cfg) < 0)
		return EXIT_USAGE;
	if ((ps = calloc(cfg.ntasks, sizeof(*ps))) == NULL) {
		errmsg("out of memory");
		config_free(&cfg);
		return EXIT_RUNTIME;
	}
	/* Nothing starts unless every task can. */
	for (; ready < cfg.ntasks; ready++)
		if ((r = check_task(&cfg.tasks[ready], &ov, &ps[ready])) != 0)
			break;
	if (r == 0 && cfg.ntasks > 1)
		r = none_running(ps, cfg.ntasks);
	if (r == 0) {
		if (cli->daemon) {
			for (size_t i = 0; i < cfg.ntasks; i++) {
				int ri = run_detached(&ps[i], &ov);

				if (ri > r)
					r = ri;
			}
		} else if (cfg.ntasks == 1) {
			r = run_foreground(&ps[0], &ov, -1);
		} else {
			r = run_group(ps, &ov, cfg.ntasks);
		}
	}
	for (size_t i = 0; i < ready; i++)
		prepared_free(&ps[i]);
	free(ps);
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
	printf("%s: workers run as %s; noNewPrivileges %s; limits:%s\n",
	    t->base_title, who, t->no_new_privs ? "on" : "off",
	    n > 0 ? limits : " as inherited");
	if (p->warnings[0] != '\0')
		errmsg("warning: %s: strictPaths is false, allowing: %s",
		    t->base_title, p->warnings);
}

int
cmd_check(const struct cli *cli)
{
	char err[PLUGIN_ERR_MAX + 512];
	struct prepared p;
	struct config cfg;
	int bad = 0;

	if (load_config(cli->config, &cfg) < 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < cfg.ntasks; i++) {
		if (prepare_task(&cfg.tasks[i], NULL, PREP_PROBE |
		    (cfg.ntasks > 1 ? PREP_NAME_TASK : 0), &p, err,
		    sizeof(err)) != 0) {
			errmsg("%s", err);
			bad = 1;
			continue;
		}
		describe(&p);
		prepared_free(&p);
	}
	config_free(&cfg);
	if (bad)
		return EXIT_USAGE;
	puts("ok");
	return EXIT_OK;
}
