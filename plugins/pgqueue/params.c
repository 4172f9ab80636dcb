/*
 * params.c - reads and checks the task's params: every problem is logged
 * at error level naming its key (params.batch, params.handler.command[0]),
 * which is what `pmhost check` shows.  Nothing here connects anywhere.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "pgqueue.h"

#define BATCH_MAX		1000
#define ATTEMPTS_MAX		1000
#define DELAY_MAX_MS		(7 * 86400 * 1000)	/* a week */
#define WAIT_MIN_MS		10
#define WAIT_MAX_MS		60000
#define KNOWN_KEYS	"conninfo, queue, handler, batch, maxAttempts, " \
			"retryDelayMs, retryMaxDelayMs, waitMs, " \
			"handlerTimeoutMs"

/* An integer key: where it goes, its range and default. */
struct int_key {
	const char	*name;
	size_t		 offset;
	int		 min, max, def;
};

static const struct int_key int_keys[] = {
	{ "batch", offsetof(struct pgq_params, batch), 1, BATCH_MAX, 1 },
	{ "maxAttempts", offsetof(struct pgq_params, max_attempts),
	    1, ATTEMPTS_MAX, 5 },
	{ "retryDelayMs", offsetof(struct pgq_params, retry_delay_ms),
	    0, DELAY_MAX_MS, 1000 },
	{ "retryMaxDelayMs", offsetof(struct pgq_params, retry_max_delay_ms),
	    0, DELAY_MAX_MS, 600000 },
	{ "waitMs", offsetof(struct pgq_params, wait_ms),
	    WAIT_MIN_MS, WAIT_MAX_MS, 1000 },
	{ "handlerTimeoutMs", offsetof(struct pgq_params, handler_timeout_ms),
	    0, DELAY_MAX_MS, 0 },
};

#define N_INT_KEYS	(sizeof(int_keys) / sizeof(int_keys[0]))

/* A value shown in a message: compact JSON, cut short. */
static void
show(const json_t *v, char *buf, size_t size)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	snprintf(buf, size, "%.60s%s", s != NULL ? s : "?",
	    s != NULL && strlen(s) > 60 ? "..." : "");
	free(s);
}

/* The queue name rule; the jobs table checks the same. */
static int
valid_queue_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > QUEUE_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_.-") == n;
}

/* libpq's own parser says whether the conninfo can be used at all. */
static int
check_conninfo(pm_worker *w, const char *s)
{
	PQconninfoOption *opts;
	char *err = NULL;

	if ((opts = PQconninfoParse(s, &err)) != NULL) {
		PQconninfoFree(opts);
		return 0;
	}
	if (err != NULL) {
		size_t n = strlen(err);

		while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
			err[--n] = '\0';
	}
	pm_log(w, PM_LOG_ERROR, "pgqueue: params.conninfo: %s",
	    err != NULL ? err : "out of memory");
	PQfreemem(err);
	return -1;
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
/* handler: {"sql": "..."} or {"command": ["/path", "arg", ...]}. */
static int
parse_handler(pm_worker *w, json_t *h, struct pgq_params *p)
{
	json_t *sql, *cmd, *v;
	const char *key;
	char shown[80];
	size_t i, n;

	if (!json_is_object(h)) {
		show(h, shown, sizeof(shown));
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler: must be "
		    "{\"sql\": \"...\"} or {\"command\": [\"/path\", ...]}, "
		    "got %s", shown);
		return -1;
	}
	json_object_foreach(h, key, v) {
		if (strcmp(key, "sql") != 0 && strcmp(key, "command") != 0) {
			pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler.%s: "
			    "unknown key (known: sql, command)", key);
			return -1;
		}
	}
	sql = json_object_get(h, "sql");
	cmd = json_object_get(h, "command");
	if ((sql == NULL) == (cmd == NULL)) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler: needs "
		    "exactly one of \"sql\" and \"command\", got %s",
		    sql == NULL ? "neither" : "both");
		return -1;
	}
	if (sql != NULL) {
		if (!json_is_string(sql) || json_string_length(sql) == 0) {
			show(sql, shown, sizeof(shown));
			pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler.sql: "
			    "must be a non-empty string (one SQL statement; "
			    "$1 is the payload, $2 the job id), got %s",
			    shown);
			return -1;
		}
		if ((p->sql = strdup(json_string_value(sql))) == NULL)
			return -1;
		return 0;
	}
	if (!json_is_array(cmd) || (n = json_array_size(cmd)) == 0) {
		show(cmd, shown, sizeof(shown));
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler.command: must "
		    "be a non-empty array of strings (the program, then its "
		    "arguments), got %s", shown);
		return -1;
	}
	if ((p->argv = calloc(n + 1, sizeof(char *))) == NULL)
		return -1;
	json_array_foreach(cmd, i, v) {
		if (!json_is_string(v) || (i == 0 &&
		    json_string_length(v) == 0)) {
			show(v, shown, sizeof(shown));
			pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler."
			    "command[%zu]: must be a%s string, got %s", i,
			    i == 0 ? " non-empty" : "", shown);
			return -1;
		}
		if ((p->argv[i] = strdup(json_string_value(v))) == NULL)
			return -1;
	}
	return 0;
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

/* An integer key within its range, into its place in p. */
static int
parse_int(pm_worker *w, const struct int_key *k, json_t *v,
    struct pgq_params *p)
{
	int *dst = (int *)(void *)((char *)p + k->offset);
	char shown[80];

	if (!json_is_integer(v) || json_integer_value(v) < k->min ||
	    json_integer_value(v) > k->max) {
		show(v, shown, sizeof(shown));
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.%s: must be an "
		    "integer from %d to %d, got %s", k->name, k->min, k->max,
		    shown);
		return -1;
	}
	*dst = (int)json_integer_value(v);
	return 0;
}

/*
 * parse_int() stores through a computed field offset, after which GCC
 * 12's analyzer no longer sees p->conninfo or p->queue and reports their
 * strings leaked: params_free() frees them.
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* computed offsets */
#endif
/* One key of params into p; -1 (logged) if it is unknown or wrong. */
static int
parse_key(pm_worker *w, const char *key, json_t *v, struct pgq_params *p)
{
	char shown[80];

	for (size_t i = 0; i < N_INT_KEYS; i++)
		if (strcmp(key, int_keys[i].name) == 0)
			return parse_int(w, &int_keys[i], v, p);
	if (strcmp(key, "handler") == 0)
		return parse_handler(w, v, p);
	if (strcmp(key, "conninfo") == 0 || strcmp(key, "queue") == 0) {
		char **dst = key[0] == 'c' ? &p->conninfo : &p->queue;

		if (!json_is_string(v)) {
			show(v, shown, sizeof(shown));
			pm_log(w, PM_LOG_ERROR, "pgqueue: params.%s: must be "
			    "a string, got %s", key, shown);
			return -1;
		}
		free(*dst);
		return (*dst = strdup(json_string_value(v))) == NULL ? -1 : 0;
	}
	pm_log(w, PM_LOG_ERROR, "pgqueue: params.%s: unknown key (known: "
	    KNOWN_KEYS ")", key);
	return -1;
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

/* The rules that tie keys together, once each key is known good. */
static int
check_whole(pm_worker *w, struct pgq_params *p)
{
	if (p->conninfo == NULL) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.conninfo: required "
		    "(a libpq connection string or URI; \"\" takes it all "
		    "from the PG* environment variables)");
		return -1;
	}
	if (check_conninfo(w, p->conninfo) < 0)
		return -1;
	if (p->queue == NULL && (p->queue = strdup("default")) == NULL)
		return -1;
	if (!valid_queue_name(p->queue)) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.queue: must be 1 to "
		    "%d of A-Z a-z 0-9 _ . -, got \"%.60s\"", QUEUE_NAME_MAX,
		    p->queue);
		return -1;
	}
	if (p->sql == NULL && p->argv == NULL) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler: required: "
		    "{\"sql\": \"SELECT app.handle($1, $2)\"} or "
		    "{\"command\": [\"/path/prog\", \"arg\"]}");
		return -1;
	}
	if (p->retry_max_delay_ms < p->retry_delay_ms) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.retryMaxDelayMs: "
		    "must be at least retryDelayMs (%d), got %d",
		    p->retry_delay_ms, p->retry_max_delay_ms);
		return -1;
	}
	if (p->argv != NULL && p->batch != 1) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.batch: a command "
		    "handler takes one job at a time; leave batch out or set "
		    "it to 1, got %d", p->batch);
		return -1;
	}
	return 0;
}

/* Reads params (JSON text) into p, with defaults; -1 once a problem is
 * logged.  p is to be freed with params_free() either way. */
int
params_parse(pm_worker *w, const char *text, struct pgq_params *p)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < N_INT_KEYS; i++)
		*(int *)(void *)((char *)p + int_keys[i].offset) =
		    int_keys[i].def;
	if ((root = json_loads(text, JSON_DECODE_ANY, &jerr)) == NULL) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		pm_log(w, PM_LOG_ERROR, "pgqueue: params: must be an object "
		    "with at least conninfo and handler, got %.40s", text);
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (parse_key(w, key, v, p) < 0)
			goto out;
	}
	rc = check_whole(w, p);
out:
	json_decref(root);
	return rc;
}

/* A regular file we may execute? */
static int
executable(const char *path, int *err)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		*err = errno;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		*err = EISDIR;
		return 0;
	}
	if (access(path, X_OK) < 0) {
		*err = errno;
		return 0;
	}
	return 1;
}

/*
 * Finds the command's program as execvp would, except that a relative
 * path with a '/' is taken from the config file's directory.
 */
int
params_find_program(pm_worker *w, struct pgq_params *p)
{
	const char *name = p->argv[0], *dir = pm_worker_config_dir(w);
	const char *path = getenv("PATH");
	char buf[PATH_MAX];
	int err = ENOENT;

	if (strchr(name, '/') != NULL) {
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		if (name[0] != '/' && dir != NULL)
			snprintf(buf, sizeof(buf), "%s/%s", dir, name);
		else
			snprintf(buf, sizeof(buf), "%s", name);
		if (executable(buf, &err))
			return (p->program = strdup(buf)) == NULL ? -1 : 0;
		pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler.command[0]: "
		    "%s: %s", buf, err == EISDIR ? "not a regular file" :
		    strerror(err));
		return -1;
	}
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		size_t len = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, name);
		if (len > 0 && executable(buf, &err))
			return (p->program = strdup(buf)) == NULL ? -1 : 0;
		path += len + (path[len] == ':');
	}
	pm_log(w, PM_LOG_ERROR, "pgqueue: params.handler.command[0]: %s: "
	    "not found in PATH", name);
	return -1;
}

/* Frees what params_parse() and params_find_program() allocated. */
void
params_free(struct pgq_params *p)
{
	free(p->conninfo);
	free(p->queue);
	free(p->sql);
	if (p->argv != NULL)
		for (char **a = p->argv; *a != NULL; a++)
			free(*a);
	free(p->argv);
	free(p->program);
	memset(p, 0, sizeof(*p));
}
