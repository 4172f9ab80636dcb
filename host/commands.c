/*
 * commands.c - the command table: each pmhost command once, with its
 * syntax, its help, its handler and (for the commands a master answers)
 * its request verb and master-side handler.  cli.c parses by it, main.c
 * runs by it, the master serves by it.
 */
#include <stdio.h>
#include <string.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "cli.h"
#include "names.h"

static const char run_help[] =
"Start the master of the task(s) CONFIG names.  The master forks maxWorkerNum\n"
"workers that call the plugin's work() on the executeUSleep cadence, and\n"
"respawns each one as it exits.  A config or plugin that fails the checks of\n"
"'pmhost check' starts nothing.  'start' is another name for 'run'.\n"
"\n"
"Without -d, run stays in the foreground and logs to stderr until the master\n"
"stops.  With -d it detaches and returns once the task is ready, every slot's\n"
"worker through work_init: it prints 'NAME: started (pid P, N workers; log\n"
"FILE)' and exits 0.  If a slot's first worker fails before that, or the\n"
"task is not ready within --timeout, it stops the master, says why and where\n"
"the log is, and exits 1.\n"
"\n"
"options:\n"
"  -d, --daemon        detach; log to logFile, else to NAME.log in the run dir\n"
"  --log-file FILE     log to FILE, in place of the config's logFile\n"
"  --log-level LEVEL   debug, info, notice, warning or error, in place of\n"
"                      the config's logLevel (both hold across restarts)\n"
"  --log-format FORMAT text or json (one object per line), in place of the\n"
"                      config's logFormat\n"
"  --timeout SECONDS   with -d: give up (and stop the master) if it is not\n"
"                      ready after SECONDS (default 60)\n"
"  -q, --quiet         no line saying what was started\n"
"  -h, --help          show this help\n"
"\n"
"signals the master understands:\n"
"  TERM, INT    stop gracefully (as 'pmhost stop')\n"
"  HUP          reload config and plugin in place (as 'pmhost restart')\n"
"  USR1         reopen the log file (for logrotate)\n"
"  TTIN, TTOU   one worker more, one worker less\n"
"  ALRM         respawn missing workers now (as 'pmhost wakeup')\n";

static const char stop_help[] =
"Ask a master to stop gracefully: workers finish their current work() call,\n"
"run work_fini and exit; any still running after stopTimeout are killed.\n"
"stop returns only when the master is gone, and prints 'NAME: stopped (N\n"
"workers, T s)'.  If it is still there after --timeout seconds (default:\n"
"the task's stopTimeout plus 10), stop says so and exits 1.  A master that\n"
"does not answer within 5 s is sent SIGTERM.  A task that is not running is\n"
"exit 1; with --all, finding nothing running is not.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the master(s) of the task(s) CONFIG names\n"
"  --all               every master of this user\n"
"  --timeout SECONDS   stop waiting after SECONDS, 0 to 86400\n"
"  -q, --quiet         no line saying what was done\n"
"  -h, --help          show this help\n";

static const char restart_help[] =
"Reload a running master gracefully, in place: it re-reads its config file,\n"
"checks it and the plugin as 'pmhost check' does, then replaces its workers\n"
"so that the task never has zero live workers, and restart prints 'NAME:\n"
"restarted: generation G running with N workers'.  A config or plugin that\n"
"fails the check (exit 2), or a first new worker whose work_init fails\n"
"(exit 1), leaves the running workers untouched.  'restart CONFIG' of a task\n"
"that is not running starts it in the background, as 'run -d' does.\n"
"\n"
"restart waits for the rollout to end: by default as long as the slowest\n"
"one takes (140 s plus the task's stopTimeout), then exits 1.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the task(s) CONFIG names\n"
"  --timeout SECONDS   stop waiting for the rollout after SECONDS\n"
"  -q, --quiet         no line saying what was done\n"
"  -h, --help          show this help\n";

static const char status_help[] =
"Show each master (all of this user's in the run dir, or the one(s) named)\n"
"and its workers: pid, title, memory, start time, run time, the master's\n"
"live worker count, and for each slot its worker's work() calls, state, the\n"
"slot's calls, recycled and failed workers over its life, and its last exit.\n"
"status answers from live state at once; it never sleeps.\n"
"\n"
"With nothing running it says so and exits 0.  A master that died without\n"
"stopping (its pid file is no longer locked) is shown as 'dead' and status\n"
"exits 1; --prune removes the pid file and socket it left.\n"
"\n"
"options:\n"
"  --title NAME        only the master whose baseTitle is NAME\n"
"  CONFIG              only the master(s) of the task(s) CONFIG names\n"
"  --all               every master of the run dir (as with no name)\n"
"  --json              print the same facts as one JSON document, with each\n"
"                      slot's last exits\n"
"  --format FORMAT     table (the default), json, or prometheus (the text\n"
"                      exposition format, e.g. for a textfile collector)\n"
"  --prune             remove what dead masters left in the run dir\n"
"  -h, --help          show this help\n";

static const char wakeup_help[] =
"Make a master check its workers now and respawn any that are missing,\n"
"skipping backoff, as SIGALRM does.  Prints 'NAME: woke up: respawned N\n"
"workers'.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the master(s) of the task(s) CONFIG names\n"
"  -q, --quiet         no line saying what was done\n"
"  -h, --help          show this help\n";

static const char scale_help[] =
"Set a running master's live worker count to N, 1 to 16384, without a\n"
"restart: missing workers are started, surplus ones stop gracefully.\n"
"Prints 'NAME: scaled A -> B'.\n"
"\n"
"options:\n"
"  --title NAME        the master whose baseTitle is NAME\n"
"  CONFIG              the master(s) of the task(s) CONFIG names\n"
"  -q, --quiet         no line saying what was done\n"
"  -h, --help          show this help\n";

static const char logs_help[] =
"Show the last lines of a task's log and, with -f, follow it as it grows,\n"
"across log rotation (renamed and reopened with SIGUSR1, or copied and\n"
"truncated).  The log is the running master's log file, else the config's\n"
"logFile, else NAME.log in the run dir.  A master that logs to stderr has no\n"
"file to show (exit 1): under systemd, use journalctl -u UNIT.\n"
"\n"
"options:\n"
"  --title NAME        the task whose baseTitle is NAME\n"
"  CONFIG              the task CONFIG names\n"
"  -f, --follow        go on showing lines as they come\n"
"  -n, --lines N       how many lines to show first (default 10)\n"
"  --slot S            only the lines of slot S's workers and about them\n"
"  --level LEVEL       only lines at LEVEL or above\n"
"  -h, --help          show this help\n";

static const char exporter_help[] =
"Serve Prometheus metrics over HTTP: a process of its own (no master serves\n"
"HTTP) that, on each GET /metrics, asks every master of the run dir for its\n"
"status at once and answers with what 'status --format prometheus' prints.\n"
"A master that died shows as pmhost_up 0, and so does one that does not\n"
"answer within 2 s.  GET / shows a short page; any other path is 404, any\n"
"other method 405.  A request may have 8 KiB of headers and a connection\n"
"5 s; 16 connections are served at a time (one that sent no whole request\n"
"for 1 s gives way to a new one).  One line on stderr says where it\n"
"listens; errors follow it.  TERM and INT end it (exit 0).\n"
"\n"
"options:\n"
"  --listen ADDR:PORT  where to listen: PORT or :PORT (127.0.0.1),\n"
"                      ADDR:PORT, [IPV6]:PORT; port 0 picks a free one\n"
"  --rundir DIR        the run dir whose masters to serve, in place of\n"
"                      $PMHOST_RUNDIR and the default\n"
"  -h, --help          show this help\n";

static const char top_help[] =
"Show the workers of one task or all, live: a line per task with its\n"
"workers, calls/s, p50 and p99 call time, failed calls and worker exits,\n"
"then a line per slot of the selected task: pid, state, calls/s, p50, p99,\n"
"failed calls, memory, restarts and last exit.  Rates are top's own, from\n"
"the calls counted between two frames; p50 and p99 are of the calls of the\n"
"last interval (of the whole run when it had none).\n"
"\n"
"keys:\n"
"  q            quit\n"
"  t            show the next task's slots\n"
"  s c p m r f  sort slots by slot, calls/s, p99, memory, restarts, failed\n"
"\n"
"options:\n"
"  --title NAME        only the task whose baseTitle is NAME\n"
"  CONFIG              only the task(s) CONFIG names\n"
"  -b, --batch         print frames as plain text, every task's slots,\n"
"                      without reading keys (also without a terminal)\n"
"  -n, --iterations N  stop after N frames\n"
"  --interval SECONDS  time between frames, 0.1 to 3600 (default 1)\n"
"  -h, --help          show this help\n";

static const char check_help[] =
"Validate CONFIG and load its plugin in a throwaway child to confirm its\n"
"symbols and ABI, like 'nginx -t', and run the plugin's work_check.  Prints\n"
"how each task's workers will run (user, noNewPrivileges, limits, working\n"
"directory) and 'ok', or every problem found and exits 2.\n"
"\n"
"options:\n"
"  -h, --help          show this help\n";

/* The general help's tail ('pmhost --help', 'pmhost help'). */
static const char general_help[] =
"  help     show this help, or a command's\n"
"\n"
"NAME is a task's baseTitle; CONFIG in its place means the task(s) that\n"
"config file names.  Options may come before or after the other arguments;\n"
"give a value as '--opt VALUE' or '--opt=VALUE' (the latter for a value that\n"
"starts with '-'); '--' ends the options.  Commands that change a task\n"
"confirm in one line on stdout; -q silences it.  Errors go to stderr.\n"
"\n"
"exit status:\n"
"  0  success\n"
"  1  runtime failure: not running (or its master died), already running,\n"
"     a timeout passed, a worker failed before 'run -d' was ready, a run-once\n"
"     task's worker failed, a restart's canary failed, the run dir was\n"
"     refused\n"
"  2  usage or config error, including a plugin that cannot be loaded or\n"
"     that work_check refuses\n"
"\n"
"Run 'pmhost help COMMAND' for details.\n";

static const char version_help[] =
"Print pmhost's version.\n";

#define TARGET	"(--title NAME | CONFIG)"

static const struct command table[] = {
	{ "run", OPT_DAEMON | OPT_LOG_FILE | OPT_LOG_LEVEL | OPT_LOG_FORMAT |
	  OPT_TIMEOUT | OPT_QUIET, ARGS_CONFIG,
	  "pmhost run CONFIG [-d|--daemon] [--log-file FILE] "
	  "[--log-level LEVEL] [--log-format text|json] [--timeout SECONDS] "
	  "[-q]",
	  "start a master and its workers from CONFIG (also: start)",
	  run_help,
	  cmd_run, NULL, NULL },
	{ "stop", OPT_TITLE | OPT_ALL | OPT_TIMEOUT | OPT_QUIET, ARGS_STOP,
	  "pmhost stop    (--title NAME | CONFIG | --all) "
	  "[--timeout SECONDS] [-q]",
	  "stop a master gracefully and wait until it is gone", stop_help,
	  cmd_stop, "stop", serve_stop },
	{ "restart", OPT_TITLE | OPT_TIMEOUT | OPT_QUIET, ARGS_TARGET,
	  "pmhost restart " TARGET " [--timeout SECONDS] [-q]",
	  "reload a running master in place, or start it if not running",
	  restart_help, cmd_restart, "restart", serve_restart },
	{ "status", OPT_TITLE | OPT_ALL | OPT_JSON | OPT_FORMAT | OPT_PRUNE,
	  ARGS_TARGET_OPT,
	  "pmhost status  [--title NAME | CONFIG | --all] [--json | --format "
	  "FORMAT] [--prune]",
	  "show masters and their workers, from live state", status_help,
	  cmd_status, "status", serve_status },
	{ "wakeup", OPT_TITLE | OPT_QUIET, ARGS_TARGET,
	  "pmhost wakeup  " TARGET " [-q]",
	  "make a master respawn its missing workers now", wakeup_help,
	  cmd_request, "wakeup", serve_wakeup },
	{ "scale", OPT_TITLE | OPT_QUIET, ARGS_SCALE,
	  "pmhost scale   " TARGET " N [-q]",
	  "set a master's live worker count", scale_help,
	  cmd_request, "scale", serve_scale },
	{ "check", 0, ARGS_CONFIG,
	  "pmhost check   CONFIG",
	  "validate CONFIG and load its plugin, like 'nginx -t'", check_help,
	  cmd_check, NULL, NULL },
	{ "logs", OPT_TITLE | OPT_FOLLOW | OPT_LINES | OPT_SLOT | OPT_LEVEL,
	  ARGS_TARGET,
	  "pmhost logs    " TARGET " [-f] [-n N] [--slot S] [--level LEVEL]",
	  "show a task's log, and follow it", logs_help, cmd_logs, NULL,
	  NULL },
	{ "top", OPT_TITLE | OPT_BATCH | OPT_ITERATIONS | OPT_INTERVAL,
	  ARGS_TARGET_OPT,
	  "pmhost top     [--title NAME | CONFIG] [-b] [-n N] "
	  "[--interval SECONDS]",
	  "show tasks and their workers live, like top", top_help, cmd_top,
	  NULL, NULL },
	{ "exporter", OPT_LISTEN | OPT_RUNDIR, ARGS_NONE,
	  "pmhost exporter --listen ADDR:PORT [--rundir DIR]",
	  "serve every master's metrics to Prometheus over HTTP",
	  exporter_help, cmd_exporter, NULL, NULL },
	{ "help", 0, ARGS_HELP,
	  "pmhost help [COMMAND]", NULL, general_help,
	  cmd_help, NULL, NULL },
	{ "version", 0, ARGS_NONE,
	  "pmhost --version | -V", NULL, version_help,
	  cmd_version, NULL, NULL },
};

/* Other names of commands: process_manage's "start" is "run". */
static const struct { const char *alias, *name; } aliases[] = {
	{ "start", "run" },
};

const struct command *
command_find(const char *name)
{
	for (size_t i = 0; i < nitems(aliases); i++)
		if (strcmp(name, aliases[i].alias) == 0)
			name = aliases[i].name;
	for (size_t i = 0; i < nitems(table); i++)
		if (strcmp(name, table[i].name) == 0)
			return &table[i];
	return NULL;
}

const struct command *
command_for_verb(const char *verb)
{
	/* "reload" is what masters of the first release were sent. */
	if (strcmp(verb, "reload") == 0)
		verb = "restart";
	for (size_t i = 0; i < nitems(table); i++)
		if (table[i].verb != NULL && strcmp(verb, table[i].verb) == 0)
			return &table[i];
	return NULL;
}

const char *
command_suggest(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3;

	/* One edit (a swap counts as one) per three letters, at most two. */
	for (size_t i = 0; i < nitems(table) + nitems(aliases); i++) {
		const char *c = i < nitems(table) ? table[i].name :
		    aliases[i - nitems(table)].alias;
		size_t d = names_distance(name, c);

		if (d < best_d && d * 3 <= strlen(c)) {
			best_d = d;
			best = c;
		}
	}
	return best;
}

void
commands_each(void (*fn)(const struct command *, void *), void *arg)
{
	for (size_t i = 0; i < nitems(table); i++)
		if (table[i].summary != NULL)
			fn(&table[i], arg);
}

int
cmd_help(const struct cli *cli)
{
	struct buf out = { 0 };

	cli_help(cli->help_topic, &out);
	if (out.len > 0)
		fwrite(out.p, 1, out.len, stdout);
	buf_free(&out);
	return EXIT_OK;
}

int
cmd_version(const struct cli *cli)
{
	(void)cli;
	printf("pmhost %s (plugin ABI %d)\n", PMHOST_VERSION,
	    PMHOST_ABI_VERSION);
	return EXIT_OK;
}
