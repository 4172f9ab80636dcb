/*
 * config.c - reads a JSON config, validates every key and builds the task
 * list.  The only file that touches jansson.  Validation runs to the end and
 * reports every problem; a config with any problem yields no tasks at all.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "config.h"
#include "names.h"

#define GOT_MAX		40	/* longest offending value quoted in a message */
#define KEY_SHOW_MAX	64	/* longest unknown key quoted in a message */
#define ID_MAX		64	/* longest user or group name */

#define DEFAULT_TITLE_PREFIX	"process_m"
#define DEFAULT_BASE_TITLE	"process"

#define ONE_YEAR_S	31536000LL

enum key_id {
	K_PLUGIN,
	K_TITLE_PREFIX,
	K_BASE_TITLE,
	K_CHECK_INTERVAL,
	K_MAX_WORKERS,
	K_EXECUTE_TIMES,
	K_EXECUTE_USLEEP,
	K_LIMIT_SECONDS,
	K_EXECUTE_TIMES_JITTER,
	K_LIMIT_SECONDS_JITTER,
	K_PARAMS,
	K_STOP_TIMEOUT,
	K_WORK_TIMEOUT,
	K_MAX_RSS,
	K_SCHEDULE,
	K_USER,
	K_GROUP,
	K_RUN_DIR,
	K_LOG_FILE,
	K_LOG_LEVEL,
	K_LOG_FORMAT,
	K_STRICT_PATHS,
	K_NO_NEW_PRIVS,
	K_LIMITS,
	K_PRELOAD,
	K_ENV,
	K_WORKING_DIR,
	K_TASKS,
	K_CONFIG_PATH,		/* derived fields, not keys */
	K_CONFIG_DIR,
	K_JSON,
	K_PINNED,
	K_COUNT
};

enum value_kind {
	V_INT,		/* JSON integer in [min, max] */
	V_INT_MIN,	/* JSON integer >= min, no useful upper bound */
	V_PATH,		/* non-empty string, resolved against the config dir */
	V_PREFIX,	/* titlePrefix syntax */
	V_TITLE,	/* title_valid() */
	V_SCHEDULE,
	V_ID,		/* user or group: name or number, not resolved here */
	V_LEVEL,
	V_JSON,		/* anything */
	V_TASKS,
	V_BOOL,		/* true or false */
	V_LIMITS,	/* {"nofile": N, ...}: integers >= 0 or "infinity" */
	V_ENV,		/* {"NAME": "value", ...} */
	V_LOG_FORMAT,	/* "text" or "json" */
	V_DERIVED	/* not a key: a field the loader fills itself */
};

/* Where a key's value lands in struct task_config, and as what. */
enum field_type {
	F_NONE,		/* not stored (tasks) */
	F_STR,		/* char *, owned: copied and freed with the task */
	F_LLONG,	/* long long */
	F_INT,		/* int */
	F_UINT,		/* unsigned */
	F_U64,		/* uint64_t */
	F_SCHEDULE,	/* enum schedule */
	F_LEVEL,	/* int, PM_LOG_* or -1 */
	F_BOOL,		/* int, 0 or 1 */
	F_LIMITS,	/* struct limit[LIMIT_COUNT] */
	F_LOG_FORMAT	/* int, 0 text or 1 json */
};

#define FIELD(f)	F_NONE, offsetof(struct task_config, f)
#define AT(t, f)	t, offsetof(struct task_config, f)

/*
 * Every key: its validation, where it is stored, its default.  Owned
 * strings (F_STR) are copied and freed by walking this table, so a new
 * string key needs nothing beyond its entry.
 */
static const struct key_spec {
	const char	*name;
	enum value_kind	 kind;
	long long	 min;
	long long	 max;
	enum field_type	 type;
	size_t		 off;
	long long	 def;		/* numbers */
	const char	*def_str;	/* strings; NULL: absent */
} key_specs[K_COUNT] = {
	[K_PLUGIN] =		{ "plugin", V_PATH, 0, 0, AT(F_STR, plugin),
				    0, NULL },
	[K_TITLE_PREFIX] =	{ "titlePrefix", V_PREFIX, 0, 0,
				    AT(F_STR, title_prefix), 0,
				    DEFAULT_TITLE_PREFIX },
	[K_BASE_TITLE] =	{ "baseTitle", V_TITLE, 0, 0,
				    AT(F_STR, base_title), 0,
				    DEFAULT_BASE_TITLE },
	[K_CHECK_INTERVAL] =	{ "checkWorkerInterval", V_INT,
				    -ONE_YEAR_S, ONE_YEAR_S,
				    AT(F_LLONG, check_interval), 300, NULL },
	[K_MAX_WORKERS] =	{ "maxWorkerNum", V_INT, 1,
				    CONFIG_MAX_WORKERS, AT(F_INT, max_workers),
				    4, NULL },
	[K_EXECUTE_TIMES] =	{ "executeTimes", V_INT_MIN, 0, 0,
				    AT(F_U64, execute_times), 1, NULL },
	[K_EXECUTE_USLEEP] =	{ "executeUSleep", V_INT, 0,
				    ONE_YEAR_S * 1000000,
				    AT(F_U64, execute_usleep), 200000, NULL },
	[K_LIMIT_SECONDS] =	{ "limitSeconds", V_INT, 0, ONE_YEAR_S,
				    AT(F_U64, limit_seconds), 0, NULL },
	[K_EXECUTE_TIMES_JITTER] = { "executeTimesJitter", V_INT, 0,
				    1000000000000LL,
				    AT(F_U64, execute_times_jitter), 0, NULL },
	[K_LIMIT_SECONDS_JITTER] = { "limitSecondsJitter", V_INT, 0,
				    ONE_YEAR_S,
				    AT(F_U64, limit_seconds_jitter), 0, NULL },
	[K_PARAMS] =		{ "params", V_JSON, 0, 0, AT(F_STR, params),
				    0, "null" },
	[K_STOP_TIMEOUT] =	{ "stopTimeout", V_INT, 0, 86400,
				    AT(F_UINT, stop_timeout), 5, NULL },
	[K_WORK_TIMEOUT] =	{ "workTimeout", V_INT, 0, ONE_YEAR_S,
				    AT(F_UINT, work_timeout), 0, NULL },
	[K_MAX_RSS] =		{ "maxRssMb", V_INT, 0, 1048576,
				    AT(F_UINT, max_rss_mb), 0, NULL },
	[K_SCHEDULE] =		{ "schedule", V_SCHEDULE, 0, 0,
				    AT(F_SCHEDULE, schedule), SCHEDULE_DELAY,
				    NULL },
	[K_USER] =		{ "user", V_ID, 0, 0, AT(F_STR, user), 0,
				    NULL },
	[K_GROUP] =		{ "group", V_ID, 0, 0, AT(F_STR, group), 0,
				    NULL },
	[K_RUN_DIR] =		{ "runDir", V_PATH, 0, 0, AT(F_STR, run_dir),
				    0, NULL },
	[K_LOG_FILE] =		{ "logFile", V_PATH, 0, 0,
				    AT(F_STR, log_file), 0, NULL },
	[K_LOG_LEVEL] =		{ "logLevel", V_LEVEL, 0, 0,
				    AT(F_LEVEL, log_level), -1, NULL },
	[K_LOG_FORMAT] =	{ "logFormat", V_LOG_FORMAT, 0, 0,
				    AT(F_LOG_FORMAT, log_format), 0, NULL },
	[K_STRICT_PATHS] =	{ "strictPaths", V_BOOL, 0, 0,
				    AT(F_BOOL, strict_paths), 1, NULL },
	[K_NO_NEW_PRIVS] =	{ "noNewPrivileges", V_BOOL, 0, 0,
				    AT(F_BOOL, no_new_privs), 1, NULL },
	[K_LIMITS] =		{ "limits", V_LIMITS, 0, 0,
				    AT(F_LIMITS, limits), 0, NULL },
	[K_PRELOAD] =		{ "preload", V_BOOL, 0, 0,
				    AT(F_BOOL, preload), 0, NULL },
	[K_ENV] =		{ "env", V_ENV, 0, 0, AT(F_STR, env), 0, NULL },
	[K_WORKING_DIR] =	{ "workingDirectory", V_PATH, 0, 0,
				    AT(F_STR, working_dir), 0, NULL },
	[K_TASKS] =		{ "tasks", V_TASKS, 0, 0, FIELD(plugin), 0,
				    NULL },
	[K_CONFIG_PATH] =	{ NULL, V_DERIVED, 0, 0,
				    AT(F_STR, config_path), 0, NULL },
	[K_CONFIG_DIR] =	{ NULL, V_DERIVED, 0, 0,
				    AT(F_STR, config_dir), 0, NULL },
	[K_PINNED] =		{ NULL, V_DERIVED, 0, 0, AT(F_STR, pinned), 0,
				    NULL },
	[K_JSON] =		{ NULL, V_DERIVED, 0, 0, AT(F_STR, json), 0,
				    NULL },
};

static const char *const limit_names[LIMIT_COUNT] = {
	[LIMIT_NOFILE] = "nofile",
	[LIMIT_NPROC] = "nproc",
	[LIMIT_CORE] = "core",
	[LIMIT_AS] = "as",
};

const char *
config_limit_name(enum limit_id id)
{
	return (unsigned)id < LIMIT_COUNT ? limit_names[id] : "?";
}

/* The field of tc that key k's entry names. */
static void *
field_of(struct task_config *tc, int k)
{
	return (char *)tc + key_specs[k].off;
}

/*
 * The values one task is built from: borrowed from the parsed document,
 * NULL when absent.  bad marks a present value already reported, so that
 * tasks inheriting it neither report it again nor check it further.
 */
struct task_values {
	json_t		*val[K_COUNT];
	unsigned char	 bad[K_COUNT];
};

struct parse_ctx {
	const char		*path;		/* as the caller named it */
	char			*abs_path;	/* absolute, lexically clean */
	char			*dir;		/* directory of abs_path */
	struct config_errors	*errs;
	size_t			 nerrors;	/* found by this parse */
};

/* Appends one message, already formatted, to errs; counts it either way. */
static void
errs_append(struct parse_ctx *ctx, char *msg)
{
	char **msgs;

	ctx->nerrors++;
	if (msg == NULL)
		return;
	if (ctx->errs == NULL) {
		free(msg);
		return;
	}
	msgs = realloc(ctx->errs->msgs,
	    (ctx->errs->count + 1) * sizeof(*msgs));
	if (msgs == NULL) {
		free(msg);
		return;
	}
	msgs[ctx->errs->count++] = msg;
	ctx->errs->msgs = msgs;
}

/* vsnprintf into fresh storage; NULL when out of memory. */
static char *
vformat(const char *fmt, va_list ap)
{
	va_list	 ap2;
	char	*s;
	int	 n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

/*
 * GCC 12's analyzer forgets the array that errs_append() stores in
 * ctx->errs once it writes msgs[count], and reports it leaked: it is the
 * caller's, freed by config_errors_free().
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* loses errs->msgs */
#endif
/* Appends "PATH" sep "formatted text" to the problems found. */
static void
vreport(struct parse_ctx *ctx, const char *sep, const char *fmt, va_list ap)
{
	char	*tail, *msg = NULL;
	size_t	 plen, slen, tlen;

	if ((tail = vformat(fmt, ap)) != NULL) {
		plen = strlen(ctx->path);
		slen = strlen(sep);
		tlen = strlen(tail);
		if ((msg = malloc(plen + slen + tlen + 1)) != NULL) {
			memcpy(msg, ctx->path, plen);
			memcpy(msg + plen, sep, slen);
			memcpy(msg + plen + slen, tail, tlen + 1);
		}
		free(tail);
	}
	errs_append(ctx, msg);
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

/* Reports one problem as "PATH: ...". */
static void PMHOST_PRINTF(2, 3)
report(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(ctx, ": ", fmt, ap);
	va_end(ap);
}

/* Reports a syntax error as "PATH:LINE:COLUMN: TEXT", as compilers do. */
static void PMHOST_PRINTF(2, 3)
report_syntax(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(ctx, ":", fmt, ap);
	va_end(ap);
}

/* Copies s into dst with control bytes written as \n, \t or \xNN. */
static void
escape_controls(const char *s, char *dst, size_t size)
{
	size_t n = 0;

	for (; *s != '\0' && n + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			n += (size_t)snprintf(dst + n, size - n, "\\n");
		else if (c == '\t')
			n += (size_t)snprintf(dst + n, size - n, "\\t");
		else if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(dst + n, size - n, "\\x%02x", c);
		else
			dst[n++] = (char)c;
	}
	dst[n] = '\0';
}

/* Length of the longest prefix of s within max bytes not splitting UTF-8. */
static size_t
utf8_cut(const char *s, size_t max)
{
	size_t n = max;

	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/*
 * The offending value as compact JSON, shortened for a one-line message.
 * Writes into buf (at least GOT_MAX + 1 bytes).
 */
static void
got_text(const json_t *v, char *buf, size_t size)
{
	char	*dump;
	size_t	 len, keep;

	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
	    JSON_PRESERVE_ORDER);
	if (dump == NULL) {
		snprintf(buf, size, "?");
		return;
	}
	len = strlen(dump);
	if (len <= GOT_MAX) {
		snprintf(buf, size, "%s", dump);
	} else {
		keep = utf8_cut(dump, GOT_MAX - 3);
		snprintf(buf, size, "%.*s...", (int)keep, dump);
	}
	free(dump);
}

/*
 * An unknown key as it may appear in a one-line message: as is when it is
 * short and printable, else JSON-quoted and shortened.
 */
static void
key_text(const char *key, char *buf, size_t size)
{
	json_t		*s;
	const char	*p;
	size_t		 len = strlen(key);
	int		 plain = len > 0 && len <= KEY_SHOW_MAX;

	for (p = key; plain && *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			plain = 0;
	if (plain) {
		snprintf(buf, size, "%s", key);
		return;
	}
	if ((s = json_string(key)) == NULL) {
		snprintf(buf, size, "?");
		return;
	}
	got_text(s, buf, size);
	json_decref(s);
}

/* The known key closest to key, or NULL if none is close enough. */
static const char *
key_suggest(const char *key, int in_task)
{
	const char	*best = NULL;
	size_t		 best_d = SIZE_MAX, d, limit, len = strlen(key), klen;

	limit = len / 3;
	if (limit < 2)
		limit = 2;
	for (int k = 0; k < K_COUNT; k++) {
		if ((in_task && k == K_TASKS) || key_specs[k].name == NULL)
			continue;
		/* The length gap alone bounds the distance; spares huge keys. */
		klen = strlen(key_specs[k].name);
		if ((len > klen ? len - klen : klen - len) > limit)
			continue;
		d = names_distance(key, key_specs[k].name);
		if (d < best_d) {
			best_d = d;
			best = key_specs[k].name;
		}
	}
	return best_d <= limit ? best : NULL;
}

/* Looks key up among the known keys; -1 when unknown. */
static int
key_lookup(const char *key)
{
	for (int k = 0; k < K_COUNT; k++)
		if (key_specs[k].name != NULL &&
		    strcmp(key, key_specs[k].name) == 0)
			return k;
	return -1;
}

/* Reports an unknown key at keypath prefix (NULL at the top level). */
static void
report_unknown(struct parse_ctx *ctx, const char *prefix, const char *key)
{
	char		 shown[GOT_MAX + KEY_SHOW_MAX + 8];
	const char	*hint;
	int		 in_task = prefix != NULL;

	key_text(key, shown, sizeof(shown));
	if (in_task && strcmp(key, "tasks") == 0) {
		report(ctx, "%s.%s: unknown key here: tasks cannot be nested",
		    prefix, shown);
		return;
	}
	hint = key_suggest(key, in_task);
	if (hint != NULL)
		report(ctx, "%s%s%s: unknown key (did you mean \"%s\"?)",
		    in_task ? prefix : "", in_task ? "." : "", shown, hint);
	else
		report(ctx, "%s%s%s: unknown key", in_task ? prefix : "",
		    in_task ? "." : "", shown);
}

/*
 * Is the UTF-8 sequence at p a C1 control (U+0080..U+009F) or a
 * bidirectional formatting character (U+061C, U+200E, U+200F,
 * U+202A..U+202E, U+2066..U+2069)?  Either would make a title lie in ps.
 */
static int
invisible_control(const unsigned char *p, size_t left)
{
	if (left >= 2 && p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
		return 1;
	if (left >= 2 && p[0] == 0xd8 && p[1] == 0x9c)
		return 1;
	if (left >= 3 && p[0] == 0xe2 && p[1] == 0x80 &&
	    (p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xaa && p[2] <= 0xae)))
		return 1;
	return left >= 3 && p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 &&
	    p[2] <= 0xa9;
}

/*
 * Is s a valid titlePrefix: 1..64 bytes, no '/', no control character
 * (C0, DEL, C1) and no bidirectional formatting character?
 */
static int
prefix_valid(const char *s, size_t len)
{
	if (len == 0 || len > CONFIG_MAX_TITLE)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/' ||
		    invisible_control((const unsigned char *)s + i, len - i))
			return 0;
	return 1;
}

/* Reports "KEY: must WHAT, got VALUE". */
static void
report_value(struct parse_ctx *ctx, const char *keypath, const char *what,
    const json_t *v)
{
	char got[GOT_MAX + 1];

	got_text(v, got, sizeof(got));
	report(ctx, "%s: must %s, got %s", keypath, what, got);
}

#define LIMIT_NAMES	"nofile, nproc, core, as"

/* A limit's value: an integer >= 0, or "infinity". */
static int
limit_value_ok(const json_t *v)
{
	return (json_is_integer(v) && json_integer_value(v) >= 0) ||
	    (json_is_string(v) && strcmp(json_string_value(v),
	    "infinity") == 0);
}

/* Validates the limits object; every problem reported; 0 or -1. */
static int
limits_check(struct parse_ctx *ctx, const char *keypath, const json_t *v)
{
	const char *name;
	json_t *lv;
	int bad = 0;

	json_object_foreach((json_t *)v, name, lv) {
		char shown[GOT_MAX + KEY_SHOW_MAX + 8], got[GOT_MAX + 1];
		size_t best = SIZE_MAX;
		int known = -1, near = -1;

		for (int i = 0; i < LIMIT_COUNT; i++) {
			size_t d = names_distance(name, limit_names[i]);

			if (d == 0 && strcmp(name, limit_names[i]) == 0)
				known = i;
			if (d < best) {
				best = d;
				near = i;
			}
		}
		if (known < 0) {
			key_text(name, shown, sizeof(shown));
			if (best <= 2 && near >= 0)
				report(ctx, "%s.%s: unknown limit (did you mean "
				    "\"%s\"?)", keypath, shown,
				    limit_names[near]);
			else
				report(ctx, "%s.%s: unknown limit (known: %s)",
				    keypath, shown, LIMIT_NAMES);
			bad = 1;
			continue;
		}
		if (!limit_value_ok(lv)) {
			got_text(lv, got, sizeof(got));
			report(ctx, "%s.%s: must be an integer >= 0 or "
			    "\"infinity\", got %s", keypath, name, got);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

/*
 * Validates the env object: names as a shell takes them (letters, digits,
 * '_', not starting with a digit), string values without NUL; every
 * problem reported; 0 or -1.
 */
static int
env_check(struct parse_ctx *ctx, const char *keypath, const json_t *v)
{
	const char *name;
	json_t *ev;
	int bad = 0;

	json_object_foreach((json_t *)v, name, ev) {
		char shown[GOT_MAX + KEY_SHOW_MAX + 8], got[GOT_MAX + 1];
		int ok = name[0] != '\0' && !(name[0] >= '0' &&
		    name[0] <= '9');

		for (const char *c = name; ok && *c != '\0'; c++)
			ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' &&
			    *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
		key_text(name, shown, sizeof(shown));
		if (!ok) {
			report(ctx, "%s.%s: not a variable name (letters, digits "
			    "and _, not starting with a digit)", keypath,
			    shown);
			bad = 1;
		} else if (!json_is_string(ev) || strlen(json_string_value(ev)) !=
		    json_string_length(ev)) {
			got_text(ev, got, sizeof(got));
			report(ctx, "%s.%s: must be a string without NUL, got %s",
			    keypath, shown, got);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

int
config_env_apply(const struct task_config *t, char *err, size_t errlen)
{
	const char *name;
	json_t *o, *ev;
	int r = 0;

	if (t->env == NULL)
		return 0;
	if ((o = json_loads(t->env, 0, NULL)) == NULL) {
		snprintf(err, errlen, "env: out of memory");
		return -1;
	}
	json_object_foreach(o, name, ev) {
		if (setenv(name, json_string_value(ev), 1) < 0) {
			snprintf(err, errlen, "env.%s: %s", name,
			    strerror(errno));
			r = -1;
			break;
		}
	}
	json_decref(o);
	return r;
}

/* Validates one value of a known key; reports and returns -1 if wrong. */
static int
value_check(struct parse_ctx *ctx, const char *keypath, enum key_id k,
    const json_t *v)
{
	const struct key_spec	*spec = &key_specs[k];
	char			 what[96];
	const char		*s = NULL;
	size_t			 len = 0;
	json_int_t		 n;

	if (json_is_string(v)) {
		s = json_string_value(v);
		len = json_string_length(v);
	}
	switch (spec->kind) {
	case V_INT:
		if (json_is_integer(v) && (n = json_integer_value(v)) >=
		    spec->min && n <= spec->max)
			return 0;
		snprintf(what, sizeof(what), "be an integer from %lld to %lld",
		    spec->min, spec->max);
		break;
	case V_INT_MIN:
		if (json_is_integer(v) && json_integer_value(v) >= spec->min)
			return 0;
		snprintf(what, sizeof(what), "be an integer >= %lld",
		    spec->min);
		break;
	case V_PATH:
		if (s != NULL && len > 0)
			return 0;
		snprintf(what, sizeof(what), "be a non-empty string");
		break;
	case V_PREFIX:
		if (s != NULL && prefix_valid(s, len))
			return 0;
		snprintf(what, sizeof(what), "be a string of 1 to %d bytes "
		    "without '/', control or bidi characters",
		    CONFIG_MAX_TITLE);
		break;
	case V_TITLE:
		if (s != NULL && title_valid(s))
			return 0;
		/* "." and ".." fit the pattern, so say why they are refused. */
		if (s != NULL && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0))
			snprintf(what, sizeof(what), "match [A-Za-z0-9_.-]{1,%d} "
			    "and not be \".\" or \"..\"", TITLE_MAX);
		else
			snprintf(what, sizeof(what), "match [A-Za-z0-9_.-]{1,%d}",
			    TITLE_MAX);
		break;
	case V_SCHEDULE:
		if (s != NULL && (strcmp(s, "delay") == 0 ||
		    strcmp(s, "rate") == 0))
			return 0;
		snprintf(what, sizeof(what), "be \"delay\" or \"rate\"");
		break;
	case V_ID:
		if (s != NULL && len > 0 && len <= ID_MAX)
			return 0;
		snprintf(what, sizeof(what), "be a non-empty string of at most "
		    "%d bytes", ID_MAX);
		break;
	case V_LEVEL:
		if (s != NULL && log_level_from_name(s) >= 0)
			return 0;
		snprintf(what, sizeof(what), "be one of %s", LOG_LEVEL_NAMES);
		break;
	case V_JSON:
	case V_DERIVED:
		return 0;
	case V_BOOL:
		if (json_is_boolean(v))
			return 0;
		snprintf(what, sizeof(what), "be true or false");
		break;
	case V_LIMITS:
		if (json_is_object(v))
			return limits_check(ctx, keypath, v);
		snprintf(what, sizeof(what), "be an object of limits (%s)",
		    LIMIT_NAMES);
		break;
	case V_LOG_FORMAT:
		if (s != NULL && (strcmp(s, "text") == 0 ||
		    strcmp(s, "json") == 0))
			return 0;
		snprintf(what, sizeof(what), "be \"text\" or \"json\"");
		break;
	case V_ENV:
		if (json_is_object(v))
			return env_check(ctx, keypath, v);
		snprintf(what, sizeof(what), "be an object of strings");
		break;
	case V_TASKS:
		if (json_is_array(v) && json_array_size(v) > 0)
			return 0;
		snprintf(what, sizeof(what), "be a non-empty array of objects");
		break;
	}
	report_value(ctx, keypath, what, v);
	return -1;
}

/*
 * task_config_copy() stores each copy through a computed field offset,
 * which GCC 12's analyzer cannot follow: it reports the copies leaked,
 * though task_config_free() frees them.
 */
#ifndef __clang__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak" /* computed offsets */
#endif
/* Copies s into fresh storage; NULL stays NULL. */
static int
str_dup(char **dst, const char *s)
{
	*dst = NULL;
	if (s == NULL)
		return 0;
	if ((*dst = strdup(s)) == NULL)
		return -1;
	return 0;
}
#ifndef __clang__
#pragma GCC diagnostic pop
#endif

/*
 * Cleans an absolute path lexically: drops "." components and repeated
 * slashes.  ".." stays, since only the file system knows what it means
 * behind a symlink.
 */
static char *
path_clean(const char *path)
{
	const char	*p = path, *end;
	char		*out, *o;
	size_t		 n;

	if ((out = malloc(strlen(path) + 2)) == NULL)
		return NULL;
	o = out;
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if ((end = strchr(p, '/')) == NULL)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			*o++ = '/';
			memcpy(o, p, n);
			o += n;
		}
		p = end;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	return out;
}

/* dir "/" rel, cleaned; NULL when out of memory. */
static char *
path_join(const char *dir, const char *rel)
{
	char	*joined, *clean;
	size_t	 dlen = strlen(dir), rlen = strlen(rel);

	if ((joined = malloc(dlen + 1 + rlen + 1)) == NULL)
		return NULL;
	memcpy(joined, dir, dlen);
	joined[dlen] = '/';
	memcpy(joined + dlen + 1, rel, rlen + 1);
	clean = path_clean(joined);
	free(joined);
	return clean;
}

/* The current directory in fresh storage, whatever its length. */
static char *
cwd_get(void)
{
	char	*buf;
	size_t	 size = 256;

	for (;;) {
		if ((buf = malloc(size)) == NULL)
			return NULL;
		if (getcwd(buf, size) != NULL)
			return buf;
		free(buf);
		if (errno != ERANGE)
			return NULL;
		size *= 2;
	}
}

/* Fills ctx->abs_path and ctx->dir from ctx->path; reports failures. */
static int
ctx_paths(struct parse_ctx *ctx)
{
	char	*cwd, *slash;

	if (ctx->path[0] == '/') {
		ctx->abs_path = path_clean(ctx->path);
	} else {
		if ((cwd = cwd_get()) == NULL) {
			report(ctx, "cannot make the path absolute: getcwd: %s",
			    strerror(errno));
			return -1;
		}
		ctx->abs_path = path_join(cwd, ctx->path);
		free(cwd);
	}
	if (ctx->abs_path == NULL) {
		report(ctx, "out of memory");
		return -1;
	}
	/*
	 * Relative paths live beside the config file itself: for a config
	 * reached through a symlink (/etc/pmhost/app.json -> /opt/app/...),
	 * beside the file it names.
	 */
	ctx->dir = realpath(ctx->abs_path, NULL);
	if (ctx->dir == NULL && (ctx->dir = strdup(ctx->abs_path)) == NULL) {
		report(ctx, "out of memory");
		return -1;
	}
	slash = strrchr(ctx->dir, '/');
	if (slash == ctx->dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

/* A path from the config: relative ones live beside the config file. */
static int
path_resolve(const struct parse_ctx *ctx, char **dst, const json_t *v)
{
	const char *s;

	*dst = NULL;
	if (v == NULL)
		return 0;
	s = json_string_value(v);
	if (s[0] == '/')
		*dst = strdup(s);
	else
		*dst = path_join(ctx->dir, s);
	return *dst == NULL ? -1 : 0;
}

/* The string value of key k, or its default when the key is absent. */
static const char *
str_or(const struct task_values *tv, enum key_id k, const char *def)
{
	return tv->val[k] != NULL ? json_string_value(tv->val[k]) : def;
}

/* Fills limits from a validated limits object (NULL: none set). */
static void
limits_build(struct limit *limits, const json_t *v)
{
	for (int i = 0; v != NULL && i < LIMIT_COUNT; i++) {
		const json_t *lv = json_object_get(v, limit_names[i]);

		if (lv == NULL)
			continue;
		limits[i].set = 1;
		limits[i].value = json_is_integer(lv) ?
		    (uint64_t)json_integer_value(lv) : UINT64_MAX;
	}
}

/*
 * Stores one key's value (or its default) in its field of tc; -1 only
 * without memory.  Paths are resolved against the config's directory.
 */
static int
field_build(const struct parse_ctx *ctx, struct task_config *tc, int k,
    const json_t *v)
{
	const struct key_spec *spec = &key_specs[k];
	void *f = field_of(tc, k);
	long long n = v != NULL && json_is_integer(v) ?
	    json_integer_value(v) : spec->def;

	switch (spec->type) {
	case F_NONE:
		return 0;
	case F_STR:
		if (spec->kind == V_PATH)
			return path_resolve(ctx, (char **)f, v);
		if ((spec->kind == V_JSON || spec->kind == V_ENV) && v != NULL) {
			*(char **)f = json_dumps(v, JSON_COMPACT |
			    JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
			return *(char **)f == NULL ? -1 : 0;
		}
		return str_dup((char **)f, v != NULL ? json_string_value(v) :
		    spec->def_str);
	case F_LLONG:
		*(long long *)f = n;
		return 0;
	case F_INT:
		*(int *)f = (int)n;
		return 0;
	case F_UINT:
		*(unsigned *)f = (unsigned)n;
		return 0;
	case F_U64:
		*(uint64_t *)f = (uint64_t)n;
		return 0;
	case F_SCHEDULE:
		*(enum schedule *)f = v == NULL ? (enum schedule)spec->def :
		    strcmp(json_string_value(v), "rate") == 0 ? SCHEDULE_RATE :
		    SCHEDULE_DELAY;
		return 0;
	case F_LEVEL:
		*(int *)f = v == NULL ? (int)spec->def :
		    log_level_from_name(json_string_value(v));
		return 0;
	case F_BOOL:
		*(int *)f = v == NULL ? (int)spec->def : json_is_true(v);
		return 0;
	case F_LIMITS:
		limits_build((struct limit *)f, v);
		return 0;
	case F_LOG_FORMAT:
		*(int *)f = v != NULL && strcmp(json_string_value(v),
		    "json") == 0;
		return 0;
	}
	return 0;
}

/* One field of tc as a JSON value (NULL: not a key, or absent). */
static json_t *
field_json(struct task_config *tc, int k)
{
	const struct key_spec *spec = &key_specs[k];
	void *f = field_of(tc, k);
	json_t *o;

	switch (spec->type) {
	case F_STR:
		if (*(char **)f == NULL)
			return NULL;
		if (spec->kind == V_JSON || spec->kind == V_ENV)
			return json_loads(*(char **)f, JSON_DECODE_ANY, NULL);
		return json_string(*(char **)f);
	case F_LLONG:
		return json_integer(*(long long *)f);
	case F_INT:
		return json_integer(*(int *)f);
	case F_UINT:
		return json_integer(*(unsigned *)f);
	case F_U64:
		return json_integer((json_int_t)*(uint64_t *)f);
	case F_SCHEDULE:
		return json_string(*(enum schedule *)f == SCHEDULE_RATE ?
		    "rate" : "delay");
	case F_LEVEL:
		return *(int *)f < 0 ? NULL :
		    json_string(log_level_name(*(int *)f));
	case F_BOOL:
		return json_boolean(*(int *)f);
	case F_LOG_FORMAT:
		return json_string(*(int *)f ? "json" : "text");
	case F_LIMITS:
		o = json_object();
		for (int i = 0; o != NULL && i < LIMIT_COUNT; i++) {
			const struct limit *l = &((struct limit *)f)[i];

			if (!l->set)
				continue;
			json_object_set_new(o, limit_names[i],
			    l->value == UINT64_MAX ? json_string("infinity") :
			    json_integer((json_int_t)l->value));
		}
		return o;
	case F_NONE:
		break;
	}
	return NULL;
}

/* The whole task as compact JSON, keys as in a config file. */
static char *
task_json(struct task_config *tc)
{
	json_t *o = json_object();
	char *s;

	if (o == NULL)
		return NULL;
	for (int k = 0; k < K_COUNT; k++) {
		json_t *v;

		if (key_specs[k].name == NULL ||
		    (v = field_json(tc, k)) == NULL)
			continue;
		json_object_set_new(o, key_specs[k].name, v);
	}
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

/* Builds one task from values already validated; -1 only without memory. */
static int
task_build(const struct parse_ctx *ctx, struct task_config *tc,
    const struct task_values *tv)
{
	memset(tc, 0, sizeof(*tc));
	for (int k = 0; k < K_COUNT; k++) {
		if (key_specs[k].kind == V_DERIVED)
			continue;
		if (field_build(ctx, tc, k, tv->val[k]) < 0)
			goto fail;
	}
	if (str_dup(&tc->config_path, ctx->abs_path) < 0 ||
	    str_dup(&tc->config_dir, ctx->dir) < 0 ||
	    (tc->json = task_json(tc)) == NULL)
		goto fail;
	return 0;
fail:
	task_config_free(tc);
	return -1;
}

/* Reads the keys of one object (top level when prefix is NULL) into tv. */
static void
object_read(struct parse_ctx *ctx, json_t *obj, const char *prefix,
    struct task_values *tv)
{
	const char	*key;
	json_t		*v;
	char		 keypath[96];
	int		 k;

	json_object_foreach(obj, key, v) {
		k = key_lookup(key);
		if (k < 0 || (prefix != NULL && k == K_TASKS)) {
			report_unknown(ctx, prefix, key);
			continue;
		}
		if (prefix != NULL)
			snprintf(keypath, sizeof(keypath), "%s.%s", prefix,
			    key);
		else
			snprintf(keypath, sizeof(keypath), "%s", key);
		tv->val[k] = v;
		tv->bad[k] = value_check(ctx, keypath, k, v) == -1;
	}
}

/* JSON type of v in words, for the top-level complaint. */
static const char *
type_words(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		break;
	}
	return "null";
}

struct title_ref {
	const char	*title;
	size_t		 index;
};

/* Orders by title, then by task index, so the first user leads each run. */
static int
title_ref_cmp(const void *a, const void *b)
{
	const struct title_ref *x = a, *y = b;
	int c = strcmp(x->title, y->title);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Reports every task whose baseTitle an earlier task already uses: two
 * masters cannot share one identity.  Sorting keeps a long task list fast.
 */
static void
titles_check(struct parse_ctx *ctx, const struct task_values *tv,
    const unsigned char *is_task, size_t n)
{
	struct title_ref	*refs;
	size_t			*owner, nrefs = 0, i;
	char			 got[GOT_MAX + 1];
	json_t			*s;

	refs = calloc(n, sizeof(*refs));
	owner = calloc(n, sizeof(*owner));
	if (refs == NULL || owner == NULL) {
		report(ctx, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		owner[i] = i;
		if (!is_task[i] || tv[i].bad[K_BASE_TITLE])
			continue;
		refs[nrefs].title = str_or(&tv[i], K_BASE_TITLE,
		    DEFAULT_BASE_TITLE);
		refs[nrefs++].index = i;
	}
	qsort(refs, nrefs, sizeof(*refs), title_ref_cmp);
	for (i = 1; i < nrefs; i++)
		if (strcmp(refs[i].title, refs[i - 1].title) == 0)
			owner[refs[i].index] = owner[refs[i - 1].index];
	for (i = 0; i < n; i++) {
		if (owner[i] == i)
			continue;
		if ((s = json_string(str_or(&tv[i], K_BASE_TITLE,
		    DEFAULT_BASE_TITLE))) == NULL) {
			report(ctx, "out of memory");
			continue;
		}
		got_text(s, got, sizeof(got));
		json_decref(s);
		report(ctx, "tasks[%zu].baseTitle: %s is already used by "
		    "tasks[%zu]", i, got, owner[i]);
	}
out:
	free(refs);
	free(owner);
}

/* Is the text nothing but JSON whitespace? */
static int
text_blank(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' &&
		    text[i] != '\r')
			return 0;
	return 1;
}

/*
 * Validates the whole document, then builds the tasks only if nothing was
 * wrong.  Each task starts from the top level's values and takes its own
 * keys over them; a top-level value is checked once, where it is written.
 */
int
config_parse(const char *text, size_t len, const char *path,
    struct config *cfg, struct config_errors *errs)
{
	struct parse_ctx	 ctx = { .path = path, .errs = errs };
	struct task_values	 top, *tv = NULL;
	unsigned char		*is_task = NULL;
	json_t			*root = NULL, *tasks, *el;
	json_error_t		 jerr;
	size_t			 ntasks = 0, i;
	char			 prefix[48], got[GOT_MAX + 1];

	cfg->ntasks = 0;
	cfg->tasks = NULL;
	memset(&top, 0, sizeof(top));
	/* A getcwd failure is reported, yet the text is still checked. */
	(void)ctx_paths(&ctx);

	if (text_blank(text, len)) {
		report(&ctx, "the file is empty, expected a JSON object");
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &jerr);
	if (root == NULL) {
		char shown[sizeof(jerr.text) * 4];

		/* jansson quotes raw input: keep the message one clean line. */
		escape_controls(jerr.text, shown, sizeof(shown));
		report_syntax(&ctx, "%d:%d: %s", jerr.line, jerr.column, shown);
		goto out;
	}
	if (!json_is_object(root)) {
		report(&ctx, "the top level must be a JSON object, got %s",
		    type_words(root));
		goto out;
	}

	object_read(&ctx, root, NULL, &top);
	tasks = top.val[K_TASKS];
	top.val[K_TASKS] = NULL;
	if (tasks == NULL) {
		if (top.val[K_PLUGIN] == NULL)
			report(&ctx, "plugin: required key is missing");
		ntasks = 1;
	} else if (!top.bad[K_TASKS]) {
		ntasks = json_array_size(tasks);
	}
	if (ntasks == 0)
		goto out;
	tv = calloc(ntasks, sizeof(*tv));
	is_task = calloc(ntasks, 1);
	if (tv == NULL || is_task == NULL) {
		report(&ctx, "out of memory");
		goto out;
	}
	if (tasks == NULL) {
		tv[0] = top;
		is_task[0] = 1;
	}
	for (i = 0; tasks != NULL && i < ntasks; i++) {
		el = json_array_get(tasks, i);
		snprintf(prefix, sizeof(prefix), "tasks[%zu]", i);
		if (!json_is_object(el)) {
			got_text(el, got, sizeof(got));
			report(&ctx, "%s: must be an object, got %s", prefix,
			    got);
			continue;
		}
		tv[i] = top;
		is_task[i] = 1;
		object_read(&ctx, el, prefix, &tv[i]);
		if (tv[i].val[K_PLUGIN] == NULL)
			report(&ctx, "%s.plugin: required key is missing",
			    prefix);
	}
	if (tasks != NULL)
		titles_check(&ctx, tv, is_task, ntasks);
	if (ctx.nerrors > 0)
		goto out;

	if ((cfg->tasks = calloc(ntasks, sizeof(*cfg->tasks))) == NULL) {
		report(&ctx, "out of memory");
		goto out;
	}
	for (i = 0; i < ntasks; i++) {
		if (task_build(&ctx, &cfg->tasks[i], &tv[i]) == -1) {
			cfg->ntasks = i;
			config_free(cfg);
			report(&ctx, "out of memory");
			goto out;
		}
	}
	cfg->ntasks = ntasks;
out:
	free(tv);
	free(is_task);
	json_decref(root);
	free(ctx.abs_path);
	free(ctx.dir);
	return ctx.nerrors > 0 ? -1 : 0;
}

/*
 * Reads the whole file into buf.  The size is checked before reading, and
 * again while reading in case the file grows meanwhile.
 */
static int
file_read(struct parse_ctx *ctx, int fd, char **bufp, size_t *lenp)
{
	struct stat	 st;
	char		*buf = NULL, *nbuf;
	size_t		 len = 0, size;
	ssize_t		 n;
	int		 flags;

	if (fstat(fd, &st) == -1) {
		report(ctx, "%s", strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		report(ctx, "is a directory");
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		report(ctx, "not a regular file");
		return -1;
	}
	if (st.st_size > CONFIG_MAX_BYTES) {
		report(ctx, "file too large (%lld bytes, at most %d)",
		    (long long)st.st_size, CONFIG_MAX_BYTES);
		return -1;
	}
	/* Opened non-blocking only so that a FIFO could not hang us. */
	if ((flags = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);

	/* One byte of slack tells "exactly the limit" from "over it". */
	size = (size_t)st.st_size + 1;
	if ((buf = malloc(size)) == NULL) {
		report(ctx, "out of memory");
		return -1;
	}
	for (;;) {
		if (len == size) {
			size = size * 2 > CONFIG_MAX_BYTES + 1 ?
			    CONFIG_MAX_BYTES + 1 : size * 2;
			if ((nbuf = realloc(buf, size)) == NULL) {
				report(ctx, "out of memory");
				goto fail;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			report(ctx, "%s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_MAX_BYTES) {
			report(ctx, "file too large (more than %d bytes, at "
			    "most %d)", CONFIG_MAX_BYTES, CONFIG_MAX_BYTES);
			goto fail;
		}
	}
	*bufp = buf;
	*lenp = len;
	return 0;
fail:
	free(buf);
	return -1;
}

int
config_load(const char *path, struct config *cfg,
    struct config_errors *errs)
{
	struct parse_ctx	 ctx = { .path = path, .errs = errs };
	char			*buf = NULL;
	size_t			 len = 0;
	int			 fd, rc;

	cfg->ntasks = 0;
	cfg->tasks = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		report(&ctx, "%s", strerror(errno));
		return -1;
	}
	rc = file_read(&ctx, fd, &buf, &len);
	close(fd);
	if (rc == -1)
		return -1;
	rc = config_parse(buf, len, path, cfg, errs);
	free(buf);
	return rc;
}

void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->ntasks; i++)
		task_config_free(&cfg->tasks[i]);
	free(cfg->tasks);
	cfg->tasks = NULL;
	cfg->ntasks = 0;
}

void
config_errors_free(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->count = 0;
}

int
task_config_copy(struct task_config *dst, const struct task_config *src)
{
	/* Scalars by value; no pointer may alias src if we fail halfway. */
	*dst = *src;
	for (int k = 0; k < K_COUNT; k++)
		if (key_specs[k].type == F_STR)
			*(char **)field_of(dst, k) = NULL;
	for (int k = 0; k < K_COUNT; k++) {
		if (key_specs[k].type != F_STR)
			continue;
		if (str_dup((char **)field_of(dst, k),
		    *(char *const *)((const char *)src + key_specs[k].off)) < 0) {
			task_config_free(dst);
			return -1;
		}
	}
	return 0;
}

void
task_config_free(struct task_config *tc)
{
	for (int k = 0; k < K_COUNT; k++)
		if (key_specs[k].type == F_STR)
			free(*(char **)field_of(tc, k));
	memset(tc, 0, sizeof(*tc));
	tc->log_level = -1;
}
