/*
 * params.c - the PHP plugin's own keys in the task's params: "script"
 * (required; relative to the config file's directory) and "ini" (extra
 * php.ini settings, applied after php.ini).  Read before the engine
 * starts, since ini settings must be known by then, hence jansson rather
 * than PHP's own JSON decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "params.h"

/* Is name a plausible php.ini directive name? */
static int
ini_name_ok(const char *name)
{
	if (*name == '\0')
		return 0;
	return name[strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")] == '\0';
}

/*
 * Appends `name="value"` to the ini text.  Values are quoted so that ini
 * syntax in them stays literal; a quote or a line break could not be.
 */
static int
ini_append(char **text, size_t *len, const char *name, json_t *v,
    char *err, size_t errlen)
{
	char num[64];
	const char *val;
	size_t need;
	char *p;

	if (json_is_string(v))
		val = json_string_value(v);
	else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		val = num;
	} else if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		val = num;
	} else if (json_is_boolean(v))
		val = json_is_true(v) ? "1" : "0";
	else {
		snprintf(err, errlen, "params.ini.%s: must be a string, a "
		    "number or a boolean", name);
		return -1;
	}
	if (strpbrk(val, "\"\r\n") != NULL ||
	    (json_is_string(v) && strlen(val) != json_string_length(v))) {
		snprintf(err, errlen, "params.ini.%s: a value may not hold a "
		    "double quote, a line break or a NUL", name);
		return -1;
	}
	need = strlen(name) + strlen(val) + 5;
	if ((p = realloc(*text, *len + need)) == NULL) {
		snprintf(err, errlen, "params.ini: out of memory");
		return -1;
	}
	*text = p;
	*len += (size_t)snprintf(p + *len, need, "%s=\"%s\"\n", name, val);
	return 0;
}

/* Reads params.ini into p->ini. */
static int
read_ini(json_t *ini, struct php_params *p, char *err, size_t errlen)
{
	const char *name;
	json_t *v;
	size_t len = 0;

	if (ini == NULL)
		return 0;
	if (!json_is_object(ini)) {
		snprintf(err, errlen, "params.ini: must be an object of "
		    "php.ini settings, e.g. {\"memory_limit\": \"256M\"}");
		return -1;
	}
	json_object_foreach(ini, name, v) {
		if (!ini_name_ok(name)) {
			snprintf(err, errlen, "params.ini: \"%s\" is not a "
			    "php.ini directive name", name);
			return -1;
		}
		if (ini_append(&p->ini, &len, name, v, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* Resolves the script's path against the config file's directory. */
static int
read_script(const pm_worker *w, json_t *script, struct php_params *p,
    char *err, size_t errlen)
{
	const char *s, *dir;
	int n;

	if (script == NULL) {
		snprintf(err, errlen, "params.script: required (the PHP file "
		    "to run, relative to the config file)");
		return -1;
	}
	if (!json_is_string(script) || json_string_length(script) == 0 ||
	    strlen(json_string_value(script)) != json_string_length(script)) {
		snprintf(err, errlen, "params.script: must be a non-empty "
		    "path");
		return -1;
	}
	s = json_string_value(script);
	dir = pm_worker_config_dir(w);
	if (s[0] == '/' || dir == NULL)
		n = snprintf(p->script, sizeof(p->script), "%s", s);
	else
		n = snprintf(p->script, sizeof(p->script), "%s/%s", dir, s);
	if (n < 0 || (size_t)n >= sizeof(p->script)) {
		snprintf(err, errlen, "params.script: path too long");
		return -1;
	}
	return 0;
}

int
params_read(const pm_worker *w, struct php_params *p, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	root = json_loads(pm_worker_params(w), JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		snprintf(err, errlen, "params: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "params: must be an object with at least "
		    "\"script\"");
		goto done;
	}
	if (read_script(w, json_object_get(root, "script"), p, err,
	    errlen) < 0 || read_ini(json_object_get(root, "ini"), p, err,
	    errlen) < 0)
		goto done;
	rc = 0;
done:
	json_decref(root);
	if (rc < 0)
		params_free(p);
	return rc;
}

void
params_free(struct php_params *p)
{
	free(p->ini);
	p->ini = NULL;
}
