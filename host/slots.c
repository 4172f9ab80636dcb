/*
 * slots.c - the slot table: spawning a worker into a slot, moving workers
 * and slots through their states (lifecycle.c), applying the respawn
 * policy (policy.c) to an exit the master hands over, and acting on each
 * process's deadline.  A slot keeps its index across respawns; its
 * cadence (next_due) is copied from each worker's cell into the next.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "evtag.h"
#include "log.h"
#include "slots.h"
#include "util.h"

/*
 * Which cell a pid is: a hash table with linear probing, twice the
 * cells in size, so that an exit finds its worker without a scan.
 */
#define PIDMAP_SIZE	131072		/* a power of two >= 2 * SB_CELLS */
_Static_assert(PIDMAP_SIZE >= 2 * SB_CELLS, "the pid map is too small");

static unsigned
pid_hash(pid_t pid)
{
	return ((unsigned)pid * 2654435761u) & (PIDMAP_SIZE - 1);
}

static void
pid_put(struct slots *s, pid_t pid, int idx)
{
	unsigned h = pid_hash(pid);

	while (s->pidmap[h] != 0)
		h = (h + 1) & (PIDMAP_SIZE - 1);
	s->pidmap[h] = idx + 1;
}

static void
pid_del(struct slots *s, pid_t pid)
{
	unsigned h = pid_hash(pid), j;

	while (s->pidmap[h] != 0 && s->procs[s->pidmap[h] - 1].pid != pid)
		h = (h + 1) & (PIDMAP_SIZE - 1);
	if (s->pidmap[h] == 0)
		return;
	s->pidmap[h] = 0;
	/* Backward shift: later entries of the run move into the hole. */
	for (j = (h + 1) & (PIDMAP_SIZE - 1); s->pidmap[j] != 0;
	    j = (j + 1) & (PIDMAP_SIZE - 1)) {
		unsigned home = pid_hash(s->procs[s->pidmap[j] - 1].pid);

		/* Movable unless its home lies in (h, j]. */
		if (((j - home) & (PIDMAP_SIZE - 1)) >=
		    ((j - h) & (PIDMAP_SIZE - 1))) {
			s->pidmap[h] = s->pidmap[j];
			s->pidmap[j] = 0;
			h = j;
		}
	}
}

int
slots_init(struct slots *s, int epfd, struct scoreboard *sb, int ready_fd,
    int target, unsigned stop_timeout)
{
	memset(s, 0, sizeof(*s));
	s->epfd = epfd;
	s->sb = sb;
	s->master = getpid();
	s->ready_fd = ready_fd;
	s->respawn = 1;
	s->stop_timeout = stop_timeout;
	s->procs = calloc(SB_CELLS, sizeof(*s->procs));
	s->free_cells = calloc(SB_CELLS, sizeof(*s->free_cells));
	s->pidmap = calloc(PIDMAP_SIZE, sizeof(*s->pidmap));
	if (s->procs == NULL || s->free_cells == NULL || s->pidmap == NULL)
		return -1;
	/* Pop low cells first: the scoreboard pages they touch stay few. */
	for (int i = 0; i < SB_CELLS; i++)
		s->free_cells[i] = SB_CELLS - 1 - i;
	s->nfree = SB_CELLS;
	return slots_resize(s, target, mono_ns());
}

void
slots_free(struct slots *s)
{
	for (int i = 0; s->v != NULL && i < s->cap; i++) {
		free(s->v[i].hist);
		free(s->v[i].times_done);
	}
	free(s->procs);
	free(s->free_cells);
	free(s->pidmap);
	s->pidmap = NULL;
	free(s->v);
	s->procs = NULL;
	s->free_cells = NULL;
	s->v = NULL;
}

static void	plan_slot(struct slots *s, int i, enum exit_class cls,
		    int healthy, int64_t now, char *plan, size_t size);

/* Does slot i want a worker (in this master's mode and at this target)? */
static int
slot_wanted(const struct slots *s, int i)
{
	return s->respawn && i < s->target;
}

/* Moves slot i by event e. */
static void
slot_move(struct slots *s, int i, enum slot_event e)
{
	s->v[i].state = slot_next(s->v[i].state, e);
}

/* Grows the slot array to hold n slots; new slots start empty. */
static int
ensure_slots(struct slots *s, int n)
{
	struct slot *v;

	if (n <= s->cap)
		return 0;
	if ((v = realloc(s->v, (size_t)n * sizeof(*v))) == NULL)
		return -1;
	memset(v + s->cap, 0, (size_t)(n - s->cap) * sizeof(*v));
	for (int i = s->cap; i < n; i++) {
		v[i].state = SLOT_EMPTY;
		v[i].cur = v[i].next = -1;
	}
	s->v = v;
	s->cap = n;
	return 0;
}

/*
 * Signals a worker (group: its whole process group).  A worker a preload
 * process has not named yet has no pid: never kill(0) or kill(-0).
 */
static void
signal_proc(const struct proc *p, int sig, int group)
{
	if (p->pid <= 0)
		return;
	if (group)
		kill(-p->pid, sig);
	kill(p->pid, sig);
}

/* Rings a cell's doorbell; adds SIGTERM for a plugin watching its fd. */
static void
tell(struct slots *s, int idx, enum cell_cmd cmd)
{
	struct sb_cell *c = &s->sb->cells[idx];

	atomic_store(&c->cmd, cmd);
	scoreboard_ring(c);
	if (atomic_load(&c->w.wants_term))
		signal_proc(&s->procs[idx], SIGTERM, 0);
}

void
slots_stop_proc(struct slots *s, int idx, int64_t now)
{
	struct proc *p = &s->procs[idx];
	int64_t deadline = now + (int64_t)s->stop_timeout * NS_PER_SEC;

	if (p->state == PROC_FREE || p->state == PROC_STOPPING ||
	    p->state == PROC_TERMINATING || p->state == PROC_KILLED)
		return;
	p->state = proc_next(p->state, PE_STOP);
	p->deadline = deadline;
	tell(s, idx, CELL_EXIT);
}

void
slots_stop_all(struct slots *s, int64_t now)
{
	int64_t deadline = now + (int64_t)s->stop_timeout * NS_PER_SEC;

	s->respawn = 0;
	s->stopping = 1;
	for (int i = 0; i < s->n; i++)
		slot_move(s, i, SE_STOP);
	for (int i = 0; i < s->ncells; i++) {
		struct proc *p = &s->procs[i];

		if (p->state == PROC_FREE)
			continue;
		slots_stop_proc(s, i, now);
		/* A kill already due sooner (workTimeout's grace) stands. */
		if (p->deadline == 0 || p->deadline > deadline)
			p->deadline = deadline;
	}
}

int
slots_resize(struct slots *s, int target, int64_t now)
{
	if (ensure_slots(s, target) < 0)
		return -1;
	/* Surplus slots: their workers finish gracefully, highest first. */
	for (int i = s->n - 1; i >= target; i--) {
		struct slot *sl = &s->v[i];

		slot_move(s, i, SE_SHRINK);
		if (sl->next >= 0)
			slots_stop_proc(s, sl->next, now);
		if (sl->cur >= 0)
			slots_stop_proc(s, sl->cur, now);
	}
	for (int i = 0; i < target; i++) {
		struct slot *sl = &s->v[i];

		if (i >= s->n && sl->state == SLOT_EMPTY) {
			/* A slot made anew starts with a clean history. */
			free(sl->hist);
			free(sl->times_done);
			memset(sl, 0, sizeof(*sl));
			sl->cur = sl->next = -1;
		}
		if (sl->state == SLOT_EMPTY || sl->state == SLOT_RETIRING) {
			slot_move(s, i, SE_GROW);
			if (sl->state == SLOT_WAITING)
				sl->respawn_at = now;
		}
	}
	if (target > s->n)
		s->n = target;
	s->target = target;
	return 0;
}

/* A uniform draw from [0, n]: a worker life's share of a jitter. */
static uint64_t
draw(uint64_t n)
{
	static uint64_t x;

	if (n == 0)
		return 0;
	/* xorshift64*, seeded once: spread, not secrecy, is wanted. */
	while (x == 0 && getrandom(&x, sizeof(x), 0) < 0 && errno == EINTR)
		;
	if (x == 0)
		x = (uint64_t)mono_ns() | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return (x * 0x2545F4914F6CDD1DULL) % (n + 1);
}

/* Clears a cell for a new worker: one reset of everything it reports. */
static void
cell_reset(struct sb_cell *c, enum cell_cmd cmd, int64_t next_due,
    uint64_t max_calls)
{
	memset(&c->w, 0, sizeof(c->w));
	c->w.max_calls = max_calls;
	atomic_store(&c->w.next_due, next_due);
	atomic_store(&c->cmd, cmd);
	atomic_store(&c->doorbell, 0);
}

/* Watches a new worker's output streams in the master's loop. */
static void
watch_output(struct slots *s, int idx)
{
	struct proc *p = &s->procs[idx];

	for (int k = 0; k < 2; k++) {
		struct epoll_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = EV_DATA(k == 0 ? EV_OUT : EV_ERR, idx);
		if (p->out[k].fd < 0)
			continue;	/* stderr, sharing stdout's pipe */
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, p->out[k].fd,
		    &ev) < 0) {
			logmsg(PM_LOG_ERROR, "slot %d: epoll_ctl: %s", p->slot,
			    strerror(errno));
			close(p->out[k].fd);
			p->out[k].fd = -1;
		}
	}
}

int
slots_spawn(struct slots *s, int i, const struct spawn_ctx *ctx, int hold)
{
	const struct task_config *cfg = ctx->cfg;
	struct slot *sl = &s->v[i];
	struct worker_args wa;
	struct proc *p;
	uint64_t max_calls, lifetime_s;
	int64_t now;
	int idx, fds[2];
	pid_t pid;

	if (s->nfree == 0) {
		logmsg(PM_LOG_ERROR, "slot %d: no free scoreboard cell", i);
		return -1;
	}
	idx = s->free_cells[--s->nfree];
	if (idx >= s->ncells)
		s->ncells = idx + 1;
	/* Each life draws its limits: lives started together end apart. */
	max_calls = cfg->execute_times == 0 ? 0 : cfg->execute_times +
	    draw(cfg->execute_times_jitter);
	lifetime_s = cfg->limit_seconds == 0 ? 0 : cfg->limit_seconds +
	    draw(cfg->limit_seconds_jitter);
	cell_reset(&s->sb->cells[idx], hold ? CELL_HOLD : CELL_RUN,
	    sl->next_due, max_calls);

	memset(&wa, 0, sizeof(wa));
	wa.cfg = cfg;
	wa.creds = ctx->creds;
	wa.cell = &s->sb->cells[idx];
	wa.sb = s->sb;
	wa.slot = i;
	wa.master = s->master;
	wa.ready_fd = hold || s->starting ? s->ready_fd : -1;
	wa.merged = s->merged_streams;

	now = mono_ns();
	if (spawner_spawn(ctx->spawner, &wa, &pid, fds) < 0) {
		int e = errno;

		s->free_cells[s->nfree++] = idx;
		if (e == EAGAIN && !spawner_can_take(ctx->spawner)) {
			/*
			 * Its spawner is not ready, or has its hands full:
			 * not the slot's failure.  A full window opens with
			 * the next answer, and the slot stays due.
			 */
			if (!hold && sl->state == SLOT_WAITING &&
			    !spawner_ready(ctx->spawner))
				sl->respawn_at = now + BACKOFF_BASE_NS;
			return -1;
		}
		/* Try again later, as after a failed worker: backing off. */
		if (!hold && sl->state == SLOT_WAITING) {
			sl->respawn_at = now + policy_after_exit(&sl->failures,
			    EXIT_FAILED, 0);
			if (sl->respawn_at == now)
				sl->respawn_at += BACKOFF_BASE_NS;
		}
		/* The first of a run of failures, then one in ten. */
		if (sl->failures <= 1 || sl->failures % 10 == 0)
			logmsg(PM_LOG_ERROR, "slot %d: cannot start a worker: "
			    "%s (%u times in a row)", i, strerror(e),
			    sl->failures);
		return -1;
	}

	p = &s->procs[idx];
	memset(p, 0, sizeof(*p));
	p->state = proc_next(PROC_FREE, hold ? PE_SPAWN_HELD : PE_SPAWN);
	p->pid = pid;
	if (pid > 0)
		pid_put(s, pid, idx);
	p->slot = i;
	p->gen = ctx->gen;
	p->started = now;
	p->started_real = real_ns();
	p->hot = cfg->execute_usleep == 0;
	p->lifetime = (int64_t)lifetime_s * NS_PER_SEC;
	p->max_calls = max_calls;
	p->title = ctx->title;
	p->spawner = ctx->spawner;
	if (pid > 0) {
		outstream_init(&p->out[0], fds[0], fds[1] < 0 ? OUT_BOTH :
		    OUT_STDOUT);
		outstream_init(&p->out[1], fds[1], OUT_STDERR);
		watch_output(s, idx);
	} else {
		/* The preload process names it later (slots_spawned). */
		outstream_init(&p->out[0], -1, OUT_STDOUT);
		outstream_init(&p->out[1], -1, OUT_STDERR);
	}
	if (hold)
		/* It must finish work_init in time, or it is killed. */
		p->deadline = now + INIT_TIMEOUT_NS;
	else if (p->lifetime > 0)
		/* The earliest it can be due; checked against ready_at then. */
		p->deadline = now + p->lifetime;
	s->nlive++;
	if (hold) {
		sl->next = idx;
	} else {
		/* A new slot's first worker is a start, not a respawn. */
		if (sl->last_exit[0] != '\0')
			sl->respawns++;
		if (sl->backoff_since != 0) {
			sl->backoff_ns += now - sl->backoff_since;
			sl->backoff_since = 0;
		}
		sl->cur = idx;
		slot_move(s, i, SE_SPAWNED);
	}
	if (pid > 0)
		logmsg(PM_LOG_DEBUG, "slot %d: worker pid %ld started%s", i,
		    (long)pid, hold ? " (held until its slot is free)" : "");
	return 0;
}

/* Frees a cell whose worker never came to be; plans its slot. */
static void
spawn_failed(struct slots *s, int idx, const char *why)
{
	struct proc *p = &s->procs[idx];
	struct slot *sl = &s->v[p->slot];
	char plan[96];

	if (sl->cur == idx)
		sl->cur = -1;
	else if (sl->next == idx)
		sl->next = -1;
	p->state = proc_next(p->state, PE_EXIT);
	s->free_cells[s->nfree++] = idx;
	s->nlive--;
	plan_slot(s, p->slot, EXIT_FAILED, 0, mono_ns(), plan, sizeof(plan));
	snprintf(sl->last_exit, sizeof(sl->last_exit), "could not be started: "
	    "%s", why);
	sl->last_failed = 1;
	logmsg(PM_LOG_WARNING, "worker %d could not be started: %s; %s",
	    p->slot, why, plan);
	memset(p, 0, sizeof(*p));
}

void
slots_spawned(struct slots *s, int idx, pid_t pid, const int fds[2])
{
	struct proc *p;

	if (idx < 0 || idx >= SB_CELLS)
		return;
	p = &s->procs[idx];
	if (p->state == PROC_FREE || p->pid != 0) {
		/* Given up meanwhile: the pipes are nobody's. */
		for (int k = 0; k < 2; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		return;
	}
	if (pid <= 0) {
		spawn_failed(s, idx, strerror(-pid));
		return;
	}
	p->pid = pid;
	pid_put(s, pid, idx);
	outstream_init(&p->out[0], fds[0], fds[1] < 0 ? OUT_BOTH :
	    OUT_STDOUT);
	outstream_init(&p->out[1], fds[1], OUT_STDERR);
	watch_output(s, idx);
	logmsg(PM_LOG_DEBUG, "slot %d: worker pid %ld started from the "
	    "preload process", p->slot, (long)pid);
}

void
slots_abandon(struct slots *s, const struct spawner *sp)
{
	for (int i = 0; i < s->ncells; i++)
		if (s->procs[i].state != PROC_FREE && s->procs[i].pid == 0 &&
		    s->procs[i].spawner == sp)
			spawn_failed(s, i, "the preload process is gone");
}

int
slots_respawn_due(struct slots *s, const struct spawn_ctx *ctx, int64_t now,
    int force)
{
	int started = 0;

	if (!s->respawn || s->paused)
		return 0;
	for (int i = 0; i < s->target; i++) {
		struct slot *sl = &s->v[i];

		if (sl->state != SLOT_WAITING ||
		    (!force && sl->respawn_at > now))
			continue;
		if (!spawner_can_take(ctx->spawner))
			break;
		if (slots_spawn(s, i, ctx, 0) == 0)
			started++;
	}
	return started;
}

void
slots_release(struct slots *s, int i)
{
	struct slot *sl = &s->v[i];
	int n = sl->next;

	if (n < 0 || sl->cur >= 0)
		return;
	sl->cur = n;
	sl->next = -1;
	s->procs[n].state = proc_next(s->procs[n].state, PE_RELEASE);
	s->procs[n].deadline = s->procs[n].lifetime > 0 ?
	    mono_ns() + s->procs[n].lifetime : 0;
	slot_move(s, i, SE_SPAWNED);
	/* The slot's cadence carries over; the worker reads it once let go. */
	atomic_store(&s->sb->cells[n].w.next_due, sl->next_due);
	atomic_store(&s->sb->cells[n].cmd, CELL_RUN);
	scoreboard_ring(&s->sb->cells[n]);
}

int
slots_find_pid(const struct slots *s, pid_t pid)
{
	unsigned h;

	if (pid <= 0 || s->pidmap == NULL)
		return -1;
	for (h = pid_hash(pid); s->pidmap[h] != 0;
	    h = (h + 1) & (PIDMAP_SIZE - 1))
		if (s->procs[s->pidmap[h] - 1].pid == pid)
			return s->pidmap[h] - 1;
	return -1;
}

/* Plans slot i after its worker's exit of class cls; the plan's words. */
static void
plan_slot(struct slots *s, int i, enum exit_class cls, int healthy,
    int64_t now, char *plan, size_t size)
{
	struct slot *sl = &s->v[i];
	int64_t delay;

	if (sl->cur >= 0) {
		copy_str(plan, "not respawned", size);
		return;
	}
	if (sl->next >= 0 && s->procs[sl->next].gen == s->release_gen &&
	    slot_wanted(s, i)) {
		/* A restart's replacement was waiting for this exit. */
		if (s->procs[sl->next].state == PROC_HELD) {
			slots_release(s, i);
			copy_str(plan, "replaced", size);
		} else {
			copy_str(plan, "its replacement takes over once "
			    "ready", size);
		}
		return;
	}
	if (!slot_wanted(s, i)) {
		slot_move(s, i, SE_DROPPED);
		copy_str(plan, "not respawned", size);
		return;
	}
	slot_move(s, i, SE_EXITED);
	delay = policy_after_exit(&sl->failures, cls, healthy);
	sl->respawn_at = now + delay;
	if (delay > 0)
		sl->backoff_since = now;
	if (delay == 0)
		copy_str(plan, "respawning now", size);
	else
		snprintf(plan, size, "respawning in %.1f s (%u failures in a "
		    "row)", (double)delay / NS_PER_SEC, sl->failures);
}

/* Who a worker's lines are from. */
static struct log_origin
origin(const struct proc *p)
{
	struct log_origin o = { p->title, "", ROLE_WORKER_LOG, p->pid,
	    p->slot };

	return o;
}

void
slots_output(struct slots *s, int idx, int stream)
{
	struct proc *p = &s->procs[idx];
	struct log_origin o;

	/* An event may outlive its worker within one batch of the loop. */
	if (idx < 0 || idx >= SB_CELLS || p->state == PROC_FREE)
		return;
	o = origin(p);
	outstream_read(&p->out[stream], &o);
}

/* Takes what is left of a dead worker's output and closes its streams. */
static void
drain_output(struct slots *s, int idx)
{
	struct proc *p = &s->procs[idx];
	struct log_origin o = origin(p);

	for (int k = 0; k < 2; k++)
		outstream_close(&p->out[k], &o);
}

/*
 * Folds a dead worker's call counts and times into its slot's, and its
 * exit into the task's exits by reason.
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* loses sl->hist */
#endif
static void
fold_times(struct slots *s, struct slot *sl, const struct sb_cell *c,
    enum exit_reason why)
{
	int64_t now = mono_ns();

	s->exits_by[why]++;
	if (now - sl->mark_ns[1] >= NS_PER_SEC) {
		sl->mark_ns[0] = sl->mark_ns[1];
		sl->mark_calls[0] = sl->mark_calls[1];
		sl->mark_ns[1] = now;
		sl->mark_calls[1] = sl->calls_done;
	}
	sl->errors_done += atomic_load(&c->w.errors);
	if (sl->times_done == NULL) {
		struct hist *h = calloc(1, sizeof(*h));

		if (h == NULL)
			return;
		sl->times_done = h;
	}
	hist_add_cell(sl->times_done, c);
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

/*
 * A slot a scale-down removed: its counts go to the task's retired ones
 * (so its totals never go backwards) and it is left empty and clean.
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* frees both */
#endif
static void
retire(struct slots *s, int i)
{
	struct slot *sl = &s->v[i];

	s->retired_calls += sl->calls_done;
	s->retired_errors += sl->errors_done;
	if (sl->times_done != NULL)
		hist_add(&s->retired_times, sl->times_done);
	free(sl->hist);
	free(sl->times_done);
	memset(sl, 0, sizeof(*sl));
	sl->state = SLOT_EMPTY;
	sl->cur = sl->next = -1;
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

void
slots_slot_stats(const struct slots *s, int i, uint64_t *calls,
    uint64_t *errors, struct hist *h, uint64_t *cur_calls)
{
	const struct slot *sl = &s->v[i];
	const int live[2] = { sl->cur, sl->next };

	if (cur_calls != NULL)
		*cur_calls = 0;
	*calls = sl->calls_done;
	*errors = sl->errors_done;
	memset(h, 0, sizeof(*h));
	if (sl->times_done != NULL)
		hist_add(h, sl->times_done);
	for (int k = 0; k < 2; k++) {
		const struct sb_cell *c;
		uint64_t n;

		if (live[k] < 0)
			continue;
		c = &s->sb->cells[live[k]];
		n = atomic_load_explicit(&c->w.calls, memory_order_relaxed);
		*calls += n;
		if (k == 0 && cur_calls != NULL)
			*cur_calls = n;
		*errors += atomic_load_explicit(&c->w.errors,
		    memory_order_relaxed);
		hist_add_cell(h, c);
	}
}

void
slots_task_stats(const struct slots *s, uint64_t *calls, uint64_t *errors,
    struct hist *h)
{
	*calls = s->retired_calls;
	*errors = s->retired_errors;
	*h = s->retired_times;
	for (int i = 0; i < s->n; i++) {
		uint64_t c, e;
		struct hist one;

		slots_slot_stats(s, i, &c, &e, &one, NULL);
		*calls += c;
		*errors += e;
		hist_add(h, &one);
	}
}

long long
slots_rate_mcps(const struct slots *s, int i, int64_t now)
{
	const struct slot *sl = &s->v[i];
	const struct sb_cell *c = sl->cur >= 0 ? &s->sb->cells[sl->cur] : NULL;
	uint64_t calls, c0;
	int64_t t0;

	/*
	 * Workers that live less than a second (executeTimes 1): the pace
	 * of the slot, from its exits' marks.
	 */
	if (sl->mark_ns[0] != 0 && now > sl->mark_ns[0] && (c == NULL ||
	    atomic_load_explicit(&c->w.mark_ns[0], memory_order_relaxed) ==
	    0))
		return (long long)((double)(sl->calls_done + (c == NULL ? 0 :
		    atomic_load_explicit(&c->w.calls, memory_order_relaxed)) -
		    sl->mark_calls[0]) * 1e12 / (double)(now - sl->mark_ns[0]));
	if (c == NULL)
		return 0;
	calls = atomic_load_explicit(&c->w.calls, memory_order_relaxed);
	t0 = atomic_load_explicit(&c->w.mark_ns[0], memory_order_relaxed);
	c0 = atomic_load_explicit(&c->w.mark_calls[0], memory_order_relaxed);
	/* Young: since work_init ended, for want of a mark a second old. */
	if (t0 == 0 || calls < c0) {
		t0 = atomic_load_explicit(&c->w.ready_at, memory_order_relaxed);
		c0 = 0;
	}
	if (t0 == 0 || now <= t0)
		return 0;
	return (long long)((double)(calls - c0) * 1e12 / (double)(now - t0));
}

/* Counts an exit into its slot's health and history. */
static void
remember_exit(struct slot *sl, const struct exit_facts *f,
    const struct worker_exit *ex)
{
	struct exit_rec *r, *hist = sl->hist;

	sl->calls_done += f->calls;
	if (ex->cls == EXIT_FAILED)
		sl->failures_total++;
	else
		sl->recycles++;
	if (hist == NULL &&
	    (hist = sl->hist = calloc(SLOT_HISTORY, sizeof(*hist))) == NULL)
		return;		/* the counts are kept; the history is not */
	r = &hist[sl->nhist++ % SLOT_HISTORY];
	r->at_ms = real_ns() / NS_PER_MS;
	r->lived_ms = f->lived_ns / NS_PER_MS;
	r->calls = f->calls;
	r->failed = ex->cls == EXIT_FAILED;
	copy_str(r->text, ex->text, sizeof(r->text));
}

void
slots_exited(struct slots *s, int idx, int wstatus, int64_t now,
    struct worker_exit *ex)
{
	struct proc *p = &s->procs[idx];
	struct sb_cell *c = &s->sb->cells[idx];
	struct slot *sl = &s->v[p->slot];
	struct exit_facts f;
	char plan[96];

	/* Its last words come before the line about its end. */
	drain_output(s, idx);
	memset(&f, 0, sizeof(f));
	f.wstatus = wstatus;
	f.why = atomic_load(&c->w.why);
	f.calls = atomic_load(&c->w.calls);
	f.lived_ns = now - p->started;
	f.rss_kb = atomic_load(&c->w.rss_kb);
	f.timed_out = p->timed_out;
	f.call_ns = p->timeout_call_ns;
	f.timeout_call = p->timeout_call;
	f.stop_killed = p->killed_at_stop;

	/*
	 * It got through work_init, whatever ended it since: the start-up
	 * must not call it a failure for seeing the exit before the
	 * readiness.
	 */
	if (slots_proc_ready(s, idx) || f.calls > 0)
		sl->went_ready = 1;

	memset(ex, 0, sizeof(*ex));
	ex->idx = idx;
	ex->slot = p->slot;
	ex->pid = p->pid;
	ex->gen = p->gen;
	ex->cls = policy_classify(&f, ex->text, sizeof(ex->text));

	if (sl->cur == idx) {
		sl->cur = -1;
		sl->next_due = atomic_load(&c->w.next_due);
	} else if (sl->next == idx) {
		sl->next = -1;
	}
	p->state = proc_next(p->state, PE_EXIT);
	s->free_cells[s->nfree++] = idx;
	s->nlive--;

	plan_slot(s, p->slot, ex->cls, policy_healthy(&f, ex->cls), now, plan,
	    sizeof(plan));
	copy_str(sl->last_exit, ex->text, sizeof(sl->last_exit));
	sl->last_failed = ex->cls == EXIT_FAILED;
	remember_exit(sl, &f, ex);
	fold_times(s, sl, c, policy_reason(&f));
	logmsg(ex->cls == EXIT_FAILED && !s->stopping ? PM_LOG_WARNING :
	    PM_LOG_INFO, "worker %d (pid %ld) exited: %s; %s", p->slot,
	    (long)p->pid, ex->text, plan);
	/* A free cell's descriptors are never looked at (its state says). */
	if (p->pid > 0)
		pid_del(s, p->pid);
	memset(p, 0, sizeof(*p));
	/* Slots beyond a lowered target disappear once their workers have. */
	while (s->n > s->target && s->v[s->n - 1].state == SLOT_EMPTY &&
	    s->v[s->n - 1].next < 0)
		retire(s, --s->n);
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
	uint64_t calls = atomic_load(&c->w.calls);

	if (atomic_load(&c->w.phase) != PHASE_BUSY) {
		p->watch_since = 0;
		return 0;
	}
	if (p->watch_since == 0 || calls != p->watch_calls) {
		p->watch_calls = calls;
		p->watch_since = now;
	}
	if (!p->hot && atomic_load(&c->w.call_started) != 0)
		return now - atomic_load(&c->w.call_started);
	return now - p->watch_since;
}

/* Is limitSeconds over for p?  Moves its deadline if not yet. */
static int
lifetime_over(struct slots *s, int idx, int64_t now)
{
	struct proc *p = &s->procs[idx];
	int64_t ready = atomic_load(&s->sb->cells[idx].w.ready_at);

	/* limitSeconds counts from the end of work_init (ready_at). */
	if (ready != 0 && ready + p->lifetime <= now)
		return 1;
	p->deadline = ready == 0 ? now + p->lifetime : ready + p->lifetime;
	return 0;
}

/* Kills proc idx's process group for passing its deadline. */
static void
kill_overdue(struct slots *s, int idx, enum proc_deadline why, int stopping)
{
	struct proc *p = &s->procs[idx];

	p->killed_at_stop = why == DL_STOP && stopping;
	if (why == DL_INIT)
		logmsg(PM_LOG_WARNING, "worker %d (pid %ld) did not finish "
		    "work_init within %lld s; killing it", p->slot,
		    (long)p->pid, (long long)(INIT_TIMEOUT_NS / NS_PER_SEC));
	else
		logmsg(PM_LOG_WARNING, "worker %d (pid %ld) still running "
		    "after %s; killing its process group", p->slot,
		    (long)p->pid, why == DL_GRACE ? "workTimeout's grace "
		    "period" : stopping ? "stopTimeout" :
		    "stopTimeout (replaced)");
	p->state = proc_next(p->state, PE_DEADLINE);
	p->deadline = 0;
	signal_proc(p, SIGKILL, 1);
}

/* workTimeout: SIGTERM a worker whose call ran too long. */
static void
time_out(struct slots *s, int idx, int64_t age, unsigned limit_s,
    int64_t now)
{
	struct proc *p = &s->procs[idx];

	p->timed_out = 1;
	p->timeout_call_ns = age;
	p->timeout_call = atomic_load(&s->sb->cells[idx].w.calls) + 1;
	logmsg(PM_LOG_WARNING, "worker %d (pid %ld): work() call %llu has "
	    "run %.1f s, over workTimeout %u s; terminating it", p->slot,
	    (long)p->pid, (unsigned long long)atomic_load(
	    &s->sb->cells[idx].w.calls) + 1, (double)age / NS_PER_SEC,
	    limit_s);
	atomic_store(&s->sb->cells[idx].cmd, CELL_TIMEOUT);
	signal_proc(p, SIGTERM, 0);
	/* A stop's kill already due sooner stands. */
	if (p->state != PROC_STOPPING || p->deadline > now + TIMEOUT_GRACE_NS)
		p->deadline = now + TIMEOUT_GRACE_NS;
	p->state = proc_next(p->state, PE_TIMEOUT);
}

void
slots_run_deadlines(struct slots *s, const struct task_config *cfg,
    int64_t now)
{
	int64_t limit = (int64_t)cfg->work_timeout * NS_PER_SEC;

	for (int i = 0; i < s->ncells; i++) {
		struct proc *p = &s->procs[i];
		enum proc_deadline kind = proc_deadline_kind(p->state);

		if (p->state == PROC_FREE)
			continue;
		if (limit > 0 && !p->timed_out && (p->state == PROC_RUNNING ||
		    p->state == PROC_EXPIRING || p->state == PROC_STOPPING)) {
			int64_t age = call_age(p, &s->sb->cells[i], now);

			if (age >= limit) {
				time_out(s, i, age, cfg->work_timeout, now);
				continue;
			}
		}
		if (kind == DL_NONE || p->deadline == 0 || p->deadline > now)
			continue;
		if (kind == DL_LIFETIME) {
			if (!lifetime_over(s, i, now))
				continue;
			p->state = proc_next(p->state, PE_EXPIRE);
			p->deadline = 0;
			tell(s, i, CELL_EXPIRE);
			continue;
		}
		kill_overdue(s, i, kind, s->stopping);
	}
}

int64_t
slots_next_deadline(const struct slots *s, const struct task_config *cfg)
{
	int64_t limit = (int64_t)cfg->work_timeout * NS_PER_SEC, next = 0;
	int watched = 0;

	for (int i = 0; s->respawn && !s->paused && i < s->target; i++) {
		int64_t t = s->v[i].respawn_at;

		if (s->v[i].state == SLOT_WAITING && (next == 0 || t < next))
			next = t;
	}
	for (int i = 0; i < s->ncells; i++) {
		const struct proc *p = &s->procs[i];
		const struct sb_cell *c = &s->sb->cells[i];
		int64_t t = p->deadline;

		if (p->state == PROC_FREE)
			continue;
		if (t != 0 && proc_deadline_kind(p->state) != DL_NONE &&
		    (next == 0 || t < next))
			next = t;
		if (limit == 0 || p->timed_out ||
		    (p->state != PROC_RUNNING && p->state != PROC_EXPIRING &&
		    p->state != PROC_STOPPING))
			continue;
		/* A timed call is due at its stamp + limit. */
		t = atomic_load(&c->w.call_started);
		if (!p->hot && t != 0 && atomic_load(&c->w.phase) ==
		    PHASE_BUSY) {
			if (next == 0 || t + limit < next)
				next = t + limit;
		} else {
			watched = 1;
		}
	}
	/* Calls the master cannot see start: look every quarter timeout. */
	if (watched) {
		int64_t t = mono_ns() + limit / 4;

		if (next == 0 || t < next)
			next = t;
	}
	return next;
}

int
slots_any_unattended(const struct slots *s)
{
	for (int i = 0; s->respawn && i < s->target; i++)
		if (s->v[i].state == SLOT_EMPTY)
			return 1;
	return 0;
}

void
slots_reconcile(struct slots *s, int64_t now)
{
	for (int i = 0; s->respawn && i < s->target; i++) {
		if (s->v[i].state != SLOT_EMPTY)
			continue;
		slot_move(s, i, SE_GROW);
		s->v[i].respawn_at = now;
	}
}

int
slots_started(const struct slots *s, char *why, size_t size)
{
	int all = 1;

	for (int i = 0; i < s->target; i++) {
		const struct slot *sl = &s->v[i];

		if (sl->went_ready)
			continue;	/* up once: not a start-up failure */
		if (sl->last_failed && sl->last_exit[0] != '\0') {
			snprintf(why, size, "worker %d failed: %s", i,
			    sl->last_exit);
			return -1;
		}
		if (sl->last_exit[0] != '\0')
			continue;	/* ended normally: it worked */
		if (sl->cur < 0 || !slots_proc_ready(s, sl->cur))
			all = 0;
	}
	return all;
}

void
slots_collect_ready(struct slots *s)
{
	for (int i = 0; i < s->ncells; i++)
		if (s->procs[i].state == PROC_PREPARING &&
		    slots_proc_ready(s, i)) {
			s->procs[i].state = proc_next(PROC_PREPARING,
			    PE_READY);
			s->procs[i].deadline = 0;
		}
}

int
slots_proc_ready(const struct slots *s, int idx)
{
	uint32_t ph = atomic_load(&s->sb->cells[idx].w.phase);

	return ph >= PHASE_HELD && ph <= PHASE_BUSY;
}

void
slots_kill_strays(const struct slots *s)
{
	char path[64], buf[4096];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/children",
	    (long)getpid());
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fscanf(f, "%4095s", buf) == 1) {
		long pid = strtol(buf, NULL, 10);

		if (pid > 0 && slots_find_pid(s, (pid_t)pid) < 0) {
			logmsg(PM_LOG_INFO, "killing pid %ld, left behind by "
			    "a worker", pid);
			kill((pid_t)pid, SIGKILL);
		}
	}
	fclose(f);
}
