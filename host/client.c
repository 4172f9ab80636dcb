/*
 * client.c - what every command that talks to masters shares: naming its
 * targets (--title, CONFIG, --all, the whole run dir), finding a master
 * by its locked pid file, sending it a request over NAME.sock and reading
 * the verdict of its answer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "msg.h"
#include "names.h"
#include "util.h"

int
load_config(const char *path, struct config *cfg)
{
	struct config_errors errs = { 0, NULL };

	if (config_load(path, cfg, &errs) == 0)
		return 0;
	for (size_t i = 0; i < errs.count; i++)
		errmsg("%s", errs.msgs[i]);
	config_errors_free(&errs);
	return -1;
}

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

void
targets_free(struct targets *ts)
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

int
targets_collect(const struct cli *cli, struct targets *ts)
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

int
target_find(struct target *t)
{
	char err[512];
	int r;

	t->pid = 0;
	r = pidfile_probe(t->run_dir, t->title, &t->pid, err, sizeof(err));
	if (r < 0)
		errmsg("%s", err);
	t->dead = r == 0 && t->pid > 0;
	return r;
}

enum proto_result
target_try(const struct target *t, const char *req, int timeout_ms,
    struct buf *reply, int *pidfd, char *err, size_t errlen)
{
	char path[RUNDIR_PATH_MAX];

	if (rundir_path(path, sizeof(path), t->run_dir, t->title,
	    ".sock") < 0) {
		snprintf(err, errlen, "socket path too long");
		return PROTO_FAILED;
	}
	return proto_call(path, req, timeout_ms, reply, pidfd, err, errlen);
}

enum proto_result
target_call(const struct target *t, const char *req, int timeout_ms,
    struct buf *reply, int *pidfd)
{
	char err[512];
	enum proto_result r;

	r = target_try(t, req, timeout_ms, reply, pidfd, err, sizeof(err));
	if (r == PROTO_FAILED)
		errmsg("%s: %s", t->title, err);
	return r;
}

int
reply_ok(struct buf *reply, const char **text)
{
	char *last = NULL, *p;

	/* The last non-empty line carries the verdict. */
	for (p = reply->p; p != NULL && *p != '\0'; ) {
		size_t n = strcspn(p, "\n");

		if (n > 0)
			last = p;
		p += n + (p[n] == '\n');
	}
	if (last == NULL) {
		*text = "the master sent no verdict";
		return 0;
	}
	/* The text is that line alone, printed as one. */
	last[strcspn(last, "\n")] = '\0';
	if (strncmp(last, "ok", 2) == 0 && (last[2] == ' ' ||
	    last[2] == '\0')) {
		*text = last[2] == ' ' ? last + 3 : "";
		return 1;
	}
	*text = strncmp(last, "error ", 6) == 0 && last[6] != '\0' ?
	    last + 6 : last;
	return 0;
}

void
target_error(const struct target *t, const char *text)
{
	size_t n = strcspn(text, "\n");

	errmsg("%s: %.*s", t->title, (int)n, text);
}


void
target_not_running(const struct target *t)
{
	if (t->dead)
		errmsg("%s: not running: its master (pid %ld) died without "
		    "stopping (run dir %s; \"pmhost status --prune\" removes "
		    "its files)", t->title, (long)t->pid, t->run_dir);
	else
		errmsg("%s: not running (run dir %s)", t->title, t->run_dir);
}
