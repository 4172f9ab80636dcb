/*
 * pmhost.h - the whole plugin ABI of pmhost.
 *
 * A task plugin is a shared object that includes this header, states
 * PMHOST_PLUGIN; once, defines work() (and optionally work_init() and
 * work_fini()), and links against nothing of pmhost's:
 *
 *     cc -shared -fPIC $(pkg-config --cflags pmhost) -o task.so task.c
 *
 * The host reaches the plugin through those three symbols and the
 * PMHOST_PLUGIN mark; the plugin reaches the host through the function
 * table behind its pm_worker pointer, wrapped by the pm_worker_* and pm_log
 * inline functions below.  The mark records PMHOST_ABI_VERSION; a plugin
 * built for another ABI is refused before any of its code runs.
 */
#ifndef PMHOST_H
#define PMHOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PMHOST_VERSION		"0.2.0"

/* Bumped whenever struct pm_plugin_magic or struct pm_host_api change. */
#define PMHOST_ABI_VERSION	1

/* Return values of work(); any negative value is an error. */
#define PM_CONTINUE		0	/* call me again */
#define PM_DONE			1	/* end this worker normally; it is respawned */
#define PM_FAIL			2	/* end this worker as failed: work_fini
					   runs, the respawn backs off (an
					   older host takes it as PM_DONE) */

/* Why a worker is asked to end (pm_worker_stop_reason()). */
#define PM_STOP_NONE		0	/* it is not */
#define PM_STOP_STOP		1	/* stop, restart, scale down */
#define PM_STOP_LIFETIME	2	/* its limitSeconds is over */
#define PM_STOP_TIMEOUT		3	/* its call ran past workTimeout */

/* Levels for pm_log(), as in the logLevel config key. */
#define PM_LOG_DEBUG		0
#define PM_LOG_INFO		1
#define PM_LOG_NOTICE		2
#define PM_LOG_WARNING		3
#define PM_LOG_ERROR		4

#if defined(__GNUC__)
#define PMHOST_EXPORT		__attribute__((visibility("default")))
#define PMHOST_PRINTF(f, a)	__attribute__((format(printf, f, a)))
#else
#define PMHOST_EXPORT
#define PMHOST_PRINTF(f, a)
#endif

typedef struct pm_worker pm_worker;

/*
 * What the host offers a plugin.  Plugins call these through the inline
 * wrappers below, never directly; the table only grows at its end, and a
 * change to an existing entry bumps PMHOST_ABI_VERSION.
 */
struct pm_host_api {
	uint32_t	size;		/* sizeof(struct pm_host_api) of the host */
	int		(*slot)(const pm_worker *w);
	const char *	(*title)(const pm_worker *w);
	uint64_t	(*calls)(const pm_worker *w);
	const char *	(*params)(const pm_worker *w);
	int		(*stopping)(const pm_worker *w);
	void		(*vlog)(pm_worker *w, int level, const char *fmt,
			    va_list ap);
	/* A ready line, for plugins in languages without C varargs. */
	void		(*log_str)(pm_worker *w, int level, const char *msg);
	/* Appended in 0.2; the wrappers check size before calling them. */
	int		(*stop_fd)(pm_worker *w);
	const char *	(*config_dir)(const pm_worker *w);
	int		(*stop_reason)(const pm_worker *w);
	const char *	(*config_json)(const pm_worker *w);
};

/* Does the host's table reach entry `field`?  (Older hosts stop short.) */
#define PM_HOST_HAS(w, field)						\
	((w)->api->size >= offsetof(struct pm_host_api, field) +	\
	    sizeof((w)->api->field))

/* The host's worker handle; its first member is all a plugin may touch. */
struct pm_worker {
	const struct pm_host_api *api;
};

/*
 * The compatibility mark PMHOST_PLUGIN defines.  The host compares it field
 * by field with its own and names the first mismatch when it refuses one.
 */
#define PMHOST_MAGIC		0x706d6831u	/* "pmh1" */

struct pm_plugin_magic {
	uint32_t	magic;		/* PMHOST_MAGIC */
	uint32_t	abi_version;	/* PMHOST_ABI_VERSION */
	uint32_t	magic_size;	/* sizeof(struct pm_plugin_magic) */
	uint32_t	pointer_size;	/* sizeof(void *) */
	const char	*host_version;	/* PMHOST_VERSION of the header used */
};

#define PMHOST_MAGIC_SYMBOL	"pmhost_plugin_magic"

/* State this once, at file scope, in one source file of the plugin. */
#define PMHOST_PLUGIN							\
	PMHOST_EXPORT extern const struct pm_plugin_magic		\
	    pmhost_plugin_magic;					\
	const struct pm_plugin_magic pmhost_plugin_magic = {		\
		PMHOST_MAGIC, PMHOST_ABI_VERSION,			\
		(uint32_t)sizeof(struct pm_plugin_magic),		\
		(uint32_t)sizeof(void *), PMHOST_VERSION		\
	}

#ifndef PMHOST_HOST
/*
 * The plugin's entry points.  work() is required; the others are
 * optional.
 *
 * work_check: called in a throwaway child by run, check and restart, as the
 *   task's user, before anything starts: validate params and what the task
 *   needs (a script compiles, a command exists).  Non-zero refuses the
 *   config; what it logged at warning or error level is the reason shown.
 *   pm_worker_slot() is -1 there.
 * work_preload: with the config's "preload": true, called once in the
 *   preload process, which every worker of the task is then forked from
 *   (so what it loads is shared).  Workers are cloned without running
 *   pthread_atfork() handlers: redo per-process set-up in work_init().
 *   Non-zero means the preload failed (run and restart refuse the task).
 *   pm_worker_slot() is -1 there.
 *
 * work_init: called once per worker before the first work(); whatever it
 *   stores in *state is handed to work() and work_fini().  Non-zero means
 *   the worker cannot run: it exits and its slot is respawned with backoff.
 * work: PM_CONTINUE to be called again, PM_DONE to end this worker
 *   normally, PM_FAIL to end it as failed (it is respawned with backoff),
 *   a negative value for an error (logged, counted, the worker goes on).
 * work_fini: called on every orderly exit of a worker whose work_init
 *   succeeded (call limit, lifetime limit, PM_DONE, memory limit, stop).
 */
PMHOST_EXPORT int	work_check(pm_worker *w);
PMHOST_EXPORT int	work_preload(pm_worker *w);
PMHOST_EXPORT int	work_init(pm_worker *w, void **state);
PMHOST_EXPORT int	work(pm_worker *w, void *state);
PMHOST_EXPORT void	work_fini(pm_worker *w, void *state);
#endif

/* 0..maxWorkerNum-1; a respawned worker keeps its slot. */
static inline int
pm_worker_slot(const pm_worker *w)
{
	return w->api->slot(w);
}

/* The worker's process title, e.g. "process_m:Worker:test". */
static inline const char *
pm_worker_title(const pm_worker *w)
{
	return w->api->title(w);
}

/* work() calls this worker has completed so far. */
static inline uint64_t
pm_worker_calls(const pm_worker *w)
{
	return w->api->calls(w);
}

/* The config's "params" as compact JSON text; "null" when absent. */
static inline const char *
pm_worker_params(const pm_worker *w)
{
	return w->api->params(w);
}

/* Non-zero once the worker has been asked to stop: return soon. */
static inline int
pm_worker_stopping(const pm_worker *w)
{
	return w->api->stopping(w);
}

/* Writes one line to the task's log, tagged with the worker's title. */
static inline PMHOST_PRINTF(3, 4) void
pm_log(pm_worker *w, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	w->api->vlog(w, level, fmt, ap);
	va_end(ap);
}

/* pm_log() with a ready string: no format, no varargs. */
static inline void
pm_log_str(pm_worker *w, int level, const char *msg)
{
	w->api->log_str(w, level, msg);
}

/*
 * A descriptor that polls readable once the worker has been asked to stop,
 * for plugins that block in poll()/epoll on their own descriptors; the
 * worker owns it (do not close or read it).  -1 if the host is too old.
 */
static inline int
pm_worker_stop_fd(pm_worker *w)
{
	return PM_HOST_HAS(w, stop_fd) ? w->api->stop_fd(w) : -1;
}

/* The absolute directory of the config file: params' relative paths
 * are relative to it.  NULL if the host is too old. */
static inline const char *
pm_worker_config_dir(const pm_worker *w)
{
	return PM_HOST_HAS(w, config_dir) ? w->api->config_dir(w) : NULL;
}

/*
 * Why the worker has been asked to end: PM_STOP_NONE, PM_STOP_STOP,
 * PM_STOP_LIFETIME or PM_STOP_TIMEOUT (PM_STOP_STOP from an older host
 * whenever pm_worker_stopping() is true).
 */
static inline int
pm_worker_stop_reason(const pm_worker *w)
{
	if (PM_HOST_HAS(w, stop_reason))
		return w->api->stop_reason(w);
	return pm_worker_stopping(w) ? PM_STOP_STOP : PM_STOP_NONE;
}

/*
 * The task's whole effective config (defaults filled in, paths absolute)
 * as compact JSON, keys as in the config file: what a plugin may compare
 * its own settings with.  NULL if the host is too old.
 */
static inline const char *
pm_worker_config_json(const pm_worker *w)
{
	return PM_HOST_HAS(w, config_json) ? w->api->config_json(w) : NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* PMHOST_H */
