/*
 * python.c - a pmhost task written in Python: the plugin's entry points,
 * which run the task's work_init(worker), work(worker, state) and
 * work_fini(worker, state) in an embedded CPython.
 *
 * Where the interpreter starts: in work_init() of each worker, or, with
 * "preload": true, once in work_preload(), and every worker is a clone of
 * that process (work_init() then does what os.fork() does in a child).
 *
 * The GIL: held from the interpreter's start, and between calls too while
 * the interpreter has no other thread state (no one else could want it,
 * and taking it back costs more than an empty call); once the task runs
 * threads of its own, it is released whenever control goes back to the
 * host, so they run while the worker waits for its next call.  A thread
 * that C code starts and that makes its thread state only when it first
 * wants the GIL (PyGILState_Ensure) waits at most until the next call
 * returns.
 *
 * How a call ends: None or True, go on; False, PM_DONE; an exception, a
 * failed call (logged with its traceback); pmhost.StopRequested from a
 * sleep that a stop ended, the call is over and the worker ends in order;
 * SystemExit, the worker ends at once as failed (non-zero exit status,
 * no work_fini), so that the host backs off.
 */
#include "pypm.h"

#include <unistd.h>

PMHOST_PLUGIN;

static struct {
	struct task	 task;
	PyObject	*worker;	/* the Worker object (borrowed) */
	PyObject	*state;		/* what the task's work_init returned */
	PyThreadState	*released;	/* the GIL is released; our thread */
	int		 preloaded;	/* the interpreter came from preload */
	int		 task_inited;	/* the task's work_init returned */
	int		 wrong_return;	/* a bad work() return was logged */
} py;

/* Takes the GIL back if a previous return to the host released it. */
static void
enter(void)
{
	if (py.released != NULL) {
		PyEval_RestoreThread(py.released);
		py.released = NULL;
	}
}

/*
 * Before control goes back to the host: keep the GIL if ours is the only
 * thread state, else let the task's other threads run.
 */
static void
leave(void)
{
	PyThreadState *me = PyThreadState_Get();
	PyThreadState *head = PyInterpreterState_ThreadHead(
	    PyThreadState_GetInterpreter(me));

	if (head == me && PyThreadState_Next(head) == NULL)
		return;
	py.released = PyEval_SaveThread();
}

/* The exit status a SystemExit asks for; never 0: the worker failed. */
static int
exit_status(PyObject *exc)
{
	PyObject *code = PyObject_GetAttrString(exc, "code");
	long n = 1;

	if (code != NULL && PyLong_Check(code)) {
		n = PyLong_AsLong(code);
		if (n < 1 || n > 255)
			n = 1;
	}
	PyErr_Clear();
	Py_XDECREF(code);
	return (int)n;
}

/* Runs the task's atexit functions and flushes what it printed. */
static void
run_exit_functions(void)
{
	PyObject *atexit = PyImport_ImportModule("atexit"), *r;

	if (atexit != NULL) {
		r = PyObject_CallMethod(atexit, "_run_exitfuncs", NULL);
		Py_XDECREF(r);
		Py_DECREF(atexit);
	}
	PyErr_Clear();
	interp_flush_stdio();
}

/*
 * SystemExit from the task's code: says so, runs the atexit functions (as
 * the interpreter's exit would) and ends the process as failed.
 */
static _Noreturn void
system_exit(pm_worker *w, const char *what)
{
	PyObject *type, *value, *tb, *str;
	const char *s = NULL;
	int status;

	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	status = value != NULL ? exit_status(value) : 1;
	str = value != NULL ? PyObject_Str(value) : NULL;
	if (str != NULL)
		s = PyUnicode_AsUTF8(str);
	PyErr_Clear();
	pm_log(w, PM_LOG_ERROR, "%s raised SystemExit(%s): the worker ends "
	    "as failed, with exit status %d, without work_fini (return "
	    "False from work() to end a worker in order)", what,
	    s != NULL ? s : "", status);
	Py_XDECREF(str);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	run_exit_functions();
	_exit(status);
}

/*
 * After a call into the task raised: SystemExit ends the process;
 * StopRequested returns 1 (a stop ended the call); anything else is
 * logged and returns -1.
 */
static int
call_raised(pm_worker *w, const char *what)
{
	if (PyErr_ExceptionMatches(PyExc_SystemExit))
		system_exit(w, what);
	if (module_stop_requested_pending()) {
		PyErr_Clear();
		pm_log(w, PM_LOG_INFO, "%s: ended by the stop request in a "
		    "sleep", what);
		return 1;
	}
	report_exception(w, what);
	return -1;
}

int
work_check(pm_worker *w)
{
	module_bind(w);
	if (interp_start(w) < 0 ||
	    task_load(w, &py.task, TASK_REPORT_LINE) < 0)
		return -1;
	return 0;
}

int
work_preload(pm_worker *w)
{
	module_bind(w);
	if (interp_start(w) < 0 ||
	    task_load(w, &py.task, TASK_REPORT_TRACEBACK) < 0)
		return -1;
	/* Everything a worker needs made here, once: a clone's first run of
	 * importlib's code would copy many pages. */
	if ((py.worker = module_worker()) == NULL) {
		report_exception(w, "python: the module pmhost");
		return -1;
	}
	module_check_logging();
	py.preloaded = 1;
	interp_before_forks();
	return 0;
}

int
work_init(pm_worker *w, void **state)
{
	(void)state;
	module_bind(w);
	if (py.preloaded) {
		interp_after_fork();
	} else if (interp_start(w) < 0 ||
	    task_load(w, &py.task, TASK_REPORT_TRACEBACK) < 0) {
		return -1;
	}
	if ((py.worker = module_worker()) == NULL) {
		report_exception(w, "python: the module pmhost");
		return -1;
	}
	if (module_sleep_interruptible(w) < 0)
		pm_log(w, PM_LOG_NOTICE, "python: this pmhost has no stop "
		    "descriptor: a stop waits for time.sleep() to end");
	if (py.task.init != NULL) {
		py.state = PyObject_CallOneArg(py.task.init, py.worker);
		if (py.state == NULL) {
			if (call_raised(w, "work_init()") < 0)
				return -1;
			/* Stopped before it was ready: nothing to finish. */
			module_check_logging();
			leave();
			return 0;
		}
	} else {
		py.state = Py_NewRef(Py_None);
	}
	py.task_inited = 1;
	module_check_logging();
	leave();
	return 0;
}

int
work(pm_worker *w, void *state)
{
	PyObject *args[2], *res;
	int rc;

	(void)state;
	enter();
	if (!py.task_inited) {
		leave();
		return PM_DONE;
	}
	args[0] = py.worker;
	args[1] = py.state;
	res = PyObject_Vectorcall(py.task.work, args, 2, NULL);
	if (res == Py_None || res == Py_True) {
		rc = PM_CONTINUE;
	} else if (res == Py_False) {
		rc = PM_DONE;
	} else if (res == NULL) {
		rc = call_raised(w, "work()") > 0 ? PM_CONTINUE : -1;
	} else {
		if (!py.wrong_return)
			pm_log(w, PM_LOG_ERROR, "work() returned a %s: return "
			    "None or True to go on, False to end the worker; "
			    "counted as a failed call", Py_TYPE(res)->tp_name);
		py.wrong_return = 1;
		rc = -1;
	}
	Py_XDECREF(res);
	leave();
	return rc;
}

void
work_fini(pm_worker *w, void *state)
{
	PyObject *res;

	(void)state;
	enter();
	module_sleep_plain();
	if (py.task_inited && py.task.fini != NULL) {
		res = PyObject_CallFunctionObjArgs(py.task.fini,
		    py.worker, py.state, NULL);
		if (res == NULL) {
			if (PyErr_ExceptionMatches(PyExc_SystemExit))
				system_exit(w, "work_fini()");
			report_exception(w, "work_fini()");
		}
		Py_XDECREF(res);
	}
	/* The process ends without the interpreter's finalisation: run
	 * what the task registered for its exit. */
	run_exit_functions();
}
