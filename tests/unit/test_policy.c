/*
 * test_policy.c - unit tests of the respawn policy: the exact reason text
 * and class policy_classify() gives every kind of exit, the backoff
 * schedule (0, 0, 100 ms doubling, capped at 30 s without overflow) and
 * how policy_after_exit() counts, resets and saturates a failure streak.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <check.h>

#include "unit.h"

#include "policy.h"
#include "scoreboard.h"

/* Wait statuses as the kernel encodes them, without <sys/wait.h> macros. */
#define EXITED(c)	((c) << 8)
#define KILLED(s)	(s)
#define KILLED_CORE(s)	((s) | 0x80)
#define STOPPED(s)	(((s) << 8) | 0x7f)

#define MS		(1000LL * 1000)
#define SEC		(1000LL * MS)

static char text[256];

static void
facts_init(struct exit_facts *f, int wstatus, unsigned why, uint64_t calls,
    int64_t lived_ns)
{
	memset(f, 0, sizeof(*f));
	f->wstatus = wstatus;
	f->why = why;
	f->calls = calls;
	f->lived_ns = lived_ns;
}

/* Classifies f into text (filled with junk first) and checks both results. */
static void
expect(const struct exit_facts *f, enum exit_class cls, const char *want)
{
	memset(text, 'x', sizeof(text));
	text[sizeof(text) - 1] = '\0';
	ck_assert_int_eq(policy_classify(f, text, sizeof(text)), cls);
	ck_assert_str_eq(text, want);
}

/* --- policy_classify: orderly reasons ----------------------------------- */

START_TEST(classify_execute_times)
{
	struct exit_facts f;

	facts_init(&f, EXITED(0), WHY_CALLS, 3, 1500 * MS);
	expect(&f, EXIT_ORDERLY, "reached executeTimes after 3 calls, 1.50 s");
}
END_TEST

START_TEST(classify_limit_seconds)
{
	struct exit_facts f;

	facts_init(&f, EXITED(0), WHY_LIFETIME, 7, 60 * SEC);
	expect(&f, EXIT_ORDERLY, "reached limitSeconds after 7 calls, 60.00 s");
}
END_TEST

START_TEST(classify_pm_done)
{
	struct exit_facts f;

	facts_init(&f, EXITED(0), WHY_DONE, 1, 250 * MS);
	expect(&f, EXIT_ORDERLY,
	    "work() returned PM_DONE after 1 call, 0.25 s");
}
END_TEST

START_TEST(classify_stopped)
{
	struct exit_facts f;

	facts_init(&f, EXITED(0), WHY_STOP, 12, 2 * SEC);
	expect(&f, EXIT_ORDERLY, "stopped after 12 calls, 2.00 s");
}
END_TEST

START_TEST(classify_rss_in_mib)
{
	struct exit_facts f;

	/* 300 MiB and 500 KiB: the text rounds down to whole MiB. */
	facts_init(&f, EXITED(0), WHY_RSS, 4, 3 * SEC);
	f.rss_kb = 300 * 1024 + 500;
	expect(&f, EXIT_ORDERLY,
	    "over maxRssMb (RSS 300.5 MiB) after 4 calls, 3.00 s");
}
END_TEST

START_TEST(classify_orderly_why_with_nonzero_exit)
{
	struct exit_facts f;

	/* The worker said why, but its exit code says something went wrong. */
	facts_init(&f, EXITED(1), WHY_CALLS, 3, SEC);
	expect(&f, EXIT_FAILED, "reached executeTimes (exit status 1)");
}
END_TEST

/* --- policy_classify: failures the worker reports ----------------------- */

START_TEST(classify_load_failed)
{
	struct exit_facts f;

	facts_init(&f, EXITED(70), WHY_LOAD, 0, 10 * MS);
	expect(&f, EXIT_FAILED, "plugin failed to load (exit status 70)");
}
END_TEST

START_TEST(classify_init_failed)
{
	struct exit_facts f;

	facts_init(&f, EXITED(70), WHY_INIT, 0, 10 * MS);
	expect(&f, EXIT_FAILED, "work_init() failed (exit status 70)");
}
END_TEST

START_TEST(classify_setup_failed)
{
	struct exit_facts f;

	facts_init(&f, EXITED(70), WHY_SETUP, 0, 10 * MS);
	expect(&f, EXIT_FAILED, "worker setup failed (exit status 70)");
}
END_TEST

START_TEST(classify_startup_failure_never_orderly)
{
	struct exit_facts f;

	/* Even with exit code 0 a load/init/setup failure must back off. */
	facts_init(&f, EXITED(0), WHY_LOAD, 0, 0);
	expect(&f, EXIT_FAILED, "plugin failed to load (exit status 0)");
	facts_init(&f, EXITED(0), WHY_INIT, 0, 0);
	expect(&f, EXIT_FAILED, "work_init() failed (exit status 0)");
	facts_init(&f, EXITED(0), WHY_SETUP, 0, 0);
	expect(&f, EXIT_FAILED, "worker setup failed (exit status 0)");
}
END_TEST

/* --- policy_classify: signals and timeouts ------------------------------ */

START_TEST(classify_segv_core_dumped)
{
	struct exit_facts f;

	facts_init(&f, KILLED_CORE(11), WHY_NONE, 5, 500 * MS);
	expect(&f, EXIT_FAILED,
	    "killed by SIGSEGV (core dumped) after 5 calls, 0.50 s");
}
END_TEST

START_TEST(classify_killed_without_core)
{
	struct exit_facts f;

	facts_init(&f, KILLED(9), WHY_NONE, 0, 10 * MS);
	expect(&f, EXIT_FAILED, "killed by SIGKILL after 0 calls, 0.01 s");
}
END_TEST

START_TEST(classify_signal_beats_why)
{
	struct exit_facts f;

	/* It stated its reason, then crashed on the way out (work_fini). */
	facts_init(&f, KILLED_CORE(6), WHY_CALLS, 3, SEC);
	expect(&f, EXIT_FAILED,
	    "killed by SIGABRT (core dumped) after 3 calls, 1.00 s");
}
END_TEST

START_TEST(classify_unknown_signal)
{
	struct exit_facts f;

	facts_init(&f, KILLED(77), WHY_NONE, 2, 2 * SEC);
	expect(&f, EXIT_FAILED, "killed by signal 77 after 2 calls, 2.00 s");
}
END_TEST

START_TEST(classify_stop_timeout_kill_is_orderly)
{
	struct exit_facts f;

	facts_init(&f, KILLED(9), WHY_NONE, 2, 4 * SEC);
	f.stop_killed = 1;
	expect(&f, EXIT_ORDERLY,
	    "killed by SIGKILL at stopTimeout after 2 calls, 4.00 s");
}
END_TEST

START_TEST(classify_work_timeout)
{
	struct exit_facts f;

	/* Killed in its fifth call, after four completed ones. */
	facts_init(&f, KILLED(9), WHY_NONE, 4, 20 * SEC);
	f.timed_out = 1;
	f.timeout_call = 5;
	f.call_ns = 2500 * MS;
	expect(&f, EXIT_FAILED, "workTimeout: call 5 ran 2.5 s, killed");
	/* The call returned on SIGTERM: still named as the call timed out. */
	f.calls = 5;
	f.wstatus = EXITED(0);
	expect(&f, EXIT_FAILED, "workTimeout: call 5 ran 2.5 s, killed");
}
END_TEST

START_TEST(classify_work_timeout_beats_stop_kill)
{
	struct exit_facts f;

	facts_init(&f, KILLED(9), WHY_NONE, 0, 3 * SEC);
	f.timed_out = 1;
	f.timeout_call = 1;
	f.stop_killed = 1;
	f.call_ns = 3 * SEC;
	expect(&f, EXIT_FAILED, "workTimeout: call 1 ran 3.0 s, killed");
}
END_TEST

START_TEST(classify_stopped_status)
{
	struct exit_facts f;

	/* Neither exited nor signalled: reported raw, never orderly. */
	facts_init(&f, STOPPED(19), WHY_NONE, 0, 0);
	expect(&f, EXIT_FAILED, "ended with wait status 0x137f");
}
END_TEST

/* --- policy_classify: exit() called by the plugin ----------------------- */

START_TEST(classify_plugin_exit_zero)
{
	struct exit_facts f;

	facts_init(&f, EXITED(0), WHY_NONE, 9, SEC);
	expect(&f, EXIT_ORDERLY, "exited with status 0 after 9 calls, 1.00 s");
}
END_TEST

START_TEST(classify_plugin_exit_three)
{
	struct exit_facts f;

	facts_init(&f, EXITED(3), WHY_NONE, 0, 0);
	expect(&f, EXIT_FAILED, "exited with status 3 after 0 calls, 0.00 s");
}
END_TEST

START_TEST(classify_unknown_why_is_plain_exit)
{
	struct exit_facts f;

	facts_init(&f, EXITED(0), 99, 1, SEC);
	expect(&f, EXIT_ORDERLY, "exited with status 0 after 1 call, 1.00 s");
	facts_init(&f, EXITED(2), 99, 1, SEC);
	expect(&f, EXIT_FAILED, "exited with status 2 after 1 call, 1.00 s");
}
END_TEST

START_TEST(classify_text_truncated)
{
	struct exit_facts f;
	char small[12];

	memset(small, 'x', sizeof(small));
	facts_init(&f, EXITED(0), WHY_CALLS, 3, SEC);
	/* Only 8 bytes are offered; the last 4 must stay untouched. */
	ck_assert_int_eq(policy_classify(&f, small, 8), EXIT_ORDERLY);
	ck_assert_str_eq(small, "reached");
	ck_assert_mem_eq(small + 8, "xxxx", 4);
}
END_TEST

/* --- policy_signal_name ------------------------------------------------- */

START_TEST(signal_names)
{
	char buf[32];

	ck_assert_ptr_eq(policy_signal_name(11, buf, sizeof(buf)), buf);
	ck_assert_str_eq(buf, "SIGSEGV");
	ck_assert_str_eq(policy_signal_name(15, buf, sizeof(buf)), "SIGTERM");
	ck_assert_str_eq(policy_signal_name(9, buf, sizeof(buf)), "SIGKILL");
	ck_assert_str_eq(policy_signal_name(1, buf, sizeof(buf)), "SIGHUP");
	ck_assert_str_eq(policy_signal_name(31, buf, sizeof(buf)), "SIGSYS");
	ck_assert_str_eq(policy_signal_name(77, buf, sizeof(buf)),
	    "signal 77");
	ck_assert_str_eq(policy_signal_name(0, buf, sizeof(buf)), "signal 0");
	ck_assert_str_eq(policy_signal_name(-3, buf, sizeof(buf)),
	    "signal -3");
}
END_TEST

START_TEST(signal_name_truncated)
{
	char buf[8];

	memset(buf, 'x', sizeof(buf));
	ck_assert_str_eq(policy_signal_name(11, buf, 4), "SIG");
	ck_assert_mem_eq(buf + 4, "xxxx", 4);
	ck_assert_str_eq(policy_signal_name(12345, buf, sizeof(buf)),
	    "signal ");
}
END_TEST

/* --- policy_backoff ----------------------------------------------------- */

START_TEST(backoff_constants)
{
	ck_assert_int_eq(BACKOFF_BASE_NS, 100 * MS);
	ck_assert_int_eq(BACKOFF_CAP_NS, 30 * SEC);
	ck_assert_int_eq(HEALTHY_RUN_NS, 10 * SEC);
}
END_TEST

START_TEST(backoff_first_two_immediate)
{
	ck_assert_int_eq(policy_backoff(0), 0);
	ck_assert_int_eq(policy_backoff(1), 0);
}
END_TEST

START_TEST(backoff_doubles)
{
	ck_assert_int_eq(policy_backoff(2), 100 * MS);
	ck_assert_int_eq(policy_backoff(3), 200 * MS);
	ck_assert_int_eq(policy_backoff(4), 400 * MS);
	for (unsigned n = 2; n <= 10; n++)
		ck_assert_int_eq(policy_backoff(n), (100 * MS) << (n - 2));
	ck_assert_int_eq(policy_backoff(10), 25600 * MS);
}
END_TEST

START_TEST(backoff_capped)
{
	/* 100 ms << 9 would be 51.2 s: the cap applies from n = 11 on. */
	ck_assert_int_eq(policy_backoff(11), 30 * SEC);
	ck_assert_int_eq(policy_backoff(20), 30 * SEC);
	ck_assert_int_eq(policy_backoff(64), 30 * SEC);
	ck_assert_int_eq(policy_backoff(1000), 30 * SEC);
	ck_assert_int_eq(policy_backoff(UINT_MAX), 30 * SEC);
}
END_TEST

START_TEST(backoff_monotonic)
{
	int64_t prev = 0;

	for (unsigned n = 0; n < 5000; n++) {
		int64_t d = policy_backoff(n);

		ck_assert_int_ge(d, prev);
		ck_assert_int_le(d, 30 * SEC);
		prev = d;
	}
}
END_TEST

/* --- policy_after_exit -------------------------------------------------- */

START_TEST(after_exit_orderly_not_counted)
{
	unsigned failures = 0;

	ck_assert_int_eq(policy_after_exit(&failures, EXIT_ORDERLY, 0), 0);
	ck_assert_uint_eq(failures, 0);
	/* An unhealthy orderly exit neither counts nor ends the streak. */
	failures = 4;
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_ORDERLY, 0), 0);
	ck_assert_uint_eq(failures, 4);
}
END_TEST

START_TEST(after_exit_orderly_healthy_resets)
{
	unsigned failures = 4;

	ck_assert_int_eq(policy_after_exit(&failures, EXIT_ORDERLY, 1), 0);
	ck_assert_uint_eq(failures, 0);
}
END_TEST

START_TEST(after_exit_failures_count)
{
	unsigned failures = 0;

	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0), 0);
	ck_assert_uint_eq(failures, 1);
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0),
	    100 * MS);
	ck_assert_uint_eq(failures, 2);
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0),
	    200 * MS);
	ck_assert_uint_eq(failures, 3);
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0),
	    400 * MS);
	ck_assert_uint_eq(failures, 4);
}
END_TEST

START_TEST(after_exit_healthy_failure_restarts_streak)
{
	unsigned failures = 7;

	/* Reset first, then count: the first failure after a good run. */
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 1), 0);
	ck_assert_uint_eq(failures, 1);
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0),
	    100 * MS);
	ck_assert_uint_eq(failures, 2);
}
END_TEST

START_TEST(after_exit_streak_saturates)
{
	unsigned failures = 0, top;

	for (int i = 0; i < 5000; i++)
		policy_after_exit(&failures, EXIT_FAILED, 0);
	top = failures;
	/* Stopped counting somewhere past the cap, and stays there. */
	ck_assert_uint_ge(top, 11);
	ck_assert_uint_lt(top, 5000);
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0),
	    30 * SEC);
	ck_assert_uint_eq(failures, top);

	/* A streak already at the top of the type does not wrap to 0. */
	failures = UINT_MAX;
	ck_assert_int_eq(policy_after_exit(&failures, EXIT_FAILED, 0),
	    30 * SEC);
	ck_assert_uint_eq(failures, UINT_MAX);
}
END_TEST

/* --- policy_healthy ----------------------------------------------------- */

/* Whether a run of calls calls, lived ns, ending in cls was healthy. */
static int
healthy(enum exit_class cls, uint64_t calls, int64_t lived, int timed_out,
    unsigned why)
{
	struct exit_facts f;

	memset(&f, 0, sizeof(f));
	f.calls = calls;
	f.lived_ns = lived;
	f.timed_out = timed_out;
	f.why = why;
	return policy_healthy(&f, cls);
}

START_TEST(healthy_by_calls)
{
	ck_assert_int_eq(healthy(EXIT_FAILED, 0, 0, 0, WHY_NONE), 0);
	ck_assert_int_eq(healthy(EXIT_FAILED, 1, 0, 0, WHY_NONE), 1);
	ck_assert_int_eq(healthy(EXIT_FAILED, UINT64_MAX, 0, 0, WHY_NONE), 1);
	ck_assert_int_eq(healthy(EXIT_FAILED, 1, -1, 0, WHY_NONE), 1);
	/* An orderly end is a healthy run, however short. */
	ck_assert_int_eq(healthy(EXIT_ORDERLY, 0, 0, 0, WHY_CALLS), 1);
}
END_TEST

START_TEST(not_healthy_when_declared_failed_or_hung)
{
	/* Calls before a workTimeout or a PM_FAIL do not count. */
	ck_assert_int_eq(healthy(EXIT_FAILED, 5, SEC, 1, WHY_NONE), 0);
	ck_assert_int_eq(healthy(EXIT_FAILED, 5, SEC, 0, WHY_FAIL), 0);
	/* A long run does. */
	ck_assert_int_eq(healthy(EXIT_FAILED, 5, 10 * SEC, 1, WHY_NONE), 1);
	ck_assert_int_eq(healthy(EXIT_FAILED, 5, 10 * SEC, 0, WHY_FAIL), 1);
}
END_TEST

START_TEST(healthy_by_lifetime)
{
	ck_assert_int_eq(healthy(EXIT_FAILED, 0, 10 * SEC - 1, 0, 0), 0);
	ck_assert_int_eq(healthy(EXIT_FAILED, 0, 10 * SEC, 0, 0), 1);
	ck_assert_int_eq(healthy(EXIT_FAILED, 0, INT64_MAX, 0, 0), 1);
	ck_assert_int_eq(healthy(EXIT_FAILED, 0, -1, 0, 0), 0);
}
END_TEST

static Suite *
policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");

	tcase_add_test(tc, classify_execute_times);
	tcase_add_test(tc, classify_limit_seconds);
	tcase_add_test(tc, classify_pm_done);
	tcase_add_test(tc, classify_stopped);
	tcase_add_test(tc, classify_rss_in_mib);
	tcase_add_test(tc, classify_orderly_why_with_nonzero_exit);
	tcase_add_test(tc, classify_load_failed);
	tcase_add_test(tc, classify_init_failed);
	tcase_add_test(tc, classify_setup_failed);
	tcase_add_test(tc, classify_startup_failure_never_orderly);
	tcase_add_test(tc, classify_segv_core_dumped);
	tcase_add_test(tc, classify_killed_without_core);
	tcase_add_test(tc, classify_signal_beats_why);
	tcase_add_test(tc, classify_unknown_signal);
	tcase_add_test(tc, classify_stop_timeout_kill_is_orderly);
	tcase_add_test(tc, classify_work_timeout);
	tcase_add_test(tc, classify_work_timeout_beats_stop_kill);
	tcase_add_test(tc, classify_stopped_status);
	tcase_add_test(tc, classify_plugin_exit_zero);
	tcase_add_test(tc, classify_plugin_exit_three);
	tcase_add_test(tc, classify_unknown_why_is_plain_exit);
	tcase_add_test(tc, classify_text_truncated);
	tcase_add_test(tc, signal_names);
	tcase_add_test(tc, signal_name_truncated);
	tcase_add_test(tc, backoff_constants);
	tcase_add_test(tc, backoff_first_two_immediate);
	tcase_add_test(tc, backoff_doubles);
	tcase_add_test(tc, backoff_capped);
	tcase_add_test(tc, backoff_monotonic);
	tcase_add_test(tc, after_exit_orderly_not_counted);
	tcase_add_test(tc, after_exit_orderly_healthy_resets);
	tcase_add_test(tc, after_exit_failures_count);
	tcase_add_test(tc, after_exit_healthy_failure_restarts_streak);
	tcase_add_test(tc, after_exit_streak_saturates);
	tcase_add_test(tc, healthy_by_calls);
	tcase_add_test(tc, not_healthy_when_declared_failed_or_hung);
	tcase_add_test(tc, healthy_by_lifetime);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(policy_suite());
}
