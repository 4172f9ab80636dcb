/*
 * slots.c - the slot table: forking a worker into a slot, reaping it, and
 * applying the respawn policy (policy.c) to what it says about its exit.
 * A slot keeps its index across respawns; its cadence (next_due) is copied
 * from each worker's cell into the next one's.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "policy.h"
#include "util.h"
#include "worker.h"

int
slots_init(struct master *m)
{
	m->procs = calloc(SB_CELLS, sizeof(*m->procs));
	m->free_cells = calloc(SB_CELLS, sizeof(*m->free_cells));
	if (m->procs == NULL || m->free_cells == NULL)
		return -1;
	/* Pop low cells first: the scoreboard pages they touch stay few. */
	for (int i = 0; i < SB_CELLS; i++)
		m->free_cells[i] = SB_CELLS - 1 - i;
	m->nfree = SB_CELLS;
	return slots_resize(m, m->cfg.max_workers);
}

void
slots_free(struct master *m)
{
	free(m->procs);
	free(m->free_cells);
	free(m->slots);
	m->procs = NULL;
	m->free_cells = NULL;
	m->slots = NULL;
}

/* Grows the slot array to hold n slots; new slots start empty. */
static int
ensure_slots(struct master *m, int n)
{
	struct slot *s;

	if (n <= m->slots_cap)
		return 0;
	if ((s = realloc(m->slots, (size_t)n * sizeof(*s))) == NULL)
		return -1;
	memset(s + m->slots_cap, 0, (size_t)(n - m->slots_cap) * sizeof(*s));
	for (int i = m->slots_cap; i < n; i++)
		s[i].cur = s[i].next = -1;
	m->slots = s;
	m->slots_cap = n;
	return 0;
}

void
slots_request_exit(struct master *m, int idx)
{
	struct proc *p = &m->procs[idx];
	struct sb_cell *c = &m->sb->cells[idx];

	p->retiring = 1;
	atomic_store(&c->cmd, CELL_EXIT);
	scoreboard_ring(c);
	if (atomic_load(&c->wants_term))
		kill(p->pid, SIGTERM);
}

int
slots_resize(struct master *m, int target)
{
	if (ensure_slots(m, target) < 0)
		return -1;
	/* Surplus slots: their workers finish gracefully, highest first. */
	for (int i = m->nslots - 1; i >= target; i--) {
		struct slot *s = &m->slots[i];

		s->respawn_at = 0;
		if (s->next >= 0)
			slots_request_exit(m, s->next);
		if (s->cur >= 0 && !m->procs[s->cur].retiring)
			slots_request_exit(m, s->cur);
	}
	for (int i = m->nslots; i < target; i++) {
		struct slot *s = &m->slots[i];

		/* A slot coming back keeps its history but not a backoff. */
		if (s->cur < 0 && s->next < 0)
			s->respawn_at = 1;
	}
	if (target > m->nslots)
		m->nslots = target;
	m->target = target;
	return 0;
}

int
slots_spawn(struct master *m, int slot, const struct task_config *cfg,
    const struct creds *creds, unsigned gen, int hold)
{
	struct worker_args wa;
	struct sb_cell *c;
	struct proc *p;
	int idx;
	pid_t pid;

	if (m->nfree == 0) {
		logmsg(PM_LOG_ERROR, "slot %d: no free scoreboard cell", slot);
		return -1;
	}
	idx = m->free_cells[--m->nfree];
	if (idx >= m->ncells)
		m->ncells = idx + 1;
	c = &m->sb->cells[idx];
	atomic_store(&c->cmd, hold ? CELL_HOLD : CELL_RUN);
	atomic_store(&c->doorbell, 0);
	atomic_store(&c->phase, PHASE_STARTING);
	atomic_store(&c->why, WHY_NONE);
	atomic_store(&c->calls, 0);
	atomic_store(&c->errors, 0);
	atomic_store(&c->call_started, 0);
	atomic_store(&c->next_due, m->slots[slot].next_due);
	atomic_store(&c->rss_kb, 0);
	atomic_store(&c->ready_at, 0);
	atomic_store(&c->wants_term, 0);

	wa.cfg = cfg;
	wa.creds = creds;
	wa.cell = c;
	wa.sb = m->sb;
	wa.slot = slot;
	wa.master = getpid();
	wa.held_fd = hold ? m->held_fd : -1;

	if ((pid = fork()) < 0) {
		logmsg(PM_LOG_ERROR, "slot %d: fork: %s", slot,
		    strerror(errno));
		m->free_cells[m->nfree++] = idx;
		m->slots[slot].respawn_at = mono_ns() + BACKOFF_BASE_NS;
		return -1;
	}
	if (pid == 0)
		worker_main(&wa);
	/* Both sides set the group, so neither can act before it exists. */
	setpgid(pid, pid);

	p = &m->procs[idx];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->slot = slot;
	p->gen = gen;
	p->held = hold;
	p->started = mono_ns();
	p->started_real = real_ns();
	p->hot = cfg->execute_usleep == 0;
	p->lifetime = (int64_t)cfg->limit_seconds * NS_PER_SEC;
	/* The earliest it can be due; checked against ready_at then. */
	if (p->lifetime > 0)
		p->expire_at = p->started + p->lifetime;
	m->nlive++;
	if (hold) {
		/* It must finish work_init in time, or it is killed. */
		p->kill_at = p->started + INIT_TIMEOUT_NS;
		m->slots[slot].next = idx;
	} else {
		m->slots[slot].cur = idx;
	}
	m->slots[slot].respawn_at = 0;
	logmsg(PM_LOG_DEBUG, "slot %d: worker pid %ld started%s", slot,
	    (long)pid, hold ? " (held until its slot is free)" : "");
	return 0;
}

void
slots_retire(struct master *m, int idx, int64_t now)
{
	if (m->procs[idx].pid == 0 || m->procs[idx].retiring)
		return;
	slots_request_exit(m, idx);
	m->procs[idx].kill_at = now + (int64_t)m->cfg.stop_timeout *
	    NS_PER_SEC;
}

void
slots_promote(struct master *m, int slot)
{
	struct slot *s = &m->slots[slot];
	int n = s->next;

	if (n < 0 || s->cur >= 0)
		return;
	s->cur = n;
	s->next = -1;
	m->procs[n].held = 0;
	m->procs[n].kill_at = 0;
	/* The slot's cadence carries over to its new worker. */
	atomic_store(&m->sb->cells[n].next_due, s->next_due);
	atomic_store(&m->sb->cells[n].cmd, CELL_RUN);
	scoreboard_ring(&m->sb->cells[n]);
}

/* The proc index of a worker pid, or -1. */
static int
find_proc(const struct master *m, pid_t pid)
{
	for (int i = 0; i < m->ncells; i++)
		if (m->procs[i].pid == pid)
			return i;
	return -1;
}

/* Does slot i still want a worker after its worker ended? */
static int
slot_wanted(const struct master *m, int i)
{
	return m->state == MASTER_RUNNING && !m->run_once && i < m->target;
}

/* Frees a reaped worker's cell, logs its exit, plans its slot's future. */
static void
worker_exited(struct master *m, int idx, int wstatus)
{
	struct proc *p = &m->procs[idx];
	struct sb_cell *c = &m->sb->cells[idx];
	struct slot *s = &m->slots[p->slot];
	struct exit_facts f;
	char text[EXIT_TEXT_MAX], plan[96];
	enum exit_class cls;
	int64_t now = mono_ns(), delay = 0;
	int level;

	memset(&f, 0, sizeof(f));
	f.wstatus = wstatus;
	f.why = atomic_load(&c->why);
	f.calls = atomic_load(&c->calls);
	f.lived_ns = now - p->started;
	f.rss_kb = atomic_load(&c->rss_kb);
	f.timed_out = p->timed_out;
	f.call_ns = p->timeout_call_ns;
	f.stop_killed = p->stop_killed;
	cls = policy_classify(&f, text, sizeof(text));

	if (s->cur == idx) {
		s->cur = -1;
		s->next_due = atomic_load(&c->next_due);
	} else if (s->next == idx) {
		s->next = -1;
	}
	if (cls == EXIT_FAILED && m->state == MASTER_RUNNING)
		m->any_failed = 1;

	if (s->cur < 0 && s->next >= 0 && m->ro.phase == RO_REPLACE &&
	    m->procs[s->next].gen == m->gen) {
		/* A rollout's replacement was waiting for this exit: go. */
		slots_promote(m, p->slot);
		copy_str(plan, "replaced", sizeof(plan));
	} else if (s->cur >= 0 || !slot_wanted(m, p->slot)) {
		copy_str(plan, "not respawned", sizeof(plan));
	} else {
		delay = policy_after_exit(&s->failures, cls,
		    policy_healthy(f.calls, f.lived_ns));
		s->respawn_at = now + delay;
		if (delay == 0)
			copy_str(plan, "respawning now", sizeof(plan));
		else
			snprintf(plan, sizeof(plan), "respawning in %.1f s "
			    "(%u failures in a row)", (double)delay / NS_PER_SEC,
			    s->failures);
	}
	copy_str(s->last_exit, text, sizeof(s->last_exit));
	s->last_failed = cls == EXIT_FAILED;

	level = cls == EXIT_FAILED && m->state == MASTER_RUNNING ?
	    PM_LOG_WARNING : PM_LOG_INFO;
	logmsg(level, "worker %d (pid %ld) exited: %s; %s", p->slot,
	    (long)p->pid, text, plan);

	if (m->ro.phase != RO_IDLE)
		reload_worker_exited(m, idx, text);
	memset(p, 0, sizeof(*p));
	m->free_cells[m->nfree++] = idx;
	m->nlive--;
	/* Slots beyond a lowered target disappear once their workers have. */
	while (m->nslots > m->target && m->slots[m->nslots - 1].cur < 0 &&
	    m->slots[m->nslots - 1].next < 0)
		m->nslots--;
}

void
slots_reap(struct master *m)
{
	for (;;) {
		siginfo_t si;
		int wstatus, idx;
		pid_t pid;

		/* Peek first: the group is killed while its id cannot be reused. */
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
		    si.si_pid == 0)
			return;
		pid = si.si_pid;
		idx = find_proc(m, pid);
		if (idx >= 0)
			kill(-pid, SIGKILL);
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		if (idx >= 0)
			worker_exited(m, idx, wstatus);
		else if (pid == m->ro.probe_pid)
			reload_probe_exited(m, wstatus);
		else
			logmsg(PM_LOG_DEBUG, "reaped pid %ld (not a worker)",
			    (long)pid);
	}
}

void
slots_respawn_due(struct master *m, int64_t now, int skip_backoff)
{
	if (m->state != MASTER_RUNNING || m->run_once)
		return;
	for (int i = 0; i < m->target; i++) {
		struct slot *s = &m->slots[i];

		/* A held replacement does not stand in for a live worker. */
		if (s->cur >= 0)
			continue;
		if (skip_backoff || (s->respawn_at != 0 && s->respawn_at <= now)) {
			/* A new slot's first worker is a start, not a restart. */
			if (slots_spawn(m, i, &m->cfg, &m->creds, m->gen, 0) == 0 &&
			    s->last_exit[0] != '\0')
				s->restarts++;
		}
	}
}

void
slots_kill_overdue(struct master *m, int64_t now)
{
	for (int i = 0; i < m->ncells; i++) {
		struct proc *p = &m->procs[i];

		if (p->pid == 0)
			continue;
		/*
		 * limitSeconds counts from the end of work_init (ready_at):
		 * a worker due by that measure ends like a stop, an orderly
		 * end; one that is not yet due, or still initialising, is
		 * looked at again when it will be.
		 */
		if (p->expire_at != 0 && p->expire_at <= now) {
			int64_t ready = atomic_load(&m->sb->cells[i].ready_at);

			if (ready == 0 || ready + p->lifetime > now) {
				p->expire_at = ready == 0 ? now + p->lifetime :
				    ready + p->lifetime;
			} else {
				p->expire_at = 0;
				if (!p->retiring && !p->held) {
					atomic_store(&m->sb->cells[i].cmd,
					    CELL_EXPIRE);
					scoreboard_ring(&m->sb->cells[i]);
					if (atomic_load(&m->sb->cells[i].
					    wants_term))
						kill(p->pid, SIGTERM);
				}
			}
		}
		if (p->kill_at == 0 || p->kill_at > now)
			continue;
		p->kill_at = 0;
		p->stop_killed = m->state == MASTER_STOPPING;
		if (p->held)
			logmsg(PM_LOG_WARNING, "worker %d (pid %ld) did not "
			    "finish work_init within %lld s; killing it",
			    p->slot, (long)p->pid,
			    (long long)(INIT_TIMEOUT_NS / NS_PER_SEC));
		else
			logmsg(PM_LOG_WARNING, "worker %d (pid %ld) still "
			    "running after %s; killing its process group",
			    p->slot, (long)p->pid, p->stop_killed ?
			    "stopTimeout" : p->timed_out ? "workTimeout's "
			    "grace period" : "stopTimeout (replaced)");
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
	}
}

int64_t
slots_next_deadline(const struct master *m)
{
	int64_t next = 0;

	for (int i = 0; i < m->nslots; i++) {
		int64_t t = m->slots[i].respawn_at;

		if (t != 0 && m->state == MASTER_RUNNING && !m->run_once &&
		    (next == 0 || t < next))
			next = t;
	}
	for (int i = 0; i < m->ncells; i++) {
		const struct proc *p = &m->procs[i];

		if (p->pid == 0)
			continue;
		if (p->kill_at != 0 && (next == 0 || p->kill_at < next))
			next = p->kill_at;
		if (p->expire_at != 0 && (next == 0 || p->expire_at < next))
			next = p->expire_at;
	}
	if (m->watch_at != 0 && (next == 0 || m->watch_at < next))
		next = m->watch_at;
	return next;
}

/*
 * How long p's current work() call has run, at least; 0 if it is not in
 * one.  A paced worker stamps each call's start.  A hot one (back-to-back
 * calls) does not: its call has run at least since the master first saw
 * its call count at the current value while it was busy.
 */
static int64_t
call_age(struct proc *p, const struct sb_cell *c, int64_t now)
{
	uint64_t calls = atomic_load(&c->calls);

	if (atomic_load(&c->phase) != PHASE_BUSY) {
		p->watch_since = 0;
		return 0;
	}
	if (p->watch_since == 0 || calls != p->watch_calls) {
		p->watch_calls = calls;
		p->watch_since = now;
	}
	if (!p->hot && atomic_load(&c->call_started) != 0)
		return now - atomic_load(&c->call_started);
	return now - p->watch_since;
}

/*
 * workTimeout: a worker whose current work() call has run longer gets
 * SIGTERM, then SIGKILL after TIMEOUT_GRACE_NS.  The check runs every
 * quarter timeout (to notice calls that began unseen) and at the moment a
 * timed call would become overdue.
 */
void
slots_watchdog(struct master *m, int64_t now)
{
	int64_t limit = (int64_t)m->cfg.work_timeout * NS_PER_SEC, next;

	if (limit == 0) {
		m->watch_at = 0;
		return;
	}
	if (m->watch_at != 0 && m->watch_at > now)
		return;
	next = now + limit / 4;
	for (int i = 0; i < m->ncells; i++) {
		struct proc *p = &m->procs[i];
		struct sb_cell *c = &m->sb->cells[i];
		int64_t age;

		if (p->pid == 0 || p->timed_out || p->held)
			continue;
		age = call_age(p, c, now);
		if (age < limit) {
			if (age > 0 && now + (limit - age) < next)
				next = now + (limit - age);
			continue;
		}
		p->timed_out = 1;
		p->timeout_call_ns = age;
		logmsg(PM_LOG_WARNING, "worker %d (pid %ld): work() call %llu "
		    "has run %.1f s, over workTimeout %u s; terminating it",
		    p->slot, (long)p->pid,
		    (unsigned long long)atomic_load(&c->calls) + 1,
		    (double)age / NS_PER_SEC, m->cfg.work_timeout);
		kill(p->pid, SIGTERM);
		if (p->kill_at == 0 || p->kill_at > now + TIMEOUT_GRACE_NS)
			p->kill_at = now + TIMEOUT_GRACE_NS;
	}
	m->watch_at = next;
}

/*
 * Kills what is left of the task besides workers: orphans adopted as
 * subreaper (a plugin's daemonised children) that outlived their worker.
 */
void
slots_kill_strays(struct master *m)
{
	char path[64], buf[4096];
	FILE *f;

	(void)m;
	snprintf(path, sizeof(path), "/proc/self/task/%ld/children",
	    (long)getpid());
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fscanf(f, "%4095s", buf) == 1) {
		long pid = strtol(buf, NULL, 10);

		if (pid > 0 && find_proc(m, (pid_t)pid) < 0) {
			logmsg(PM_LOG_INFO, "killing pid %ld, left behind by "
			    "a worker", pid);
			kill((pid_t)pid, SIGKILL);
		}
	}
	fclose(f);
}
