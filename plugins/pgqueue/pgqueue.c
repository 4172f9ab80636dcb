/*
 * pgqueue.c - the plugin's entry points: a worker of a job queue kept in
 * PostgreSQL, shared by any number of workers on any number of hosts.
 * work() handles jobs while there are any, waits for a notification when
 * there are none, and returns within about waitMs either way, so that
 * pmhost's stop, limits and workTimeout see it often.  jobs.c says how a
 * job is claimed and finished, link.c how the connection is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgqueue.h"

PMHOST_PLUGIN;

#define INIT_CONNECT_MAX_NS	(5 * NS_PER_SEC)

/* CLOCK_MONOTONIC in ns: every deadline of the plugin is on it. */
int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* The server's notices and warnings (RAISE in a handler) go to the log. */
static void
on_notice(void *arg, const PGresult *res)
{
	struct pgq *q = arg;
	const char *sev = PQresultErrorField(res,
	    PG_DIAG_SEVERITY_NONLOCALIZED);
	char text[ERR_MAX];
	int level = PM_LOG_DEBUG;

	if (sev != NULL && strcmp(sev, "WARNING") == 0)
		level = PM_LOG_WARNING;
	else if (sev != NULL && (strcmp(sev, "NOTICE") == 0 ||
	    strcmp(sev, "INFO") == 0))
		level = PM_LOG_INFO;
	error_text(NULL, res, text, sizeof(text));
	pm_log(q->w, level, "pgqueue: server: %s", text);
}

/* Connects and sets the session up, waiting no later than deadline. */
static int
bring_up(pm_worker *w, struct pgq *q, int64_t deadline)
{
	char err[ERR_MAX];

	if (link_connect(w, &q->link, deadline) != LINK_OPEN)
		return 0;
	if (jobs_setup(q, err, sizeof(err)) < 0) {
		link_fail(w, &q->link, "setting up the session", err);
		return 0;
	}
	link_ready(&q->link);
	q->rescue_at = 0;
	return 1;
}

/* Parses params as work_init does; the database is not contacted: a
 * server that is down when a task starts is waited for, not an error. */
int
work_check(pm_worker *w)
{
	struct pgq_params p;
	int rc;

	rc = params_parse(w, pm_worker_params(w), &p);
	if (rc == 0 && p.argv != NULL)
		rc = params_find_program(w, &p);
	params_free(&p);
	return rc;
}

/* Closes the connection and frees what work_init() made. */
static void
pgq_free(struct pgq *q)
{
	link_close(&q->link);
	params_free(&q->p);
	free(q->ids);
	free(q);
}

/*
 * Reads params and tries to connect (for up to waitMs or 5 s).  A server
 * that cannot be reached is not a failure: work() goes on trying.
 */
int
work_init(pm_worker *w, void **state)
{
	char host[64] = "?", appname[64];
	struct pgq *q;
	int64_t wait;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->w = w;
	if (params_parse(w, pm_worker_params(w), &q->p) < 0 ||
	    (q->p.argv != NULL && params_find_program(w, &q->p) < 0))
		goto fail;
	gethostname(host, sizeof(host) - 1);
	snprintf(q->worker, sizeof(q->worker), "%s:%d", host, (int)getpid());
	snprintf(q->channel, sizeof(q->channel), "pgqueue.%s", q->p.queue);
	/* "{", then ids of up to 19 digits and a comma each, "}". */
	q->ids_size = (size_t)q->p.batch * 20 + 3;
	if ((q->ids = malloc(q->ids_size)) == NULL)
		goto fail;
	snprintf(appname, sizeof(appname), "pmhost pgqueue %s slot %d",
	    q->p.queue, pm_worker_slot(w));
	link_init(&q->link, q->p.conninfo, appname);
	q->link.notice = on_notice;
	q->link.notice_arg = q;
	/* Connected now if the server answers; else work() goes on trying. */
	wait = (int64_t)q->p.wait_ms * NS_PER_MS;
	bring_up(w, q, mono_ns() + (wait < INIT_CONNECT_MAX_NS ? wait :
	    INIT_CONNECT_MAX_NS));
	*state = q;
	return 0;
fail:
	pgq_free(q);
	return -1;
}

/*
 * Handles jobs while there are any, waits for a notification (or the next
 * scheduled job) while there are none, for about waitMs in all; on a lost
 * connection, reconnects with backoff within the same bound.
 */
int
work(pm_worker *w, void *state)
{
	struct pgq *q = state;
	int64_t end = mono_ns() + (int64_t)q->p.wait_ms * NS_PER_MS;
	char err[ERR_MAX];

	q->w = w;
	while (!pm_worker_stopping(w)) {
		int64_t due = end;
		int n;

		if (q->link.state != LINK_UP) {
			if (!bring_up(w, q, end) && mono_ns() >= end)
				break;
			continue;
		}
		if (q->pending.set && jobs_finish_pending(q) < 0)
			continue;
		if (mono_ns() >= q->rescue_at && jobs_rescue(q) < 0)
			continue;
		n = q->p.sql != NULL ? jobs_run_sql(q) : jobs_run_command(q);
		if (n < 0)
			continue;
		link_healthy(w, &q->link);
		if (mono_ns() >= end)
			break;
		if (n > 0)
			continue;
		/* Nothing for us: wait for an enqueue, or a scheduled job. */
		if (jobs_next_due(q, &due) < 0)
			continue;
		if (link_wait(w, &q->link, due < end ? due : end) < 0) {
			error_text(q->link.conn, NULL, err, sizeof(err));
			link_fail(w, &q->link, NULL, err);
		} else if (mono_ns() >= end)
			break;
	}
	return PM_CONTINUE;
}

/* Ends the worker's connection; says so if an outcome could not be
 * recorded. */
void
work_fini(pm_worker *w, void *state)
{
	struct pgq *q = state;

	q->w = w;
	if (q->pending.set)
		pm_log(w, PM_LOG_NOTICE, "pgqueue: job %lld %s, but the "
		    "database could not be told before the worker stopped: "
		    "it runs again", q->pending.id,
		    q->pending.ok ? "succeeded" : "failed");
	pgq_free(q);
}
