"""The spool example task (plugins/spool): job files dropped into incoming/
are claimed by rename into work/<slot>/, processed by the built-in checksum
or by a command, and end in done/ or failed/ exactly once, however workers
are killed, stopped or restarted.

The plugin is PMHOST_SPOOL_PLUGIN, else BUILD/plugins/spool/spool.so.  Each
job's "done" debug line is written after its move into done/, so a job with
two such lines was completed twice: that is how double claims show.
"""

import collections
import json
import os
import random
import re
import shlex
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW  # noqa: E402

SPOOL_PLUGIN = os.path.abspath(
    os.environ.get("PMHOST_SPOOL_PLUGIN") or
    os.path.join(harness.BUILD, "plugins", "spool", "spool.so"))

DONE_RX = re.compile(r"spool: job (\S+) done: ", re.M)
RECOVERED_RX = re.compile(r"spool: recovering job (\S+) from ", re.M)
REQUEUED_RX = re.compile(r"spool: requeued job (\S+) left in ", re.M)


def fnv1a64(data):
    """The built-in's checksum: FNV-1a, 64 bits."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def result_line(data):
    return "%016x %d\n" % (fnv1a64(data), len(data))


def job_content(i):
    """Small, distinct, of varying length."""
    return ("job %05d %s\n" % (i, "abcdefgh"[i % 8] * (i % 61))).encode()


class SpoolTest(harness.PmTest):

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(SPOOL_PLUGIN),
                        "spool plugin not built: %s (set "
                        "PMHOST_SPOOL_PLUGIN)" % SPOOL_PLUGIN)
        self.spool = self.path("spool")
        self.slot_cache = {}

    # -- the spool --------------------------------------------------------

    def sub(self, *parts):
        return os.path.join(self.spool, *parts)

    def jobs_in(self, *parts):
        """Names of the jobs in spool/PARTS: neither hidden nor results."""
        try:
            names = os.listdir(self.sub(*parts))
        except FileNotFoundError:
            return set()
        return {n for n in names
                if not n.startswith(".") and not n.endswith(".sum")}

    def slots(self):
        try:
            return sorted(os.listdir(self.sub("work")))
        except FileNotFoundError:
            return []

    def claimed(self):
        """{slot: job names} of every work/<slot>/ holding jobs."""
        out = {}
        for slot in self.slots():
            names = self.jobs_in("work", slot)
            if names:
                out[slot] = names
        return out

    def write_file(self, path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def drop(self, n, content=job_content):
        """Writes n jobs into incoming/ (before the task runs: no need to
        write them under hidden names first); {name: content}."""
        jobs = {}
        for i in range(n):
            name = "job-%05d" % i
            jobs[name] = content(i)
            self.write_file(self.sub("incoming", name), jobs[name])
        return jobs

    def all_done(self, jobs):
        return (not self.jobs_in("incoming") and not self.claimed() and
                len(self.jobs_in("done")) + len(self.jobs_in("failed")) ==
                len(jobs))

    def where(self, jobs):
        """{name: [directories holding it]} over the whole spool."""
        out = {name: [] for name in jobs}
        dirs = ["incoming", "done", "failed"] + \
            [os.path.join("work", s) for s in self.slots()]
        for d in dirs:
            for name in self.jobs_in(d):
                out.setdefault(name, []).append(d)
        return out

    def assert_each_once(self, jobs, allowed):
        """Every job in exactly one directory, one of allowed; no others."""
        where = self.where(jobs)
        wrong = sorted((n, w) for n, w in where.items()
                       if len(w) != 1 or not any(w[0] == a or
                                                 w[0].startswith(a + "/")
                                                 for a in allowed))
        self.assertEqual(wrong[:10], [], "%d jobs not in exactly one of %s"
                         % (len(wrong), allowed))

    def assert_done(self, jobs, results=True):
        """Every job in done/ exactly once, intact, with a right result."""
        self.assert_each_once(jobs, ["done"])
        self.assertEqual(self.jobs_in("done"), set(jobs))
        bad = []
        for name, data in sorted(jobs.items()):
            if self.read_bytes(self.sub("done", name)) != data:
                bad.append((name, "content changed"))
            if results:
                got = self.read_bytes(self.sub("done", name + ".sum"))
                if got != result_line(data).encode():
                    bad.append((name, got, result_line(data)))
        self.assertEqual(bad[:5], [], "%d jobs wrong" % len(bad))
        done = os.listdir(self.sub("done"))
        self.assertEqual([n for n in done if n.startswith(".")], [],
                         "temporary files left in done/")
        sums = [n for n in done if n.endswith(".sum")]
        self.assertEqual(len(sums), len(jobs) if results else 0)

    def read_bytes(self, path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    # -- the task ---------------------------------------------------------

    def spool_config(self, workers, batch=10, usleep=1000, command=None,
                     params=None, **keys):
        """A resident spool task logging every job (debug)."""
        if params is None:
            params = {"dir": self.spool, "batch": batch}
            if command is not None:
                params["command"] = command
        cfg = {"plugin": SPOOL_PLUGIN, "baseTitle": self.title,
               "maxWorkerNum": workers, "executeTimes": 0,
               "executeUSleep": usleep, "logLevel": "debug",
               "params": params}
        cfg.update(keys)
        path = self.path("spool.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def slot_of(self, pid):
        """The slot of a worker, from its open work/<slot> directory."""
        slot = self.slot_cache.get(pid)
        prefix = self.sub("work") + "/"
        if slot is None:
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                    if t.startswith(prefix) and t[len(prefix):].isdigit():
                        slot = self.slot_cache[pid] = t[len(prefix):]
            except OSError:
                pass
        return slot

    def pick_victim(self, rng, budget=0.005):
        """A random worker, rather one whose slot holds a job: it is most
        likely in the middle of one.  On a fast filesystem a job takes
        microseconds and a worker sleeps most of the time, so this watches
        the slots for up to budget seconds for one."""
        live = self.workers()
        end = time.monotonic() + budget
        while live:
            busy = set(self.claimed())
            holding = [w for w in live if self.slot_of(w) in busy]
            if holding or time.monotonic() > end:
                return rng.choice(holding or live)
        return None

    def state(self):
        return "incoming/ %d, work/ %s, done/ %d, failed/ %d" % (
            len(self.jobs_in("incoming")),
            {s: len(n) for s, n in self.claimed().items()},
            len(self.jobs_in("done")), len(self.jobs_in("failed")))

    def wait_spool(self, cond, what, p, timeout=10):
        """wait_for, failing with the spool's state and the log's last
        lines (the whole debug log would bury them)."""
        try:
            return self.wait_for(cond, what, timeout=timeout)
        except self.failureException as e:
            lines = [line for line in self.output(p).splitlines()
                     if " debug " not in line]
            raise self.failureException(
                "%s\nspool: %s\n--- pmhost log, debug lines left out ---"
                "\n%s" % (e, self.state(), "\n".join(lines[-40:]))) \
                from None

    def wait_all_done(self, jobs, p, timeout=10):
        self.wait_spool(lambda: self.all_done(jobs),
                        "all %d jobs out of incoming/ and work/" % len(jobs),
                        p, timeout)

    def stop(self, cfg, p):
        self.pm("stop", cfg, check=0)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))

    def done_counts(self, *procs):
        return collections.Counter(
            m.group(1) for p in procs
            for m in DONE_RX.finditer(self.output(p)))

    def assert_no_errors(self, p):
        errors = [line for line in self.output(p).splitlines()
                  if " error " in line or " warning " in line]
        self.assertEqual(errors, [])

    # -- tests ------------------------------------------------------------

    def test_every_job_done_exactly_once_despite_random_kills(self):
        n = 10000
        jobs = self.drop(n)
        # At most 8 x 10 jobs per 10 ms: over a second however fast the
        # machine, so that a few dozen kills land.
        cfg = self.spool_config(workers=8, batch=10, usleep=10000)
        seed = random.randrange(1 << 32)
        rng = random.Random(seed)
        t0 = time.monotonic()
        p = self.run_fg(cfg)

        # Kill while there is something left to claim.
        kills = 0
        deadline = t0 + 60 * SLOW
        while self.jobs_in("incoming"):
            if time.monotonic() > deadline:
                self.fail("jobs left after %.0f s (%d kills, seed %d): %s" %
                          (60 * SLOW, kills, seed, self.state()))
            time.sleep(rng.uniform(0.02, 0.1))
            victim = self.pick_victim(rng)
            if victim is not None:
                try:
                    os.kill(victim, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
        # What the last victims held is recovered by their slots' next
        # workers.
        self.wait_all_done(jobs, p,
                           timeout=max(5, 60 - (time.monotonic() - t0)))
        elapsed = time.monotonic() - t0
        self.stop(cfg, p)

        self.assertEqual(self.jobs_in("failed"), set())
        self.assert_done(jobs)
        out = self.output(p)
        counts = self.done_counts(p)
        twice = sorted(name for name, c in counts.items() if c > 1)
        self.assertEqual(twice, [], "jobs completed more than once "
                         "(seed %d)" % seed)
        # A worker killed between the move into done/ and its log line
        # leaves a job without one; no more than one per kill.
        self.assertLessEqual(n - len(counts), kills)
        recovered = len(RECOVERED_RX.findall(out))
        requeued = len(REQUEUED_RX.findall(out))
        sys.stderr.write("\n  %d jobs, 8 workers, %.1f s, %d kills, %d jobs "
                         "recovered, %d requeued (seed %d) ... " %
                         (n, elapsed, kills, recovered, requeued, seed))
        self.assertGreaterEqual(kills, 5, "too few kills to mean anything")
        self.assertGreaterEqual(recovered + requeued, 1,
                                "no kill found a job in hand")

    def test_jobs_left_at_each_crash_point_are_finished_once(self):
        # The states a worker killed at each step leaves behind, by hand.
        jobs = self.drop(20)
        # Killed right after the claim.
        jobs["a-claimed"] = b"claimed, nothing else\n"
        self.write_file(self.sub("work", "0", "a-claimed"), jobs["a-claimed"])
        # Killed while writing its result.
        jobs["b-writing"] = b"result half written\n"
        self.write_file(self.sub("work", "0", "b-writing"), jobs["b-writing"])
        self.write_file(self.sub("done", ".b-writing.sum.tmp"), b"0123")
        # Killed after the result was in place, before the job moved.
        jobs["c-result"] = b"result in place\n"
        self.write_file(self.sub("work", "0", "c-result"), jobs["c-result"])
        self.write_file(self.sub("done", "c-result.sum"),
                   result_line(jobs["c-result"]).encode())
        # Claimed by a slot that does not run any more.
        for name in ("d-orphan", "e-orphan"):
            jobs[name] = name.encode() + b" of slot 6\n"
            self.write_file(self.sub("work", "6", name), jobs[name])
        self.write_file(self.sub("done", ".d-orphan.sum.tmp"), b"")

        # One worker: slot 0 recovers its own, nobody else's slot can.
        cfg = self.spool_config(workers=1, batch=3, usleep=10000)
        p = self.run_fg(cfg)
        self.wait_all_done(jobs, p)
        self.stop(cfg, p)

        self.assert_done(jobs)
        out = self.output(p)
        self.assertEqual(sorted(RECOVERED_RX.findall(out)),
                         ["a-claimed", "b-writing", "c-result"])
        self.assertEqual(sorted(REQUEUED_RX.findall(out)),
                         ["d-orphan", "e-orphan"])
        self.assertEqual(self.done_counts(p), collections.Counter(list(jobs)))
        self.assert_no_errors(p)

    def test_command_runs_once_per_job_and_its_jobs_end_in_done(self):
        jobs = self.drop(400)
        out, ledger = self.path("out"), self.path("ledger")
        os.mkdir(out)
        # One short append per run: atomic, so concurrent runs never mix.
        cmd = 'cp "$1" %s/ && echo "$1" >> %s' % (shlex.quote(out),
                                                  shlex.quote(ledger))
        cfg = self.spool_config(workers=4, batch=5, usleep=1000,
                                command=cmd)
        p = self.run_fg(cfg)
        self.wait_all_done(jobs, p, timeout=30)
        self.stop(cfg, p)

        self.assert_done(jobs, results=False)
        for name, data in jobs.items():
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(), data, name)
        with open(ledger) as f:
            runs = f.read().splitlines()
        # $1 is the job's path in its slot's work directory.
        for path in runs:
            self.assertRegex(path, r"^%s/work/[0-3]/job-\d{5}$" %
                             re.escape(self.spool))
        per_job = collections.Counter(os.path.basename(r) for r in runs)
        self.assertEqual(per_job, collections.Counter(list(jobs)),
                         "the command runs exactly once per job")
        self.assertEqual(self.done_counts(p), collections.Counter(list(jobs)))
        self.assert_no_errors(p)

    def test_jobs_whose_command_fails_end_in_failed(self):
        def content(i):
            return ("%s %d\n" % ("bad" if i % 3 == 0 else "good", i)).encode()
        jobs = self.drop(150, content)
        bad = {n for n, data in jobs.items() if data.startswith(b"bad")}
        cfg = self.spool_config(workers=3, batch=4, usleep=1000,
                                command='! grep -q bad "$1"')
        p = self.run_fg(cfg)
        self.wait_all_done(jobs, p, timeout=30)
        self.stop(cfg, p)

        self.assert_each_once(jobs, ["done", "failed"])
        self.assertEqual(self.jobs_in("failed"), bad)
        self.assertEqual(self.jobs_in("done"), set(jobs) - bad)
        for name in bad:
            with open(self.sub("failed", name), "rb") as f:
                self.assertEqual(f.read(), jobs[name])
        failed_lines = re.findall(r" warning \S+: spool: job (\S+) failed: "
                                  r"command exited 1$", self.output(p),
                                  re.M)
        self.assertEqual(sorted(failed_lines), sorted(bad))
        self.assertEqual(set(self.done_counts(p)), set(jobs) - bad)

    def test_stop_during_processing_loses_nothing(self):
        jobs = self.drop(3000)
        # 4 workers x 5 jobs per 20 ms at most: the stop comes mid-run.
        cfg = self.spool_config(workers=4, batch=5, usleep=20000)
        p = self.run_fg(cfg)
        self.wait_spool(lambda: len(self.jobs_in("done")) >= 300,
                        "300 jobs done", p)
        self.stop(cfg, p)

        self.assertEqual(self.workers(), [])
        self.assert_each_once(jobs, ["incoming", "work", "done"])
        self.assertTrue(self.jobs_in("incoming"), "the stop came too late")
        # Workers finish the job in hand before they exit.
        self.assertEqual(self.claimed(), {})

        p2 = self.run_fg(cfg)
        self.wait_all_done(jobs, p2, timeout=30)
        self.stop(cfg, p2)

        self.assert_done(jobs)
        self.assertEqual(self.done_counts(p, p2),
                         collections.Counter(list(jobs)))
        self.assert_no_errors(p)
        self.assert_no_errors(p2)

    def test_restart_hands_each_slot_over_without_losing_a_job(self):
        # The replacements' work_init runs while the old workers are busy
        # with jobs in their slots' directories (a slow command keeps them
        # there): it must leave those alone.
        jobs = self.drop(240)
        ledger = self.path("ledger")
        cfg = self.spool_config(workers=4, batch=2, usleep=5000,
                                command='sleep 0.05; echo "$1" >> %s' %
                                shlex.quote(ledger))
        p = self.run_fg(cfg, workers=4)
        old = self.workers()
        self.wait_spool(lambda: len(self.jobs_in("done")) >= 40,
                        "40 jobs done", p)
        t = time.monotonic()
        self.pm("restart", cfg, check=0)
        restart_s = time.monotonic() - t
        self.wait_spool(lambda: not set(self.workers()) & set(old),
                        "every old worker replaced", p)
        self.assertTrue(self.jobs_in("incoming"), "the restart came late "
                        "(it took %.1f s)" % restart_s)
        sys.stderr.write("restart took %.2f s ... " % restart_s)
        self.wait_all_done(jobs, p, timeout=30)
        self.stop(cfg, p)

        self.assert_done(jobs, results=False)
        with open(ledger) as f:
            runs = collections.Counter(os.path.basename(line)
                                       for line in f.read().splitlines())
        self.assertEqual(runs, collections.Counter(list(jobs)),
                         "the command runs exactly once per job")
        self.assertEqual(self.done_counts(p), collections.Counter(list(jobs)))
        self.assert_no_errors(p)
        out = self.output(p)
        self.assertEqual(RECOVERED_RX.findall(out), [])
        self.assertEqual(REQUEUED_RX.findall(out), [])

    def test_bad_params_are_refused_naming_the_key(self):
        cases = [
            ({"batch": 2}, r"spool: params\.dir: required"),
            ({"dir": "spool"}, r"spool: params\.dir: must be an absolute "
             r"path"),
            ({"dir": self.spool, "batch": 0}, r"spool: params\.batch: must "
             r"be an integer from 1 to 10000, got 0"),
            ({"dir": self.spool, "batch": "5"}, r"spool: params\.batch: "
             r"must be an integer"),
            ({"dir": self.spool, "commnd": "true"}, r"spool: "
             r"params\.commnd: unknown key"),
            ({"dir": self.spool, "command": 7}, r"spool: params\.command: "
             r"must be a string or null"),
            # Escaped in params: \t, \u0001 (and UTF-8 as is).
            ({"dir": self.spool + "/\u00e9t\u00e9\U0001f600/x\ty\x01"}, None),
        ]
        for params, rx in cases:
            with self.subTest(params=params):
                # Run once: the master exits when its worker has.
                cfg = self.spool_config(1, params=params, executeTimes=1,
                                        checkWorkerInterval=0)
                p = self.start("run", cfg)
                rc = self.wait_exit(p)
                if rx is None:
                    # Escaped text decodes to the very path asked for.
                    self.assertEqual(rc, 0, self.output(p))
                    self.assertTrue(os.path.isdir(
                        os.path.join(params["dir"], "done")))
                else:
                    self.assertEqual(rc, 1)
                    self.assertRegex(self.output(p), rx)


if __name__ == "__main__":
    harness.main()
