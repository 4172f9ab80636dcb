/*
 * drive.c - runs pgqueue.so outside pmhost, for the leak check: the
 * plugin's whole life (work_check, work_init, CALLS calls of work(),
 * work_fini) in one process that then returns from main(), so that
 * LeakSanitizer looks at what is left.  A pmhost worker ends in _exit(),
 * where no leak check runs.  The plugin stays loaded: libpq's own globals
 * stay reachable, as in a worker.
 *
 *   pgqueue-drive PLUGIN PARAMS_JSON CALLS
 *
 * Exit 0 if every entry point succeeded, 1 if one failed, 2 on usage.
 * Log lines go to stderr as "LEVEL: text".
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <pmhost.h>

struct drive {
	struct pm_worker	 pub;	/* first: the plugin's handle */
	const char		*params;
	uint64_t		 calls;
	char			 dir[4096];
};

static const char *const levels[] = {
	"debug", "info", "notice", "warning", "error"
};

static int
slot(const pm_worker *w)
{
	(void)w;
	return 0;
}

static const char *
title(const pm_worker *w)
{
	(void)w;
	return "pgqueue-drive";
}

static uint64_t
calls(const pm_worker *w)
{
	return ((const struct drive *)(const void *)w)->calls;
}

static const char *
params(const pm_worker *w)
{
	return ((const struct drive *)(const void *)w)->params;
}

static int
stopping(const pm_worker *w)
{
	(void)w;
	return 0;
}

static void
vlog(pm_worker *w, int level, const char *fmt, va_list ap)
{
	(void)w;
	fprintf(stderr, "%s: ", levels[level < 0 ? 0 : level > 4 ? 4 :
	    level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void
log_str(pm_worker *w, int level, const char *msg)
{
	(void)w;
	fprintf(stderr, "%s: %s\n", levels[level < 0 ? 0 : level > 4 ? 4 :
	    level], msg);
}

static int
stop_fd(pm_worker *w)
{
	(void)w;
	return -1;
}

static const char *
config_dir(const pm_worker *w)
{
	return ((const struct drive *)(const void *)w)->dir;
}

/* The table as a host of the entries up to config_dir offers it. */
static const struct pm_host_api api = {
	.size = offsetof(struct pm_host_api, config_dir) +
	    sizeof(api.config_dir),
	.slot = slot, .title = title, .calls = calls, .params = params,
	.stopping = stopping, .vlog = vlog, .log_str = log_str,
	.stop_fd = stop_fd, .config_dir = config_dir,
};

int
main(int argc, char **argv)
{
	int (*check)(pm_worker *), (*init)(pm_worker *, void **);
	int (*work_fn)(pm_worker *, void *);
	void (*fini)(pm_worker *, void *);
	struct drive d = { .pub = { &api } };
	void *h, *state = NULL;
	long n;
	int rc = 0;

	if (argc != 4 || (n = atol(argv[3])) < 0) {
		fprintf(stderr, "usage: pgqueue-drive PLUGIN PARAMS CALLS\n");
		return 2;
	}
	/* cppcheck-suppress unreadVariable ; the API reads it through d.pub */
	d.params = argv[2];
	if (getcwd(d.dir, sizeof(d.dir)) == NULL)
		return 1;
	if ((h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	*(void **)&check = dlsym(h, "work_check");
	*(void **)&init = dlsym(h, "work_init");
	*(void **)&work_fn = dlsym(h, "work");
	*(void **)&fini = dlsym(h, "work_fini");
	if (check == NULL || init == NULL || work_fn == NULL || fini == NULL)
		return 1;
	if (check(&d.pub) != 0 || init(&d.pub, &state) != 0)
		return 1;
	for (; d.calls < (uint64_t)n; d.calls++)
		if (work_fn(&d.pub, state) < 0)
			rc = 1;
	fini(&d.pub, state);
	return rc;
}
