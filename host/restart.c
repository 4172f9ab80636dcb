/*
 * restart.c - restart in place (the restart command, SIGHUP).  A rollout
 * goes through three phases, each of which can only fail before the next:
 *
 *   probe   re-read the config file, check it as run does (prepare.c),
 *           load the plugin in a throwaway child;
 *   canary  start one new worker for slot 0, held after work_init until
 *           the rollout commits; its failure ends the rollout;
 *   replace the master commits the new config, then every slot gets a
 *           held replacement and its old worker is retired once the
 *           replacement has finished work_init.
 *
 * Until the commit the old workers are untouched; after it, a slot's old
 * worker leaves only when its replacement is ready, so the task never has
 * zero live workers and never more than one extra per slot.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pin.h"
#include "plugin.h"
#include "restart.h"
#include "spawner.h"
#include "title.h"
#include "util.h"

void
restart_init(struct restart *r)
{
	memset(r, 0, sizeof(*r));
	r->token = NO_CLIENT;
	r->canary = -1;
	r->probe_fd = -1;
	r->cfg.log_level = -1;
}

/* Ends the rollout: the result for the master, and a clean struct. */
static void
conclude(struct restart *r, struct restart_result *res, int ok,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
conclude(struct restart *r, struct restart_result *res, int ok,
    const char *fmt, ...)
{
	va_list ap;

	res->what = RR_DONE;
	res->ok = ok;
	res->token = r->token;
	va_start(ap, fmt);
	vsnprintf(res->text, sizeof(res->text), fmt, ap);
	va_end(ap);
	logmsg(ok ? PM_LOG_INFO : PM_LOG_ERROR, "restart %s: %s",
	    ok ? "done" : "failed", res->text);
	if (r->phase != RS_REPLACE) {
		/* Its pinned copy goes, unless the running config's is it. */
		pin_release(&r->cfg, r->cfg.pinned != NULL &&
		    (r->cur_pinned == NULL ||
		    strcmp(r->cfg.pinned, r->cur_pinned) != 0));
		task_config_free(&r->cfg);
		prepared_free(&r->prep);
	}
	if (r->probe_pid > 0)
		kill(-r->probe_pid, SIGKILL);
	if (r->probe_fd >= 0)
		close(r->probe_fd);
	/* Not committed: the new preload process is not wanted. */
	if (r->phase != RS_REPLACE && r->spawner != NULL)
		spawner_stop(r->spawner);
	restart_init(r);
}

/* Loads the config file again and checks cur's task in it; 0 or -1. */
static int
reread_config(struct restart *r, const struct task_config *cur,
    const struct overrides *ov, const char *run_dir,
    struct restart_result *res)
{
	struct config_errors errs = { 0, NULL };
	const struct task_config *t = NULL;
	struct buf why = { 0 };
	struct config cfg;
	char err[PLUGIN_ERR_MAX];
	int rc = -1;

	if (config_load(cur->config_path, &cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			buf_printf(&why, "%s%s", i ? "; " : "", errs.msgs[i]);
		conclude(r, res, 0, "%s", why.p != NULL ? why.p : "config error");
		buf_free(&why);
		config_errors_free(&errs);
		return -1;
	}
	for (size_t i = 0; i < cfg.ntasks; i++)
		if (strcmp(cfg.tasks[i].base_title, cur->base_title) == 0)
			t = &cfg.tasks[i];
	if (t == NULL)
		conclude(r, res, 0, "%s: no task with baseTitle \"%s\" any more",
		    cur->config_path, cur->base_title);
	else if (task_config_copy(&r->cfg, t) < 0)
		conclude(r, res, 0, "out of memory");
	else if (prepare_task(&r->cfg, ov, 0, &r->prep, err,
	    sizeof(err)) != 0) {
		task_config_free(&r->cfg);
		conclude(r, res, 0, "%s", err);
	} else if (strcmp(r->prep.run_dir, run_dir) != 0) {
		conclude(r, res, 0, "%s: runDir: cannot change while the task "
		    "runs (stop and start it)", cur->config_path);
	} else if (pin_plugin(&r->cfg, run_dir, err, sizeof(err)) < 0) {
		conclude(r, res, 0, "%s: plugin: %s", cur->config_path, err);
	} else {
		rc = 0;
	}
	config_free(&cfg);
	return rc;
}

void
restart_begin(struct restart *r, struct reply_token tok,
    const struct task_config *cur, unsigned cur_gen,
    const struct overrides *ov, const char *run_dir, char *title,
    struct spawner *spare, struct restart_result *res)
{
	char err[PLUGIN_ERR_MAX];

	res->what = RR_NONE;
	restart_init(r);
	r->token = tok;
	r->gen = cur_gen + 1;
	r->title = title;
	r->spawner = spare;
	r->phase = RS_PROBE;
	r->started = mono_ns();
	r->cur_pinned = cur->pinned;
	logmsg(PM_LOG_INFO, "restart: checking %s", cur->config_path);
	if (reread_config(r, cur, ov, run_dir, res) < 0)
		return;
	title_compose(r->title, PROC_TITLE_MAX, r->cfg.title_prefix,
	    TITLE_WORKER, r->cfg.base_title);
	r->probe_pid = plugin_probe_start(&r->cfg, &r->prep.creds,
	    &r->probe_fd, err, sizeof(err));
	if (r->probe_pid < 0) {
		r->probe_pid = 0;
		conclude(r, res, 0, "plugin: %s", err);
		return;
	}
	r->probe_deadline = mono_ns() + PLUGIN_PROBE_TIMEOUT_S * NS_PER_SEC;
}

int
restart_owns(const struct restart *r, pid_t pid)
{
	return r->probe_pid > 0 && r->probe_pid == pid;
}

/* Starts the canary: one new worker for slot 0, held after work_init. */
static void
start_canary(struct restart *r, struct slots *s, struct restart_result *res)
{
	struct spawn_ctx ctx = { &r->cfg, &r->prep.creds, r->gen, r->title,
	    r->spawner };

	if (slots_spawn(s, 0, &ctx, 1) < 0) {
		conclude(r, res, 0, "cannot start the canary worker");
		return;
	}
	r->canary = s->v[0].next;
	r->phase = RS_CANARY;
	/* From a spawner process, its pid comes later (debug level). */
	if (s->procs[r->canary].pid > 0)
		logmsg(PM_LOG_INFO, "restart: canary worker pid %ld started "
		    "for slot 0", (long)s->procs[r->canary].pid);
	else
		logmsg(PM_LOG_INFO, "restart: canary worker starting for "
		    "slot 0");
}

void
restart_probe_exited(struct restart *r, struct slots *s, int wstatus,
    struct restart_result *res)
{
	char err[PLUGIN_ERR_MAX];
	int fd = r->probe_fd;

	res->what = RR_NONE;
	r->probe_pid = 0;
	r->probe_fd = -1;
	if (r->phase != RS_PROBE) {
		close(fd);
		return;
	}
	if (r->probe_late) {
		close(fd);
		conclude(r, res, 0, "%s: plugin: load check did not finish "
		    "within %d s", r->cfg.config_path, PLUGIN_PROBE_TIMEOUT_S);
		return;
	}
	if (plugin_probe_result(fd, wstatus, err, sizeof(err)) < 0) {
		conclude(r, res, 0, "%s: plugin: %s", r->cfg.config_path, err);
		return;
	}
	/* The new workers come from a new spawner or preload process. */
	spawner_release(r->spawner);
	if (spawner_init_preload(r->spawner, s->epfd, &r->cfg,
	    &r->prep.creds, s->sb, s->ready_fd, r->cfg.preload) < 0) {
		if (r->cfg.preload) {
			conclude(r, res, 0, "cannot start the new preload "
			    "process");
			return;
		}
		/* No process to spare: fork() will do. */
		spawner_release(r->spawner);
		spawner_init_fork(r->spawner);
		start_canary(r, s, res);
		return;
	}
	r->phase = RS_PRELOAD;
	logmsg(r->cfg.preload ? PM_LOG_INFO : PM_LOG_DEBUG, "restart: %s pid "
	    "%ld started for the new config", spawner_what(r->spawner),
	    (long)r->spawner->pid);
}

void
restart_preload_exited(struct restart *r, const char *text,
    struct restart_result *res)
{
	res->what = RR_NONE;
	if (r->phase == RS_PRELOAD || r->phase == RS_CANARY)
		conclude(r, res, 0, "the new %s failed: %s; the old workers "
		    "keep running", spawner_what(r->spawner), text);
}

void
restart_worker_exited(struct restart *r, const struct worker_exit *ex,
    struct restart_result *res)
{
	res->what = RR_NONE;
	if (r->phase == RS_CANARY && ex->idx == r->canary) {
		r->canary = -1;
		conclude(r, res, 0, "the canary worker (slot 0, pid %ld) failed: "
		    "%s; the old workers keep running", (long)ex->pid,
		    ex->text);
	}
}

/* Drives the replace phase one step: start, retire, release, finish. */
static void
replace_step(struct restart *r, struct slots *s, const struct spawn_ctx *ctx,
    int64_t now, struct restart_result *res)
{
	int old_left = 0;

	for (int i = 0; i < s->target; i++) {
		struct slot *sl = &s->v[i];
		int cur_old = sl->cur >= 0 &&
		    s->procs[sl->cur].gen != ctx->gen;

		if (sl->next >= 0 && s->procs[sl->next].state == PROC_HELD) {
			/* The replacement is ready: its predecessor leaves. */
			if (sl->cur < 0)
				slots_release(s, i);
			else if (cur_old)
				slots_stop_proc(s, sl->cur, now);
		} else if (cur_old && sl->next < 0 &&
		    proc_serving(s->procs[sl->cur].state)) {
			if (sl->tried_gen != ctx->gen) {
				/* A full window: the next answer resumes. */
				if (!spawner_can_take(ctx->spawner))
					continue;
				sl->tried_gen = ctx->gen;
				slots_spawn(s, i, ctx, 1);
			} else {
				/* Its replacement failed: respawn makes one. */
				slots_stop_proc(s, sl->cur, now);
			}
		}
	}
	for (int i = 0; i < s->ncells; i++)
		if (s->procs[i].state != PROC_FREE &&
		    s->procs[i].gen != ctx->gen)
			old_left++;
	if (old_left == 0)
		conclude(r, res, 1, "generation %u running with %d "
		    "worker%s", ctx->gen, s->nlive, s->nlive == 1 ? "" : "s");
}

void
restart_step(struct restart *r, struct slots *s, const struct spawn_ctx *ctx,
    int64_t now, struct restart_result *res)
{
	res->what = RR_NONE;
	if (r->phase == RS_IDLE)
		return;
	slots_collect_ready(s);
	switch (r->phase) {
	case RS_IDLE:
		break;
	case RS_PROBE:
		if (r->probe_pid > 0 && !r->probe_late &&
		    now >= r->probe_deadline) {
			kill(-r->probe_pid, SIGKILL);
			kill(r->probe_pid, SIGKILL);
			r->probe_late = 1;
		}
		break;
	case RS_PRELOAD:
		if (spawner_can_take(r->spawner))
			start_canary(r, s, res);
		break;
	case RS_CANARY:
		/* It could not even be started: slot 0 let go of its cell. */
		if (r->canary >= 0 && s->v[0].next != r->canary) {
			r->canary = -1;
			conclude(r, res, 0, "the canary worker (slot 0) %s; "
			    "the old workers keep running", s->v[0].last_exit);
		} else if (r->canary >= 0 &&
		    s->procs[r->canary].state == PROC_HELD) {
			res->what = RR_COMMIT;
		}
		break;
	case RS_REPLACE:
		replace_step(r, s, ctx, now, res);
		break;
	}
}

unsigned
restart_take(struct restart *r, struct slots *s, struct task_config *cfg,
    struct prepared *prep)
{
	if (strcmp(cfg->plugin_sha256, r->cfg.plugin_sha256) != 0)
		logmsg(PM_LOG_INFO, "restart: plugin %s sha256 %.16s -> %.16s",
		    r->cfg.plugin, cfg->plugin_sha256, r->cfg.plugin_sha256);
	else
		logmsg(PM_LOG_INFO, "restart: plugin unchanged (sha256 %.16s)",
		    r->cfg.plugin_sha256);
	/* The old copy is not loaded again: the old workers have it. */
	pin_release(cfg, cfg->pinned != NULL && (r->cfg.pinned == NULL ||
	    strcmp(cfg->pinned, r->cfg.pinned) != 0));
	task_config_free(cfg);
	*cfg = r->cfg;
	memset(&r->cfg, 0, sizeof(r->cfg));
	prepared_free(prep);
	*prep = r->prep;
	prep->task = cfg;
	memset(&r->prep, 0, sizeof(r->prep));
	r->phase = RS_REPLACE;
	/* The canary is slot 0's replacement like any other from now on. */
	s->v[0].tried_gen = r->gen;
	s->release_gen = r->gen;
	return r->gen;
}

void
restart_cancel(struct restart *r, const char *why, unsigned gen,
    struct restart_result *res)
{
	res->what = RR_NONE;
	if (r->phase == RS_IDLE)
		return;
	if (r->phase == RS_REPLACE)
		conclude(r, res, 0, "%s; the rollout to generation %u was cut "
		    "short", why, gen);
	else
		conclude(r, res, 0, "%s", why);
}

int64_t
restart_next_deadline(const struct restart *r)
{
	return r->phase == RS_PROBE && !r->probe_late ? r->probe_deadline : 0;
}
