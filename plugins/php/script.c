/*
 * script.c - the task script: compiles it for the load check, runs its
 * top level once per engine, and finds the task's code in what that left
 * behind, in one of two forms:
 *
 *   return ['init' => callable|null, 'work' => callable,
 *           'fini' => callable|null];                    pmhost's own
 *   (new Manage($config))->setWorkInit(..)->setWork(..)->start();
 *                                                       process_manage's
 *
 * The JSON config governs either way; a Manage's $config is only compared
 * with it, so that a migrated script's stale settings are pointed out.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <php.h>
#include <zend_exceptions.h>

#include "call.h"
#include "module.h"
#include "script.h"

/* process_manage's keys that only the host's config decides, unseen here. */
static const char *const unseen_keys[] = {
	"checkWorkerInterval", "maxWorkerNum", "executeTimes",
	"executeUSleep", "limitSeconds"
};

/* The file name alone, for messages about the script. */
static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

/* Can the script be read at all?  Says why not, naming the path. */
static int
check_readable(pm_worker *w, const char *path)
{
	if (access(path, R_OK) == 0)
		return 0;
	pm_log(w, PM_LOG_ERROR, "php: params.script: %s: %s", path,
	    strerror(errno));
	return -1;
}

/* Logs and clears a pending exception met while compiling or loading. */
static void
report_load_exception(pm_worker *w, const char *path)
{
	zend_object *ex = EG(exception);
	zend_class_entry *base = zend_get_exception_base(ex);
	zval rv1, rv2, rv3, *msg, *file, *line;
	char what[2048];

	if (ex->ce == zend_ce_parse_error || ex->ce == zend_ce_compile_error) {
		/* "FILE:LINE: syntax error, ..." as compilers say it. */
		msg = zend_read_property_ex(base, ex,
		    ZSTR_KNOWN(ZEND_STR_MESSAGE), 1, &rv1);
		file = zend_read_property_ex(base, ex,
		    ZSTR_KNOWN(ZEND_STR_FILE), 1, &rv2);
		line = zend_read_property_ex(base, ex,
		    ZSTR_KNOWN(ZEND_STR_LINE), 1, &rv3);
		pm_log(w, PM_LOG_ERROR, "php: %s:" ZEND_LONG_FMT ": %s",
		    Z_TYPE_P(file) == IS_STRING ? Z_STRVAL_P(file) : path,
		    Z_TYPE_P(line) == IS_LONG ? Z_LVAL_P(line) : 0,
		    Z_TYPE_P(msg) == IS_STRING ? Z_STRVAL_P(msg) : "");
	} else {
		call_describe(ex, what, sizeof(what));
		pm_log(w, PM_LOG_ERROR, "php: %s: uncaught %s while loading "
		    "the script", base_name(path), what);
	}
	zend_clear_exception();
}

int
script_lint(pm_worker *w, const char *path)
{
	zend_op_array *volatile ops = NULL;
	volatile int fatal = 0;
	zend_file_handle fh;

	if (check_readable(w, path) < 0)
		return -1;
	zend_stream_init_filename(&fh, path);
	zend_try {
		ops = zend_compile_file(&fh, ZEND_REQUIRE);
	} zend_catch {
		/* A compile-time fatal error; PHP has logged it. */
		fatal = 1;
	/* cppcheck-suppress redundantAssignment ; zend_try is a setjmp() */
	} zend_end_try();
	zend_destroy_file_handle(&fh);
	if (ops != NULL) {
		destroy_op_array(ops);
		efree_size(ops, sizeof(*ops));
	}
	if (EG(exception) != NULL) {
		report_load_exception(w, path);
		return -1;
	}
	if (fatal && PG(last_error_message) != NULL) {
		/* Compile-time errors that are not ParseErrors. */
		pm_log(w, PM_LOG_ERROR, "php: %s:%d: %s",
		    PG(last_error_file) != NULL ?
		    ZSTR_VAL(PG(last_error_file)) : path,
		    PG(last_error_lineno), ZSTR_VAL(PG(last_error_message)));
		return -1;
	}
	if (fatal || ops == NULL) {
		pm_log(w, PM_LOG_ERROR, "php: %s does not compile", path);
		return -1;
	}
	return 0;
}

/* Runs the script's top level in the global scope; its return value. */
static int
run_top_level(pm_worker *w, const char *path, zval *ret)
{
	zend_op_array *volatile ops = NULL;
	volatile int fatal = 0;
	zend_file_handle fh;

	ZVAL_UNDEF(ret);
	if (check_readable(w, path) < 0)
		return -1;
	zend_stream_init_filename(&fh, path);
	zend_try {
		ops = zend_compile_file(&fh, ZEND_REQUIRE);
		if (ops != NULL) {
			/* require_once of the script itself is a no-op. */
			if (fh.opened_path != NULL)
				zend_hash_add_empty_element(
				    &EG(included_files), fh.opened_path);
			zend_execute(ops, ret);
		}
	} zend_catch {
		fatal = 1;
	/* cppcheck-suppress redundantAssignment ; zend_try is a setjmp() */
	} zend_end_try();
	zend_destroy_file_handle(&fh);
	if (ops != NULL) {
		zend_destroy_static_vars(ops);
		destroy_op_array(ops);
		efree_size(ops, sizeof(*ops));
	}
	if (fatal) {
		pm_log(w, PM_LOG_ERROR, "php: %s: fatal error while loading "
		    "the script", base_name(path));
		return -1;
	}
	if (EG(exception) != NULL) {
		zval_ptr_dtor(ret);
		ZVAL_UNDEF(ret);
		if (zend_is_unwind_exit(EG(exception)) ||
		    zend_is_graceful_exit(EG(exception))) {
			zend_clear_exception();
			pm_log(w, PM_LOG_ERROR, "php: %s: exit() while loading "
			    "the script (status %d): it must return its "
			    "closures or start a Manage, and return",
			    base_name(path), EG(exit_status));
			return -1;
		}
		report_load_exception(w, path);
		return -1;
	}
	if (ops == NULL) {
		pm_log(w, PM_LOG_ERROR, "php: %s does not compile", path);
		return -1;
	}
	return 0;
}

/* Takes init/work/fini from the array the script returned. */
static int
from_return(pm_worker *w, const char *path, HashTable *ht,
    struct script_code *code)
{
	zend_string *key;
	zval *v;

	ZEND_HASH_FOREACH_STR_KEY_VAL(ht, key, v) {
		zval *slot;

		if (key == NULL) {
			pm_log(w, PM_LOG_ERROR, "php: %s returned an array "
			    "with a numeric key: expected 'init', 'work', "
			    "'fini'", base_name(path));
			return -1;
		}
		if (zend_string_equals_literal(key, "init"))
			slot = &code->init;
		else if (zend_string_equals_literal(key, "work"))
			slot = &code->work;
		else if (zend_string_equals_literal(key, "fini"))
			slot = &code->fini;
		else {
			pm_log(w, PM_LOG_ERROR, "php: %s returned an unknown "
			    "key '%s': expected 'init', 'work', 'fini'",
			    base_name(path), ZSTR_VAL(key));
			return -1;
		}
		ZVAL_DEREF(v);
		if (Z_TYPE_P(v) == IS_NULL && slot != &code->work)
			continue;
		if (!zend_is_callable(v, 0, NULL)) {
			pm_log(w, PM_LOG_ERROR, "php: %s: '%s' must be "
			    "callable%s", base_name(path), ZSTR_VAL(key),
			    slot != &code->work ? " or null" : "");
			return -1;
		}
		ZVAL_COPY(slot, v);
	} ZEND_HASH_FOREACH_END();
	code->form = FORM_RETURN;
	return 0;
}

/* The baseTitle of a registration's $config, or NULL if it sets none. */
static const char *
config_base_title(zval *entry)
{
	zval *config = zend_hash_index_find(Z_ARRVAL_P(entry), 0), *bt;

	if (config == NULL || Z_TYPE_P(config) != IS_ARRAY)
		return NULL;
	bt = zend_hash_str_find_deref(Z_ARRVAL_P(config), "baseTitle",
	    sizeof("baseTitle") - 1);
	return bt != NULL && Z_TYPE_P(bt) == IS_STRING ? Z_STRVAL_P(bt) : NULL;
}

/* This process's baseTitle: the last part of "prefix:Role:base". */
static const char *
task_base_title(pm_worker *w)
{
	const char *t = pm_worker_title(w), *s = strrchr(t, ':');

	return s != NULL ? s + 1 : t;
}

/*
 * Picks the Manage that the script started: the only one, or the one
 * whose baseTitle is this task's (a ManageMultiple script serves each of
 * a config's "tasks" that names it).
 */
static int
from_manage(pm_worker *w, const char *path, HashTable *regs,
    struct script_code *code)
{
	const char *want = task_base_title(w), *bt;
	zval *entry, *chosen = NULL, *v;
	char names[512] = "";
	size_t len = 0;

	ZEND_HASH_FOREACH_VAL(regs, entry) {
		bt = config_base_title(entry);
		if (bt != NULL && strcmp(bt, want) == 0) {
			if (chosen != NULL) {
				pm_log(w, PM_LOG_ERROR, "php: %s starts two "
				    "Manages with baseTitle '%s'",
				    base_name(path), want);
				return -1;
			}
			chosen = entry;
		}
		len += (size_t)snprintf(names + len, len < sizeof(names) ?
		    sizeof(names) - len : 0, "%s%s", len ? ", " : "",
		    bt != NULL ? bt : "process");
		if (len >= sizeof(names))
			len = sizeof(names) - 1;
	} ZEND_HASH_FOREACH_END();
	if (chosen == NULL && zend_hash_num_elements(regs) == 1)
		chosen = zend_hash_index_find(regs, 0);
	if (chosen == NULL) {
		pm_log(w, PM_LOG_ERROR, "php: %s starts %u Manages (%s) and "
		    "none has this task's baseTitle '%s'", base_name(path),
		    zend_hash_num_elements(regs), names, want);
		return -1;
	}
	v = zend_hash_index_find(Z_ARRVAL_P(chosen), 2);
	if (v == NULL || Z_TYPE_P(v) != IS_OBJECT) {
		pm_log(w, PM_LOG_ERROR, "php: %s: Manage::start() without "
		    "setWork(): there is no work", base_name(path));
		return -1;
	}
	ZVAL_COPY(&code->work, v);
	v = zend_hash_index_find(Z_ARRVAL_P(chosen), 1);
	if (v != NULL && Z_TYPE_P(v) == IS_OBJECT)
		ZVAL_COPY(&code->init, v);
	ZVAL_COPY(&code->config, zend_hash_index_find(Z_ARRVAL_P(chosen), 0));
	code->form = FORM_MANAGE;
	return 0;
}

int
script_load(pm_worker *w, const char *path, struct script_code *code)
{
	HashTable *regs;
	zval ret;
	int rc = -1;

	memset(code, 0, sizeof(*code));
	ZVAL_UNDEF(&code->init);
	ZVAL_UNDEF(&code->work);
	ZVAL_UNDEF(&code->fini);
	ZVAL_UNDEF(&code->config);
	if (run_top_level(w, path, &ret) < 0)
		return -1;
	regs = module_registrations();
	if (Z_TYPE(ret) == IS_ARRAY && zend_hash_str_exists(Z_ARRVAL(ret),
	    "work", sizeof("work") - 1))
		rc = from_return(w, path, Z_ARRVAL(ret), code);
	else if (regs != NULL && zend_hash_num_elements(regs) > 0)
		rc = from_manage(w, path, regs, code);
	else if (Z_TYPE(ret) == IS_ARRAY)
		pm_log(w, PM_LOG_ERROR, "php: %s returned an array without "
		    "'work'", base_name(path));
	else
		pm_log(w, PM_LOG_ERROR, "php: %s neither returned ['work' => "
		    "callable, ...] nor started a ProcessManage\\Process\\"
		    "Manage", base_name(path));
	zval_ptr_dtor(&ret);
	if (rc < 0)
		script_code_clear(code);
	return rc;
}

void
script_code_clear(struct script_code *code)
{
	zval_ptr_dtor(&code->init);
	zval_ptr_dtor(&code->work);
	zval_ptr_dtor(&code->fini);
	zval_ptr_dtor(&code->config);
	ZVAL_UNDEF(&code->init);
	ZVAL_UNDEF(&code->work);
	ZVAL_UNDEF(&code->fini);
	ZVAL_UNDEF(&code->config);
}

/* Appends "key ('theirs' there, 'ours' here)" to a list. */
static void
note_difference(char *buf, size_t size, size_t *len, const char *key,
    zval *theirs, const char *ours)
{
	zend_string *s = zval_get_string(theirs);

	*len += (size_t)snprintf(buf + *len, *len < size ? size - *len : 0,
	    "%s%s ('%.60s' in the script, '%s' in the config)",
	    *len ? ", " : "", key, ZSTR_VAL(s), ours);
	if (*len >= size)
		*len = size - 1;
	zend_string_release(s);
}

void
script_compare_config(pm_worker *w, const char *path,
    const struct script_code *code)
{
	const char *title = pm_worker_title(w), *last, *mid;
	char prefix[256], diff[1024] = "", unseen[256] = "";
	size_t dlen = 0, ulen = 0, plen;
	HashTable *cfg;
	zval *v;

	if (code->form != FORM_MANAGE || Z_TYPE(code->config) != IS_ARRAY)
		return;
	cfg = Z_ARRVAL(code->config);
	/* "prefix:Role:base": the prefix is all before the role. */
	last = strrchr(title, ':');
	mid = last;
	while (mid != NULL && mid > title && mid[-1] != ':')
		mid--;
	plen = mid != NULL && mid > title ? (size_t)(mid - title - 1) : 0;
	if (plen >= sizeof(prefix))
		plen = sizeof(prefix) - 1;
	memcpy(prefix, title, plen);
	prefix[plen] = '\0';

	v = zend_hash_str_find_deref(cfg, "titlePrefix",
	    sizeof("titlePrefix") - 1);
	if (v != NULL && Z_TYPE_P(v) != IS_NULL &&
	    !(Z_TYPE_P(v) == IS_STRING && strcmp(Z_STRVAL_P(v), prefix) == 0))
		note_difference(diff, sizeof(diff), &dlen, "titlePrefix", v,
		    prefix);
	v = zend_hash_str_find_deref(cfg, "baseTitle",
	    sizeof("baseTitle") - 1);
	if (v != NULL && Z_TYPE_P(v) != IS_NULL && !(Z_TYPE_P(v) == IS_STRING &&
	    strcmp(Z_STRVAL_P(v), task_base_title(w)) == 0))
		note_difference(diff, sizeof(diff), &dlen, "baseTitle", v,
		    task_base_title(w));
	for (size_t i = 0; i < sizeof(unseen_keys) / sizeof(unseen_keys[0]);
	    i++) {
		if (!zend_hash_str_exists(cfg, unseen_keys[i],
		    strlen(unseen_keys[i])))
			continue;
		ulen += (size_t)snprintf(unseen + ulen, ulen < sizeof(unseen) ?
		    sizeof(unseen) - ulen : 0, "%s%s", ulen ? ", " : "",
		    unseen_keys[i]);
		if (ulen >= sizeof(unseen))
			ulen = sizeof(unseen) - 1;
	}
	if (dlen > 0)
		pm_log(w, PM_LOG_WARNING, "php: %s: $config differs from the "
		    "JSON config in %s; the JSON config governs",
		    base_name(path), diff);
	if (ulen > 0)
		pm_log(w, PM_LOG_INFO, "php: %s: $config's %s are not "
		    "compared (a plugin does not see them); the JSON "
		    "config's values govern", base_name(path), unseen);
}
