"""The PostgreSQL job queue plugin (plugins/pgqueue), against a real
PostgreSQL that the suite starts itself: initdb and pg_ctl as nobody, in a
scratch dir, listening on a Unix socket there and nowhere else.  One
server serves the whole suite; each test works in a database of its own,
where the plugin creates its SQL API.

The main scenario stands three masters with run dirs of their own in for
three hosts, and takes 20 000 jobs through them while workers, a whole
master and the database itself are killed: every job's ledger row must be
there once, and no handler may ever have run on a job already done (a
unique violation in a log would say so).

The plugin is PMHOST_PGQUEUE_PLUGIN, else BUILD/plugins/pgqueue/pgqueue.so;
without it or without PostgreSQL the suite is skipped.
"""

import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE, "plugins", "pgqueue",
                                "tests"))
import pgserver  # noqa: E402

PGQUEUE = os.path.abspath(
    os.environ.get("PMHOST_PGQUEUE_PLUGIN") or
    os.path.join(harness.BUILD, "plugins", "pgqueue", "pgqueue.so"))
# The plugin's whole life in one process that exits normally (tests/drive.c)
DRIVE = os.path.join(os.path.dirname(PGQUEUE), "pgqueue-drive")
# What a sanitizer build's reports start with.
SANITIZER_RX = r"ERROR: (Address|Leak)Sanitizer|runtime error:"

OUTAGE_RX = re.compile(r"\[(\d+)\]: pgqueue: (lost the connection to|"
                       r"cannot connect to) ", re.M)
# Sessions waiting for work: their last statement looked for scheduled
# jobs, which is what a worker does right before it waits on LISTEN.
IDLE_SQL = ("SELECT count(*) FROM pg_stat_activity WHERE datname = "
            "current_database() AND state = 'idle' AND "
            "query LIKE '%%min(run_at)%%' AND application_name LIKE "
            "'pmhost pgqueue %s %%'")
SESSIONS_SQL = ("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND application_name LIKE "
                "'pmhost pgqueue %%'")

HANDLER_SH = """#!/bin/sh
# Records each run, then succeeds, fails, or sleeps on the first attempt.
payload=$(cat)
printf '%%s %%s %%s %%s\\n' "$PGQUEUE_JOB_ID" "$PGQUEUE_ATTEMPT" \\
    "$(date +%%s.%%N)" "$payload" >> %(out)s
case "$payload" in
*fail*) echo "no good: $payload" >&2; exit 4;;
*slow*) [ "$PGQUEUE_ATTEMPT" = 1 ] && exec sleep 60;;
esac
exit 0
"""


def grep(text, pattern, most=5):
    """The first lines of text matching pattern: what a failure shows."""
    rx = re.compile(pattern)
    return [line for line in text.splitlines() if rx.search(line)][:most]


class PgQueueTest(harness.PmTest):
    pg = None

    @classmethod
    def setUpClass(cls):
        why = pgserver.available()
        if why is None and not os.path.exists(PGQUEUE):
            why = "pgqueue plugin not built (no libpq?): %s" % PGQUEUE
        if why is not None:
            raise unittest.SkipTest(why)
        cls.pgroot = tempfile.mkdtemp(prefix="pmhost-pg-")
        cls.addClassCleanup(shutil.rmtree, cls.pgroot, True)
        # Speed over durability: the tests crash processes, not machines.
        cls.pg = pgserver.PgServer(os.path.join(cls.pgroot, "pg"), {
            "fsync": "off", "synchronous_commit": "off",
            "full_page_writes": "off"})
        cls.addClassCleanup(cls.pg.stop)
        cls.pg.init()
        cls.pg.start()

    def setUp(self):
        super().setUp()
        self.pg.ensure_started()    # an earlier test may have stopped it
        self.db = "d_" + self.title.lower()
        self.pg.psql("CREATE DATABASE %s" % self.db)
        self.conninfo = self.pg.conninfo_for(self.db)

    def tearDown(self):
        # In a sanitizer build, workers' reports land in the masters' logs.
        for p in self.popens:
            self.assertEqual(grep(self.output(p), SANITIZER_RX), [])
        super().tearDown()

    # -- the database ------------------------------------------------------

    def sql(self, query):
        return self.pg.psql(query, db=self.db)

    def count(self, query):
        return int(self.sql(query) or 0)

    def rows(self, query):
        out = self.sql(query)
        return [line.split("|") for line in out.splitlines()] if out else []

    def enqueue(self, payload, queue="q", run_at="now()"):
        return self.count("SELECT pgqueue.enqueue('%s', '%s', %s)" %
                          (queue, json.dumps(payload).replace("'", "''"),
                           run_at))

    def job(self, job_id):
        """{state, attempts, last_error, end_s, worker} of one job; end_s:
        seconds from its creation to its end (or its latest start)."""
        r = self.rows("SELECT state, attempts, coalesce(last_error, ''), "
                      "extract(epoch FROM coalesce(finished_at, "
                      "started_at) - created_at), "
                      "coalesce(worker, '') FROM pgqueue.jobs "
                      "WHERE id = %d" % job_id)
        self.assertEqual(len(r), 1, "job %d" % job_id)
        state, attempts, err, end_s, worker = r[0]
        return {"state": state, "attempts": int(attempts),
                "last_error": err, "end_s": float(end_s or 0),
                "worker": worker}

    def wait_state(self, job_id, state, proc=None, timeout=15):
        self.wait_for(lambda: self.job(job_id)["state"] == state,
                      "job %d %s" % (job_id, state), timeout=timeout,
                      proc=proc)
        return self.job(job_id)

    def wait_idle(self, n, queue="q", proc=None):
        """Waits until n workers of queue wait for a notification."""
        self.wait_for(lambda: self.count(IDLE_SQL % queue) >= n,
                      "%d workers of queue %s waiting" % (n, queue),
                      proc=proc)

    # -- the task ----------------------------------------------------------

    def task(self, handler, workers=2, name="task.json", params=None,
             **keys):
        """A resident pgqueue task on this test's database and queue q."""
        prm = {"conninfo": self.conninfo, "queue": "q", "handler": handler}
        prm.update(params or {})
        cfg = {"plugin": PGQUEUE, "baseTitle": self.title,
               "maxWorkerNum": workers, "executeTimes": 0,
               "executeUSleep": 0, "params": prm}
        cfg.update(keys)
        path = self.path(name)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def handler_script(self):
        """A command handler recording each run in self.path('runs')."""
        path = self.write("handler.sh", HANDLER_SH %
                          {"out": self.path("runs")})
        os.chmod(path, 0o755)
        return path

    def runs(self):
        """Runs the handler script recorded: (job id, attempt, time,
        payload) tuples."""
        out = []
        for line in self.read(self.path("runs")).splitlines():
            job, attempt, t, payload = line.split(" ", 3)
            out.append((int(job), int(attempt), float(t),
                        json.loads(payload)))
        return out

    def workers_of(self, master):
        """Live workers forked by master (their titles set)."""
        return [p for p in harness.children(master)
                if (harness.proc_cmdline(p) or "").endswith(
                    ":Worker:" + self.title)]

    def cpu_seconds(self, pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf(
            "SC_CLK_TCK")

    def stop_task(self, proc, env=None):
        self.pm("stop", "--title", self.title, env=env, check=0)
        self.assertEqual(self.wait_exit(proc), 0, self.output(proc))

    def assert_no_sessions_left(self):
        self.wait_for(lambda: self.count(SESSIONS_SQL) == 0,
                      "the workers' sessions closed")


class TestManyHosts(PgQueueTest):

    N = 20000

    def host_env(self, i):
        env = dict(self.env)
        env["PMHOST_RUNDIR"] = self.path("host%d/run" % i)
        return env

    def ledger(self):
        return self.count("SELECT count(*) FROM ledger")

    def at(self, done, what):
        """Waits until the ledger holds `done` rows, and checks that the
        run is not over: what follows happens mid-run."""
        self.wait_for(lambda: self.ledger() >= done,
                      "%d ledger rows before %s" % (done, what),
                      timeout=60)
        left = self.N - self.ledger()
        self.assertGreater(left, 0, "the run ended before " + what)
        sys.stderr.write("  %s at %d jobs done\n" % (what, self.N - left))

    def test_twenty_thousand_jobs_on_three_hosts_each_handled_once(self):
        self.sql("CREATE TABLE ledger (job_id bigint PRIMARY KEY, "
                 "n integer NOT NULL UNIQUE, "
                 "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        # The sleep makes the run last long enough for the kills and the
        # outage to land mid-run, and keeps transactions open when they do.
        self.sql("CREATE FUNCTION handle(p jsonb, id bigint) RETURNS void "
                 "LANGUAGE plpgsql AS $$ BEGIN "
                 "INSERT INTO ledger (job_id, n) "
                 "VALUES (id, (p->>'n')::integer); "
                 "PERFORM pg_sleep(0.006); END $$")
        cfg = self.task({"sql": "SELECT handle($1, $2)"}, workers=4,
                        params={"batch": 4, "waitMs": 500},
                        stopTimeout=20)
        envs = [self.host_env(i) for i in range(3)]
        procs = [self.start("run", cfg, env=e) for e in envs]
        masters = []
        for i, e in enumerate(envs):
            masters.append(self.wait_for(lambda: self.master_on(e),
                                         "host %d's master" % i,
                                         proc=procs[i]))
            self.wait_for(lambda: len(self.workers_of(masters[i])) == 4,
                          "host %d's 4 workers" % i, proc=procs[i])
        self.wait_idle(12, proc=procs[0])
        seed = random.randrange(1 << 32)
        rng = random.Random(seed)
        sys.stderr.write("  seed %d\n" % seed)

        self.assertEqual(self.count(
            "SELECT count(pgqueue.enqueue('q', jsonb_build_object('n', g)))"
            " FROM generate_series(1, %d) g" % self.N), self.N)

        self.at(2000, "SIGKILL of 3 workers")
        self.kill_workers(rng, masters, 3)

        self.at(5000, "SIGKILL of host 1's master")
        old = self.workers_of(masters[1])
        os.kill(masters[1], signal.SIGKILL)
        self.wait_gone([masters[1]] + old, "host 1's master and workers "
                       "gone")
        procs.append(self.start("run", cfg, env=envs[1]))
        self.wait_for(lambda: self.master_on(envs[1]) not in
                      (None, masters[1]), "host 1's new master",
                      proc=procs[-1])
        masters[1] = self.master_on(envs[1])
        self.wait_for(lambda: len(self.workers_of(masters[1])) == 4,
                      "host 1's new workers", proc=procs[-1])

        self.at(8000, "a 3 s database outage")
        self.addCleanup(self.pg.ensure_started)
        self.pg.stop()
        down = time.monotonic()
        self.wait_for(lambda: len(OUTAGE_RX.findall(self.logs(procs))) > 0
                      and time.monotonic() - down >= 3,
                      "workers seeing the outage", timeout=20)
        self.pg.start()

        self.at(12000, "SIGKILL of 3 more workers")
        self.kill_workers(rng, masters, 3)

        self.wait_for(lambda: self.ledger() == self.N and self.count(
            "SELECT count(*) FROM pgqueue.jobs WHERE state <> 'done'") == 0,
            "all %d jobs done" % self.N, timeout=90)

        # Each job once in the ledger, by its own id, on its first and
        # only recorded attempt: no failure was ever recorded.
        self.assertEqual(self.count(
            "SELECT count(*) FROM pgqueue.jobs j JOIN ledger l "
            "ON l.job_id = j.id AND l.n = (j.payload->>'n')::integer "
            "WHERE j.state = 'done' AND j.attempts = 1"), self.N)
        self.assertEqual(self.count(
            "SELECT count(DISTINCT n) FROM ledger "
            "WHERE n BETWEEN 1 AND %d" % self.N), self.N)
        self.assertEqual(self.rows("SELECT ready, scheduled, running, done,"
                                   " failed FROM pgqueue.stats"),
                         [["0", "0", "0", str(self.N), "0"]])
        self.assertGreaterEqual(self.count(
            "SELECT count(DISTINCT worker) FROM pgqueue.jobs"), 12)

        for i, e in enumerate(envs):
            self.pm("stop", "--title", self.title, env=e, check=0)
        for p in procs:
            self.wait_exit(p)
        logs = self.logs(procs)
        self.assertEqual(grep(logs, r"duplicate key|unique constraint"), [])
        self.assertEqual(grep(self.pg.server_log(),
                              r"duplicate key|unique constraint"), [])
        self.assertEqual(grep(logs, r"pgqueue: job \d+ failed"), [])
        self.assertRegex(logs, r"pgqueue: connected to database %s on "
                         r"\S+ again after" % self.db)
        # One line when an outage starts, not one per reconnection attempt.
        per_pid = collections.Counter(OUTAGE_RX.findall(logs))
        self.assertEqual([k for k, v in per_pid.items() if v > 1], [])
        self.assertEqual(self.pids_titled("Worker"), [])
        self.assertEqual(self.pids_titled("Master"), [])
        self.assert_no_sessions_left()

    def master_on(self, env):
        try:
            return int(self.read(self.pid_file(
                rundir=env["PMHOST_RUNDIR"])).strip())
        except ValueError:
            return None

    def kill_workers(self, rng, masters, n):
        live = [p for m in masters for p in self.workers_of(m)]
        victims = rng.sample(live, n)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        self.wait_gone(victims, "killed workers gone")

    def logs(self, procs):
        return "".join(self.output(p) for p in procs)


class TestHandlers(PgQueueTest):

    def test_sql_handler_failures_retry_with_backoff_then_fail(self):
        self.sql("CREATE TABLE ledger (job_id bigint PRIMARY KEY)")
        self.sql("CREATE FUNCTION handle(p jsonb, id bigint) RETURNS void "
                 "LANGUAGE plpgsql AS $$ BEGIN "
                 "INSERT INTO ledger VALUES (id); "
                 "IF p ? 'bad' THEN "
                 "RAISE EXCEPTION 'cannot handle job %', id; END IF; "
                 "END $$")
        cfg = self.task({"sql": "SELECT handle($1, $2)"}, workers=2,
                        params={"batch": 5, "maxAttempts": 3,
                                "retryDelayMs": 300,
                                "retryMaxDelayMs": 400})
        p = self.run_fg(cfg, workers=2)
        self.wait_idle(2, proc=p)
        # One bad job among good ones in the same batches: the good ones'
        # handler runs are rolled back with it, and redone, once.
        good = [self.enqueue({"n": i}) for i in range(4)]
        bad = self.enqueue({"bad": True})
        good += [self.enqueue({"n": i}) for i in range(4, 8)]

        job = self.wait_state(bad, "failed", proc=p)

        self.assertEqual(job["attempts"], 3)
        self.assertIn("cannot handle job %d" % bad, job["last_error"])
        # Two delays before the last attempt: 300 ms, then 400 (capped).
        self.assertGreaterEqual(job["end_s"], 0.7 - 0.05)
        self.assertEqual(self.count("SELECT count(*) FROM ledger"),
                         len(good))
        self.assertEqual(self.count(
            "SELECT count(*) FROM pgqueue.jobs WHERE state = 'done' "
            "AND attempts = 1"), len(good))
        log = self.output(p)
        for attempt in (1, 2):
            self.assertRegex(log, r"pgqueue: job %d failed \(attempt %d of "
                             r"3\): ERROR: cannot handle job %d \(SQLSTATE "
                             r"P0001\); retry in" % (bad, attempt, bad))
        self.assertRegex(log, r"job %d failed for good after 3 attempts" %
                         bad)
        # A failed job can be put back by hand, with its attempts reset.
        self.sql("CREATE OR REPLACE FUNCTION handle(p jsonb, id bigint) "
                 "RETURNS void LANGUAGE sql AS $$ "
                 "INSERT INTO ledger VALUES (id) $$")
        self.assertEqual(self.sql("SELECT pgqueue.retry(%d)" % bad), "t")
        self.assertEqual(self.wait_state(bad, "done", proc=p)["attempts"],
                         1)
        self.stop_task(p)

    def test_command_handler_gets_the_payload_on_stdin(self):
        script = self.handler_script()
        cfg = self.task({"command": [script]}, workers=3,
                        params={"maxAttempts": 2, "retryDelayMs": 300})
        p = self.run_fg(cfg, workers=3)
        self.wait_idle(3, proc=p)
        ids = {self.enqueue({"n": i, "text": "caf\u00e9 'x'"}): i
               for i in range(30)}
        bad = self.enqueue({"fail": "please"})

        self.wait_for(lambda: self.count(
            "SELECT count(*) FROM pgqueue.jobs WHERE state = 'done'") ==
            len(ids), "30 jobs done", proc=p)
        job = self.wait_state(bad, "failed", proc=p)

        runs = self.runs()
        good = [r for r in runs if r[0] in ids]
        self.assertEqual(sorted((r[0], r[1], r[3]["n"]) for r in good),
                         sorted((j, 1, n) for j, n in ids.items()))
        self.assertTrue(all(r[3]["text"] == "caf\u00e9 'x'" for r in good))
        tries = sorted(r for r in runs if r[0] == bad)
        self.assertEqual([r[1] for r in tries], [1, 2])
        self.assertGreaterEqual(tries[1][2] - tries[0][2], 0.3 - 0.05)
        self.assertEqual(job["attempts"], 2)
        self.assertEqual(job["last_error"],
                         'exit 4: no good: {"fail": "please"}')
        self.stop_task(p)

    def test_a_command_whose_worker_is_killed_runs_again(self):
        script = self.handler_script()
        cfg = self.task({"command": [script]}, workers=2,
                        params={"retryDelayMs": 100})
        p = self.run_fg(cfg, workers=2)
        self.wait_idle(2, proc=p)
        slow = self.enqueue({"slow": True})
        # Committed as running, with who runs it, while the command runs.
        job = self.wait_state(slow, "running", proc=p)
        self.wait_for(lambda: len(self.runs()) == 1, "the command started",
                      proc=p)
        victim = int(job["worker"].rsplit(":", 1)[1])
        sleeper = [c for c in harness.children(victim)]
        self.assertEqual(len(sleeper), 1)

        os.kill(victim, signal.SIGKILL)

        job = self.wait_state(slow, "done", proc=p)
        self.assertFalse(harness.alive(sleeper[0]), "the command outlived "
                         "its worker")
        self.assertEqual([(r[0], r[1]) for r in self.runs()],
                         [(slow, 1), (slow, 2)])
        self.assertEqual(job["attempts"], 2)
        self.assertRegex(job["last_error"], r"^worker lost: \S+:%d " %
                         victim)
        self.assertRegex(self.output(p), r"pgqueue: job %d: its worker "
                         r"\S+:%d is gone; job queued again" %
                         (slow, victim))
        self.stop_task(p)


class TestWaiting(PgQueueTest):

    def test_idle_workers_wake_on_notify_and_stop_promptly(self):
        self.sql("CREATE TABLE ledger (job_id bigint PRIMARY KEY, "
                 "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        # A poll every 30 s: only a notification can be this quick.
        cfg = self.task({"sql": "INSERT INTO ledger (job_id) VALUES ($2)"},
                        workers=4, params={"waitMs": 30000},
                        stopTimeout=30, workTimeout=60)
        p = self.run_fg(cfg, workers=4)
        self.wait_idle(4, proc=p)
        for i in range(3):
            job = self.enqueue({"i": i})
            self.wait_for(lambda: self.count(
                "SELECT count(*) FROM ledger WHERE job_id = %d" % job),
                "job %d handled" % job, timeout=2, proc=p)
            self.assertLess(float(self.sql(
                "SELECT extract(epoch FROM l.at - j.created_at) FROM "
                "ledger l JOIN pgqueue.jobs j ON j.id = l.job_id "
                "WHERE j.id = %d" % job)), 0.5 * SLOW)
            self.wait_idle(4, proc=p)
        workers = self.workers()

        t0 = time.monotonic()
        self.pm("stop", "--title", self.title, check=0)
        took = time.monotonic() - t0

        self.assertEqual(self.wait_exit(p), 0)
        self.assertLess(took, 2 * SLOW, "stop took %.1f s" % took)
        self.assertNotIn("SIGKILL", self.output(p))
        self.assertEqual(len([e for e in self.exits(p)
                              if e["reason"].startswith("stopped")]), 4)
        self.wait_gone(workers)
        self.assert_no_sessions_left()

    def test_a_scheduled_job_starts_at_its_time(self):
        self.sql("CREATE TABLE ledger (job_id bigint PRIMARY KEY, "
                 "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        cfg = self.task({"sql": "INSERT INTO ledger (job_id) VALUES ($2)"},
                        workers=2, params={"waitMs": 30000},
                        workTimeout=60)
        p = self.run_fg(cfg, workers=2)
        self.wait_idle(2, proc=p)
        job = self.enqueue({}, run_at="now() + interval '1.5 s'")
        self.wait_for(lambda: self.count("SELECT count(*) FROM ledger"),
                      "the scheduled job handled", timeout=5, proc=p)
        late = float(self.sql(
            "SELECT extract(epoch FROM l.at - j.run_at) FROM ledger l "
            "JOIN pgqueue.jobs j ON j.id = l.job_id WHERE j.id = %d" % job))
        self.assertGreaterEqual(late, 0)
        self.assertLess(late, 0.5 * SLOW)
        self.stop_task(p)


class TestConnection(PgQueueTest):

    def test_a_bad_conninfo_is_logged_once_and_retried_with_backoff(self):
        # A server that refuses each attempt, and logs it: a database
        # that does not exist.
        nope = "nope_" + self.db
        cfg = self.task({"sql": "SELECT 1"}, workers=2,
                        params={"conninfo": self.pg.conninfo_for(nope)})
        p = self.run_fg(cfg, workers=2)
        workers = sorted(self.workers())
        self.wait_for(lambda: len(re.findall("cannot connect to", self.output(
            p))) == 2, "both workers' error", proc=p)
        t0 = time.monotonic()
        # Long enough for backoff to reach seconds between attempts.
        self.wait_for(lambda: time.monotonic() - t0 >= 4, "4 s", timeout=6)

        log = self.output(p)
        self.assertRegex(log, r"pgqueue: cannot connect to database %s on "
                         r"\S+:5432: .*FATAL: database \"%s\" does not "
                         r"exist; retrying with backoff" % (nope, nope))
        self.assertEqual(len(re.findall("cannot connect to", log)), 2)
        attempts = self.pg.server_log().count(
            'database "%s" does not exist' % nope)
        # 0.1 s doubling: about 6 attempts each in 4 s (fewer on a slow
        # build: each failed connection takes its time); a spin makes
        # thousands, no retry makes 2.
        self.assertGreaterEqual(attempts, 2 * 2)
        self.assertLessEqual(attempts, 2 * 12)
        self.assertEqual(sorted(self.workers()), workers, "respawned")
        for pid in workers:
            self.assertLess(self.cpu_seconds(pid), 0.3 * SLOW)
        # The database comes into being: the workers find it by themselves.
        self.pg.psql("CREATE DATABASE %s" % nope)
        self.wait_for(lambda: len(re.findall(
            r"pgqueue: connected to database %s on \S+ after" % nope,
            self.output(p))) == 2, "both workers connected", timeout=10,
            proc=p)
        self.stop_task(p)

    def test_a_server_that_refuses_every_claim_is_one_outage(self):
        # The schema made by its owner; a role that may connect and read
        # the schema's version, but not touch the jobs.
        cfg = self.task({"sql": "SELECT 1"}, workers=1, name="owner.json")
        p = self.run_fg(cfg, workers=1)
        self.wait_idle(1, proc=p)
        self.stop_task(p)
        role = "r_" + self.db
        self.sql("CREATE ROLE %s LOGIN; GRANT USAGE ON SCHEMA pgqueue TO "
                 "%s; GRANT SELECT ON pgqueue.schema_version TO %s" %
                 (role, role, role))
        cfg = self.task({"sql": "SELECT 1"}, workers=2, params={
            "conninfo": self.conninfo.replace("user=%s" % pgserver.USER,
                                              "user=" + role)})
        p = self.run_fg(cfg, workers=2)
        self.wait_for(lambda: len(grep(self.output(p), "permission denied"))
                      == 2, "both workers' error", proc=p)
        t0 = time.monotonic()
        self.wait_for(lambda: time.monotonic() - t0 >= 4, "4 s", timeout=6)

        lines = grep(self.output(p), "pgqueue: ")
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"pgqueue: database %s on \S+: (rescuing|"
                         r"claiming) jobs: ERROR: permission denied for "
                         r"table jobs "
                         r"\(SQLSTATE 42501\); reconnecting with backoff" %
                         self.db)
        refused = self.pg.server_log().count(
            "permission denied for table jobs")
        self.assertGreaterEqual(refused, 2 * 4)
        self.assertLessEqual(refused, 2 * 12)

        self.sql("GRANT SELECT, UPDATE ON pgqueue.jobs TO %s" % role)
        self.wait_for(lambda: len(grep(self.output(p), r"pgqueue: connected "
                                       r"to database \S+ on \S+ after")) ==
                      2, "both workers over the outage", timeout=10, proc=p)
        job = self.enqueue({})
        self.wait_state(job, "done", proc=p)
        self.stop_task(p)

    def test_the_schema_is_made_once_and_a_newer_one_is_refused(self):
        cfg = self.task({"sql": "SELECT 1"}, workers=6)
        p = self.run_fg(cfg, workers=6)
        self.wait_idle(6, proc=p)
        self.assertEqual(self.rows("SELECT version FROM "
                                   "pgqueue.schema_version"), [["1"]])
        self.assertEqual(self.rows("SELECT * FROM pgqueue.stats"), [])
        self.stop_task(p)

        self.sql("INSERT INTO pgqueue.schema_version (version) VALUES (99)")
        p = self.run_fg(cfg, workers=6)
        self.wait_text(p, r"pgqueue: database %s on \S+: setting up the "
                       r"session: creating the SQL API: schema pgqueue is "
                       r"at version 99, newer than this pgqueue.so knows "
                       r"\(1\): upgrade the plugin" % self.db)
        self.stop_task(p)


class TestOutsidePmhost(PgQueueTest):
    """pgqueue.so driven by tests/drive.c, which returns from main() where
    a worker would _exit(): LeakSanitizer (a sanitizer build) checks what
    the plugin's whole life left behind, on every path it took."""

    def drive(self, handler, calls, **params):
        prm = {"conninfo": self.conninfo, "queue": "q", "waitMs": 20,
               "maxAttempts": 2, "retryDelayMs": 0, "handler": handler}
        prm.update(params)
        r = subprocess.run([DRIVE, PGQUEUE, json.dumps(prm), str(calls)],
                           env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120 * SLOW)
        self.assertEqual(grep(r.stderr, SANITIZER_RX), [])
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return r.stderr

    def test_a_whole_life_on_every_path_leaks_nothing(self):
        self.sql("CREATE TABLE ledger (job_id bigint PRIMARY KEY)")
        self.sql("CREATE FUNCTION handle(p jsonb, id bigint) RETURNS void "
                 "LANGUAGE plpgsql AS $$ BEGIN "
                 "INSERT INTO ledger VALUES (id); "
                 "IF p ? 'bad' THEN RAISE EXCEPTION 'bad job'; END IF; "
                 "RAISE NOTICE 'job % handled', id; END $$")
        # An idle life first, which makes the SQL API.
        self.drive({"sql": "SELECT handle($1, $2)"}, 2)
        self.sql("SELECT count(pgqueue.enqueue('q', jsonb_build_object("
                 "CASE WHEN g = 150 THEN 'bad' ELSE 'n' END, g))) "
                 "FROM generate_series(1, 300) g")
        log = self.drive({"sql": "SELECT handle($1, $2)"}, 100, batch=7)
        self.assertEqual(self.count("SELECT count(*) FROM ledger"), 299)
        self.assertEqual(self.rows("SELECT state, attempts FROM pgqueue.jobs"
                                   " WHERE payload ? 'bad'"),
                         [["failed", "2"]])
        self.assertIn("failed for good after 2 attempts", log)
        self.assertIn("server: NOTICE: job 1 handled", log)

        script = self.handler_script()
        for i in range(10):
            self.enqueue({"n": i}, queue="c")
        bad = self.enqueue({"fail": 1}, queue="c")
        self.drive({"command": [script]}, 40, queue="c")
        self.assertEqual(len(self.runs()), 10 + 2)
        self.assertEqual(self.job(bad)["state"], "failed")

        log = self.drive({"sql": "SELECT 1"}, 5,
                         conninfo=self.pg.conninfo_for("nope_" + self.db))
        self.assertEqual(len(grep(log, "cannot connect to")), 1, log)


class TestCheck(PgQueueTest):

    def check_fails(self, params, pattern, handler=None):
        prm = {"conninfo": self.conninfo,
               "handler": handler or {"sql": "SELECT 1"}}
        prm.update(params)
        prm = {k: v for k, v in prm.items() if v is not None}
        cfg = {"plugin": PGQUEUE, "baseTitle": self.title, "params": prm}
        path = self.write("check.json", json.dumps(cfg))
        r = self.pm("check", path, check=2)
        self.assert_one_error_line(r, r"pgqueue: " + pattern)

    def test_check_refuses_bad_params(self):
        self.check_fails({"conninfo": None}, r"params\.conninfo: required")
        self.check_fails({"conninfo": "hots=x"}, r"params\.conninfo: "
                         r"invalid connection option \"hots\"")
        self.check_fails({"queue": "no spaces"}, r"params\.queue: must be "
                         r"1 to 48 of A-Z a-z 0-9 _ \. -, got \"no spaces\"")
        self.check_fails({"batch": 0}, r"params\.batch: must be an integer "
                         r"from 1 to 1000, got 0")
        self.check_fails({"maxAttempts": "3"}, r"params\.maxAttempts: must "
                         r"be an integer from 1 to 1000, got \"3\"")
        self.check_fails({"retryDelayMs": 5000, "retryMaxDelayMs": 100},
                         r"params\.retryMaxDelayMs: must be at least "
                         r"retryDelayMs \(5000\), got 100")
        self.check_fails({"waitMs": 5}, r"params\.waitMs: must be an "
                         r"integer from 10 to 60000, got 5")
        self.check_fails({"handler": None}, r"params\.handler: required")
        self.check_fails({}, r"params\.handler: needs exactly one of "
                         r"\"sql\" and \"command\", got both",
                         handler={"sql": "SELECT 1", "command": ["/bin/true"]})
        self.check_fails({}, r"params\.handler\.command: must be a "
                         r"non-empty array", handler={"command": "/bin/true"})
        self.check_fails({}, r"params\.handler\.command\[0\]: %s/nope: No "
                         r"such file or directory" % re.escape(self.tmp),
                         handler={"command": ["./nope"]})
        self.check_fails({}, r"params\.handler\.command\[0\]: "
                         r"no-such-program-here: not found in PATH",
                         handler={"command": ["no-such-program-here"]})
        self.check_fails({"batch": 5}, r"params\.batch: a command handler "
                         r"takes one job at a time",
                         handler={"command": ["/bin/true"]})
        self.check_fails({"bacth": 5}, r"params\.bacth: unknown key")
        # And a good one passes, without a database in sight.
        cfg = self.task({"command": ["true"]},
                        params={"conninfo": "host=/nonexistent"})
        self.assertEqual(self.pm("check", cfg, check=0).stdout.splitlines()[-1],
                         "ok")


if __name__ == "__main__":
    harness.main()
