/*
 * cli.c - the pmhost command line: argv to struct cli, and the help texts.
 * Parsing is pure (no output, no environment, no file system); every usage
 * error becomes one line naming the word at fault, and *cli is left at its
 * defaults.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "names.h"

#define WORD_SHOWN	70	/* longest user word quoted in a message */

#if defined(__GNUC__)
#define CLI_PRINTF(f, a)	__attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* Options, as bits so that a command lists the ones it accepts. */
enum opt_id {
	OPT_DAEMON	= 1 << 0,
	OPT_LOG_FILE	= 1 << 1,
	OPT_LOG_LEVEL	= 1 << 2,
	OPT_TITLE	= 1 << 3,
	OPT_ALL		= 1 << 4,
	OPT_TIMEOUT	= 1 << 5,
	OPT_JSON	= 1 << 6
};

struct opt_spec {
	const char	*name;		/* "--title" */
	const char	*short_name;	/* "-d", or NULL */
	unsigned	 id;
	int		 takes_value;
	int		 numeric;	/* a separate "-5" is its value */
};

static const struct opt_spec opt_specs[] = {
	{ "--daemon",	 "-d", OPT_DAEMON,    0, 0 },
	{ "--log-file",	 NULL, OPT_LOG_FILE,  1, 0 },
	{ "--log-level", NULL, OPT_LOG_LEVEL, 1, 0 },
	{ "--title",	 NULL, OPT_TITLE,     1, 0 },
	{ "--all",	 NULL, OPT_ALL,	      0, 0 },
	{ "--timeout",	 NULL, OPT_TIMEOUT,   1, 1 },
	{ "--json",	 NULL, OPT_JSON,      0, 0 },
};

struct cmd_spec {
	const char	*name;
	enum cli_command cmd;
	unsigned	 opts;		/* OPT_* bits valid for this command */
};

static const struct cmd_spec cmd_specs[] = {
	{ "run",	CMD_RUN,	OPT_DAEMON | OPT_LOG_FILE | OPT_LOG_LEVEL },
	{ "stop",	CMD_STOP,	OPT_TITLE | OPT_ALL | OPT_TIMEOUT },
	{ "restart",	CMD_RESTART,	OPT_TITLE },
	{ "status",	CMD_STATUS,	OPT_TITLE | OPT_JSON },
	{ "wakeup",	CMD_WAKEUP,	OPT_TITLE },
	{ "scale",	CMD_SCALE,	OPT_TITLE },
	{ "check",	CMD_CHECK,	0 },
	{ "help",	CMD_HELP,	0 },
};

#define NCMDS	(sizeof(cmd_specs) / sizeof(cmd_specs[0]))
#define NOPTS	(sizeof(opt_specs) / sizeof(opt_specs[0]))
#define MAX_POS	3	/* positionals kept; more is always an error */

/* The state of one cli_parse() call. */
struct parser {
	const struct cmd_spec *spec;
	struct cli	 cli;
	unsigned	 seen;		/* OPT_* bits given so far */
	const char	*pos[MAX_POS];
	int		 npos;		/* positionals given, even beyond MAX_POS */
	char		*err;
	size_t		 errlen;
};

static const char general_help[] =
"pmhost - run a C task plugin as a resident master with a pool of workers.\n"
"\n"
"usage:\n"
"  pmhost run CONFIG [-d|--daemon] [--log-file FILE] [--log-level LEVEL]\n"
"  pmhost stop    (--title NAME | CONFIG | --all) [--timeout SECONDS]\n"
"  pmhost restart (--title NAME | CONFIG)\n"
"  pmhost status  [--title NAME | CONFIG] [--json]\n"
"  pmhost wakeup  (--title NAME | CONFIG)\n"
"  pmhost scale   (--title NAME | CONFIG) N\n"
"  pmhost check   CONFIG\n"
"  pmhost --help | -h | help [COMMAND] | --version | -V\n"
"\n"
"commands:\n"
"  run      start a master and its workers from CONFIG\n"
"  stop     stop a master gracefully and wait until it is gone\n"
"  restart  reload a running master in place, or start it if not running\n"
"  status   show masters and their workers, from live state\n"
"  wakeup   make a master respawn its missing workers now\n"
"  scale    set a master's live worker count\n"
"  check    validate CONFIG and load its plugin, like 'nginx -t'\n"
"  help     show this help, or a command's\n"
"\n"
"NAME is a task's baseTitle; CONFIG in its place means the task(s) that\n"
"config file names.  Options may come before or after the other arguments;\n"
"give a value as '--opt VALUE' or '--opt=VALUE' (the latter for a value that\n"
"starts with '-'); '--' ends the options.\n"
"\n"
"exit status:\n"
"  0  success\n"
"  1  runtime failure: not running, timeout, plugin failed\n"
"  2  usage or config error\n"
"\n"
"Run 'pmhost help COMMAND' for details.\n";

static const char run_help[] =
"usage: pmhost run CONFIG [-d|--daemon] [--log-file FILE] [--log-level LEVEL]\n"
"\n"
"Start the master of the task(s) CONFIG names.  The master forks maxWorkerNum\n"
"workers that call the plugin's work() on the executeUSleep cadence, and\n"
"respawns each one as it exits.  A config or plugin that fails the checks of\n"
"'pmhost check' starts nothing.\n"
"\n"
"Without -d, run stays in the foreground and logs to stderr until the master\n"
"stops.  With -d it detaches and returns once the master is ready (pid file\n"
"locked, first workers started: exit 0) or has failed (non-zero, with the\n"
"reason on stderr).\n"
"\n"
"options:\n"
"  -d, --daemon        detach; log to logFile, else to NAME.log in the run dir\n"
"  --log-file FILE     log to FILE, in place of the config's logFile\n"
"  --log-level LEVEL   debug, info, notice, warning or error, in place of\n"
"                      the config's logLevel\n"
"  -h, --help          show this help\n"
"\n"
"signals the master understands:\n"
"  TERM, INT    stop gracefully (as 'pmhost stop')\n"
"  HUP          reload config and plugin in place (as 'pmhost restart')\n"
"  USR1         reopen the log file (for logrotate)\n"
"  TTIN, TTOU   one worker more, one worker less\n"
"  ALRM         respawn missing workers now (as 'pmhost wakeup')\n";

static const char stop_help[] =
"usage: pmhost stop (--title NAME | CONFIG | --all) [--timeout SECONDS]\n"
"\n"
"Ask a master to stop gracefully: workers finish their current work() call,\n"
"run work_fini and exit; any still running after stopTimeout are killed.\n"
"stop returns only when the master is gone.  If it is still there after\n"
"--timeout seconds, stop says so and exits 1.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the master(s) of the task(s) CONFIG names\n"
"  --all               every master of this user\n"
"  --timeout SECONDS   stop waiting after SECONDS, 0 to 86400\n"
"  -h, --help          show this help\n";

static const char restart_help[] =
"usage: pmhost restart (--title NAME | CONFIG)\n"
"\n"
"Reload a running master gracefully, in place: it re-reads its config file,\n"
"checks it and the plugin as 'pmhost check' does, then replaces its workers\n"
"so that the task never has zero live workers.  A config or plugin that fails\n"
"the check, or a first new worker whose work_init fails, leaves the running\n"
"workers untouched and restart exits non-zero with the reason.  'restart\n"
"CONFIG' of a task that is not running starts it in the background.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the task(s) CONFIG names\n"
"  -h, --help          show this help\n";

static const char status_help[] =
"usage: pmhost status [--title NAME | CONFIG] [--json]\n"
"\n"
"Show each running master (all of this user's, or the one(s) named) and its\n"
"workers: pid, title, memory, start time, run time, the master's live worker\n"
"count and each worker's work() calls, with their state, restarts and last\n"
"exit.  status answers from live state at once; it never sleeps.\n"
"\n"
"options:\n"
"  --title NAME        only the master whose baseTitle is NAME\n"
"  CONFIG              only the master(s) of the task(s) CONFIG names\n"
"  --json              print the same facts as one JSON document\n"
"  -h, --help          show this help\n";

static const char wakeup_help[] =
"usage: pmhost wakeup (--title NAME | CONFIG)\n"
"\n"
"Make a master check its workers now and respawn any that are missing, as\n"
"SIGALRM does.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the master(s) of the task(s) CONFIG names\n"
"  -h, --help          show this help\n";

static const char scale_help[] =
"usage: pmhost scale (--title NAME | CONFIG) N\n"
"\n"
"Set a running master's live worker count to N, 1 to 4096, without a\n"
"restart: missing workers are started, surplus ones stop gracefully.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the master(s) of the task(s) CONFIG names\n"
"  -h, --help          show this help\n";

static const char check_help[] =
"usage: pmhost check CONFIG\n"
"\n"
"Validate CONFIG and load its plugin in a throwaway child to confirm its\n"
"symbols and ABI, like 'nginx -t'.  Prints 'ok', or every problem found and\n"
"exits 2.\n"
"\n"
"options:\n"
"  -h, --help          show this help\n";

static const char help_help[] =
"usage: pmhost help [COMMAND]\n"
"\n"
"Show the general help, or the help of COMMAND (run, stop, restart, status,\n"
"wakeup, scale, check); 'pmhost COMMAND --help' does the same.\n";

static const char version_help[] =
"usage: pmhost --version | -V\n"
"\n"
"Print pmhost's version.\n";

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

static const struct cmd_spec *
find_command(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(name, cmd_specs[i].name) == 0)
			return &cmd_specs[i];
	return NULL;
}

/* The option of this command spelled by the first len bytes of word. */
static const struct opt_spec *
find_option(const struct cmd_spec *spec, const char *word, size_t len)
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
		    !(p->spec->cmd == CMD_SCALE && is_negative_number(w))) {
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
	if (p->spec->cmd == CMD_STOP) {
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
	if (given > 1)
		return fail(p, "%s takes only one of --title NAME or CONFIG",
		    name);
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
	const struct cmd_spec *topic;
	char buf[WORD_SHOWN + 4];

	if (p->npos > 1)
		return unexpected(p, p->pos[1]);
	if (p->npos == 0) {
		p->cli.help_topic = CMD_NONE;
		return 0;
	}
	if ((topic = find_command(p->pos[0])) == NULL)
		return fail(p, "unknown command '%s' (try 'pmhost --help')",
		    shorten(p->pos[0], strlen(p->pos[0]), buf));
	p->cli.help_topic = topic->cmd;
	return 0;
}

/* Applies the positional rules of p->spec once every word is sorted. */
static int
finish(struct parser *p)
{
	switch (p->spec->cmd) {
	case CMD_RUN:
	case CMD_CHECK:
		if (p->npos == 0)
			return fail(p, "%s needs a CONFIG file", p->spec->name);
		if (p->npos > 1)
			return unexpected(p, p->pos[1]);
		return set_config(p, p->pos[0]);
	case CMD_STOP:
	case CMD_RESTART:
	case CMD_WAKEUP:
		return finish_target(p, 1);
	case CMD_STATUS:
		return finish_target(p, 0);
	case CMD_SCALE:
		return finish_scale(p);
	case CMD_HELP:
		return finish_help(p);
	default:
		return fail(p, "internal error: command '%s' has no rules",
		    p->spec->name);
	}
}

static void
cli_defaults(struct cli *cli)
{
	memset(cli, 0, sizeof(*cli));
	cli->cmd = CMD_NONE;
	cli->help_topic = CMD_NONE;
	cli->log_level = -1;
	cli->timeout = -1;
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
		p->cli.cmd = CMD_HELP;
		return 0;
	}
	if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
		if (argc > 2)
			return fail(p, "unexpected argument '%s' for '%s'",
			    shorten(argv[2], strlen(argv[2]), buf), first);
		p->cli.cmd = CMD_VERSION;
		return 0;
	}
	if (is_option_word(first))
		return fail(p, "unknown option '%s' (try 'pmhost --help')",
		    shorten(first, strlen(first), buf));
	if ((p->spec = find_command(first)) == NULL)
		return fail(p, "unknown command '%s' (try 'pmhost --help')",
		    shorten(first, strlen(first), buf));
	if (help_requested(argc, argv)) {
		p->cli.cmd = CMD_HELP;
		p->cli.help_topic = p->spec->cmd;
		return 0;
	}
	p->cli.cmd = p->spec->cmd;
	if (parse_words(p, argc, argv) == -1)
		return -1;
	return finish(p);
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

const char *
cli_help(enum cli_command cmd)
{
	switch (cmd) {
	case CMD_RUN:
		return run_help;
	case CMD_STOP:
		return stop_help;
	case CMD_RESTART:
		return restart_help;
	case CMD_STATUS:
		return status_help;
	case CMD_WAKEUP:
		return wakeup_help;
	case CMD_SCALE:
		return scale_help;
	case CMD_CHECK:
		return check_help;
	case CMD_HELP:
		return help_help;
	case CMD_VERSION:
		return version_help;
	case CMD_NONE:
	default:
		return general_help;
	}
}

const char *
cli_command_name(enum cli_command cmd)
{
	switch (cmd) {
	case CMD_HELP:
		return "help";
	case CMD_VERSION:
		return "version";
	default:
		for (size_t i = 0; i < NCMDS; i++)
			if (cmd_specs[i].cmd == cmd)
				return cmd_specs[i].name;
		return "?";
	}
}
