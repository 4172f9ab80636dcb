/*
 * test_config.c - what a user sees from config.c: the values a config
 * yields (defaults, boundaries, inheritance, paths, params) and the exact
 * text of every complaint about a bad one.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "unit.h"

#define PMHOST_HOST
#include "pmhost.h"
#include "config.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

#define P	"/etc/pm/c.json"	/* config_parse's path in most tests */
#define A16	"aaaaaaaaaaaaaaaa"
#define A64	A16 A16 A16 A16

static struct config		cfg;
static struct config_errors	errs;
static char			tmpdir[64];

static void
fixture_setup(void)
{
	memset(&cfg, 0, sizeof(cfg));
	memset(&errs, 0, sizeof(errs));
}

static void
fixture_teardown(void)
{
	config_free(&cfg);
	config_errors_free(&errs);
}

/* Parses text as if read from P. */
static int
parse(const char *text)
{
	return config_parse(text, strlen(text), P, &cfg, &errs);
}

/* Parses text that must be valid and hold ntasks tasks. */
static void
parse_ok(const char *text, size_t ntasks)
{
	int rc = parse(text);

	ck_assert_msg(rc == 0, "%s: rc %d, %zu errors, first: %s", text, rc,
	    errs.count, errs.count > 0 ? errs.msgs[0] : "");
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_uint_eq(cfg.ntasks, ntasks);
	ck_assert_ptr_nonnull(cfg.tasks);
}

/* Parses text that must fail with exactly the messages given. */
static void
parse_bad(const char *text, const char *const *msgs, size_t n)
{
	cfg.ntasks = 99;	/* must be emptied on failure */
	cfg.tasks = (struct task_config *)&cfg;
	ck_assert_int_eq(parse(text), -1);
	ck_assert_uint_eq(cfg.ntasks, 0);
	ck_assert_ptr_null(cfg.tasks);
	ck_assert_msg(errs.count == n, "%s: %zu errors, expected %zu; "
	    "first: %s", text, errs.count, n,
	    errs.count > 0 ? errs.msgs[0] : "");
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(errs.msgs[i], msgs[i]);
}

static const struct task_config *
task0(void)
{
	return &cfg.tasks[0];
}

/* ---- defaults and accepted values ---- */

START_TEST(test_defaults)
{
	const struct task_config *t;

	parse_ok("{\"plugin\": \"x.so\"}", 1);
	t = task0();
	ck_assert_str_eq(t->config_path, P);
	ck_assert_str_eq(t->plugin, "/etc/pm/x.so");
	ck_assert_str_eq(t->title_prefix, "process_m");
	ck_assert_str_eq(t->base_title, "process");
	ck_assert_int_eq(t->check_interval, 300);
	ck_assert_int_eq(t->max_workers, 4);
	ck_assert_uint_eq(t->execute_times, 1);
	ck_assert_uint_eq(t->execute_usleep, 200000);
	ck_assert_uint_eq(t->limit_seconds, 0);
	ck_assert_str_eq(t->params, "null");
	ck_assert_uint_eq(t->stop_timeout, 5);
	ck_assert_uint_eq(t->work_timeout, 0);
	ck_assert_uint_eq(t->max_rss_mb, 0);
	ck_assert_int_eq(t->schedule, SCHEDULE_DELAY);
	ck_assert_ptr_null(t->user);
	ck_assert_ptr_null(t->group);
	ck_assert_ptr_null(t->run_dir);
	ck_assert_ptr_null(t->log_file);
	ck_assert_int_eq(t->log_level, -1);
}
END_TEST

/* The integer keys at both ends of their ranges. */
static const struct int_case {
	const char	*key;
	long long	 value;
} int_cases[] = {
	{ "checkWorkerInterval", -31536000 },
	{ "checkWorkerInterval", 31536000 },
	{ "checkWorkerInterval", 0 },
	{ "maxWorkerNum", 1 },
	{ "maxWorkerNum", 16384 },
	{ "executeTimes", 0 },
	{ "executeTimes", 9223372036854775807LL },
	{ "executeUSleep", 0 },
	{ "executeUSleep", 31536000000000LL },
	{ "limitSeconds", 0 },
	{ "limitSeconds", 31536000 },
	{ "stopTimeout", 0 },
	{ "stopTimeout", 86400 },
	{ "workTimeout", 0 },
	{ "workTimeout", 31536000 },
	{ "maxRssMb", 0 },
	{ "maxRssMb", 1048576 },
};

/* The field an integer key fills, widened for comparison. */
static long long
int_field(const struct task_config *t, const char *key)
{
	if (strcmp(key, "checkWorkerInterval") == 0)
		return t->check_interval;
	if (strcmp(key, "maxWorkerNum") == 0)
		return t->max_workers;
	if (strcmp(key, "executeTimes") == 0)
		return (long long)t->execute_times;
	if (strcmp(key, "executeUSleep") == 0)
		return (long long)t->execute_usleep;
	if (strcmp(key, "limitSeconds") == 0)
		return (long long)t->limit_seconds;
	if (strcmp(key, "stopTimeout") == 0)
		return t->stop_timeout;
	if (strcmp(key, "workTimeout") == 0)
		return t->work_timeout;
	if (strcmp(key, "maxRssMb") == 0)
		return t->max_rss_mb;
	ck_abort_msg("no field for %s", key);
	return 0;
}

START_TEST(test_int_bounds)
{
	const struct int_case *c = &int_cases[_i];
	char text[128];

	snprintf(text, sizeof(text), "{\"plugin\": \"x.so\", \"%s\": %lld}",
	    c->key, c->value);
	parse_ok(text, 1);
	ck_assert_int_eq(int_field(task0(), c->key), c->value);
}
END_TEST

START_TEST(test_string_bounds)
{
	const struct task_config *t;

	parse_ok("{\"plugin\": \"x.so\", \"baseTitle\": \"" A64 "\", "
	    "\"titlePrefix\": \"" A64 "\", \"user\": \"" A64 "\", "
	    "\"group\": \"" A64 "\"}", 1);
	t = task0();
	ck_assert_str_eq(t->base_title, A64);
	ck_assert_str_eq(t->title_prefix, A64);
	ck_assert_str_eq(t->user, A64);
	ck_assert_str_eq(t->group, A64);
	config_free(&cfg);

	parse_ok("{\"plugin\": \"x.so\", \"baseTitle\": \"a\", "
	    "\"titlePrefix\": \"p\", \"user\": \"0\", \"group\": \"1000\"}", 1);
	t = task0();
	ck_assert_str_eq(t->base_title, "a");
	ck_assert_str_eq(t->title_prefix, "p");
	ck_assert_str_eq(t->user, "0");
	ck_assert_str_eq(t->group, "1000");
	config_free(&cfg);

	/* Every character the title pattern allows; "..." is not "..". */
	parse_ok("{\"plugin\": \"x.so\", \"baseTitle\": \"Az09_.-\", "
	    "\"titlePrefix\": \"my prefix:\\u00e9\"}", 1);
	ck_assert_str_eq(task0()->base_title, "Az09_.-");
	ck_assert_str_eq(task0()->title_prefix, "my prefix:\xc3\xa9");
	config_free(&cfg);
	parse_ok("{\"plugin\": \"x.so\", \"baseTitle\": \"...\"}", 1);
	ck_assert_str_eq(task0()->base_title, "...");
}
END_TEST

START_TEST(test_schedule_values)
{
	parse_ok("{\"plugin\": \"x.so\", \"schedule\": \"rate\"}", 1);
	ck_assert_int_eq(task0()->schedule, SCHEDULE_RATE);
	config_free(&cfg);
	parse_ok("{\"plugin\": \"x.so\", \"schedule\": \"delay\"}", 1);
	ck_assert_int_eq(task0()->schedule, SCHEDULE_DELAY);
}
END_TEST

START_TEST(test_log_levels)
{
	static const struct {
		const char	*name;
		int		 level;
	} levels[] = {
		{ "debug", PM_LOG_DEBUG }, { "info", PM_LOG_INFO },
		{ "notice", PM_LOG_NOTICE }, { "warning", PM_LOG_WARNING },
		{ "error", PM_LOG_ERROR },
	};
	char text[96];

	for (size_t i = 0; i < nitems(levels); i++) {
		snprintf(text, sizeof(text), "{\"plugin\": \"x.so\", "
		    "\"logLevel\": \"%s\"}", levels[i].name);
		parse_ok(text, 1);
		ck_assert_int_eq(task0()->log_level, levels[i].level);
		config_free(&cfg);
	}
}
END_TEST

/* ---- params ---- */

static const struct params_case {
	const char	*json;		/* NULL: key absent */
	const char	*stored;
} params_cases[] = {
	{ NULL, "null" },
	{ "null", "null" },
	{ "{ \"b\": 1,\n  \"a\": [1, 2, { \"c\" : null }] }",
	    "{\"b\":1,\"a\":[1,2,{\"c\":null}]}" },
	{ "[ 1, \"x\", {}, [] ]", "[1,\"x\",{},[]]" },
	{ "\"hello \\\"you\\\"\"", "\"hello \\\"you\\\"\"" },
	{ "42", "42" },
	{ "-1.5", "-1.5" },
	{ "true", "true" },
	{ "{}", "{}" },
};

START_TEST(test_params)
{
	const struct params_case *c = &params_cases[_i];
	char text[256];

	if (c->json == NULL)
		snprintf(text, sizeof(text), "{\"plugin\": \"x.so\"}");
	else
		snprintf(text, sizeof(text), "{\"plugin\": \"x.so\", "
		    "\"params\": %s}", c->json);
	parse_ok(text, 1);
	ck_assert_str_eq(task0()->params, c->stored);
}
END_TEST

/* ---- paths ---- */

static const struct path_case {
	const char	*config;	/* config_parse's path */
	const char	*key;
	const char	*value;
	const char	*resolved;
} path_cases[] = {
	{ P, "plugin", "x.so", "/etc/pm/x.so" },
	{ P, "plugin", "./x.so", "/etc/pm/x.so" },
	{ P, "plugin", "../lib/x.so", "/etc/pm/../lib/x.so" },
	{ P, "plugin", "/opt/x.so", "/opt/x.so" },
	{ P, "plugin", "a//b/./c.so", "/etc/pm/a/b/c.so" },
	{ P, "plugin", "./", "/etc/pm" },
	{ P, "runDir", "run", "/etc/pm/run" },
	{ P, "runDir", "/var/run/pm/", "/var/run/pm/" },
	{ P, "logFile", "./log//x.log", "/etc/pm/log/x.log" },
	{ P, "logFile", "/var/log/x.log", "/var/log/x.log" },
	{ "/c.json", "plugin", "x.so", "/x.so" },
	{ "/etc//pm/./c.json", "plugin", "x.so", "/etc/pm/x.so" },
};

START_TEST(test_paths)
{
	const struct path_case *c = &path_cases[_i];
	const struct task_config *t;
	char text[256];
	const char *got;

	if (strcmp(c->key, "plugin") == 0)
		snprintf(text, sizeof(text), "{\"plugin\": \"%s\"}", c->value);
	else
		snprintf(text, sizeof(text), "{\"plugin\": \"x.so\", "
		    "\"%s\": \"%s\"}", c->key, c->value);
	ck_assert_int_eq(config_parse(text, strlen(text), c->config, &cfg,
	    &errs), 0);
	t = task0();
	if (strcmp(c->key, "plugin") == 0)
		got = t->plugin;
	else if (strcmp(c->key, "runDir") == 0)
		got = t->run_dir;
	else
		got = t->log_file;
	ck_assert_str_eq(got, c->resolved);
}
END_TEST

START_TEST(test_config_path_cleaned)
{
	const char *text = "{\"plugin\": \"x.so\"}";

	ck_assert_int_eq(config_parse(text, strlen(text),
	    "/etc//pm/./c.json", &cfg, &errs), 0);
	ck_assert_str_eq(task0()->config_path, "/etc/pm/c.json");
}
END_TEST

START_TEST(test_relative_config_path)
{
	const char *text = "{\"plugin\": \"../x.so\", \"runDir\": \"r\"}";
	char cwd[1024], want[1200];

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(config_parse(text, strlen(text), "conf/./c.json",
	    &cfg, &errs), 0);
	snprintf(want, sizeof(want), "%s/conf/c.json",
	    strcmp(cwd, "/") == 0 ? "" : cwd);
	ck_assert_str_eq(task0()->config_path, want);
	snprintf(want, sizeof(want), "%s/conf/../x.so",
	    strcmp(cwd, "/") == 0 ? "" : cwd);
	ck_assert_str_eq(task0()->plugin, want);
	snprintf(want, sizeof(want), "%s/conf/r",
	    strcmp(cwd, "/") == 0 ? "" : cwd);
	ck_assert_str_eq(task0()->run_dir, want);
	config_free(&cfg);

	ck_assert_int_eq(config_parse(text, strlen(text), "./c.json",
	    &cfg, &errs), 0);
	snprintf(want, sizeof(want), "%s/c.json",
	    strcmp(cwd, "/") == 0 ? "" : cwd);
	ck_assert_str_eq(task0()->config_path, want);
}
END_TEST

/* ---- tasks ---- */

START_TEST(test_tasks_inherit)
{
	const struct task_config *a, *b;

	parse_ok("{\"plugin\": \"x.so\", \"maxWorkerNum\": 2, "
	    "\"titlePrefix\": \"pre\", \"params\": {\"a\": 1}, "
	    "\"logLevel\": \"debug\", \"user\": \"nobody\", "
	    "\"schedule\": \"rate\", \"runDir\": \"run\", "
	    "\"tasks\": [ {\"baseTitle\": \"a\"}, "
	    "{\"baseTitle\": \"b\", \"maxWorkerNum\": 8, "
	    "\"plugin\": \"/opt/y.so\", \"params\": [2], "
	    "\"logLevel\": \"error\", \"schedule\": \"delay\", "
	    "\"group\": \"staff\"} ]}", 2);
	a = &cfg.tasks[0];
	b = &cfg.tasks[1];

	ck_assert_str_eq(a->base_title, "a");
	ck_assert_int_eq(a->max_workers, 2);
	ck_assert_str_eq(a->plugin, "/etc/pm/x.so");
	ck_assert_str_eq(a->title_prefix, "pre");
	ck_assert_str_eq(a->params, "{\"a\":1}");
	ck_assert_int_eq(a->log_level, PM_LOG_DEBUG);
	ck_assert_str_eq(a->user, "nobody");
	ck_assert_ptr_null(a->group);
	ck_assert_int_eq(a->schedule, SCHEDULE_RATE);
	ck_assert_str_eq(a->run_dir, "/etc/pm/run");
	ck_assert_int_eq(a->check_interval, 300);

	ck_assert_str_eq(b->base_title, "b");
	ck_assert_int_eq(b->max_workers, 8);
	ck_assert_str_eq(b->plugin, "/opt/y.so");
	ck_assert_str_eq(b->title_prefix, "pre");
	ck_assert_str_eq(b->params, "[2]");
	ck_assert_int_eq(b->log_level, PM_LOG_ERROR);
	ck_assert_str_eq(b->user, "nobody");
	ck_assert_str_eq(b->group, "staff");
	ck_assert_int_eq(b->schedule, SCHEDULE_DELAY);
	ck_assert_str_eq(b->run_dir, "/etc/pm/run");
	ck_assert_str_eq(b->config_path, P);
}
END_TEST

START_TEST(test_tasks_plugin_per_task)
{
	parse_ok("{\"tasks\": [{\"plugin\": \"a.so\", \"baseTitle\": \"a\"},"
	    " {\"plugin\": \"b.so\", \"baseTitle\": \"b\"}]}", 2);
	ck_assert_str_eq(cfg.tasks[0].plugin, "/etc/pm/a.so");
	ck_assert_str_eq(cfg.tasks[1].plugin, "/etc/pm/b.so");
	ck_assert_str_eq(cfg.tasks[1].params, "null");
}
END_TEST

START_TEST(test_tasks_single_element)
{
	parse_ok("{\"plugin\": \"x.so\", \"tasks\": [{}]}", 1);
	ck_assert_str_eq(task0()->base_title, "process");
	ck_assert_int_eq(task0()->max_workers, 4);
}
END_TEST

/* ---- bad configs: one message each, exact text ---- */

static const struct bad_case {
	const char	*text;
	const char	*msg;
} bad_cases[] = {
	/* integers: wrong types */
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": \"four\"}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got \"four\"" },
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": 4.0}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got 4.0" },
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": true}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got true" },
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": null}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got null" },
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": [4]}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got [4]" },
	{ "{\"plugin\": \"x\", \"executeTimes\": 1.5}",
	    P ": executeTimes: must be an integer >= 0, got 1.5" },
	{ "{\"plugin\": \"x\", \"stopTimeout\": \"5\"}",
	    P ": stopTimeout: must be an integer from 0 to 86400, got \"5\"" },
	{ "{\"plugin\": \"x\", \"limitSeconds\": 1e3}",
	    P ": limitSeconds: must be an integer from 0 to 31536000, "
	    "got 1000.0" },
	/* integers: out of range */
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": 0}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got 0" },
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": 16385}",
	    P ": maxWorkerNum: must be an integer from 1 to 16384, got 16385" },
	{ "{\"plugin\": \"x\", \"checkWorkerInterval\": -31536001}",
	    P ": checkWorkerInterval: must be an integer from -31536000 to "
	    "31536000, got -31536001" },
	{ "{\"plugin\": \"x\", \"checkWorkerInterval\": 31536001}",
	    P ": checkWorkerInterval: must be an integer from -31536000 to "
	    "31536000, got 31536001" },
	{ "{\"plugin\": \"x\", \"executeTimes\": -1}",
	    P ": executeTimes: must be an integer >= 0, got -1" },
	{ "{\"plugin\": \"x\", \"executeUSleep\": -1}",
	    P ": executeUSleep: must be an integer from 0 to 31536000000000, "
	    "got -1" },
	{ "{\"plugin\": \"x\", \"executeUSleep\": 31536000000001}",
	    P ": executeUSleep: must be an integer from 0 to 31536000000000, "
	    "got 31536000000001" },
	{ "{\"plugin\": \"x\", \"limitSeconds\": -1}",
	    P ": limitSeconds: must be an integer from 0 to 31536000, got -1" },
	{ "{\"plugin\": \"x\", \"limitSeconds\": 31536001}",
	    P ": limitSeconds: must be an integer from 0 to 31536000, "
	    "got 31536001" },
	{ "{\"plugin\": \"x\", \"stopTimeout\": -1}",
	    P ": stopTimeout: must be an integer from 0 to 86400, got -1" },
	{ "{\"plugin\": \"x\", \"stopTimeout\": 86401}",
	    P ": stopTimeout: must be an integer from 0 to 86400, got 86401" },
	{ "{\"plugin\": \"x\", \"workTimeout\": 31536001}",
	    P ": workTimeout: must be an integer from 0 to 31536000, "
	    "got 31536001" },
	{ "{\"plugin\": \"x\", \"workTimeout\": -1}",
	    P ": workTimeout: must be an integer from 0 to 31536000, got -1" },
	{ "{\"plugin\": \"x\", \"maxRssMb\": 1048577}",
	    P ": maxRssMb: must be an integer from 0 to 1048576, got 1048577" },
	{ "{\"plugin\": \"x\", \"maxRssMb\": -1}",
	    P ": maxRssMb: must be an integer from 0 to 1048576, got -1" },
	/* plugin and other paths */
	{ "{\"plugin\": 3}",
	    P ": plugin: must be a non-empty string, got 3" },
	{ "{\"plugin\": null}",
	    P ": plugin: must be a non-empty string, got null" },
	{ "{\"plugin\": \"\"}",
	    P ": plugin: must be a non-empty string, got \"\"" },
	{ "{\"plugin\": \"x\", \"runDir\": \"\"}",
	    P ": runDir: must be a non-empty string, got \"\"" },
	{ "{\"plugin\": \"x\", \"logFile\": false}",
	    P ": logFile: must be a non-empty string, got false" },
	/* titles */
	{ "{\"plugin\": \"x\", \"baseTitle\": \"a/b\"}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64}, got \"a/b\"" },
	{ "{\"plugin\": \"x\", \"baseTitle\": \"..\"}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64} and not be \".\" "
	    "or \"..\", got \"..\"" },
	{ "{\"plugin\": \"x\", \"baseTitle\": \".\"}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64} and not be \".\" "
	    "or \"..\", got \".\"" },
	{ "{\"plugin\": \"x\", \"baseTitle\": \"" A64 "a\"}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64}, got \""
	    A16 A16 "aaaa..." },
	{ "{\"plugin\": \"x\", \"baseTitle\": \"\"}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64}, got \"\"" },
	{ "{\"plugin\": \"x\", \"baseTitle\": \"t\\u00e9\"}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64}, got \"t\xc3\xa9\"" },
	{ "{\"plugin\": \"x\", \"baseTitle\": 7}",
	    P ": baseTitle: must match [A-Za-z0-9_.-]{1,64}, got 7" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"\"" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"a/b\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"a/b\"" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"a\\tb\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"a\\tb\"" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"a\\u007f\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"a\x7f\"" },
	/* C1 controls and bidi overrides would make a title lie in ps. */
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"a\\u0085b\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"a\xc2\x85" "b\"" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"evil\\u202etxt\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"evil\xe2\x80\xae" "txt\"" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"x\\u2066y\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"x\xe2\x81\xa6" "y\"" },
	{ "{\"plugin\": \"x\", \"titlePrefix\": \"" A64 "a\"}",
	    P ": titlePrefix: must be a string of 1 to 64 bytes without '/', "
	    "control or bidi characters, got \"" A16 A16 "aaaa..." },
	/* enumerations */
	{ "{\"plugin\": \"x\", \"schedule\": \"fast\"}",
	    P ": schedule: must be \"delay\" or \"rate\", got \"fast\"" },
	{ "{\"plugin\": \"x\", \"schedule\": \"Rate\"}",
	    P ": schedule: must be \"delay\" or \"rate\", got \"Rate\"" },
	{ "{\"plugin\": \"x\", \"schedule\": 1}",
	    P ": schedule: must be \"delay\" or \"rate\", got 1" },
	{ "{\"plugin\": \"x\", \"logLevel\": \"loud\"}",
	    P ": logLevel: must be one of debug, info, notice, warning, error, "
	    "got \"loud\"" },
	{ "{\"plugin\": \"x\", \"logLevel\": \"INFO\"}",
	    P ": logLevel: must be one of debug, info, notice, warning, error, "
	    "got \"INFO\"" },
	{ "{\"plugin\": \"x\", \"logLevel\": 1}",
	    P ": logLevel: must be one of debug, info, notice, warning, error, "
	    "got 1" },
	/* user and group */
	{ "{\"plugin\": \"x\", \"user\": \"\"}",
	    P ": user: must be a non-empty string of at most 64 bytes, "
	    "got \"\"" },
	{ "{\"plugin\": \"x\", \"user\": 0}",
	    P ": user: must be a non-empty string of at most 64 bytes, got 0" },
	{ "{\"plugin\": \"x\", \"group\": \"" A64 "a\"}",
	    P ": group: must be a non-empty string of at most 64 bytes, "
	    "got \"" A16 A16 "aaaa..." },
	/* unknown keys */
	{ "{\"plugin\": \"x\", \"maxWorkers\": 2}",
	    P ": maxWorkers: unknown key (did you mean \"maxWorkerNum\"?)" },
	{ "{\"plugin\": \"x\", \"MAXWORKERNUM\": 2}",
	    P ": MAXWORKERNUM: unknown key (did you mean \"maxWorkerNum\"?)" },
	{ "{\"plugin\": \"x\", \"plugins\": \"y\"}",
	    P ": plugins: unknown key (did you mean \"plugin\"?)" },
	{ "{\"plugin\": \"x\", \"task\": []}",
	    P ": task: unknown key (did you mean \"tasks\"?)" },
	{ "{\"plugin\": \"x\", \"pugn\": 1}",
	    P ": pugn: unknown key (did you mean \"plugin\"?)" },
	{ "{\"plugin\": \"x\", \"zzzgin\": 1}",
	    P ": zzzgin: unknown key" },
	{ "{\"plugin\": \"x\", \"foo\": 1}",
	    P ": foo: unknown key" },
	{ "{\"plugin\": \"x\", \"a\\nb\": 1}",
	    P ": \"a\\nb\": unknown key" },
	{ "{\"plugin\": \"x\", \"\": 1}",
	    P ": \"\": unknown key" },
	{ "{\"plugin\": \"x\", \":x\": 1}",
	    P ": :x: unknown key" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"maxWorker\": 1}]}",
	    P ": tasks[0].maxWorker: unknown key (did you mean "
	    "\"maxWorkerNum\"?)" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"task\": 1}]}",
	    P ": tasks[0].task: unknown key" },
	/* tasks */
	{ "{\"plugin\": \"x\", \"tasks\": [{\"tasks\": []}]}",
	    P ": tasks[0].tasks: unknown key here: tasks cannot be nested" },
	{ "{\"plugin\": \"x\", \"tasks\": []}",
	    P ": tasks: must be a non-empty array of objects, got []" },
	{ "{\"plugin\": \"x\", \"tasks\": {}}",
	    P ": tasks: must be a non-empty array of objects, got {}" },
	{ "{\"plugin\": \"x\", \"tasks\": null}",
	    P ": tasks: must be a non-empty array of objects, got null" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"baseTitle\": \"a\"}, "
	    "{\"baseTitle\": \"b\"}, 5]}",
	    P ": tasks[2]: must be an object, got 5" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"baseTitle\": \"x\"}, "
	    "{\"baseTitle\": \"y\"}, {\"baseTitle\": \"x\"}]}",
	    P ": tasks[2].baseTitle: \"x\" is already used by tasks[0]" },
	{ "{\"plugin\": \"x\", \"baseTitle\": \"t\", \"tasks\": [{}, {}]}",
	    P ": tasks[1].baseTitle: \"t\" is already used by tasks[0]" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"maxWorkerNum\": 0}]}",
	    P ": tasks[0].maxWorkerNum: must be an integer from 1 to 16384, "
	    "got 0" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"plugin\": \"\"}]}",
	    P ": tasks[0].plugin: must be a non-empty string, got \"\"" },
	/* plugin missing */
	{ "{}", P ": plugin: required key is missing" },
	{ "{\"maxWorkerNum\": 2}", P ": plugin: required key is missing" },
	{ "{\"tasks\": [{\"plugin\": \"a\", \"baseTitle\": \"a\"}, "
	    "{\"baseTitle\": \"b\"}]}",
	    P ": tasks[1].plugin: required key is missing" },
	/* document level */
	{ "{\"plugin\": \"x.so\",\n\"plugin\": \"y\"}",
	    P ":2:8: duplicate object key near '\"plugin\"'" },
	{ "{\"plugin\": \"x\", \"tasks\": [{\"a\": 1, \"a\": 2}]}",
	    P ":1:38: duplicate object key near '\"a\"'" },
	{ "{\n  \"plugin\": \"x\",\n  \"maxWorkerNum\" 2\n}",
	    P ":3:18: ':' expected near '2'" },
	{ "{\"plugin\": \"x\",}",
	    P ":1:16: string or '}' expected near '}'" },
	{ "{\"plugin\": \"x\"} x",
	    P ":1:17: end of file expected near 'x'" },
	{ "{\"plugin\": \"x\", \"maxWorkerNum\": 99999999999999999999}",
	    P ":1:52: too big integer near '99999999999999999999'" },
	{ "[]", P ": the top level must be a JSON object, got an array" },
	{ "[{\"plugin\": \"x\"}]",
	    P ": the top level must be a JSON object, got an array" },
	{ "\"x.so\"", P ": the top level must be a JSON object, got a string" },
	{ "null", P ": the top level must be a JSON object, got null" },
	{ "", P ": the file is empty, expected a JSON object" },
	{ " \n\t\r\n", P ": the file is empty, expected a JSON object" },
};

START_TEST(test_bad_config)
{
	const struct bad_case *c = &bad_cases[_i];

	parse_bad(c->text, &c->msg, 1);
}
END_TEST

/* ---- several problems at once ---- */

START_TEST(test_all_errors_reported)
{
	static const char *const want[] = {
		P ": maxWorkerNum: must be an integer from 1 to 16384, got 0",
		P ": schedule: must be \"delay\" or \"rate\", got \"x\"",
		P ": foo: unknown key",
		P ": baseTitle: must match [A-Za-z0-9_.-]{1,64}, got \"a/b\"",
		P ": executeTimes: must be an integer >= 0, got \"1\"",
		P ": plugin: required key is missing",
	};

	parse_bad("{\"maxWorkerNum\": 0, \"schedule\": \"x\", \"foo\": 1, "
	    "\"baseTitle\": \"a/b\", \"executeTimes\": \"1\"}", want,
	    nitems(want));
}
END_TEST

START_TEST(test_all_errors_in_tasks)
{
	static const char *const want[] = {
		P ": stopTimeout: must be an integer from 0 to 86400, got -5",
		P ": tasks[0].plugin: required key is missing",
		P ": tasks[1].limitSeconds: must be an integer from 0 to "
		    "31536000, got true",
		P ": tasks[1].tasks: unknown key here: tasks cannot be nested",
		P ": tasks[2]: must be an object, got \"a\"",
		P ": tasks[3].baseTitle: \"process\" is already used by "
		    "tasks[1]",
		P ": tasks[4].baseTitle: \"process\" is already used by "
		    "tasks[1]",
	};

	/*
	 * The bad top-level stopTimeout is reported once, not once per task
	 * inheriting it; tasks[0] reuses no title since it has its own.
	 */
	parse_bad("{\"stopTimeout\": -5, \"tasks\": ["
	    "{\"baseTitle\": \"a\"},"
	    "{\"plugin\": \"p\", \"limitSeconds\": true, \"tasks\": 1},"
	    "\"a\","
	    "{\"plugin\": \"p\"},"
	    "{\"plugin\": \"p\"}]}", want, nitems(want));
}
END_TEST

START_TEST(test_bad_title_not_reported_as_duplicate)
{
	static const char *const want[] = {
		P ": tasks[0].baseTitle: must match [A-Za-z0-9_.-]{1,64}, "
		    "got \"a b\"",
		P ": tasks[1].baseTitle: must match [A-Za-z0-9_.-]{1,64}, "
		    "got \"a b\"",
	};

	parse_bad("{\"plugin\": \"p\", \"tasks\": [{\"baseTitle\": \"a b\"}, "
	    "{\"baseTitle\": \"a b\"}]}", want, nitems(want));
}
END_TEST

START_TEST(test_errors_appended)
{
	parse_bad("{}", (const char *const[]){
	    P ": plugin: required key is missing" }, 1);
	ck_assert_int_eq(parse("[]"), -1);
	ck_assert_uint_eq(errs.count, 2);
	ck_assert_str_eq(errs.msgs[0], P ": plugin: required key is missing");
	ck_assert_str_eq(errs.msgs[1],
	    P ": the top level must be a JSON object, got an array");
}
END_TEST

START_TEST(test_long_unknown_key)
{
	parse_bad("{\"plugin\": \"x\", \"" A64 A16 "\": 1}",
	    (const char *const[]){ P ": \"" A16 A16 "aaaa...: unknown key" },
	    1);
}
END_TEST

START_TEST(test_many_tasks)
{
	/* Distinct titles in a long list must not cost quadratic time. */
	size_t	 n = 20000, len = 0, size = n * 40 + 64;
	char	*text = malloc(size);

	ck_assert_ptr_nonnull(text);
	len += (size_t)snprintf(text + len, size - len,
	    "{\"plugin\": \"x.so\", \"tasks\": [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, size - len,
		    "%s{\"baseTitle\": \"t%zu\"}", i > 0 ? "," : "", i);
	len += (size_t)snprintf(text + len, size - len, "]}");
	ck_assert_int_eq(config_parse(text, len, P, &cfg, &errs), 0);
	ck_assert_uint_eq(cfg.ntasks, n);
	ck_assert_str_eq(cfg.tasks[n - 1].base_title, "t19999");
	free(text);
}
END_TEST

/* ---- task_config_copy ---- */

START_TEST(test_task_copy)
{
	struct task_config copy;

	parse_ok("{\"plugin\": \"x.so\", \"baseTitle\": \"b\", "
	    "\"titlePrefix\": \"p\", \"params\": [1], \"user\": \"u\", "
	    "\"group\": \"g\", \"runDir\": \"r\", \"logFile\": \"l\", "
	    "\"logLevel\": \"notice\", \"maxWorkerNum\": 7, "
	    "\"executeTimes\": 9, \"checkWorkerInterval\": -1}", 1);
	ck_assert_int_eq(task_config_copy(&copy, task0()), 0);
	ck_assert_ptr_ne(copy.plugin, task0()->plugin);
	ck_assert_ptr_ne(copy.params, task0()->params);
	config_free(&cfg);

	ck_assert_str_eq(copy.config_path, P);
	ck_assert_str_eq(copy.plugin, "/etc/pm/x.so");
	ck_assert_str_eq(copy.base_title, "b");
	ck_assert_str_eq(copy.title_prefix, "p");
	ck_assert_str_eq(copy.params, "[1]");
	ck_assert_str_eq(copy.user, "u");
	ck_assert_str_eq(copy.group, "g");
	ck_assert_str_eq(copy.run_dir, "/etc/pm/r");
	ck_assert_str_eq(copy.log_file, "/etc/pm/l");
	ck_assert_int_eq(copy.log_level, PM_LOG_NOTICE);
	ck_assert_int_eq(copy.max_workers, 7);
	ck_assert_uint_eq(copy.execute_times, 9);
	ck_assert_int_eq(copy.check_interval, -1);
	task_config_free(&copy);
	ck_assert_ptr_null(copy.plugin);
}
END_TEST

START_TEST(test_task_copy_null_strings)
{
	struct task_config copy;

	parse_ok("{\"plugin\": \"x.so\"}", 1);
	ck_assert_int_eq(task_config_copy(&copy, task0()), 0);
	ck_assert_ptr_null(copy.user);
	ck_assert_ptr_null(copy.group);
	ck_assert_ptr_null(copy.run_dir);
	ck_assert_ptr_null(copy.log_file);
	ck_assert_str_eq(copy.params, "null");
	task_config_free(&copy);
}
END_TEST

/* ---- config_load ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Runs in the parent, so the directory goes even when a test fails. */
static void
tmpdir_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		ck_abort_msg("mkdtemp: %s", strerror(errno));
}

static void
tmpdir_teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir "/" name into buf. */
static const char *
tmp_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
	return buf;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* config_load(path) must fail with exactly "path: tail". */
static void
load_bad(const char *path, const char *tail)
{
	char want[512];

	snprintf(want, sizeof(want), "%s: %s", path, tail);
	cfg.ntasks = 99;
	ck_assert_int_eq(config_load(path, &cfg, &errs), -1);
	ck_assert_uint_eq(cfg.ntasks, 0);
	ck_assert_ptr_null(cfg.tasks);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.msgs[0], want);
}

START_TEST(test_load_ok)
{
	char path[128], want[160];
	const char *text = "{\"plugin\": \"p.so\", \"maxWorkerNum\": 3}\n";

	write_file(tmp_path(path, sizeof(path), "c.json"), text, strlen(text));
	ck_assert_int_eq(config_load(path, &cfg, &errs), 0);
	ck_assert_uint_eq(cfg.ntasks, 1);
	ck_assert_str_eq(task0()->config_path, path);
	ck_assert_str_eq(task0()->plugin,
	    tmp_path(want, sizeof(want), "p.so"));
	ck_assert_int_eq(task0()->max_workers, 3);
}
END_TEST

START_TEST(test_load_syntax_error)
{
	char path[128];
	const char *text = "{\n\"plugin\": 'x'\n}\n";

	write_file(tmp_path(path, sizeof(path), "c.json"), text, strlen(text));
	ck_assert_int_eq(config_load(path, &cfg, &errs), -1);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.msgs[0] + strlen(path),
	    ":2:11: invalid token near '''");
	ck_assert_int_eq(strncmp(errs.msgs[0], path, strlen(path)), 0);
}
END_TEST

START_TEST(test_load_empty_file)
{
	char path[128];

	write_file(tmp_path(path, sizeof(path), "c.json"), "", 0);
	load_bad(path, "the file is empty, expected a JSON object");
}
END_TEST

START_TEST(test_load_missing)
{
	char path[128];

	load_bad(tmp_path(path, sizeof(path), "nope.json"),
	    "No such file or directory");
}
END_TEST

START_TEST(test_load_directory)
{
	load_bad(tmpdir, "is a directory");
}
END_TEST

START_TEST(test_load_too_large)
{
	char	 path[128];
	size_t	 size = CONFIG_MAX_BYTES + 1;
	char	*data = malloc(size);

	ck_assert_ptr_nonnull(data);
	memset(data, ' ', size);
	write_file(tmp_path(path, sizeof(path), "big.json"), data, size);
	free(data);
	load_bad(path, "file too large (1048577 bytes, at most 1048576)");
}
END_TEST

START_TEST(test_load_exactly_limit)
{
	char		 path[128];
	size_t		 size = CONFIG_MAX_BYTES;
	char		*data = malloc(size);
	const char	*head = "{\"plugin\": \"x.so\", \"params\": \"";

	/* A string padded so that the file is exactly the limit. */
	ck_assert_ptr_nonnull(data);
	memset(data, 'z', size);
	memcpy(data, head, strlen(head));
	memcpy(data + size - 2, "\"}", 2);
	write_file(tmp_path(path, sizeof(path), "max.json"), data, size);
	free(data);
	ck_assert_int_eq(config_load(path, &cfg, &errs), 0);
	ck_assert_uint_eq(strlen(task0()->params),
	    size - strlen(head) - 2 + 2);
}
END_TEST

START_TEST(test_load_fifo)
{
	char path[128];

	ck_assert_int_eq(mkfifo(tmp_path(path, sizeof(path), "fifo"), 0600),
	    0);
	load_bad(path, "not a regular file");
}
END_TEST

START_TEST(test_load_dev_null)
{
	load_bad("/dev/null", "not a regular file");
}
END_TEST

START_TEST(test_load_symlink_loop)
{
	char path[128];

	ck_assert_int_eq(symlink("loop",
	    tmp_path(path, sizeof(path), "loop")), 0);
	load_bad(path, strerror(ELOOP));
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("values");
	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_loop_test(tc, test_int_bounds, 0, nitems(int_cases));
	tcase_add_test(tc, test_string_bounds);
	tcase_add_test(tc, test_schedule_values);
	tcase_add_test(tc, test_log_levels);
	tcase_add_loop_test(tc, test_params, 0, nitems(params_cases));
	tcase_add_loop_test(tc, test_paths, 0, nitems(path_cases));
	tcase_add_test(tc, test_config_path_cleaned);
	tcase_add_test(tc, test_relative_config_path);
	suite_add_tcase(s, tc);

	tc = tcase_create("tasks");
	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
	tcase_add_test(tc, test_tasks_inherit);
	tcase_add_test(tc, test_tasks_plugin_per_task);
	tcase_add_test(tc, test_tasks_single_element);
	tcase_add_test(tc, test_many_tasks);
	tcase_add_test(tc, test_task_copy);
	tcase_add_test(tc, test_task_copy_null_strings);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
	tcase_add_loop_test(tc, test_bad_config, 0, nitems(bad_cases));
	tcase_add_test(tc, test_all_errors_reported);
	tcase_add_test(tc, test_all_errors_in_tasks);
	tcase_add_test(tc, test_bad_title_not_reported_as_duplicate);
	tcase_add_test(tc, test_errors_appended);
	tcase_add_test(tc, test_long_unknown_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
	tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
	tcase_add_test(tc, test_load_ok);
	tcase_add_test(tc, test_load_syntax_error);
	tcase_add_test(tc, test_load_empty_file);
	tcase_add_test(tc, test_load_missing);
	tcase_add_test(tc, test_load_directory);
	tcase_add_test(tc, test_load_too_large);
	tcase_add_test(tc, test_load_exactly_limit);
	tcase_add_test(tc, test_load_fifo);
	tcase_add_test(tc, test_load_dev_null);
	tcase_add_test(tc, test_load_symlink_loop);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(config_suite());
}
