/*
 * serve.c - the master's side of each control command: what a running
 * master does for status, stop, restart, wakeup and scale (commands.c
 * maps request verbs here).  Each handler acts through master.h's
 * functions; status reads the slots and scoreboard and writes the records
 * of the status schema (status.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "master.h"
#include "status.h"
#include "util.h"

/* The name of a worker's state, from its cell and its process state. */
static const char *
worker_state(const struct master *m, int idx)
{
	static const char *const phases[] = {
		[PHASE_STARTING] = "starting",
		[PHASE_INIT] = "init",
		[PHASE_HELD] = "held",
		[PHASE_IDLE] = "idle",
		[PHASE_BUSY] = "busy",
		[PHASE_EXITING] = "exiting",
	};
	uint32_t ph = atomic_load(&m->sb->cells[idx].w.phase);
	enum proc_state st = m->slots.procs[idx].state;

	if ((st == PROC_STOPPING || st == PROC_TERMINATING ||
	    st == PROC_KILLED) && ph != PHASE_EXITING)
		return "stopping";
	return ph < nitems(phases) ? phases[ph] : "?";
}

/* RSS of a process in KiB from /proc/PID/statm; -1 if unknown. */
static long long
rss_kb(pid_t pid)
{
	char path[64], buf[128];
	unsigned long long size, res;
	ssize_t n;
	int fd;

	/* No stdio: a status request must not grow the master's heap. */
	snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &res) != 2)
		return -1;
	return (long long)(res * (unsigned long long)(sysconf(_SC_PAGESIZE) /
	    1024));
}

/* A slot's counts, its live workers' included, read once per answer. */
struct slot_view {
	uint64_t	 calls;
	uint64_t	 errors;
	uint64_t	 cur_calls;	/* its current worker's */
	struct hist	 times;
	long long	 rate_mcps;
};

/* Call times: the histogram, its sum, and the two quantiles it gives. */
static void
put_times(struct buf *b, const struct hist *h, enum status_key hist,
    enum status_key sum, enum status_key p50, enum status_key p99)
{
	char text[SB_BUCKETS * 26];
	int64_t q;

	hist_format(h, text, sizeof(text));
	status_put_text(b, hist, text);
	status_put_num(b, sum, (long long)h->sum_ns);
	if ((q = hist_quantile(h, 0.5)) >= 0)
		status_put_num(b, p50, q / 1000);
	if ((q = hist_quantile(h, 0.99)) >= 0)
		status_put_num(b, p99, q / 1000);
}

/* A slot's counters; calls counts those of its live workers too. */
static void
put_health(struct buf *b, const struct slot *s, const struct slot_view *v)
{
	status_put_num(b, SK_W_CALLS_TOTAL, (long long)v->calls);
	status_put_num(b, SK_W_ERRORS_TOTAL, (long long)v->errors);
	status_put_num(b, SK_W_RATE, v->rate_mcps);
	put_times(b, &v->times, SK_W_HIST, SK_W_HIST_SUM_NS, SK_W_P50_US,
	    SK_W_P99_US);
	status_put_num(b, SK_W_BACKOFF_MS, s->backoff_ns / NS_PER_MS);
	status_put_num(b, SK_W_RECYCLES, (long long)s->recycles);
	status_put_num(b, SK_W_FAILURES_TOTAL, (long long)s->failures_total);
	status_put_num(b, SK_W_CRASH_LOOP, SLOT_CRASH_LOOP(s));
	status_put_num(b, SK_W_RESTARTS, (long long)s->respawns);
	status_put_num(b, SK_W_FAILURES, s->failures);
}

/* A slot's last exits, oldest first: "exit" records after its worker. */
static void
put_history(struct buf *b, const struct slot *s)
{
	uint64_t first = s->nhist > SLOT_HISTORY ? s->nhist - SLOT_HISTORY : 0;

	for (uint64_t k = first; s->hist != NULL && k < s->nhist; k++) {
		const struct exit_rec *r = &s->hist[k % SLOT_HISTORY];

		buf_add(b, "exit", 4);
		status_put_num(b, SK_E_AT_MS, r->at_ms);
		status_put_num(b, SK_E_LIVED_MS, r->lived_ms);
		status_put_num(b, SK_E_CALLS, (long long)r->calls);
		status_put_num(b, SK_E_FAILED, r->failed);
		status_put_text(b, SK_E_REASON, r->text);
		buf_add(b, "\n", 1);
	}
}

/* The task's totals: calls, failed calls, call times, exits by reason. */
static void
put_task_totals(const struct master *m, struct buf *b, int64_t now)
{
	char text[EXR_COUNT * 32];
	uint64_t calls, errors;
	long long rate = 0;
	struct hist h;
	size_t n = 0;

	slots_task_stats(&m->slots, &calls, &errors, &h);
	for (int i = 0; i < m->slots.n; i++)
		rate += slots_rate_mcps(&m->slots, i, now);
	status_put_num(b, SK_CALLS_TOTAL, (long long)calls);
	status_put_num(b, SK_ERRORS_TOTAL, (long long)errors);
	status_put_num(b, SK_RATE, rate);
	put_times(b, &h, SK_HIST, SK_HIST_SUM_NS, SK_P50_US, SK_P99_US);
	text[0] = '\0';
	for (int r = 0; r < EXR_COUNT; r++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s:%llu",
		    r > 0 ? "," : "", policy_reason_name((enum exit_reason)r),
		    (unsigned long long)m->slots.exits_by[r]);
	status_put_text(b, SK_EXITS_BY, text);
}

/* One "worker" record for a live process. */
static void
put_worker(const struct master *m, struct buf *b, int idx, int64_t now,
    int history, const struct slot_view *v)
{
	const struct proc *p = &m->slots.procs[idx];
	const struct sb_cell *c = &m->sb->cells[idx];
	const struct slot *s = &m->slots.v[p->slot];
	int64_t started = atomic_load(&c->w.call_started);
	/* Read once: work and calls_total must agree in one answer. */
	uint64_t calls = s->cur == idx ? v->cur_calls :
	    atomic_load(&c->w.calls);
	long long kb = (long long)atomic_load(&c->w.rss_kb);

	buf_add(b, "worker", 6);
	status_put_num(b, SK_W_SLOT, p->slot);
	/* A preload process has not named it yet: no pid, no memory. */
	if (p->pid > 0)
		status_put_num(b, SK_W_PID, p->pid);
	status_put_text(b, SK_W_STATE, worker_state(m, idx));
	status_put_num(b, SK_W_START_MS, p->started_real / NS_PER_MS);
	status_put_num(b, SK_W_RUN_MS, (now - p->started) / NS_PER_MS);
	/*
	 * The RSS the worker published (once a second at most): no /proc
	 * read per worker, but for one that has not published yet.
	 */
	if (kb == 0 && p->pid > 0)
		kb = rss_kb(p->pid);
	if (kb > 0)
		status_put_num(b, SK_W_RSS_KB, kb);
	status_put_num(b, SK_W_WORK, (long long)calls);
	status_put_num(b, SK_W_ERRORS, (long long)atomic_load(&c->w.errors));
	put_health(b, s, v);
	status_put_num(b, SK_W_GENERATION, p->gen);
	/* Its life's limits as drawn (executeTimesJitter, ...). */
	if (p->max_calls > 0)
		status_put_num(b, SK_W_MAX_CALLS, (long long)p->max_calls);
	if (p->lifetime > 0)
		status_put_num(b, SK_W_LIFETIME_S, p->lifetime / NS_PER_SEC);
	if (atomic_load(&c->w.phase) == PHASE_BUSY && started != 0)
		status_put_num(b, SK_W_CALL_MS, (now - started) / NS_PER_MS);
	if (s->last_exit[0] != '\0')
		status_put_text(b, SK_W_LAST_EXIT, s->last_exit);
	buf_add(b, "\n", 1);
	if (history && s->cur == idx)
		put_history(b, s);
}

/* One "worker" record for a slot without a process. */
static void
put_idle_slot(const struct master *m, struct buf *b, int i, int64_t now,
    int history, const struct slot_view *v)
{
	const struct slot *s = &m->slots.v[i];

	buf_add(b, "worker", 6);
	status_put_num(b, SK_W_SLOT, i);
	status_put_text(b, SK_W_STATE, s->state == SLOT_WAITING &&
	    s->respawn_at > now && s->last_failed ? (SLOT_CRASH_LOOP(s) ?
	    "crash-loop" : "backoff") : m->mode == MODE_RUN_ONCE ? "done" :
	    "pending");
	put_health(b, s, v);
	if (s->state == SLOT_WAITING && s->respawn_at > now)
		status_put_num(b, SK_W_RESPAWN_IN_MS,
		    (s->respawn_at - now) / NS_PER_MS);
	if (s->last_exit[0] != '\0')
		status_put_text(b, SK_W_LAST_EXIT, s->last_exit);
	buf_add(b, "\n", 1);
	if (history)
		put_history(b, s);
}

/* The "preload" record: the workers' preload process, when there is one. */
static void
put_preload(const struct master *m, struct buf *b, int64_t now)
{
	static const char *const states[] = {
		[SPAWNER_STARTING] = "starting", [SPAWNER_READY] = "ready",
		[SPAWNER_DOWN] = "down", [SPAWNER_STOPPED] = "stopping",
	};
	const struct spawner *sp = &m->spawners[m->cur];

	/* A spawner without the plugin is plumbing, not a row of status. */
	if (sp->state == SPAWNER_FORK || !sp->loads)
		return;
	buf_add(b, "preload", 7);
	if (sp->pid > 0) {
		status_put_num(b, SK_P_PID, sp->pid);
		status_put_num(b, SK_P_RSS_KB, rss_kb(sp->pid));
		status_put_num(b, SK_P_START_MS, sp->started_real / NS_PER_MS);
		status_put_num(b, SK_P_RUN_MS, (now - sp->started) /
		    NS_PER_MS);
	}
	status_put_text(b, SK_P_TITLE, sp->title);
	status_put_text(b, SK_P_STATE, states[sp->state]);
	status_put_num(b, SK_P_RESTARTS, (long long)sp->restarts);
	if (sp->last_exit[0] != '\0')
		status_put_text(b, SK_P_LAST_EXIT, sp->last_exit);
	buf_add(b, "\n", 1);
}

enum serve_result
serve_status(struct master *m, const struct request *rq, struct reply *rp)
{
	int64_t now = mono_ns(), now_real = real_ns();
	char wtitle[PROC_TITLE_MAX];
	struct buf *b = &rp->body;
	int history;

	history = rq->exits;
	title_compose(wtitle, sizeof(wtitle), m->cfg.title_prefix,
	    TITLE_WORKER, m->cfg.base_title);
	buf_add(b, "master", 6);
	status_put_text(b, SK_NAME, m->cfg.base_title);
	status_put_num(b, SK_PID, getpid());
	status_put_text(b, SK_TITLE, m->title);
	status_put_text(b, SK_WORKER_TITLE, wtitle);
	status_put_text(b, SK_STATE, m->state == MASTER_STOPPING ?
	    "stopping" : m->rs.phase != RS_IDLE ? "restarting" : "running");
	status_put_num(b, SK_START_MS, m->started_real / NS_PER_MS);
	status_put_num(b, SK_RUN_MS, (now_real - m->started_real) /
	    NS_PER_MS);
	status_put_num(b, SK_RSS_KB, rss_kb(getpid()));
	status_put_num(b, SK_COUNT, m->slots.nlive);
	status_put_num(b, SK_TARGET, m->slots.target);
	status_put_num(b, SK_GENERATION, m->gen);
	status_put_num(b, SK_STOP_TIMEOUT, m->cfg.stop_timeout);
	status_put_text(b, SK_CONFIG, m->cfg.config_path);
	status_put_text(b, SK_PLUGIN, m->cfg.plugin);
	status_put_text(b, SK_PLUGIN_SHA256, m->cfg.plugin_sha256);
	if (m->cfg.pinned != NULL)
		status_put_text(b, SK_PLUGIN_COPY, m->cfg.pinned);
	status_put_text(b, SK_RUN_DIR, m->run_dir);
	status_put_text(b, SK_LOG, m->prep.log_path);
	put_task_totals(m, b, now);
	buf_add(b, "\n", 1);
	put_preload(m, b, now);

	/* Slots in order; a slot's replacement right after its worker. */
	for (int i = 0; i < m->slots.n; i++) {
		const struct slot *s = &m->slots.v[i];
		struct slot_view v;

		slots_slot_stats(&m->slots, i, &v.calls, &v.errors, &v.times,
		    &v.cur_calls);
		v.rate_mcps = slots_rate_mcps(&m->slots, i, now);
		if (s->cur >= 0)
			put_worker(m, b, s->cur, now, history, &v);
		if (s->next >= 0)
			put_worker(m, b, s->next, now, history, &v);
		if (s->cur < 0 && s->next < 0 && i < m->slots.target)
			put_idle_slot(m, b, i, now, history, &v);
	}
	rp->text[0] = '\0';
	return SERVE_OK;
}

enum serve_result
serve_stop(struct master *m, const struct request *rq, struct reply *rp)
{
	(void)rq;
	snprintf(rp->text, sizeof(rp->text), "stopping stop_timeout=%u "
	    "workers=%d", m->cfg.stop_timeout, m->slots.nlive);
	master_stop(m, "stop command");
	return SERVE_OK;
}

enum serve_result
serve_restart(struct master *m, const struct request *rq, struct reply *rp)
{
	if (master_restart(m, rq->token, "restart command", rp->text,
	    sizeof(rp->text)) < 0)
		return SERVE_ERROR;
	return SERVE_LATER;
}

enum serve_result
serve_wakeup(struct master *m, const struct request *rq, struct reply *rp)
{
	int n = master_wakeup(m, "wakeup command");

	(void)rq;
	snprintf(rp->text, sizeof(rp->text), "woke up: respawned %d worker%s",
	    n, n == 1 ? "" : "s");
	return SERVE_OK;
}

enum serve_result
serve_scale(struct master *m, const struct request *rq, struct reply *rp)
{
	/* N was checked with the request (control_parse). */
	if (master_scale(m, (int)rq->count, "scale command", rp->text,
	    sizeof(rp->text)) < 0)
		return SERVE_ERROR;
	return SERVE_OK;
}
