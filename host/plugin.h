/*
 * plugin.h - loading a task plugin and checking its PMHOST_PLUGIN mark.
 *
 * plugin_open() runs in a worker (plugin code runs there); the master and
 * the check command only ever load a plugin through plugin_probe_*(), in
 * a throwaway child, so that no plugin code runs in the master.
 */
#ifndef PMHOST_PLUGIN_H
#define PMHOST_PLUGIN_H

#include <stddef.h>
#include <sys/types.h>

#define PMHOST_HOST
#include "pmhost.h"

#define PLUGIN_ERR_MAX		1024
#define PLUGIN_PROBE_TIMEOUT_S	10

struct plugin {
	void	*handle;
	int	(*check)(pm_worker *);
	int	(*preload)(pm_worker *);
	int	(*init)(pm_worker *, void **);
	int	(*work)(pm_worker *, void *);
	void	(*fini)(pm_worker *, void *);
};

/* Credentials a probe or worker takes on before loading (uid -1: keep). */
struct creds;
struct task_config;

/*
 * Loads t's plugin (its pinned copy, if it has one: pin.h) with
 * dlopen(RTLD_NOW | RTLD_LOCAL), checks the mark, finds the entry points.
 * 0, or -1 with the reason (the dlerror() text where there is one), which
 * names the configured file.
 */
int	plugin_open(const struct task_config *t, struct plugin *p, char *err,
	    size_t errlen);

/*
 * Starts a child that takes on creds (NULL: as we are), runs
 * plugin_open(t->plugin) and the plugin's work_check(), and reports
 * through *fd; the child's pid, or -1 with err set.
 */
pid_t	plugin_probe_start(const struct task_config *t,
	    const struct creds *creds, int *fd, char *err, size_t errlen);

/*
 * Reads the report of a finished probe (after *fd is readable or closed)
 * and interprets the child's wait status.  0 if the plugin loads, else -1
 * with the reason in err.  Closes fd; does not reap.
 */
int	plugin_probe_result(int fd, int wstatus, char *err, size_t errlen);

/*
 * Probes n tasks that share a plugin file, credentials, limits and
 * noNewPrivileges in one child: the plugin is loaded once and each task's
 * work_check() run with its params.  fail(arg, i, why) is called for each
 * task that did not pass; the number of those.
 */
int	plugin_probe_tasks(const struct task_config *const *t, size_t n,
	    const struct creds *creds,
	    void (*fail)(void *arg, size_t i, const char *why), void *arg);

/* Starts a probe and waits for it (at most PLUGIN_PROBE_TIMEOUT_S). */
int	plugin_probe(const struct task_config *t, const struct creds *creds,
	    char *err, size_t errlen);

#endif
