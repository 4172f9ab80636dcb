/*
 * params.c - the exec plugin's params: parsed with jansson and checked in
 * full, each problem named by its key (an unknown key with the closest
 * known one).  The rest of the plugin sees struct exec_params only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exec.h"

static const char *const known_keys[] = {
	"command", "mode", "protocol", "env", NULL
};

/* Appends one problem to err, "; "-separated. */
static PMHOST_PRINTF(3, 4) void
problem(char *err, size_t errlen, const char *fmt, ...)
{
	size_t used = strlen(err);
	va_list ap;

	if (used + 3 >= errlen)
		return;
	if (used > 0) {
		memcpy(err + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
}

/* Edit distance of two short keys, for the did-you-mean hint. */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[32];

	if (la >= 31 || lb >= 31)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The known key closest to an unknown one, or NULL if none is close. */
static const char *
closest_key(const char *key)
{
	const char *best = NULL;
	size_t best_d = 3;	/* further than two edits is no hint */

	for (int i = 0; known_keys[i] != NULL; i++) {
		size_t d = distance(key, known_keys[i]);

		if (d < best_d) {
			best_d = d;
			best = known_keys[i];
		}
	}
	return best;
}

/* A JSON string without NUL bytes, or NULL. */
static const char *
plain_string(const json_t *v)
{
	const char *s;

	if (!json_is_string(v))
		return NULL;
	s = json_string_value(v);
	return strlen(s) == json_string_length(v) ? s : NULL;
}

/*
 * GCC 12's analyzer forgets the strings stored at p->argv[i] from one
 * pass of the loop to the next, and reports them leaked: params_free()
 * frees them on every path.
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* loses argv[i] */
#endif
/* params.command: a non-empty array of strings, copied into p->argv. */
static void
parse_command(const json_t *v, struct exec_params *p, char *err,
    size_t errlen)
{
	size_t n = json_array_size(v);

	if (v == NULL) {
		problem(err, errlen, "params.command: required: the program "
		    "and its arguments, e.g. [\"/usr/bin/php\", \"job.php\"]");
		return;
	}
	if (!json_is_array(v) || n == 0) {
		problem(err, errlen, "params.command: must be a non-empty "
		    "array of strings (the program and its arguments)");
		return;
	}
	if ((p->argv = calloc(n + 1, sizeof(char *))) == NULL) {
		problem(err, errlen, "params.command: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *s = plain_string(json_array_get(v, i));

		if (s == NULL) {
			problem(err, errlen, "params.command[%zu]: must be a "
			    "string without NUL bytes", i);
			return;
		}
		if (i == 0 && s[0] == '\0') {
			problem(err, errlen, "params.command[0]: the program "
			    "must not be empty");
			return;
		}
		if ((p->argv[i] = strdup(s)) == NULL) {
			problem(err, errlen, "params.command: out of memory");
			return;
		}
	}
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

/* params.env: an object of strings, copied into p->env as NAME=VALUE. */
static void
parse_env(const json_t *v, struct exec_params *p, char *err, size_t errlen)
{
	const char *key;
	json_t *val;
	size_t i = 0;

	if (v == NULL)
		return;
	if (!json_is_object(v)) {
		problem(err, errlen, "params.env: must be an object of "
		    "strings, e.g. {\"APP_ENV\": \"prod\"}");
		return;
	}
	if ((p->env = calloc(json_object_size(v) + 1, sizeof(char *))) ==
	    NULL) {
		problem(err, errlen, "params.env: out of memory");
		return;
	}
	json_object_foreach((json_t *)v, key, val) {
		const char *s = plain_string(val);
		size_t need;

		if (key[0] == '\0' || strchr(key, '=') != NULL) {
			problem(err, errlen, "params.env: \"%s\": a variable "
			    "name must be non-empty and without '='", key);
			continue;
		}
		if (s == NULL) {
			problem(err, errlen, "params.env.%s: must be a string "
			    "without NUL bytes", key);
			continue;
		}
		need = strlen(key) + strlen(s) + 2;
		if ((p->env[i] = malloc(need)) == NULL) {
			problem(err, errlen, "params.env: out of memory");
			return;
		}
		snprintf(p->env[i++], need, "%s=%s", key, s);
	}
}

/* mode and protocol: one of a few words each. */
static void
parse_words(const json_t *obj, struct exec_params *p, char *err,
    size_t errlen)
{
	const json_t *mode = json_object_get(obj, "mode");
	const json_t *proto = json_object_get(obj, "protocol");
	const char *s;

	p->mode = MODE_CALL;
	p->protocol = PROTO_LINE;
	if (mode != NULL) {
		s = json_is_string(mode) ? json_string_value(mode) : "";
		if (strcmp(s, "call") == 0)
			p->mode = MODE_CALL;
		else if (strcmp(s, "coprocess") == 0)
			p->mode = MODE_COPROCESS;
		else
			problem(err, errlen, "params.mode: must be \"call\" "
			    "(run the command for each call) or \"coprocess\" "
			    "(start it once, one line per call)");
	}
	if (proto != NULL) {
		s = json_is_string(proto) ? json_string_value(proto) : "";
		if (strcmp(s, "line") == 0)
			p->protocol = PROTO_LINE;
		else if (strcmp(s, "json") == 0)
			p->protocol = PROTO_JSON;
		else
			problem(err, errlen, "params.protocol: must be "
			    "\"line\" or \"json\"");
		if (p->mode != MODE_COPROCESS)
			problem(err, errlen, "params.protocol: only applies "
			    "to \"mode\": \"coprocess\"");
	}
}

int
params_parse(const char *text, struct exec_params *p, char *err,
    size_t errlen)
{
	json_error_t jerr;
	const char *key;
	json_t *root, *val;

	memset(p, 0, sizeof(*p));
	err[0] = '\0';
	root = json_loads(text != NULL ? text : "null", JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, &jerr);
	if (root == NULL) {
		problem(err, errlen, "params: not JSON: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		problem(err, errlen, "params: must be an object with at least "
		    "\"command\", e.g. {\"command\": [\"/bin/echo\", "
		    "\"hello\"]}");
		json_decref(root);
		return -1;
	}
	json_object_foreach(root, key, val) {
		const char *near;
		int known = 0;

		for (int i = 0; known_keys[i] != NULL; i++)
			known |= strcmp(key, known_keys[i]) == 0;
		if (known)
			continue;
		if ((near = closest_key(key)) != NULL)
			problem(err, errlen, "params: unknown key \"%s\" (did "
			    "you mean \"%s\"?)", key, near);
		else
			problem(err, errlen, "params: unknown key \"%s\" "
			    "(known: command, mode, protocol, env)", key);
	}
	parse_command(json_object_get(root, "command"), p, err, errlen);
	parse_words(root, p, err, errlen);
	parse_env(json_object_get(root, "env"), p, err, errlen);
	json_decref(root);
	if (err[0] != '\0') {
		params_free(p);
		return -1;
	}
	return 0;
}

void
params_free(struct exec_params *p)
{
	for (size_t i = 0; p->argv != NULL && p->argv[i] != NULL; i++)
		free(p->argv[i]);
	for (size_t i = 0; p->env != NULL && p->env[i] != NULL; i++)
		free(p->env[i]);
	free(p->argv);
	free(p->env);
	p->argv = p->env = NULL;
}
