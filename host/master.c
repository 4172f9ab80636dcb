/*
 * master.c - the master's event loop and lifecycle.  One thread blocks in
 * one epoll_wait() over a signalfd (every signal is read there, never in
 * a handler) and whatever else the master serves; its timeout is the
 * nearest deadline (a respawn, a kill, a client's budget), so an idle
 * master does not wake at all.  The master runs no plugin code.
 *
 * Control flows one way: the loop routes each child's exit by pid (to the
 * slots, or to a restart's probe), each request to its command's handler
 * (serve.c), and what slots and restart report back as values it acts
 * on (a commit, an answer to a waiting client).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "evtag.h"
#include "log.h"
#include "master.h"
#include "notify.h"
#include "pin.h"
#include "policy.h"
#include "util.h"

#define LOG_DRAIN_MS	1000	/* at exit, for lines a slow reader lags */
#define SCAN_WINDOW_NS	NS_PER_MS	/* slot scans: at most SCAN_BURST */
#define SCAN_BURST	2		/* per window (see scan_turn) */

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

/* What workers of the running config are spawned with. */
static struct spawn_ctx
spawn_ctx(const struct master *m)
{
	struct spawn_ctx ctx = { &m->cfg, &m->prep.creds, m->gen,
	    m->wtitle[m->gen & 1], (struct spawner *)&m->spawners[m->cur] };

	return ctx;
}

/* The uid a task's log file may belong to besides root's: its user's. */
static uid_t
task_uid(const struct master *m)
{
	return m->prep.creds.set ? m->prep.creds.uid : (uid_t)-1;
}

/* Names the workers of the current generation (two may be alive). */
static void
name_workers(struct master *m)
{
	title_compose(m->wtitle[m->gen & 1], sizeof(m->wtitle[0]),
	    m->cfg.title_prefix, TITLE_WORKER, m->cfg.base_title);
}

static void
notify_status(const struct master *m, const char *state)
{
	notify_send("%s%sSTATUS=%d/%d workers, generation %u",
	    state != NULL ? state : "", state != NULL ? "\n" : "",
	    m->slots.nlive, m->slots.target, m->gen);
}

/* The log format in force: the command line's, else the config's. */
static enum log_format
effective_format(const struct master *m)
{
	return m->ov.log_format >= 0 ? (enum log_format)m->ov.log_format :
	    m->cfg.log_format ? LOG_JSON : LOG_TEXT;
}

/* The log level in force: the command line's, else the config's. */
static int
effective_level(const struct master *m)
{
	return m->ov.log_level >= 0 ? m->ov.log_level :
	    m->cfg.log_level >= 0 ? m->cfg.log_level : PM_LOG_INFO;
}

static void handle_restart(struct master *m, struct restart_result *res);

/*
 * Two pipes a worker (stdout, stderr) while the descriptor limit allows
 * them for an old and a new worker of every slot; else one pipe for both,
 * said once: stderr's lines then log at info, records keep their level.
 */
static void
choose_streams(struct master *m)
{
	struct rlimit rl;
	int merged;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	merged = rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < 4 * (rlim_t)m->slots.target + 256;
	if (merged && !m->slots.merged_streams)
		logmsg(PM_LOG_NOTICE, "%d workers need more descriptors than "
		    "the limit of %llu allows for two pipes each: a worker's "
		    "stdout and stderr share one, and its stderr lines log at "
		    "info (raise LimitNOFILE to keep them apart)",
		    m->slots.target, (unsigned long long)rl.rlim_cur);
	m->slots.merged_streams = merged;
}
static void report_ready(struct master *m);
static void report_failure(struct master *m, const char *why);
static void check_started(struct master *m);

/* strictPaths false: says, each start, what the check let through. */
static void
warn_weak_paths(const struct master *m)
{
	if (m->prep.warnings[0] != '\0')
		logmsg(PM_LOG_WARNING, "strictPaths is false, allowing: %s",
		    m->prep.warnings);
}

/*
 * Takes the restart's new config.  The command line's overrides hold; a
 * changed log file is opened (the old one stays if it cannot be).
 */
static void
commit(struct master *m, char *note, size_t size)
{
	char old_log[PATH_MAX], err[PATH_MAX + 256];
	int64_t now = mono_ns();
	int old_target = m->slots.target;

	note[0] = '\0';
	copy_str(old_log, m->prep.log_path, sizeof(old_log));
	m->gen = restart_take(&m->rs, &m->slots, &m->cfg, &m->prep);
	/* The restart's spawner (a new preload process, or fork) takes
	 * over; the old preload process goes. */
	spawner_stop(&m->spawners[m->cur]);
	m->cur = !m->cur;
	spawner_retarget(&m->spawners[m->cur], &m->cfg, &m->prep.creds);
	log_setup(effective_level(m), m->title);
	log_set_task(m->cfg.base_title, effective_format(m));
	if (strcmp(old_log, m->prep.log_path) != 0) {
		logmsg(PM_LOG_INFO, "restart: the log moves to %s",
		    m->prep.log_path[0] != '\0' ? m->prep.log_path : "stderr");
		if (log_open(m->prep.log_path[0] != '\0' ? m->prep.log_path :
		    NULL, task_uid(m), err, sizeof(err)) < 0) {
			snprintf(note, size, "; log file: %.200s; still logging "
			    "to %.160s", err, old_log[0] != '\0' ? old_log :
			    "stderr");
			logmsg(PM_LOG_ERROR, "restart: log file: %s; the log "
			    "stays where it was", err);
			copy_str(m->prep.log_path, old_log,
			    sizeof(m->prep.log_path));
		} else {
			if (m->ov.detached)
				log_own_stdio();
			logmsg(PM_LOG_INFO, "restart: logging to %s (was %s)",
			    m->prep.log_path[0] != '\0' ? m->prep.log_path :
			    "stderr", old_log[0] != '\0' ? old_log : "stderr");
		}
	}
	warn_weak_paths(m);
	atomic_store(&m->sb->rss_warned, 0);
	m->mode = m->cfg.check_interval > 0 ? MODE_RESIDENT : MODE_RUN_ONCE;
	m->slots.respawn = m->mode == MODE_RESIDENT;
	m->slots.stop_timeout = m->cfg.stop_timeout;
	if (slots_resize(&m->slots, m->cfg.max_workers, now) == 0)
		choose_streams(m);
	else
		logmsg(PM_LOG_ERROR, "restart: out of memory resizing slots");
	logmsg(PM_LOG_INFO, "restart: canary ready; replacing workers "
	    "(generation %u, %d -> %d workers)", m->gen, old_target,
	    m->slots.target);
	/* A restart is how a fixed plugin is deployed: no waiting. */
	for (int i = 0; i < m->slots.target; i++) {
		m->slots.v[i].failures = 0;
		if (m->slots.v[i].state == SLOT_WAITING)
			m->slots.v[i].respawn_at = now;
	}
}

/* Acts on what a restart reported, until it reports nothing more. */
static void
handle_restart(struct master *m, struct restart_result *res)
{
	char note[512] = "";

	while (res->what != RR_NONE) {
		struct spawn_ctx ctx;

		if (res->what == RR_DONE) {
			if (m->state != MASTER_STOPPING)
				notify_status(m, "READY=1");
			if (res->ok && note[0] != '\0') {
				size_t n = strlen(res->text);

				snprintf(res->text + n, sizeof(res->text) - n,
				    "%s", note);
			}
			control_answer(&m->ctl, res->token, NULL, res->ok,
			    res->text);
			return;
		}
		commit(m, note, sizeof(note));
		ctx = spawn_ctx(m);
		restart_step(&m->rs, &m->slots, &ctx, mono_ns(), res);
	}
}

void
master_stop(struct master *m, const char *why)
{
	struct restart_result res;
	int64_t now = mono_ns();

	if (m->state == MASTER_STOPPING)
		return;
	restart_cancel(&m->rs, "the task is stopping", m->gen, &res);
	handle_restart(m, &res);
	m->state = MASTER_STOPPING;
	m->stop_deadline = now + (int64_t)m->cfg.stop_timeout * NS_PER_SEC;
	logmsg(PM_LOG_INFO, "stopping (%s): %d worker%s to finish", why,
	    m->slots.nlive, m->slots.nlive == 1 ? "" : "s");
	notify_send("STOPPING=1\nSTATUS=stopping (%s)", why);
	slots_stop_all(&m->slots, now);
	spawner_stop(&m->spawners[0]);
	spawner_stop(&m->spawners[1]);
	/* stopTimeout 0: no grace at all. */
	if (m->cfg.stop_timeout == 0)
		slots_run_deadlines(&m->slots, &m->cfg, now);
}

int
master_scale(struct master *m, int target, const char *why, char *msg,
    size_t size)
{
	struct spawn_ctx ctx = spawn_ctx(m);
	int from = m->slots.target;
	int64_t now = mono_ns();

	if (target < 1 || target > CONFIG_MAX_WORKERS) {
		snprintf(msg, size, "worker count stays %d (allowed: 1 to %d)",
		    from, CONFIG_MAX_WORKERS);
		logmsg(PM_LOG_NOTICE, "%s: %s", why, msg);
		return -1;
	}
	if (m->state == MASTER_STOPPING) {
		snprintf(msg, size, "the task is stopping");
		return -1;
	}
	if (m->rs.phase != RS_IDLE) {
		snprintf(msg, size, "a restart is in progress");
		logmsg(PM_LOG_NOTICE, "%s: refused: %s", why, msg);
		return -1;
	}
	if (slots_resize(&m->slots, target, now) == 0)
		choose_streams(m);
	if (m->slots.target != target) {
		snprintf(msg, size, "out of memory");
		return -1;
	}
	snprintf(msg, size, "scaled %d -> %d", from, target);
	logmsg(PM_LOG_INFO, "%s: %s", why, msg);
	if (m->mode == MODE_RESIDENT)
		slots_respawn_due(&m->slots, &ctx, now, 0);
	notify_status(m, NULL);
	return 0;
}

int
master_wakeup(struct master *m, const char *why)
{
	struct spawn_ctx ctx = spawn_ctx(m);
	int n = 0;

	if (m->state != MASTER_STOPPING)
		n = slots_respawn_due(&m->slots, &ctx, mono_ns(), 1);
	logmsg(PM_LOG_INFO, "%s: checked workers, respawned %d", why, n);
	return n;
}

int
master_restart(struct master *m, struct reply_token tok, const char *why,
    char *msg, size_t size)
{
	struct restart_result res;

	if (m->state == MASTER_STOPPING) {
		snprintf(msg, size, "the task is stopping");
		return -1;
	}
	if (m->rs.phase != RS_IDLE) {
		snprintf(msg, size, "a restart is already in progress");
		logmsg(PM_LOG_NOTICE, "restart (%s): refused: %s", why, msg);
		return -1;
	}
	/* Answered when the rollout ends, however long it takes. */
	control_defer(&m->ctl, tok);
	logmsg(PM_LOG_INFO, "restart (%s)", why);
	notify_send("RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=restarting",
	    (long long)(mono_ns() / NS_PER_US));
	restart_begin(&m->rs, tok, &m->cfg, m->gen, &m->ov, m->run_dir,
	    m->wtitle[(m->gen + 1) & 1], &m->spawners[!m->cur], &res);
	handle_restart(m, &res);
	return 0;
}

/* Which of the spawners pid is the preload process of, or -1. */
static int
owning_spawner(const struct master *m, pid_t pid)
{
	for (int k = 0; k < 2; k++)
		if (spawner_owns(&m->spawners[k], pid))
			return k;
	return -1;
}

/* Reaps every exited child and routes its exit by pid. */
static void
reap(struct master *m)
{
	for (;;) {
		struct restart_result res = { RR_NONE, 0, "", NO_CLIENT };
		struct worker_exit ex;
		char text[SPAWNER_TEXT_MAX];
		siginfo_t si;
		int wstatus, idx, k;
		pid_t pid;

		/* Peek first: the group is killed while its id cannot be reused. */
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid == 0)
			return;
		pid = si.si_pid;
		idx = slots_find_pid(&m->slots, pid);
		if (idx >= 0)
			kill(-pid, SIGKILL);
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		if (idx >= 0) {
			slots_exited(&m->slots, idx, wstatus, mono_ns(), &ex);
			if (ex.cls == EXIT_FAILED && m->state != MASTER_STOPPING)
				m->any_failed = 1;
			restart_worker_exited(&m->rs, &ex, &res);
		} else if (restart_owns(&m->rs, pid)) {
			restart_probe_exited(&m->rs, &m->slots, wstatus, &res);
		} else if ((k = owning_spawner(m, pid)) >= 0) {
			spawner_exited(&m->spawners[k], wstatus, mono_ns(),
			    text, sizeof(text));
			slots_abandon(&m->slots, &m->spawners[k]);
			if (k != m->cur)
				restart_preload_exited(&m->rs, text, &res);
			else if (m->state == MASTER_STARTING) {
				char why[EXIT_TEXT_MAX + 32];

				snprintf(why, sizeof(why), "the %s failed: %s",
				    spawner_what(&m->spawners[k]), text);
				report_failure(m, why);
			}
		} else {
			/* Perhaps a worker its spawner has not named yet. */
			m->early[m->nearly % nitems(m->early)].pid = pid;
			m->early[m->nearly % nitems(m->early)].wstatus =
			    wstatus;
			m->nearly++;
			logmsg(PM_LOG_DEBUG, "reaped pid %ld (not a worker)",
			    (long)pid);
		}
		handle_restart(m, &res);
	}
}

/* Reads every pending signal and acts on it. */
static void
handle_signals(struct master *m)
{
	struct signalfd_siginfo si;
	char name[32], msg[128], err[PATH_MAX + 256];

	/*
	 * Workers already dead are seen first: signalfd hands out SIGALRM
	 * (or TTIN, TERM, ...) before a SIGCHLD pending with it, and a
	 * wakeup must find the slot of a worker killed just before it.
	 */
	reap(m);
	while (read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(m);
			break;
		case SIGTERM:
		case SIGINT:
			master_stop(m, policy_signal_name((int)si.ssi_signo,
			    name, sizeof(name)));
			break;
		case SIGUSR1:
			if (log_reopen(err, sizeof(err)) < 0) {
				logmsg(PM_LOG_ERROR, "reopening the log: %s; "
				    "the old log stays open", err);
				break;
			}
			if (m->ov.detached)
				log_own_stdio();
			logmsg(PM_LOG_INFO, "log reopened (SIGUSR1)");
			break;
		case SIGTTIN:
			master_scale(m, m->slots.target + 1, "SIGTTIN", msg,
			    sizeof(msg));
			break;
		case SIGTTOU:
			master_scale(m, m->slots.target - 1, "SIGTTOU", msg,
			    sizeof(msg));
			break;
		case SIGALRM:
			master_wakeup(m, "SIGALRM");
			break;
		case SIGHUP:
			master_restart(m, NO_CLIENT, "SIGHUP", msg,
			    sizeof(msg));
			break;
		}
	}
	/* A SIGCHLD may have been coalesced with another signal's read. */
	reap(m);
}

/* Executes one control request through its command's handler. */
static void
serve(struct master *m, const struct request *rq)
{
	struct reply rp;
	enum serve_result r;

	memset(&rp, 0, sizeof(rp));
	r = rq->cmd->serve(m, rq, &rp);
	if (r != SERVE_LATER)
		control_answer(&m->ctl, rq->token, &rp.body, r == SERVE_OK,
		    rp.text);
	buf_free(&rp.body);
}

/*
 * The slots' deadline.  A turn that scanned them computes it; a turn
 * that did not takes the last one seen if it is still ahead, and in any
 * case the end of the scans' window, when they run again.
 */
static int64_t
slots_deadline(struct master *m, int64_t now)
{
	int64_t t = m->slots_next, end = m->scan_window + SCAN_WINDOW_NS;

	if (m->scanned)
		return m->slots_next = slots_next_deadline(&m->slots, &m->cfg);
	return t > now && t < end ? t : end;
}

/* The epoll timeout for the nearest deadline: -1 (none) or ms, rounded up. */
static int
wait_ms(struct master *m, int64_t now)
{
	int64_t d[] = { slots_deadline(m, now), m->tick_at,
	    control_next_deadline(&m->ctl), restart_next_deadline(&m->rs),
	    m->notify_at, spawner_next_deadline(&m->spawners[m->cur]) };
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

/*
 * The reconcile tick (checkWorkerInterval) is armed only while a slot
 * wants a worker and has none planned: exits are seen at once, so a full
 * or backing-off task never needs it and an idle master sleeps.
 */
static void
arm_tick(struct master *m, int64_t now)
{
	if (m->mode != MODE_RESIDENT || m->state == MASTER_STOPPING ||
	    !slots_any_unattended(&m->slots))
		m->tick_at = 0;
	else if (m->tick_at == 0)
		m->tick_at = now + m->cfg.check_interval * NS_PER_SEC;
}

/* The first workers, once the spawner can start them. */
static void
start_workers(struct master *m)
{
	struct spawn_ctx ctx = spawn_ctx(m);

	/* As far as the spawner's window goes; its answers resume it. */
	for (; m->start_next < m->slots.target; m->start_next++) {
		if (!spawner_can_take(ctx.spawner))
			return;
		if (m->slots.v[m->start_next].state == SLOT_WAITING)
			slots_spawn(&m->slots, m->start_next, &ctx, 0);
	}
	m->spawned = 1;
}

/*
 * May this turn scan every slot?  Each scan is O(workers); a burst of
 * events (10 000 workers starting or ending, a flood of output, a large
 * status reply going out) would make them O(workers) per event.  So at
 * most SCAN_BURST turns per SCAN_WINDOW_NS scan: a quiet master scans
 * on every event, a busy one acts on its deadlines at most that late.
 */
static int
scan_turn(struct master *m, int64_t now)
{
	if (now - m->scan_window >= SCAN_WINDOW_NS) {
		m->scan_window = now;
		m->scans = 0;
	}
	return m->scans++ < SCAN_BURST;
}

/* Acts on every deadline that has passed. */
static void
run_timers(struct master *m, int64_t now)
{
	struct restart_result res;
	struct spawn_ctx ctx = spawn_ctx(m);

	control_expire(&m->ctl, now);
	spawner_tick(&m->spawners[m->cur], now);
	m->slots.paused = !spawner_can_take(&m->spawners[m->cur]);
	if (!m->spawned && !m->slots.paused && m->state != MASTER_STOPPING)
		start_workers(m);
	m->scanned = scan_turn(m, now);
	if (m->scanned)
		check_started(m);
	if (m->notify_at != 0 && m->notify_at <= now) {
		notify_status(m, "WATCHDOG=1");
		m->notify_at = now + notify_watchdog_ns();
	}
	if (m->scanned)
		slots_run_deadlines(&m->slots, &m->cfg, now);
	restart_step(&m->rs, &m->slots, &ctx, now, &res);
	handle_restart(m, &res);
	if (!m->scanned)
		return;
	ctx = spawn_ctx(m);
	if (m->mode == MODE_RESIDENT && m->state != MASTER_STOPPING) {
		if (m->tick_at != 0 && m->tick_at <= now) {
			slots_reconcile(&m->slots, now);
			m->tick_at = 0;
		}
		slots_respawn_due(&m->slots, &ctx, now, 0);
	}
	/* A full window: due slots wait for an answer, not a timer. */
	m->slots.paused = !spawner_can_take(&m->spawners[m->cur]);
	arm_tick(m, now);
}

/* Takes what preload process k says: it is ready, or a new worker. */
static void
preload_replies(struct master *m, int k)
{
	struct restart_result res;
	struct preload_rep rep;
	struct spawn_ctx ctx;
	int fds[2];

	while (spawner_reply(&m->spawners[k], &rep, fds) == 1) {
		if (rep.kind != PRELOAD_SPAWNED)
			continue;
		slots_spawned(&m->slots, (int)rep.cell, rep.pid, fds);
		for (size_t i = 0; rep.pid > 0 && i < nitems(m->early); i++) {
			struct worker_exit ex;
			int idx;

			if (m->early[i].pid != rep.pid ||
			    (idx = slots_find_pid(&m->slots, rep.pid)) < 0)
				continue;
			/* It died before we knew it: its exit, now. */
			m->early[i].pid = 0;
			slots_exited(&m->slots, idx, m->early[i].wstatus,
			    mono_ns(), &ex);
			if (ex.cls == EXIT_FAILED && m->state != MASTER_STOPPING)
				m->any_failed = 1;
			restart_worker_exited(&m->rs, &ex, &res);
			handle_restart(m, &res);
		}
	}
	/* A restart may have waited for its preload process. */
	ctx = spawn_ctx(m);
	restart_step(&m->rs, &m->slots, &ctx, mono_ns(), &res);
	handle_restart(m, &res);
}

/* Routes one epoll event to its handler. */
static void
dispatch(struct master *m, uint64_t data, uint32_t events)
{
	struct restart_result res;
	struct spawn_ctx ctx;
	struct request rq;
	uint64_t count;

	switch (EV_TAG(data)) {
	case EV_SIGNAL:
		handle_signals(m);
		break;
	case EV_LISTEN:
		control_accept(&m->ctl);
		break;
	case EV_CLIENT:
		if (control_event(&m->ctl, EV_INDEX(data), events, &rq))
			serve(m, &rq);
		break;
	case EV_OUT:
	case EV_ERR:
		slots_output(&m->slots, EV_INDEX(data),
		    EV_TAG(data) == EV_ERR);
		break;
	case EV_LOG:
		log_flush();
		break;
	case EV_PRELOAD:
		preload_replies(m, EV_INDEX(data) & 1);
		break;
	case EV_PRELOAD_OUT:
		spawner_output(&m->spawners[(EV_INDEX(data) >> 1) & 1],
		    EV_INDEX(data) & 1);
		break;
	case EV_READY:
		/* A held worker finished work_init. */
		while (read(m->ready_fd, &count, sizeof(count)) > 0)
			;
		ctx = spawn_ctx(m);
		restart_step(&m->rs, &m->slots, &ctx, mono_ns(), &res);
		handle_restart(m, &res);
		break;
	}
}

/*
 * Watches the log's descriptor for room while lines wait for its reader
 * (a pipe or socket; a file never makes them wait).
 */
static void
watch_log(struct master *m)
{
	struct epoll_event ev;
	int fd = log_waiting_fd();

	if (fd == m->log_watched)
		return;
	if (m->log_watched >= 0)
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->log_watched, NULL);
	m->log_watched = -1;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLOUT;
	ev.data.u64 = EV_DATA(EV_LOG, 0);
	if (fd >= 0 && epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
		m->log_watched = fd;
}

/*
 * The start-up failed (a first worker, or the preload process): a waiting
 * "run -d" hears why and the master stops; in the foreground the task
 * runs on, backing off, and says so.
 */
static void
report_failure(struct master *m, const char *why)
{
	char line[PATH_MAX + 1024];

	if (m->caller_fd >= 0 && m->ov.detached) {
		snprintf(line, sizeof(line), "1 %s: %.512s (see %s)",
		    m->cfg.base_title, why, m->prep.log_path[0] != '\0' ?
		    m->prep.log_path : "the log");
		(void)write_all(m->caller_fd, line, strlen(line));
		close(m->caller_fd);
		m->caller_fd = -1;
		logmsg(PM_LOG_ERROR, "start-up failed: %s", why);
		master_stop(m, "start-up failed");
		m->startup_failed = 1;
		return;
	}
	logmsg(PM_LOG_WARNING, "start-up: %s; the task runs on", why);
	report_ready(m);
}

/* While starting: reports ready once every slot is up, or the failure. */
static void
check_started(struct master *m)
{
	char why[512];
	int r;

	if (m->state != MASTER_STARTING || !m->spawned)
		return;
	if ((r = slots_started(&m->slots, why, sizeof(why))) < 0)
		report_failure(m, why);
	else if (r == 1)
		report_ready(m);
}

/* Tells a waiting "run -d" and the service manager that we are up. */
static void
report_ready(struct master *m)
{
	char line[32];

	m->state = MASTER_RUNNING;
	m->slots.starting = 0;
	notify_status(m, "READY=1");
	if (notify_watchdog_ns() > 0)
		m->notify_at = mono_ns() + notify_watchdog_ns();
	if (m->caller_fd < 0)
		return;
	/* "ok PID": a group's masters share one pipe to their parent. */
	snprintf(line, sizeof(line), "ok %ld\n", (long)getpid());
	(void)write_all(m->caller_fd, line, strlen(line));
	close(m->caller_fd);
	m->caller_fd = -1;
}

/* Watches fd in the loop under tag; 0 or -1 (logged). */
static int
watch_fd(struct master *m, int fd, enum ev_tag tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = EV_DATA(tag, 0);
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		logmsg(PM_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Sets up everything the loop needs; 0, or -1 after logging why. */
static int
master_setup(struct master *m)
{
	title_compose(m->title, sizeof(m->title), m->cfg.title_prefix,
	    TITLE_MASTER, m->cfg.base_title);
	title_set(m->title);
	name_workers(m);
	log_setup(effective_level(m), m->title);
	log_set_task(m->cfg.base_title, effective_format(m));
	/* Orphans of workers' children come to us, not to init. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/*
	 * Two pipes a worker, for an old and a new worker of every slot
	 * during a restart, at the largest scale the task may reach.
	 */
	if (privs_raise_nofile(4 * (rlim_t)CONFIG_MAX_WORKERS + 256) < 0)
		logmsg(PM_LOG_WARNING, "cannot raise the descriptor limit: %s",
		    strerror(errno));
	notify_init();

	if ((m->sigfd = setup_signals()) < 0) {
		logmsg(PM_LOG_ERROR, "signalfd: %s", strerror(errno));
		return -1;
	}
	if ((m->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		logmsg(PM_LOG_ERROR, "epoll: %s", strerror(errno));
		return -1;
	}
	if (watch_fd(m, m->sigfd, EV_SIGNAL) < 0)
		return -1;
	if ((m->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		logmsg(PM_LOG_ERROR, "eventfd: %s", strerror(errno));
		return -1;
	}
	if (watch_fd(m, m->ready_fd, EV_READY) < 0 ||
	    control_open(&m->ctl, m->epfd, m->run_dir, m->cfg.base_title) < 0)
		return -1;
	if ((m->sb = scoreboard_create()) == NULL) {
		logmsg(PM_LOG_ERROR, "scoreboard: %s", strerror(errno));
		return -1;
	}
	m->spawners[0].index = 0;
	m->spawners[1].index = 1;
	spawner_init_fork(&m->spawners[1]);
	/*
	 * Workers come from a spawner process (the preload process, with
	 * preload); without one for want of a process, from fork().
	 */
	if (spawner_init_preload(&m->spawners[0], m->epfd, &m->cfg,
	    &m->prep.creds, m->sb, m->ready_fd, m->cfg.preload) < 0) {
		if (m->cfg.preload)
			return -1;
		spawner_release(&m->spawners[0]);
		spawner_init_fork(&m->spawners[0]);
	}
	if (slots_init(&m->slots, m->epfd, m->sb, m->ready_fd,
	    m->cfg.max_workers, m->cfg.stop_timeout) < 0) {
		logmsg(PM_LOG_ERROR, "slot table: out of memory");
		return -1;
	}
	choose_streams(m);
	m->mode = m->cfg.check_interval > 0 ? MODE_RESIDENT : MODE_RUN_ONCE;
	m->slots.respawn = m->mode == MODE_RESIDENT;
	m->started_real = real_ns();
	return 0;
}

/* Releases what master_setup() and the loop acquired. */
static void
master_teardown(struct master *m)
{
	struct restart_result res;

	restart_cancel(&m->rs, "the master is exiting", m->gen, &res);
	handle_restart(m, &res);
	control_close(&m->ctl);
	if (m->ready_fd >= 0)
		close(m->ready_fd);
	/* Under the pid file's lock: no master of ours pins meanwhile. */
	pin_release(&m->cfg, 1);
	if (m->run_dir[0] != '\0' && m->cfg.base_title != NULL)
		pin_sweep(m->run_dir, m->cfg.base_title, NULL);
	pidfile_release(m->run_dir, m->cfg.base_title, m->pid_fd);
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->sigfd >= 0)
		close(m->sigfd);
	if (m->caller_fd >= 0)
		close(m->caller_fd);
	slots_free(&m->slots);
	scoreboard_destroy(m->sb);
	prepared_free(&m->prep);
	task_config_free(&m->cfg);
}

/* Copies what the caller prepared into m; 0 or -1 (out of memory). */
static int
adopt(struct master *m, const struct prepared *p, const struct overrides *ov)
{
	m->prep = *p;
	m->prep.task = &m->cfg;
	memset(&m->prep.creds, 0, sizeof(m->prep.creds));
	m->ov = *ov;
	if (ov->log_file != NULL) {
		copy_str(m->ov_log_file, ov->log_file, sizeof(m->ov_log_file));
		m->ov.log_file = m->ov_log_file;
	}
	copy_str(m->run_dir, p->run_dir, sizeof(m->run_dir));
	if (task_config_copy(&m->cfg, p->task) < 0 ||
	    creds_copy(&m->prep.creds, &p->creds) < 0)
		return -1;
	return 0;
}

int
master_run(const struct prepared *p, const struct overrides *ov, int pid_fd,
    int caller_fd)
{
	struct epoll_event evs[16];
	struct master m;
	int status;

	memset(&m, 0, sizeof(m));
	m.epfd = m.sigfd = m.ready_fd = m.log_watched = -1;
	m.ctl.listen_fd = -1;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		m.ctl.clients[i].fd = -1;
	restart_init(&m.rs);
	m.gen = 1;
	m.pid_fd = pid_fd;
	m.caller_fd = caller_fd;
	m.state = MASTER_STARTING;
	if (adopt(&m, p, ov) < 0 || master_setup(&m) < 0) {
		master_teardown(&m);
		return 1;
	}
	m.slots.starting = 1;

	logmsg(PM_LOG_INFO, "started: %d worker%s of %s%s", m.slots.target,
	    m.slots.target == 1 ? "" : "s", m.cfg.plugin, m.cfg.preload ?
	    " (forked from a preload process)" : "");
	if (p->dead_master > 0)
		logmsg(PM_LOG_WARNING, "the previous master (pid %ld) died "
		    "without stopping; its pid file was taken over",
		    (long)p->dead_master);
	warn_weak_paths(&m);
	/* Copies a master that died left behind are nobody's now. */
	pin_sweep(m.run_dir, m.cfg.base_title, m.cfg.pinned);

	for (;;) {
		int64_t now = mono_ns();
		int n;

		run_timers(&m, now);
		if (m.slots.nlive == 0 && (m.state == MASTER_STOPPING ||
		    (m.mode == MODE_RUN_ONCE && m.spawned))) {
			/* Done: a preload process goes too, then we do. */
			spawner_stop(&m.spawners[0]);
			spawner_stop(&m.spawners[1]);
			if (m.spawners[0].pid <= 0 && m.spawners[1].pid <= 0) {
				slots_kill_strays(&m.slots);
				reap(&m);
				break;
			}
		}
		watch_log(&m);
		n = epoll_wait(m.epfd, evs, (int)nitems(evs),
		    wait_ms(&m, now));
		if (n < 0 && errno != EINTR) {
			logmsg(PM_LOG_ERROR, "epoll_wait: %s", strerror(errno));
			master_stop(&m, "internal error");
			continue;
		}
		log_batch_begin();
		for (int i = 0; i < n; i++)
			dispatch(&m, evs[i].data.u64, evs[i].events);
		log_batch_end();
	}

	if (m.startup_failed) {
		status = 1;
	} else if (m.mode == MODE_RUN_ONCE && m.state != MASTER_STOPPING) {
		status = m.any_failed ? 1 : 0;
		logmsg(PM_LOG_INFO, "all workers done (run once)%s",
		    m.any_failed ? "; some failed" : "");
	} else {
		status = 0;
		logmsg(PM_LOG_INFO, "stopped");
	}
	master_teardown(&m);
	/* A stalled reader gets a moment, not the power to hold us. */
	log_drain(LOG_DRAIN_MS);
	return status;
}
