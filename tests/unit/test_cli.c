/*
 * test_cli.c - unit tests of cli_parse(), cli_help() and the command table:
 * every command's valid forms and every usage error, message included.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "unit.h"

#define PMHOST_HOST
#include "pmhost.h"
#include "cli.h"

#define MAX_ARGS	16

/* The parsed command is the one called name (NULL: none). */
#define CMD_IS(c, want) do {						\
	const char *want_ = (want);					\
	if (want_ == NULL)						\
		ck_assert_ptr_null(c);					\
	else {								\
		ck_assert_ptr_nonnull(c);				\
		ck_assert_str_eq((c)->name, want_);			\
	}								\
} while (0)

static struct cli cli;
static char err[512];

/* Parses "pmhost" followed by the NULL-terminated words. */
static int
parse_words(const char *first, ...)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"pmhost";
	va_start(ap, first);
	for (const char *w = first; w != NULL; w = va_arg(ap, const char *)) {
		ck_assert_int_lt(argc, MAX_ARGS);
		argv[argc++] = (char *)w;
	}
	va_end(ap);
	argv[argc] = NULL;
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	return cli_parse(argc, argv, &cli, err, sizeof(err));
}

#define P(...)	parse_words(__VA_ARGS__, (const char *)NULL)

/* The parse must fail with exactly this message. */
#define ERR_IS(msg, ...) do {						\
	ck_assert_int_eq(P(__VA_ARGS__), -1);				\
	ck_assert_str_eq(err, (msg));					\
	CMD_IS(cli.cmd, NULL);				\
} while (0)

/* The parse must fail with a message containing sub. */
#define ERR_HAS(sub, ...) do {						\
	ck_assert_int_eq(P(__VA_ARGS__), -1);				\
	ck_assert_msg(strstr(err, (sub)) != NULL,			\
	    "message '%s' lacks '%s'", err, (sub));			\
} while (0)

#define OK(...) do {							\
	ck_assert_msg(P(__VA_ARGS__) == 0, "unexpected error: %s", err); \
	ck_assert_str_eq(err, "");					\
} while (0)

/* Defaults of the fields a command does not set. */
static void
assert_defaults_except_config(void)
{
	ck_assert_ptr_null(cli.title);
	ck_assert_int_eq(cli.all, 0);
	ck_assert_int_eq(cli.daemon, 0);
	ck_assert_ptr_null(cli.log_file);
	ck_assert_int_eq(cli.log_level, -1);
	ck_assert_int_eq(cli.timeout, -1);
	ck_assert_int_eq(cli.json, 0);
	ck_assert_int_eq(cli.scale, 0);
}

/* --- run ---------------------------------------------------------------- */

START_TEST(run_plain)
{
	OK("run", "task.json");
	CMD_IS(cli.cmd, "run");
	ck_assert_str_eq(cli.config, "task.json");
	assert_defaults_except_config();
}
END_TEST

START_TEST(run_all_options_after)
{
	OK("run", "t.json", "-d", "--log-file", "/var/log/t.log",
	    "--log-level", "debug");
	CMD_IS(cli.cmd, "run");
	ck_assert_str_eq(cli.config, "t.json");
	ck_assert_int_eq(cli.daemon, 1);
	ck_assert_str_eq(cli.log_file, "/var/log/t.log");
	ck_assert_int_eq(cli.log_level, PM_LOG_DEBUG);
	ck_assert_int_eq(cli.timeout, -1);
}
END_TEST

START_TEST(run_options_before_with_equals)
{
	OK("run", "--daemon", "--log-file=x.log", "--log-level=error",
	    "t.json");
	ck_assert_str_eq(cli.config, "t.json");
	ck_assert_int_eq(cli.daemon, 1);
	ck_assert_str_eq(cli.log_file, "x.log");
	ck_assert_int_eq(cli.log_level, PM_LOG_ERROR);
}
END_TEST

START_TEST(run_every_log_level)
{
	static const char *const names[] = {
		"debug", "info", "notice", "warning", "error"
	};
	static const int levels[] = {
		PM_LOG_DEBUG, PM_LOG_INFO, PM_LOG_NOTICE, PM_LOG_WARNING,
		PM_LOG_ERROR
	};

	for (int i = 0; i < 5; i++) {
		OK("run", "t.json", "--log-level", names[i]);
		ck_assert_int_eq(cli.log_level, levels[i]);
	}
}
END_TEST

START_TEST(run_double_dash)
{
	OK("run", "-d", "--", "-weird.json");
	ck_assert_str_eq(cli.config, "-weird.json");
	ck_assert_int_eq(cli.daemon, 1);
	/* After "--", "--help" is a file name, not a request for help. */
	OK("run", "--", "--help");
	CMD_IS(cli.cmd, "run");
	ck_assert_str_eq(cli.config, "--help");
}
END_TEST

START_TEST(run_missing_config)
{
	ERR_IS("run needs a CONFIG file", "run");
	ERR_IS("run needs a CONFIG file", "run", "-d");
}
END_TEST

START_TEST(run_extra_positional)
{
	ERR_IS("unexpected argument 'x' for 'run'", "run", "t.json", "x");
}
END_TEST

START_TEST(run_empty_config)
{
	ERR_IS("CONFIG for 'run' is an empty string ''", "run", "");
}
END_TEST

START_TEST(run_bad_log_level)
{
	ERR_IS("--log-level must be one of debug, info, notice, warning, "
	    "error, got 'loud'", "run", "t.json", "--log-level", "loud");
	ERR_HAS("got 'INFO'", "run", "t.json", "--log-level=INFO");
}
END_TEST

START_TEST(run_unknown_and_foreign_options)
{
	ERR_IS("unknown option '--bogus' for 'run'", "run", "t.json",
	    "--bogus");
	ERR_IS("unknown option '--json' for 'run'", "run", "t.json", "--json");
	ERR_IS("unknown option '--title' for 'run'", "run", "--title=x",
	    "t.json");
	ERR_IS("unknown option '-x' for 'run'", "run", "t.json", "-x");
	ERR_IS("unknown option '-dd' for 'run'", "run", "t.json", "-dd");
	ERR_IS("unknown option '-V' for 'run'", "run", "t.json", "-V");
}
END_TEST

START_TEST(run_flag_takes_no_value)
{
	ERR_IS("option '--daemon' takes no value", "run", "t.json",
	    "--daemon=yes");
}
END_TEST

START_TEST(run_repeated_option)
{
	ERR_IS("option '-d' given twice", "run", "t.json", "--daemon", "-d");
	ERR_IS("option '--log-level' given twice", "run", "t.json",
	    "--log-level=info", "--log-level", "info");
}
END_TEST

START_TEST(run_missing_value)
{
	ERR_IS("option '--log-file' needs a value", "run", "t.json",
	    "--log-file");
	ERR_IS("option '--log-file' needs a value, got ''", "run", "t.json",
	    "--log-file=");
	ERR_HAS("option '--log-file' needs a value, got option '-d'", "run",
	    "t.json", "--log-file", "-d");
	/* The value may start with '-' when attached with '='. */
	OK("run", "t.json", "--log-file=-d");
	ck_assert_str_eq(cli.log_file, "-d");
	ck_assert_int_eq(cli.daemon, 0);
}
END_TEST

/* --- stop --------------------------------------------------------------- */

START_TEST(stop_forms)
{
	OK("stop", "--title", "web");
	CMD_IS(cli.cmd, "stop");
	ck_assert_str_eq(cli.title, "web");
	ck_assert_ptr_null(cli.config);
	ck_assert_int_eq(cli.all, 0);
	ck_assert_int_eq(cli.timeout, -1);

	OK("stop", "t.json", "--timeout", "30");
	ck_assert_str_eq(cli.config, "t.json");
	ck_assert_ptr_null(cli.title);
	ck_assert_int_eq(cli.timeout, 30);

	OK("stop", "--timeout=7", "--all");
	ck_assert_int_eq(cli.all, 1);
	ck_assert_int_eq(cli.timeout, 7);
	ck_assert_ptr_null(cli.config);
	ck_assert_ptr_null(cli.title);
}
END_TEST

START_TEST(stop_needs_one_target)
{
	ERR_IS("stop needs one of --title NAME, CONFIG or --all", "stop");
	ERR_IS("stop needs one of --title NAME, CONFIG or --all", "stop",
	    "--timeout", "5");
}
END_TEST

START_TEST(stop_takes_only_one_target)
{
	const char *msg = "stop takes only one of --title NAME, CONFIG or --all";

	ERR_IS(msg, "stop", "--title", "a", "t.json");
	ERR_IS(msg, "stop", "--all", "t.json");
	ERR_IS(msg, "stop", "--all", "--title=a");
	ERR_IS("unexpected argument 'b.json' for 'stop'", "stop", "a.json",
	    "b.json");
}
END_TEST

START_TEST(stop_foreign_options)
{
	ERR_IS("unknown option '-d' for 'stop'", "stop", "--all", "-d");
	ERR_IS("unknown option '--json' for 'stop'", "stop", "--all",
	    "--json");
}
END_TEST

START_TEST(stop_timeout_bounds)
{
	OK("stop", "--all", "--timeout", "0");
	ck_assert_int_eq(cli.timeout, 0);
	OK("stop", "--all", "--timeout", "86400");
	ck_assert_int_eq(cli.timeout, 86400);
	OK("stop", "--all", "--timeout", "007");
	ck_assert_int_eq(cli.timeout, 7);
}
END_TEST

START_TEST(stop_timeout_invalid)
{
	ERR_IS("--timeout must be an integer from 0 to 86400, got '86401'",
	    "stop", "--all", "--timeout", "86401");
	/* A negative number is taken as the value, then refused. */
	ERR_IS("--timeout must be an integer from 0 to 86400, got '-1'",
	    "stop", "--all", "--timeout", "-1");
	ERR_IS("--timeout must be an integer from 0 to 86400, got '-1'",
	    "stop", "--all", "--timeout=-1");
	ERR_HAS("got '5s'", "stop", "--all", "--timeout", "5s");
	ERR_HAS("got '+5'", "stop", "--all", "--timeout", "+5");
	ERR_HAS("got ' 5'", "stop", "--all", "--timeout", " 5");
	ERR_HAS("got '0x10'", "stop", "--all", "--timeout", "0x10");
	ERR_HAS("got '1.5'", "stop", "--all", "--timeout", "1.5");
	ERR_HAS("got '99999999999999999999999'", "stop", "--all",
	    "--timeout", "99999999999999999999999");
	ERR_IS("option '--timeout' needs a value", "stop", "--all",
	    "--timeout");
	ERR_IS("option '--timeout' needs a value, got ''", "stop", "--all",
	    "--timeout=");
}
END_TEST

/* --- titles ------------------------------------------------------------- */

START_TEST(title_valid_forms)
{
	OK("stop", "--title", "A-z_0.9");
	ck_assert_str_eq(cli.title, "A-z_0.9");
	OK("stop", "--title=-lead");
	ck_assert_str_eq(cli.title, "-lead");
}
END_TEST

START_TEST(title_with_slash)
{
	ERR_IS("invalid title 'a/b': must match [A-Za-z0-9_.-]{1,64}",
	    "stop", "--title", "a/b");
}
END_TEST

START_TEST(title_dots)
{
	ERR_IS("invalid title '..': '.' and '..' cannot be titles",
	    "stop", "--title", "..");
	ERR_HAS("invalid title '.'", "status", "--title=.");
	OK("stop", "--title", "...");
	ck_assert_str_eq(cli.title, "...");
}
END_TEST

START_TEST(title_length)
{
	char t64[65], t65[66];

	memset(t64, 'a', 64);
	t64[64] = '\0';
	memset(t65, 'a', 65);
	t65[65] = '\0';
	OK("wakeup", "--title", t64);
	ck_assert_str_eq(cli.title, t64);
	ERR_HAS("invalid title 'aaaa", "wakeup", "--title", t65);
	ck_assert_ptr_nonnull(strstr(err, t65));
	ck_assert_ptr_nonnull(strstr(err, "{1,64}"));
}
END_TEST

START_TEST(title_long_value_truncated)
{
	char big[301], want[128];

	memset(big, 'x', 300);
	big[150] = '/';
	big[300] = '\0';
	ck_assert_int_eq(P("stop", "--title", big), -1);
	memset(want, 'x', 70);
	strcpy(want + 70, "...'");
	ck_assert_ptr_nonnull(strstr(err, want));
	ck_assert_int_lt(strlen(err), 150);
	ck_assert_ptr_nonnull(strstr(err, "invalid title 'xxx"));
}
END_TEST

START_TEST(title_missing_value)
{
	ERR_IS("option '--title' needs a value", "restart", "--title");
	ERR_IS("option '--title' needs a value, got ''", "restart",
	    "--title=");
	/* "--all" is not taken as a title: it is an option. */
	ERR_IS("option '--title' needs a value, got option '--all' "
	    "(write --title=VALUE for a value starting with '-')",
	    "stop", "--title", "--all");
	ERR_IS("option '--title' given twice", "stop", "--title", "a",
	    "--title", "b");
}
END_TEST

/* --- restart, status, wakeup -------------------------------------------- */

START_TEST(restart_forms)
{
	OK("restart", "t.json");
	CMD_IS(cli.cmd, "restart");
	ck_assert_str_eq(cli.config, "t.json");
	ck_assert_ptr_null(cli.title);
	OK("restart", "--title=web");
	ck_assert_str_eq(cli.title, "web");
	ck_assert_ptr_null(cli.config);
}
END_TEST

START_TEST(restart_wakeup_target_rules)
{
	ERR_IS("restart needs one of --title NAME or CONFIG", "restart");
	ERR_IS("restart takes only one of --title NAME or CONFIG", "restart",
	    "t.json", "--title", "web");
	ERR_IS("wakeup needs one of --title NAME or CONFIG", "wakeup");
	ERR_IS("wakeup takes only one of --title NAME or CONFIG", "wakeup",
	    "--title", "web", "t.json");
	ERR_IS("unknown option '--all' for 'restart'", "restart", "--all");
	ERR_IS("unknown option '--timeout' for 'wakeup'", "wakeup", "t.json",
	    "--timeout=3");
	ERR_IS("CONFIG for 'wakeup' is an empty string ''", "wakeup", "");
}
END_TEST

START_TEST(wakeup_forms)
{
	OK("wakeup", "--", "t.json");
	CMD_IS(cli.cmd, "wakeup");
	ck_assert_str_eq(cli.config, "t.json");
	OK("wakeup", "--title", "web");
	ck_assert_str_eq(cli.title, "web");
}
END_TEST

START_TEST(status_forms)
{
	OK("status");
	CMD_IS(cli.cmd, "status");
	ck_assert_ptr_null(cli.config);
	ck_assert_ptr_null(cli.title);
	ck_assert_int_eq(cli.json, 0);
	OK("status", "--json");
	ck_assert_int_eq(cli.json, 1);
	OK("status", "--json", "t.json");
	ck_assert_int_eq(cli.json, 1);
	ck_assert_str_eq(cli.config, "t.json");
	OK("status", "--title", "web", "--json");
	ck_assert_str_eq(cli.title, "web");
	ck_assert_int_eq(cli.json, 1);
}
END_TEST

START_TEST(status_errors)
{
	ERR_IS("status takes only one of --title NAME, CONFIG or --all",
	    "status", "--title=web", "t.json");
	ERR_IS("status takes only one of --title NAME, CONFIG or --all",
	    "status", "--all", "t.json");
	ERR_IS("--format must be one of table, json, prometheus, got 'xml'",
	    "status", "--format", "xml");
	ERR_IS("--json and --format prometheus contradict each other",
	    "status", "--json", "--format", "prometheus");
	ERR_IS("--timeout needs -d: it bounds the wait for a detached master "
	    "to be ready", "run", "--timeout", "5", "t.json");
	ERR_IS("option '--json' given twice", "status", "--json", "--json");
	ERR_IS("option '--json' takes no value", "status", "--json=1");
	ERR_IS("unexpected argument 'b.json' for 'status'", "status",
	    "a.json", "b.json");
}
END_TEST

/* --- scale -------------------------------------------------------------- */

START_TEST(scale_forms)
{
	OK("scale", "t.json", "8");
	CMD_IS(cli.cmd, "scale");
	ck_assert_str_eq(cli.config, "t.json");
	ck_assert_ptr_null(cli.title);
	ck_assert_int_eq(cli.scale, 8);
	OK("scale", "--title", "web", "3");
	ck_assert_str_eq(cli.title, "web");
	ck_assert_ptr_null(cli.config);
	ck_assert_int_eq(cli.scale, 3);
	OK("scale", "3", "--title=web");
	ck_assert_str_eq(cli.title, "web");
	ck_assert_int_eq(cli.scale, 3);
	OK("scale", "--", "t.json", "1");
	ck_assert_int_eq(cli.scale, 1);
	OK("scale", "--title", "web", "4096");
	ck_assert_int_eq(cli.scale, 4096);
}
END_TEST

START_TEST(scale_bad_n)
{
	ERR_IS("scale needs N, an integer from 1 to 16384, got '0'", "scale",
	    "t.json", "0");
	ERR_IS("scale needs N, an integer from 1 to 16384, got '16385'",
	    "scale", "--title", "web", "16385");
	ERR_IS("scale needs N, an integer from 1 to 16384, got 'x'", "scale",
	    "t.json", "x");
	/* A negative N is a bad N, not an unknown option. */
	ERR_IS("scale needs N, an integer from 1 to 16384, got '-2'", "scale",
	    "--title", "web", "-2");
	ERR_HAS("got '3w'", "scale", "t.json", "3w");
}
END_TEST

START_TEST(scale_missing_parts)
{
	ERR_IS("scale needs N, the number of workers", "scale", "--title",
	    "web");
	ERR_IS("scale needs N, the number of workers", "scale", "t.json");
	ERR_IS("scale needs one of --title NAME or CONFIG", "scale");
	ERR_IS("scale needs one of --title NAME or CONFIG", "scale", "4");
	ERR_IS("scale takes only one of --title NAME or CONFIG", "scale",
	    "--title", "web", "t.json", "4");
	ERR_IS("unexpected argument '5' for 'scale'", "scale", "t.json", "4",
	    "5");
	ERR_IS("unknown option '--json' for 'scale'", "scale", "t.json", "4",
	    "--json");
}
END_TEST

/* --- check -------------------------------------------------------------- */

START_TEST(check_forms)
{
	OK("check", "t.json");
	CMD_IS(cli.cmd, "check");
	ck_assert_str_eq(cli.config, "t.json");
	assert_defaults_except_config();
	ERR_IS("check needs a CONFIG file", "check");
	ERR_IS("unexpected argument 'u.json' for 'check'", "check", "t.json",
	    "u.json");
	ERR_IS("unknown option '-d' for 'check'", "check", "t.json", "-d");
}
END_TEST

/* --- top level, help, version ------------------------------------------- */

START_TEST(no_arguments)
{
	char *argv[] = { (char *)"pmhost", NULL };

	ck_assert_int_eq(cli_parse(1, argv, &cli, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "missing command (try 'pmhost --help')");
	ck_assert_int_eq(cli_parse(0, NULL, &cli, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "missing command (try 'pmhost --help')");
}
END_TEST

START_TEST(unknown_command)
{
	ERR_IS("unknown command 'foo' (try 'pmhost --help')", "foo");
	ERR_IS("unknown command 'RUN' (did you mean 'run'?)", "RUN", "t.json");
	ERR_IS("unknown command '' (try 'pmhost --help')", "");
	ERR_IS("unknown option '--bogus' (try 'pmhost --help')", "--bogus");
	ERR_IS("unknown option '-d' (try 'pmhost --help')", "-d", "run");
}
END_TEST

START_TEST(general_help_forms)
{
	OK("--help");
	CMD_IS(cli.cmd, "help");
	CMD_IS(cli.help_topic, NULL);
	OK("-h");
	CMD_IS(cli.cmd, "help");
	CMD_IS(cli.help_topic, NULL);
	OK("help");
	CMD_IS(cli.cmd, "help");
	CMD_IS(cli.help_topic, NULL);
}
END_TEST

START_TEST(help_topic_forms)
{
	OK("help", "run");
	CMD_IS(cli.cmd, "help");
	CMD_IS(cli.help_topic, "run");
	OK("help", "scale");
	CMD_IS(cli.help_topic, "scale");
	ERR_IS("unknown command 'bogus' (try 'pmhost --help')", "help",
	    "bogus");
	ERR_IS("unexpected argument 'stop' for 'help'", "help", "run", "stop");
	ERR_IS("unknown option '--json' for 'help'", "help", "--json");
}
END_TEST

START_TEST(command_help_anywhere)
{
	OK("stop", "--help");
	CMD_IS(cli.cmd, "help");
	CMD_IS(cli.help_topic, "stop");
	/* Other arguments, even wrong ones, are ignored. */
	OK("run", "--bogus", "a", "b", "-h");
	CMD_IS(cli.cmd, "help");
	CMD_IS(cli.help_topic, "run");
	ck_assert_ptr_null(cli.config);
	OK("scale", "--title", "-h");
	CMD_IS(cli.help_topic, "scale");
	OK("status", "-h", "--json");
	CMD_IS(cli.help_topic, "status");
	ck_assert_int_eq(cli.json, 0);
}
END_TEST

START_TEST(version_forms)
{
	OK("--version");
	CMD_IS(cli.cmd, "version");
	OK("-V");
	CMD_IS(cli.cmd, "version");
	ERR_IS("unexpected argument 'run' for '--version'", "--version",
	    "run");
}
END_TEST

START_TEST(error_resets_cli)
{
	OK("stop", "--all", "--timeout", "3");
	ck_assert_int_eq(P("stop", "--all", "--timeout", "x"), -1);
	CMD_IS(cli.cmd, NULL);
	ck_assert_int_eq(cli.all, 0);
	ck_assert_int_eq(cli.timeout, -1);
	ck_assert_int_eq(cli.log_level, -1);
}
END_TEST

START_TEST(small_error_buffer)
{
	char *argv[] = { (char *)"pmhost", (char *)"foo", NULL };
	char small[8];

	ck_assert_int_eq(cli_parse(2, argv, &cli, small, sizeof(small)), -1);
	ck_assert_str_eq(small, "unknown");
	ck_assert_int_eq(cli_parse(2, argv, &cli, NULL, 0), -1);
}
END_TEST

/* The help of the command called name (NULL: general), in a static buffer. */
static const char *
help_of(const char *name)
{
	static struct buf out;

	buf_free(&out);
	cli_help(name != NULL ? command_find(name) : NULL, &out);
	ck_assert(!out.oom);
	return out.p;
}

START_TEST(help_texts)
{
	static const char *const names[] = { "run", "stop", "restart",
	    "status", "wakeup", "scale", "check", "help", "version", NULL };
	const char *g = help_of(NULL);

	ck_assert_ptr_nonnull(strstr(g, "pmhost run CONFIG [-d|--daemon]"));
	ck_assert_ptr_nonnull(strstr(g, "pmhost scale   (--title NAME | "
	    "CONFIG) N"));
	ck_assert_ptr_nonnull(strstr(g, "2  usage or config error"));
	ck_assert_ptr_nonnull(strstr(g, "Run 'pmhost help COMMAND' for "
	    "details.\n"));
	ck_assert_ptr_nonnull(strstr(help_of("run"), "TTIN, TTOU"));
	ck_assert_ptr_nonnull(strstr(help_of("run"), "USR1"));
	ck_assert_ptr_nonnull(strstr(help_of("stop"), "--timeout"));
	ck_assert_ptr_nonnull(strstr(help_of("status"), "--json"));
	ck_assert_ptr_nonnull(strstr(help_of("check"), "ok"));
	for (int c = 0; names[c] != NULL; c++) {
		const char *h = help_of(names[c]);
		size_t n = strlen(h);

		ck_assert_int_gt(n, 20);
		ck_assert_int_eq(h[n - 1], '\n');
		if (strcmp(names[c], "version") != 0)
			ck_assert_ptr_nonnull(strstr(h, names[c]));
	}
}
END_TEST

START_TEST(command_table)
{
	CMD_IS(command_find("run"), "run");
	CMD_IS(command_find("start"), "run");
	CMD_IS(command_find("scale"), "scale");
	ck_assert_ptr_null(command_find("bogus"));
	CMD_IS(command_for_verb("status"), "status");
	CMD_IS(command_for_verb("restart"), "restart");
	CMD_IS(command_for_verb("reload"), "restart");
	ck_assert_ptr_null(command_for_verb("run"));
	ck_assert_str_eq(command_suggest("stpo"), "stop");
	ck_assert_str_eq(command_suggest("strat"), "start");
	ck_assert_str_eq(command_suggest("statsu"), "status");
	ck_assert_ptr_null(command_suggest("foo"));
	ck_assert_ptr_null(command_suggest("x"));
}
END_TEST

START_TEST(start_is_run)
{
	OK("start", "t.json", "-d");
	CMD_IS(cli.cmd, "run");
	ck_assert_str_eq(cli.config, "t.json");
	ck_assert_int_eq(cli.daemon, 1);
	ERR_IS("unknown command 'stpo' (did you mean 'stop'?)", "stpo",
	    "--all");
}
END_TEST

static Suite *
cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, run_plain);
	tcase_add_test(tc, run_all_options_after);
	tcase_add_test(tc, run_options_before_with_equals);
	tcase_add_test(tc, run_every_log_level);
	tcase_add_test(tc, run_double_dash);
	tcase_add_test(tc, run_missing_config);
	tcase_add_test(tc, run_extra_positional);
	tcase_add_test(tc, run_empty_config);
	tcase_add_test(tc, run_bad_log_level);
	tcase_add_test(tc, run_unknown_and_foreign_options);
	tcase_add_test(tc, run_flag_takes_no_value);
	tcase_add_test(tc, run_repeated_option);
	tcase_add_test(tc, run_missing_value);
	tcase_add_test(tc, stop_forms);
	tcase_add_test(tc, stop_needs_one_target);
	tcase_add_test(tc, stop_takes_only_one_target);
	tcase_add_test(tc, stop_foreign_options);
	tcase_add_test(tc, stop_timeout_bounds);
	tcase_add_test(tc, stop_timeout_invalid);
	tcase_add_test(tc, title_valid_forms);
	tcase_add_test(tc, title_with_slash);
	tcase_add_test(tc, title_dots);
	tcase_add_test(tc, title_length);
	tcase_add_test(tc, title_long_value_truncated);
	tcase_add_test(tc, title_missing_value);
	tcase_add_test(tc, restart_forms);
	tcase_add_test(tc, restart_wakeup_target_rules);
	tcase_add_test(tc, wakeup_forms);
	tcase_add_test(tc, status_forms);
	tcase_add_test(tc, status_errors);
	tcase_add_test(tc, scale_forms);
	tcase_add_test(tc, scale_bad_n);
	tcase_add_test(tc, scale_missing_parts);
	tcase_add_test(tc, check_forms);
	tcase_add_test(tc, no_arguments);
	tcase_add_test(tc, unknown_command);
	tcase_add_test(tc, general_help_forms);
	tcase_add_test(tc, help_topic_forms);
	tcase_add_test(tc, command_help_anywhere);
	tcase_add_test(tc, version_forms);
	tcase_add_test(tc, error_resets_cli);
	tcase_add_test(tc, small_error_buffer);
	tcase_add_test(tc, help_texts);
	tcase_add_test(tc, command_table);
	tcase_add_test(tc, start_is_run);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(cli_suite());
}
