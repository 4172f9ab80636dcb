/*
 * preload_driver.c - runs a plugin's preload path as the host's preload
 * process does, for the PHP suite to test the plugin's side of it on its
 * own: work_preload() once in this process, then N workers cloned from
 * it without atfork handlers (raw clone(2), as the host's spawner does),
 * each running work_init(), CALLS work() calls and work_fini().
 *
 *   php-preload-driver [-c] [-n] PLUGIN PARAMS_JSON CONFIG_DIR WORKERS CALLS
 *
 * -c runs work_check first, in this process; -n skips work_preload
 * (every worker loads for itself).  Every pm_log()
 * line goes to stdout as "LEVEL SLOT PID: MESSAGE"; the driver adds
 * "exit PID STATUS" for each worker and "preload MS" (the time
 * work_preload took).  Exit 0 when it could run everything, else 1.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PMHOST_HOST
#include <pmhost.h>

struct driver_worker {
	struct pm_worker	 pub;
	int			 slot;
	uint64_t		 calls;
	const char		*title;
};

static const char	*params_json;
static const char	*config_dir;

static const struct driver_worker *
of(const pm_worker *w)
{
	return (const struct driver_worker *)w;
}

static int
d_slot(const pm_worker *w)
{
	return of(w)->slot;
}

static const char *
d_title(const pm_worker *w)
{
	return of(w)->title;
}

static uint64_t
d_calls(const pm_worker *w)
{
	return of(w)->calls;
}

static const char *
d_params(const pm_worker *w)
{
	(void)w;
	return params_json;
}

static int
d_stopping(const pm_worker *w)
{
	(void)w;
	return 0;
}

static void
d_vlog(pm_worker *w, int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "debug", "info", "notice",
	    "warning", "error" };
	char msg[4096], line[4200];
	int n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = snprintf(line, sizeof(line), "%s %d %ld: %s\n",
	    names[level < 0 ? 0 : level > 4 ? 4 : level], of(w)->slot,
	    (long)getpid(), msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* One write per line: the workers share stdout. */
	if (write(STDOUT_FILENO, line, (size_t)n) < 0)
		_exit(3);
}

static void
d_log_fmt(pm_worker *w, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	d_vlog(w, level, fmt, ap);
	va_end(ap);
}

static void
d_log_str(pm_worker *w, int level, const char *msg)
{
	d_log_fmt(w, level, "%s", msg);
}

static int
d_stop_fd(pm_worker *w)
{
	(void)w;
	return -1;
}

static const char *
d_config_dir(const pm_worker *w)
{
	(void)w;
	return config_dir;
}

/* The table as a host of the entries up to config_dir offers it. */
static const struct pm_host_api api = {
	.size = offsetof(struct pm_host_api, config_dir) +
	    sizeof(api.config_dir),
	.slot = d_slot,
	.title = d_title,
	.calls = d_calls,
	.params = d_params,
	.stopping = d_stopping,
	.vlog = d_vlog,
	.log_str = d_log_str,
	.stop_fd = d_stop_fd,
	.config_dir = d_config_dir,
};

/* A worker's life in the clone; never returns. */
static _Noreturn void
worker_life(void *so, int slot, long calls)
{
	int (*init)(pm_worker *, void **);
	int (*work)(pm_worker *, void *);
	void (*fini)(pm_worker *, void *);
	struct driver_worker dw = { { &api }, slot, 0,
	    "process_m:Worker:driver" };
	void *state = NULL;

	*(void **)&init = dlsym(so, "work_init");
	*(void **)&work = dlsym(so, "work");
	*(void **)&fini = dlsym(so, "work_fini");
	if (init != NULL && init(&dw.pub, &state) != 0)
		_exit(70);
	for (long i = 0; i < calls; i++) {
		int rc = work(&dw.pub, state);

		dw.calls++;
		if (rc > 0)
			break;
		if (rc < 0)
			d_log_fmt(&dw.pub, 3, "driver: work() returned %d", rc);
	}
	if (fini != NULL)
		fini(&dw.pub, state);
	fflush(NULL);
	_exit(0);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
	struct driver_worker pre = { { &api }, -1, 0,
	    "process_m:Preload:driver" };
	int (*preload)(pm_worker *);
	int skip_preload = 0, check_first = 0, nworkers, status;
	int (*check)(pm_worker *);
	long calls;
	void *so;
	pid_t pid;
	double t0;

	for (; argc > 1 && argv[1][0] == '-'; argv++, argc--) {
		if (strcmp(argv[1], "-n") == 0)
			skip_preload = 1;
		else if (strcmp(argv[1], "-c") == 0)
			check_first = 1;
		else
			break;
	}
	if (argc != 6) {
		fprintf(stderr, "usage: php-preload-driver [-c] [-n] PLUGIN "
		    "PARAMS_JSON CONFIG_DIR WORKERS CALLS\n");
		return 1;
	}
	params_json = argv[2];
	config_dir = argv[3];
	nworkers = atoi(argv[4]);
	calls = atol(argv[5]);
	setvbuf(stdout, NULL, _IONBF, 0);
	/* As the host loads a plugin. */
	if ((so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "driver: %s\n", dlerror());
		return 1;
	}
	*(void **)&preload = dlsym(so, "work_preload");
	*(void **)&check = dlsym(so, "work_check");
	if (check_first && (check == NULL || check(&pre.pub) != 0)) {
		printf("check failed\n");
		return 1;
	}
	if (!skip_preload) {
		if (preload == NULL) {
			fprintf(stderr, "driver: no work_preload\n");
			return 1;
		}
		t0 = now_ms();
		if (preload(&pre.pub) != 0) {
			printf("preload failed\n");
			return 1;
		}
		printf("preload %.3f\n", now_ms() - t0);
	}
	for (int i = 0; i < nworkers; i++) {
		/* clone(2) itself, not fork(): no atfork handler runs. */
		pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL,
		    NULL);
		if (pid < 0) {
			perror("driver: clone");
			return 1;
		}
		if (pid == 0)
			worker_life(so, i, calls);
	}
	for (int i = 0; i < nworkers; i++) {
		if ((pid = wait(&status)) < 0)
			return 1;
		printf("exit %ld %d\n", (long)pid, WIFEXITED(status) ?
		    WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	return 0;
}
