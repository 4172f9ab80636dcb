/*
 * floor.c - the physical floor of this machine, for the figures that
 * pmhost's mechanisms add to.  It loads the bench plugin as pmhost does
 * (dlopen RTLD_NOW|RTLD_LOCAL, then the mark, work_init, work, work_fini)
 * and hands it its own struct pm_host_api behind a pm_worker.
 *
 *   floor forkdl SO PARAMS N [GAP_MS]
 *       N times: (sleep GAP_MS: the machine goes idle, as it is before a
 *       respawn) T0 = CLOCK_MONOTONIC right before fork(); the child
 *       dlopens SO, calls work_init and work once (the plugin records
 *       FIRST with its own timestamp) and _exits; the parent waits.
 *       Prints "T0 CHILDPID NS" per run; the harness pairs it with the
 *       child's FIRST record: fork + dlopen + first call.
 *   floor loop SO PARAMS SECONDS [VARIANT]
 *       Calls SO's work() through a function pointer for SECONDS.
 *       Prints "CALLS N NS ELAPSED RC R".  The pointer comes from
 *       dlsym(): the compiler cannot see, inline or drop the call.
 *       VARIANT adds to the bare loop, one step at a time, what pmhost's
 *       hot loop does per call, to tell what each costs:
 *         bare   the call alone; the clock is read once per 4096 calls
 *         count  and the count stored into a cell of a shared mapping
 *                after each call (a relaxed atomic store, as the host
 *                publishes it)
 *         flags  and, before each call, the two stop flags loaded: a
 *                volatile sig_atomic_t and the cell's command word
 *         host   the host's loop as written: calls in chunks of about
 *                50 us, only the call and its return code within one;
 *                per chunk the stop flags, the count, the first call
 *                timed (two clock reads and a histogram update), the
 *                call limit
 *   floor paced SO PARAMS PERIOD_US SECONDS
 *       A paced worker's loop without the host: read the clock, call
 *       work(), read the clock, sleep until PERIOD_US after the end of the
 *       call (a futex wait with a CLOCK_MONOTONIC deadline, as pmhost's
 *       executeUSleep "delay" cadence does), for SECONDS.  The plugin's
 *       work_fini records the calls and the CPU time they took.
 *   floor clock N
 *       N CLOCK_MONOTONIC reads back to back.  Prints "NS PER_READ".
 *   floor spawn SO PARAMS N
 *       The floor of a task's start and stop at N workers: T0, then N
 *       fork()s.  Each child loads SO, calls work_init and work once (the
 *       plugin records FIRST), counts itself in a shared page and sleeps
 *       on a futex there.  Once all N have counted: T1, one FUTEX_WAKE for
 *       them all, each child _exits, the parent reaps every one: T2.
 *       Prints "T0 NS", "T1 NS", "T2 NS": the start is the last FIRST
 *       less T0, the stop T2 less T1.
 *   floor forkexec N PATH
 *       N times fork + execv(PATH) + waitpid.  Prints "NS" per run.
 *   floor timer PERIOD_US N
 *       N wake-ups on an absolute CLOCK_MONOTONIC grid of PERIOD_US, each
 *       a futex wait with a deadline (as a pmhost worker sleeps), timer
 *       slack 1 ns.  Prints each wake-up's time in ns: the floor of
 *       schedule "rate" on this machine.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <errno.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pmhost.h>

static const char *params_text = "null";
static uint64_t floor_calls;

static int
api_slot(const pm_worker *w)
{
	(void)w;
	return 0;
}

static const char *
api_title(const pm_worker *w)
{
	(void)w;
	return "bench-floor";
}

static uint64_t
api_calls(const pm_worker *w)
{
	(void)w;
	return floor_calls;
}

static const char *
api_params(const pm_worker *w)
{
	(void)w;
	return params_text;
}

static int
api_stopping(const pm_worker *w)
{
	(void)w;
	return 0;
}

static void
api_vlog(pm_worker *w, int level, const char *fmt, va_list ap)
{
	(void)w;
	(void)level;
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static const struct pm_host_api floor_api = {
	.size = sizeof(struct pm_host_api),
	.slot = api_slot,
	.title = api_title,
	.calls = api_calls,
	.params = api_params,
	.stopping = api_stopping,
	.vlog = api_vlog,
};

static pm_worker floor_worker = { &floor_api };

typedef int (*init_fn)(pm_worker *, void **);
typedef int (*work_fn)(pm_worker *, void *);
typedef void (*fini_fn)(pm_worker *, void *);

struct loaded {
	void	*handle;
	init_fn	 init;
	work_fn	 work;
	fini_fn	 fini;
};

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Loads the plugin the way pmhost's worker does; exits on failure. */
static void
load(const char *so, struct loaded *l)
{
	const struct pm_plugin_magic *m;

	if ((l->handle = dlopen(so, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "floor: %s\n", dlerror());
		_exit(1);
	}
	m = dlsym(l->handle, PMHOST_MAGIC_SYMBOL);
	if (m == NULL || m->magic != PMHOST_MAGIC ||
	    m->abi_version != PMHOST_ABI_VERSION) {
		fprintf(stderr, "floor: %s: bad or missing mark\n", so);
		_exit(1);
	}
	*(void **)&l->work = dlsym(l->handle, "work");
	*(void **)&l->init = dlsym(l->handle, "work_init");
	*(void **)&l->fini = dlsym(l->handle, "work_fini");
	if (l->work == NULL) {
		fprintf(stderr, "floor: %s: no work()\n", so);
		_exit(1);
	}
}

static int
forkdl(const char *so, long n, long gap_ms)
{
	for (long i = 0; i < n; i++) {
		struct timespec gap = { gap_ms / 1000, gap_ms % 1000 * 1000000L };
		long long t0;
		int st;
		pid_t pid;

		fflush(stdout);
		if (gap_ms > 0)
			while (nanosleep(&gap, &gap) < 0 && errno == EINTR)
				;
		t0 = now_ns();
		if ((pid = fork()) < 0) {
			perror("floor: fork");
			return 1;
		}
		if (pid == 0) {
			struct loaded l;
			void *state = NULL;

			load(so, &l);
			if (l.init != NULL && l.init(&floor_worker, &state) != 0)
				_exit(1);
			l.work(&floor_worker, state);
			_exit(0);
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		printf("T0 %ld %lld\n", (long)pid, t0);
	}
	return 0;
}

/*
 * The part of a scoreboard cell the host's hot loop touches: its command
 * word and, 24 bytes on, the published count; in a MAP_SHARED mapping,
 * as the scoreboard is.
 */
struct cell {
	_Atomic uint32_t cmd;
	_Atomic uint32_t doorbell;
	uint32_t	 pad[4];
	_Atomic uint64_t calls;
	_Atomic uint64_t hist[18];
	_Atomic uint64_t sum_ns;
};

static volatile sig_atomic_t stop_noted;

/* The bare loop: the call, and the clock once per 4096 calls. */
static __attribute__((noinline)) uint64_t
loop_bare(struct loaded *l, void *state, long long end, int *rc)
{
	uint64_t calls = 0;
	int acc = 0;

	do {
		for (int i = 0; i < 4096; i++)
			acc |= l->work(&floor_worker, state);
		calls += 4096;
	} while (now_ns() < end);
	*rc = acc;
	return calls;
}

/* The bare loop, and the count published after each call. */
static __attribute__((noinline)) uint64_t
loop_count(struct loaded *l, struct cell *c, void *state, long long end,
    int *rc)
{
	uint64_t calls = 0;
	int acc = 0;

	do {
		for (int i = 0; i < 4096; i++) {
			acc |= l->work(&floor_worker, state);
			atomic_store_explicit(&c->calls, ++calls,
			    memory_order_relaxed);
		}
	} while (now_ns() < end);
	*rc = acc;
	return calls;
}

/* The same, and the two stop flags loaded before each call. */
static __attribute__((noinline)) uint64_t
loop_flags(struct loaded *l, struct cell *c, void *state, long long end,
    int *rc)
{
	const volatile sig_atomic_t *noted = &stop_noted;
	uint64_t calls = 0;
	int acc = 0;

	do {
		for (int i = 0; i < 4096; i++) {
			if (__builtin_expect(*noted ||
			    atomic_load_explicit(&c->cmd,
			    memory_order_relaxed) >= 2, 0))
				goto out;
			acc |= l->work(&floor_worker, state);
			atomic_store_explicit(&c->calls, ++calls,
			    memory_order_relaxed);
		}
	} while (now_ns() < end);
out:
	*rc = acc;
	return calls;
}

/* A timed call's weight in the histogram, as the host keeps it. */
static void
note_time(struct cell *c, long long ns, uint64_t weight)
{
	static const long long le[17] = { 1000, 3000, 10000, 30000, 100000,
	    300000, 1000000, 3000000, 10000000, 30000000, 100000000,
	    300000000, 1000000000, 3000000000, 10000000000, 30000000000,
	    60000000000 };
	int b = 0;

	while (b < 17 && ns > le[b])
		b++;
	atomic_store_explicit(&c->hist[b], atomic_load_explicit(&c->hist[b],
	    memory_order_relaxed) + weight, memory_order_relaxed);
	atomic_store_explicit(&c->sum_ns, atomic_load_explicit(&c->sum_ns,
	    memory_order_relaxed) + (uint64_t)ns * weight,
	    memory_order_relaxed);
}

/*
 * The host's hot loop, its shape kept: calls in chunks of about 50 us,
 * only the call and its return code within one; between chunks the stop
 * flags, the count published and the chunk's first call timed.  The end
 * of the run is the master's lifetime stop here: the chunk that finds
 * the time up sets the command.
 */
static __attribute__((noinline)) uint64_t
loop_host(struct loaded *l, struct cell *c, void *state, long long end,
    uint64_t times, int *rc_out)
{
	int (*work_fn)(pm_worker *, void *) = l->work;
	const volatile sig_atomic_t *noted = &stop_noted;
	pm_worker *pw = &floor_worker;
	long long now, t0, t1;
	uint64_t calls = 0, chunk = 1, n;
	int rc;

	for (;;) {
		if (__builtin_expect(*noted || atomic_load_explicit(&c->cmd,
		    memory_order_relaxed) >= 2, 0))
			break;
		if (times != 0 && chunk > times - calls)
			chunk = times - calls;
		t0 = now_ns();
		rc = work_fn(pw, state);
		t1 = now_ns();
		for (n = 1; __builtin_expect(rc == 0, 1) && n < chunk; n++)
			rc = work_fn(pw, state);
		now = n == 1 ? t1 : now_ns();
		calls += n;
		atomic_store_explicit(&c->calls, calls, memory_order_relaxed);
		note_time(c, t1 - t0, n);
		if (now >= end)
			atomic_store(&c->cmd, 2);
		if (__builtin_expect(rc != 0, 0)) {
			*rc_out = rc;
			if (rc > 0)
				break;
		}
		if (__builtin_expect(calls == times, 0))
			break;
		if (n == chunk && now - t0 < 25000 && chunk < (1 << 16))
			chunk *= 2;
		else if (now - t0 > 100000 && chunk > 1)
			chunk /= 2;
	}
	return calls;
}

static int
loop(const char *so, double seconds, const char *variant)
{
	struct loaded l;
	struct cell *c;
	void *state = NULL;
	long long t0, end, now;
	uint64_t calls;
	int acc = 0;

	c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (c == MAP_FAILED) {
		perror("floor: mmap");
		return 1;
	}
	load(so, &l);
	if (l.init != NULL && l.init(&floor_worker, &state) != 0)
		return 1;
	t0 = now_ns();
	end = t0 + (long long)(seconds * 1e9);
	if (strcmp(variant, "bare") == 0)
		calls = loop_bare(&l, state, end, &acc);
	else if (strcmp(variant, "count") == 0)
		calls = loop_count(&l, c, state, end, &acc);
	else if (strcmp(variant, "flags") == 0)
		calls = loop_flags(&l, c, state, end, &acc);
	else if (strcmp(variant, "host") == 0)
		calls = loop_host(&l, c, state, end, 0, &acc);
	else {
		fprintf(stderr, "floor: no loop variant %s\n", variant);
		return 2;
	}
	now = now_ns();
	floor_calls = calls;
	if (l.fini != NULL)
		l.fini(&floor_worker, state);
	printf("CALLS %llu NS %lld RC %d\n", (unsigned long long)calls,
	    now - t0, acc);
	return 0;
}

/* Sleeps until the CLOCK_MONOTONIC deadline due (ns), as a worker does. */
static void
sleep_until(long long due)
{
	static uint32_t word;
	long long t;

	while ((t = now_ns()) < due) {
		struct timespec ts = { due / 1000000000LL, due % 1000000000LL };

		syscall(SYS_futex, &word, FUTEX_WAIT_BITSET, 0, &ts, NULL,
		    FUTEX_BITSET_MATCH_ANY);
	}
}

static int
paced(const char *so, long period_us, double seconds)
{
	struct loaded l;
	void *state = NULL;
	long long end, t0, t1;
	uint64_t calls = 0;
	int acc = 0;

	load(so, &l);
	if (l.init != NULL && l.init(&floor_worker, &state) != 0)
		return 1;
	end = now_ns() + (long long)(seconds * 1e9);
	do {
		t0 = now_ns();
		acc |= l.work(&floor_worker, state);
		t1 = now_ns();
		calls++;
		sleep_until(t1 + period_us * 1000LL);
	} while (t0 < end);
	floor_calls = calls;
	if (l.fini != NULL)
		l.fini(&floor_worker, state);
	printf("CALLS %llu RC %d\n", (unsigned long long)calls, acc);
	return 0;
}

static int
spawn_n(const char *so, long n)
{
	struct { _Atomic uint32_t ready, go; } *sh;
	struct timespec ms = { 0, 1000000L };
	long long t0, t1, t2;

	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("floor: mmap");
		return 1;
	}
	fflush(stdout);
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("floor: fork");
			atomic_store(&sh->go, 1);
			syscall(SYS_futex, &sh->go, FUTEX_WAKE, INT32_MAX, NULL,
			    NULL, 0);
			return 1;
		}
		if (pid == 0) {
			struct loaded l;
			void *state = NULL;

			load(so, &l);
			if (l.init != NULL && l.init(&floor_worker, &state) != 0)
				_exit(1);
			l.work(&floor_worker, state);
			atomic_fetch_add(&sh->ready, 1);
			while (atomic_load(&sh->go) == 0)
				syscall(SYS_futex, &sh->go, FUTEX_WAIT, 0, NULL,
				    NULL, 0);
			_exit(0);
		}
	}
	while (atomic_load(&sh->ready) < (uint32_t)n)
		nanosleep(&ms, NULL);
	t1 = now_ns();
	atomic_store(&sh->go, 1);
	syscall(SYS_futex, &sh->go, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	t2 = now_ns();
	printf("T0 %lld\nT1 %lld\nT2 %lld\n", t0, t1, t2);
	return 0;
}

static int
clock_reads(long n)
{
	long long t0 = now_ns(), t = 0;

	for (long i = 0; i < n; i++)
		t ^= now_ns();
	printf("NS %.2f %lld\n", (double)(now_ns() - t0) / (double)n,
	    t & 1);
	return 0;
}

static int
forkexec(long n, char *path)
{
	char *argv[] = { path, NULL };

	for (long i = 0; i < n; i++) {
		long long t0, t1;
		int st;
		pid_t pid;

		t0 = now_ns();
		if ((pid = fork()) < 0) {
			perror("floor: fork");
			return 1;
		}
		if (pid == 0) {
			execv(path, argv);
			_exit(127);
		}
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		t1 = now_ns();
		printf("%lld\n", t1 - t0);
	}
	return 0;
}

static int
timer(long period_us, long n)
{
	long long period = period_us * 1000LL, due = now_ns() + period;
	long long *starts = calloc((size_t)n, sizeof(*starts));
	uint32_t word = 0;

	if (starts == NULL)
		return 1;
	prctl(PR_SET_TIMERSLACK, 1UL);
	for (long i = 0; i < n; i++) {
		long long t;

		while ((t = now_ns()) < due) {
			struct timespec ts = { due / 1000000000LL,
			    due % 1000000000LL };

			syscall(SYS_futex, &word, FUTEX_WAIT_BITSET, 0, &ts,
			    NULL, FUTEX_BITSET_MATCH_ANY);
		}
		starts[i] = t;
		due += period;
	}
	for (long i = 0; i < n; i++)
		printf("%lld\n", starts[i]);
	free(starts);
	return 0;
}

int
main(int argc, char **argv)
{
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "forkdl") == 0) {
		params_text = argv[3];
		return forkdl(argv[2], strtol(argv[4], NULL, 10),
		    argc == 6 ? strtol(argv[5], NULL, 10) : 0);
	}
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "loop") == 0) {
		params_text = argv[3];
		return loop(argv[2], strtod(argv[4], NULL),
		    argc == 6 ? argv[5] : "bare");
	}
	if (argc == 6 && strcmp(argv[1], "paced") == 0) {
		params_text = argv[3];
		return paced(argv[2], strtol(argv[4], NULL, 10),
		    strtod(argv[5], NULL));
	}
	if (argc == 5 && strcmp(argv[1], "spawn") == 0) {
		params_text = argv[3];
		return spawn_n(argv[2], strtol(argv[4], NULL, 10));
	}
	if (argc == 3 && strcmp(argv[1], "clock") == 0)
		return clock_reads(strtol(argv[2], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "forkexec") == 0)
		return forkexec(strtol(argv[2], NULL, 10), argv[3]);
	if (argc == 4 && strcmp(argv[1], "timer") == 0)
		return timer(strtol(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
	fprintf(stderr, "usage: floor forkdl SO PARAMS N [GAP_MS] | floor loop SO PARAMS "
	    "SECONDS [bare|count|flags|host] | floor paced SO PARAMS PERIOD_US "
	    "SECONDS | floor spawn SO PARAMS N | floor clock N | floor forkexec N PATH | floor timer PERIOD_US N\n");
	return 2;
}
