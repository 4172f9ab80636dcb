/*
 * plugin.c - the bench plugin.  Every latency of the suite ends at a
 * CLOCK_MONOTONIC timestamp that a worker takes itself, here, and appends
 * to a records file as one O_APPEND write of
 *
 *     KIND SLOT PID NS VALUE\n
 *
 * so the harness's polling never enters a figure.  Kinds:
 *   INIT   work_init() ran (VALUE 0)
 *   FIRST  the first work() call of this worker started (VALUE 0)
 *   RATE   a work() call started, mode "rate" (VALUE: call number)
 *   FINI   work_fini() ran after the last call (VALUE: calls completed)
 *   FLOOD  a flooding worker saw its stop file (VALUE: lines it wrote)
 *   CPU    count builds: CPU ns from work_init to work_fini (VALUE)
 *   INC    -DBENCH_INC: the counter work() incremented (VALUE)
 *
 * params (compact JSON from the config, or the floor program's own):
 *   {"out": "/abs/path/records",
 *    "mode": "sleep" | "block" | "park" | "rate" | "chat" | "flood",
 *    "block_ms": N, "spin": N, "say": "none" | "stdout" | "log" | "file",
 *    "file": "/abs/path", "stop": "/abs/path", "fini": 0}
 *   sleep  first call records FIRST; every call returns at once (the
 *          worker then sleeps executeUSleep between calls)
 *   block  first call records FIRST and returns; each later call sleeps
 *          block_ms inside work() (so a worker with executeUSleep 0 is
 *          idle, its slot's next_due stays in the past, and a SIGKILL
 *          lands in a call, as a hung task's would)
 *   park   first call records FIRST and returns; each later call waits
 *          in poll() on pm_worker_stop_fd() for block_ms: with
 *          executeUSleep 0 the slot's next_due stays in the past, so a
 *          killed worker's replacement calls at once, and the worker
 *          sleeps without waking until then
 *   rate   every call notes its start time in memory; the RATE records
 *          are written in bulk at fini (or when 4096 are pending), so no
 *          file write runs between two timed calls
 *   chat   every call does the same fixed work (spin rounds of a
 *          multiply-add chain), then says one line of about 70 bytes:
 *          to stdout (line-buffered: one write per line), through
 *          pm_log at info, with write() to its own "file", or not at
 *          all ("none"): the cost of captured output, against the same
 *          call silent
 *   flood  every call writes 50 lines to stdout in one write() (under
 *          PIPE_BUF: never split), without pause, until the file "stop"
 *          exists; it then records FLOOD with the lines written and
 *          sleeps 10 ms per call
 *
 * "fini": 0 leaves the FINI record out: thousands of workers stopping at
 * once would otherwise queue on the records file's inode lock, a cost of
 * this plugin, not of the host that stops them.
 *
 * Built a second time with -DBENCH_COUNT for the "count" mode: work() is
 * an empty call (return PM_CONTINUE: no syscall, no clock read, no
 * branch); work_init records INIT and work_fini records FINI with the call
 * count, from which the harness computes calls/s, and CPU with the CPU
 * time (ns) the thread used from work_init to work_fini, for calls per
 * CPU second.  Built a third time with -DBENCH_INC as well: work()
 * increments a counter in memory and returns; FINI is followed by INC
 * with the counter, which must equal the calls.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pmhost.h>

PMHOST_PLUGIN;

enum mode { MODE_SLEEP, MODE_BLOCK, MODE_PARK, MODE_RATE, MODE_CHAT,
    MODE_FLOOD };
enum say { SAY_NONE, SAY_STDOUT, SAY_LOG, SAY_FILE };

/* One worker process loads the plugin once: file-level state is its own. */
static int	 out_fd = -1;
static int	 slot;
static long	 pid;
static enum mode mode;
static long	 block_ms = 1000;
static enum say	 say;
static long	 spin_rounds;
static int	 say_fd = -1;		/* say "file" */
static char	 stop_path[4096];	/* mode "flood" */
static int	 no_fini;		/* "fini": 0 */

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#ifdef BENCH_COUNT
static long long cpu_at_init;

/* CPU time this thread has used, in ns. */
static long long
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
#endif

/* Appends one record in one write(): lines never interleave. */
static void
record(const char *kind, long long ns, unsigned long long value)
{
	char buf[128];
	int n;

	if (out_fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%s %d %ld %lld %llu\n", kind, slot,
	    pid, ns, value);
	if (write(out_fd, buf, (size_t)n) != n) {
		/* Nothing to do: the harness notices the missing record. */
	}
}

/* The string value of "key" in compact JSON params, copied into buf. */
static int
param_str(const char *params, const char *key, char *buf, size_t size)
{
	char pat[64];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	if ((p = strstr(params, pat)) == NULL)
		return -1;
	p += strlen(pat);
	n = strcspn(p, "\"");
	if (n >= size)
		return -1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

int
work_init(pm_worker *w, void **state)
{
	long long t = now_ns();
	const char *params = pm_worker_params(w), *p;
	char path[4096], m[32], how[32];

	*state = NULL;
	slot = pm_worker_slot(w);
	pid = (long)getpid();
	if (param_str(params, "out", path, sizeof(path)) < 0)
		return 1;
	if ((out_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) < 0)
		return 1;
	if (param_str(params, "mode", m, sizeof(m)) == 0) {
		if (strcmp(m, "block") == 0)
			mode = MODE_BLOCK;
		else if (strcmp(m, "park") == 0)
			mode = MODE_PARK;
		else if (strcmp(m, "rate") == 0)
			mode = MODE_RATE;
		else if (strcmp(m, "chat") == 0)
			mode = MODE_CHAT;
		else if (strcmp(m, "flood") == 0)
			mode = MODE_FLOOD;
	}
	if ((p = strstr(params, "\"block_ms\":")) != NULL)
		block_ms = strtol(p + strlen("\"block_ms\":"), NULL, 10);
	no_fini = strstr(params, "\"fini\":0") != NULL;
	if ((p = strstr(params, "\"spin\":")) != NULL)
		spin_rounds = strtol(p + strlen("\"spin\":"), NULL, 10);
	if (param_str(params, "say", how, sizeof(how)) == 0) {
		if (strcmp(how, "stdout") == 0)
			say = SAY_STDOUT;
		else if (strcmp(how, "log") == 0)
			say = SAY_LOG;
		else if (strcmp(how, "file") == 0)
			say = SAY_FILE;
	}
	if (say == SAY_FILE && (param_str(params, "file", path,
	    sizeof(path)) < 0 || (say_fd = open(path, O_WRONLY | O_APPEND |
	    O_CREAT | O_CLOEXEC, 0644)) < 0))
		return 1;
	if (mode == MODE_FLOOD && param_str(params, "stop", stop_path,
	    sizeof(stop_path)) < 0)
		return 1;
	record("INIT", t, 0);
#ifdef BENCH_COUNT
	cpu_at_init = cpu_ns();
#endif
	return 0;
}

#ifdef BENCH_COUNT

#ifdef BENCH_INC
static unsigned long long counted;
#endif

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
#ifdef BENCH_INC
	counted++;
#endif
	return PM_CONTINUE;
}

#else

#define RATE_BATCH	4096

static unsigned long long ncalls;
static long long rate_ts[RATE_BATCH];
static unsigned long long rate_first;	/* call number of rate_ts[0] */
static int	 rate_n;

/* Writes the pending RATE records, many lines per write(). */
static void
rate_flush(void)
{
	char buf[65536];
	size_t len = 0;

	for (int i = 0; i < rate_n; i++) {
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
		    "RATE %d %ld %lld %llu\n", slot, pid, rate_ts[i],
		    rate_first + (unsigned long long)i);
		if (len > sizeof(buf) - 128 || i == rate_n - 1) {
			if (out_fd >= 0 && write(out_fd, buf, len) !=
			    (ssize_t)len) {
				/* The harness notices missing records. */
			}
			len = 0;
		}
	}
	rate_first += (unsigned long long)rate_n;
	rate_n = 0;
}

/* The same CPU work on every call: a chain the compiler cannot fold. */
static void
spin(long rounds)
{
	static volatile unsigned long long sink;
	unsigned long long x = sink;

	for (long i = 0; i < rounds; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	sink = x;
}

/* One line of about 70 bytes, said the way the params asked. */
static void
chat(pm_worker *w)
{
	char line[128];
	int n;

	switch (say) {
	case SAY_NONE:
		break;
	case SAY_STDOUT:
		printf("benchchat slot %d call %llu: the quick brown fox "
		    "jumps\n", slot, ncalls);
		break;
	case SAY_LOG:
		pm_log(w, PM_LOG_INFO, "benchchat slot %d call %llu: the "
		    "quick brown fox jumps", slot, ncalls);
		break;
	case SAY_FILE:
		n = snprintf(line, sizeof(line), "benchchat slot %d call "
		    "%llu: the quick brown fox jumps\n", slot, ncalls);
		if (write(say_fd, line, (size_t)n) != n) {
			/* The harness counts the lines. */
		}
		break;
	}
}

#define FLOOD_LINES	50

static unsigned long long flood_lines;
static int	 flood_over;

/* 50 lines in one write() until the stop file exists, then a nap. */
static void
flood(pm_worker *w)
{
	static char block[FLOOD_LINES * 80];
	static size_t len;
	struct timespec nap = { 0, 10 * 1000000L };

	if (flood_over) {
		while (nanosleep(&nap, &nap) < 0 && errno == EINTR)
			;
		return;
	}
	if (len == 0)
		for (int i = 0; i < FLOOD_LINES; i++)
			len += (size_t)snprintf(block + len, sizeof(block) -
			    len, "benchflood slot %d line %02d: the quick "
			    "brown fox jumps over the lazy dog\n", slot, i);
	if (write(1, block, len) == (ssize_t)len)
		flood_lines += FLOOD_LINES;
	/* A look at the stop file every 64 blocks: cheap next to them. */
	if ((ncalls & 63) == 0 && (access(stop_path, F_OK) == 0 ||
	    pm_worker_stopping(w))) {
		flood_over = 1;
		record("FLOOD", now_ns(), flood_lines);
	}
}

/* Sleeps ms inside work(), in short steps so that a stop is honoured. */
static void
block(pm_worker *w, long ms)
{
	struct timespec step = { 0, 10 * 1000000L };

	for (long left = ms; left > 0 && !pm_worker_stopping(w); left -= 10)
		while (nanosleep(&step, &step) < 0 && errno == EINTR)
			;
}

/* Waits up to ms for a stop in one poll(): no wakeup until then. */
static void
park(pm_worker *w, long ms)
{
	struct pollfd p = { .fd = pm_worker_stop_fd(w), .events = POLLIN };

	if (p.fd >= 0)
		(void)poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);
}

int
work(pm_worker *w, void *state)
{
	long long t = now_ns();

	(void)state;
	ncalls++;
	if (mode == MODE_RATE) {
		if (rate_n == RATE_BATCH)
			rate_flush();
		if (rate_n == 0 && rate_first == 0)
			rate_first = ncalls;
		rate_ts[rate_n++] = t;
		return PM_CONTINUE;
	}
	if (mode == MODE_CHAT) {
		if (ncalls == 1)
			record("FIRST", t, 0);
		spin(spin_rounds);
		chat(w);
		return PM_CONTINUE;
	}
	if (mode == MODE_FLOOD) {
		if (ncalls == 1)
			record("FIRST", t, 0);
		flood(w);
		return PM_CONTINUE;
	}
	if (ncalls == 1) {
		record("FIRST", t, 0);
		return PM_CONTINUE;
	}
	if (mode == MODE_BLOCK)
		block(w, block_ms);
	else if (mode == MODE_PARK)
		park(w, block_ms);
	return PM_CONTINUE;
}

#endif

void
work_fini(pm_worker *w, void *state)
{
	long long t = now_ns();

	(void)state;
#ifndef BENCH_COUNT
	rate_flush();
#endif
	if (!no_fini)
		record("FINI", t, (unsigned long long)pm_worker_calls(w));
#ifdef BENCH_COUNT
	record("CPU", t, (unsigned long long)(cpu_ns() - cpu_at_init));
#ifdef BENCH_INC
	record("INC", t, counted);
#endif
#endif
	close(out_fd);
	out_fd = -1;
	if (say_fd >= 0)
		close(say_fd);
	say_fd = -1;
}
