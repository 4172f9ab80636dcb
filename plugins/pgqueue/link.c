/*
 * link.c - a worker's one connection to PostgreSQL: connecting without
 * blocking (PQconnectPoll under a deadline, waking on a stop), reconnecting
 * with capped, jittered backoff, and waiting for a notification.  Every
 * wait is a poll() on the connection's socket and the worker's stop fd,
 * so a worker never spins and a stop is never kept waiting.
 *
 * An outage is logged when it starts, as a reminder every minute while it
 * lasts, and when it ends: never once per attempt.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgqueue.h"

#define BACKOFF_MIN_NS		(100 * NS_PER_MS)
#define BACKOFF_MAX_NS		(5 * NS_PER_SEC)
#define ATTEMPT_MAX_NS		(10 * NS_PER_SEC)
#define REMIND_NS		(60 * NS_PER_SEC)

/* A link that has not tried yet: the first link_connect() tries. */
void
link_init(struct link *lk, const char *conninfo, const char *appname)
{
	memset(lk, 0, sizeof(*lk));
	lk->conninfo = conninfo;
	snprintf(lk->appname, sizeof(lk->appname), "%s", appname);
	lk->state = LINK_DOWN;
	snprintf(lk->target, sizeof(lk->target), "the database");
	lk->rng = ((uint64_t)getpid() << 32 ^ (uint64_t)mono_ns()) | 1;
}

/* Milliseconds from now to deadline for poll(), rounded up, >= 0. */
static int
poll_ms(int64_t deadline)
{
	int64_t left = deadline - mono_ns();

	if (left <= 0)
		return 0;
	if (left > 3600 * NS_PER_SEC)
		left = 3600 * NS_PER_SEC;
	return (int)((left + NS_PER_MS - 1) / NS_PER_MS);
}

/*
 * Waits until deadline for fd to be ready for events, or for a stop.
 * 1 if fd is ready (or in error: the caller's next call says which), 0 if
 * not (deadline or stop).  A signal restarts the wait.
 */
static int
wait_fd(pm_worker *w, int fd, short events, int64_t deadline)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = events },
		{ .fd = pm_worker_stop_fd(w), .events = POLLIN },
	};

	while (!pm_worker_stopping(w)) {
		int r = poll(pfd, 2, poll_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 1;	/* let the caller's call report it */
		if (pfd[0].revents != 0)
			return 1;
		if (pfd[1].revents & POLLNVAL) {
			pfd[1].fd = -1;	/* no stop fd: the flag will do */
			continue;
		}
		if (r == 0 || pfd[1].revents != 0)
			return 0;
	}
	return 0;
}

/* "app on /run/postgresql:5432", from what libpq made of the conninfo. */
static void
describe_target(struct link *lk)
{
	const char *db = PQdb(lk->conn), *host = PQhost(lk->conn);
	const char *port = PQport(lk->conn);

	snprintf(lk->target, sizeof(lk->target), "database %s on %s%s%s",
	    db != NULL && db[0] != '\0' ? db : "?",
	    host != NULL && host[0] != '\0' ? host : "?",
	    port != NULL && port[0] != '\0' ? ":" : "",
	    port != NULL ? port : "");
}

/* text, on one line: libpq's messages carry newlines, tabs, runs of
 * spaces. */
static void
flatten(const char *text, char *buf, size_t size)
{
	size_t n = 0;
	int space = 0;

	for (; *text != '\0' && n + 1 < size; text++) {
		if (*text == ' ' || *text == '\n' || *text == '\t' ||
		    *text == '\r') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < size)
			buf[n++] = ' ';
		space = 0;
		buf[n++] = *text;
	}
	buf[n] = '\0';
}

/*
 * A server's error as "ERROR: message; DETAIL: ...; HINT: ... (SQLSTATE
 * xxxxx)" (its CONTEXT left out: a job's error should say what, not
 * where); else libpq's own message.
 */
void
error_text(const PGconn *conn, const PGresult *res, char *buf, size_t size)
{
	const char *msg = NULL, *sev, *detail, *hint, *state;
	char text[ERR_MAX * 2];

	if (res != NULL &&
	    (msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) != NULL) {
		sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(text, sizeof(text), "%s%s%s%s%s%s%s%s%s%s",
		    sev != NULL ? sev : "", sev != NULL ? ": " : "", msg,
		    detail != NULL ? "; DETAIL: " : "",
		    detail != NULL ? detail : "",
		    hint != NULL ? "; HINT: " : "", hint != NULL ? hint : "",
		    state != NULL ? " (SQLSTATE " : "",
		    state != NULL ? state : "", state != NULL ? ")" : "");
		flatten(text, buf, size);
		return;
	}
	msg = res != NULL ? PQresultErrorMessage(res) : "";
	if (msg[0] == '\0' && conn != NULL)
		msg = PQerrorMessage(conn);
	flatten(msg[0] != '\0' ? msg : "unknown error", buf, size);
}

/* Did a statement fail because the connection, or the server, is gone
 * (rather than because of what it asked)? */
int
link_lost(const struct link *lk, const PGresult *res)
{
	const char *state;

	if (lk->conn == NULL || PQstatus(lk->conn) != CONNECTION_OK)
		return 1;
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	/* connection_exception, or an administrator / crash shutdown. */
	return state != NULL && (strncmp(state, "08", 2) == 0 ||
	    strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
	    strcmp(state, "57P03") == 0);
}

/* The next delay: the backoff with +-20% jitter, so workers spread out. */
static int64_t
jittered(struct link *lk)
{
	uint64_t x = lk->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	lk->rng = x;
	return lk->backoff_ns * 8 / 10 +
	    (int64_t)((x * 0x2545f4914f6cdd1dULL) >> 11) %
	    (lk->backoff_ns * 4 / 10 + 1);
}

/*
 * Drops the connection and schedules the next attempt.  what: the step
 * that failed on a live connection (NULL: the connection itself failed).
 */
void
link_fail(pm_worker *w, struct link *lk, const char *what, const char *why)
{
	int64_t now = mono_ns();
	int was_up = lk->state == LINK_UP;

	if (lk->conn != NULL)
		PQfinish(lk->conn);
	lk->conn = NULL;
	lk->state = LINK_DOWN;
	lk->attempts++;
	if (lk->down_since == 0) {
		lk->down_since = lk->reminded_at = now;
		lk->backoff_ns = BACKOFF_MIN_NS;
		if (what != NULL)
			pm_log(w, PM_LOG_WARNING, "pgqueue: %s: %s: %s; "
			    "reconnecting with backoff", lk->target, what,
			    why);
		else if (was_up)
			pm_log(w, PM_LOG_WARNING, "pgqueue: lost the "
			    "connection to %s: %s; reconnecting with backoff",
			    lk->target, why);
		else
			pm_log(w, PM_LOG_WARNING, "pgqueue: cannot connect to "
			    "%s: %s; retrying with backoff (%.1f to %.0f s "
			    "apart)", lk->target, why,
			    (double)BACKOFF_MIN_NS / NS_PER_SEC,
			    (double)BACKOFF_MAX_NS / NS_PER_SEC);
	} else {
		lk->backoff_ns *= 2;
		if (lk->backoff_ns > BACKOFF_MAX_NS)
			lk->backoff_ns = BACKOFF_MAX_NS;
		if (now - lk->reminded_at >= REMIND_NS) {
			lk->reminded_at = now;
			pm_log(w, PM_LOG_WARNING, "pgqueue: still no usable "
			    "connection to %s after %.0f s (%u attempts): "
			    "%s%s%s", lk->target,
			    (double)(now - lk->down_since) / NS_PER_SEC,
			    lk->attempts, what != NULL ? what : "",
			    what != NULL ? ": " : "", why);
		}
	}
	lk->retry_at = now + jittered(lk);
}

/* Starts a connection attempt: CONNECTING, or DOWN if it failed at once. */
static void
start_attempt(pm_worker *w, struct link *lk)
{
	const char *keys[] = { "dbname", "fallback_application_name", NULL };
	const char *values[] = { lk->conninfo, lk->appname, NULL };
	char why[ERR_MAX];

	lk->conn = PQconnectStartParams(keys, values, 1);
	if (lk->conn == NULL) {
		link_fail(w, lk, NULL, "out of memory");
		return;
	}
	describe_target(lk);
	if (PQstatus(lk->conn) == CONNECTION_BAD) {
		error_text(lk->conn, NULL, why, sizeof(why));
		link_fail(w, lk, NULL, why);
		return;
	}
	if (lk->notice != NULL)
		PQsetNoticeReceiver(lk->conn, lk->notice, lk->notice_arg);
	lk->state = LINK_CONNECTING;
	lk->polling = PGRES_POLLING_WRITING;
	lk->attempt_deadline = mono_ns() + ATTEMPT_MAX_NS;
}

/*
 * Drives the link towards OPEN until deadline: waits out the backoff,
 * starts attempts, polls them.  The state reached.
 */
enum link_state
link_connect(pm_worker *w, struct link *lk, int64_t deadline)
{
	char why[ERR_MAX];

	while (lk->state == LINK_DOWN || lk->state == LINK_CONNECTING) {
		int64_t now = mono_ns(), until;

		if (pm_worker_stopping(w))
			break;
		if (lk->state == LINK_DOWN) {
			if (now >= lk->retry_at) {
				start_attempt(w, lk);
				continue;
			}
			if (now >= deadline)
				break;
			until = lk->retry_at < deadline ? lk->retry_at :
			    deadline;
			wait_fd(w, -1, 0, until);
			continue;
		}
		if (lk->polling == PGRES_POLLING_OK) {
			lk->state = LINK_OPEN;
			break;
		}
		if (lk->polling == PGRES_POLLING_FAILED) {
			error_text(lk->conn, NULL, why, sizeof(why));
			link_fail(w, lk, NULL, why);
			continue;
		}
		if (now >= lk->attempt_deadline) {
			snprintf(why, sizeof(why), "no answer within %lld s",
			    (long long)(ATTEMPT_MAX_NS / NS_PER_SEC));
			link_fail(w, lk, NULL, why);
			continue;
		}
		if (now >= deadline)
			break;
		until = lk->attempt_deadline < deadline ?
		    lk->attempt_deadline : deadline;
		if (wait_fd(w, PQsocket(lk->conn),
		    lk->polling == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		    until))
			lk->polling = PQconnectPoll(lk->conn);
	}
	return lk->state;
}

/* The caller has set the session up: jobs may be claimed. */
void
link_ready(struct link *lk)
{
	lk->state = LINK_UP;
}

/*
 * The connection has served a request since it was set up: any outage is
 * over.  Not before: a server that accepts connections but fails every
 * claim (a missing privilege) is still in an outage, logged once and
 * retried with a growing delay.
 */
void
link_healthy(pm_worker *w, struct link *lk)
{
	double secs = (double)(mono_ns() - lk->down_since) / NS_PER_SEC;

	if (lk->down_since == 0) {
		if (!lk->served)
			pm_log(w, PM_LOG_DEBUG, "pgqueue: connected to %s",
			    lk->target);
		lk->served = 1;
		return;
	}
	pm_log(w, PM_LOG_NOTICE, "pgqueue: connected to %s %safter %.1f s "
	    "(%u failed attempts)", lk->target, lk->served ? "again " : "",
	    secs, lk->attempts);
	lk->served = 1;
	lk->down_since = 0;
	lk->attempts = 0;
	lk->backoff_ns = BACKOFF_MIN_NS;
}

/*
 * Waits for a notification on the channels LISTENed to, until deadline or
 * a stop: 1 if one came (all pending ones are consumed), 0 if not, -1 if
 * the connection failed.
 */
int
link_wait(pm_worker *w, struct link *lk, int64_t deadline)
{
	for (;;) {
		PGnotify *n;
		int got = 0;

		if (!PQconsumeInput(lk->conn))
			return -1;
		while ((n = PQnotifies(lk->conn)) != NULL) {
			got = 1;
			PQfreemem(n);
		}
		if (got)
			return 1;
		if (pm_worker_stopping(w) || mono_ns() >= deadline)
			return 0;
		if (!wait_fd(w, PQsocket(lk->conn), POLLIN, deadline) &&
		    !pm_worker_stopping(w) && mono_ns() >= deadline)
			return 0;
	}
}

/* Closes the connection for good (work_fini). */
void
link_close(struct link *lk)
{
	if (lk->conn != NULL)
		PQfinish(lk->conn);
	lk->conn = NULL;
	lk->state = LINK_DOWN;
}
