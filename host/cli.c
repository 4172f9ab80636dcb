/*
 * cli.c - the pmhost command line: argv to struct cli, and the help texts,
 * both driven by the command table (commands.c).  Parsing is pure (no
 * output, no environment, no file system); every usage error becomes one
 * line naming the word at fault, and *cli is left at its defaults.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "names.h"

#define WORD_SHOWN	70	/* longest user word quoted in a message */

#if defined(__GNUC__)
#define CLI_PRINTF(f, a)	__attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

struct opt_spec {
	const char	*name;		/* "--title" */
	const char	*short_name;	/* "-d", or NULL */
	unsigned	 id;
	int		 takes_value;
	int		 numeric;	/* a separate "-5" is its value */
};

#define NOPTS	(sizeof(opt_specs) / sizeof(opt_specs[0]))
#define MAX_POS	3	/* positionals kept; more is always an error */

/* The state of one cli_parse() call. */
struct parser {
	const struct command *spec;
	struct cli	 cli;
	unsigned	 seen;		/* OPT_* bits given so far */
	const char	*pos[MAX_POS];
	int		 npos;		/* positionals given, even beyond MAX_POS */
	char		*err;
	size_t		 errlen;
};

static const struct opt_spec opt_specs[] = {
	{ "--daemon",	 "-d", OPT_DAEMON,    0, 0 },
	{ "--log-file",	 NULL, OPT_LOG_FILE,  1, 0 },
	{ "--log-level", NULL, OPT_LOG_LEVEL, 1, 0 },
	{ "--title",	 NULL, OPT_TITLE,     1, 0 },
	{ "--all",	 NULL, OPT_ALL,	      0, 0 },
	{ "--timeout",	 NULL, OPT_TIMEOUT,   1, 1 },
	{ "--json",	 NULL, OPT_JSON,      0, 0 },
	{ "--quiet",	 "-q", OPT_QUIET,     0, 0 },
	{ "--prune",	 NULL, OPT_PRUNE,     0, 0 },
	{ "--follow",	 "-f", OPT_FOLLOW,    0, 0 },
	{ "--lines",	 "-n", OPT_LINES,     1, 1 },
	{ "--slot",	 NULL, OPT_SLOT,      1, 1 },
	{ "--level",	 NULL, OPT_LEVEL,     1, 0 },
	{ "--format",	 NULL, OPT_FORMAT,    1, 0 },
	{ "--log-format", NULL, OPT_LOG_FORMAT, 1, 0 },
	{ "--listen",	 NULL, OPT_LISTEN,    1, 0 },
	{ "--rundir",	 NULL, OPT_RUNDIR,    1, 0 },
	{ "--batch",	 "-b", OPT_BATCH,     0, 0 },
	{ "--iterations", "-n", OPT_ITERATIONS, 1, 1 },
	{ "--interval",	 NULL, OPT_INTERVAL,  1, 1 },
};

/* Writes a usage error into p->err; returns -1 for the caller to return. */
static CLI_PRINTF(2, 3) int
fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err != NULL && p->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The first n bytes of s, cut to WORD_SHOWN with "..." for a message. */
static const char *
shorten(const char *s, size_t n, char buf[WORD_SHOWN + 4])
{
	if (n > WORD_SHOWN) {
		memcpy(buf, s, WORD_SHOWN);
		memcpy(buf + WORD_SHOWN, "...", 4);
	} else {
		memcpy(buf, s, n);
		buf[n] = '\0';
	}
	return buf;
}

/* An unknown command word: a suggestion when one is close. */
static int
unknown_command(struct parser *p, const char *word)
{
	char buf[WORD_SHOWN + 4];
	const char *hint = command_suggest(word);

	if (hint != NULL)
		return fail(p, "unknown command '%s' (did you mean '%s'?)",
		    shorten(word, strlen(word), buf), hint);
	return fail(p, "unknown command '%s' (try 'pmhost --help')",
	    shorten(word, strlen(word), buf));
}

/* The option of this command spelled by the first len bytes of word. */
static const struct opt_spec *
find_option(const struct command *spec, const char *word, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt_spec *o = &opt_specs[i];

		if ((spec->opts & o->id) == 0)
			continue;
		if (strlen(o->name) == len && strncmp(word, o->name, len) == 0)
			return o;
		if (o->short_name != NULL && strlen(o->short_name) == len &&
		    strncmp(word, o->short_name, len) == 0)
			return o;
	}
	return NULL;
}

static int
is_digits(const char *w)
{
	if (*w == '\0')
		return 0;
	for (; *w != '\0'; w++)
		if (*w < '0' || *w > '9')
			return 0;
	return 1;
}

static int
is_negative_number(const char *w)
{
	return w[0] == '-' && w[1] >= '0' && w[1] <= '9';
}

/* "-x..." and "--x..." are options; "-" alone is an ordinary word. */
static int
is_option_word(const char *w)
{
	return w[0] == '-' && w[1] != '\0';
}

/*
 * A decimal count from min to max: digits only, so no sign, space, suffix
 * or base prefix slips through, and no overflow however long the string.
 */
static int
parse_count(const char *s, long min, long max, long *out)
{
	long v = 0;

	if (!is_digits(s))
		return -1;
	for (; *s != '\0'; s++) {
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	if (v < min)
		return -1;
	*out = v;
	return 0;
}

/*
 * Seconds with up to three decimals ("1", "0.5", "2.25") as ms, from min
 * to max ms: digits and one dot only, as parse_count() takes a count.
 */
static int
parse_seconds_ms(const char *s, long min, long max, long *out)
{
	long ms = 0, scale = 1000;
	int digits = 0, frac = 0;

	for (; *s != '\0'; s++) {
		if (*s == '.' && !frac && digits > 0) {
			frac = 1;
			continue;
		}
		if (*s < '0' || *s > '9')
			return -1;
		digits++;
		if (!frac) {
			ms = ms * 10 + (*s - '0') * 1000;
			if (ms > max)
				return -1;
		} else if ((scale /= 10) > 0) {
			ms += (*s - '0') * scale;
		} else if (*s != '0') {
			return -1;	/* finer than a millisecond */
		}
	}
	if (digits == 0 || s[-1] == '.' || ms < min || ms > max)
		return -1;
	*out = ms;
	return 0;
}

int
cli_listen_split(const char *value, char *host, size_t hostlen, long *port)
{
	const char *colon, *portstr;
	size_t n;

	if (value[0] == '[') {
		const char *end = strchr(value, ']');

		if (end == NULL || end[1] != ':' || end == value + 1)
			return -1;
		n = (size_t)(end - value - 1);
		if (n >= hostlen)
			return -1;
		memcpy(host, value + 1, n);
		host[n] = '\0';
		portstr = end + 2;
	} else if ((colon = strrchr(value, ':')) != NULL) {
		n = (size_t)(colon - value);
		/* An IPv6 address must be in brackets: "::1:80" is not. */
		if (memchr(value, ':', n) != NULL || n >= hostlen)
			return -1;
		memcpy(host, value, n);
		host[n] = '\0';
		portstr = colon + 1;
	} else {
		host[0] = '\0';
		portstr = value;
	}
	if (host[0] == '\0')
		copy_str(host, "127.0.0.1", hostlen);
	return parse_count(portstr, 0, 65535, port);
}

/* Does a word of argv[2..] before any "--" ask for help? */
static int
help_requested(int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

/* Checks an option's value and stores it. */
static int
set_value(struct parser *p, const struct opt_spec *o, const char *value)
{
	char buf[WORD_SHOWN + 4];
	const char *shown = shorten(value, strlen(value), buf);
	int level;

	switch (o->id) {
	case OPT_TITLE:
		if (title_valid(value)) {
			p->cli.title = value;
			return 0;
		}
		if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
			return fail(p, "invalid title '%s': '.' and '..' "
			    "cannot be titles", shown);
		return fail(p, "invalid title '%s': must match "
		    "[A-Za-z0-9_.-]{1,%d}", shown, TITLE_MAX);
	case OPT_TIMEOUT:
		if (parse_count(value, 0, CLI_TIMEOUT_MAX, &p->cli.timeout) ==
		    0)
			return 0;
		return fail(p, "--timeout must be an integer from 0 to %d, "
		    "got '%s'", CLI_TIMEOUT_MAX, shown);
	case OPT_LOG_LEVEL:
		if ((level = log_level_from_name(value)) >= 0) {
			p->cli.log_level = level;
			return 0;
		}
		return fail(p, "--log-level must be one of " LOG_LEVEL_NAMES
		    ", got '%s'", shown);
	case OPT_LOG_FILE:
		p->cli.log_file = value;
		return 0;
	case OPT_LINES:
		if (parse_count(value, 0, CLI_LINES_MAX, &p->cli.lines) == 0)
			return 0;
		return fail(p, "-n must be an integer from 0 to %d, got '%s'",
		    CLI_LINES_MAX, shown);
	case OPT_SLOT:
		if (parse_count(value, 0, CLI_SCALE_MAX - 1, &p->cli.slot) ==
		    0)
			return 0;
		return fail(p, "--slot must be an integer from 0 to %d, got "
		    "'%s'", CLI_SCALE_MAX - 1, shown);
	case OPT_LEVEL:
		if ((level = log_level_from_name(value)) >= 0) {
			p->cli.level = level;
			return 0;
		}
		return fail(p, "--level must be one of " LOG_LEVEL_NAMES
		    ", got '%s'", shown);
	case OPT_FORMAT:
		if (strcmp(value, "table") == 0 || strcmp(value, "text") == 0)
			p->cli.format = OUT_TABLE;
		else if (strcmp(value, "json") == 0)
			p->cli.format = OUT_JSON;
		else if (strcmp(value, "prometheus") == 0)
			p->cli.format = OUT_PROMETHEUS;
		else
			return fail(p, "--format must be one of table, json, "
			    "prometheus, got '%s'", shown);
		p->cli.json = p->cli.format == OUT_JSON;
		return 0;
	case OPT_LISTEN: {
		char host[CLI_HOST_MAX];
		long port;

		if (cli_listen_split(value, host, sizeof(host), &port) < 0)
			return fail(p, "--listen must be ADDR:PORT, "
			    "[ADDR]:PORT (IPv6) or PORT, the port 0 to 65535, "
			    "got '%s'", shown);
		p->cli.listen = value;
		return 0;
	}
	case OPT_RUNDIR:
		p->cli.run_dir = value;
		return 0;
	case OPT_ITERATIONS:
		if (parse_count(value, 1, CLI_LINES_MAX, &p->cli.iterations) ==
		    0)
			return 0;
		return fail(p, "-n must be an integer from 1 to %d, got '%s'",
		    CLI_LINES_MAX, shown);
	case OPT_INTERVAL:
		if (parse_seconds_ms(value, CLI_INTERVAL_MIN_MS,
		    CLI_INTERVAL_MAX_MS, &p->cli.interval_ms) == 0)
			return 0;
		return fail(p, "--interval must be seconds from %g to %d "
		    "(e.g. 0.5), got '%s'", CLI_INTERVAL_MIN_MS / 1000.0,
		    CLI_INTERVAL_MAX_MS / 1000, shown);
	case OPT_LOG_FORMAT:
		if (strcmp(value, "text") == 0)
			p->cli.log_format = LOG_TEXT;
		else if (strcmp(value, "json") == 0)
			p->cli.log_format = LOG_JSON;
		else
			return fail(p, "--log-format must be text or json, got "
			    "'%s'", shown);
		return 0;
	default:
		assert(!"set_value: option without a value");
		return -1;
	}
}

/* Sets a flag option. */
static void
set_flag(struct parser *p, const struct opt_spec *o)
{
	switch (o->id) {
	case OPT_DAEMON:
		p->cli.daemon = 1;
		break;
	case OPT_ALL:
		p->cli.all = 1;
		break;
	case OPT_JSON:
		p->cli.json = 1;
		p->cli.format = OUT_JSON;
		break;
	case OPT_QUIET:
		p->cli.quiet = 1;
		break;
	case OPT_PRUNE:
		p->cli.prune = 1;
		break;
	case OPT_FOLLOW:
		p->cli.follow = 1;
		break;
	case OPT_BATCH:
		p->cli.batch = 1;
		break;
	default:
		assert(!"set_flag: option with a value");
		break;
	}
}

/*
 * Handles the option word argv[*i] (consuming its value word if any).
 * A value in a separate word may not look like an option, so that
 * "--title --all" is a missing title rather than a task called "--all".
 */
static int
parse_option(struct parser *p, int argc, char **argv, int *i)
{
	const char *word = argv[*i], *eq = NULL, *value;
	const struct opt_spec *o;
	char buf[WORD_SHOWN + 4];
	size_t len;

	if (word[1] == '-' && (eq = strchr(word, '=')) != NULL)
		len = (size_t)(eq - word);
	else
		len = strlen(word);
	if ((o = find_option(p->spec, word, len)) == NULL)
		return fail(p, "unknown option '%s' for '%s'",
		    shorten(word, len, buf), p->spec->name);
	if (p->seen & o->id)
		return fail(p, "option '%.*s' given twice", (int)len, word);
	p->seen |= o->id;

	if (!o->takes_value) {
		if (eq != NULL)
			return fail(p, "option '%.*s' takes no value",
			    (int)len, word);
		set_flag(p, o);
		return 0;
	}
	if (eq != NULL)
		value = eq + 1;
	else if (*i + 1 < argc && (!is_option_word(argv[*i + 1]) ||
	    (o->numeric && is_negative_number(argv[*i + 1]))))
		value = argv[++*i];
	else if (*i + 1 < argc)
		return fail(p, "option '%s' needs a value, got option '%s' "
		    "(write %s=VALUE for a value starting with '-')", o->name,
		    shorten(argv[*i + 1], strlen(argv[*i + 1]), buf), o->name);
	else
		return fail(p, "option '%s' needs a value", o->name);
	if (*value == '\0')
		return fail(p, "option '%s' needs a value, got ''", o->name);
	return set_value(p, o, value);
}

/* Sorts argv[2..] into options and positionals. */
static int
parse_words(struct parser *p, int argc, char **argv)
{
	int options_done = 0;

	for (int i = 2; i < argc; i++) {
		const char *w = argv[i];

		if (!options_done && strcmp(w, "--") == 0) {
			options_done = 1;
			continue;
		}
		/* "scale --title t -1" is a bad N, not an unknown option. */
		if (!options_done && is_option_word(w) &&
		    !(p->spec->args == ARGS_SCALE && is_negative_number(w))) {
			if (parse_option(p, argc, argv, &i) == -1)
				return -1;
			continue;
		}
		if (p->npos < MAX_POS)
			p->pos[p->npos] = w;
		p->npos++;
	}
	return 0;
}

static int
unexpected(struct parser *p, const char *word)
{
	char buf[WORD_SHOWN + 4];

	return fail(p, "unexpected argument '%s' for '%s'",
	    shorten(word, strlen(word), buf), p->spec->name);
}

static int
set_config(struct parser *p, const char *word)
{
	if (*word == '\0')
		return fail(p, "CONFIG for '%s' is an empty string ''",
		    p->spec->name);
	p->cli.config = word;
	return 0;
}

/* At most one CONFIG positional, and the rules on naming the task. */
static int
finish_target(struct parser *p, int required)
{
	const char *name = p->spec->name;
	int given;

	if (p->npos > 1)
		return unexpected(p, p->pos[1]);
	if (p->npos == 1 && set_config(p, p->pos[0]) == -1)
		return -1;
	given = (p->cli.title != NULL) + (p->cli.config != NULL) + p->cli.all;
	if (p->spec->args == ARGS_STOP) {
		if (given == 0)
			return fail(p, "stop needs one of --title NAME, CONFIG "
			    "or --all");
		if (given > 1)
			return fail(p, "stop takes only one of --title NAME, "
			    "CONFIG or --all");
		return 0;
	}
	if (given == 0 && required)
		return fail(p, "%s needs one of --title NAME or CONFIG", name);
	if (given > 1 && (p->spec->opts & OPT_ALL))
		return fail(p, "%s takes only one of --title NAME, CONFIG or "
		    "--all", name);
	if (given > 1)
		return fail(p, "%s takes only one of --title NAME or CONFIG",
		    name);
	if ((p->seen & OPT_JSON) && (p->seen & OPT_FORMAT) &&
	    p->cli.format != OUT_JSON)
		return fail(p, "--json and --format %s contradict each other",
		    p->cli.format == OUT_TABLE ? "table" : "prometheus");
	return 0;
}

/* scale: N after --title NAME, or CONFIG then N. */
static int
finish_scale(struct parser *p)
{
	char buf[WORD_SHOWN + 4];
	const char *n;

	if (p->cli.title != NULL) {
		if (p->npos == 2)
			return fail(p, "scale takes only one of --title NAME "
			    "or CONFIG");
		if (p->npos > 2)
			return unexpected(p, p->pos[2]);
		if (p->npos == 0)
			return fail(p, "scale needs N, the number of workers");
		n = p->pos[0];
	} else {
		if (p->npos > 2)
			return unexpected(p, p->pos[2]);
		/* A lone number is N without a task, not a config file. */
		if (p->npos == 0 ||
		    (p->npos == 1 && is_digits(p->pos[0])))
			return fail(p, "scale needs one of --title NAME or "
			    "CONFIG");
		if (set_config(p, p->pos[0]) == -1)
			return -1;
		if (p->npos == 1)
			return fail(p, "scale needs N, the number of workers");
		n = p->pos[1];
	}
	if (parse_count(n, 1, CLI_SCALE_MAX, &p->cli.scale) == -1)
		return fail(p, "scale needs N, an integer from 1 to %d, got '%s'",
		    CLI_SCALE_MAX, shorten(n, strlen(n), buf));
	return 0;
}

/* help [COMMAND] */
static int
finish_help(struct parser *p)
{
	const struct command *topic;

	if (p->npos > 1)
		return unexpected(p, p->pos[1]);
	if (p->npos == 0) {
		p->cli.help_topic = NULL;
		return 0;
	}
	if ((topic = command_find(p->pos[0])) == NULL)
		return unknown_command(p, p->pos[0]);
	p->cli.help_topic = topic;
	return 0;
}

/* Applies the positional rules of p->spec once every word is sorted. */
static int
apply_arg_rules(struct parser *p)
{
	switch (p->spec->args) {
	case ARGS_NONE:
		if (p->npos > 0)
			return unexpected(p, p->pos[0]);
		if ((p->spec->opts & OPT_LISTEN) && !(p->seen & OPT_LISTEN))
			return fail(p, "%s needs --listen ADDR:PORT",
			    p->spec->name);
		return 0;
	case ARGS_CONFIG:
		if (p->npos == 0)
			return fail(p, "%s needs a CONFIG file", p->spec->name);
		if (p->npos > 1)
			return unexpected(p, p->pos[1]);
		/* In the foreground, run waits for nothing to time out. */
		if ((p->spec->opts & OPT_DAEMON) && (p->seen & OPT_TIMEOUT) &&
		    !p->cli.daemon)
			return fail(p, "--timeout needs -d: it bounds the wait "
			    "for a detached master to be ready");
		return set_config(p, p->pos[0]);
	case ARGS_STOP:
	case ARGS_TARGET:
		return finish_target(p, 1);
	case ARGS_TARGET_OPT:
		return finish_target(p, 0);
	case ARGS_SCALE:
		return finish_scale(p);
	case ARGS_HELP:
		return finish_help(p);
	}
	return fail(p, "internal error: command '%s' has no rules",
	    p->spec->name);
}

static void
cli_defaults(struct cli *cli)
{
	memset(cli, 0, sizeof(*cli));
	cli->cmd = NULL;
	cli->help_topic = NULL;
	cli->log_level = -1;
	cli->timeout = -1;
	cli->lines = -1;
	cli->slot = -1;
	cli->level = -1;
	cli->log_format = -1;
	cli->iterations = -1;
	cli->interval_ms = -1;
}

/* The first argument: a command, or one of the global options. */
static int
parse(struct parser *p, int argc, char **argv)
{
	char buf[WORD_SHOWN + 4];
	const char *first;

	if (argc < 2 || argv == NULL || argv[1] == NULL)
		return fail(p, "missing command (try 'pmhost --help')");
	first = argv[1];
	if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0) {
		/* Help wins over whatever follows, as with COMMAND --help. */
		p->cli.cmd = command_find("help");
		return 0;
	}
	if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
		if (argc > 2)
			return fail(p, "unexpected argument '%s' for '%s'",
			    shorten(argv[2], strlen(argv[2]), buf), first);
		p->cli.cmd = command_find("version");
		return 0;
	}
	if (is_option_word(first))
		return fail(p, "unknown option '%s' (try 'pmhost --help')",
		    shorten(first, strlen(first), buf));
	if ((p->spec = command_find(first)) == NULL)
		return unknown_command(p, first);
	if (help_requested(argc, argv)) {
		p->cli.cmd = command_find("help");
		p->cli.help_topic = p->spec;
		return 0;
	}
	p->cli.cmd = p->spec;
	if (parse_words(p, argc, argv) == -1)
		return -1;
	return apply_arg_rules(p);
}

int
cli_parse(int argc, char **argv, struct cli *cli, char *err, size_t errlen)
{
	struct parser p;

	memset(&p, 0, sizeof(p));
	cli_defaults(&p.cli);
	p.err = err;
	p.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (parse(&p, argc, argv) == -1) {
		cli_defaults(cli);
		return -1;
	}
	*cli = p.cli;
	return 0;
}

/* Appends s with every run of blanks squeezed to one. */
static void
add_squeezed(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++)
		if (!(s[0] == ' ' && s[1] == ' '))
			buf_add(out, s, 1);
}

/* One "  pmhost run CONFIG ..." line of the general help. */
static void
add_usage(const struct command *c, void *arg)
{
	buf_printf(arg, "  %s\n", c->usage);
}

/* One "  run      start a master ..." line of the general help. */
static void
add_summary(const struct command *c, void *arg)
{
	buf_printf(arg, "  %-8s %s\n", c->name, c->summary);
}

void
cli_help(const struct command *cmd, struct buf *out)
{
	if (cmd != NULL && strcmp(cmd->name, "help") != 0) {
		buf_add(out, "usage: ", 7);
		add_squeezed(out, cmd->usage);
		buf_printf(out, "\n\n%s", cmd->help);
		return;
	}
	buf_printf(out, "pmhost - run task plugins as a resident master with a "
	    "pool of workers.\n\nusage:\n");
	commands_each(add_usage, out);
	buf_printf(out, "  pmhost --help | -h | help [COMMAND] | --version | "
	    "-V\n\ncommands:\n");
	commands_each(add_summary, out);
	buf_printf(out, "%s", command_find("help")->help);
}
