/*
 * worker.c - a worker's whole life: detach from the master's resources,
 * load the plugin, work_init once, then work() on the configured cadence
 * until a limit, PM_DONE or a stop, work_fini, _exit.  The cadence lives in
 * the slot's cell (next_due) so that it holds across respawns.
 *
 * The hot loop (executeUSleep 0) makes no system call per call: it reads
 * the stop flags, calls work(), and publishes the call count; memory is
 * checked on an adaptive stride of calls, about once per ms.  Lifetimes
 * and call durations are timed by the master, not here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "pin.h"
#include "plugin.h"
#include "policy.h"
#include "title.h"
#include "util.h"
#include "worker.h"

#define CHECK_EVERY_NS	NS_PER_MS	/* memory checks in the hot loop */
#define CHUNK_NS	(50 * NS_PER_US) /* the hot loop's checks, about */
#define CHUNK_MAX	(1 << 16)	/* calls between two checks, at most */
#define MARK_NS		NS_PER_SEC	/* calls/s and RSS marks, at most */
#define ERROR_LOG_NS	NS_PER_SEC	/* at most one error line per second */
#define RATE_EARLY_MAX_NS (200 * NS_PER_US) /* rate: longest early wakeup */

struct worker {
	struct api_ctx		 api;		/* what the plugin sees; first */
	const struct worker_args *a;
	struct sb_cell		*cell;
	struct plugin		 plugin;
	void			*state;
	int			 initialised;
	char			 title[PROC_TITLE_MAX];
	int			 statm_fd;	/* /proc/self/statm, maxRssMb */
	uint64_t		 rss_limit_kb;
	int64_t			 last_error_log;
	uint64_t		 errors_unlogged;
};

/* Read by signal handlers. */
static struct sb_cell		*signal_cell;
static pid_t			 master_pid;
static ino_t			 pipe_ino[2];	/* stdout's and stderr's */

/* TERM/INT: finish the current call and leave; wake the sleep at once. */
static void
on_stop_signal(int sig)
{
	(void)sig;
	api_note_stop();
	if (signal_cell != NULL)
		atomic_fetch_add(&signal_cell->doorbell, 1);
}

/*
 * The master is gone (PR_SET_PDEATHSIG): take the whole process group down
 * now, grandchildren included, so nothing of the task outlives its master.
 */
static void
on_orphaned(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	/*
	 * The parent-death signal comes from the dying master itself (the
	 * master never sends SIGHUP to a worker); it may arrive before we
	 * are reparented, when getppid() still names the master.
	 */
	if (getppid() != master_pid || (si->si_code == SI_USER &&
	    si->si_pid == master_pid)) {
		log_last_word();
		kill(0, SIGKILL);
	}
}

/*
 * SIGPIPE keeps its default (a plugin's own broken connection ends it),
 * unless the pipe that broke is the one to the master: the master is
 * dying (its descriptors close before the kernel sends the parent-death
 * signal), and the worker ends as on_orphaned does, with its last word,
 * instead of silently.
 */
static void
on_broken_pipe(int sig)
{
	struct pollfd p[2] = { { .fd = STDOUT_FILENO, .events = POLLOUT },
	    { .fd = STDERR_FILENO, .events = POLLOUT } };
	struct sigaction dfl;
	struct stat st;

	if (poll(p, 2, 0) > 0)
		for (int k = 0; k < 2; k++)
			/* Still the pipe the master gave, and broken? */
			if ((p[k].revents & POLLERR) && fstat(p[k].fd,
			    &st) == 0 && st.st_ino == pipe_ino[k]) {
				log_last_word();
				kill(0, SIGKILL);
			}
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	raise(sig);
}

/* Has anyone asked this worker to end (CELL_EXIT, CELL_EXPIRE, TERM)? */
static int
stop_requested(const struct worker *wk)
{
	return api_stopping(&wk->api);
}

/* Why a worker asked to end ends: its lifetime, or a stop. */
static enum exit_why
stop_reason(const struct worker *wk)
{
	return atomic_load(&wk->cell->cmd) == CELL_EXPIRE ? WHY_LIFETIME :
	    WHY_STOP;
}

/* Records why, runs work_fini if work_init succeeded, and exits. */
static _Noreturn void
end_worker(struct worker *wk, enum exit_why why)
{
	struct sb_cell *c = wk->cell;
	int code = (why == WHY_LOAD || why == WHY_INIT || why == WHY_SETUP ||
	    why == WHY_FAIL) ? WORKER_EXIT_FAILED : 0;

	atomic_store(&c->w.phase, PHASE_EXITING);
	if (wk->initialised && wk->plugin.fini != NULL)
		wk->plugin.fini(&wk->api.pub, wk->state);
	atomic_store(&c->w.why, why);
	/* The plugin's buffered stdio output is part of its work. */
	fflush(NULL);
	_exit(code);
}

/* Leaves the master's signal set-up for the worker's own. */
static int
setup_signals(struct worker *wk)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* SA_RESTART: a stop request must not break the plugin's I/O. */
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_stop_signal;
	signal_cell = wk->cell;
	master_pid = wk->a->master;
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = NULL;
	sa.sa_sigaction = on_orphaned;
	sa.sa_flags |= SA_SIGINFO;
	if (sigaction(WORKER_ORPHAN_SIGNAL, &sa, NULL) < 0)
		return -1;
	/*
	 * The master ignores SIGPIPE for its clients; plugins get the
	 * default, but for the pipes to a dying master (on_broken_pipe).
	 */
	sa.sa_sigaction = NULL;
	sa.sa_handler = on_broken_pipe;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	return 0;
}

/*
 * Asks the kernel to signal us when the master dies.  After any change of
 * credentials (which clears the setting), and checked once by hand, since
 * the master may already be gone.
 */
static void
watch_master(void)
{
	if (prctl(PR_SET_PDEATHSIG, WORKER_ORPHAN_SIGNAL) < 0 ||
	    getppid() != master_pid) {
		log_last_word();
		kill(0, SIGKILL);
	}
}

/*
 * Keeps only what the worker uses: stdout and stderr become its streams to
 * the master (stderr also carries its log records), stdin is /dev/null,
 * the ready eventfd stays if held; every other descriptor of the master's
 * is closed (but the log's, in a worker of the master's own user).
 */
static void
setup_fds(const struct worker_args *a, const char *title)
{
	int fd, keep[2] = { a->ready_fd, -1 };
	size_t nkeep = 1;
	struct stat st;

	/*
	 * A worker that runs as the master's own user keeps the log, to
	 * say so if its master dies: it could open it anyway.  Another
	 * user's worker keeps nothing of the master's.
	 */
	if (a->plugin == NULL && (a->creds == NULL || !a->creds->set ||
	    a->creds->uid == geteuid())) {
		struct log_origin o = { title, a->cfg->base_title,
		    ROLE_WORKER_LOG, getpid(), a->slot };
		char text[160];

		snprintf(text, sizeof(text), "its master (pid %ld) is gone: "
		    "the worker and its children end now", (long)a->master);
		if ((keep[nkeep] = log_last_word_arm(&o, text)) >= 0)
			nkeep++;
	}
	if (dup2(a->out_fd, 1) < 0 || dup2(a->err_fd, 2) < 0)
		_exit(WORKER_EXIT_FAILED);
	for (int k = 0; k < 2; k++)
		if (fstat(k + 1, &st) == 0 && S_ISFIFO(st.st_mode))
			pipe_ino[k] = st.st_ino;
	if (a->plugin != NULL) {
		/*
		 * Cloned from the preload process: what the plugin opened
		 * there is the worker's too; only the preload's own go.
		 */
		if (a->out_fd > 2)
			close(a->out_fd);
		if (a->err_fd > 2)
			close(a->err_fd);
		if (a->preload_sock >= 0)
			close(a->preload_sock);
	} else {
		close_fds_except(keep, nkeep);
	}
	if ((fd = open("/dev/null", O_RDONLY | O_NOCTTY)) >= 0) {
		if (fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
	}
	log_to_pipe(2, 0);
	/* A plugin's printf lines reach the log as they are written. */
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Current RSS in KiB from /proc/self/statm; 0 if unknown. */
static uint64_t
current_rss_kb(struct worker *wk)
{
	char buf[128];
	unsigned long long size, resident;
	ssize_t n;

	if (wk->statm_fd < 0)
		return 0;
	n = pread(wk->statm_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return resident * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
}

/* Counts a call of ns, standing for weight calls, in the histogram. */
static inline void
note_time(struct sb_cell *c, int64_t ns, uint64_t weight)
{
	_Atomic uint64_t *b = &c->w.hist[sb_bucket(ns)];

	/* One writer: no read-modify-write instruction needed. */
	atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed)
	    + weight, memory_order_relaxed);
	atomic_store_explicit(&c->w.sum_ns, atomic_load_explicit(&c->w.sum_ns,
	    memory_order_relaxed) + (uint64_t)ns * weight,
	    memory_order_relaxed);
}

/*
 * At most once a MARK_NS: a (time, calls) mark for calls/s, and the RSS
 * for status and metrics (read from /proc only then).
 */
static void
mark(struct worker *wk, int64_t now, uint64_t calls)
{
	struct sb_cell *c = wk->cell;
	int64_t last = atomic_load_explicit(&c->w.mark_ns[1],
	    memory_order_relaxed);
	int fd;

	if (now - last < MARK_NS)
		return;
	atomic_store_explicit(&c->w.mark_ns[0], last, memory_order_relaxed);
	atomic_store_explicit(&c->w.mark_calls[0], atomic_load_explicit(
	    &c->w.mark_calls[1], memory_order_relaxed), memory_order_relaxed);
	atomic_store_explicit(&c->w.mark_ns[1], now, memory_order_relaxed);
	atomic_store_explicit(&c->w.mark_calls[1], calls,
	    memory_order_relaxed);
	if (wk->statm_fd >= 0) {
		atomic_store_explicit(&c->w.rss_kb, current_rss_kb(wk),
		    memory_order_relaxed);
	} else if ((fd = open("/proc/self/statm", O_RDONLY |
	    O_CLOEXEC)) >= 0) {
		wk->statm_fd = fd;
		atomic_store_explicit(&c->w.rss_kb, current_rss_kb(wk),
		    memory_order_relaxed);
		wk->statm_fd = -1;
		close(fd);
	}
}

/* Is the worker above maxRssMb?  Publishes the RSS it read. */
static int
over_memory_limit(struct worker *wk)
{
	uint64_t kb;

	if (wk->rss_limit_kb == 0)
		return 0;
	kb = current_rss_kb(wk);
	atomic_store_explicit(&wk->cell->w.rss_kb, kb,
	    memory_order_relaxed);
	return kb > wk->rss_limit_kb;
}

/* Logs a negative return from work(), at most once a second. */
static void
note_error(struct worker *wk, int rc)
{
	int64_t now = mono_ns();

	atomic_fetch_add_explicit(&wk->cell->w.errors, 1,
	    memory_order_relaxed);
	wk->errors_unlogged++;
	if (now - wk->last_error_log < ERROR_LOG_NS && wk->last_error_log != 0)
		return;
	logmsg(PM_LOG_WARNING, "work() returned %d (call %llu; %llu error%s "
	    "since the last report)", rc,
	    (unsigned long long)atomic_load(&wk->cell->w.calls),
	    (unsigned long long)wk->errors_unlogged,
	    wk->errors_unlogged == 1 ? "" : "s");
	wk->errors_unlogged = 0;
	wk->last_error_log = now;
}

/* Loads the plugin and runs work_init(); exits on failure. */
static void
start_plugin(struct worker *wk)
{
	const struct task_config *cfg = wk->a->cfg;
	char err[PLUGIN_ERR_MAX];
	uint64_t kb;

	if (wk->a->plugin != NULL)
		wk->plugin = *wk->a->plugin;
	else if (plugin_open(cfg, &wk->plugin, err, sizeof(err)) < 0) {
		logmsg(PM_LOG_ERROR, "slot %d: cannot load plugin: %s",
		    wk->a->slot, err);
		end_worker(wk, WHY_LOAD);
	}
	/* Loaded: the pinned copy's descriptor has served. */
	pin_drop();
	atomic_store(&wk->cell->w.phase, PHASE_INIT);
	if (wk->plugin.init != NULL) {
		int rc = wk->plugin.init(&wk->api.pub, &wk->state);

		if (rc != 0) {
			logmsg(PM_LOG_ERROR, "slot %d: work_init() returned %d",
			    wk->a->slot, rc);
			end_worker(wk, WHY_INIT);
		}
	}
	wk->initialised = 1;
	/*
	 * Over the limit before the first call: recycling could never help,
	 * so let the worker run, and say so once per master (a latch: the
	 * first worker to find it set logs).
	 */
	if (wk->rss_limit_kb != 0 && (kb = current_rss_kb(wk)) >
	    wk->rss_limit_kb) {
		atomic_store(&wk->cell->w.rss_kb, kb);
		if (atomic_exchange(&wk->a->sb->rss_warned, 1) == 0)
			logmsg(PM_LOG_WARNING, "slot %d: RSS %.1f MiB right "
			    "after work_init() is already above maxRssMb %u; "
			    "workers are not recycled for memory they hold "
			    "before their first call", wk->a->slot,
			    (double)kb / 1024, cfg->max_rss_mb);
		wk->rss_limit_kb = 0;
	}
}

/*
 * Says that work_init succeeded, when the master wants to know (the ready
 * eventfd: a replacement, or a first worker while the master starts).  A
 * replacement started while its slot's old worker still runs then waits,
 * without spinning, until the master lets it go.
 */
static void
wait_for_go(struct worker *wk)
{
	struct sb_cell *c = wk->cell;
	uint64_t one = 1;

	if (wk->a->ready_fd < 0)
		return;
	atomic_store(&c->w.phase, atomic_load(&c->cmd) == CELL_HOLD ?
	    PHASE_HELD : PHASE_IDLE);
	(void)write_all(wk->a->ready_fd, &one, sizeof(one));
	close(wk->a->ready_fd);
	while (atomic_load(&c->cmd) == CELL_HOLD && !stop_requested(wk)) {
		uint32_t seen = atomic_load(&c->doorbell);

		if (atomic_load(&c->cmd) != CELL_HOLD || stop_requested(wk))
			break;
		scoreboard_wait(c, seen, 0);
	}
}

/* The next call's start on the rate grid, never in the past. */
static int64_t
next_on_grid(int64_t due, int64_t period, int64_t now)
{
	/* More than a period late: skip missed ticks, keep the phase. */
	if (now - due >= period)
		due = now - (now - due) % period;
	return due + period;
}

/*
 * Sleeps until due unless asked to end.  WHY_NONE if the worker may call
 * now, else why it must end.  limitSeconds is the master's to enforce: it
 * sets CELL_EXPIRE and rings, which ends this wait like a stop.
 */
static enum exit_why
wait_due(struct worker *wk, int64_t due, int64_t *now)
{
	struct sb_cell *c = wk->cell;

	for (;;) {
		uint32_t seen = atomic_load(&c->doorbell);

		if (stop_requested(wk))
			return stop_reason(wk);
		*now = mono_ns();
		if (*now >= due)
			return WHY_NONE;
		atomic_store(&c->w.phase, PHASE_IDLE);
		scoreboard_wait(c, seen, due);
	}
}

/*
 * executeUSleep > 0: every call is timed, and the next one's due time is
 * published before and after it, so the slot's cadence survives this
 * worker whenever and however it ends.
 */
static enum exit_why
run_paced(struct worker *wk)
{
	const struct task_config *cfg = wk->a->cfg;
	struct sb_cell *c = wk->cell;
	const int64_t period = (int64_t)cfg->execute_usleep * NS_PER_US;
	const int rate = cfg->schedule == SCHEDULE_RATE;
	/* rate: how late wakeups run, learnt; never more than this early. */
	const int64_t early_max = period / 10 < RATE_EARLY_MAX_NS ?
	    period / 10 : RATE_EARLY_MAX_NS;
	int64_t due = atomic_load(&c->w.next_due), now, end, early = 0;
	uint64_t calls = 0;
	enum exit_why why;
	int rc;

	for (;;) {
		if ((why = wait_due(wk, due - early, &now)) != WHY_NONE)
			return why;
		if (rate && due > 0) {
			/*
			 * Timer wakeups come late by a fairly steady amount:
			 * wake that much early, then wait out the rest on the
			 * clock, so calls start on the deadline itself.
			 */
			int64_t late = now - (due - early);

			early += (late - early) / 8;
			if (early < 0)
				early = 0;
			if (early > early_max)
				early = early_max;
			while (now < due && !stop_requested(wk))
				now = mono_ns();
		}
		atomic_store_explicit(&c->w.call_started, now,
		    memory_order_relaxed);
		due = rate ? next_on_grid(due > 0 ? due : now, period, now) :
		    now + period;
		atomic_store(&c->w.next_due, due);
		atomic_store_explicit(&c->w.phase, PHASE_BUSY,
		    memory_order_relaxed);

		rc = wk->plugin.work(&wk->api.pub, wk->state);

		end = mono_ns();
		atomic_store_explicit(&c->w.calls, ++calls,
		    memory_order_release);
		note_time(c, end - now, 1);
		mark(wk, end, calls);
		/* "delay" counts from the end of the call. */
		if (!rate) {
			due = end + period;
			atomic_store(&c->w.next_due, due);
		}
		atomic_store_explicit(&c->w.phase, PHASE_IDLE,
		    memory_order_relaxed);
		if (rc > 0)
			return rc == PM_FAIL ? WHY_FAIL : WHY_DONE;
		if (rc < 0)
			note_error(wk, rc);
		if (calls == c->w.max_calls)
			return WHY_CALLS;
		if (over_memory_limit(wk))
			return WHY_RSS;
	}
}

/*
 * executeUSleep 0: calls back to back, in chunks.  Within a chunk, only
 * the call and its return code: the loop a bare function-pointer loop
 * is.  Between chunks, the stop flags, the count published (a plain
 * store into the worker's own cell line), the chunk's first call timed
 * (standing for the chunk in the histogram), and once a CHECK_EVERY_NS
 * the marks and memory.  A chunk adapts to about CHUNK_NS, and to one
 * call when a call takes longer: so a stop is seen, and the count the
 * master watches moves, within about CHUNK_NS or one call, whichever is
 * longer.  The master times the lifetime.
 */
static enum exit_why
run_hot(struct worker *wk)
{
	const uint64_t times = wk->cell->w.max_calls;
	int (*work_fn)(pm_worker *, void *) = wk->plugin.work;
	const volatile sig_atomic_t *noted = api_stop_flag();
	pm_worker *pw = &wk->api.pub;
	void *state = wk->state;
	struct sb_cell *c = wk->cell;
	int64_t now, t0, t1, last_check;
	uint64_t calls = 0, chunk = 1, n;
	enum exit_why why;
	int rc;

	/* A previous paced config may have left a due time: honour it. */
	if ((why = wait_due(wk, atomic_load(&c->w.next_due), &now)) !=
	    WHY_NONE)
		return why;
	last_check = now;
	atomic_store(&c->w.phase, PHASE_BUSY);
	for (;;) {
		if (__builtin_expect(*noted || atomic_load_explicit(&c->cmd,
		    memory_order_relaxed) >= CELL_EXIT, 0)) {
			why = stop_reason(wk);
			break;
		}
		/* times 0 (unlimited) is never reached: calls grows first. */
		if (times != 0 && chunk > times - calls)
			chunk = times - calls;
		t0 = mono_ns();
		rc = work_fn(pw, state);
		t1 = mono_ns();
		for (n = 1; __builtin_expect(rc == PM_CONTINUE, 1) &&
		    n < chunk; n++)
			rc = work_fn(pw, state);
		now = n == 1 ? t1 : mono_ns();
		calls += n;
		atomic_store_explicit(&c->w.calls, calls,
		    memory_order_relaxed);
		note_time(c, t1 - t0, n);
		if (__builtin_expect(rc != PM_CONTINUE, 0)) {
			if (rc > 0) {
				why = rc == PM_FAIL ? WHY_FAIL : WHY_DONE;
				break;
			}
			note_error(wk, rc);
		}
		if (__builtin_expect(calls == times, 0)) {
			why = WHY_CALLS;
			break;
		}
		if (now - last_check >= CHECK_EVERY_NS) {
			mark(wk, now, calls);
			if (over_memory_limit(wk)) {
				why = WHY_RSS;
				break;
			}
			last_check = now;
		}
		if (n == chunk && now - t0 < CHUNK_NS / 2 &&
		    chunk < CHUNK_MAX)
			chunk *= 2;
		else if (now - t0 > 2 * CHUNK_NS && chunk > 1)
			chunk /= 2;
	}
	atomic_store_explicit(&c->w.calls, calls, memory_order_release);
	return why;
}

/* The call loop.  Returns why the worker ends. */
static enum exit_why
run_calls(struct worker *wk)
{
	atomic_store(&wk->cell->w.ready_at, mono_ns());
	atomic_store(&wk->cell->w.phase, PHASE_IDLE);
	if (wk->a->cfg->execute_usleep > 0)
		return run_paced(wk);
	return run_hot(wk);
}

_Noreturn void
worker_main(const struct worker_args *a)
{
	static struct worker wk;
	char err[256];

	title_compose(wk.title, sizeof(wk.title), a->cfg->title_prefix,
	    TITLE_WORKER, a->cfg->base_title);
	api_init(&wk.api, ROLE_WORKER, a->slot, wk.title, a->cfg);
	wk.api.cell = a->cell;
	wk.a = a;
	wk.cell = a->cell;
	wk.statm_fd = -1;

	setpgid(0, 0);
	setup_fds(a, wk.title);
	if (setup_signals(&wk) < 0) {
		logmsg(PM_LOG_ERROR, "slot %d: signal setup: %s", a->slot,
		    strerror(errno));
		end_worker(&wk, WHY_SETUP);
	}
	title_set(wk.title);
	if (a->cfg->schedule == SCHEDULE_RATE)
		prctl(PR_SET_TIMERSLACK, 1UL);
	if (a->plugin == NULL)
		pin_hold(a->cfg);
	if (a->plugin == NULL && privs_enter(a->cfg, a->creds, err,
	    sizeof(err)) < 0) {
		logmsg(PM_LOG_ERROR, "slot %d: %s", a->slot, err);
		end_worker(&wk, WHY_SETUP);
	}
	watch_master();
	if (a->cfg->max_rss_mb > 0) {
		wk.rss_limit_kb = (uint64_t)a->cfg->max_rss_mb * 1024;
		wk.statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	}

	start_plugin(&wk);
	wait_for_go(&wk);
	end_worker(&wk, run_calls(&wk));
}
