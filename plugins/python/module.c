/*
 * module.c - the built-in module "pmhost": the Worker object a task is
 * handed (slot, title, calls, params, stopping), pmhost.log(), a
 * logging.Handler writing to the task's log, and sleeps that a stop ends.
 *
 * time.sleep() is replaced, before the task is imported, by a sleep on
 * the host's stop descriptor: in the worker's main thread, inside
 * work_init() and work(), a stop request ends it with pmhost.StopRequested
 * (a BaseException, like KeyboardInterrupt, so that "except Exception"
 * does not swallow it).  pmhost's own signal handler stays in charge: it
 * makes the descriptor readable, and the sleep wakes on that.
 *
 * The logging module is served the moment it is imported (a wrapper
 * around builtins.__import__ that removes itself), not imported here:
 * its import would cost every worker's start several milliseconds.
 */
#include "pypm.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static pm_worker	*bound;		/* the worker the module acts for */
static PyObject		*worker_obj;	/* the Worker handed to the task */
static PyObject		*params_obj;	/* worker.params */
static PyObject		*stop_exc;	/* pmhost.StopRequested */
static PyObject		*handler_type;	/* pmhost.LogHandler, once made */
static PyObject		*handler_format;/* its default Formatter */
static PyObject		*orig_sleep;	/* the interpreter's time.sleep */
static PyObject		*orig_import;	/* builtins.__import__, while hooked */
static PyObject		*import_hook;
static int		 logging_served;
static int		 stop_fd = -1;
static int		 interruptible;
static unsigned long	 main_thread;

void
module_bind(pm_worker *w)
{
	bound = w;
}

void
module_set_params(PyObject *params)
{
	Py_XSETREF(params_obj, Py_NewRef(params));
}

/* -- levels ----------------------------------------------------------- */

/* A logging level number (DEBUG 10 ... ERROR 40) as a pmhost level. */
static int
level_from_number(long n)
{
	if (n < 20)
		return PM_LOG_DEBUG;
	if (n < 25)
		return PM_LOG_INFO;
	if (n < 30)
		return PM_LOG_NOTICE;
	if (n < 40)
		return PM_LOG_WARNING;
	return PM_LOG_ERROR;
}

/* A level given to pmhost.log(): a number on logging's scale, or a name. */
static int
level_from_object(PyObject *o)
{
	static const char *const names[] = {
		"debug", "info", "notice", "warning", "error"
	};
	const char *s;

	if (PyLong_Check(o)) {
		long n = PyLong_AsLong(o);

		if (n == -1 && PyErr_Occurred())
			return -1;
		return level_from_number(n);
	}
	if (PyUnicode_Check(o) && (s = PyUnicode_AsUTF8(o)) != NULL) {
		for (int i = 0; i < 5; i++)
			if (strcasecmp(s, names[i]) == 0)
				return i;
		PyErr_Format(PyExc_ValueError, "unknown log level '%s' (one "
		    "of debug, info, notice, warning, error)", s);
		return -1;
	}
	if (!PyErr_Occurred())
		PyErr_Format(PyExc_TypeError, "log level must be an int or a "
		    "str, not %.100s", Py_TYPE(o)->tp_name);
	return -1;
}

/* -- pmhost.log ------------------------------------------------------- */

PyDoc_STRVAR(log_doc,
"log(level, message)\n--\n\n"
"Writes message to the task's log under the worker's title.  level is\n"
"pmhost.DEBUG, INFO, NOTICE, WARNING or ERROR (logging's numbers work\n"
"too), or one of their names.  Each line of a message is one entry.");

static PyObject *
pm_log_py(PyObject *self, PyObject *args)
{
	PyObject *level_obj;
	const char *msg;
	int level;

	(void)self;
	if (!PyArg_ParseTuple(args, "Os:log", &level_obj, &msg))
		return NULL;
	if ((level = level_from_object(level_obj)) < 0)
		return NULL;
	if (bound != NULL)
		report_lines(bound, level, msg);
	Py_RETURN_NONE;
}

/* -- sleeps ----------------------------------------------------------- */

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A sleep's length from a Python number; -1 with an exception set. */
static double
seconds_of(PyObject *arg)
{
	double secs = PyFloat_AsDouble(arg);

	if (secs == -1.0 && PyErr_Occurred())
		return -1;
	if (isnan(secs)) {
		PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a "
		    "number)");
		return -1;
	}
	if (secs < 0) {
		PyErr_SetString(PyExc_ValueError, "sleep length must be "
		    "non-negative");
		return -1;
	}
	return secs;
}

/*
 * Sleeps secs on the stop descriptor, the GIL released.  1 if a stop
 * request ended it (or came before), 0 if the time passed, -1 if a
 * Python signal handler raised.
 */
static int
sleep_on_stop_fd(double secs)
{
	double deadline = mono_s() + secs;
	struct pollfd pfd = { .fd = stop_fd, .events = POLLIN };

	for (;;) {
		double left = deadline - mono_s();
		struct timespec ts;
		int r, saved;

		if (pm_worker_stopping(bound))
			return 1;
		if (left <= 0)
			return 0;
		if (left > 86400.0 * 365)
			left = 86400.0 * 365;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		Py_BEGIN_ALLOW_THREADS
		r = ppoll(&pfd, 1, &ts, NULL);
		saved = errno;
		Py_END_ALLOW_THREADS
		if (r > 0)
			return 1;
		/* Handlers the task installed itself run as in time.sleep(). */
		if (r < 0 && saved == EINTR && PyErr_CheckSignals() < 0)
			return -1;
	}
}

PyDoc_STRVAR(sleep_doc,
"sleep(seconds) -> bool\n--\n\n"
"Sleeps like time.sleep(), but returns False at once when the worker is\n"
"asked to stop (before or during the sleep), True if the time passed.");

static PyObject *
pm_sleep_py(PyObject *self, PyObject *arg)
{
	double secs = seconds_of(arg);
	int r;

	(void)self;
	if (secs < 0)
		return NULL;
	if (stop_fd < 0 || bound == NULL) {
		PyObject *v = PyObject_CallOneArg(orig_sleep, arg);

		if (v == NULL)
			return NULL;
		Py_DECREF(v);
		return PyBool_FromLong(bound == NULL ||
		    !pm_worker_stopping(bound));
	}
	if ((r = sleep_on_stop_fd(secs)) < 0)
		return NULL;
	return PyBool_FromLong(r == 0);
}

PyDoc_STRVAR(time_sleep_doc,
"sleep(seconds)\n--\n\n"
"time.sleep() under pmhost: in a worker's work_init() and work(), a stop\n"
"request ends the sleep with pmhost.StopRequested.  Elsewhere (other\n"
"threads, work_fini) it is the interpreter's own time.sleep().");

static PyObject *
time_sleep_py(PyObject *self, PyObject *arg)
{
	double secs;
	int r;

	(void)self;
	if (!interruptible || stop_fd < 0 ||
	    PyThread_get_thread_ident() != main_thread)
		return PyObject_CallOneArg(orig_sleep, arg);
	if ((secs = seconds_of(arg)) < 0)
		return NULL;
	if ((r = sleep_on_stop_fd(secs)) < 0)
		return NULL;
	if (r > 0) {
		PyErr_SetString(stop_exc, "the worker was asked to stop "
		    "while it slept");
		return NULL;
	}
	Py_RETURN_NONE;
}

int
module_sleep_interruptible(pm_worker *w)
{
	if (stop_fd < 0)
		stop_fd = pm_worker_stop_fd(w);
	main_thread = PyThread_get_thread_ident();
	interruptible = stop_fd >= 0;
	return stop_fd >= 0 ? 0 : -1;
}

void
module_sleep_plain(void)
{
	interruptible = 0;
}

int
module_stop_requested_pending(void)
{
	return stop_exc != NULL && PyErr_ExceptionMatches(stop_exc);
}

/* -- logging ---------------------------------------------------------- */

/* LogHandler.emit(record): the formatted record, line by line, at the
 * record's level. */
static PyObject *
handler_emit(PyObject *self, PyObject *record)
{
	PyObject *fmt, *text = NULL, *levelno;
	const char *s;
	int level = PM_LOG_INFO;

	fmt = PyObject_GetAttrString(self, "formatter");
	if (fmt == NULL)
		goto fail;
	if (fmt == Py_None)
		Py_SETREF(fmt, Py_NewRef(handler_format));
	text = PyObject_CallMethod(fmt, "format", "O", record);
	Py_DECREF(fmt);
	if (text == NULL || (s = PyUnicode_AsUTF8(text)) == NULL)
		goto fail;
	if ((levelno = PyObject_GetAttrString(record, "levelno")) == NULL)
		goto fail;
	if (PyLong_Check(levelno))
		level = level_from_number(PyLong_AsLong(levelno));
	Py_DECREF(levelno);
	if (bound != NULL)
		report_lines(bound, level, s);
	Py_DECREF(text);
	Py_RETURN_NONE;
fail:
	Py_XDECREF(text);
	/* logging's own way: report on stderr, never raise into the task. */
	PyErr_Clear();
	return PyObject_CallMethod(self, "handleError", "O", record);
}

static PyMethodDef handler_methods[] = {
	{ "emit", handler_emit, METH_O,
	  PyDoc_STR("Writes the record to the task's log.") },
	{ NULL, NULL, 0, NULL }
};

static PyType_Slot handler_slots[] = {
	{ Py_tp_methods, handler_methods },
	{ Py_tp_doc, (void *)PyDoc_STR(
	    "A logging.Handler that writes records to the task's log, at\n"
	    "the pmhost level matching theirs (CRITICAL is error).  Without\n"
	    "a formatter of its own it writes \"NAME: MESSAGE\".") },
	{ 0, NULL }
};

static PyType_Spec handler_spec = {
	.name = "pmhost.LogHandler",
	.basicsize = 0,		/* logging.Handler's own layout */
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.slots = handler_slots,
};

/* Makes pmhost.LogHandler, a subclass of logging.Handler. */
static int
make_handler_type(PyObject *logging)
{
	PyObject *base, *bases;

	if (handler_type != NULL)
		return 0;
	if ((base = PyObject_GetAttrString(logging, "Handler")) == NULL)
		return -1;
	bases = PyTuple_Pack(1, base);
	Py_DECREF(base);
	if (bases == NULL)
		return -1;
	handler_type = PyType_FromSpecWithBases(&handler_spec, bases);
	Py_DECREF(bases);
	if (handler_type == NULL)
		return -1;
	handler_format = PyObject_CallMethod(logging, "Formatter", "s",
	    "%(name)s: %(message)s");
	if (handler_format == NULL) {
		Py_CLEAR(handler_type);
		return -1;
	}
	return 0;
}

/*
 * Puts a LogHandler on the root logger, lets every level through (the
 * host's logLevel decides what is written) and routes warnings.warn()
 * there too.
 */
static int
serve_logging(PyObject *logging)
{
	PyObject *h, *root, *r;
	int rc = -1;

	if (make_handler_type(logging) < 0)
		return -1;
	if ((h = PyObject_CallNoArgs(handler_type)) == NULL)
		return -1;
	if ((root = PyObject_GetAttrString(logging, "root")) == NULL)
		goto out;
	if ((r = PyObject_CallMethod(root, "addHandler", "O", h)) == NULL)
		goto out;
	Py_DECREF(r);
	if ((r = PyObject_CallMethod(root, "setLevel", "i", 10)) == NULL)
		goto out;
	Py_DECREF(r);
	r = PyObject_CallMethod(logging, "captureWarnings", "O", Py_True);
	if (r == NULL)
		goto out;
	Py_DECREF(r);
	rc = 0;
out:
	Py_XDECREF(root);
	Py_DECREF(h);
	return rc;
}

/* logging as it is in sys.modules once its import has finished, or NULL.
 * Borrowed. */
static PyObject *
logging_module(void)
{
	PyObject *m = PyDict_GetItemString(PyImport_GetModuleDict(),
	    "logging"), *spec, *busy;
	int initialising = 0;

	if (m == NULL)
		return NULL;
	/* While logging's own body runs (its imports come back here), it is
	 * in sys.modules but not finished. */
	if ((spec = PyObject_GetAttrString(m, "__spec__")) != NULL) {
		busy = PyObject_GetAttrString(spec, "_initializing");
		initialising = busy != NULL && PyObject_IsTrue(busy) == 1;
		Py_XDECREF(busy);
		Py_DECREF(spec);
	}
	PyErr_Clear();
	return initialising ? NULL : m;
}

/* Puts builtins.__import__ back as it was, if the hook is still there. */
static void
unhook_import(void)
{
	PyObject *builtins = PyEval_GetBuiltins();

	if (orig_import == NULL)
		return;
	if (builtins != NULL && PyDict_GetItemString(builtins,
	    "__import__") == import_hook)
		PyDict_SetItemString(builtins, "__import__", orig_import);
	Py_CLEAR(orig_import);
}

void
module_check_logging(void)
{
	PyObject *logging;

	if (logging_served || (logging = logging_module()) == NULL)
		return;
	logging_served = 1;
	unhook_import();
	if (serve_logging(logging) < 0 && bound != NULL)
		report_exception(bound, "pmhost: installing its logging "
		    "handler");
	PyErr_Clear();
}

/* builtins.__import__ until logging is imported: the import, then a look
 * at whether logging came with it. */
static PyObject *
hooked_import(PyObject *self, PyObject *args, PyObject *kwargs)
{
	PyObject *r, *keep = Py_NewRef(orig_import);

	(void)self;
	r = PyObject_Call(keep, args, kwargs);
	Py_DECREF(keep);
	if (r != NULL && !logging_served)
		module_check_logging();
	return r;
}

static PyMethodDef hook_def = {
	"__import__", (PyCFunction)(void (*)(void))hooked_import,
	METH_VARARGS | METH_KEYWORDS,
	PyDoc_STR("builtins.__import__, watched by pmhost until logging is "
	    "imported.")
};

static PyMethodDef time_sleep_def = {
	"sleep", time_sleep_py, METH_O, time_sleep_doc
};

int
module_install_hooks(void)
{
	PyObject *time, *builtins, *sleep;

	if (orig_sleep != NULL)
		return 0;
	if ((time = PyImport_ImportModule("time")) == NULL)
		return -1;
	if ((orig_sleep = PyObject_GetAttrString(time, "sleep")) == NULL ||
	    (sleep = PyCFunction_New(&time_sleep_def, NULL)) == NULL) {
		Py_DECREF(time);
		return -1;
	}
	if (PyObject_SetAttrString(time, "sleep", sleep) < 0) {
		Py_DECREF(sleep);
		Py_DECREF(time);
		return -1;
	}
	Py_DECREF(sleep);
	Py_DECREF(time);

	if ((builtins = PyEval_GetBuiltins()) == NULL)
		return -1;
	if ((orig_import = PyDict_GetItemString(builtins,
	    "__import__")) == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "no builtins.__import__");
		return -1;
	}
	Py_INCREF(orig_import);
	if ((import_hook = PyCFunction_New(&hook_def, NULL)) == NULL)
		return -1;
	if (PyDict_SetItemString(builtins, "__import__", import_hook) < 0)
		return -1;
	/* Imported already (a sitecustomize may have done it). */
	module_check_logging();
	return 0;
}

/* -- the Worker object ------------------------------------------------ */

typedef struct {
	PyObject_HEAD
} worker_object;

static PyObject *
worker_slot(PyObject *self, void *closure)
{
	(void)self;
	(void)closure;
	return PyLong_FromLong(bound != NULL ? pm_worker_slot(bound) : -1);
}

static PyObject *
worker_title(PyObject *self, void *closure)
{
	(void)self;
	(void)closure;
	return PyUnicode_FromString(bound != NULL ? pm_worker_title(bound) :
	    "");
}

static PyObject *
worker_calls(PyObject *self, void *closure)
{
	(void)self;
	(void)closure;
	return PyLong_FromUnsignedLongLong(bound != NULL ?
	    (unsigned long long)pm_worker_calls(bound) : 0);
}

static PyObject *
worker_params(PyObject *self, void *closure)
{
	(void)self;
	(void)closure;
	return Py_NewRef(params_obj != NULL ? params_obj : Py_None);
}

static PyObject *
worker_stopping(PyObject *self, void *closure)
{
	(void)self;
	(void)closure;
	return PyBool_FromLong(bound != NULL && pm_worker_stopping(bound));
}

static PyObject *
worker_config_dir(PyObject *self, void *closure)
{
	const char *d = bound != NULL ? pm_worker_config_dir(bound) : NULL;

	(void)self;
	(void)closure;
	if (d == NULL)
		Py_RETURN_NONE;
	return PyUnicode_DecodeFSDefault(d);
}

static PyObject *
worker_stop_fd(PyObject *self, void *closure)
{
	(void)self;
	(void)closure;
	return PyLong_FromLong(stop_fd);
}

static PyObject *
worker_repr(PyObject *self)
{
	(void)self;
	return PyUnicode_FromFormat("<pmhost.Worker slot %d of %s>",
	    bound != NULL ? pm_worker_slot(bound) : -1,
	    bound != NULL ? pm_worker_title(bound) : "?");
}

static PyGetSetDef worker_getset[] = {
	{ "slot", worker_slot, NULL,
	  PyDoc_STR("0..maxWorkerNum-1, kept across respawns; -1 in the "
	      "load check and the preload process"), NULL },
	{ "title", worker_title, NULL,
	  PyDoc_STR("the process title, e.g. process_m:Worker:task"), NULL },
	{ "calls", worker_calls, NULL,
	  PyDoc_STR("work() calls this worker has completed"), NULL },
	{ "params", worker_params, NULL,
	  PyDoc_STR("the config's params without the plugin's own keys "
	      "(module, path, script, venv)"), NULL },
	{ "stopping", worker_stopping, NULL,
	  PyDoc_STR("True once the worker has been asked to stop"), NULL },
	{ "config_dir", worker_config_dir, NULL,
	  PyDoc_STR("the directory of the config file"), NULL },
	{ "stop_fd", worker_stop_fd, NULL,
	  PyDoc_STR("a descriptor that polls readable once a stop is "
	      "requested (for select/selectors); -1 outside a worker"), NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

static PyTypeObject worker_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "pmhost.Worker",
	.tp_basicsize = sizeof(worker_object),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = PyDoc_STR("The worker a task runs in; read-only."),
	.tp_getset = worker_getset,
	.tp_repr = worker_repr,
};

/* -- the module ------------------------------------------------------- */

/* pmhost.LogHandler is made when first asked for, importing logging. */
static PyObject *
module_getattr(PyObject *self, PyObject *name)
{
	PyObject *logging;
	const char *s = PyUnicode_AsUTF8(name);

	(void)self;
	if (s != NULL && strcmp(s, "LogHandler") == 0) {
		if ((logging = PyImport_ImportModule("logging")) == NULL)
			return NULL;
		module_check_logging();
		if (make_handler_type(logging) < 0) {
			Py_DECREF(logging);
			return NULL;
		}
		Py_DECREF(logging);
		return Py_NewRef(handler_type);
	}
	if (s != NULL)
		PyErr_Format(PyExc_AttributeError, "module 'pmhost' has no "
		    "attribute '%s'", s);
	return NULL;
}

static PyMethodDef module_methods[] = {
	{ "log", pm_log_py, METH_VARARGS, log_doc },
	{ "sleep", pm_sleep_py, METH_O, sleep_doc },
	{ "__getattr__", module_getattr, METH_O, NULL },
	{ NULL, NULL, 0, NULL }
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "pmhost",
	.m_doc = PyDoc_STR("The pmhost worker a Python task runs in."),
	.m_size = -1,
	.m_methods = module_methods,
};

PyObject *
module_init(void)
{
	static const struct {
		const char	*name;
		int		 value;
	} levels[] = {
		{ "DEBUG", 10 }, { "INFO", 20 }, { "NOTICE", 25 },
		{ "WARNING", 30 }, { "ERROR", 40 },
	};
	PyObject *m;

	if (PyType_Ready(&worker_type) < 0)
		return NULL;
	if ((m = PyModule_Create(&module_def)) == NULL)
		return NULL;
	if (stop_exc == NULL && (stop_exc = PyErr_NewExceptionWithDoc(
	    "pmhost.StopRequested", "The worker was asked to stop while it "
	    "slept in time.sleep().", PyExc_BaseException, NULL)) == NULL)
		goto fail;
	if (worker_obj == NULL &&
	    (worker_obj = PyType_GenericAlloc(&worker_type, 0)) == NULL)
		goto fail;
	if (PyModule_AddObjectRef(m, "StopRequested", stop_exc) < 0 ||
	    PyModule_AddObjectRef(m, "Worker", (PyObject *)&worker_type) < 0 ||
	    PyModule_AddObjectRef(m, "worker", worker_obj) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (PyModule_AddIntConstant(m, levels[i].name,
		    levels[i].value) < 0)
			goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}

PyObject *
module_worker(void)
{
	PyObject *m;

	/* Made already (in the preload process, say): an import, even of a
	 * loaded module, runs importlib's Python code. */
	if (worker_obj != NULL)
		return worker_obj;
	if ((m = PyImport_ImportModule("pmhost")) == NULL)
		return NULL;
	Py_DECREF(m);
	return worker_obj;
}
