/*
 * client.c - the commands that act on running masters: stop, status,
 * restart, wakeup, scale.  A master is found by its pid file in the run
 * dir and counts as running only while it holds the file's lock.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "names.h"
#include "rundir.h"
#include "util.h"

#define STOP_WAIT_DEFAULT_S	60	/* stop without --timeout, title */
#define STOP_WAIT_MARGIN_S	10	/* beyond a known stopTimeout */

/* A task a command names: where its files are and what it is called. */
struct target {
	char		 run_dir[RUNDIR_PATH_MAX];
	char		 title[TITLE_MAX + 1];
	long		 stop_timeout;	/* from its config; -1: unknown */
	pid_t		 pid;		/* when found running */
	int		 pidfd;
};

struct targets {
	struct target	*v;
	size_t		 n;
};

/* Appends a target; 0 or -1 (out of memory). */
static int
add_target(struct targets *ts, const char *dir, const char *title,
    long stop_timeout)
{
	struct target *v = realloc(ts->v, (ts->n + 1) * sizeof(*v));

	if (v == NULL)
		return -1;
	ts->v = v;
	memset(&v[ts->n], 0, sizeof(v[ts->n]));
	copy_str(v[ts->n].run_dir, dir, sizeof(v[ts->n].run_dir));
	copy_str(v[ts->n].title, title, sizeof(v[ts->n].title));
	v[ts->n].stop_timeout = stop_timeout;
	v[ts->n].pidfd = -1;
	ts->n++;
	return 0;
}

/* Every NAME.pid in dir that is a valid title. */
static int
scan_run_dir(struct targets *ts, const char *dir)
{
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		char name[TITLE_MAX + 8];
		size_t len = strlen(de->d_name);

		if (len <= 4 || len - 4 > TITLE_MAX ||
		    strcmp(de->d_name + len - 4, ".pid") != 0)
			continue;
		memcpy(name, de->d_name, len - 4);
		name[len - 4] = '\0';
		if (title_valid(name) && add_target(ts, dir, name, -1) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

/*
 * The targets named by --title, CONFIG or --all.  0, or an exit status
 * after printing why.
 */
static int
collect_targets(const struct cli *cli, struct targets *ts)
{
	char dir[RUNDIR_PATH_MAX], err[512];
	struct config cfg;

	memset(ts, 0, sizeof(*ts));
	if (cli->config != NULL) {
		if (load_config(cli->config, &cfg) < 0)
			return EXIT_USAGE;
		for (size_t i = 0; i < cfg.ntasks; i++) {
			const struct task_config *t = &cfg.tasks[i];

			if (rundir_resolve(t->run_dir, dir, sizeof(dir), err,
			    sizeof(err)) < 0) {
				errmsg("%s: %s", t->base_title, err);
				config_free(&cfg);
				return EXIT_RUNTIME;
			}
			if (add_target(ts, dir, t->base_title,
			    (long)t->stop_timeout) < 0) {
				config_free(&cfg);
				errmsg("out of memory");
				return EXIT_RUNTIME;
			}
		}
		config_free(&cfg);
		return 0;
	}
	if (rundir_resolve(NULL, dir, sizeof(dir), err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EXIT_RUNTIME;
	}
	if (cli->title != NULL) {
		if (add_target(ts, dir, cli->title, -1) < 0) {
			errmsg("out of memory");
			return EXIT_RUNTIME;
		}
		return 0;
	}
	if (scan_run_dir(ts, dir) < 0) {
		errmsg("run dir %s: %s", dir, strerror(errno));
		return EXIT_RUNTIME;
	}
	return 0;
}

/*
 * Finds t's master: 1 running (t->pid set), 0 not running, -1 error
 * (printed).
 */
static int
find_master(struct target *t)
{
	char err[512];
	int r = pidfile_probe(t->run_dir, t->title, &t->pid, err, sizeof(err));

	if (r < 0)
		errmsg("%s", err);
	return r;
}

/* Opens a pidfd on t's master, rechecking the lock; 1, 0 (gone), -1. */
static int
open_master(struct target *t)
{
	pid_t again = 0;

	t->pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
	if (t->pidfd < 0)
		return errno == ESRCH ? 0 : -1;
	/* The pid was read under the lock; if the lock is still held by the
	 * same pid, the pidfd refers to the master and not to a reuse. */
	if (find_master(t) != 1 || t->pid == 0) {
		close(t->pidfd);
		t->pidfd = -1;
		return 0;
	}
	(void)again;
	return 1;
}

int
cmd_stop(const struct cli *cli)
{
	struct targets ts;
	struct pollfd *pfds;
	long wait_s = cli->timeout;
	int r, status = EXIT_OK, pending = 0;
	int64_t deadline;

	if ((r = collect_targets(cli, &ts)) != 0)
		return r;
	if ((pfds = calloc(ts.n + 1, sizeof(*pfds))) == NULL) {
		errmsg("out of memory");
		free(ts.v);
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];

		pfds[i].fd = -1;
		if ((r = find_master(t)) < 0) {
			status = EXIT_RUNTIME;
			continue;
		}
		if (r == 0 || t->pid == 0 || (r = open_master(t)) == 0) {
			if (!cli->all) {
				errmsg("%s: not running", t->title);
				status = EXIT_RUNTIME;
			}
			continue;
		}
		if (r < 0 || syscall(SYS_pidfd_send_signal, t->pidfd, SIGTERM,
		    NULL, 0) < 0) {
			errmsg("%s: cannot signal master pid %ld: %s",
			    t->title, (long)t->pid, strerror(errno));
			status = EXIT_RUNTIME;
			continue;
		}
		pfds[i].fd = t->pidfd;
		pfds[i].events = POLLIN;
		pending++;
		if (cli->timeout < 0 && t->stop_timeout >= 0 &&
		    t->stop_timeout + STOP_WAIT_MARGIN_S > wait_s)
			wait_s = t->stop_timeout + STOP_WAIT_MARGIN_S;
	}
	if (wait_s < 0)
		wait_s = STOP_WAIT_DEFAULT_S;
	deadline = mono_ns() + wait_s * NS_PER_SEC;
	while (pending > 0) {
		int64_t left = deadline - mono_ns();
		int n;

		if (left <= 0)
			break;
		n = poll(pfds, ts.n, (int)((left + NS_PER_MS - 1) / NS_PER_MS));
		if (n < 0 && errno != EINTR)
			break;
		for (size_t i = 0; n > 0 && i < ts.n; i++) {
			if (pfds[i].fd < 0 || pfds[i].revents == 0)
				continue;
			/* A pidfd polls readable once its process has exited. */
			close(pfds[i].fd);
			pfds[i].fd = -1;
			pending--;
		}
	}
	for (size_t i = 0; i < ts.n; i++) {
		if (pfds[i].fd < 0)
			continue;
		errmsg("%s: master pid %ld still running after %ld s",
		    ts.v[i].title, (long)ts.v[i].pid, wait_s);
		close(pfds[i].fd);
		status = EXIT_RUNTIME;
	}
	free(pfds);
	free(ts.v);
	return status;
}

int
cmd_status(const struct cli *cli)
{
	(void)cli;
	errmsg("status: not available in this build");
	return EXIT_RUNTIME;
}

int
cmd_restart(const struct cli *cli)
{
	(void)cli;
	errmsg("restart: not available in this build");
	return EXIT_RUNTIME;
}

int
cmd_wakeup(const struct cli *cli)
{
	(void)cli;
	errmsg("wakeup: not available in this build");
	return EXIT_RUNTIME;
}

int
cmd_scale(const struct cli *cli)
{
	(void)cli;
	errmsg("scale: not available in this build");
	return EXIT_RUNTIME;
}
