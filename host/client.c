/*
 * client.c - the commands that act on running masters: stop, status,
 * restart, wakeup, scale.  A master is found by NAME.pid in its run dir
 * and counts as running only while it holds the file's lock; requests go
 * over NAME.sock (proto.h).  Several targets (a multi-task config, --all,
 * status without a name) are handled in one pass.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "plugin.h"
#include "privs.h"
#include "proto.h"
#include "rundir.h"
#include "status.h"
#include "util.h"

#define STOP_WAIT_DEFAULT_S	60	/* when the master does not say */
#define STOP_WAIT_MARGIN_S	10	/* beyond the master's stopTimeout */
#define REQUEST_TIMEOUT_MS	5000	/* status, wakeup, scale, stop */

/* A task a command names: where its files are and what it is called. */
struct target {
	char		 run_dir[RUNDIR_PATH_MAX];
	char		 title[TITLE_MAX + 1];
	const struct task_config *task;	/* from CONFIG, else NULL */
	pid_t		 pid;		/* when found running */
	int		 pidfd;
};

struct targets {
	struct target	*v;
	size_t		 n;
	struct config	 cfg;		/* CONFIG's tasks, when given */
	int		 have_cfg;
};

/* Appends a target; 0 or -1 (out of memory). */
static int
add_target(struct targets *ts, const char *dir, const char *title,
    const struct task_config *task)
{
	struct target *v = realloc(ts->v, (ts->n + 1) * sizeof(*v));

	if (v == NULL)
		return -1;
	ts->v = v;
	memset(&v[ts->n], 0, sizeof(v[ts->n]));
	copy_str(v[ts->n].run_dir, dir, sizeof(v[ts->n].run_dir));
	copy_str(v[ts->n].title, title, sizeof(v[ts->n].title));
	v[ts->n].task = task;
	v[ts->n].pidfd = -1;
	ts->n++;
	return 0;
}

static void
free_targets(struct targets *ts)
{
	for (size_t i = 0; i < ts->n; i++)
		if (ts->v[i].pidfd >= 0)
			close(ts->v[i].pidfd);
	free(ts->v);
	if (ts->have_cfg)
		config_free(&ts->cfg);
	memset(ts, 0, sizeof(*ts));
}

/* Orders targets by title, for stable output. */
static int
target_cmp(const void *a, const void *b)
{
	return strcmp(((const struct target *)a)->title,
	    ((const struct target *)b)->title);
}

/* Every NAME.pid in dir whose NAME is a valid title. */
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
		if (title_valid(name) && add_target(ts, dir, name, NULL) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (ts->n > 1)
		qsort(ts->v, ts->n, sizeof(*ts->v), target_cmp);
	return 0;
}

/*
 * The targets named by --title, CONFIG, or (with neither) every pid file
 * of the run dir.  0, or an exit status after printing why.
 */
static int
collect_targets(const struct cli *cli, struct targets *ts)
{
	char dir[RUNDIR_PATH_MAX], err[512];

	memset(ts, 0, sizeof(*ts));
	if (cli->config != NULL) {
		if (load_config(cli->config, &ts->cfg) < 0)
			return EXIT_USAGE;
		ts->have_cfg = 1;
		for (size_t i = 0; i < ts->cfg.ntasks; i++) {
			const struct task_config *t = &ts->cfg.tasks[i];

			if (rundir_resolve(t->run_dir, dir, sizeof(dir), err,
			    sizeof(err)) < 0) {
				errmsg("%s: %s", t->base_title, err);
				return EXIT_RUNTIME;
			}
			if (add_target(ts, dir, t->base_title, t) < 0) {
				errmsg("out of memory");
				return EXIT_RUNTIME;
			}
		}
		return 0;
	}
	if (rundir_resolve(NULL, dir, sizeof(dir), err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EXIT_RUNTIME;
	}
	if (cli->title != NULL) {
		if (add_target(ts, dir, cli->title, NULL) < 0) {
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

/* Is t's master running?  1 (t->pid set), 0, or -1 (printed). */
static int
find_master(struct target *t)
{
	char err[512];
	int r;

	t->pid = 0;
	r = pidfile_probe(t->run_dir, t->title, &t->pid, err, sizeof(err));
	if (r < 0)
		errmsg("%s", err);
	return r;
}

/*
 * Sends req to t's master.  PROTO_OK with the reply in *reply;
 * PROTO_NO_MASTER; or PROTO_FAILED after printing why.
 */
static enum proto_result
call_master(const struct target *t, const char *req, int timeout_ms,
    struct buf *reply, int *pidfd)
{
	char path[RUNDIR_PATH_MAX], err[512];
	enum proto_result r;

	if (rundir_path(path, sizeof(path), t->run_dir, t->title,
	    ".sock") < 0) {
		errmsg("%s: socket path too long", t->title);
		return PROTO_FAILED;
	}
	r = proto_call(path, req, timeout_ms, reply, pidfd, err, sizeof(err));
	if (r == PROTO_FAILED)
		errmsg("%s: %s", t->title, err);
	return r;
}

/* The master's final line: pointer to its text after "ok"/"error". */
static int
reply_ok(const struct buf *reply, const char **text)
{
	const char *last = reply->p, *p;

	/* The last non-empty line carries the verdict. */
	for (p = reply->p; *p; p++)
		if (*p == '\n' && p[1] != '\0')
			last = p + 1;
	if (strncmp(last, "ok", 2) == 0 && (last[2] == ' ' ||
	    last[2] == '\n' || last[2] == '\0')) {
		*text = last[2] == ' ' ? last + 3 : "";
		return 1;
	}
	*text = strncmp(last, "error ", 6) == 0 ? last + 6 : last;
	return 0;
}

/* Prints a master's error reply for target t. */
static void
report_error(const struct target *t, const char *text)
{
	size_t n = strcspn(text, "\n");

	errmsg("%s: %.*s", t->title, (int)n, text);
}

/*
 * Sends a one-line request to every running target and reports errors.
 * Used by wakeup and scale.
 */
static int
simple_request(const struct cli *cli, const char *req)
{
	struct targets ts;
	int r, status = EXIT_OK;

	if ((r = collect_targets(cli, &ts)) != 0)
		return r;
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];
		struct buf reply = { 0 };
		const char *text;

		if ((r = find_master(t)) <= 0) {
			if (r == 0)
				errmsg("%s: not running", t->title);
			status = EXIT_RUNTIME;
			continue;
		}
		r = call_master(t, req, REQUEST_TIMEOUT_MS, &reply, NULL);
		if (r == PROTO_NO_MASTER) {
			errmsg("%s: not running", t->title);
			status = EXIT_RUNTIME;
		} else if (r == PROTO_OK && !reply_ok(&reply, &text)) {
			report_error(t, text);
			status = EXIT_RUNTIME;
		} else if (r != PROTO_OK) {
			status = EXIT_RUNTIME;
		}
		buf_free(&reply);
	}
	free_targets(&ts);
	return status;
}

int
cmd_wakeup(const struct cli *cli)
{
	return simple_request(cli, "wakeup");
}

int
cmd_scale(const struct cli *cli)
{
	char req[32];

	snprintf(req, sizeof(req), "scale %ld", cli->scale);
	return simple_request(cli, req);
}

int
cmd_status(const struct cli *cli)
{
	struct status_master *ms;
	struct targets ts;
	struct buf out = { 0 };
	size_t n = 0;
	int r, status = EXIT_OK;

	if ((r = collect_targets(cli, &ts)) != 0)
		return r;
	if ((ms = calloc(ts.n + 1, sizeof(*ms))) == NULL) {
		errmsg("out of memory");
		free_targets(&ts);
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];
		struct buf reply = { 0 };
		int listed = cli->title == NULL && cli->config == NULL;
		char err[512];

		if ((r = find_master(t)) <= 0) {
			if (r < 0 || !listed) {
				if (r == 0)
					errmsg("%s: not running", t->title);
				status = EXIT_RUNTIME;
			}
			continue;
		}
		r = call_master(t, "status", REQUEST_TIMEOUT_MS, &reply,
		    NULL);
		if (r == PROTO_OK) {
			if (status_parse(reply.p, &ms[n], err, sizeof(err)) < 0) {
				errmsg("%s: %s", t->title, err);
				status = EXIT_RUNTIME;
			} else {
				n++;
			}
		} else {
			if (r == PROTO_NO_MASTER)
				errmsg("%s: not running", t->title);
			status = EXIT_RUNTIME;
		}
		buf_free(&reply);
	}
	if (cli->json)
		status_json(ms, n, &out);
	else
		status_table(ms, n, &out);
	if (out.len > 0)
		fwrite(out.p, 1, out.len, stdout);
	for (size_t i = 0; i < n; i++)
		status_free(&ms[i]);
	free(ms);
	buf_free(&out);
	free_targets(&ts);
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
	if (find_master(t) != 1 ||
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
request_stop(struct target *t)
{
	struct buf reply = { 0 };
	const char *text, *st;
	enum proto_result r;
	long wait_s = STOP_WAIT_DEFAULT_S;

	r = call_master(t, "stop", REQUEST_TIMEOUT_MS, &reply, &t->pidfd);
	if (r == PROTO_OK && reply_ok(&reply, &text)) {
		if ((st = strstr(text, "stop_timeout=")) != NULL)
			wait_s = strtol(st + 13, NULL, 10) + STOP_WAIT_MARGIN_S;
		if (t->pidfd < 0) {
			errmsg("%s: asked to stop, but the master's process "
			    "cannot be watched from here", t->title);
			wait_s = -1;
		}
	} else if (r == PROTO_OK) {
		report_error(t, text);
		wait_s = -1;
	} else if (r == PROTO_NO_MASTER) {
		switch (signal_by_pidfile(t)) {
		case 0:
			wait_s = 0;
			break;
		case -1:
			errmsg("%s: cannot reach the master (pid file says "
			    "pid %ld)", t->title, (long)t->pid);
			wait_s = -1;
			break;
		}
	} else {
		wait_s = -1;
	}
	buf_free(&reply);
	return wait_s;
}

int
cmd_stop(const struct cli *cli)
{
	struct targets ts;
	struct pollfd *pfds;
	long wait_s = -1;
	int r, status = EXIT_OK, pending = 0;
	int64_t deadline;

	if ((r = collect_targets(cli, &ts)) != 0)
		return r;
	if ((pfds = calloc(ts.n + 1, sizeof(*pfds))) == NULL) {
		errmsg("out of memory");
		free_targets(&ts);
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];
		long w;

		pfds[i].fd = -1;
		if ((r = find_master(t)) < 0) {
			status = EXIT_RUNTIME;
			continue;
		}
		if (r == 0) {
			if (!cli->all) {
				errmsg("%s: not running", t->title);
				status = EXIT_RUNTIME;
			}
			continue;
		}
		if ((w = request_stop(t)) <= 0) {
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
	free_targets(&ts);
	return status;
}

/*
 * Checks the config a running master would reload, as "check" does: 0,
 * or EXIT_USAGE after printing every problem.
 */
static int
check_reload(const char *config_path, const char *title)
{
	char err[PLUGIN_ERR_MAX];
	const struct task_config *t = NULL;
	struct creds creds;
	struct config cfg;
	int r = 0;

	if (load_config(config_path, &cfg) < 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < cfg.ntasks; i++)
		if (strcmp(cfg.tasks[i].base_title, title) == 0)
			t = &cfg.tasks[i];
	if (t == NULL) {
		errmsg("%s: no task with baseTitle \"%s\"", config_path, title);
		r = EXIT_USAGE;
	} else if (creds_resolve(t->user, t->group, &creds, err,
	    sizeof(err)) < 0) {
		errmsg("%s: %s", config_path, err);
		r = EXIT_USAGE;
	} else {
		if (plugin_probe(t, &creds, err, sizeof(err)) < 0) {
			errmsg("%s: plugin: %s", config_path, err);
			r = EXIT_USAGE;
		}
		creds_free(&creds);
	}
	config_free(&cfg);
	return r;
}

/* The config file a running master was started from (status reply). */
static int
master_config(struct target *t, char *path, size_t size)
{
	struct status_master sm;
	struct buf reply = { 0 };
	char err[512];
	int r = -1;

	if (call_master(t, "status", REQUEST_TIMEOUT_MS, &reply, NULL) ==
	    PROTO_OK) {
		if (status_parse(reply.p, &sm, err, sizeof(err)) == 0) {
			copy_str(path, sm.config, size);
			status_free(&sm);
			r = 0;
		} else {
			errmsg("%s: %s", t->title, err);
		}
	}
	buf_free(&reply);
	return r;
}

/* Reloads one running master; an exit status. */
static int
restart_running(struct target *t)
{
	char config_path[RUNDIR_PATH_MAX];
	struct buf reply = { 0 };
	const char *text;
	int r;

	if (master_config(t, config_path, sizeof(config_path)) < 0)
		return EXIT_RUNTIME;
	/* Refuse a broken config here, with check's messages. */
	if ((r = check_reload(config_path, t->title)) != 0)
		return r;
	r = call_master(t, "reload", -1, &reply, NULL);
	if (r == PROTO_OK && reply_ok(&reply, &text))
		r = EXIT_OK;
	else {
		if (r == PROTO_OK)
			report_error(t, text);
		else if (r == PROTO_NO_MASTER)
			errmsg("%s: not running", t->title);
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

	if ((r = collect_targets(cli, &ts)) != 0)
		return r;
	for (size_t i = 0; i < ts.n; i++) {
		struct target *t = &ts.v[i];

		if ((r = find_master(t)) < 0) {
			status = EXIT_RUNTIME;
			continue;
		}
		if (r == 1)
			r = restart_running(t);
		else if (t->task != NULL)
			/* process_manage's restart of a stopped task: start it. */
			r = start_detached(t->task);
		else {
			errmsg("%s: not running", t->title);
			r = EXIT_RUNTIME;
		}
		if (r > status)
			status = r;
	}
	free_targets(&ts);
	return status;
}
