/*
 * task.c - the task's code and where it comes from.  params name a module
 * and the directory it is found in ("module", "path") or a file
 * ("script"), and may name a virtualenv ("venv") whose packages the task
 * imports; relative paths are relative to the config file's directory.
 * The rest of params is the task's own: worker.params.
 */
#include "pypm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What params say about the task's code; borrowed UTF-8 strings. */
struct source {
	const char	*module;
	const char	*path;
	const char	*script;
	const char	*venv;
};

/* dir/name, or name alone if it is absolute; 0 or -1 (too long).
 * Leading "./" steps are dropped: the path shows in tracebacks. */
static int
join_path(char *out, size_t size, const char *dir, const char *name)
{
	int n;

	while (name[0] == '.' && name[1] == '/')
		for (name += 2; name[0] == '/'; name++)
			;
	if (strcmp(name, ".") == 0 || name[0] == '\0')
		n = snprintf(out, size, "%s", dir != NULL ? dir : ".");
	else if (name[0] == '/' || dir == NULL)
		n = snprintf(out, size, "%s", name);
	else
		n = snprintf(out, size, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/*
 * Takes key out of params: a string, or absent (NULL).  The value is kept
 * alive in keep (a list).  0, or -1 after logging why.
 */
static int
take_string(pm_worker *w, PyObject *params, PyObject *keep, const char *key,
    const char **out)
{
	PyObject *v = PyDict_GetItemString(params, key);

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!PyUnicode_Check(v) || (*out = PyUnicode_AsUTF8(v)) == NULL ||
	    (*out)[0] == '\0') {
		PyErr_Clear();
		pm_log(w, PM_LOG_ERROR, "python: params.%s: must be a "
		    "non-empty string", key);
		return -1;
	}
	if (PyList_Append(keep, v) < 0 || PyDict_DelItemString(params,
	    key) < 0) {
		report_exception(w, "python: params");
		return -1;
	}
	return 0;
}

/* Splits params into the plugin's keys (src) and the task's (the rest). */
static int
read_source(pm_worker *w, PyObject *params, PyObject *keep,
    struct source *src)
{
	if (!PyDict_Check(params)) {
		pm_log(w, PM_LOG_ERROR, "python: params: must be an object "
		    "naming \"module\" or \"script\"");
		return -1;
	}
	if (take_string(w, params, keep, "module", &src->module) < 0 ||
	    take_string(w, params, keep, "path", &src->path) < 0 ||
	    take_string(w, params, keep, "script", &src->script) < 0 ||
	    take_string(w, params, keep, "venv", &src->venv) < 0)
		return -1;
	if ((src->module == NULL) == (src->script == NULL)) {
		pm_log(w, PM_LOG_ERROR, "python: params: name either "
		    "\"module\" (with \"path\") or \"script\"%s",
		    src->module != NULL ? ", not both" : "");
		return -1;
	}
	if (src->script != NULL && src->path != NULL) {
		pm_log(w, PM_LOG_ERROR, "python: params.path: goes with "
		    "\"module\"; a script's own directory is on sys.path");
		return -1;
	}
	return 0;
}

/* Sets sys.NAME to a str made from a file name. */
static int
set_sys_path_str(const char *name, const char *value)
{
	PyObject *v = PyUnicode_DecodeFSDefault(value);
	int rc;

	if (v == NULL)
		return -1;
	rc = PySys_SetObject(name, v);
	Py_DECREF(v);
	return rc;
}

/* Inserts dir at the front of sys.path; sys.argv becomes [argv0]. */
static int
set_search_path(const char *dir, const char *argv0)
{
	PyObject *path = PySys_GetObject("path"), *d, *argv;
	int rc;

	if (path == NULL || !PyList_Check(path)) {
		PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
		return -1;
	}
	if ((d = PyUnicode_DecodeFSDefault(dir)) == NULL)
		return -1;
	rc = PyList_Insert(path, 0, d);
	Py_DECREF(d);
	if (rc < 0)
		return -1;
	if ((argv = Py_BuildValue("[s]", argv0)) == NULL)
		return -1;
	rc = PySys_SetObject("argv", argv);
	Py_DECREF(argv);
	return rc;
}

/* -- virtualenvs ------------------------------------------------------ */

/* The value of "key = value" in pyvenv.cfg, into out; 0, or -1 if absent. */
static int
venv_cfg(const char *cfg, const char *key, char *out, size_t size)
{
	char line[PATH_MAX + 64];
	FILE *f = fopen(cfg, "r");
	int found = -1;

	if (f == NULL)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), f) != NULL) {
		char *eq = strchr(line, '='), *k = line, *v, *end;

		if (eq == NULL)
			continue;
		*eq = '\0';
		while (*k == ' ' || *k == '\t')
			k++;
		for (end = eq; end > k && (end[-1] == ' ' || end[-1] == '\t');)
			*--end = '\0';
		if (strcmp(k, key) != 0)
			continue;
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		v[strcspn(v, "\r\n")] = '\0';
		snprintf(out, size, "%s", v);
		found = 0;
	}
	fclose(f);
	return found;
}

/* Does list contain item (by equality)?  -1 on error. */
static int
list_has(PyObject *list, PyObject *item)
{
	return PySequence_Contains(list, item);
}

/*
 * sys.path as a venv's interpreter has it: the standard library, then
 * the venv's site-packages (and what its .pth files add), then the
 * system's site-packages only if the venv includes them.
 */
static int
venv_search_path(const char *site_dir, int system_site)
{
	PyObject *site = NULL, *sys_path = PySys_GetObject("path");
	PyObject *before = NULL, *system = NULL, *user = NULL, *r;
	PyObject *order = NULL;
	int rc = -1;

	if (sys_path == NULL || (site = PyImport_ImportModule("site")) == NULL)
		goto out;
	if ((before = PySequence_List(sys_path)) == NULL)
		goto out;
	if ((system = PyObject_CallMethod(site, "getsitepackages", NULL)) ==
	    NULL)
		goto out;
	if ((user = PyObject_CallMethod(site, "getusersitepackages",
	    NULL)) == NULL)
		goto out;
	if (PyList_Append(system, user) < 0)
		goto out;
	r = PyObject_CallMethod(site, "addsitedir", "s", site_dir);
	if (r == NULL)
		goto out;
	Py_DECREF(r);
	if ((order = PyList_New(0)) == NULL)
		goto out;
	/* The standard library: what was there, minus the system's sites. */
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(before); i++) {
		PyObject *p = PyList_GET_ITEM(before, i);
		int sys_site = list_has(system, p);

		if (sys_site < 0 || (!sys_site && PyList_Append(order, p) < 0))
			goto out;
	}
	/* The venv's: what addsitedir() added. */
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sys_path); i++) {
		PyObject *p = PyList_GET_ITEM(sys_path, i);
		int old = list_has(before, p);

		if (old < 0 || (!old && PyList_Append(order, p) < 0))
			goto out;
	}
	for (Py_ssize_t i = 0; system_site && i < PyList_GET_SIZE(before);
	    i++) {
		PyObject *p = PyList_GET_ITEM(before, i);
		int sys_site = list_has(system, p);

		if (sys_site < 0 || (sys_site && PyList_Append(order, p) < 0))
			goto out;
	}
	if (PyList_SetSlice(sys_path, 0, PyList_GET_SIZE(sys_path), order) < 0)
		goto out;
	rc = 0;
out:
	Py_XDECREF(order);
	Py_XDECREF(user);
	Py_XDECREF(system);
	Py_XDECREF(before);
	Py_XDECREF(site);
	return rc;
}

/*
 * Makes the venv's packages importable and sys.prefix the venv's, as
 * DIR/bin/python would; refuses a venv made by another Python version,
 * whose compiled packages this interpreter could not load.
 */
static int
use_venv(pm_worker *w, const char *dir, enum task_report how)
{
	char cfg[PATH_MAX], site_dir[PATH_MAX], exe[PATH_MAX], version[64];
	char want[32], flag[16];
	int major = 0, minor = 0;

	snprintf(want, sizeof(want), "%d.%d", PY_MAJOR_VERSION,
	    PY_MINOR_VERSION);
	if (join_path(cfg, sizeof(cfg), dir, "pyvenv.cfg") < 0 ||
	    join_path(exe, sizeof(exe), dir, "bin/python") < 0 ||
	    snprintf(site_dir, sizeof(site_dir), "%s/lib/python%s/"
	    "site-packages", dir, want) >= (int)sizeof(site_dir)) {
		pm_log(w, PM_LOG_ERROR, "python: params.venv: path too long");
		return -1;
	}
	if (access(cfg, R_OK) != 0) {
		pm_log(w, PM_LOG_ERROR, "python: params.venv: %s is not a "
		    "virtualenv (no readable pyvenv.cfg)", dir);
		return -1;
	}
	if ((venv_cfg(cfg, "version", version, sizeof(version)) == 0 ||
	    venv_cfg(cfg, "version_info", version, sizeof(version)) == 0) &&
	    (sscanf(version, "%d.%d", &major, &minor) != 2 ||
	    major != PY_MAJOR_VERSION || minor != PY_MINOR_VERSION)) {
		pm_log(w, PM_LOG_ERROR, "python: params.venv: %s was made by "
		    "Python %s; this plugin runs Python %s: recreate it with "
		    "%s -m venv", dir, version, want, PYPM_EXECUTABLE);
		return -1;
	}
	if (access(site_dir, R_OK | X_OK) != 0) {
		pm_log(w, PM_LOG_ERROR, "python: params.venv: %s has no %s",
		    dir, site_dir);
		return -1;
	}
	if (venv_cfg(cfg, "include-system-site-packages", flag,
	    sizeof(flag)) < 0)
		flag[0] = '\0';
	if (venv_search_path(site_dir, strcmp(flag, "true") == 0) < 0 ||
	    set_sys_path_str("prefix", dir) < 0 ||
	    set_sys_path_str("exec_prefix", dir) < 0 ||
	    (access(exe, X_OK) == 0 && set_sys_path_str("executable",
	    exe) < 0)) {
		if (how == TASK_REPORT_LINE)
			report_exception_line(w, "python: params.venv");
		else
			report_exception(w, "python: params.venv");
		return -1;
	}
	return 0;
}

/* -- importing -------------------------------------------------------- */

/* Runs the file at path as a new module named name (in sys.modules). */
static PyObject *
exec_script(const char *name, const char *path)
{
	PyObject *ext = NULL, *boot = NULL, *loader = NULL, *spec = NULL;
	PyObject *mod = NULL, *r, *modules = PyImport_GetModuleDict();
	PyObject *fn = NULL, *args = NULL, *kw = NULL;

	if ((ext = PyImport_ImportModule("_frozen_importlib_external")) ==
	    NULL || (boot = PyImport_ImportModule("_frozen_importlib")) ==
	    NULL)
		goto fail;
	/* An explicit loader: a script need not end in .py. */
	loader = PyObject_CallMethod(ext, "SourceFileLoader", "ss", name,
	    path);
	if (loader == NULL)
		goto fail;
	if ((fn = PyObject_GetAttrString(ext, "spec_from_file_location")) ==
	    NULL || (args = Py_BuildValue("(ss)", name, path)) == NULL ||
	    (kw = Py_BuildValue("{sO}", "loader", loader)) == NULL)
		goto fail;
	if ((spec = PyObject_Call(fn, args, kw)) == NULL)
		goto fail;
	if ((mod = PyObject_CallMethod(boot, "module_from_spec", "O",
	    spec)) == NULL)
		goto fail;
	if (PyDict_SetItemString(modules, name, mod) < 0)
		goto fail;
	if ((r = PyObject_CallMethod(loader, "exec_module", "O", mod)) ==
	    NULL) {
		PyObject *type, *value, *tb;

		PyErr_Fetch(&type, &value, &tb);
		PyDict_DelItemString(modules, name);
		PyErr_Clear();
		PyErr_Restore(type, value, tb);
		goto fail;
	}
	Py_DECREF(r);
	goto out;
fail:
	Py_CLEAR(mod);
out:
	Py_XDECREF(kw);
	Py_XDECREF(args);
	Py_XDECREF(fn);
	Py_XDECREF(spec);
	Py_XDECREF(loader);
	Py_XDECREF(boot);
	Py_XDECREF(ext);
	return mod;
}

/* The module name a script runs as: its file name without ".py". */
static int
script_name(const char *path, char *out, size_t size)
{
	const char *base = strrchr(path, '/');
	size_t n;

	base = base != NULL ? base + 1 : path;
	n = strlen(base);
	if (n > 3 && strcmp(base + n - 3, ".py") == 0)
		n -= 3;
	if (n == 0 || n >= size)
		return -1;
	memcpy(out, base, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (out[i] == '.')
			out[i] = '_';
	return 0;
}

/* Was the exception set raised because module name itself is missing
 * (rather than something it imports)? */
static int
module_missing(const char *name)
{
	PyObject *type, *value, *tb, *missing;
	int yes = 0;

	if (!PyErr_ExceptionMatches(PyExc_ModuleNotFoundError))
		return 0;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (value != NULL &&
	    (missing = PyObject_GetAttrString(value, "name")) != NULL) {
		const char *s = PyUnicode_Check(missing) ?
		    PyUnicode_AsUTF8(missing) : NULL;
		size_t n = s != NULL ? strlen(s) : 0;

		/* "pkg" missing when "pkg.task" was asked counts too. */
		yes = s != NULL && strncmp(name, s, n) == 0 &&
		    (name[n] == '\0' || name[n] == '.');
		Py_DECREF(missing);
	}
	PyErr_Clear();
	PyErr_Restore(type, value, tb);
	return yes;
}

/* Logs the failure to import the task, as the caller wants it. */
static void
import_failed(pm_worker *w, enum task_report how, const char *what)
{
	if (how == TASK_REPORT_LINE)
		report_exception_line(w, what);
	else
		report_exception(w, what);
}

/* Imports the task's code; a new reference to its module, or NULL after
 * logging why. */
static PyObject *
import_task(pm_worker *w, const struct source *src, enum task_report how)
{
	const char *cdir = pm_worker_config_dir(w);
	char dir[PATH_MAX], file[PATH_MAX], name[256];
	PyObject *mod;

	if (src->module != NULL) {
		if (join_path(dir, sizeof(dir), cdir,
		    src->path != NULL ? src->path : ".") < 0) {
			pm_log(w, PM_LOG_ERROR, "python: params.path: too "
			    "long");
			return NULL;
		}
		if (set_search_path(dir, src->module) < 0) {
			import_failed(w, how, "python: sys.path");
			return NULL;
		}
		if ((mod = PyImport_ImportModule(src->module)) != NULL)
			return mod;
		if (module_missing(src->module)) {
			PyErr_Clear();
			pm_log(w, PM_LOG_ERROR, "python: no module named '%s' "
			    "in %s", src->module, dir);
			return NULL;
		}
		import_failed(w, how, "python: importing the task");
		return NULL;
	}
	if (join_path(file, sizeof(file), cdir, src->script) < 0 ||
	    script_name(file, name, sizeof(name)) < 0) {
		pm_log(w, PM_LOG_ERROR, "python: params.script: bad file name "
		    "'%s'", src->script);
		return NULL;
	}
	if (access(file, R_OK) != 0) {
		pm_log(w, PM_LOG_ERROR, "python: params.script: cannot read "
		    "%s: %s", file, strerror(errno));
		return NULL;
	}
	if (PyDict_GetItemString(PyImport_GetModuleDict(), name) != NULL) {
		pm_log(w, PM_LOG_ERROR, "python: params.script: %s would run "
		    "as module '%s', which is already loaded; rename the "
		    "file", file, name);
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s", file);
	*strrchr(dir, '/') = '\0';
	if (set_search_path(dir[0] != '\0' ? dir : "/", file) < 0) {
		import_failed(w, how, "python: sys.path");
		return NULL;
	}
	if ((mod = exec_script(name, file)) == NULL)
		import_failed(w, how, "python: running the script");
	return mod;
}

/* module.NAME if callable, in *out (a new reference) or NULL if absent;
 * 0, or -1 after logging that it is not callable. */
static int
find_function(pm_worker *w, PyObject *mod, const char *name, PyObject **out)
{
	PyObject *f = PyObject_GetAttrString(mod, name);

	*out = NULL;
	if (f == NULL) {
		PyErr_Clear();
		return 0;
	}
	if (!PyCallable_Check(f)) {
		pm_log(w, PM_LOG_ERROR, "python: %s.%s is a %s, not a "
		    "function", PyModule_GetName(mod), name,
		    Py_TYPE(f)->tp_name);
		PyErr_Clear();
		Py_DECREF(f);
		return -1;
	}
	*out = f;
	return 0;
}

int
task_load(pm_worker *w, struct task *t, enum task_report how)
{
	PyObject *params, *keep;
	struct source src;
	const char *cdir = pm_worker_config_dir(w);
	char venv[PATH_MAX];
	int rc = -1;

	memset(t, 0, sizeof(*t));
	if ((params = params_from_json(pm_worker_params(w))) == NULL) {
		report_exception(w, "python: params");
		return -1;
	}
	if ((keep = PyList_New(0)) == NULL) {
		report_exception(w, "python: params");
		Py_DECREF(params);
		return -1;
	}
	if (read_source(w, params, keep, &src) < 0)
		goto out;
	if (src.venv != NULL) {
		if (join_path(venv, sizeof(venv), cdir, src.venv) < 0) {
			pm_log(w, PM_LOG_ERROR, "python: params.venv: too "
			    "long");
			goto out;
		}
		if (use_venv(w, venv, how) < 0)
			goto out;
	}
	module_set_params(params);
	if ((t->module = import_task(w, &src, how)) == NULL)
		goto out;
	if (find_function(w, t->module, "work", &t->work) < 0 ||
	    find_function(w, t->module, "work_init", &t->init) < 0 ||
	    find_function(w, t->module, "work_fini", &t->fini) < 0)
		goto out;
	if (t->work == NULL) {
		PyObject *f = PyModule_GetFilenameObject(t->module);
		const char *s = f != NULL ? PyUnicode_AsUTF8(f) : NULL;

		PyErr_Clear();
		pm_log(w, PM_LOG_ERROR, "python: %s defines no work(worker, "
		    "state) function", s != NULL ? s :
		    PyModule_GetName(t->module));
		Py_XDECREF(f);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		Py_CLEAR(t->work);
		Py_CLEAR(t->init);
		Py_CLEAR(t->fini);
		Py_CLEAR(t->module);
	}
	Py_DECREF(keep);
	Py_DECREF(params);
	return rc;
}
