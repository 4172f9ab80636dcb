/*
 * exec.c - the exec plugin's entry points: any program as a pmhost task,
 * run once per call (call mode) or started once and spoken to one line
 * per call (coprocess mode).  This file checks params, builds the state
 * and hands each call to its mode; it also owns the one rule both modes
 * share: a stop request is forwarded to the child as SIGTERM.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"

PMHOST_PLUGIN;

#define STOP_TICK_MS	100		/* no stop fd: look this often */
#define FAIL_LOG_NS	1000000000LL	/* a failed-call line a second */

int
exec_poll_timeout(const struct exec_state *st)
{
	return st->stop_fd >= 0 ? -1 : STOP_TICK_MS;
}

/*
 * After a poll(): if a stop was asked for (the stop fd is readable, or on
 * an old host the flag is set) and not yet passed on, send SIGTERM to the
 * worker's whole process group: the child and whatever it forked.  The
 * worker itself takes SIGTERM as "finish this call and exit", which it is
 * doing already.  A worker that does not lead its own group (never so
 * under pmhost's master) signals only its child: the group is not its.
 */
int
exec_forward_stop(struct exec_state *st, short stop_revents, pid_t child)
{
	if (st->stop_forwarded)
		return 0;
	if (st->stop_fd >= 0 ? stop_revents == 0 : !pm_worker_stopping(st->w))
		return 0;
	st->stop_forwarded = 1;
	if (getpgrp() == getpid())
		kill(0, SIGTERM);
	else if (child > 0)
		kill(child, SIGTERM);
	return 1;
}

/*
 * Logs a failed call as "exec: call N: TEXT", at most once a second, with
 * the count of those left out since: a command failing thousands of times
 * a second must not drown the log (status counts every one).
 */
void
exec_log_failure(struct exec_state *st, uint64_t call, const char *fmt, ...)
{
	char text[EXEC_ERR_MAX];
	struct timespec ts;
	int64_t now;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	if (st->fail_logged_ns != 0 && now - st->fail_logged_ns < FAIL_LOG_NS) {
		st->fails_quiet++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (st->fails_quiet > 0)
		pm_log(st->w, PM_LOG_WARNING, "exec: call %llu: %s (%llu more "
		    "failed calls not logged)", (unsigned long long)call,
		    text, (unsigned long long)st->fails_quiet);
	else
		pm_log(st->w, PM_LOG_WARNING, "exec: call %llu: %s",
		    (unsigned long long)call, text);
	st->fail_logged_ns = now;
	st->fails_quiet = 0;
}

/* Parses params into st->prm, logging the problems as errors. */
static int
load_params(pm_worker *w, struct exec_params *prm)
{
	char err[EXEC_ERR_MAX];

	if (params_parse(pm_worker_params(w), prm, err, sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "exec: %s", err);
		return -1;
	}
	return 0;
}

/* run, check, restart: params valid and the program there to run. */
int
work_check(pm_worker *w)
{
	struct exec_params prm;
	char path[4096], err[EXEC_ERR_MAX];
	int rc = 0;

	if (load_params(w, &prm) < 0)
		return -1;
	if (command_resolve(prm.argv[0], pm_worker_config_dir(w),
	    command_search_path(&prm), path, sizeof(path), err,
	    sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "exec: %s", err);
		rc = -1;
	}
	params_free(&prm);
	return rc;
}

int
work_init(pm_worker *w, void **state)
{
	struct exec_state *st;
	char err[EXEC_ERR_MAX];
	int rc;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		pm_log(w, PM_LOG_ERROR, "exec: out of memory");
		return -1;
	}
	st->w = w;
	if (load_params(w, &st->prm) < 0) {
		free(st);
		return -1;
	}
	/* Asking for the descriptor also makes a stop come as SIGTERM. */
	st->stop_fd = pm_worker_stop_fd(w);
	if (command_prepare(&st->cmd, &st->prm, w,
	    st->prm.mode == MODE_CALL, err, sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "exec: %s", err);
		params_free(&st->prm);
		free(st);
		return -1;
	}
	rc = st->prm.mode == MODE_CALL ? call_init(st, err, sizeof(err)) :
	    coproc_init(st, err, sizeof(err));
	if (rc < 0) {
		pm_log(w, PM_LOG_ERROR, "exec: %s", err);
		command_free(&st->cmd);
		params_free(&st->prm);
		free(st);
		return -1;
	}
	*state = st;
	return 0;
}

int
work(pm_worker *w, void *state)
{
	struct exec_state *st = state;

	(void)w;
	return st->prm.mode == MODE_CALL ? call_work(st) : coproc_work(st);
}

void
work_fini(pm_worker *w, void *state)
{
	struct exec_state *st = state;

	if (st->fails_quiet > 0)
		pm_log(w, PM_LOG_WARNING, "exec: %llu more failed calls not "
		    "logged", (unsigned long long)st->fails_quiet);
	if (st->prm.mode == MODE_CALL)
		call_fini(st);
	else
		coproc_fini(st);
	command_free(&st->cmd);
	params_free(&st->prm);
	free(st);
}
