/*
 * reload.c - restart in place (the restart command, SIGHUP).  A rollout
 * goes through three phases, each of which can only fail before the next:
 *
 *   probe   re-read the config file, check it, load the plugin in a
 *           throwaway child;
 *   canary  start one new worker for slot 0, held after work_init until
 *           the rollout commits; its failure ends the rollout;
 *   replace commit the new config, then give every slot a held
 *           replacement and retire the old worker once the replacement
 *           has finished work_init.
 *
 * Until the commit the old workers are untouched; after it, a slot's old
 * worker leaves only when its replacement is ready, so the task never has
 * zero live workers and never more than one extra per slot.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "notify.h"
#include "plugin.h"
#include "util.h"

/* Frees the rollout's new config and credentials. */
static void
drop_new_config(struct master *m)
{
	task_config_free(&m->ro.cfg);
	creds_free(&m->ro.creds);
}

/* Ends the rollout with an answer to its client and a log line. */
static void
finish(struct master *m, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
finish(struct master *m, int ok, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	logmsg(ok ? PM_LOG_INFO : PM_LOG_ERROR, "restart %s: %s",
	    ok ? "done" : "failed", text);
	if (m->ro.phase != RO_IDLE && m->state == MASTER_RUNNING)
		master_notify_status(m, "READY=1");
	control_reply(m, m->ro.client, ok, "%s", text);
	if (m->ro.phase != RO_REPLACE)
		drop_new_config(m);
	if (m->ro.probe_pid > 0) {
		kill(m->ro.probe_pid, SIGKILL);
		close(m->ro.probe_fd);
	}
	memset(&m->ro, 0, sizeof(m->ro));
	m->ro.client = -1;
	m->ro.canary = -1;
}

/* Loads the config file again and picks our task; 0, or -1 (finished). */
static int
reread_config(struct master *m)
{
	struct config_errors errs = { 0, NULL };
	char dir[RUNDIR_PATH_MAX], err[512];
	struct buf why = { 0 };
	struct config cfg;
	const struct task_config *t = NULL;

	if (config_load(m->cfg.config_path, &cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.count; i++)
			buf_printf(&why, "%s%s", i ? "; " : "", errs.msgs[i]);
		finish(m, 0, "%s", why.p != NULL ? why.p : "config error");
		buf_free(&why);
		config_errors_free(&errs);
		return -1;
	}
	for (size_t i = 0; i < cfg.ntasks; i++)
		if (strcmp(cfg.tasks[i].base_title, m->cfg.base_title) == 0)
			t = &cfg.tasks[i];
	if (t == NULL) {
		finish(m, 0, "%s: no task with baseTitle \"%s\" any more",
		    m->cfg.config_path, m->cfg.base_title);
		config_free(&cfg);
		return -1;
	}
	if (rundir_resolve(t->run_dir, dir, sizeof(dir), err,
	    sizeof(err)) < 0 || strcmp(dir, m->run_dir) != 0) {
		finish(m, 0, "%s: runDir: cannot change while the task runs "
		    "(stop and start it)", m->cfg.config_path);
		config_free(&cfg);
		return -1;
	}
	if (creds_resolve(t->user, t->group, &m->ro.creds, err,
	    sizeof(err)) < 0) {
		finish(m, 0, "%s: %s", m->cfg.config_path, err);
		config_free(&cfg);
		return -1;
	}
	if (task_config_copy(&m->ro.cfg, t) < 0) {
		finish(m, 0, "out of memory");
		config_free(&cfg);
		return -1;
	}
	config_free(&cfg);
	return 0;
}

void
reload_begin(struct master *m, int client, const char *why)
{
	char err[PLUGIN_ERR_MAX];

	if (m->state != MASTER_RUNNING) {
		control_reply(m, client, 0, "the task is stopping");
		return;
	}
	if (m->ro.phase != RO_IDLE) {
		control_reply(m, client, 0, "a restart is already in progress");
		return;
	}
	memset(&m->ro, 0, sizeof(m->ro));
	m->ro.client = client;
	m->ro.canary = -1;
	m->ro.phase = RO_PROBE;
	m->ro.started = mono_ns();
	notify_send("RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=restarting",
	    (long long)(m->ro.started / NS_PER_US));
	logmsg(PM_LOG_INFO, "restart (%s): checking %s", why,
	    m->cfg.config_path);
	if (reread_config(m) < 0)
		return;
	m->ro.probe_pid = plugin_probe_start(&m->ro.cfg, &m->ro.creds,
	    &m->ro.probe_fd, err, sizeof(err));
	if (m->ro.probe_pid < 0) {
		m->ro.probe_pid = 0;
		finish(m, 0, "plugin: %s", err);
		return;
	}
	m->ro.probe_deadline = mono_ns() + PLUGIN_PROBE_TIMEOUT_S * NS_PER_SEC;
}

void
reload_cancel(struct master *m, const char *why)
{
	if (m->ro.phase == RO_IDLE)
		return;
	if (m->ro.phase == RO_REPLACE)
		finish(m, 0, "%s; the rollout to generation %u was cut short",
		    why, m->gen);
	else
		finish(m, 0, "%s", why);
}

/* Starts the canary: one new worker for slot 0, held after work_init. */
static void
start_canary(struct master *m)
{
	m->ro.gen = m->gen + 1;
	if (slots_spawn(m, 0, &m->ro.cfg, &m->ro.creds, m->ro.gen, 1) < 0) {
		finish(m, 0, "cannot start the canary worker");
		return;
	}
	m->ro.canary = m->slots[0].next;
	m->ro.phase = RO_CANARY;
	logmsg(PM_LOG_INFO, "restart: canary worker pid %ld started for "
	    "slot 0", (long)m->procs[m->ro.canary].pid);
}

void
reload_probe_exited(struct master *m, int wstatus)
{
	char err[PLUGIN_ERR_MAX];
	int fd = m->ro.probe_fd;

	m->ro.probe_pid = 0;
	if (m->ro.phase != RO_PROBE) {
		close(fd);
		return;
	}
	if (m->ro.probe_deadline == 0) {
		close(fd);
		finish(m, 0, "%s: plugin: load check did not finish within "
		    "%d s", m->cfg.config_path, PLUGIN_PROBE_TIMEOUT_S);
		return;
	}
	if (plugin_probe_result(fd, wstatus, err, sizeof(err)) < 0) {
		finish(m, 0, "%s: plugin: %s", m->cfg.config_path, err);
		return;
	}
	start_canary(m);
}

/* Commits the new config: from here on, workers are replaced. */
static void
commit(struct master *m)
{
	int64_t now = mono_ns();
	int old_target = m->target;

	task_config_free(&m->cfg);
	m->cfg = m->ro.cfg;
	memset(&m->ro.cfg, 0, sizeof(m->ro.cfg));
	creds_free(&m->creds);
	m->creds = m->ro.creds;
	memset(&m->ro.creds, 0, sizeof(m->ro.creds));
	m->gen = m->ro.gen;
	m->ro.phase = RO_REPLACE;
	if (m->cfg.log_level >= 0)
		log_setup(m->cfg.log_level, m->title);
	atomic_store(&m->sb->rss_warned, 0);
	m->run_once = m->cfg.check_interval <= 0;
	m->tick_at = m->run_once ? 0 :
	    now + m->cfg.check_interval * NS_PER_SEC;

	if (slots_resize(m, m->cfg.max_workers) < 0)
		logmsg(PM_LOG_ERROR, "restart: out of memory resizing slots");
	logmsg(PM_LOG_INFO, "restart: canary ready; replacing workers "
	    "(generation %u, %d -> %d workers)", m->gen, old_target,
	    m->target);
	/* A restart is how a fixed plugin is deployed: no waiting. */
	for (int i = 0; i < m->target; i++) {
		m->slots[i].failures = 0;
		if (m->slots[i].cur < 0 && m->slots[i].next < 0)
			m->slots[i].respawn_at = now;
	}
	m->slots[0].tried_gen = m->gen;
	reload_step(m, now);
}

void
reload_held(struct master *m)
{
	reload_step(m, mono_ns());
}

void
reload_worker_exited(struct master *m, int idx, const char *text)
{
	if (m->ro.phase == RO_CANARY && idx == m->ro.canary) {
		m->ro.canary = -1;
		finish(m, 0, "the canary worker (slot 0, pid %ld) failed: "
		    "%s; the old workers keep running",
		    (long)m->procs[idx].pid, text);
	}
}

/* Has a held worker finished work_init (and not failed since)? */
static int
is_ready(const struct master *m, int idx)
{
	uint32_t ph = atomic_load(&m->sb->cells[idx].phase);

	return ph >= PHASE_HELD && ph <= PHASE_BUSY;
}

/* Drives the replace phase one step: start, retire, promote, finish. */
static void
replace_step(struct master *m, int64_t now)
{
	int old_left = 0;

	for (int i = 0; i < m->nslots; i++) {
		struct slot *s = &m->slots[i];
		int cur_old = s->cur >= 0 && m->procs[s->cur].gen != m->gen;

		if (i >= m->target)
			continue;
		if (s->next >= 0 && is_ready(m, s->next)) {
			/* The replacement is ready: its predecessor leaves. */
			if (s->cur < 0)
				slots_promote(m, i);
			else if (cur_old)
				slots_retire(m, s->cur, now);
		} else if (cur_old && s->next < 0 &&
		    !m->procs[s->cur].retiring) {
			if (s->tried_gen != m->gen) {
				s->tried_gen = m->gen;
				slots_spawn(m, i, &m->cfg, &m->creds, m->gen, 1);
			} else {
				/* Its replacement failed: respawn makes a new one. */
				slots_retire(m, s->cur, now);
			}
		}
	}
	for (int i = 0; i < m->ncells; i++)
		if (m->procs[i].pid != 0 && m->procs[i].gen != m->gen)
			old_left++;
	if (old_left == 0)
		finish(m, 1, "generation %u running with %d workers", m->gen,
		    m->nlive);
}

void
reload_step(struct master *m, int64_t now)
{
	switch (m->ro.phase) {
	case RO_IDLE:
		break;
	case RO_PROBE:
		if (m->ro.probe_pid > 0 && now >= m->ro.probe_deadline) {
			kill(-m->ro.probe_pid, SIGKILL);
			kill(m->ro.probe_pid, SIGKILL);
			m->ro.probe_deadline = 0;
		}
		break;
	case RO_CANARY:
		if (m->ro.canary >= 0 && is_ready(m, m->ro.canary))
			commit(m);
		break;
	case RO_REPLACE:
		replace_step(m, now);
		break;
	}
}

int64_t
reload_next_deadline(const struct master *m)
{
	return m->ro.phase == RO_PROBE ? m->ro.probe_deadline : 0;
}
