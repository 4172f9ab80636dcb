/*
 * test_lifecycle.c - unit tests of the worker and slot state machines:
 * every path a worker takes (started, replaced, expired, stopped, timed
 * out, killed, reaped), that events which do not apply leave a state
 * alone, what each state's deadline means, and the slot's moves through
 * growth, shrinking, exits and stop.
 */
#include <check.h>

#include "unit.h"

#include "lifecycle.h"

/* Follows events from s; the state reached. */
static enum proc_state
walk(enum proc_state s, const enum proc_event *ev, int n)
{
	for (int i = 0; i < n; i++)
		s = proc_next(s, ev[i]);
	return s;
}

START_TEST(worker_plain_life)
{
	enum proc_state s = proc_next(PROC_FREE, PE_SPAWN);

	ck_assert_int_eq(s, PROC_RUNNING);
	ck_assert(proc_serving(s));
	ck_assert_int_eq(proc_deadline_kind(s), DL_LIFETIME);
	s = proc_next(s, PE_EXPIRE);
	ck_assert_int_eq(s, PROC_EXPIRING);
	ck_assert(!proc_serving(s));
	ck_assert_int_eq(proc_deadline_kind(s), DL_NONE);
	ck_assert_int_eq(proc_next(s, PE_EXIT), PROC_FREE);
}
END_TEST

START_TEST(worker_replacement_life)
{
	enum proc_state s = proc_next(PROC_FREE, PE_SPAWN_HELD);

	ck_assert_int_eq(s, PROC_PREPARING);
	ck_assert_int_eq(proc_deadline_kind(s), DL_INIT);
	/* Not ready yet: it cannot be let go. */
	ck_assert_int_eq(proc_next(s, PE_RELEASE), PROC_PREPARING);
	s = proc_next(s, PE_READY);
	ck_assert_int_eq(s, PROC_HELD);
	ck_assert_int_eq(proc_deadline_kind(s), DL_NONE);
	s = proc_next(s, PE_RELEASE);
	ck_assert_int_eq(s, PROC_RUNNING);
}
END_TEST

START_TEST(worker_stop_paths)
{
	static const enum proc_state from[] = { PROC_PREPARING, PROC_HELD,
	    PROC_RUNNING, PROC_EXPIRING };

	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		enum proc_state s = proc_next(from[i], PE_STOP);

		ck_assert_int_eq(s, PROC_STOPPING);
		ck_assert_int_eq(proc_deadline_kind(s), DL_STOP);
		ck_assert_int_eq(proc_next(s, PE_DEADLINE), PROC_KILLED);
	}
	/* A second stop changes nothing; a killed worker only exits. */
	ck_assert_int_eq(proc_next(PROC_STOPPING, PE_STOP), PROC_STOPPING);
	for (int e = PE_SPAWN; e < PE_EXIT; e++)
		ck_assert_int_eq(proc_next(PROC_KILLED, (enum proc_event)e),
		    PROC_KILLED);
	ck_assert_int_eq(proc_next(PROC_KILLED, PE_EXIT), PROC_FREE);
}
END_TEST

START_TEST(worker_timeout_paths)
{
	static const enum proc_event ev[] = { PE_SPAWN, PE_TIMEOUT,
	    PE_DEADLINE, PE_EXIT };

	ck_assert_int_eq(walk(PROC_FREE, ev, 1), PROC_RUNNING);
	ck_assert_int_eq(walk(PROC_FREE, ev, 2), PROC_TERMINATING);
	ck_assert_int_eq(proc_deadline_kind(PROC_TERMINATING), DL_GRACE);
	ck_assert_int_eq(walk(PROC_FREE, ev, 3), PROC_KILLED);
	ck_assert_int_eq(walk(PROC_FREE, ev, 4), PROC_FREE);
	/* A stopping worker whose call hangs is timed out too. */
	ck_assert_int_eq(proc_next(PROC_STOPPING, PE_TIMEOUT),
	    PROC_TERMINATING);
	ck_assert_int_eq(proc_next(PROC_EXPIRING, PE_TIMEOUT),
	    PROC_TERMINATING);
	/* Replacements are not calling: no timeout applies. */
	ck_assert_int_eq(proc_next(PROC_PREPARING, PE_TIMEOUT),
	    PROC_PREPARING);
	ck_assert_int_eq(proc_next(PROC_HELD, PE_TIMEOUT), PROC_HELD);
	/* Terminating is not undone by a stop. */
	ck_assert_int_eq(proc_next(PROC_TERMINATING, PE_STOP),
	    PROC_TERMINATING);
}
END_TEST

START_TEST(worker_events_that_do_not_apply)
{
	/* A free cell only starts; nothing else moves it. */
	for (int e = PE_READY; e <= PE_EXIT; e++)
		ck_assert_int_eq(proc_next(PROC_FREE, (enum proc_event)e),
		    PROC_FREE);
	/* Spawning into a used cell is not a thing. */
	ck_assert_int_eq(proc_next(PROC_RUNNING, PE_SPAWN), PROC_RUNNING);
	ck_assert_int_eq(proc_next(PROC_HELD, PE_SPAWN_HELD), PROC_HELD);
	/* A running worker has no deadline to kill it by. */
	ck_assert_int_eq(proc_next(PROC_RUNNING, PE_DEADLINE), PROC_RUNNING);
	ck_assert_int_eq(proc_next(PROC_HELD, PE_DEADLINE), PROC_HELD);
	/* Out of range: unchanged, never a crash. */
	ck_assert_int_eq(proc_next((enum proc_state)99, PE_EXIT), 99);
	ck_assert_int_eq(proc_next(PROC_RUNNING, (enum proc_event)99),
	    PROC_RUNNING);
	ck_assert_str_eq(proc_state_name(PROC_TERMINATING), "terminating");
	ck_assert_str_eq(proc_state_name((enum proc_state)99), "?");
}
END_TEST

START_TEST(every_live_worker_can_exit)
{
	for (int s = PROC_PREPARING; s < PROC_NSTATES; s++)
		ck_assert_int_eq(proc_next((enum proc_state)s, PE_EXIT),
		    PROC_FREE);
}
END_TEST

START_TEST(slot_life)
{
	enum slot_state s = SLOT_EMPTY;

	s = slot_next(s, SE_GROW);		/* wanted: a worker is due */
	ck_assert_int_eq(s, SLOT_WAITING);
	s = slot_next(s, SE_SPAWNED);
	ck_assert_int_eq(s, SLOT_ACTIVE);
	s = slot_next(s, SE_EXITED);		/* respawn planned */
	ck_assert_int_eq(s, SLOT_WAITING);
	s = slot_next(s, SE_SPAWNED);
	s = slot_next(s, SE_DROPPED);		/* ended, not wanted */
	ck_assert_int_eq(s, SLOT_EMPTY);
}
END_TEST

START_TEST(slot_shrink_and_grow)
{
	/* Scaled down while working: retiring until its worker is gone. */
	enum slot_state s = slot_next(SLOT_ACTIVE, SE_SHRINK);

	ck_assert_int_eq(s, SLOT_RETIRING);
	ck_assert_int_eq(slot_next(s, SE_EXITED), SLOT_EMPTY);
	ck_assert_int_eq(slot_next(s, SE_DROPPED), SLOT_EMPTY);
	/* Scaled up again before it was gone: active, and respawned later. */
	ck_assert_int_eq(slot_next(s, SE_GROW), SLOT_ACTIVE);
	/* A waiting slot scaled away is simply empty. */
	ck_assert_int_eq(slot_next(SLOT_WAITING, SE_SHRINK), SLOT_EMPTY);
	ck_assert_int_eq(slot_next(SLOT_EMPTY, SE_SHRINK), SLOT_EMPTY);
}
END_TEST

START_TEST(slot_stop)
{
	ck_assert_int_eq(slot_next(SLOT_WAITING, SE_STOP), SLOT_EMPTY);
	/* An active slot empties when its worker exits, not before. */
	ck_assert_int_eq(slot_next(SLOT_ACTIVE, SE_STOP), SLOT_ACTIVE);
	ck_assert_int_eq(slot_next(SLOT_EMPTY, SE_STOP), SLOT_EMPTY);
	/* Events that do not apply leave the slot alone. */
	ck_assert_int_eq(slot_next(SLOT_EMPTY, SE_EXITED), SLOT_EMPTY);
	ck_assert_int_eq(slot_next(SLOT_ACTIVE, SE_SPAWNED), SLOT_ACTIVE);
	ck_assert_int_eq(slot_next(SLOT_ACTIVE, SE_GROW), SLOT_ACTIVE);
	ck_assert_int_eq(slot_next((enum slot_state)9, SE_GROW), 9);
	ck_assert_str_eq(slot_state_name(SLOT_RETIRING), "retiring");
}
END_TEST

static Suite *
lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("states");

	tcase_add_test(tc, worker_plain_life);
	tcase_add_test(tc, worker_replacement_life);
	tcase_add_test(tc, worker_stop_paths);
	tcase_add_test(tc, worker_timeout_paths);
	tcase_add_test(tc, worker_events_that_do_not_apply);
	tcase_add_test(tc, every_live_worker_can_exit);
	tcase_add_test(tc, slot_life);
	tcase_add_test(tc, slot_shrink_and_grow);
	tcase_add_test(tc, slot_stop);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(lifecycle_suite());
}
