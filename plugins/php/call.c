/*
 * call.c - calls a task script's callables from C.  Every call runs with
 * a frame below it that stands for "called from C": an uncaught
 * exception then comes back to us in EG(exception), as it does to an
 * internal function calling a callback, instead of turning into a fatal
 * error.  A fatal error comes back either by longjmp to the zend_try
 * around the call or, raised in PHP code, unwinding the way exit() does.
 *
 * The work closure is called once per work(), back to back when
 * executeUSleep is 0, so a plain user function or closure is entered
 * directly: push its frame, run it, pop it, which is what the VM does
 * for a call inside PHP code.  zend_call_function() serves the rest
 * (internal functions, by-reference parameters, __call trampolines,
 * observed code); it costs a third more per empty call.
 */
#include <stdio.h>
#include <string.h>

#include <php.h>
#include <zend_closures.h>
#include <zend_exceptions.h>
#include <zend_interfaces.h>
#include <zend_observer.h>

#include "call.h"

/* Zeroed: no function, so no PHP code is "calling". */
static zend_execute_data	outer_frame;

/* May c be entered directly with argc arguments? */
static bool
direct_ok(const zend_fcall_info_cache *fcc, uint32_t argc)
{
	const zend_function *fn = fcc->function_handler;

	if (fn->type != ZEND_USER_FUNCTION ||
	    (fn->common.fn_flags & (ZEND_ACC_CALL_VIA_TRAMPOLINE |
	    ZEND_ACC_DEPRECATED)) != 0 ||
	    zend_observer_fcall_op_array_extension != -1)
		return false;
	for (uint32_t i = 1; i <= argc; i++)
		if (ARG_SHOULD_BE_SENT_BY_REF(fn, i))
			return false;
	return true;
}

/* What every direct call's frame says of $this and the closure, as
 * zend_call_function() would work it out per call. */
static void
plan_frame(struct callable *c)
{
	zend_function *fn = c->fcc.function_handler;

	c->frame_info = ZEND_CALL_TOP_FUNCTION | ZEND_CALL_DYNAMIC;
	c->this_or_scope = c->fcc.called_scope;
	if (c->fcc.object != NULL && !(fn->common.fn_flags & ZEND_ACC_STATIC)) {
		c->this_or_scope = c->fcc.object;
		c->frame_info |= ZEND_CALL_HAS_THIS;
	}
	if (fn->common.fn_flags & ZEND_ACC_CLOSURE) {
		c->frame_info |= ZEND_CALL_CLOSURE;
		if (fn->common.fn_flags & ZEND_ACC_FAKE_CLOSURE)
			c->frame_info |= ZEND_CALL_FAKE_CLOSURE;
	}
}

int
callable_set(struct callable *c, zval *fn, uint32_t argc, const char *what,
    char *err, size_t errlen)
{
	char *why = NULL;

	memset(c, 0, sizeof(*c));
	ZVAL_UNDEF(&c->fn);
	c->what = what;
	if (!zend_is_callable_ex(fn, NULL, 0, NULL, &c->fcc, &why)) {
		snprintf(err, errlen, "'%s' is not callable%s%s", what,
		    why != NULL ? ": " : "", why != NULL ? why : "");
		if (why != NULL)
			efree(why);
		return -1;
	}
	if (why != NULL)
		efree(why);
	ZVAL_COPY(&c->fn, fn);
	if (c->fcc.function_handler->common.fn_flags &
	    ZEND_ACC_CALL_VIA_TRAMPOLINE) {
		/* A trampoline lives for one call: resolve at every call. */
		zend_release_fcall_info_cache(&c->fcc);
		memset(&c->fcc, 0, sizeof(c->fcc));
		return 0;
	}
	if ((c->direct = direct_ok(&c->fcc, argc)))
		plan_frame(c);
	return 0;
}

void
callable_clear(struct callable *c)
{
	zval_ptr_dtor(&c->fn);
	ZVAL_UNDEF(&c->fn);
	memset(&c->fcc, 0, sizeof(c->fcc));
	c->direct = false;
}

#if PHP_VERSION_ID >= 80200 && PHP_VERSION_ID < 80300
/*
 * zend_init_func_execute_data(), inline, for the case every direct call
 * after the first is: no extra arguments, a run-time cache already made.
 * The same steps as PHP 8.2's own (zend_execute.c), hence the version
 * guard; any other PHP calls the engine's function.
 */
static inline bool
init_frame(zend_execute_data *execute_data, zend_op_array *ops, zval *ret)
{
	uint32_t n = EX_NUM_ARGS();

	if (n > ops->num_args || RUN_TIME_CACHE(ops) == NULL)
		return false;
	EX(prev_execute_data) = EG(current_execute_data);
	EX(opline) = ops->opcodes;
	EX(call) = NULL;
	EX(return_value) = ret;
	/* The arguments are in place: without types to check, their RECVs
	 * have nothing to do. */
	if ((ops->fn_flags & ZEND_ACC_HAS_TYPE_HINTS) == 0)
		EX(opline) += n;
	for (uint32_t i = n; i < (uint32_t)ops->last_var; i++)
		ZVAL_UNDEF(EX_VAR_NUM(i));
	EX(run_time_cache) = RUN_TIME_CACHE(ops);
	EG(current_execute_data) = execute_data;
	return true;
}
#else
static inline bool
init_frame(zend_execute_data *execute_data, zend_op_array *ops, zval *ret)
{
	(void)execute_data;
	(void)ops;
	(void)ret;
	return false;
}
#endif

/* The VM's own call sequence, as zend_call_function() does it for a user
 * function, without its generality. */
static void
call_direct(struct callable *c, zval *ret, uint32_t argc, zval *argv)
{
	zend_function *fn = c->fcc.function_handler;
	zend_execute_data *call;

	/* The frame holds the closure; leaving the frame drops it. */
	if (c->frame_info & ZEND_CALL_CLOSURE)
		GC_ADDREF(ZEND_CLOSURE_OBJECT(fn));
	call = zend_vm_stack_push_call_frame(c->frame_info, fn, argc,
	    c->this_or_scope);
	switch (argc) {
	case 2:
		ZVAL_COPY(ZEND_CALL_ARG(call, 2), &argv[1]);
		ZEND_FALLTHROUGH;
	case 1:
		ZVAL_COPY(ZEND_CALL_ARG(call, 1), &argv[0]);
		ZEND_FALLTHROUGH;
	case 0:
		break;
	default:
		for (uint32_t i = 0; i < argc; i++)
			ZVAL_COPY(ZEND_CALL_ARG(call, i + 1), &argv[i]);
	}
	if (!init_frame(call, &fn->op_array, ret))
		zend_init_func_execute_data(call, &fn->op_array, ret);
	zend_execute_ex(call);
	zend_vm_stack_free_call_frame(call);
}

static void
call_general(struct callable *c, zval *ret, uint32_t argc, zval *argv)
{
	zend_fcall_info fci;

	memset(&fci, 0, sizeof(fci));
	fci.size = sizeof(fci);
	ZVAL_COPY_VALUE(&fci.function_name, &c->fn);
	fci.retval = ret;
	fci.params = argv;
	fci.param_count = argc;
	zend_call_function(&fci, c->fcc.function_handler != NULL ? &c->fcc :
	    NULL);
}

void
call_describe(zend_object *ex, char *buf, size_t len)
{
	zend_class_entry *base = zend_get_exception_base(ex);
	zval rv1, rv2, rv3, *msg, *file, *line;

	msg = zend_read_property_ex(base, ex, ZSTR_KNOWN(ZEND_STR_MESSAGE), 1,
	    &rv1);
	file = zend_read_property_ex(base, ex, ZSTR_KNOWN(ZEND_STR_FILE), 1,
	    &rv2);
	line = zend_read_property_ex(base, ex, ZSTR_KNOWN(ZEND_STR_LINE), 1,
	    &rv3);
	snprintf(buf, len, "%s: %s in %s:" ZEND_LONG_FMT,
	    ZSTR_VAL(ex->ce->name),
	    Z_TYPE_P(msg) == IS_STRING ? Z_STRVAL_P(msg) : "",
	    Z_TYPE_P(file) == IS_STRING ? Z_STRVAL_P(file) : "?",
	    Z_TYPE_P(line) == IS_LONG ? Z_LVAL_P(line) : 0);
}

/* Logs the pending exception (class, message, file:line; the trace at
 * debug level) and clears it. */
static void
report_exception(pm_worker *w, const struct callable *c)
{
	zend_object *ex = EG(exception);
	char line[2048];
	zval trace;

	GC_ADDREF(ex);
	zend_clear_exception();
	call_describe(ex, line, sizeof(line));
	pm_log(w, PM_LOG_ERROR, "%s: uncaught %s", c->what, line);
	ZVAL_UNDEF(&trace);
	zend_call_method_with_0_params(ex, ex->ce, NULL, "gettraceasstring",
	    &trace);
	if (Z_TYPE(trace) == IS_STRING)
		pm_log(w, PM_LOG_DEBUG, "%s: trace: %s", c->what,
		    Z_STRVAL(trace));
	zval_ptr_dtor(&trace);
	zend_clear_exception();
	OBJ_RELEASE(ex);
}

enum call_end
call_invoke(pm_worker *w, struct callable *c, zval *ret, uint32_t argc,
    zval *argv)
{
	zend_execute_data *volatile prev = EG(current_execute_data);
	volatile enum call_end end = CALL_RETURNED;

	ZVAL_UNDEF(ret);
	EG(current_execute_data) = &outer_frame;
	zend_try {
		if (c->direct)
			call_direct(c, ret, argc, argv);
		else
			call_general(c, ret, argc, argv);
	} zend_catch {
		end = CALL_FATAL;
	/* cppcheck-suppress redundantAssignment ; zend_try is a setjmp() */
	} zend_end_try();
	EG(current_execute_data) = prev;
	if (end == CALL_FATAL || EG(exception) == NULL)
		return end;
	zval_ptr_dtor(ret);
	ZVAL_UNDEF(ret);
	if (zend_is_unwind_exit(EG(exception)) ||
	    zend_is_graceful_exit(EG(exception))) {
		zend_clear_exception();
		/* A fatal error in PHP code unwinds as exit() does. */
		return call_fatal_error(NULL, 0) ? CALL_FATAL : CALL_EXITED;
	}
	report_exception(w, c);
	return CALL_THREW;
}

int
call_exit_status(void)
{
	return EG(exit_status);
}

int
call_exit_place(const struct callable *c, char *buf, size_t len)
{
	const zend_function *fn = c->fcc.function_handler;
	const zend_op *op = EG(opline_before_exception);

	if (fn == NULL || fn->type != ZEND_USER_FUNCTION || op == NULL ||
	    op < fn->op_array.opcodes ||
	    op >= fn->op_array.opcodes + fn->op_array.last)
		return 0;
	snprintf(buf, len, "%s:%u", ZSTR_VAL(fn->op_array.filename),
	    op->lineno);
	return 1;
}

int
call_fatal_error(char *buf, size_t len)
{
	const int fatal = E_ERROR | E_CORE_ERROR | E_COMPILE_ERROR |
	    E_USER_ERROR | E_RECOVERABLE_ERROR | E_PARSE;

	if (!(PG(last_error_type) & fatal) || PG(last_error_message) == NULL)
		return 0;
	if (buf != NULL)
		snprintf(buf, len, "%s in %s:%d",
		    ZSTR_VAL(PG(last_error_message)),
		    PG(last_error_file) != NULL ?
		    ZSTR_VAL(PG(last_error_file)) : "?",
		    PG(last_error_lineno));
	return 1;
}
