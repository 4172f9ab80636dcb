#!/usr/bin/env python3
"""bench/bench_pgqueue.py - the PostgreSQL job queue plugin's figures, each
next to its reference measured in the same run:

  throughput  12 workers, a trivial SQL handler (SELECT $2): jobs/s of
              pmhost + pgqueue.so against the floor, a plain libpq program
              (plugins/pgqueue/bench/floor.c) running the same claim-
              handle-commit loop with 12 connections.  Target >= 0.8x.
  latency     enqueue -> handler start on an idle queue (12 workers waiting
              on LISTEN), against the floor program listening the same
              way.  Targets: p50 <= 2 ms, p99 <= 10 ms.

    python3 bench/bench_pgqueue.py [--quick] --pmhost PATH \\
        --plugin-dir DIR --out SCRATCHDIR

It starts its own PostgreSQL (initdb + pg_ctl as nobody, Unix socket in
SCRATCHDIR only), builds the floor with cc and libpq, and kills everything
it started, by pid.  Both throughput figures come from the database's own
timestamps: jobs / (last finished_at - first started_at).  Latencies are
measured in the database too: the payload carries clock_timestamp() of
the enqueue statement, the handler subtracts it from its own.
Ends with "SUMMARY passed=N failed=N skipped=N".
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "pgqueue", "tests"))
import pgserver  # noqa: E402

FLOOR_SRC = os.path.join(ROOT, "plugins", "pgqueue", "bench", "floor.c")
WORKERS = 12
TRIVIAL = "SELECT $2"
LATENCY = ("INSERT INTO bench.lat (job_id, ms) VALUES ($2, "
           "(extract(epoch FROM clock_timestamp()) - ($1->>'t')::float8)"
           " * 1000)")

STARTED = []        # Popen of every process started here


def log(msg):
    print(msg, flush=True)


def note(msg):
    print("  " + msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------- processes

def become_subreaper():
    """Orphans of what we start (workers of a master, the floor's
    children) come back to us, so that cleanup() finds them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except OSError:
        pass


def spawn(argv, env=None, out=None):
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                         stdout=out or subprocess.DEVNULL,
                         stderr=subprocess.STDOUT if out else
                         subprocess.DEVNULL)
    STARTED.append(p)
    return p


def descendants():
    """Our live descendants' pids."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if rest[0] != "Z":
            parent[int(d)] = int(rest[1])
    me, out = os.getpid(), []
    for pid in parent:
        p = pid
        while p in parent and p != me and p > 1:
            p = parent[p]
        if p == me and pid != me:
            out.append(pid)
    return out


def cleanup(pg):
    if pg is not None:
        pg.stop()
    for p in STARTED:
        if p.poll() is None:
            p.kill()
    for _ in range(3):
        for pid in descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for p in STARTED:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
    return descendants()


def wait_for(cond, what, timeout, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %.0f s waiting for %s" %
                               (timeout, what))
        time.sleep(every)


# ----------------------------------------------------------- the runs

class Bench:

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.pg = None
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PMHOST_", "NOTIFY_SOCKET"))}
        self.env["PMHOST_RUNDIR"] = os.path.join(self.out, "run")
        self.floor = os.path.join(self.out, "pgqueue-floor")
        d = os.path.abspath(args.plugin_dir)
        self.plugin = next((p for p in (os.path.join(d, "pgqueue.so"),
                                        os.path.join(d, "pgqueue",
                                                     "pgqueue.so"))
                            if os.path.exists(p)), None)

    def sql(self, query, timeout=120):
        return self.pg.psql(query, timeout=timeout)

    def setup(self):
        why = pgserver.available()
        if why is None and self.plugin is None:
            why = "pgqueue.so not found in %s" % self.args.plugin_dir
        if why is None and shutil.which("cc") is None:
            why = "no C compiler for the floor"
        if why is not None:
            return why
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs",
                                "libpq"], stdout=subprocess.PIPE,
                               text=True, check=True).stdout.split()
        subprocess.run(["cc", "-O2", "-o", self.floor, FLOOR_SRC] + flags,
                       check=True)
        # Commits as a queue usually runs them: not waiting for the disk
        # flush (synchronous_commit off), durable to the last few ms.
        self.pg = pgserver.PgServer(os.path.join(self.out, "pg"), {
            "synchronous_commit": "off", "max_connections": "100"})
        self.pg.init()
        self.pg.start()
        return None

    def task(self, name, handler, batch):
        cfg = {"plugin": self.plugin, "baseTitle": name,
               "maxWorkerNum": WORKERS, "executeTimes": 0,
               "executeUSleep": 0, "logLevel": "warning",
               "params": {"conninfo": self.pg.conninfo, "queue": name,
                          "batch": batch, "handler": {"sql": handler}}}
        path = os.path.join(self.out, name + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def waiting(self, app, n):
        """Waits until n sessions whose application_name starts with app
        wait for a notification (idle, after their last look)."""
        q = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' "
             "AND application_name LIKE '%s%%' AND (query LIKE 'LISTEN%%' "
             "OR query LIKE '%%min(run_at)%%' OR query = 'COMMIT')" % app)
        wait_for(lambda: int(self.sql(q)) >= n, "%d %s sessions" % (n, app),
                 60)

    def start_pmhost(self, name, handler, batch):
        cfg = self.task(name, handler, batch)
        logf = open(os.path.join(self.out, name + ".log"), "w")
        p = spawn([self.args.pmhost, "run", cfg], env=self.env, out=logf)
        logf.close()
        self.waiting("pmhost pgqueue %s " % name, WORKERS)
        return p

    def stop_pmhost(self, name, p):
        subprocess.run([self.args.pmhost, "stop", "--title", name],
                       env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def start_floor(self, mode, queue, batch, handler):
        logf = open(os.path.join(self.out, "floor-%s.log" % queue), "a")
        p = spawn([self.floor, mode, self.pg.conninfo, queue, str(batch),
                   str(WORKERS), handler], out=logf)
        logf.close()
        return p

    def enqueue(self, queue, n):
        self.sql("SELECT count(pgqueue.enqueue('%s', jsonb_build_object("
                 "'n', g))) FROM generate_series(1, %d) g" % (queue, n))

    def jobs_per_s(self, queue, n):
        r = self.sql("SELECT count(*), extract(epoch FROM max(finished_at)"
                     " - min(started_at)) FROM pgqueue.jobs WHERE "
                     "queue = '%s' AND state = 'done'" % queue)
        done, secs = r.split("|")
        if int(done) != n:
            raise RuntimeError("%s: %s of %d jobs done" % (queue, done, n))
        return n / float(secs)

    def done(self, queue, n):
        return int(self.sql("SELECT count(*) FROM pgqueue.jobs WHERE "
                            "queue = '%s' AND state = 'done'" % queue)) >= n

    def reset(self):
        self.sql("TRUNCATE pgqueue.jobs")
        self.sql("VACUUM ANALYZE pgqueue.jobs")

    def throughput(self, batch, n, reps):
        """[pmhost jobs/s], [floor jobs/s] over reps alternating runs."""
        name = "tp%d" % batch
        pm, fl = [], []
        # The floor's claim needs the plugin's schema: the master makes it.
        p = self.start_pmhost(name, TRIVIAL, batch)
        try:
            for rep in range(reps):
                self.reset()
                self.enqueue(name, n)
                # Rare looks: each psql takes CPU from the run measured.
                wait_for(lambda: self.done(name, n), "pmhost's jobs", 300,
                         every=0.5)
                pm.append(self.jobs_per_s(name, n))
                note("batch %d rep %d: pmhost %.0f jobs/s" %
                     (batch, rep, pm[-1]))
                # The floor alone on the database: pmhost's workers are
                # stopped for its run, and started again after.
                self.stop_pmhost(name, p)
                p = None
                self.reset()
                self.enqueue(name + "f", n)
                f = self.start_floor("drain", name + "f", batch, TRIVIAL)
                # The same looks as at pmhost's runs, for the same cost.
                wait_for(lambda: f.poll() is not None or
                         self.done(name + "f", n), "the floor's jobs", 300,
                         every=0.5)
                if f.wait(timeout=60) != 0:
                    raise RuntimeError("the floor failed")
                fl.append(self.jobs_per_s(name + "f", n))
                note("batch %d rep %d: floor  %.0f jobs/s" %
                     (batch, rep, fl[-1]))
                p = self.start_pmhost(name, TRIVIAL, batch)
        finally:
            if p is not None:
                self.stop_pmhost(name, p)
        return pm, fl

    def latency_run(self, queue, samples):
        """Enqueues one job at a time, 20 ms apart; handler start delays,
        in ms, in order."""
        self.sql("TRUNCATE bench.lat")
        script = "".join(
            "SELECT pgqueue.enqueue('%s', jsonb_build_object('t', "
            "extract(epoch FROM clock_timestamp())));\n"
            "SELECT pg_sleep(0.02);\n" % queue for _ in range(samples))
        r = subprocess.run(
            [os.path.join(pgserver.PGBIN, "psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-d", self.pg.conninfo, "-f", "-"],
            input=script, env=self.pg.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("enqueue: " + r.stderr)
        wait_for(lambda: int(self.sql("SELECT count(*) FROM bench.lat")) ==
                 samples, "%d latency samples" % samples, 60)
        return [float(x) for x in
                self.sql("SELECT ms FROM bench.lat ORDER BY job_id").split()]

    def latency(self, samples, reps):
        """{"pmhost": [(p50, p99)...], "floor": [...]} per run."""
        self.sql("CREATE SCHEMA IF NOT EXISTS bench; CREATE TABLE IF NOT "
                 "EXISTS bench.lat (job_id bigint PRIMARY KEY, "
                 "ms float8 NOT NULL)")
        out = {"pmhost": [], "floor": []}
        for rep in range(reps):
            p = self.start_pmhost("lat", LATENCY, 1)
            try:
                ms = self.latency_run("lat", samples)
            finally:
                self.stop_pmhost("lat", p)
            out["pmhost"].append(percentiles(ms))
            f = self.start_floor("listen", "latf", 1, LATENCY)
            try:
                self.waiting("pgqueue-floor", WORKERS)
                ms = self.latency_run("latf", samples)
            finally:
                f.terminate()
                f.wait(timeout=30)
            out["floor"].append(percentiles(ms))
            note("latency rep %d: pmhost p50 %.2f p99 %.2f ms, floor p50 "
                 "%.2f p99 %.2f ms" % ((rep,) + out["pmhost"][-1] +
                                       out["floor"][-1]))
        return out


def percentiles(ms):
    s = sorted(ms)
    return (s[len(s) // 2], s[min(len(s) - 1, int(len(s) * 0.99))])


def row(name, pm, ref, better, target, met):
    """A table row: median (min-max) of pmhost and reference, the ratio of
    the medians, the target and whether pmhost met it."""
    m, r = statistics.median(pm), statistics.median(ref)
    return ("%-34s %9.2f (%8.2f-%8.2f) %9.2f (%8.2f-%8.2f) %6.2f  %-12s %s"
            % (name, m, min(pm), max(pm), r, min(ref), max(ref), m / r,
               target, "yes" if met(m, r) else "NO (" + better + ")"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pmhost", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.pmhost = os.path.abspath(args.pmhost)
    become_subreaper()
    b = Bench(args)
    passed = failed = skipped = 0
    rows = []
    try:
        why = b.setup()
    except Exception:
        traceback.print_exc()
        why, failed = None, 3
    if why is not None:
        log("pgqueue benchmark skipped: " + why)
        log("SUMMARY passed=0 failed=0 skipped=3")
        return 0
    n, reps = (4000, 2) if args.quick else (20000, 5)
    samples, lreps = (100, 1) if args.quick else (400, 3)
    batches = (10,) if args.quick else (1, 10)
    if not failed:
        for batch in batches:
            try:
                pm, fl = b.throughput(batch, n, reps)
                rows.append(row("throughput, batch %d (jobs/s)" % batch,
                                pm, fl, "slower than 0.8x the floor",
                                ">= 0.8x", lambda m, r: m >= 0.8 * r))
                passed += 1
            except Exception:
                traceback.print_exc()
                failed += 1
        try:
            lat = b.latency(samples, lreps)
            for i, (name, limit) in enumerate((("p50", 2.0), ("p99", 10.0))):
                rows.append(row("enqueue->handler %s (ms)" % name,
                                [x[i] for x in lat["pmhost"]],
                                [x[i] for x in lat["floor"]],
                                "over %.0f ms" % limit, "<= %.0f ms" % limit,
                                lambda m, r, lim=limit: m <= lim))
            passed += 2
        except Exception:
            traceback.print_exc()
            failed += 2
    left = cleanup(b.pg)
    log("")
    log("pgqueue: %d workers, trivial SQL handler; PostgreSQL %s with "
        "synchronous_commit=off; %s" % (
            WORKERS, "15", "quick" if args.quick else
            "%d jobs x %d runs, %d latency samples x %d runs" %
            (n, reps, samples, lreps)))
    log("%-34s %-30s %-30s %6s  %-12s %s" % (
        "figure", "pmhost median (min-max)", "floor median (min-max)",
        "ratio", "target", "met"))
    for r in rows:
        log(r)
    if left:
        log("processes left behind: %s" % left)
        failed += 1
    log("SUMMARY passed=%d failed=%d skipped=%d" % (passed, failed, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
