/*
 * jobs.c - claiming jobs and recording what became of them.
 *
 * SQL handler: one transaction claims up to `batch` queued jobs (FOR UPDATE
 * SKIP LOCKED), runs the handler on each, and marks them done.  The row
 * locks are the lease: if the worker or its connection dies, the
 * transaction rolls back and the jobs are queued again, untouched, for any
 * worker.  So a job's effects in the database happen exactly once.  When
 * a handler fails, the transaction is rolled back (the other jobs' effects
 * with it) and the failure is recorded in a transaction of its own,
 * fenced on the attempts count the claim saw: only if nobody has
 * finished the job since.
 *
 * Command handler: a program's effects are outside the database, so no
 * transaction can hold them.  The claim commits the job as `running`,
 * attempts + 1, and the worker's session holds an advisory lock on it (the
 * lease) until the outcome is recorded, fenced on that attempts count.
 * A `running` job whose lease is free has lost its worker: any worker's
 * rescue puts it back (or fails it, past maxAttempts).  The program may
 * then run again: at-least-once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgqueue.h"

/* Advisory locks (class, id) are the leases of command jobs. */
#define JOB_LOCK_CLASS		"1885827445"
#define JOB_LOCK_KEY(col)	JOB_LOCK_CLASS ", (" col " & 2147483647)::int"

#define INT8OID			20
#define INT4OID			23
#define TEXTOID			25
#define FLOAT8OID		701
#define BOOLOID			16
#define JSONBOID		3802

/* The backoff of the attempt that just failed, a job's `attempts` being A. */
#define RETRY_AT(a, delay, max)						\
	"clock_timestamp() + least(" delay " * power(2, least(" a ", 40)), " \
	max ") * interval '1 millisecond'"

/* How often a worker looks for jobs whose worker is gone.  Only command
 * jobs can be: SQL handler workers look rarely, for a queue that both
 * kinds of workers consume (while moving from one to the other, say). */
#define RESCUE_EVERY_NS		(2 * NS_PER_SEC)
#define RESCUE_EVERY_SQL_NS	(30 * NS_PER_SEC)

struct statement {
	const char	*name;
	const char	*sql;
	int		 nparams;
	Oid		 types[8];
};

static const struct statement sql_statements[] = {
	{ "pgq_claim",
	  "SELECT id, payload, attempts FROM pgqueue.jobs"
	  " WHERE queue = $1 AND state = 'queued' AND run_at <= now()"
	  " ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
	  2, { TEXTOID, INT4OID } },
	{ "pgq_done",
	  "UPDATE pgqueue.jobs SET state = 'done', attempts = attempts + 1,"
	  " started_at = now(), finished_at = clock_timestamp(), worker = $2"
	  " WHERE id = ANY ($1::bigint[])",
	  2, { TEXTOID, TEXTOID } },
	{ "pgq_failed",
	  "UPDATE pgqueue.jobs SET attempts = attempts + 1, last_error = $3,"
	  " worker = $7,"
	  " state = CASE WHEN attempts + 1 >= $4 THEN 'failed'"
	  "   ELSE 'queued' END,"
	  " finished_at = CASE WHEN attempts + 1 >= $4"
	  "   THEN clock_timestamp() END,"
	  " run_at = CASE WHEN attempts + 1 >= $4 THEN run_at"
	  "   ELSE " RETRY_AT("attempts", "$5", "$6") " END"
	  " WHERE id = $1 AND attempts = $2 AND state = 'queued'"
	  " RETURNING state, extract(epoch FROM run_at - clock_timestamp()),"
	  "   pg_notify('pgqueue.' || queue, '')",
	  7, { INT8OID, INT4OID, TEXTOID, INT4OID, FLOAT8OID, FLOAT8OID,
	       TEXTOID } },
};

static const struct statement command_statements[] = {
	{ "pgq_take",
	  "WITH c AS (SELECT id FROM pgqueue.jobs"
	  "   WHERE queue = $1 AND state = 'queued' AND run_at <= now()"
	  "   ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
	  " UPDATE pgqueue.jobs j SET state = 'running',"
	  "   attempts = j.attempts + 1, started_at = clock_timestamp(),"
	  "   finished_at = NULL, worker = $2"
	  " FROM c WHERE j.id = c.id"
	  " RETURNING j.id, j.payload, j.attempts,"
	  "   pg_advisory_lock(" JOB_LOCK_KEY("j.id") ")",
	  2, { TEXTOID, TEXTOID } },
	{ "pgq_finish",
	  "WITH u AS (UPDATE pgqueue.jobs SET"
	  "   state = CASE WHEN $3 THEN 'done' WHEN attempts >= $5"
	  "     THEN 'failed' ELSE 'queued' END,"
	  "   finished_at = CASE WHEN $3 OR attempts >= $5"
	  "     THEN clock_timestamp() END,"
	  "   last_error = CASE WHEN $3 THEN last_error ELSE $4 END,"
	  "   run_at = CASE WHEN $3 OR attempts >= $5 THEN run_at"
	  "     ELSE " RETRY_AT("attempts - 1", "$6", "$7") " END"
	  "   WHERE id = $1 AND attempts = $2 AND state = 'running'"
	  "   RETURNING state, run_at, queue)"
	  " SELECT (SELECT state FROM u),"
	  "   (SELECT extract(epoch FROM run_at - clock_timestamp()) FROM u),"
	  "   CASE WHEN $8 THEN pg_advisory_unlock(" JOB_LOCK_KEY("$1") ") END,"
	  "   (SELECT pg_notify('pgqueue.' || queue, '') FROM u"
	  "     WHERE state = 'queued')",
	  8, { INT8OID, INT4OID, BOOLOID, TEXTOID, INT4OID, FLOAT8OID,
	       FLOAT8OID, BOOLOID } },
};

static const struct statement common_statements[] = {
	{ "pgq_rescue",
	  "WITH running AS MATERIALIZED (SELECT id FROM pgqueue.jobs"
	  "   WHERE queue = $1 AND state = 'running' FOR UPDATE SKIP LOCKED),"
	  " lost AS MATERIALIZED (SELECT id FROM running"
	  "   WHERE pg_try_advisory_xact_lock(" JOB_LOCK_KEY("id") "))"
	  " UPDATE pgqueue.jobs j SET"
	  "   state = CASE WHEN j.attempts >= $2 THEN 'failed'"
	  "     ELSE 'queued' END,"
	  "   finished_at = CASE WHEN j.attempts >= $2"
	  "     THEN clock_timestamp() END,"
	  "   last_error = 'worker lost: ' || coalesce(j.worker, '?') ||"
	  "     ' ended or lost its connection while running the job',"
	  "   run_at = CASE WHEN j.attempts >= $2 THEN j.run_at"
	  "     ELSE " RETRY_AT("j.attempts - 1", "$3", "$4") " END"
	  " FROM lost WHERE j.id = lost.id"
	  " RETURNING j.id, j.state, j.worker,"
	  "   pg_notify('pgqueue.' || j.queue, '')",
	  4, { TEXTOID, INT4OID, FLOAT8OID, FLOAT8OID } },
	{ "pgq_next",
	  "SELECT extract(epoch FROM min(run_at) - now()) * 1000"
	  " FROM pgqueue.jobs"
	  " WHERE queue = $1 AND state = 'queued' AND run_at > now()",
	  1, { TEXTOID } },
};

#define COUNT(a)	(sizeof(a) / sizeof(a[0]))

/* Prepares statements s[0..n-1] on conn; -1 with err on the first error. */
static int
prepare_all(PGconn *conn, const struct statement *s, size_t n, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		PGresult *res = PQprepare(conn, s[i].name, s[i].sql,
		    s[i].nparams, s[i].types);

		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			error_text(conn, res, err, errlen);
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

/*
 * Sets a new session up: the SQL API current, LISTEN on the queue's
 * channel, the handler's timeout, the statements this handler uses.
 */
int
jobs_setup(struct pgq *q, char *err, size_t errlen)
{
	static const Oid handler_types[] = { JSONBOID, INT8OID };
	PGconn *conn = q->link.conn;
	char listen[96], why[ERR_MAX];
	PGresult *res;

	if (schema_migrate(conn, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "creating the SQL API: %s", why);
		return -1;
	}
	/* The channel name is a quoted identifier; the queue name is safe. */
	snprintf(listen, sizeof(listen), "LISTEN \"%s\"", q->channel);
	res = PQexec(conn, listen);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		error_text(conn, res, why, sizeof(why));
		snprintf(err, errlen, "%s: %s", listen, why);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	if (q->p.sql != NULL && q->p.handler_timeout_ms > 0) {
		char set[64];

		snprintf(set, sizeof(set), "SET statement_timeout = %d",
		    q->p.handler_timeout_ms);
		res = PQexec(conn, set);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			error_text(conn, res, err, errlen);
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	if (prepare_all(conn, common_statements, COUNT(common_statements),
	    err, errlen) < 0)
		return -1;
	if (q->p.sql == NULL)
		return prepare_all(conn, command_statements,
		    COUNT(command_statements), err, errlen);
	if (prepare_all(conn, sql_statements, COUNT(sql_statements), err,
	    errlen) < 0)
		return -1;
	res = PQprepare(conn, "pgq_handler", q->p.sql, 2, handler_types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		error_text(conn, res, why, sizeof(why));
		snprintf(err, errlen, "params.handler.sql: %s", why);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/*
 * Runs a prepared statement.  The result if it succeeded; else NULL, with
 * the link failed (its error logged as `what`) unless it is the caller's
 * to handle: with `why`, a handler's error on a live connection goes there.
 */
static PGresult *
exec_stmt(struct pgq *q, const char *name, int n, const char *const *v,
    const char *what, char *why, size_t whylen)
{
	PGresult *res = PQexecPrepared(q->link.conn, name, n, v, NULL, NULL,
	    0);
	ExecStatusType st = PQresultStatus(res);
	char err[ERR_MAX];

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	error_text(q->link.conn, res, why != NULL ? why : err,
	    why != NULL ? whylen : sizeof(err));
	if (why != NULL && !link_lost(&q->link, res)) {
		PQclear(res);
		return NULL;
	}
	PQclear(res);
	if (why != NULL) {
		/* Copied: link_fail may log it. */
		snprintf(err, sizeof(err), "%s", why);
		why[0] = '\0';
	}
	link_fail(q->w, &q->link, link_lost(&q->link, NULL) ? NULL : what,
	    err);
	return NULL;
}

/* A plain command of the transaction (BEGIN, COMMIT, ROLLBACK). */
static int
exec_simple(struct pgq *q, const char *sql)
{
	PGresult *res = PQexec(q->link.conn, sql);
	char err[ERR_MAX];

	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return 0;
	}
	error_text(q->link.conn, res, err, sizeof(err));
	PQclear(res);
	link_fail(q->w, &q->link, link_lost(&q->link, NULL) ? NULL : sql, err);
	return -1;
}

/* A text parameter from an integer. */
static void
fmt_int(char *buf, size_t size, int n)
{
	snprintf(buf, size, "%d", n);
}

/* Logs what a failure came to: retried after a delay, or failed. */
static void
log_failure(struct pgq *q, long long id, int attempt, const char *state,
    const char *in_s, const char *err)
{
	if (state == NULL)
		pm_log(q->w, PM_LOG_NOTICE, "pgqueue: job %lld failed: %s; "
		    "someone else has finished it meanwhile", id, err);
	else if (strcmp(state, "failed") == 0)
		pm_log(q->w, PM_LOG_WARNING, "pgqueue: job %lld failed for "
		    "good after %d attempts: %s", id, attempt, err);
	else
		pm_log(q->w, PM_LOG_WARNING, "pgqueue: job %lld failed "
		    "(attempt %d of %d): %s; retry in %.1f s", id, attempt,
		    q->p.max_attempts, err, in_s != NULL ? atof(in_s) : 0.0);
}

/*
 * Records a handler's failure on job id, claimed with `attempts` seen,
 * after its transaction was rolled back.
 */
static int
record_sql_failure(struct pgq *q, const char *id, const char *attempts,
    const char *err)
{
	char max[16], delay[16], cap[16];
	const char *v[7] = { id, attempts, err, max, delay, cap, q->worker };
	PGresult *res;

	fmt_int(max, sizeof(max), q->p.max_attempts);
	fmt_int(delay, sizeof(delay), q->p.retry_delay_ms);
	fmt_int(cap, sizeof(cap), q->p.retry_max_delay_ms);
	if ((res = exec_stmt(q, "pgq_failed", 7, v, "recording a failure",
	    NULL, 0)) == NULL)
		return -1;
	log_failure(q, atoll(id), atoi(attempts) + 1,
	    PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : NULL,
	    PQntuples(res) > 0 ? PQgetvalue(res, 0, 1) : NULL, err);
	PQclear(res);
	return 0;
}

/* "{1,2,3}": the claimed ids, for the done update. */
static const char *
id_array(struct pgq *q, const PGresult *claim, int n)
{
	size_t len = 0;

	q->ids[len++] = '{';
	for (int i = 0; i < n; i++) {
		const char *id = PQgetvalue(claim, i, 0);
		size_t k = strlen(id);

		if (len + k + 3 > q->ids_size)
			break;	/* cannot happen: sized for batch ids */
		if (i > 0)
			q->ids[len++] = ',';
		memcpy(q->ids + len, id, k);
		len += k;
	}
	q->ids[len++] = '}';
	q->ids[len] = '\0';
	return q->ids;
}

/*
 * One transaction of the SQL handler (see the top).  Jobs done or failed
 * (0: none due), or -1 if the link failed.
 */
int
jobs_run_sql(struct pgq *q)
{
	char limit[16], err[ERR_MAX];
	const char *v[2] = { q->p.queue, limit };
	PGresult *claim, *res;
	int n;

	fmt_int(limit, sizeof(limit), q->p.batch);
	if (exec_simple(q, "BEGIN") < 0)
		return -1;
	if ((claim = exec_stmt(q, "pgq_claim", 2, v, "claiming jobs", NULL,
	    0)) == NULL)
		return -1;
	if ((n = PQntuples(claim)) == 0) {
		PQclear(claim);
		return exec_simple(q, "COMMIT");
	}
	for (int i = 0; i < n; i++) {
		const char *job[2] = { PQgetvalue(claim, i, 1),
		    PQgetvalue(claim, i, 0) };

		res = exec_stmt(q, "pgq_handler", 2, job, NULL, err,
		    sizeof(err));
		if (res == NULL && err[0] == '\0')
			goto lost;
		if (res == NULL) {
			if (exec_simple(q, "ROLLBACK") < 0 ||
			    record_sql_failure(q, PQgetvalue(claim, i, 0),
			    PQgetvalue(claim, i, 2), err) < 0)
				goto lost;
			PQclear(claim);
			return 1;
		}
		PQclear(res);
		if (PQtransactionStatus(q->link.conn) != PQTRANS_INTRANS) {
			/* Its effects are committed; ours cannot follow. */
			link_fail(q->w, &q->link, "params.handler.sql", "the "
			    "handler ended the transaction (COMMIT or ROLLBACK "
			    "in a handler breaks exactly-once: remove it)");
			goto lost;
		}
	}
	{
		const char *d[2] = { id_array(q, claim, n), q->worker };

		if ((res = exec_stmt(q, "pgq_done", 2, d, "marking jobs done",
		    NULL, 0)) == NULL)
			goto lost;
		PQclear(res);
	}
	if (exec_simple(q, "COMMIT") < 0)
		goto lost;
	for (int i = 0; i < n; i++)
		pm_log(q->w, PM_LOG_DEBUG, "pgqueue: job %s done",
		    PQgetvalue(claim, i, 0));
	PQclear(claim);
	return n;
lost:
	PQclear(claim);
	return -1;
}

/* Records the pending outcome of a command job; 0 once it is recorded. */
int
jobs_finish_pending(struct pgq *q)
{
	struct pending *pj = &q->pending;
	char id[24], token[16], max[16], delay[16], cap[16];
	const char *v[8] = { id, token, pj->ok ? "t" : "f", pj->err, max,
	    delay, cap, pj->leased ? "t" : "f" };
	PGresult *res;
	const char *state;

	snprintf(id, sizeof(id), "%lld", pj->id);
	fmt_int(token, sizeof(token), pj->token);
	fmt_int(max, sizeof(max), q->p.max_attempts);
	fmt_int(delay, sizeof(delay), q->p.retry_delay_ms);
	fmt_int(cap, sizeof(cap), q->p.retry_max_delay_ms);
	if ((res = exec_stmt(q, "pgq_finish", 8, v, "recording a job's end",
	    NULL, 0)) == NULL) {
		pj->leased = 0;		/* the session that held it is gone */
		return -1;
	}
	state = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
	if (state == NULL)
		pm_log(q->w, PM_LOG_WARNING, "pgqueue: job %lld %s, but it was "
		    "taken back meanwhile (its lease went with a lost "
		    "connection): it runs again", pj->id,
		    pj->ok ? "succeeded" : "failed");
	else if (pj->ok)
		pm_log(q->w, PM_LOG_DEBUG, "pgqueue: job %lld done", pj->id);
	else
		log_failure(q, pj->id, pj->token, state,
		    PQgetvalue(res, 0, 1), pj->err);
	PQclear(res);
	pj->set = 0;
	return 0;
}

/*
 * Claims one job, runs the command, records the outcome.  1 if a job was
 * run, 0 if none was due, -1 if the link failed (the outcome, if any, is
 * kept pending for the next connection).
 */
int
jobs_run_command(struct pgq *q)
{
	const char *v[2] = { q->p.queue, q->worker };
	struct pending *pj = &q->pending;
	PGresult *res;
	int rc;

	if ((res = exec_stmt(q, "pgq_take", 2, v, "claiming a job", NULL,
	    0)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	memset(pj, 0, sizeof(*pj));
	pj->id = atoll(PQgetvalue(res, 0, 0));
	pj->token = atoi(PQgetvalue(res, 0, 2));
	pj->leased = 1;
	rc = command_run(q->w, &q->p, PQgetvalue(res, 0, 1), pj->id,
	    pj->token, pj->err, sizeof(pj->err));
	PQclear(res);
	pj->ok = rc == 0;
	pj->set = 1;
	return jobs_finish_pending(q) < 0 ? -1 : 1;
}

/* Puts back (or fails) the running jobs whose worker is gone; how many. */
int
jobs_rescue(struct pgq *q)
{
	char max[16], delay[16], cap[16];
	const char *v[4] = { q->p.queue, max, delay, cap };
	PGresult *res;
	int n;

	fmt_int(max, sizeof(max), q->p.max_attempts);
	fmt_int(delay, sizeof(delay), q->p.retry_delay_ms);
	fmt_int(cap, sizeof(cap), q->p.retry_max_delay_ms);
	if ((res = exec_stmt(q, "pgq_rescue", 4, v, "rescuing jobs", NULL,
	    0)) == NULL)
		return -1;
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		pm_log(q->w, PM_LOG_WARNING, "pgqueue: job %s: its worker %s "
		    "is gone; job %s", PQgetvalue(res, i, 0),
		    PQgetvalue(res, i, 2), strcmp(PQgetvalue(res, i, 1),
		    "failed") == 0 ? "failed for good (maxAttempts reached)" :
		    "queued again");
	PQclear(res);
	q->rescue_at = mono_ns() + (q->p.sql != NULL ? RESCUE_EVERY_SQL_NS :
	    RESCUE_EVERY_NS);
	return n;
}

/* Sets *due to when the next scheduled job of the queue is due, if one
 * is; leaves it alone otherwise.  -1 if the link failed. */
int
jobs_next_due(struct pgq *q, int64_t *due)
{
	const char *v[1] = { q->p.queue };
	PGresult *res;

	if ((res = exec_stmt(q, "pgq_next", 1, v, "looking for scheduled jobs",
	    NULL, 0)) == NULL)
		return -1;
	if (!PQgetisnull(res, 0, 0))
		*due = mono_ns() + (int64_t)(atof(PQgetvalue(res, 0, 0)) *
		    NS_PER_MS);
	PQclear(res);
	return 0;
}
