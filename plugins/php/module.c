/*
 * module.c - the "pmhost" PHP extension that the plugin hands to the
 * engine at start: the pmhost\ functions and constants of a task script,
 * backed by the host's handle of this process.  The engine is one per
 * process and so is the handle, hence the file-level state; the PHP
 * values it keeps belong to the request and are released at its end.
 */
#include <syslog.h>
#include <unistd.h>

#include <php.h>
#include <zend_API.h>
#include <zend_closures.h>

#include "module.h"

static pm_worker	*worker;	/* a worker's, or the preload's */
static zval		 params;	/* the task's params, decoded */
static zval		 registrations;	/* Manage::start() calls */
bool			 module_done_asked;	/* see module.h */

void
module_bind(pm_worker *w)
{
	worker = w;
}

pm_worker *
module_worker(void)
{
	return worker;
}

void
module_set_params(zval *p)
{
	zval_ptr_dtor(&params);
	ZVAL_COPY_VALUE(&params, p);
}

zval *
module_params(void)
{
	return &params;
}

HashTable *
module_registrations(void)
{
	return Z_TYPE(registrations) == IS_ARRAY ? Z_ARRVAL(registrations) :
	    NULL;
}

/* One line to the task's log; stderr if no handle is bound (cannot be). */
static void
log_line(int level, const char *msg)
{
	if (worker != NULL)
		pm_log_str(worker, level, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

void
module_log_php(const char *msg, int syslog_type)
{
	int level;

	if (syslog_type <= LOG_ERR)
		level = PM_LOG_ERROR;
	else if (syslog_type == LOG_WARNING)
		level = PM_LOG_WARNING;
	else if (syslog_type == LOG_NOTICE)
		level = PM_LOG_NOTICE;
	else if (syslog_type == LOG_INFO)
		level = PM_LOG_INFO;
	else
		level = PM_LOG_DEBUG;
	log_line(level, msg);
}

/* A level given as pmhost\LOG_* or by name (process_manage's, "fatal"
 * included); -1 if it is neither. */
static int
level_of(zval *v)
{
	static const struct {
		const char	*name;
		int		 level;
	} names[] = {
		{ "debug", PM_LOG_DEBUG }, { "info", PM_LOG_INFO },
		{ "notice", PM_LOG_NOTICE }, { "warning", PM_LOG_WARNING },
		{ "error", PM_LOG_ERROR }, { "fatal", PM_LOG_ERROR },
	};

	if (Z_TYPE_P(v) == IS_LONG) {
		if (Z_LVAL_P(v) < PM_LOG_DEBUG || Z_LVAL_P(v) > PM_LOG_ERROR)
			return -1;
		return (int)Z_LVAL_P(v);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (zend_binary_strcasecmp(Z_STRVAL_P(v), Z_STRLEN_P(v),
		    names[i].name, strlen(names[i].name)) == 0)
			return names[i].level;
	return -1;
}

/* pmhost\log(int|string $level, string $message): void */
static PHP_FUNCTION(pm_php_log)
{
	zval *lv;
	zend_string *msg;
	int level;

	ZEND_PARSE_PARAMETERS_START(2, 2)
		Z_PARAM_ZVAL(lv)
		Z_PARAM_STR(msg)
	ZEND_PARSE_PARAMETERS_END();
	if (Z_TYPE_P(lv) != IS_LONG && Z_TYPE_P(lv) != IS_STRING) {
		zend_argument_type_error(1, "must be of type int|string, %s "
		    "given", zend_zval_type_name(lv));
		RETURN_THROWS();
	}
	if ((level = level_of(lv)) < 0) {
		zend_argument_value_error(1, "must be a pmhost\\LOG_* "
		    "constant or one of debug, info, notice, warning, error");
		RETURN_THROWS();
	}
	log_line(level, ZSTR_VAL(msg));
}

/* pmhost\params(): array */
static PHP_FUNCTION(pm_php_params)
{
	ZEND_PARSE_PARAMETERS_NONE();
	if (Z_TYPE(params) == IS_ARRAY)
		RETURN_COPY(&params);
	RETURN_EMPTY_ARRAY();
}

/* pmhost\slot(): int (-1 outside a worker) */
static PHP_FUNCTION(pm_php_slot)
{
	ZEND_PARSE_PARAMETERS_NONE();
	RETURN_LONG(worker != NULL ? pm_worker_slot(worker) : -1);
}

/* pmhost\title(): string */
static PHP_FUNCTION(pm_php_title)
{
	ZEND_PARSE_PARAMETERS_NONE();
	RETURN_STRING(worker != NULL ? pm_worker_title(worker) : "");
}

/* pmhost\calls(): int, the work calls this worker has completed */
static PHP_FUNCTION(pm_php_calls)
{
	ZEND_PARSE_PARAMETERS_NONE();
	RETURN_LONG(worker != NULL ? (zend_long)pm_worker_calls(worker) : 0);
}

/* pmhost\stopping(): bool, true once a stop was requested */
static PHP_FUNCTION(pm_php_stopping)
{
	ZEND_PARSE_PARAMETERS_NONE();
	RETURN_BOOL(worker != NULL && pm_worker_stopping(worker));
}

/* pmhost\done(): void, end this worker normally after the current call */
static PHP_FUNCTION(pm_php_done)
{
	ZEND_PARSE_PARAMETERS_NONE();
	module_done_asked = true;
}

/* pmhost\config_dir(): ?string, the directory of the JSON config */
static PHP_FUNCTION(pm_php_config_dir)
{
	const char *d = worker != NULL ? pm_worker_config_dir(worker) : NULL;

	ZEND_PARSE_PARAMETERS_NONE();
	if (d == NULL)
		RETURN_NULL();
	RETURN_STRING(d);
}

/*
 * pmhost\compat\register(array $config, ?Closure $init, ?Closure $work):
 * void.  What ProcessManage\Process\Manage::start() does under pmhost.
 */
static PHP_FUNCTION(pm_php_compat_register)
{
	zval *config, *init, *work_fn, entry;

	ZEND_PARSE_PARAMETERS_START(3, 3)
		Z_PARAM_ARRAY(config)
		Z_PARAM_OBJECT_OF_CLASS_OR_NULL(init, zend_ce_closure)
		Z_PARAM_OBJECT_OF_CLASS_OR_NULL(work_fn, zend_ce_closure)
	ZEND_PARSE_PARAMETERS_END();
	if (Z_TYPE(registrations) != IS_ARRAY)
		array_init(&registrations);
	array_init_size(&entry, 3);
	Z_TRY_ADDREF_P(config);
	add_next_index_zval(&entry, config);
	if (init != NULL) {
		Z_ADDREF_P(init);
		add_next_index_zval(&entry, init);
	} else
		add_next_index_null(&entry);
	if (work_fn != NULL) {
		Z_ADDREF_P(work_fn);
		add_next_index_zval(&entry, work_fn);
	} else
		add_next_index_null(&entry);
	add_next_index_zval(&registrations, &entry);
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_log, 0, 2, IS_VOID, 0)
	ZEND_ARG_TYPE_MASK(0, level, MAY_BE_LONG | MAY_BE_STRING, NULL)
	ZEND_ARG_TYPE_INFO(0, message, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_params, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_long, 0, 0, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_string, 0, 0, IS_STRING, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_bool, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_void, 0, 0, IS_VOID, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_nstring, 0, 0, IS_STRING, 1)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_register, 0, 3, IS_VOID, 0)
	ZEND_ARG_TYPE_INFO(0, config, IS_ARRAY, 0)
	ZEND_ARG_OBJ_INFO(0, init, Closure, 1)
	ZEND_ARG_OBJ_INFO(0, work, Closure, 1)
ZEND_END_ARG_INFO()

static const zend_function_entry functions[] = {
	ZEND_NS_NAMED_FE("pmhost", log, ZEND_FN(pm_php_log), arginfo_log)
	ZEND_NS_NAMED_FE("pmhost", params, ZEND_FN(pm_php_params),
	    arginfo_params)
	ZEND_NS_NAMED_FE("pmhost", slot, ZEND_FN(pm_php_slot), arginfo_long)
	ZEND_NS_NAMED_FE("pmhost", title, ZEND_FN(pm_php_title),
	    arginfo_string)
	ZEND_NS_NAMED_FE("pmhost", calls, ZEND_FN(pm_php_calls), arginfo_long)
	ZEND_NS_NAMED_FE("pmhost", stopping, ZEND_FN(pm_php_stopping),
	    arginfo_bool)
	ZEND_NS_NAMED_FE("pmhost", done, ZEND_FN(pm_php_done), arginfo_void)
	ZEND_NS_NAMED_FE("pmhost", config_dir, ZEND_FN(pm_php_config_dir),
	    arginfo_nstring)
	ZEND_NS_NAMED_FE("pmhost\\compat", register,
	    ZEND_FN(pm_php_compat_register), arginfo_register)
	ZEND_FE_END
};

static PHP_MINIT_FUNCTION(pmhost)
{
	(void)type;
	REGISTER_NS_LONG_CONSTANT("pmhost", "CONTINUE", PM_CONTINUE,
	    CONST_CS | CONST_PERSISTENT);
	REGISTER_NS_LONG_CONSTANT("pmhost", "DONE", PM_DONE,
	    CONST_CS | CONST_PERSISTENT);
	REGISTER_NS_LONG_CONSTANT("pmhost", "LOG_DEBUG", PM_LOG_DEBUG,
	    CONST_CS | CONST_PERSISTENT);
	REGISTER_NS_LONG_CONSTANT("pmhost", "LOG_INFO", PM_LOG_INFO,
	    CONST_CS | CONST_PERSISTENT);
	REGISTER_NS_LONG_CONSTANT("pmhost", "LOG_NOTICE", PM_LOG_NOTICE,
	    CONST_CS | CONST_PERSISTENT);
	REGISTER_NS_LONG_CONSTANT("pmhost", "LOG_WARNING", PM_LOG_WARNING,
	    CONST_CS | CONST_PERSISTENT);
	REGISTER_NS_LONG_CONSTANT("pmhost", "LOG_ERROR", PM_LOG_ERROR,
	    CONST_CS | CONST_PERSISTENT);
	return SUCCESS;
}

/* The request's values go with the request. */
static PHP_RSHUTDOWN_FUNCTION(pmhost)
{
	(void)type;
	(void)module_number;
	zval_ptr_dtor(&params);
	ZVAL_UNDEF(&params);
	zval_ptr_dtor(&registrations);
	ZVAL_UNDEF(&registrations);
	return SUCCESS;
}

zend_module_entry pmhost_module_entry = {
	STANDARD_MODULE_HEADER,
	"pmhost",
	functions,
	PHP_MINIT(pmhost),
	NULL,
	NULL,
	PHP_RSHUTDOWN(pmhost),
	NULL,
	PMHOST_VERSION,
	STANDARD_MODULE_PROPERTIES
};
