/*
 * floor.c - the benchmark's reference: a plain libpq program doing the
 * claim-handle-commit loop of pgqueue's SQL handler with N connections,
 * one process each, and no pmhost.  Its statements are the plugin's
 * (jobs.c: pgq_claim, pgq_done); what it leaves out is everything else
 * (failure records, rescue, reconnection, logging).
 *
 *   floor drain  CONNINFO QUEUE BATCH N HANDLER_SQL
 *	each connection works until the queue is empty, then exits
 *   floor listen CONNINFO QUEUE BATCH N HANDLER_SQL
 *	each connection LISTENs; on a notification it works until the
 *	queue is empty, then waits again; until SIGTERM
 *
 * Prints "jobs N" (drain) on exit.  Exit status 1 on any error.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

static const char claim_sql[] =
    "SELECT id, payload, attempts FROM pgqueue.jobs"
    " WHERE queue = $1 AND state = 'queued' AND run_at <= now()"
    " ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED";
static const char done_sql[] =
    "UPDATE pgqueue.jobs SET state = 'done', attempts = attempts + 1,"
    " started_at = now(), finished_at = clock_timestamp(), worker = $2"
    " WHERE id = ANY ($1::bigint[])";

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
die(PGconn *conn, const char *what, PGresult *res)
{
	fprintf(stderr, "floor: %s: %s", what, res != NULL ?
	    PQresultErrorMessage(res) : PQerrorMessage(conn));
	exit(1);
}

static void
exec_ok(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(conn, sql, res);
	PQclear(res);
}

static void
prepare(PGconn *conn, const char *name, const char *sql, int n,
    const Oid *types)
{
	PGresult *res = PQprepare(conn, name, sql, n, types);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(conn, name, res);
	PQclear(res);
}

/* One transaction: claim, handle each, mark done, commit; jobs done. */
static int
one_batch(PGconn *conn, const char *queue, const char *batch, char *ids,
    const char *me)
{
	const char *cv[2] = { queue, batch };
	PGresult *claim, *res;
	size_t len = 0;
	int n;

	exec_ok(conn, "BEGIN");
	claim = PQexecPrepared(conn, "claim", 2, cv, NULL, NULL, 0);
	if (PQresultStatus(claim) != PGRES_TUPLES_OK)
		die(conn, "claim", claim);
	if ((n = PQntuples(claim)) == 0) {
		PQclear(claim);
		exec_ok(conn, "COMMIT");
		return 0;
	}
	ids[len++] = '{';
	for (int i = 0; i < n; i++) {
		const char *hv[2] = { PQgetvalue(claim, i, 1),
		    PQgetvalue(claim, i, 0) };

		res = PQexecPrepared(conn, "handler", 2, hv, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK &&
		    PQresultStatus(res) != PGRES_COMMAND_OK)
			die(conn, "handler", res);
		PQclear(res);
		len += (size_t)sprintf(ids + len, "%s%s", i > 0 ? "," : "",
		    PQgetvalue(claim, i, 0));
	}
	ids[len++] = '}';
	ids[len] = '\0';
	PQclear(claim);
	{
		const char *dv[2] = { ids, me };

		res = PQexecPrepared(conn, "done", 2, dv, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die(conn, "done", res);
		PQclear(res);
	}
	exec_ok(conn, "COMMIT");
	return n;
}

/* A child: one connection, its loop. */
static int
run(int listen, const char *conninfo, const char *queue, const char *batch,
    const char *handler)
{
	static const Oid ctypes[] = { 25, 23 }, htypes[] = { 3802, 20 };
	static const Oid dtypes[] = { 25, 25 };
	const char *keys[] = { "dbname", "fallback_application_name", NULL };
	const char *vals[] = { conninfo, "pgqueue-floor", NULL };
	char me[32], sql[128], *ids;
	long total = 0;
	PGconn *conn;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "connect", NULL);
	snprintf(me, sizeof(me), "floor:%d", (int)getpid());
	if ((ids = malloc((size_t)atoi(batch) * 21 + 3)) == NULL)
		return 1;
	prepare(conn, "claim", claim_sql, 2, ctypes);
	prepare(conn, "handler", handler, 2, htypes);
	prepare(conn, "done", done_sql, 2, dtypes);
	if (listen) {
		snprintf(sql, sizeof(sql), "LISTEN \"pgqueue.%s\"", queue);
		exec_ok(conn, sql);
	}
	while (!stop) {
		struct pollfd pfd;
		PGnotify *nt;
		int n;

		while ((n = one_batch(conn, queue, batch, ids, me)) > 0)
			total += n;
		if (!listen)
			break;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
		if (!PQconsumeInput(conn))
			die(conn, "consume", NULL);
		while ((nt = PQnotifies(conn)) != NULL)
			PQfreemem(nt);
	}
	PQfinish(conn);
	free(ids);
	printf("jobs %ld\n", total);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	int n, status, failed = 0;
	pid_t *pids;

	if (argc != 7 || (strcmp(argv[1], "drain") != 0 &&
	    strcmp(argv[1], "listen") != 0) || (n = atoi(argv[5])) < 1) {
		fprintf(stderr, "usage: floor drain|listen CONNINFO QUEUE "
		    "BATCH N HANDLER_SQL\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if ((pids = calloc((size_t)n, sizeof(pid_t))) == NULL)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < n; i++) {
		if ((pids[i] = fork()) == 0)
			_exit(run(argv[1][0] == 'l', argv[2], argv[3], argv[4],
			    argv[6]));
		if (pids[i] < 0) {
			perror("floor: fork");
			return 1;
		}
	}
	for (int i = 0; i < n; i++) {
		while (waitpid(pids[i], &status, 0) < 0) {
			if (errno != EINTR)
				return 1;
			if (stop)
				for (int k = 0; k < n; k++)
					kill(pids[k], SIGTERM);
		}
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	free(pids);
	return failed;
}
