/*
 * recorder.c - the test suites' configurable plugin.  It appends one line
 * per event to params.record ("EVENT SLOT PID CALLS MONO_NS [EXTRA]"), and
 * misbehaves on request so that each failure path of the host can be
 * driven from a config:
 *
 *   record	 path of the event file (events: init, call, fini, child)
 *   tag	 string written as EXTRA on init lines (e.g. a version)
 *   init_fail	 1: work_init returns -1
 *   init_fail_slot N: work_init returns -1 in slot N only
 *   init_sleep_ms, fini_sleep_ms, sleep_ms: sleep in init / fini / each call
 *   crash_at	 N: SIGSEGV in call N of each worker (1 = every first call)
 *   hang_at	 N: call N never returns (ignores stop requests)
 *   done_at	 N: call N returns PM_DONE
 *   error_at	 N: call N returns -1
 *   exit_at	 N: call N calls exit(params.exit_code)
 *   fork_child	 1: work_init forks a grandchild that sleeps forever
 *   leak_kb	 N: each call allocates and touches N KiB, never freed
 *   poll_stop	 1: while sleeping in a call, return early once stopping
 *   log	 1: each call also writes a pm_log line
 *   print	 1: each call also prints a line to stdout and to stderr (no
 *		 fflush: the host must make stdout line-buffered)
 *   flood	 1: each call writes lines to stdout without end, until a
 *		 stop is requested
 *   orphan_ms	 N: work_init leaves a daemonised grandchild (own session,
 *		 parent gone) that exits after N ms; records "orphan <pid>"
 *   check_fail	 1: work_check (the load check of run, check, restart)
 *		 logs an error naming params.check_msg and returns -1
 *   block_ms	 N: each call blocks in poll() on pm_worker_stop_fd() for
 *		 up to N ms; records "woken" when the stop fd ended it
 *   fail_at	 N: call N returns PM_FAIL
 *   show_config 1: work_init records "config <the task's config JSON>"
 *   show_env	 NAME: work_init records "env NAME=VALUE cwd=DIR"
 *   preload_fail 1: work_preload returns -1 (after recording "preload")
 * work_preload records "preload" (slot -1) and leaves a mark that work_init
 * finds (init lines then say "preloaded" after params.tag).
 * fini lines carry pm_worker_stop_reason() as EXTRA.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pmhost.h>

PMHOST_PLUGIN;

struct rec {
	int	fd;
	long	init_fail, init_sleep_ms, fini_sleep_ms, sleep_ms, crash_at,
		hang_at, done_at, error_at, exit_at, exit_code, fork_child,
		leak_kb, poll_stop, log, print, orphan_ms, block_ms, fail_at,
		flood;
	char	tag[128];
};

/* The number after "key": in compact JSON, or def. */
static long
num_param(const char *json, const char *key, long def)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(json, pat)) == NULL)
		return def;
	return strtol(p + strlen(pat), NULL, 10);
}

/* The string after "key": in compact JSON (no escapes), or "". */
static void
str_param(const char *json, const char *key, char *buf, size_t size)
{
	char pat[64];
	const char *p;
	size_t n;

	buf[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	if ((p = strstr(json, pat)) == NULL)
		return;
	p += strlen(pat);
	n = strcspn(p, "\"");
	if (n >= size)
		n = size - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
}

static long long
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleeps ms, resuming after signals; with poll_stop, ends when stopping. */
static void
sleep_ms(pm_worker *w, struct rec *r, long ms)
{
	long long end = mono_ns() + ms * 1000000LL;

	for (;;) {
		long long left = end - mono_ns();
		struct timespec ts;

		if (left <= 0 || (r != NULL && r->poll_stop &&
		    pm_worker_stopping(w)))
			return;
		if (left > 10000000LL && r != NULL && r->poll_stop)
			left = 10000000LL;
		ts.tv_sec = left / 1000000000LL;
		ts.tv_nsec = left % 1000000000LL;
		nanosleep(&ts, NULL);
	}
}

static void
record(pm_worker *w, struct rec *r, const char *event, const char *extra)
{
	char line[8192];
	int n;

	if (r->fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %d %ld %llu %lld%s%s\n", event,
	    pm_worker_slot(w), (long)getpid(),
	    (unsigned long long)pm_worker_calls(w), mono_ns(),
	    extra[0] != '\0' ? " " : "", extra);
	/* One write per line: O_APPEND keeps lines from workers whole. */
	if (write(r->fd, line, (size_t)n) != n)
		abort();
}

/*
 * Forks a child that forks a grandchild and exits at once: the grandchild,
 * in a session of its own, is adopted by the nearest subreaper.
 */
static void
make_orphan(pm_worker *w, struct rec *r)
{
	int pfd[2];
	pid_t mid, orphan = 0;
	char extra[32];

	if (pipe(pfd) < 0)
		return;
	if ((mid = fork()) == 0) {
		pid_t g;

		close(pfd[0]);
		setsid();
		if ((g = fork()) == 0) {
			close(pfd[1]);
			sleep_ms(w, NULL, r->orphan_ms);
			_exit(0);
		}
		if (write(pfd[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &orphan, sizeof(orphan)) != sizeof(orphan))
		orphan = 0;
	close(pfd[0]);
	waitpid(mid, NULL, 0);
	snprintf(extra, sizeof(extra), "%ld", (long)orphan);
	record(w, r, "orphan", extra);
}

/* Writes whole lines to stdout as fast as it can until stopping. */
static void
flood(pm_worker *w)
{
	static const char line[] = "recorder flood "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
	char buf[64 * (sizeof(line) - 1)];
	size_t off = 0;

	for (size_t i = 0; i < 64; i++)
		memcpy(buf + i * (sizeof(line) - 1), line, sizeof(line) - 1);
	/* A full pipe blocks the write; a stop's signal interrupts it. */
	while (!pm_worker_stopping(w)) {
		ssize_t n = write(1, buf + off, sizeof(buf) - off);

		if (n < 0 && errno != EINTR)
			return;
		/* After a short write, go on mid-line: lines stay whole. */
		if (n > 0)
			off = (off + (size_t)n) % sizeof(buf);
	}
}

/* Set in the preload process; workers cloned from it inherit it. */
static pid_t preloaded_by;

int
work_preload(pm_worker *w)
{
	const char *j = pm_worker_params(w);
	struct rec r;
	char path[4096];

	memset(&r, 0, sizeof(r));
	str_param(j, "record", path, sizeof(path));
	r.fd = path[0] != '\0' ? open(path, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0644) : -1;
	record(w, &r, "preload", pm_worker_title(w));
	if (r.fd >= 0)
		close(r.fd);
	preloaded_by = getpid();
	return num_param(j, "preload_fail", 0) ? -1 : 0;
}

int
work_check(pm_worker *w)
{
	char msg[256];

	if (num_param(pm_worker_params(w), "check_fail", 0) == 0)
		return 0;
	str_param(pm_worker_params(w), "check_msg", msg, sizeof(msg));
	pm_log(w, PM_LOG_INFO, "recorder: this line is not an error");
	pm_log(w, PM_LOG_ERROR, "recorder: check failed: %s (config dir %s)",
	    msg, pm_worker_config_dir(w));
	return -1;
}

int
work_init(pm_worker *w, void **state)
{
	const char *j = pm_worker_params(w);
	struct rec *r = calloc(1, sizeof(*r));
	char path[4096], name[64];

	if (r == NULL)
		return -1;
	str_param(j, "record", path, sizeof(path));
	r->fd = path[0] != '\0' ? open(path, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0644) : -1;
	r->init_fail = num_param(j, "init_fail", 0) ||
	    num_param(j, "init_fail_slot", -1) == pm_worker_slot(w);
	r->init_sleep_ms = num_param(j, "init_sleep_ms", 0);
	r->fini_sleep_ms = num_param(j, "fini_sleep_ms", 0);
	r->sleep_ms = num_param(j, "sleep_ms", 0);
	r->crash_at = num_param(j, "crash_at", 0);
	r->hang_at = num_param(j, "hang_at", 0);
	r->done_at = num_param(j, "done_at", 0);
	r->error_at = num_param(j, "error_at", 0);
	r->exit_at = num_param(j, "exit_at", 0);
	r->exit_code = num_param(j, "exit_code", 0);
	r->fork_child = num_param(j, "fork_child", 0);
	r->leak_kb = num_param(j, "leak_kb", 0);
	r->poll_stop = num_param(j, "poll_stop", 0);
	r->log = num_param(j, "log", 0);
	r->print = num_param(j, "print", 0);
	r->orphan_ms = num_param(j, "orphan_ms", 0);
	r->block_ms = num_param(j, "block_ms", 0);
	r->fail_at = num_param(j, "fail_at", 0);
	r->flood = num_param(j, "flood", 0);
	if (num_param(j, "show_config", 0))
		record(w, r, "config", pm_worker_config_json(w));
	str_param(j, "show_env", name, sizeof(name));
	if (name[0] != '\0') {
		char line[512], cwd[256];
		const char *v = getenv(name);

		snprintf(line, sizeof(line), "%s=%s cwd=%s", name,
		    v != NULL ? v : "(unset)", getcwd(cwd, sizeof(cwd)) ?
		    cwd : "?");
		record(w, r, "env", line);
	}
	str_param(j, "tag", r->tag, sizeof(r->tag));
	*state = r;

	if (r->init_sleep_ms > 0)
		sleep_ms(w, NULL, r->init_sleep_ms);
	if (r->fork_child) {
		pid_t pid = fork();
		char extra[32];

		if (pid == 0) {
			for (;;)
				pause();
		}
		snprintf(extra, sizeof(extra), "%ld", (long)pid);
		record(w, r, "child", extra);
	}
	if (r->orphan_ms > 0)
		make_orphan(w, r);
	if (preloaded_by != 0) {
		char extra[160];

		snprintf(extra, sizeof(extra), "%s%spreloaded %ld", r->tag,
		    r->tag[0] != '\0' ? " " : "", (long)preloaded_by);
		record(w, r, "init", extra);
	} else {
		record(w, r, "init", r->tag);
	}
	if (r->init_fail) {
		pm_log(w, PM_LOG_ERROR, "recorder: init_fail requested");
		return -1;
	}
	return 0;
}

int
work(pm_worker *w, void *state)
{
	struct rec *r = state;
	long call = (long)pm_worker_calls(w) + 1;

	record(w, r, "call", "");
	if (r->log)
		pm_log(w, PM_LOG_INFO, "recorder call %ld in slot %d", call,
		    pm_worker_slot(w));
	if (r->print) {
		printf("recorder stdout call %ld\n", call);
		fprintf(stderr, "recorder stderr call %ld\n", call);
	}
	if (r->flood)
		flood(w);
	if (call == r->crash_at)
		raise(SIGSEGV);
	if (call == r->hang_at)
		for (;;)
			pause();
	if (call == r->exit_at)
		exit((int)r->exit_code);
	if (r->leak_kb > 0) {
		char *p = malloc((size_t)r->leak_kb * 1024);

		if (p != NULL)
			memset(p, 0x5a, (size_t)r->leak_kb * 1024);
		/* Keep the compiler from dropping an allocation never read. */
		__asm__ volatile("" : : "r"(p) : "memory");
	}
	if (r->sleep_ms > 0)
		sleep_ms(w, r, r->sleep_ms);
	if (r->block_ms > 0) {
		struct pollfd p = { .fd = pm_worker_stop_fd(w),
		    .events = POLLIN };

		/* A signal may cut the wait short: only the fd says stop. */
		while (poll(&p, 1, (int)r->block_ms) < 0)
			;
		if (p.revents & POLLIN)
			record(w, r, "woken", "");
	}
	if (call == r->done_at)
		return PM_DONE;
	if (call == r->fail_at)
		return PM_FAIL;
	if (call == r->error_at)
		return -1;
	return PM_CONTINUE;
}

void
work_fini(pm_worker *w, void *state)
{
	struct rec *r = state;

	char why[16];

	if (r->fini_sleep_ms > 0)
		sleep_ms(w, NULL, r->fini_sleep_ms);
	snprintf(why, sizeof(why), "%d", pm_worker_stop_reason(w));
	record(w, r, "fini", why);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}
