/*
 * master.c - the master's event loop and lifecycle.  One thread blocks in
 * one epoll_wait() over a signalfd (every signal is read there, never in
 * a handler) and whatever else the master serves; its timeout is the
 * nearest deadline (a respawn, a kill, the reconcile tick), so an idle
 * master does not wake at all.  The master runs no plugin code.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "notify.h"
#include "policy.h"
#include "util.h"

/* The signals the loop reads from its signalfd. */
static const int master_signals[] = {
	SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGTTIN, SIGTTOU, SIGALRM, SIGCHLD
};

void
master_signal_set(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < nitems(master_signals); i++)
		sigaddset(set, master_signals[i]);
}

/*
 * Resets every disposition (a nohup'd or oddly started master must still
 * see SIGHUP and SIGCHLD; workers inherit clean defaults), then routes
 * master_signals to a signalfd.  The signalfd, or -1.
 */
static int
setup_signals(void)
{
	sigset_t set;

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	/* Clients that hang up must not kill the master. */
	signal(SIGPIPE, SIG_IGN);
	master_signal_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

void
master_begin_stop(struct master *m, const char *why)
{
	int64_t now = mono_ns();

	if (m->state == MASTER_STOPPING)
		return;
	reload_cancel(m, "the task is stopping");
	m->state = MASTER_STOPPING;
	m->stop_deadline = now + (int64_t)m->cfg.stop_timeout * NS_PER_SEC;
	logmsg(PM_LOG_INFO, "stopping (%s): %d workers to finish", why,
	    m->nlive);
	notify_send("STOPPING=1\nSTATUS=stopping (%s)", why);
	for (int i = 0; i < m->ncells; i++) {
		if (m->procs[i].pid == 0)
			continue;
		slots_request_exit(m, i);
		/* A kill already due sooner (workTimeout's grace) stands. */
		if (m->procs[i].kill_at == 0 ||
		    m->procs[i].kill_at > m->stop_deadline)
			m->procs[i].kill_at = m->stop_deadline;
	}
	for (int i = 0; i < m->nslots; i++)
		m->slots[i].respawn_at = 0;
	/* stopTimeout 0: no grace at all. */
	if (m->cfg.stop_timeout == 0)
		slots_kill_overdue(m, now);
}

int
master_scale(struct master *m, int target, const char *why, char *msg,
    size_t size)
{
	int from = m->target;

	if (target < 1 || target > CONFIG_MAX_WORKERS) {
		snprintf(msg, size, "worker count stays %d (allowed: 1 to %d)",
		    m->target, CONFIG_MAX_WORKERS);
		logmsg(PM_LOG_NOTICE, "%s: %s", why, msg);
		return -1;
	}
	if (m->state != MASTER_RUNNING) {
		snprintf(msg, size, "the task is stopping");
		return -1;
	}
	if (m->ro.phase != RO_IDLE) {
		snprintf(msg, size, "a restart is in progress");
		return -1;
	}
	if (slots_resize(m, target) < 0) {
		snprintf(msg, size, "out of memory");
		return -1;
	}
	snprintf(msg, size, "workers %d -> %d", from, target);
	logmsg(PM_LOG_INFO, "%s: %s", why, msg);
	slots_respawn_due(m, mono_ns(), 0);
	master_notify_status(m, NULL);
	return 0;
}

void
master_notify_status(struct master *m, const char *state)
{
	notify_send("%s%sSTATUS=%d/%d workers, generation %u",
	    state != NULL ? state : "", state != NULL ? "\n" : "", m->nlive,
	    m->target, m->gen);
}

int
master_wakeup(struct master *m, const char *why)
{
	int before = m->nlive;

	slots_respawn_due(m, mono_ns(), 1);
	logmsg(PM_LOG_INFO, "%s: checked workers, respawned %d", why,
	    m->nlive - before);
	return m->nlive - before;
}

/* Reads every pending signal and acts on it. */
static void
handle_signals(struct master *m)
{
	struct signalfd_siginfo si;
	char name[32], msg[128];

	while (read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			slots_reap(m);
			break;
		case SIGTERM:
		case SIGINT:
			master_begin_stop(m, policy_signal_name(
			    (int)si.ssi_signo, name, sizeof(name)));
			break;
		case SIGUSR1:
			if (log_reopen() < 0)
				logmsg(PM_LOG_ERROR, "reopening the log: %s",
				    strerror(errno));
			atomic_fetch_add(&m->sb->log_generation, 1);
			logmsg(PM_LOG_INFO, "log reopened (SIGUSR1)");
			break;
		case SIGTTIN:
			master_scale(m, m->target + 1, "SIGTTIN", msg,
			    sizeof(msg));
			break;
		case SIGTTOU:
			master_scale(m, m->target - 1, "SIGTTOU", msg,
			    sizeof(msg));
			break;
		case SIGALRM:
			master_wakeup(m, "SIGALRM");
			break;
		case SIGHUP:
			reload_begin(m, -1, "SIGHUP");
			break;
		}
	}
	/* A SIGCHLD may have been coalesced with another signal's read. */
	slots_reap(m);
}

/* The epoll timeout for the nearest deadline: -1 (none) or ms, rounded up. */
static int
wait_ms(struct master *m, int64_t now)
{
	int64_t d[] = { slots_next_deadline(m), m->tick_at,
	    control_next_deadline(m), reload_next_deadline(m), m->notify_at };
	int64_t next = 0, left;

	for (size_t i = 0; i < nitems(d); i++)
		if (d[i] != 0 && (next == 0 || d[i] < next))
			next = d[i];
	if (next == 0)
		return -1;
	left = next - now;
	if (left <= 0)
		return 0;
	if (left > (int64_t)3600 * 1000 * NS_PER_MS)
		left = (int64_t)3600 * 1000 * NS_PER_MS;
	return (int)((left + NS_PER_MS - 1) / NS_PER_MS);
}

/* Acts on every deadline that has passed. */
static void
run_timers(struct master *m, int64_t now)
{
	control_expire(m, now);
	if (m->notify_at != 0 && m->notify_at <= now) {
		master_notify_status(m, "WATCHDOG=1");
		m->notify_at = now + notify_watchdog_ns();
	}
	slots_watchdog(m, now);
	slots_kill_overdue(m, now);
	reload_step(m, now);
	slots_respawn_due(m, now, 0);
	if (m->tick_at != 0 && m->tick_at <= now) {
		/* The reconcile tick: a slot without a worker gets one. */
		for (int i = 0; i < m->target; i++) {
			struct slot *s = &m->slots[i];

			if (s->cur < 0 && s->next < 0 && s->respawn_at == 0 &&
			    m->state == MASTER_RUNNING && !m->run_once)
				s->respawn_at = now;
		}
		slots_respawn_due(m, now, 0);
		m->tick_at = now + m->cfg.check_interval * NS_PER_SEC;
	}
}

/* Routes one epoll event to its handler. */
static void
dispatch(struct master *m, uint64_t data, uint32_t events)
{
	int idx = (int)(uint32_t)data;
	uint64_t count;

	switch ((enum ev_tag)(data >> 32)) {
	case EV_SIGNAL:
		handle_signals(m);
		break;
	case EV_LISTEN:
		control_accept(m);
		break;
	case EV_CLIENT:
		control_event(m, idx, events);
		break;
	case EV_HELD:
		/* A held worker finished work_init. */
		while (read(m->held_fd, &count, sizeof(count)) > 0)
			;
		reload_held(m);
		break;
	}
}

/* Tells a waiting "run -d" that the master is up. */
static void
report_ready(struct master *m)
{
	master_notify_status(m, "READY=1");
	if (notify_watchdog_ns() > 0)
		m->notify_at = mono_ns() + notify_watchdog_ns();
	if (m->ready_fd < 0)
		return;
	(void)write_all(m->ready_fd, "ok", 2);
	close(m->ready_fd);
	m->ready_fd = -1;
}

/* Sets up everything the loop needs; 0, or -1 after logging why. */
static int
master_setup(struct master *m)
{
	struct epoll_event ev;

	title_compose(m->title, sizeof(m->title), m->cfg.title_prefix,
	    TITLE_MASTER, m->cfg.base_title);
	title_set(m->title);
	log_set_identity(m->title);
	/* Orphans of workers' children come to us, not to init. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	notify_init();

	if ((m->sigfd = setup_signals()) < 0) {
		logmsg(PM_LOG_ERROR, "signalfd: %s", strerror(errno));
		return -1;
	}
	if ((m->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		logmsg(PM_LOG_ERROR, "epoll: %s", strerror(errno));
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = EV_DATA(EV_SIGNAL, 0);
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->sigfd, &ev) < 0) {
		logmsg(PM_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	if ((m->held_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		logmsg(PM_LOG_ERROR, "eventfd: %s", strerror(errno));
		return -1;
	}
	ev.data.u64 = EV_DATA(EV_HELD, 0);
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->held_fd, &ev) < 0) {
		logmsg(PM_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	if (control_open(m) < 0)
		return -1;
	if ((m->sb = scoreboard_create()) == NULL) {
		logmsg(PM_LOG_ERROR, "scoreboard: %s", strerror(errno));
		return -1;
	}
	if (slots_init(m) < 0) {
		logmsg(PM_LOG_ERROR, "slot table: out of memory");
		return -1;
	}
	m->run_once = m->cfg.check_interval <= 0;
	m->started_real = real_ns();
	if (!m->run_once)
		m->tick_at = mono_ns() + m->cfg.check_interval * NS_PER_SEC;
	return 0;
}

/* Releases what master_setup() and the loop acquired. */
static void
master_teardown(struct master *m)
{
	reload_cancel(m, "the master is exiting");
	control_close(m);
	if (m->held_fd >= 0)
		close(m->held_fd);
	pidfile_release(m->run_dir, m->cfg.base_title, m->pid_fd);
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->sigfd >= 0)
		close(m->sigfd);
	if (m->ready_fd >= 0)
		close(m->ready_fd);
	slots_free(m);
	scoreboard_destroy(m->sb);
	task_config_free(&m->cfg);
}

int
master_run(const struct task_config *cfg, const struct creds *creds,
    const char *run_dir, int pid_fd, int ready_fd)
{
	struct master m;
	struct epoll_event evs[16];
	int status;

	memset(&m, 0, sizeof(m));
	m.epfd = m.sigfd = m.listen_fd = m.held_fd = -1;
	m.ro.client = m.ro.canary = -1;
	m.gen = 1;
	m.pid_fd = pid_fd;
	m.ready_fd = ready_fd;
	m.creds = *creds;
	copy_str(m.run_dir, run_dir, sizeof(m.run_dir));
	if (task_config_copy(&m.cfg, cfg) < 0 || master_setup(&m) < 0) {
		master_teardown(&m);
		return 1;
	}

	logmsg(PM_LOG_INFO, "started: %d workers of %s", m.target,
	    m.cfg.plugin);
	for (int i = 0; i < m.target; i++)
		slots_spawn(&m, i, &m.cfg, &m.creds, m.gen, 0);
	report_ready(&m);

	for (;;) {
		int64_t now = mono_ns();
		int n;

		run_timers(&m, now);
		if (m.nlive == 0 && (m.state == MASTER_STOPPING || m.run_once)) {
			slots_kill_strays(&m);
			slots_reap(&m);
			break;
		}
		n = epoll_wait(m.epfd, evs, (int)nitems(evs),
		    wait_ms(&m, now));
		if (n < 0 && errno != EINTR) {
			logmsg(PM_LOG_ERROR, "epoll_wait: %s", strerror(errno));
			master_begin_stop(&m, "internal error");
			continue;
		}
		for (int i = 0; i < n; i++)
			dispatch(&m, evs[i].data.u64, evs[i].events);
	}

	if (m.run_once && m.state == MASTER_RUNNING) {
		status = m.any_failed ? 1 : 0;
		logmsg(PM_LOG_INFO, "all workers done (run once)%s",
		    m.any_failed ? "; some failed" : "");
	} else {
		status = 0;
		logmsg(PM_LOG_INFO, "stopped");
	}
	master_teardown(&m);
	return status;
}
