/*
 * schema.c - the SQL API in schema pgqueue, created and upgraded by the
 * plugin itself.  pgqueue.schema_version records each migration applied;
 * migrations run in one transaction under an advisory lock, so any number
 * of workers starting at once apply each exactly once, and a worker that
 * finds the schema current takes no lock and changes nothing.
 *
 * Migrations are only ever appended: a released one is never edited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgqueue.h"

/* Advisory lock (class, 0) serialises migrations; see jobs.c for jobs'. */
#define SCHEMA_LOCK_CLASS	"1885827446"

static const char *const migrations[] = {
	/* 1: jobs, enqueue, retry, purge, stats. */
	"CREATE TABLE pgqueue.jobs ("
	"  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  queue       text NOT NULL"
	"              CHECK (queue ~ '^[A-Za-z0-9_.-]{1,48}$'),"
	"  payload     jsonb NOT NULL,"
	"  state       text NOT NULL DEFAULT 'queued' CHECK (state IN"
	"              ('queued', 'running', 'done', 'failed')),"
	"  attempts    integer NOT NULL DEFAULT 0,"
	"  run_at      timestamptz NOT NULL DEFAULT now(),"
	"  created_at  timestamptz NOT NULL DEFAULT now(),"
	"  started_at  timestamptz,"
	"  finished_at timestamptz,"
	"  last_error  text,"
	"  worker      text"
	");"
	"CREATE INDEX jobs_ready ON pgqueue.jobs (queue, run_at, id)"
	"  WHERE state = 'queued';"
	"CREATE INDEX jobs_running ON pgqueue.jobs (queue)"
	"  WHERE state = 'running';"
	"CREATE FUNCTION pgqueue.enqueue(queue text, payload jsonb,"
	"    run_at timestamptz DEFAULT now()) RETURNS bigint"
	"  LANGUAGE plpgsql AS $$ "
	"DECLARE job bigint; "
	"BEGIN "
	"  INSERT INTO pgqueue.jobs (queue, payload, run_at)"
	"    VALUES (enqueue.queue, enqueue.payload,"
	"            coalesce(enqueue.run_at, now()))"
	"    RETURNING id INTO job;"
	"  PERFORM pg_notify('pgqueue.' || enqueue.queue, '');"
	"  RETURN job; "
	"END $$;"
	"CREATE FUNCTION pgqueue.retry(job bigint) RETURNS boolean"
	"  LANGUAGE plpgsql AS $$ "
	"DECLARE q text; "
	"BEGIN "
	"  UPDATE pgqueue.jobs SET state = 'queued', attempts = 0,"
	"      run_at = now(), finished_at = NULL"
	"    WHERE id = retry.job AND state = 'failed'"
	"    RETURNING queue INTO q;"
	"  IF q IS NULL THEN RETURN false; END IF;"
	"  PERFORM pg_notify('pgqueue.' || q, '');"
	"  RETURN true; "
	"END $$;"
	"CREATE FUNCTION pgqueue.purge(queue text,"
	"    older_than interval DEFAULT '7 days') RETURNS bigint"
	"  LANGUAGE sql AS $$ "
	"  WITH gone AS (DELETE FROM pgqueue.jobs j"
	"    WHERE j.queue = $1 AND j.state = 'done'"
	"      AND j.finished_at < now() - $2 RETURNING 1)"
	"  SELECT count(*) FROM gone $$;"
	"CREATE VIEW pgqueue.stats AS"
	"  SELECT queue,"
	"    count(*) FILTER (WHERE state = 'queued' AND run_at <= now())"
	"      AS ready,"
	"    count(*) FILTER (WHERE state = 'queued' AND run_at > now())"
	"      AS scheduled,"
	"    count(*) FILTER (WHERE state = 'running') AS running,"
	"    count(*) FILTER (WHERE state = 'done') AS done,"
	"    count(*) FILTER (WHERE state = 'failed') AS failed,"
	"    now() - min(run_at) FILTER (WHERE state = 'queued'"
	"      AND run_at <= now()) AS oldest_ready_age"
	"  FROM pgqueue.jobs GROUP BY queue;",
};

#define LATEST	((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Runs sql (no parameters); 0 if it succeeded, else -1 with err. */
static int
run(PGconn *conn, const char *sql, PGresult **out, char *err,
    size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		error_text(conn, res, err, errlen);
		PQclear(res);
		return -1;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

/* The version the database is at: 0 if none; -1 on error. */
static int
current_version(PGconn *conn, int may_be_absent, char *err, size_t errlen)
{
	PGresult *res;
	int v;

	if (may_be_absent) {
		if (run(conn, "SELECT to_regclass('pgqueue.schema_version') "
		    "IS NOT NULL", &res, err, errlen) < 0)
			return -1;
		v = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (!v)
			return 0;
	}
	if (run(conn, "SELECT coalesce(max(version), 0) FROM "
	    "pgqueue.schema_version", &res, err, errlen) < 0)
		return -1;
	v = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

/* The refusal of a schema newer than this code. */
static int
too_new(int v, char *err, size_t errlen)
{
	snprintf(err, errlen, "schema pgqueue is at version %d, newer than "
	    "this pgqueue.so knows (%d): upgrade the plugin", v, LATEST);
	return -1;
}

/* Brings schema pgqueue to LATEST; 0, or -1 with err (rolled back). */
int
schema_migrate(PGconn *conn, char *err, size_t errlen)
{
	char sql[128];
	int v;

	if ((v = current_version(conn, 1, err, errlen)) < 0)
		return -1;
	if (v == LATEST)
		return 0;
	if (v > LATEST)
		return too_new(v, err, errlen);
	if (run(conn, "BEGIN", NULL, err, errlen) < 0)
		return -1;
	/* Quiet: "already exists, skipping" is what we expect to hear. */
	if (run(conn, "SET LOCAL client_min_messages = warning", NULL, err,
	    errlen) < 0 ||
	    run(conn, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_CLASS
	    ", 0)", NULL, err, errlen) < 0 ||
	    run(conn, "CREATE SCHEMA IF NOT EXISTS pgqueue; "
	    "CREATE TABLE IF NOT EXISTS pgqueue.schema_version ("
	    "  version integer PRIMARY KEY,"
	    "  applied_at timestamptz NOT NULL DEFAULT now())",
	    NULL, err, errlen) < 0)
		goto fail;
	/* Another worker may have done it while we waited for the lock. */
	if ((v = current_version(conn, 0, err, errlen)) < 0)
		goto fail;
	if (v > LATEST) {
		too_new(v, err, errlen);
		goto fail;
	}
	for (; v < LATEST; v++) {
		snprintf(sql, sizeof(sql), "INSERT INTO pgqueue.schema_version "
		    "(version) VALUES (%d)", v + 1);
		if (run(conn, migrations[v], NULL, err, errlen) < 0 ||
		    run(conn, sql, NULL, err, errlen) < 0) {
			char step[ERR_MAX];

			snprintf(step, sizeof(step), "%s", err);
			snprintf(err, errlen, "migration %d: %s", v + 1, step);
			goto fail;
		}
	}
	return run(conn, "COMMIT", NULL, err, errlen);
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
