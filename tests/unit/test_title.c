/*
 * test_title.c - unit tests of process titles: title_compose()'s format
 * and snprintf-like truncation, and title_init()/title_set() on a fake
 * argv area laid out as the kernel does (argv strings, then environ
 * strings, back to back): what /proc/PID/cmdline would show, that writes
 * stay inside the area, and that the environment survives the move.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "unit.h"

#include "title.h"

extern char **environ;

#define GUARD		'#'
#define GUARD_LEN	32
#define MAX_STRS	8

static char	  mem[1024];		/* guard, area, guard */
static char	 *fake_argv[MAX_STRS + 1];
static char	 *fake_env[MAX_STRS + 1];
static int	  fake_argc;
static char	 *area;			/* what title_init should claim */
static size_t	  arg_len;		/* argv strings alone */
static size_t	  area_len;		/* argv and environ strings */
static char	**saved_environ;

static void
setup(void)
{
	saved_environ = environ;
}

/* Frees the heap copy title_init() made, and puts the real one back. */
static void
teardown(void)
{
	if (environ != saved_environ && environ != fake_env) {
		for (char **e = environ; *e != NULL; e++)
			free(*e);
		free(environ);
	}
	environ = saved_environ;
}

/* Copies strs back to back from *p, recording where each one starts. */
static void
lay_out(char **p, const char *const *strs, char **ptrs)
{
	int i;

	for (i = 0; strs[i] != NULL; i++) {
		ck_assert_int_lt(i, MAX_STRS);
		ptrs[i] = *p;
		strcpy(*p, strs[i]);
		*p += strlen(strs[i]) + 1;
	}
	ptrs[i] = NULL;
}

/*
 * Builds the kernel's layout in mem and points environ at the fake
 * environment, so that title_init() sees what a fresh process would.
 */
static void
fake_process(const char *const *args, const char *const *envs)
{
	char *p;

	memset(mem, GUARD, sizeof(mem));
	area = p = mem + GUARD_LEN;
	lay_out(&p, args, fake_argv);
	arg_len = (size_t)(p - area);
	lay_out(&p, envs, fake_env);
	area_len = (size_t)(p - area);
	for (fake_argc = 0; fake_argv[fake_argc] != NULL; fake_argc++)
		;
	environ = fake_env;
}

/* Every byte outside [area, area + area_len) is still a guard. */
static void
assert_guards_intact(void)
{
	for (size_t i = 0; i < GUARD_LEN; i++)
		ck_assert_msg(mem[i] == GUARD, "guard byte -%zu overwritten",
		    GUARD_LEN - i);
	for (char *p = area + area_len; p < mem + sizeof(mem); p++)
		ck_assert_msg(*p == GUARD, "byte %td past the area overwritten",
		    p - (area + area_len));
}

/*
 * What the kernel reports as /proc/PID/cmdline: the argv range when its
 * last byte is NUL, else the string at argv[0] (with its NUL) read on
 * into the environment area.
 */
static size_t
cmdline_len(void)
{
	size_t n;

	if (area[arg_len - 1] == '\0')
		return arg_len;
	n = strnlen(area, area_len);
	return n < area_len ? n + 1 : n;
}

/* The kernel would show exactly want and nothing else. */
static void
assert_shown(const char *want)
{
	size_t len = strlen(want);

	ck_assert_uint_eq(cmdline_len(), len + 1);
	ck_assert_mem_eq(area, want, len + 1);
}

static const char *const std_args[] = {
	"./pmhost", "run", "task.json", NULL		/* 23 bytes */
};
static const char *const std_envs[] = {
	"HOME=/root", "PMHOST_TEST_A=alpha", "PMHOST_TEST_B=beta", NULL
};						/* 11 + 20 + 19 bytes */

/* --- title_compose ------------------------------------------------------ */

START_TEST(compose_master)
{
	char buf[PROC_TITLE_MAX];

	ck_assert_int_eq(title_compose(buf, sizeof(buf), "process_m",
	    TITLE_MASTER, "process"), 24);
	ck_assert_str_eq(buf, "process_m:Master:process");
}
END_TEST

START_TEST(compose_worker)
{
	char buf[PROC_TITLE_MAX];

	ck_assert_int_eq(title_compose(buf, sizeof(buf), "process_m",
	    TITLE_WORKER, "process"), 24);
	ck_assert_str_eq(buf, "process_m:Worker:process");
}
END_TEST

START_TEST(compose_empty_parts)
{
	char buf[PROC_TITLE_MAX];

	ck_assert_int_eq(title_compose(buf, sizeof(buf), "", TITLE_WORKER, ""),
	    8);
	ck_assert_str_eq(buf, ":Worker:");
}
END_TEST

START_TEST(compose_long_prefix_truncated)
{
	char buf[24];
	const char *prefix = "a_very_long_title_prefix_indeed";

	memset(buf, GUARD, sizeof(buf));
	/* Offer 16 bytes of the 24: the rest must stay untouched. */
	ck_assert_int_eq(title_compose(buf, 16, prefix, TITLE_MASTER,
	    "base"), 43);
	ck_assert_str_eq(buf, "a_very_long_tit");
	ck_assert_mem_eq(buf + 16, "########", 8);
}
END_TEST

START_TEST(compose_exact_fit)
{
	char buf[32];

	/* "p:Worker:b" is 10 characters. */
	ck_assert_int_eq(title_compose(buf, 11, "p", TITLE_WORKER, "b"), 10);
	ck_assert_str_eq(buf, "p:Worker:b");
	ck_assert_int_eq(title_compose(buf, 10, "p", TITLE_WORKER, "b"), 10);
	ck_assert_str_eq(buf, "p:Worker:");
}
END_TEST

START_TEST(compose_size_zero)
{
	char buf[4] = "###";

	ck_assert_int_eq(title_compose(buf, 0, "pre", TITLE_MASTER, "base"),
	    15);
	ck_assert_str_eq(buf, "###");
}
END_TEST

/* --- title_init / title_set --------------------------------------------- */

START_TEST(layout_sanity)
{
	/* The fixture itself, so the numbers below mean what they say. */
	fake_process(std_args, std_envs);
	ck_assert_uint_eq(arg_len, 23);
	ck_assert_uint_eq(area_len, 73);
	ck_assert_ptr_eq(fake_argv[2], area + 13);
	ck_assert_ptr_eq(fake_env[0], area + 23);
	ck_assert_int_eq(fake_argc, 3);
}
END_TEST

START_TEST(set_short_title)
{
	fake_process(std_args, std_envs);
	title_init(fake_argc, fake_argv);
	title_set("pm:Master:x");
	ck_assert_mem_eq(area, "pm:Master:x", 12);
	/* The argv range's last byte is marked so the kernel stops at NUL. */
	ck_assert_int_ne(area[arg_len - 1], '\0');
	for (size_t i = 12; i < arg_len - 1; i++)
		ck_assert_int_eq(area[i], '\0');
	/* A title that fits argv leaves the environment strings alone. */
	ck_assert_mem_eq(area + arg_len, "HOME=/root\0PMHOST_TEST_A=alpha\0"
	    "PMHOST_TEST_B=beta", area_len - arg_len);
	assert_shown("pm:Master:x");
	assert_guards_intact();
}
END_TEST

START_TEST(set_title_filling_argv)
{
	char title[32];

	/* arg_len - 1 characters: the title's own NUL ends the argv range. */
	fake_process(std_args, std_envs);
	memset(title, 'T', 22);
	title[22] = '\0';
	title_init(fake_argc, fake_argv);
	title_set(title);
	ck_assert_int_eq(area[arg_len - 1], '\0');
	assert_shown(title);
	assert_guards_intact();
}
END_TEST

START_TEST(set_title_into_environ_space)
{
	const char *title = "process_m:Master:a_rather_long_base_title";

	/* 41 characters: past the 23 argv bytes, within the 73 in all. */
	fake_process(std_args, std_envs);
	title_init(fake_argc, fake_argv);
	title_set(title);
	ck_assert_int_ne(area[arg_len - 1], '\0');
	assert_shown(title);
	for (size_t i = strlen(title); i < area_len; i++)
		ck_assert_int_eq(area[i], '\0');
	assert_guards_intact();
}
END_TEST

START_TEST(set_title_longer_than_area)
{
	char title[600];

	fake_process(std_args, std_envs);
	for (size_t i = 0; i < sizeof(title) - 1; i++)
		title[i] = (char)('a' + i % 26);
	title[sizeof(title) - 1] = '\0';
	title_init(fake_argc, fake_argv);
	title_set(title);
	/* area_len - 1 characters and a NUL in the last byte of the area. */
	ck_assert_mem_eq(area, title, area_len - 1);
	ck_assert_int_eq(area[area_len - 1], '\0');
	ck_assert_uint_eq(cmdline_len(), area_len);
	assert_guards_intact();
}
END_TEST

START_TEST(set_title_at_area_boundary)
{
	char title[128];

	fake_process(std_args, std_envs);
	memset(title, 'B', sizeof(title));
	title_init(fake_argc, fake_argv);

	/* area_len - 1 characters fit exactly, with the NUL last. */
	title[area_len - 1] = '\0';
	title_set(title);
	assert_shown(title);
	ck_assert_int_eq(area[area_len - 1], '\0');

	/* area_len characters lose the last one to the NUL. */
	title[area_len - 1] = 'B';
	title[area_len] = '\0';
	title_set(title);
	ck_assert_int_eq(area[area_len - 2], 'B');
	ck_assert_int_eq(area[area_len - 1], '\0');
	ck_assert_uint_eq(cmdline_len(), area_len);
	assert_guards_intact();
}
END_TEST

START_TEST(set_shorter_title_clears_longer)
{
	fake_process(std_args, std_envs);
	title_init(fake_argc, fake_argv);
	title_set("process_m:Worker:first_and_longest_title");
	title_set("p:Worker:b");
	assert_shown("p:Worker:b");
	/* The longer title took the environment's room: all cleared. */
	for (size_t i = 11; i < area_len; i++)
		if (i != arg_len - 1)
			ck_assert_int_eq(area[i], '\0');
	assert_guards_intact();
}
END_TEST

START_TEST(environment_survives)
{
	fake_process(std_args, std_envs);
	title_init(fake_argc, fake_argv);
	ck_assert_ptr_ne(environ, fake_env);
	title_set("process_m:Master:a_title_that_covers_the_environment_"
	    "strings_completely");
	/* The old strings are gone; the copies are intact and elsewhere. */
	ck_assert_int_ne(memcmp(fake_env[1], "PMHOST_TEST_A=", 14), 0);
	ck_assert_ptr_nonnull(getenv("PMHOST_TEST_A"));
	ck_assert_str_eq(getenv("PMHOST_TEST_A"), "alpha");
	ck_assert_str_eq(getenv("PMHOST_TEST_B"), "beta");
	ck_assert_str_eq(getenv("HOME"), "/root");
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(environ[i], std_envs[i]);
		ck_assert_msg(environ[i] < mem ||
		    environ[i] >= mem + sizeof(mem),
		    "environ[%d] still points into the argv area", i);
	}
	ck_assert_ptr_null(environ[3]);
	assert_guards_intact();
}
END_TEST

START_TEST(empty_environment)
{
	static const char *const none[] = { NULL };

	fake_process(std_args, none);
	ck_assert_uint_eq(area_len, arg_len);
	title_init(fake_argc, fake_argv);
	ck_assert_ptr_nonnull(environ);
	ck_assert_ptr_null(environ[0]);
	title_set("p:Master:a_title_longer_than_argv");
	ck_assert_mem_eq(area, "p:Master:a_title_longe", arg_len - 1);
	ck_assert_int_eq(area[arg_len - 1], '\0');
	assert_guards_intact();
}
END_TEST

START_TEST(environ_elsewhere_not_claimed)
{
	static char elsewhere[64] = "PMHOST_TEST_A=alpha";
	static const char *const none[] = { NULL };

	/* An environment not right after argv is not part of the area. */
	fake_process(std_args, none);
	fake_env[0] = elsewhere;
	fake_env[1] = NULL;
	title_init(fake_argc, fake_argv);
	title_set("process_m:Master:a_long_title_indeed");
	ck_assert_mem_eq(area, "process_m:Master:a_lon", 22);
	ck_assert_int_eq(area[22], '\0');
	ck_assert_str_eq(elsewhere, "PMHOST_TEST_A=alpha");
	ck_assert_str_eq(getenv("PMHOST_TEST_A"), "alpha");
	assert_guards_intact();
}
END_TEST

START_TEST(argv_elsewhere_not_claimed)
{
	static char other[16] = "task.json";
	static const char *const args[] = { "./pmhost", "run", NULL };
	static const char *const none[] = { NULL };

	/* argv[2] lives elsewhere: only argv[0] and argv[1] are claimed. */
	fake_process(args, none);
	fake_argv[2] = other;
	fake_argv[3] = NULL;
	fake_argc = 3;
	title_init(fake_argc, fake_argv);
	title_set("p:Worker:long_enough");
	ck_assert_uint_eq(arg_len, 13);
	ck_assert_mem_eq(area, "p:Worker:lon", 12);
	ck_assert_int_eq(area[12], '\0');
	ck_assert_str_eq(other, "task.json");
	assert_guards_intact();
}
END_TEST

static Suite *
title_suite(void)
{
	Suite *s = suite_create("title");
	TCase *tc_compose = tcase_create("compose");
	TCase *tc_area = tcase_create("area");

	tcase_add_test(tc_compose, compose_master);
	tcase_add_test(tc_compose, compose_worker);
	tcase_add_test(tc_compose, compose_empty_parts);
	tcase_add_test(tc_compose, compose_long_prefix_truncated);
	tcase_add_test(tc_compose, compose_exact_fit);
	tcase_add_test(tc_compose, compose_size_zero);
	suite_add_tcase(s, tc_compose);

	tcase_add_checked_fixture(tc_area, setup, teardown);
	tcase_add_test(tc_area, layout_sanity);
	tcase_add_test(tc_area, set_short_title);
	tcase_add_test(tc_area, set_title_filling_argv);
	tcase_add_test(tc_area, set_title_into_environ_space);
	tcase_add_test(tc_area, set_title_longer_than_area);
	tcase_add_test(tc_area, set_title_at_area_boundary);
	tcase_add_test(tc_area, set_shorter_title_clears_longer);
	tcase_add_test(tc_area, environment_survives);
	tcase_add_test(tc_area, empty_environment);
	tcase_add_test(tc_area, environ_elsewhere_not_claimed);
	tcase_add_test(tc_area, argv_elsewhere_not_claimed);
	suite_add_tcase(s, tc_area);
	return s;
}

int
main(void)
{
	return unit_run(title_suite());
}
