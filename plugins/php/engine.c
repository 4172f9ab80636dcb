/*
 * engine.c - starts PHP's engine in this process, in the embed SAPI's
 * place: our own SAPI callbacks (output to stdout unbuffered, PHP's error
 * lines to the task's log), our ini defaults, the pmhost extension, and
 * process_manage's classes.  It also redoes what a process forked from a
 * running engine needs for itself.  The engine is process-wide, hence
 * the file-level state.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <php.h>
#include <SAPI.h>
#include <php_main.h>
#include <php_variables.h>
#include <zend_exceptions.h>
#include <ext/random/php_random.h>
#include <ext/standard/php_filestat.h>

#include "compat.h"
#include "engine.h"
#include "module.h"

/*
 * Our defaults, before the task's params.ini.  Errors go to the log, not
 * to the script's output; no time limit (a worker's life is the host's
 * to limit); output is written as it is made.
 */
static const char ini_defaults[] =
	"display_errors=0\n"
	"log_errors=1\n"
	"html_errors=0\n"
	"implicit_flush=1\n"
	"output_buffering=0\n"
	"max_execution_time=0\n"
	"max_input_time=-1\n"
	"register_argc_argv=1\n";

static int	 started;
static char	*saved_scan_dir;	/* PHP_INI_SCAN_DIR as we found it */
static int	 scan_dir_set;		/* ... if set at all */
static char	*script_path;		/* $argv[0], $_SERVER[SCRIPT_*] */
static char	*script_argv[2];
static char	*ini_text;		/* what the SAPI hands PHP; kept */

/* echo and friends: straight to stdout, whole, nothing kept back. */
static size_t
pm_sapi_ub_write(const char *str, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(STDOUT_FILENO, str + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* stdout is gone: so is the rest */
		done += (size_t)n;
	}
	return len;
}

static void
pm_sapi_flush(void *server_context)
{
	(void)server_context;
}

static void
pm_sapi_send_header(sapi_header_struct *h, void *server_context)
{
	(void)h;
	(void)server_context;
}

static char *
pm_sapi_read_cookies(void)
{
	return NULL;
}

/* PHP's error lines ("PHP Warning:  ... on line 3") into the task's log. */
static void
pm_sapi_log_message(const char *msg, int syslog_type)
{
	module_log_php(msg, syslog_type);
}

/* $_SERVER as php-cli fills it: the environment and the script's name. */
static void
pm_sapi_register_variables(zval *vars)
{
	static const char *const names[] = {
		"PHP_SELF", "SCRIPT_NAME", "SCRIPT_FILENAME", "PATH_TRANSLATED"
	};

	php_import_environment_variables(vars);
	if (script_path == NULL)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		php_register_variable((char *)names[i], script_path, vars);
	php_register_variable("DOCUMENT_ROOT", "", vars);
}

static int
pm_sapi_startup(sapi_module_struct *sm)
{
	return php_module_startup(sm, &pmhost_module_entry);
}

static sapi_module_struct pm_sapi = {
	.name = "embed",
	.pretty_name = "PHP Embedded Library (pmhost)",
	.startup = pm_sapi_startup,
	.shutdown = php_module_shutdown_wrapper,
	.ub_write = pm_sapi_ub_write,
	.flush = pm_sapi_flush,
	.sapi_error = php_error,
	.send_header = pm_sapi_send_header,
	.read_cookies = pm_sapi_read_cookies,
	.register_server_variables = pm_sapi_register_variables,
	.log_message = pm_sapi_log_message,
};

/*
 * The host loads plugins with RTLD_LOCAL, so libphp came in local to us;
 * PHP's extensions (sqlite3.so, pdo.so, ...) expect its symbols in the
 * global scope.  Promote the already loaded library to global.
 */
static int
promote_libphp(char *err, size_t errlen)
{
	Dl_info info;

	if (dladdr((void *)php_module_startup, &info) == 0 ||
	    info.dli_fname == NULL) {
		snprintf(err, errlen, "cannot find libphp's path (dladdr)");
		return -1;
	}
	/* cppcheck-suppress leakReturnValNotUsed ; kept: libphp stays */
	if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL) ==
	    NULL) {
		snprintf(err, errlen, "cannot make %s global: %s",
		    info.dli_fname, dlerror());
		return -1;
	}
	return 0;
}

/*
 * Our defaults, then the task's settings: the later line wins.  The load
 * check reports compile errors itself, one line each, so PHP need not.
 */
static int
build_ini(const char *extra, int lint, char *err, size_t errlen)
{
	static const char quiet[] = "log_errors=0\n";
	size_t a = sizeof(ini_defaults) - 1, b = extra ? strlen(extra) : 0;
	size_t c = lint ? sizeof(quiet) - 1 : 0;

	/* PHP's ini parser wants two terminating NULs. */
	if ((ini_text = malloc(a + b + c + 2)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(ini_text, ini_defaults, a);
	if (b > 0)
		memcpy(ini_text + a, extra, b);
	if (c > 0)
		memcpy(ini_text + a + b, quiet, c);
	ini_text[a + b + c] = ini_text[a + b + c + 1] = '\0';
	return 0;
}

/*
 * process_manage's classes, before any script: a composer autoloader the
 * script loads later then never brings in the original's.
 */
static int
define_compat(char *err, size_t errlen)
{
	zend_string *src;
	zend_op_array *ops;
	int rc = -1;

	src = zend_string_init(compat_php, sizeof(compat_php) - 1, 0);
	ops = zend_compile_string(src, "pmhost/process_manage.php",
	    ZEND_COMPILE_POSITION_AT_OPEN_TAG);
	zend_string_release(src);
	if (ops == NULL)
		goto out;
	zend_execute(ops, NULL);
	zend_destroy_static_vars(ops);
	destroy_op_array(ops);
	efree_size(ops, sizeof(*ops));
	rc = EG(exception) == NULL ? 0 : -1;
out:
	if (rc < 0) {
		snprintf(err, errlen, "process_manage's classes do not load");
		zend_clear_exception();
	}
	return rc;
}

int
engine_start(enum engine_mode mode, const char *script, const char *ini_extra,
    char *err, size_t errlen)
{
	volatile int rc = -1;

	if (started) {
		snprintf(err, errlen, "the PHP engine is already running");
		return -1;
	}
	if (promote_libphp(err, errlen) < 0 ||
	    build_ini(ini_extra, mode == ENGINE_LINT, err, errlen) < 0)
		return -1;
	if ((script_path = strdup(script)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/*
	 * A syntax check needs no extension, and loading them is most of the
	 * engine's start.  A sanitizer build cannot load them at all: the
	 * ASan runtime aborts any dlopen() with RTLD_DEEPBIND, which libphp
	 * uses for every extension.
	 */
	if (getenv("PHP_INI_SCAN_DIR") != NULL) {
		scan_dir_set = 1;
		saved_scan_dir = strdup(getenv("PHP_INI_SCAN_DIR"));
	}
#if defined(__SANITIZE_ADDRESS__)
	setenv("PHP_INI_SCAN_DIR", "", 1);
#else
	if (mode == ENGINE_LINT)
		setenv("PHP_INI_SCAN_DIR", "", 1);
#endif
	zend_signal_startup();
	sapi_startup(&pm_sapi);
	pm_sapi.ini_entries = ini_text;
	if (pm_sapi.startup(&pm_sapi) == FAILURE) {
		snprintf(err, errlen, "PHP's engine did not start (see the "
		    "lines above)");
		return -1;
	}
	started = 1;
	SG(options) |= SAPI_OPTION_NO_CHDIR;
	script_argv[0] = script_path;
	SG(request_info).argc = 1;
	SG(request_info).argv = script_argv;
	if (php_request_startup() == FAILURE) {
		snprintf(err, errlen, "PHP's request did not start");
		return -1;
	}
	SG(headers_sent) = 1;
	SG(request_info).no_headers = 1;
	if (mode == ENGINE_LINT)
		return 0;
	zend_try {
		rc = define_compat(err, errlen);
	} zend_catch {
		snprintf(err, errlen, "process_manage's classes do not load");
	} zend_end_try();
	return rc;
}

void
engine_after_fork(void)
{
	/*
	 * PHP seeds its generators lazily, once: every worker forked after
	 * a seeding would draw the same mt_rand()/rand()/shuffle() and
	 * lcg_value() sequences.  Let each seed itself on first use.
	 */
	RANDOM_G(mt19937_seeded) = false;
	RANDOM_G(combined_lcg_seeded) = false;
	/* What the parent learnt of the files may be stale by now. */
	php_clear_stat_cache(true, NULL, 0);
	/* Interval timers are not inherited: re-arm set_time_limit()'s. */
	if (EG(timeout_seconds) > 0)
		zend_set_timeout(EG(timeout_seconds), 0);
}

void
engine_end_request(void)
{
	if (!started)
		return;
	php_request_shutdown(NULL);
}

void
engine_stop(void)
{
	if (!started)
		return;
	php_request_shutdown(NULL);
	php_module_shutdown();
	sapi_shutdown();
	started = 0;
	pm_sapi.ini_entries = NULL;
	free(ini_text);
	ini_text = NULL;
	free(script_path);
	script_path = NULL;
	if (scan_dir_set && saved_scan_dir != NULL)
		setenv("PHP_INI_SCAN_DIR", saved_scan_dir, 1);
	else if (!scan_dir_set)
		unsetenv("PHP_INI_SCAN_DIR");
	free(saved_scan_dir);
	saved_scan_dir = NULL;
	scan_dir_set = 0;
}
