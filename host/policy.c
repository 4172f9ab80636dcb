/*
 * policy.c - respawn policy.  A worker that ends normally is replaced at
 * once; one that fails is replaced after a delay that doubles with each
 * failure in a row, so a broken plugin costs little CPU, and the streak
 * resets after a healthy run, so a fixed plugin recovers by itself.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "policy.h"
#include "scoreboard.h"

const char *
policy_signal_name(int sig, char *buf, size_t size)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev != NULL)
		snprintf(buf, size, "SIG%s", abbrev);
	else
		snprintf(buf, size, "signal %d", sig);
	return buf;
}

/* The orderly reasons a worker states itself. */
static const char *
why_text(unsigned why)
{
	switch (why) {
	case WHY_CALLS:		return "reached executeTimes";
	case WHY_LIFETIME:	return "reached limitSeconds";
	case WHY_DONE:		return "work() returned PM_DONE";
	case WHY_RSS:		return "over maxRssMb";
	case WHY_STOP:		return "stopped";
	case WHY_LOAD:		return "plugin failed to load";
	case WHY_INIT:		return "work_init() failed";
	case WHY_SETUP:		return "worker setup failed";
	case WHY_FAIL:		return "work() returned PM_FAIL";
	default:		return NULL;
	}
}

enum exit_class
policy_classify(const struct exit_facts *f, char *text, size_t size)
{
	char sig[32];
	const char *why = why_text(f->why);
	double secs = (double)f->lived_ns / NS_PER_SEC;

	/* "1 call", "2 calls". */
	const char *s = f->calls == 1 ? "" : "s";

	if (f->timed_out) {
		/* The call it was timed out in, even if it returned since. */
		snprintf(text, size, "workTimeout: call %llu ran %.1f s, "
		    "killed", (unsigned long long)f->timeout_call,
		    (double)f->call_ns / NS_PER_SEC);
		return EXIT_FAILED;
	}
	if (WIFSIGNALED(f->wstatus)) {
		policy_signal_name(WTERMSIG(f->wstatus), sig, sizeof(sig));
		snprintf(text, size, "killed by %s%s%s after %llu call%s, "
		    "%.2f s", sig, WCOREDUMP(f->wstatus) ? " (core dumped)" :
		    "", f->stop_killed ? " at stopTimeout" : "",
		    (unsigned long long)f->calls, s, secs);
		return f->stop_killed ? EXIT_ORDERLY : EXIT_FAILED;
	}
	if (!WIFEXITED(f->wstatus)) {
		snprintf(text, size, "ended with wait status 0x%x", f->wstatus);
		return EXIT_FAILED;
	}
	if (WEXITSTATUS(f->wstatus) == 0 && why != NULL &&
	    f->why != WHY_LOAD && f->why != WHY_INIT && f->why != WHY_SETUP &&
	    f->why != WHY_FAIL) {
		if (f->why == WHY_RSS)
			snprintf(text, size, "%s (RSS %.1f MiB) after %llu "
			    "call%s, %.2f s", why, (double)f->rss_kb / 1024,
			    (unsigned long long)f->calls, s, secs);
		else
			snprintf(text, size, "%s after %llu call%s, %.2f s",
			    why, (unsigned long long)f->calls, s, secs);
		return EXIT_ORDERLY;
	}
	if (why != NULL) {
		snprintf(text, size, "%s (exit status %d)", why,
		    WEXITSTATUS(f->wstatus));
		return EXIT_FAILED;
	}
	/* The plugin called exit() itself. */
	snprintf(text, size, "exited with status %d after %llu call%s, %.2f s",
	    WEXITSTATUS(f->wstatus), (unsigned long long)f->calls, s, secs);
	return WEXITSTATUS(f->wstatus) == 0 ? EXIT_ORDERLY : EXIT_FAILED;
}

enum exit_reason
policy_reason(const struct exit_facts *f)
{
	if (f->timed_out)
		return EXR_TIMEOUT;
	if (WIFSIGNALED(f->wstatus))
		return f->stop_killed ? EXR_STOP : EXR_SIGNAL;
	switch (WIFEXITED(f->wstatus) ? f->why : WHY_NONE) {
	case WHY_CALLS:		return EXR_CALLS;
	case WHY_LIFETIME:	return EXR_LIFETIME;
	case WHY_DONE:		return EXR_DONE;
	case WHY_RSS:		return EXR_RSS;
	case WHY_STOP:		return EXR_STOP;
	case WHY_FAIL:		return EXR_FAIL;
	case WHY_INIT:		return EXR_INIT;
	case WHY_LOAD:
	case WHY_SETUP:		return EXR_LOAD;
	default:		return WIFEXITED(f->wstatus) ? EXR_STATUS :
				    EXR_SIGNAL;
	}
}

const char *
policy_reason_name(enum exit_reason r)
{
#define EXIT_REASON_NAME(id, name) [id] = name,
	static const char *const names[EXR_COUNT] = {
		EXIT_REASONS(EXIT_REASON_NAME)
	};
#undef EXIT_REASON_NAME

	return (unsigned)r < EXR_COUNT ? names[r] : "?";
}

int
policy_healthy(const struct exit_facts *f, enum exit_class cls)
{
	if (cls == EXIT_ORDERLY || f->lived_ns >= HEALTHY_RUN_NS)
		return 1;
	/* Declared failed (PM_FAIL) or hung (workTimeout): no progress. */
	if (f->timed_out || f->why == WHY_FAIL)
		return 0;
	return f->calls > 0;
}

int64_t
policy_backoff(unsigned n)
{
	int64_t d = BACKOFF_BASE_NS;

	/* The first failure after a healthy run is respawned at once. */
	if (n <= 1)
		return 0;
	for (unsigned i = 2; i < n && d < BACKOFF_CAP_NS; i++)
		d *= 2;
	return d < BACKOFF_CAP_NS ? d : BACKOFF_CAP_NS;
}

int64_t
policy_after_exit(unsigned *failures, enum exit_class cls, int healthy)
{
	if (healthy)
		*failures = 0;
	if (cls == EXIT_ORDERLY)
		return 0;
	if (*failures < 1000)
		(*failures)++;
	return policy_backoff(*failures);
}
