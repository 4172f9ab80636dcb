/*
 * fuzz_config.c - libFuzzer target for config_parse(): any bytes, read as
 * the config file FUZZ_PATH, must give either a clean refusal or a sound
 * task list; never a crash, a leak or undefined behaviour.
 *
 * Invariants checked on every input (a broken one aborts with its text):
 *   - config_parse() returns 0 or -1;
 *   - on -1: no tasks (ntasks 0, tasks NULL) and at least one message;
 *     every message is non-NULL, starts with "FUZZ_PATH:" and is one line;
 *   - on 0: no message and at least one task; each task has the cleaned
 *     config path, an absolute plugin, a valid titlePrefix and baseTitle
 *     (no two tasks share one), params that parse back as JSON, integers
 *     within their documented ranges, user and group of 1 to 64 bytes and
 *     absolute runDir and logFile when set;
 *   - task_config_copy() gives an equal task sharing no storage, and
 *     task_config_free() empties it;
 *   - config_free() and config_errors_free() empty their structs.  All is
 *     freed on both paths, so LeakSanitizer reports whatever leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PMHOST_HOST
#include "pmhost.h"
#include "config.h"
#include "names.h"

/* Not cleaned on purpose: config_parse() must clean it lexically. */
#define FUZZ_PATH	"/fuzz//dir/./config.json"
#define FUZZ_ABS_PATH	"/fuzz/dir/config.json"

#define ONE_YEAR_S	31536000LL

#define EXPECT(cond)	do {						\
	if (!(cond))							\
		broken(__LINE__, #cond, NULL);				\
} while (0)

#define EXPECT_MSG(cond, msg)	do {					\
	if (!(cond))							\
		broken(__LINE__, #cond, (msg));				\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Names the broken invariant (and the message at fault), then aborts. */
static _Noreturn void
broken(int line, const char *what, const char *msg)
{
	fprintf(stderr, "fuzz_config.c:%d: invariant broken: %s\n", line,
	    what);
	if (msg != NULL)
		fprintf(stderr, "  message: \"%s\"\n", msg);
	abort();
}

/* Are a and b both NULL, or equal strings in distinct storage? */
static int
str_copied(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return a != b && strcmp(a, b) == 0;
}

/* The titlePrefix rule of config.c: 1..64 bytes, no '/', no control. */
static int
prefix_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CONFIG_MAX_TITLE)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '/')
			return 0;
	return 1;
}

/* A user or group name as config.c lets it through. */
static int
id_ok(const char *s)
{
	return s == NULL || (s[0] != '\0' && strlen(s) <= 64);
}

/* Does params parse back as exactly one JSON value? */
static int
params_ok(const char *params)
{
	json_t		*v;
	json_error_t	 jerr;

	if ((v = json_loads(params, JSON_DECODE_ANY, &jerr)) == NULL)
		return 0;
	json_decref(v);
	return 1;
}

/* A refusal: no tasks, and only one-line messages naming the file. */
static void
check_failure(const struct config *cfg, const struct config_errors *errs)
{
	const size_t plen = strlen(FUZZ_PATH);

	EXPECT(cfg->ntasks == 0);
	EXPECT(cfg->tasks == NULL);
	EXPECT(errs->count >= 1);
	EXPECT(errs->msgs != NULL);
	for (size_t i = 0; i < errs->count; i++) {
		const char *m = errs->msgs[i];

		EXPECT(m != NULL);
		EXPECT_MSG(strncmp(m, FUZZ_PATH, plen) == 0 && m[plen] == ':',
		    m);
		EXPECT_MSG(strchr(m, '\n') == NULL, m);
	}
}

/* One task as config.c promises it to the rest of the host. */
static void
check_task(const struct task_config *t)
{
	EXPECT(t->config_path != NULL &&
	    strcmp(t->config_path, FUZZ_ABS_PATH) == 0);
	EXPECT(t->plugin != NULL && t->plugin[0] == '/');
	EXPECT(t->title_prefix != NULL && prefix_ok(t->title_prefix));
	EXPECT(t->base_title != NULL && title_valid(t->base_title));
	EXPECT(t->params != NULL && params_ok(t->params));
	EXPECT(t->check_interval >= -ONE_YEAR_S &&
	    t->check_interval <= ONE_YEAR_S);
	EXPECT(t->max_workers >= 1 && t->max_workers <= CONFIG_MAX_WORKERS);
	EXPECT(t->execute_times <= (uint64_t)INT64_MAX);
	EXPECT(t->execute_usleep <= (uint64_t)ONE_YEAR_S * 1000000);
	EXPECT(t->limit_seconds <= (uint64_t)ONE_YEAR_S);
	EXPECT(t->stop_timeout <= 86400);
	EXPECT(t->work_timeout <= ONE_YEAR_S);
	EXPECT(t->max_rss_mb <= 1048576);
	EXPECT(t->schedule == SCHEDULE_DELAY || t->schedule == SCHEDULE_RATE);
	EXPECT(id_ok(t->user));
	EXPECT(id_ok(t->group));
	EXPECT(t->run_dir == NULL || t->run_dir[0] == '/');
	EXPECT(t->log_file == NULL || t->log_file[0] == '/');
	EXPECT(t->log_level >= -1 && t->log_level <= PM_LOG_ERROR);
}

/* A copy equals its source field by field and shares none of its storage. */
static void
check_copy(const struct task_config *t)
{
	struct task_config c;

	EXPECT(task_config_copy(&c, t) == 0);
	EXPECT(str_copied(c.config_path, t->config_path));
	EXPECT(str_copied(c.plugin, t->plugin));
	EXPECT(str_copied(c.title_prefix, t->title_prefix));
	EXPECT(str_copied(c.base_title, t->base_title));
	EXPECT(str_copied(c.params, t->params));
	EXPECT(str_copied(c.user, t->user));
	EXPECT(str_copied(c.group, t->group));
	EXPECT(str_copied(c.run_dir, t->run_dir));
	EXPECT(str_copied(c.log_file, t->log_file));
	EXPECT(c.check_interval == t->check_interval &&
	    c.max_workers == t->max_workers &&
	    c.execute_times == t->execute_times &&
	    c.execute_usleep == t->execute_usleep &&
	    c.limit_seconds == t->limit_seconds &&
	    c.stop_timeout == t->stop_timeout &&
	    c.work_timeout == t->work_timeout &&
	    c.max_rss_mb == t->max_rss_mb && c.schedule == t->schedule &&
	    c.log_level == t->log_level);
	task_config_free(&c);
	EXPECT(c.config_path == NULL && c.plugin == NULL &&
	    c.title_prefix == NULL && c.base_title == NULL &&
	    c.params == NULL && c.user == NULL && c.group == NULL &&
	    c.run_dir == NULL && c.log_file == NULL);
}

/* qsort() order of two title pointers. */
static int
title_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two masters cannot share one identity; sorting keeps long lists fast. */
static void
check_titles_unique(const struct config *cfg)
{
	const char **titles;

	if ((titles = calloc(cfg->ntasks, sizeof(*titles))) == NULL)
		abort();
	for (size_t i = 0; i < cfg->ntasks; i++)
		titles[i] = cfg->tasks[i].base_title;
	qsort(titles, cfg->ntasks, sizeof(*titles), title_cmp);
	for (size_t i = 1; i < cfg->ntasks; i++)
		EXPECT_MSG(strcmp(titles[i - 1], titles[i]) != 0, titles[i]);
	free(titles);
}

/* An acceptance: no message and only sound tasks. */
static void
check_success(const struct config *cfg, const struct config_errors *errs)
{
	EXPECT(errs->count == 0);
	EXPECT(cfg->ntasks >= 1);
	EXPECT(cfg->tasks != NULL);
	for (size_t i = 0; i < cfg->ntasks; i++) {
		check_task(&cfg->tasks[i]);
		check_copy(&cfg->tasks[i]);
	}
	check_titles_unique(cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config		cfg;
	struct config_errors	errs = { 0, NULL };
	int			rc;

	/* Garbage in cfg must not leak through: config_parse() resets it. */
	memset(&cfg, 0xa5, sizeof(cfg));
	rc = config_parse((const char *)data, size, FUZZ_PATH, &cfg, &errs);
	EXPECT(rc == 0 || rc == -1);
	if (rc == -1)
		check_failure(&cfg, &errs);
	else
		check_success(&cfg, &errs);

	config_free(&cfg);
	EXPECT(cfg.ntasks == 0 && cfg.tasks == NULL);
	config_errors_free(&errs);
	EXPECT(errs.count == 0 && errs.msgs == NULL);
	return 0;
}
