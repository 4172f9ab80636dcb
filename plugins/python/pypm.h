/*
 * pypm.h - the parts of the Python plugin and what each owns: the
 * interpreter's start and its forks (interp.c), the task's code and where
 * it comes from (task.c), the built-in module "pmhost" that binds Python
 * to the host (module.c), params as Python objects (params.c), and
 * exceptions turned into log lines (report.c).  python.c drives them
 * through a worker's life.  One interpreter per process, so each part
 * keeps its state at file level.
 */
#ifndef PYPM_H
#define PYPM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/types.h>

#include <pmhost.h>

/* The interpreter pmhost embeds, as it was found at build time. */
#ifndef PYPM_PREFIX
#define PYPM_PREFIX		"/usr"
#endif
#ifndef PYPM_EXECUTABLE
#define PYPM_EXECUTABLE		PYPM_PREFIX "/bin/python3"
#endif

/* -- interp.c ----------------------------------------------------------- */

/*
 * Starts the interpreter in this process, with the built-in module
 * pmhost and without Python's own signal handlers.  The calling thread
 * holds the GIL afterwards.  0, or -1 after logging why.
 */
int	interp_start(pm_worker *w);

/*
 * The preload process is done with Python: flush what the task printed
 * and run os.register_at_fork()'s "before" hooks, once for every worker
 * to come, keeping the GIL held (no Python runs here again).
 */
void	interp_before_forks(void);

/*
 * In a worker cloned from the preload process: what os.fork() does in a
 * child (fresh GIL and locks, threads other than this one forgotten,
 * "after_in_child" hooks).  Does nothing in the process that started the
 * interpreter.
 */
void	interp_after_fork(void);

/* Flushes sys.stdout and sys.stderr; errors are dropped. */
void	interp_flush_stdio(void);

/* -- params.c ----------------------------------------------------------- */

/*
 * The config's params (compact JSON, as pm_worker_params() gives them) as
 * a new Python object, or NULL with a Python exception set.
 */
PyObject *params_from_json(const char *json);

/* -- module.c ----------------------------------------------------------- */

/* The built-in module's init function, for PyImport_AppendInittab(). */
PyObject *module_init(void);

/* Makes w the worker the module's functions act for. */
void	module_bind(pm_worker *w);

/* Imports pmhost and gives the Worker object handed to the task; NULL
 * with an exception set on failure.  Borrowed. */
PyObject *module_worker(void);

/* Sets worker.params (a new reference is taken). */
void	module_set_params(PyObject *params);

/*
 * Makes time.sleep() in the worker's main thread a point where a stop
 * request ends the call (pmhost.StopRequested), from now until
 * module_sleep_plain().  Takes the host's stop descriptor, so that the
 * host signals a stop to this worker.  0, or -1 if the host has none.
 */
int	module_sleep_interruptible(pm_worker *w);

/* time.sleep() sleeps its whole time again (for work_fini). */
void	module_sleep_plain(void);

/* Replaces time.sleep and starts watching for the logging module's
 * import; once per interpreter.  0, or -1 with an exception set. */
int	module_install_hooks(void);

/* Installs pmhost.LogHandler on the root logger if logging is imported
 * and not yet served. */
void	module_check_logging(void);

/* Is the exception set a pmhost.StopRequested? */
int	module_stop_requested_pending(void);

/* -- report.c ----------------------------------------------------------- */

/*
 * Logs the exception set (and clears it) at error level: a first line
 * "WHAT raised TYPE: MESSAGE", then its traceback line by line.  At most
 * one traceback a second; the others are counted and said with the next.
 */
void	report_exception(pm_worker *w, const char *what);

/*
 * Logs the exception set (and clears it) as one error line
 * "FILE:LINE: TYPE: MESSAGE", naming where it was raised in the task's
 * code (for a SyntaxError, the offending line): the reason a load check
 * shows.
 */
void	report_exception_line(pm_worker *w, const char *what);

/* Logs a message line by line at level (a message may span lines). */
void	report_lines(pm_worker *w, int level, const char *msg);

/* -- task.c ------------------------------------------------------------- */

/* The task's code: its module and the functions it defines. */
struct task {
	PyObject	*module;
	PyObject	*work;		/* required */
	PyObject	*init;		/* work_init, or NULL */
	PyObject	*fini;		/* work_fini, or NULL */
};

/* How a failure to load is reported: one line (check), or a traceback. */
enum task_report {
	TASK_REPORT_LINE,
	TASK_REPORT_TRACEBACK
};

/*
 * Reads params (module/path, or script; venv), sets sys.path, imports the
 * task and finds its functions; the rest of params becomes worker.params.
 * 0, or -1 after logging why.
 */
int	task_load(pm_worker *w, struct task *t, enum task_report how);

#endif
