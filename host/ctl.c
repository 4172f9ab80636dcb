/*
 * ctl.c - the commands that act on running masters: stop, status,
 * restart, and the plain requests (wakeup, scale).  Each names its
 * targets and calls their masters through client.h; several targets (a
 * multi-task config, --all, status without a name) are handled in one
 * pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client.h"
#include "msg.h"
#include "prepare.h"
#include "run.h"
#include "status.h"
#include "util.h"

#define STOP_WAIT_DEFAULT_S	60	/* when the master does not say */
#define STOP_WAIT_MARGIN_S	10	/* beyond the master's stopTimeout */
/* A rollout's worst case before stopTimeout: the load check (10 s), the
 * canary's and the replacements' work_init (60 s each), and a margin. */
#define RESTART_WAIT_S		140

/*
 * Sends the command's request to every running target and reports
 * errors: wakeup, scale N, and any other plain request.
 */
int
cmd_request(const struct cli *cli)
{
	char req[64];
	struct targets ts;
	int r, status = EXIT_OK;

	if (cli->cmd->args == ARGS_SCALE)
		snprintf(req, sizeof(req), "%s %ld", cli->cmd->verb,
		    cli->scale);
	else
		snprintf(req, sizeof(req), "%s", cli->cmd->verb);
	if ((r = targets_collect(cli, &ts)) != 0)
		return r;
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];
		struct buf reply = { 0 };
		const char *text;

		if ((r = target_find(t)) <= 0) {
			if (r == 0)
				target_not_running(t);
			status = EXIT_RUNTIME;
			continue;
		}
		r = target_call(t, req, REQUEST_TIMEOUT_MS, &reply, NULL);
		if (r == PROTO_NO_MASTER) {
			target_not_running(t);
			status = EXIT_RUNTIME;
		} else if (r == PROTO_OK && !reply_ok(&reply, &text)) {
			target_error(t, text);
			status = EXIT_RUNTIME;
		} else if (r == PROTO_OK) {
			/* The reply ends with a newline; the line, without. */
			int n = (int)strcspn(text, "\n");

			if (n > 0)
				say("%s: %.*s", t->title, n, text);
			else
				say("%s: done", t->title);
		} else {
			status = EXIT_RUNTIME;
		}
		buf_free(&reply);
	}
	targets_free(&ts);
	return status;
}

/*
 * A dead master's row: what its stale pid file says (pid; its time is
 * the master's start).  0, or -1 out of memory.
 */
static int
dead_row(const struct target *t, struct status_master *sm)
{
	char path[RUNDIR_PATH_MAX], err[64];
	struct buf b = { 0 };
	struct stat st;
	int r;

	buf_printf(&b, "master");
	status_put_text(&b, SK_NAME, t->title);
	status_put_num(&b, SK_PID, t->pid);
	status_put_text(&b, SK_TITLE, t->title);
	status_put_text(&b, SK_STATE, "dead");
	status_put_num(&b, SK_COUNT, 0);
	if (rundir_path(path, sizeof(path), t->run_dir, t->title,
	    ".pid") == 0 && stat(path, &st) == 0)
		status_put_num(&b, SK_START_MS, (long long)st.st_mtim.tv_sec *
		    1000 + st.st_mtim.tv_nsec / 1000000);
	status_put_text(&b, SK_RUN_DIR, t->run_dir);
	buf_printf(&b, "\nok\n");
	r = b.p != NULL ? status_parse(b.p, sm, err, sizeof(err)) : -1;
	buf_free(&b);
	return r;
}

/* status of a run dir where nothing runs: says so, and where it looked. */
static void
say_none_running(void)
{
	char dir[RUNDIR_PATH_MAX], err[512];

	if (rundir_resolve(NULL, dir, sizeof(dir), err, sizeof(err)) == 0)
		say("no task is running (run dir %s)", dir);
}

/* status --prune: removes a dead master's files; 0 or an exit status. */
static int
prune(const struct target *t)
{
	char err[512];

	switch (pidfile_prune(t->run_dir, t->title, err, sizeof(err))) {
	case 1:
		say("%s: removed the pid file and socket of its dead master "
		    "(pid %ld)", t->title, (long)t->pid);
		return EXIT_OK;
	case 0:
		return EXIT_OK;		/* a master took it over meanwhile */
	default:
		errmsg("%s", err);
		return EXIT_RUNTIME;
	}
}

int
cmd_status(const struct cli *cli)
{
	struct status_master *ms;
	struct targets ts;
	struct buf out = { 0 };
	size_t n = 0;
	int r, status = EXIT_OK;

	if ((r = targets_collect(cli, &ts)) != 0)
		return r;
	if ((ms = calloc(ts.n + 1, sizeof(*ms))) == NULL) {
		errmsg("out of memory");
		targets_free(&ts);
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];
		struct buf reply = { 0 };
		int listed = cli->title == NULL && cli->config == NULL;
		char err[512];

		if ((r = target_find(t)) == 0 && t->dead && cli->prune > 0) {
			if ((r = prune(t)) > status)
				status = r;
			continue;
		}
		if (r == 0 && t->dead) {
			target_not_running(t);
			status = EXIT_RUNTIME;
			if (dead_row(t, &ms[n]) == 0)
				n++;
			continue;
		}
		if (r <= 0) {
			if (r < 0 || !listed) {
				if (r == 0)
					target_not_running(t);
				status = EXIT_RUNTIME;
			}
			continue;
		}
		r = target_call(t, cli->json ? "status exits" : "status",
		    REQUEST_TIMEOUT_MS, &reply, NULL);
		if (r == PROTO_OK) {
			if (status_parse(reply.p, &ms[n], err, sizeof(err)) < 0) {
				errmsg("%s: %s", t->title, err);
				status = EXIT_RUNTIME;
			} else {
				n++;
			}
		} else {
			if (r == PROTO_NO_MASTER)
				target_not_running(t);
			status = EXIT_RUNTIME;
		}
		buf_free(&reply);
	}
	if (cli->format == OUT_PROMETHEUS)
		status_prometheus(ms, n, &out);
	else if (cli->json)
		status_json(ms, n, &out);
	else if (n == 0 && cli->title == NULL && cli->config == NULL)
		say_none_running();
	else
		status_table(ms, n, &out);
	if (out.len > 0)
		fwrite(out.p, 1, out.len, stdout);
	for (size_t i = 0; i < n; i++)
		status_free(&ms[i]);
	free(ms);
	buf_free(&out);
	targets_free(&ts);
	return status;
}

/*
 * Without the socket, the pid in the pid file is all there is; it is
 * only trusted (and signalled) if that process bears the master's title,
 * as a pid from another pid namespace (a container's 1) must not be.
 */
static int
signal_by_pidfile(struct target *t)
{
	char path[64], buf[256], want[TITLE_MAX + 16];
	ssize_t n;
	size_t wl;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)t->pid);
	snprintf(want, sizeof(want), ":Master:%s", t->title);
	wl = strlen(want);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (strlen(buf) < wl || strcmp(buf + strlen(buf) - wl, want) != 0)
		return -1;
	t->pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
	if (t->pidfd < 0)
		return errno == ESRCH ? 0 : -1;
	/* The lock is still held: the pid cannot have been reused. */
	if (target_find(t) != 1 ||
	    syscall(SYS_pidfd_send_signal, t->pidfd, SIGTERM, NULL, 0) < 0)
		return -1;
	return 1;
}

/*
 * Asks t's master to stop, leaving a pidfd on it in t->pidfd.  Returns
 * the seconds to wait for it, 0 if it is already gone, -1 on error
 * (printed).
 */
static long
request_stop(struct target *t, long *workers)
{
	struct buf reply = { 0 };
	const char *text, *st;
	enum proto_result r;
	long wait_s = STOP_WAIT_DEFAULT_S;
	char err[512];

	r = target_try(t, "stop", REQUEST_TIMEOUT_MS, &reply, &t->pidfd, err,
	    sizeof(err));
	if (r == PROTO_OK && reply_ok(&reply, &text)) {
		if ((st = strstr(text, "stop_timeout=")) != NULL)
			wait_s = strtol(st + 13, NULL, 10) + STOP_WAIT_MARGIN_S;
		if ((st = strstr(text, "workers=")) != NULL)
			*workers = strtol(st + 8, NULL, 10);
		if (t->pidfd < 0) {
			errmsg("%s: asked to stop, but the master's process "
			    "cannot be watched from here", t->title);
			wait_s = -1;
		}
	} else if (r == PROTO_OK) {
		target_error(t, text);
		wait_s = -1;
	} else {
		/*
		 * No answer on the socket (gone, or too busy to serve): the
		 * master found through its locked pid file gets SIGTERM,
		 * which stops it the same way.
		 */
		switch (signal_by_pidfile(t)) {
		case 0:
			say("%s: stopped", t->title);
			wait_s = 0;
			break;
		case 1:
			if (r == PROTO_FAILED)
				errmsg("warning: %s: the control socket did "
				    "not serve (%s); sent SIGTERM to the "
				    "master (pid %ld)", t->title, err,
				    (long)t->pid);
			break;
		default:
			if (r == PROTO_FAILED)
				errmsg("%s: %s", t->title, err);
			errmsg("%s: cannot reach the master (pid file says "
			    "pid %ld)", t->title, (long)t->pid);
			wait_s = -1;
			break;
		}
	}
	buf_free(&reply);
	return wait_s;
}

int
cmd_stop(const struct cli *cli)
{
	struct targets ts;
	struct pollfd *pfds;
	long wait_s = -1, *workers;
	int r, status = EXIT_OK, pending = 0;
	int64_t deadline, began = mono_ns();

	if ((r = targets_collect(cli, &ts)) != 0)
		return r;
	pfds = calloc(ts.n + 1, sizeof(*pfds));
	workers = calloc(ts.n + 1, sizeof(*workers));
	if (pfds == NULL || workers == NULL) {
		errmsg("out of memory");
		free(pfds);
		free(workers);
		targets_free(&ts);
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];
		long w;

		pfds[i].fd = -1;
		if ((r = target_find(t)) < 0) {
			status = EXIT_RUNTIME;
			continue;
		}
		if (r == 0) {
			if (!cli->all) {
				target_not_running(t);
				status = EXIT_RUNTIME;
			}
			continue;
		}
		workers[i] = -1;
		if ((w = request_stop(t, &workers[i])) <= 0) {
			if (w < 0)
				status = EXIT_RUNTIME;
			continue;
		}
		pfds[i].fd = t->pidfd;
		pfds[i].events = POLLIN;
		pending++;
		if (w > wait_s)
			wait_s = w;
	}
	if (cli->timeout >= 0)
		wait_s = cli->timeout;
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
			pfds[i].fd = -1;
			pending--;
			if (workers[i] >= 0)
				say("%s: stopped (%ld worker%s, %.1f s)",
				    ts.v[i].title, workers[i],
				    workers[i] == 1 ? "" : "s",
				    (double)(mono_ns() - began) / NS_PER_SEC);
			else
				say("%s: stopped", ts.v[i].title);
		}
	}
	for (size_t i = 0; i < ts.n; i++) {
		if (pfds[i].fd < 0)
			continue;
		errmsg("%s: master pid %ld still running after %ld s",
		    ts.v[i].title, (long)ts.v[i].pid, wait_s);
		status = EXIT_RUNTIME;
	}
	free(pfds);
	free(workers);
	targets_free(&ts);
	return status;
}

/*
 * Checks the config a running master would reload, as "check" does, and
 * that it keeps the run dir: 0, or an exit status after printing why.
 */
static int
check_reload(const char *config_path, const struct target *t)
{
	const struct task_config *task = NULL;
	struct prepared prep;
	struct config cfg;
	char err[1024];
	int r = 0;

	if (load_config(config_path, &cfg) < 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < cfg.ntasks; i++)
		if (strcmp(cfg.tasks[i].base_title, t->title) == 0)
			task = &cfg.tasks[i];
	if (task == NULL) {
		errmsg("%s: no task with baseTitle \"%s\"", config_path,
		    t->title);
		r = EXIT_USAGE;
	} else if ((r = prepare_task(task, NULL, PREP_PROBE, &prep, err,
	    sizeof(err))) != 0) {
		errmsg("%s", err);
	} else {
		if (strcmp(prep.run_dir, t->run_dir) != 0) {
			errmsg("%s: runDir: cannot change while the task runs "
			    "(stop and start it)", config_path);
			r = EXIT_USAGE;
		}
		prepared_free(&prep);
	}
	config_free(&cfg);
	return r;
}

/*
 * The config file a running master was started from and its stopTimeout
 * (status reply).
 */
static int
master_config(struct target *t, char *path, size_t size, long *stop_s)
{
	struct status_master sm;
	struct buf reply = { 0 };
	char err[512];
	int r = -1;

	if (target_call(t, "status", REQUEST_TIMEOUT_MS, &reply, NULL) ==
	    PROTO_OK) {
		if (status_parse(reply.p, &sm, err, sizeof(err)) == 0) {
			copy_str(path, status_text(&sm.m, SK_CONFIG), size);
			*stop_s = (long)status_num(&sm.m, SK_STOP_TIMEOUT, 5);
			status_free(&sm);
			r = 0;
		} else {
			errmsg("%s: %s", t->title, err);
		}
	}
	buf_free(&reply);
	return r;
}

/*
 * Reloads one running master; an exit status.  Waits as long as the
 * slowest rollout takes (a load check, the canary's work_init, the
 * replacements' work_init, the old workers' stopTimeout), or timeout_s.
 */
static int
restart_running(struct target *t, long timeout_s)
{
	char config_path[RUNDIR_PATH_MAX];
	struct buf reply = { 0 };
	const char *text;
	long stop_s = 5;
	int r;

	if (master_config(t, config_path, sizeof(config_path), &stop_s) < 0)
		return EXIT_RUNTIME;
	/* Refuse a broken config here, with check's messages. */
	if ((r = check_reload(config_path, t)) != 0)
		return r;
	if (timeout_s < 0)
		timeout_s = RESTART_WAIT_S + stop_s;
	r = target_call(t, "restart", (int)(timeout_s * 1000), &reply, NULL);
	if (r == PROTO_OK && reply_ok(&reply, &text)) {
		int n = (int)strcspn(text, "\n");

		say("%s: restarted%s%.*s", t->title, n > 0 ? ": " : "", n,
		    text);
		r = EXIT_OK;
	} else {
		if (r == PROTO_OK)
			target_error(t, text);
		else if (r == PROTO_NO_MASTER)
			target_not_running(t);
		r = EXIT_RUNTIME;
	}
	buf_free(&reply);
	return r;
}

int
cmd_restart(const struct cli *cli)
{
	struct targets ts;
	int r, status = EXIT_OK;

	if ((r = targets_collect(cli, &ts)) != 0)
		return r;
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];

		if ((r = target_find(t)) < 0) {
			status = EXIT_RUNTIME;
			continue;
		}
		if (r == 1)
			r = restart_running(t, cli->timeout);
		else if (t->task != NULL)
			/* process_manage's restart of a stopped task: start it. */
			r = start_detached(t->task);
		else {
			target_not_running(t);
			r = EXIT_RUNTIME;
		}
		if (r > status)
			status = r;
	}
	targets_free(&ts);
	return status;
}
