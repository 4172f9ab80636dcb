/*
 * php.c - the PHP task plugin's entry points.  params.script names a PHP
 * file; its engine starts and its top level runs once per process that
 * loads it: the preload process (with "preload": true; every worker is
 * forked from it and shares the compiled script and its classes), else
 * each worker in work_init.  A worker then calls the script's init once,
 * its work on every work(), and its fini at an orderly end.
 *
 * An uncaught exception fails the call and the worker goes on.  exit(),
 * die() and fatal errors end PHP's request: the worker runs PHP's
 * shutdown (shutdown functions, destructors), says why, and exits non-zero
 * without work_fini.  The engine is one per process, hence the file-level
 * state.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <php.h>
#include <ext/json/php_json.h>

#include <pmhost.h>

#include "call.h"
#include "engine.h"
#include "module.h"
#include "params.h"
#include "script.h"

PMHOST_PLUGIN;

/* php-cli's exit status for a fatal error. */
#define FATAL_EXIT_STATUS	255

struct php_task {
	struct php_params	 params;
	struct script_code	 code;
	int			 loaded;	/* the top level has run */
	/* This worker's: */
	struct callable		 init, work, fini;
	zval			 worker;	/* the Worker object */
	zval			 state;		/* init's result */
	zval			 args[2];	/* work's arguments */
	uint32_t		 argc;
};

static struct php_task	task;

/*
 * Ends this process after exit(), die() or a fatal error in the script's
 * `what`: PHP's own end of request first, as php-cli would, then a
 * non-zero status so that the host counts a failure and backs off.
 */
static _Noreturn void
end_process(pm_worker *w, enum call_end end, const struct callable *c)
{
	int status = FATAL_EXIT_STATUS;
	char what[2048], where[PATH_MAX + 16];

	if (end == CALL_EXITED) {
		status = call_exit_status() & 0xff;
		if (status == 0)
			status = 1;
		if (call_exit_place(c, what, sizeof(what)))
			snprintf(where, sizeof(where), " (from %s)", what);
		else
			where[0] = '\0';
		pm_log(w, PM_LOG_ERROR, "php: %s: exit(%d)%s ends the worker "
		    "as failed, exit status %d; to end a worker normally, "
		    "return pmhost\\DONE or call pmhost\\done() or "
		    "$process->setStop()", c->what, call_exit_status(), where,
		    status);
	} else {
		if (!call_fatal_error(what, sizeof(what)))
			snprintf(what, sizeof(what), "see PHP's lines above");
		pm_log(w, PM_LOG_ERROR, "php: %s: fatal error: %s; the worker "
		    "ends as failed, exit status %d", c->what, what, status);
	}
	engine_end_request();
	fflush(NULL);
	_exit(status);
}

/* The task's params as a PHP array, for the script. */
static void
publish_params(pm_worker *w)
{
	const char *json = pm_worker_params(w);
	zval v;

	ZVAL_UNDEF(&v);
	php_json_decode_ex(&v, json, strlen(json), PHP_JSON_OBJECT_AS_ARRAY,
	    PHP_JSON_PARSER_DEFAULT_DEPTH);
	if (Z_TYPE(v) != IS_ARRAY) {
		zval_ptr_dtor(&v);
		array_init(&v);
	}
	module_set_params(&v);
}

/* Starts the engine and runs the script's top level in this process. */
static int
load(pm_worker *w)
{
	char err[512];

	if (params_read(w, &task.params, err, sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "php: %s", err);
		return -1;
	}
	if (engine_start(ENGINE_RUN, task.params.script, task.params.ini, err,
	    sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "php: %s", err);
		return -1;
	}
	publish_params(w);
	if (script_load(w, task.params.script, &task.code) < 0)
		return -1;
	task.loaded = 1;
	return 0;
}

int
work_check(pm_worker *w)
{
	char err[512];
	int rc;

	module_bind(w);
	if (params_read(w, &task.params, err, sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "php: %s", err);
		return -1;
	}
	if (engine_start(ENGINE_LINT, task.params.script, task.params.ini,
	    err, sizeof(err)) < 0) {
		pm_log(w, PM_LOG_ERROR, "php: %s", err);
		return -1;
	}
	rc = script_lint(w, task.params.script);
	/* Leave no engine behind: a preload may come next in this process. */
	engine_stop();
	params_free(&task.params);
	return rc;
}

int
work_preload(pm_worker *w)
{
	module_bind(w);
	if (load(w) < 0)
		return -1;
	script_compare_config(w, task.params.script, &task.code);
	return 0;
}

/* FORM_MANAGE: the Worker object handed to the closures. */
static int
make_worker(pm_worker *w)
{
	struct callable make;
	char err[256];
	zval name;
	enum call_end end;

	ZVAL_STRING(&name, "pmhost\\compat\\worker");
	if (callable_set(&make, &name, 1, "Worker", err, sizeof(err)) < 0) {
		zval_ptr_dtor(&name);
		pm_log(w, PM_LOG_ERROR, "php: %s", err);
		return -1;
	}
	zval_ptr_dtor(&name);
	end = call_invoke(w, &make, &task.worker, 1, &task.code.config);
	if (end == CALL_EXITED || end == CALL_FATAL)
		end_process(w, end, &make);
	callable_clear(&make);
	return end == CALL_RETURNED ? 0 : -1;
}

/* Resolves the script's callables for this worker's calls. */
static int
prepare_calls(pm_worker *w)
{
	char err[512];
	int manage = task.code.form == FORM_MANAGE;

	if (manage && make_worker(w) < 0)
		return -1;
	if ((Z_TYPE(task.code.init) != IS_UNDEF && callable_set(&task.init,
	    &task.code.init, 1, "init", err, sizeof(err)) < 0) ||
	    callable_set(&task.work, &task.code.work, 2, "work", err,
	    sizeof(err)) < 0 ||
	    (Z_TYPE(task.code.fini) != IS_UNDEF && callable_set(&task.fini,
	    &task.code.fini, 2, "fini", err, sizeof(err)) < 0)) {
		pm_log(w, PM_LOG_ERROR, "php: %s", err);
		return -1;
	}
	return 0;
}

/* Runs init, keeping what it returns as the state of every later call. */
static int
run_init(pm_worker *w)
{
	zval ret, *arg = task.code.form == FORM_MANAGE ? &task.worker :
	    module_params();
	enum call_end end;

	ZVAL_NULL(&task.state);
	if (Z_TYPE(task.init.fn) == IS_UNDEF)
		return 0;
	end = call_invoke(w, &task.init, &ret, 1, arg);
	if (end == CALL_EXITED || end == CALL_FATAL)
		end_process(w, end, &task.init);
	if (end == CALL_THREW)
		return -1;
	ZVAL_COPY_DEREF(&task.state, &ret);
	zval_ptr_dtor(&ret);
	return 0;
}

int
work_init(pm_worker *w, void **state)
{
	module_bind(w);
	/* As php-cli: a closed socket is an error to handle, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (task.loaded)
		engine_after_fork();
	else {
		if (load(w) < 0)
			return -1;
		/* Without preload every worker loads: one of them says it. */
		if (pm_worker_slot(w) == 0)
			script_compare_config(w, task.params.script,
			    &task.code);
	}
	if (prepare_calls(w) < 0 || run_init(w) < 0)
		return -1;
	if (task.code.form == FORM_MANAGE)
		ZVAL_COPY(&task.args[0], &task.worker);
	else
		ZVAL_COPY(&task.args[0], &task.state);
	ZVAL_COPY(&task.args[1], task.code.form == FORM_MANAGE ?
	    &task.state : module_params());
	task.argc = 2;
	*state = &task;
	return 0;
}

/*
 * What the return value of pmhost's own work means, as in the C ABI:
 * false or a negative int fail the call, a positive int (pmhost\DONE)
 * ends the worker, anything else goes on.
 */
static int
work_result(const zval *ret)
{
	if (Z_TYPE_P(ret) == IS_FALSE)
		return -1;
	if (Z_TYPE_P(ret) == IS_LONG)
		return Z_LVAL_P(ret) < 0 ? -1 : Z_LVAL_P(ret) > 0 ? PM_DONE :
		    PM_CONTINUE;
	return PM_CONTINUE;
}

int
work(pm_worker *w, void *state)
{
	struct php_task *t = state;
	enum call_end end;
	zval ret;
	int rc;

	/* setStop() in init: no call at all. */
	if (module_take_done())
		return PM_DONE;
	end = call_invoke(w, &t->work, &ret, t->argc, t->args);
	switch (end) {
	case CALL_RETURNED:
		/* process_manage ignores what its closure returns. */
		rc = t->code.form == FORM_RETURN ? work_result(&ret) :
		    PM_CONTINUE;
		if (Z_REFCOUNTED(ret))
			zval_ptr_dtor(&ret);
		break;
	case CALL_THREW:
		rc = -1;
		break;
	default:
		end_process(w, end, &t->work);
	}
	return module_take_done() ? PM_DONE : rc;
}

void
work_fini(pm_worker *w, void *state)
{
	struct php_task *t = state;
	enum call_end end;
	zval ret;

	module_bind(w);
	if (Z_TYPE(t->fini.fn) != IS_UNDEF) {
		end = call_invoke(w, &t->fini, &ret, 2, t->args);
		if (end == CALL_EXITED || end == CALL_FATAL)
			end_process(w, end, &t->fini);
		zval_ptr_dtor(&ret);
	}
	/* Ours go first, so that PHP's end of request frees them all. */
	for (uint32_t i = 0; i < t->argc; i++)
		zval_ptr_dtor(&t->args[i]);
	t->argc = 0;
	zval_ptr_dtor(&t->state);
	zval_ptr_dtor(&t->worker);
	ZVAL_UNDEF(&t->state);
	ZVAL_UNDEF(&t->worker);
	callable_clear(&t->init);
	callable_clear(&t->work);
	callable_clear(&t->fini);
	script_code_clear(&t->code);
	engine_end_request();
}
