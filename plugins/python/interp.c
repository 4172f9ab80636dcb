/*
 * interp.c - the interpreter of this process: Debian's CPython, whatever
 * python3 comes first on PATH, started without Python's signal handlers
 * (the host's handle TERM and INT), and carried across the preload
 * process's clones as os.fork() would carry it.
 */
#include "pypm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

static int	started;
static pid_t	started_pid;

/*
 * The host loads plugins RTLD_LOCAL, so libpython's symbols came in
 * local too, and C extension modules (_json, _sqlite3, ...), which are
 * not linked against libpython, could not resolve them: load it again,
 * the same object, into the global scope.
 */
static int
libpython_global(pm_worker *w)
{
	Dl_info info;

	if (dladdr((void *)Py_InitializeFromConfig, &info) == 0 ||
	    info.dli_fname == NULL) {
		pm_log(w, PM_LOG_ERROR, "python: cannot find libpython's file "
		    "(dladdr)");
		return -1;
	}
	if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) ==
	    NULL) {
		pm_log(w, PM_LOG_ERROR, "python: cannot make %s global: %s",
		    info.dli_fname, dlerror());
		return -1;
	}
	return 0;
}

/* Logs a failed PyStatus. */
static int
status_failed(pm_worker *w, PyStatus st, const char *what)
{
	if (PyStatus_IsExit(st))
		pm_log(w, PM_LOG_ERROR, "python: %s: interpreter exited with "
		    "status %d", what, st.exitcode);
	else
		pm_log(w, PM_LOG_ERROR, "python: %s: %s%s%s", what,
		    st.func != NULL ? st.func : "",
		    st.func != NULL ? ": " : "",
		    st.err_msg != NULL ? st.err_msg : "failed");
	return -1;
}

/*
 * print() writes whole lines: several workers share the log, and a line
 * written in two parts could be split by another's.
 */
static void
line_buffered_stdout(void)
{
	PyObject *out = PySys_GetObject("stdout"), *kw, *args, *r;

	if (out == NULL || out == Py_None)
		return;
	kw = Py_BuildValue("{sOsO}", "line_buffering", Py_True,
	    "write_through", Py_False);
	args = PyTuple_New(0);
	if (kw != NULL && args != NULL) {
		PyObject *meth = PyObject_GetAttrString(out, "reconfigure");

		if (meth != NULL) {
			r = PyObject_Call(meth, args, kw);
			Py_XDECREF(r);
			Py_DECREF(meth);
		}
	}
	Py_XDECREF(kw);
	Py_XDECREF(args);
	PyErr_Clear();
}

int
interp_start(pm_worker *w)
{
	PyConfig config;
	PyStatus st;

	if (started)
		return 0;
	if (libpython_global(w) < 0)
		return -1;
	if (PyImport_AppendInittab("pmhost", module_init) < 0) {
		pm_log(w, PM_LOG_ERROR, "python: cannot register the module "
		    "pmhost");
		return -1;
	}
	PyConfig_InitPythonConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	/* A crash in C code shows the Python traceback that led to it. */
	config.faulthandler = 1;
	/* sys.executable and sys.prefix are the build's interpreter's; a
	 * PYTHONHOME in the environment could only point elsewhere. */
	st = PyConfig_SetBytesString(&config, &config.program_name,
	    PYPM_EXECUTABLE);
	if (!PyStatus_Exception(st))
		st = PyConfig_SetBytesString(&config, &config.home,
		    PYPM_PREFIX);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st))
		return status_failed(w, st, "cannot start the interpreter");
	started = 1;
	started_pid = getpid();
	line_buffered_stdout();
	if (module_install_hooks() < 0) {
		report_exception(w, "pmhost: setting up the module pmhost");
		return -1;
	}
	return 0;
}

void
interp_flush_stdio(void)
{
	static const char *const names[] = { "stdout", "stderr" };

	for (int i = 0; i < 2; i++) {
		PyObject *f = PySys_GetObject(names[i]), *r;

		if (f == NULL || f == Py_None)
			continue;
		r = PyObject_CallMethod(f, "flush", NULL);
		Py_XDECREF(r);
	}
	PyErr_Clear();
	fflush(NULL);
}

void
interp_before_forks(void)
{
	PyObject *gc, *r;

	interp_flush_stdio();
	/*
	 * What the preload made stays shared with the workers only while no
	 * one writes to its pages: keep the collector's hands off it.
	 */
	if ((gc = PyImport_ImportModule("gc")) != NULL) {
		r = PyObject_CallMethod(gc, "freeze", NULL);
		Py_XDECREF(r);
		Py_DECREF(gc);
	}
	PyErr_Clear();
	/*
	 * The hooks come in pairs: "before" takes locks (logging's, the
	 * import lock) that "after_in_child" releases in each clone.
	 */
	PyOS_BeforeFork();
}

void
interp_after_fork(void)
{
	if (!started || getpid() == started_pid)
		return;
	PyOS_AfterFork_Child();
	started_pid = getpid();
}
