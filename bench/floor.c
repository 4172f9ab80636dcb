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
 *   floor loop SO PARAMS SECONDS
 *       Calls SO's work() through a function pointer for SECONDS, reading
 *       the clock once per 4096 calls.  Prints "CALLS N NS ELAPSED".
 *       The pointer comes from dlsym(): the compiler cannot see, inline
 *       or drop the call.
 *   floor forkexec N PATH
 *       N times fork + execv(PATH) + waitpid.  Prints "NS" per run.
 *   floor timer PERIOD_US N
 *       N wake-ups on an absolute CLOCK_MONOTONIC grid of PERIOD_US, each
 *       a futex wait with a deadline (as a pmhost worker sleeps), timer
 *       slack 1 ns.  Prints each wake-up's time in ns: the floor of
 *       schedule "rate" on this machine.
 */
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int
loop(const char *so, double seconds)
{
	struct loaded l;
	void *state = NULL;
	long long t0, end, now;
	uint64_t calls = 0;
	int acc = 0;

	load(so, &l);
	if (l.init != NULL && l.init(&floor_worker, &state) != 0)
		return 1;
	t0 = now_ns();
	end = t0 + (long long)(seconds * 1e9);
	do {
		for (int i = 0; i < 4096; i++)
			acc |= l.work(&floor_worker, state);
		calls += 4096;
	} while ((now = now_ns()) < end);
	floor_calls = calls;
	if (l.fini != NULL)
		l.fini(&floor_worker, state);
	printf("CALLS %llu NS %lld RC %d\n", (unsigned long long)calls,
	    now - t0, acc);
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
	if (argc == 5 && strcmp(argv[1], "loop") == 0) {
		params_text = argv[3];
		return loop(argv[2], strtod(argv[4], NULL));
	}
	if (argc == 4 && strcmp(argv[1], "forkexec") == 0)
		return forkexec(strtol(argv[2], NULL, 10), argv[3]);
	if (argc == 4 && strcmp(argv[1], "timer") == 0)
		return timer(strtol(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
	fprintf(stderr, "usage: floor forkdl SO PARAMS N [GAP_MS] | floor loop SO PARAMS "
	    "SECONDS | floor forkexec N PATH | floor timer PERIOD_US N\n");
	return 2;
}
