/*
 * preload_clone.c - runs a plugin the way pmhost's preload process will:
 * work_preload() once, then workers cloned from that process with
 * _Fork() (no pthread_atfork handlers), each calling work_init(), work()
 * and work_fini().  It lets the Python plugin's preload path be tested
 * before the host has the preload key; it is not a host.
 *
 *     preload_clone PLUGIN PARAMS_JSON CONFIG_DIR WORKERS CALLS
 *
 * Each worker makes CALLS calls (0: until SIGTERM), a stop (SIGTERM)
 * ends it as the host's would: the flag, the stop descriptor.  Prints
 * "preload RC" and one line "worker SLOT PID exit STATUS forked NS" per
 * worker, NS the CLOCK_MONOTONIC reading right before its _Fork().
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PMHOST_HOST
#include <pmhost.h>

struct ctx {
	struct pm_worker	 pub;
	int			 slot;
	uint64_t		 calls;
	const char		*params;
	const char		*config_dir;
};

static volatile sig_atomic_t	stop_flag;
static int			stop_efd = -1;

static void
on_term(int sig)
{
	uint64_t one = 1;

	(void)sig;
	stop_flag = 1;
	if (stop_efd >= 0)
		(void)!write(stop_efd, &one, sizeof(one));
}

static int
api_slot(const pm_worker *w)
{
	return ((const struct ctx *)w)->slot;
}

static const char *
api_title(const pm_worker *w)
{
	(void)w;
	return "preload_clone:Worker";
}

static uint64_t
api_calls(const pm_worker *w)
{
	return ((const struct ctx *)w)->calls;
}

static const char *
api_params(const pm_worker *w)
{
	return ((const struct ctx *)w)->params;
}

static int
api_stopping(const pm_worker *w)
{
	(void)w;
	return stop_flag;
}

static void
api_vlog(pm_worker *w, int level, const char *fmt, va_list ap)
{
	static const char *names[] = { "debug", "info", "notice", "warning",
	    "error" };
	char line[4096];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s slot %d pid %d: %s\n", names[level < 0 ? 0 :
	    level > 4 ? 4 : level], api_slot(w), (int)getpid(), line);
}

static int
api_stop_fd(pm_worker *w)
{
	(void)w;
	if (stop_efd < 0)
		stop_efd = eventfd(stop_flag ? 1 : 0,
		    EFD_NONBLOCK | EFD_CLOEXEC);
	return stop_efd;
}

static const char *
api_config_dir(const pm_worker *w)
{
	return ((const struct ctx *)w)->config_dir;
}

static const struct pm_host_api api = {
	.size = sizeof(struct pm_host_api),
	.slot = api_slot,
	.title = api_title,
	.calls = api_calls,
	.params = api_params,
	.stopping = api_stopping,
	.vlog = api_vlog,
	.log_str = NULL,
	.stop_fd = api_stop_fd,
	.config_dir = api_config_dir,
};

typedef int	(*preload_fn)(pm_worker *);
typedef int	(*init_fn)(pm_worker *, void **);
typedef int	(*work_fn)(pm_worker *, void *);
typedef void	(*fini_fn)(pm_worker *, void *);

/* A cloned worker's life; never returns. */
static _Noreturn void
worker(struct ctx *c, int slot, long calls, init_fn init, work_fn work,
    fini_fn fini)
{
	struct sigaction sa;
	void *state = NULL;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	c->slot = slot;
	if (init != NULL && init(&c->pub, &state) != 0)
		_exit(70);
	while (!stop_flag && (calls == 0 || (long)c->calls < calls)) {
		rc = work(&c->pub, state);
		c->calls++;
		if (rc > 0)
			break;
	}
	if (fini != NULL)
		fini(&c->pub, state);
	fflush(NULL);
	_exit(0);
}

int
main(int argc, char **argv)
{
	struct ctx c = { .pub = { &api }, .slot = -1 };
	void *h;
	preload_fn preload;
	init_fn init;
	work_fn work;
	fini_fn fini;
	int n, rc;
	long calls;
	pid_t *pids;
	long long *forked;

	if (argc != 6) {
		fprintf(stderr, "usage: preload_clone PLUGIN PARAMS_JSON "
		    "CONFIG_DIR WORKERS CALLS\n");
		return 2;
	}
	c.params = argv[2];
	c.config_dir = argv[3];
	n = atoi(argv[4]);
	calls = atol(argv[5]);
	if ((h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	*(void **)&preload = dlsym(h, "work_preload");
	*(void **)&init = dlsym(h, "work_init");
	*(void **)&work = dlsym(h, "work");
	*(void **)&fini = dlsym(h, "work_fini");
	if (preload == NULL || work == NULL) {
		fprintf(stderr, "no work_preload or work\n");
		return 1;
	}
	rc = preload(&c.pub);
	printf("preload %d\n", rc);
	fflush(stdout);
	if (rc != 0)
		return 1;
	pids = calloc((size_t)n, sizeof(*pids));
	forked = calloc((size_t)n, sizeof(*forked));
	if (pids == NULL || forked == NULL)
		return 1;
	for (int i = 0; i < n; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		forked[i] = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
		pids[i] = _Fork();
		if (pids[i] < 0) {
			perror("_Fork");
			return 1;
		}
		if (pids[i] == 0)
			worker(&c, i, calls, init, work, fini);
	}
	for (int i = 0; i < n; i++) {
		int st;

		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		printf("worker %d %d exit %d forked %lld\n", i, (int)pids[i],
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
		    forked[i]);
	}
	free(forked);
	free(pids);
	return 0;
}
