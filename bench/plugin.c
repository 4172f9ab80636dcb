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
 *
 * params (compact JSON from the config, or the floor program's own):
 *   {"out": "/abs/path/records", "mode": "sleep" | "block" | "rate",
 *    "block_ms": N}
 *   sleep  first call records FIRST; every call returns at once (the
 *          worker then sleeps executeUSleep between calls)
 *   block  first call records FIRST and returns; each later call sleeps
 *          block_ms inside work() (so a worker with executeUSleep 0 is
 *          idle, its slot's next_due stays in the past, and a SIGKILL
 *          lands in a call, as a hung task's would)
 *   rate   every call notes its start time in memory; the RATE records
 *          are written in bulk at fini (or when 4096 are pending), so no
 *          file write runs between two timed calls
 *
 * Built a second time with -DBENCH_COUNT for the "count" mode: work() is
 * an empty call (return PM_CONTINUE: no syscall, no clock read, no
 * branch); work_init records INIT and work_fini records FINI with the call
 * count, from which the harness computes calls/s.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pmhost.h>

PMHOST_PLUGIN;

enum mode { MODE_SLEEP, MODE_BLOCK, MODE_RATE };

/* One worker process loads the plugin once: file-level state is its own. */
static int	 out_fd = -1;
static int	 slot;
static long	 pid;
static enum mode mode;
static long	 block_ms = 1000;

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

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
	char path[4096], m[32];

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
		else if (strcmp(m, "rate") == 0)
			mode = MODE_RATE;
	}
	if ((p = strstr(params, "\"block_ms\":")) != NULL)
		block_ms = strtol(p + strlen("\"block_ms\":"), NULL, 10);
	record("INIT", t, 0);
	return 0;
}

#ifdef BENCH_COUNT

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
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

/* Sleeps ms inside work(), in short steps so that a stop is honoured. */
static void
block(pm_worker *w, long ms)
{
	struct timespec step = { 0, 10 * 1000000L };

	for (long left = ms; left > 0 && !pm_worker_stopping(w); left -= 10)
		while (nanosleep(&step, &step) < 0 && errno == EINTR)
			;
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
	if (ncalls == 1) {
		record("FIRST", t, 0);
		return PM_CONTINUE;
	}
	if (mode == MODE_BLOCK)
		block(w, block_ms);
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
	record("FINI", t, (unsigned long long)pm_worker_calls(w));
	close(out_fd);
	out_fd = -1;
}
