/*
 * report.c - Python exceptions as lines of the task's log.  The host's log
 * takes one line per entry, so a traceback is written line by line, and
 * at most one a second: a task failing on every call in a hot loop must
 * not drown the log (the host counts the failed calls regardless).
 */
#include "pypm.h"

#include <string.h>
#include <time.h>

#define TRACEBACK_EVERY_NS	1000000000LL

static long long	last_traceback_ns;
static unsigned long	tracebacks_skipped;

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
report_lines(pm_worker *w, int level, const char *msg)
{
	const char *p = msg, *nl;

	while (*p != '\0') {
		int n;

		nl = strchr(p, '\n');
		n = nl != NULL ? (int)(nl - p) : (int)strlen(p);
		pm_log(w, level, "%.*s", n, p);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

/* The exception set, normalised and with its traceback attached; NULL if
 * none is set.  A new reference; the exception is cleared. */
static PyObject *
take_exception(void)
{
	PyObject *type, *value, *tb;

	PyErr_Fetch(&type, &value, &tb);
	if (type == NULL)
		return NULL;
	PyErr_NormalizeException(&type, &value, &tb);
	if (value == NULL) {
		Py_XDECREF(type);
		Py_XDECREF(tb);
		return NULL;
	}
	if (tb != NULL)
		PyException_SetTraceback(value, tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);
	return value;
}

/* str(exc), or a placeholder; a UTF-8 string valid while exc_str lives. */
static const char *
message_of(PyObject *exc, PyObject **exc_str)
{
	const char *s;

	*exc_str = PyObject_Str(exc);
	if (*exc_str == NULL || (s = PyUnicode_AsUTF8(*exc_str)) == NULL) {
		PyErr_Clear();
		return "(unprintable)";
	}
	return s;
}

/* The whole traceback of exc as one text, or NULL (nothing set). */
static PyObject *
format_traceback(PyObject *exc)
{
	PyObject *mod, *lines, *empty, *text = NULL;

	if ((mod = PyImport_ImportModule("traceback")) == NULL)
		goto out;
	lines = PyObject_CallMethod(mod, "format_exception", "O", exc);
	Py_DECREF(mod);
	if (lines == NULL)
		goto out;
	if ((empty = PyUnicode_FromString("")) != NULL) {
		text = PyUnicode_Join(empty, lines);
		Py_DECREF(empty);
	}
	Py_DECREF(lines);
out:
	if (text == NULL)
		PyErr_Clear();
	return text;
}

void
report_exception(pm_worker *w, const char *what)
{
	PyObject *exc, *exc_str = NULL, *text;
	long long now = now_ns();
	const char *s;

	if ((exc = take_exception()) == NULL)
		return;
	if (last_traceback_ns != 0 &&
	    now - last_traceback_ns < TRACEBACK_EVERY_NS) {
		tracebacks_skipped++;
		Py_DECREF(exc);
		return;
	}
	last_traceback_ns = now;
	if (tracebacks_skipped > 0)
		pm_log(w, PM_LOG_ERROR, "%s raised %s: %s (and %lu more "
		    "exceptions since the last traceback)", what,
		    Py_TYPE(exc)->tp_name, message_of(exc, &exc_str),
		    tracebacks_skipped);
	else
		pm_log(w, PM_LOG_ERROR, "%s raised %s: %s", what,
		    Py_TYPE(exc)->tp_name, message_of(exc, &exc_str));
	tracebacks_skipped = 0;
	if ((text = format_traceback(exc)) != NULL) {
		if ((s = PyUnicode_AsUTF8(text)) != NULL)
			report_lines(w, PM_LOG_ERROR, s);
		else
			PyErr_Clear();
		Py_DECREF(text);
	}
	Py_XDECREF(exc_str);
	Py_DECREF(exc);
}

/* Reads attribute name of o as a C int; 0 if it has none. */
static int
int_attr(PyObject *o, const char *name)
{
	PyObject *v = PyObject_GetAttrString(o, name);
	long n = 0;

	if (v != NULL && PyLong_Check(v))
		n = PyLong_AsLong(v);
	Py_XDECREF(v);
	PyErr_Clear();
	return (int)n;
}

/* Is the file part of the standard library or an installed package? */
static int
library_file(const char *name)
{
	static const char stdlib[] = PYPM_PREFIX "/lib/python"
	    Py_STRINGIFY(PY_MAJOR_VERSION) "." Py_STRINGIFY(PY_MINOR_VERSION)
	    "/";

	return strncmp(name, stdlib, sizeof(stdlib) - 1) == 0 ||
	    strstr(name, "/site-packages/") != NULL ||
	    strstr(name, "/dist-packages/") != NULL;
}

/*
 * Where exc points in the task's code: a SyntaxError's own file and line,
 * else the innermost frame of its traceback in a file of the task's (not
 * the import machinery's, the standard library's or a package's), else
 * the innermost frame outside the import machinery.  A new reference to
 * the file name (str), or NULL; *line is set.
 */
static PyObject *
location_of(PyObject *exc, int *line)
{
	PyObject *tb, *file = NULL;
	int own = 0;

	*line = 0;
	if (PyErr_GivenExceptionMatches(exc, PyExc_SyntaxError)) {
		file = PyObject_GetAttrString(exc, "filename");
		if (file != NULL && PyUnicode_Check(file)) {
			*line = int_attr(exc, "lineno");
			return file;
		}
		Py_XDECREF(file);
		PyErr_Clear();
		return NULL;
	}
	for (tb = PyException_GetTraceback(exc); tb != NULL && tb != Py_None;) {
		PyTracebackObject *t = (PyTracebackObject *)tb;
		PyCodeObject *code = PyFrame_GetCode(t->tb_frame);
		const char *name = PyUnicode_AsUTF8(code->co_filename);

		if (name != NULL && strncmp(name, "<frozen ", 8) != 0 &&
		    (file == NULL || !own || !library_file(name))) {
			Py_XSETREF(file, Py_NewRef(code->co_filename));
			*line = t->tb_lineno;
			own = !library_file(name);
		}
		PyErr_Clear();
		Py_DECREF(code);
		Py_XSETREF(tb, Py_XNewRef((PyObject *)t->tb_next));
	}
	Py_XDECREF(tb);
	return file;
}

void
report_exception_line(pm_worker *w, const char *what)
{
	PyObject *exc, *exc_str = NULL, *file, *msg = NULL;
	const char *m, *f;
	int line;

	if ((exc = take_exception()) == NULL)
		return;
	/* A SyntaxError's str() repeats the place; its msg does not. */
	if (PyErr_GivenExceptionMatches(exc, PyExc_SyntaxError) &&
	    (msg = PyObject_GetAttrString(exc, "msg")) != NULL &&
	    PyUnicode_Check(msg) && (m = PyUnicode_AsUTF8(msg)) != NULL)
		;
	else
		m = message_of(exc, &exc_str);
	PyErr_Clear();
	file = location_of(exc, &line);
	if (file != NULL && (f = PyUnicode_AsUTF8(file)) != NULL)
		pm_log(w, PM_LOG_ERROR, "%s:%d: %s: %s", f, line,
		    Py_TYPE(exc)->tp_name, m);
	else
		pm_log(w, PM_LOG_ERROR, "%s: %s: %s", what,
		    Py_TYPE(exc)->tp_name, m);
	PyErr_Clear();
	Py_XDECREF(file);
	Py_XDECREF(msg);
	Py_XDECREF(exc_str);
	Py_DECREF(exc);
}
