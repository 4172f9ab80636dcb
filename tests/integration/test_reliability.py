"""Reliability: the hung-call watchdog (workTimeout), memory recycling
(maxRssMb), the privilege drop (user / group), orphans adopted by the
master as subreaper or as PID 1 of a pid namespace, and where workers'
stdout and stderr go.  Each test drives the real binary with the recorder
fixture and checks what a user sees: the log, the process table, status.
"""

import os
import re
import signal
import subprocess
import time

import harness
from harness import NOBODY, SETPRIV_NOBODY


def proc_status(pid):
    """/proc/PID/status as a dict of its fields (text after the colon)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        return None
    return out


def zombie_children(ppid):
    """Pids of zombies whose parent is ppid."""
    out = []
    for pid in harness.all_pids():
        st = harness.proc_stat(pid)
        if st is not None and st[0] == "Z" and st[1] == ppid:
            out.append(pid)
    return out


def pid_ns(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


class ReliabilityTest(harness.PmTest):

    def stop(self, p):
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))

    def require_root(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: the privilege drop is root-only")

    def share_events_with_nobody(self):
        """Lets a worker running as nobody append to the events file."""
        os.chmod(self.tmp, 0o755)
        with open(self.path("events"), "w"):
            pass
        os.chmod(self.path("events"), 0o666)


class WorkTimeoutTest(ReliabilityTest):

    def test_hung_call_is_terminated_after_work_timeout_and_slot_respawned(self):
        cfg = self.record_config(params={"hang_at": 3}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=50000,
                                 workTimeout=1)
        p = self.run_fg(cfg, workers=1)
        calls = self.wait_events("call", 3, proc=p)
        hung = calls[2]
        self.wait_text(p, r"exited: workTimeout", timeout=10)
        out = self.output(p)

        m = re.search(r"worker (\d+) \(pid (\d+)\): work\(\) call (\d+) has "
                      r"run ([\d.]+) s, over workTimeout 1 s; terminating it",
                      out)
        self.assertIsNotNone(m, out)
        self.assertEqual((int(m.group(1)), int(m.group(2)), int(m.group(3))),
                         (0, hung["pid"], 3), out)
        self.assertGreaterEqual(float(m.group(4)), 1.0, out)

        ex = [e for e in self.exits(out) if int(e["pid"]) == hung["pid"]]
        self.assertEqual(len(ex), 1, out)
        slot, reason, plan = int(ex[0]["slot"]), ex[0]["reason"], ex[0]["plan"]
        self.assertEqual(slot, 0)
        rm = re.match(r"workTimeout: call 3 ran ([\d.]+) s, killed$", reason)
        self.assertIsNotNone(rm, reason)
        self.assertGreaterEqual(float(rm.group(1)), 1.0, reason)
        self.assertIn("respawning", plan)

        # TERM is not enough for a call stuck in pause(): KILL after 1 s.
        self.assertRegex(out, r"worker 0 \(pid %d\) still running after "
                         r"workTimeout's grace period" % hung["pid"])
        inits = self.wait_for(
            lambda: [e for e in self.events("init") if e["t"] > hung["t"]],
            "a replacement worker's work_init", proc=p)
        self.assertNotEqual(inits[0]["pid"], hung["pid"])
        self.assertEqual(inits[0]["slot"], 0)
        # Lower bound strict: workTimeout plus the grace; upper generous.
        gap = inits[0]["t"] - hung["t"]
        self.assertGreaterEqual(gap, 2.0, "replaced after %.2f s" % gap)
        self.assertLess(gap, 8.0 * harness.SLOW, "replaced after %.2f s" % gap)
        self.assertFalse(harness.alive(hung["pid"]))
        self.wait_for(lambda: len(self.workers()) == 1, "one worker again",
                      proc=p)
        self.stop(p)

    def test_repeatedly_hanging_worker_backs_off(self):
        # Every worker hangs in its first call: a crash loop, throttled.
        cfg = self.record_config(params={"hang_at": 1}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=10000,
                                 workTimeout=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_text(p, r"exited: workTimeout: call 1 ran [\d.]+ s, "
                       r"killed; respawning in [\d.]+ s \(2 failures in a "
                       r"row\)", timeout=12)
        st = self.master_json()
        self.assertGreaterEqual(st["workers"][0]["failures"], 2, st)
        self.assertIn("workTimeout", st["workers"][0]["last_exit"], st)
        self.stop(p)

    def test_worker_sleeping_between_calls_is_not_killed_by_work_timeout(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=3000000, workTimeout=1)
        p = self.run_fg(cfg, workers=1)
        calls = self.wait_events("call", 2, timeout=10, proc=p)
        self.assertEqual(calls[0]["pid"], calls[1]["pid"])
        self.assertGreaterEqual(calls[1]["t"] - calls[0]["t"], 3.0)
        out = self.output(p)
        self.assertNotIn("workTimeout", out)
        self.assertEqual(self.exits(out), [])
        self.assertEqual(self.workers(), [calls[0]["pid"]])
        self.stop(p)

    def test_slow_call_that_finishes_within_work_timeout_is_not_killed(self):
        cfg = self.record_config(params={"sleep_ms": 500}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=10000,
                                 workTimeout=1)
        p = self.run_fg(cfg, workers=1)
        calls = self.wait_events("call", 5, timeout=10, proc=p)
        self.assertEqual(len({c["pid"] for c in calls}), 1, calls)
        out = self.output(p)
        self.assertNotIn("workTimeout", out)
        self.assertEqual(self.exits(out), [])
        self.stop(p)


class MaxRssTest(ReliabilityTest):

    def test_worker_over_max_rss_finishes_normally_and_is_replaced(self):
        cfg = self.record_config(params={"leak_kb": 20480}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=20000,
                                 maxRssMb=60)
        p = self.run_fg(cfg, workers=1)
        largest = [0]

        def recycled():
            for pid in self.workers():
                rss = (proc_status(pid) or {}).get("VmRSS", "0 kB")
                largest[0] = max(largest[0], int(rss.split()[0]))
            return re.search(r"exited: over maxRssMb", self.output(p))
        try:
            self.wait_for(recycled, "a worker exit over maxRssMb",
                          timeout=6, proc=p)
        except AssertionError as e:
            # Tell a fixture that allocates nothing from a pmhost fault.
            self.fail("%s\nafter %d calls of leak_kb 20480 the largest "
                      "worker RSS seen was %d KiB%s" %
                      (e, len(self.events("call")), largest[0],
                       ": the recorder's leak_kb allocated nothing" if
                       largest[0] < 40 * 1024 else ""))
        out = self.output(p)
        first = self.events("init")[0]["pid"]

        ex = [e for e in self.exits(out) if int(e["pid"]) == first]
        self.assertEqual(len(ex), 1, out)
        slot, reason, plan = int(ex[0]["slot"]), ex[0]["reason"], ex[0]["plan"]
        self.assertEqual(slot, 0)
        m = re.match(r"over maxRssMb \(RSS (\d+\.\d) MiB\) after (\d+) "
                     r"calls", reason)
        self.assertIsNotNone(m, reason)
        self.assertGreater(float(m.group(1)), 60, reason)
        # 20 MiB a call: 60 MiB is passed after the third call or so.
        self.assertGreaterEqual(int(m.group(2)), 2, reason)
        self.assertLessEqual(int(m.group(2)), 4, reason)
        self.assertEqual(plan, "respawning now")

        # It ended normally: work_fini ran, after its last call.
        finis = [e for e in self.events("fini") if e["pid"] == first]
        self.assertEqual(len(finis), 1, self.events())
        self.assertEqual(finis[0]["calls"], int(m.group(2)))
        nxt = self.wait_for(
            lambda: [e for e in self.events("init") if e["pid"] != first],
            "a replacement worker", proc=p)
        self.assertEqual(nxt[0]["slot"], 0)
        self.assertLess(nxt[0]["t"] - finis[0]["t"], 2.0 * harness.SLOW)
        self.assertNotIn("right after work_init", out)
        self.stop(p)

    def test_worker_over_max_rss_right_after_init_is_warned_once_not_recycled(self):
        # Any worker holds more than 1 MiB before its first call; one
        # recycled for it would end after its first call, not its third.
        cfg = self.record_config(maxWorkerNum=2, executeTimes=3,
                                 executeUSleep=20000, maxRssMb=1)
        p = self.run_fg(cfg, workers=2)
        self.wait_events("fini", 8, proc=p)
        self.wait_for(lambda: len(self.exits(p)) >= 6,
                      "six worker exits", proc=p)
        out = self.output(p)
        warnings = re.findall(r"right after work_init\(\) is already above "
                              r"maxRssMb 1", out)
        self.assertEqual(len(warnings), 1, out)
        self.assertRegex(out, r"warning process_m:Worker:%s#\d+\[\d+\]: slot \d: "
                         r"RSS \d+\.\d MiB right after work_init" % self.title)
        for x in self.exits(out):
            self.assertRegex(x["reason"],
                             r"^reached executeTimes after 3 calls")
            self.assertEqual(x["plan"], "respawning now")
        for ev in self.events("fini"):
            self.assertEqual(ev["calls"], 3, self.events())
        self.stop(p)


class PrivilegeDropTest(ReliabilityTest):

    def assert_ids(self, pid, uid, gid, groups):
        st = proc_status(pid)
        self.assertIsNotNone(st, "pid %d gone" % pid)
        self.assertEqual(st["Uid"].split(), [str(uid)] * 4, st["Uid"])
        self.assertEqual(st["Gid"].split(), [str(gid)] * 4, st["Gid"])
        self.assertEqual(sorted(int(g) for g in st["Groups"].split()),
                         sorted(groups), st["Groups"])

    def run_as_root_with_groups(self, cfg):
        # The master carries supplementary groups of its own (adm, sudo):
        # a worker that kept them would show here.
        p = self.spawn(["setpriv", "--groups", "4,27", harness.PMHOST, "run",
                        cfg])
        self.wait_for(lambda: len(self.workers()) >= 2, "2 workers", proc=p)
        return p

    def test_workers_run_as_user_with_its_groups(self):
        self.require_root()
        self.share_events_with_nobody()
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=100000, user="nobody")
        p = self.run_as_root_with_groups(cfg)
        self.wait_events("call", 2, proc=p)
        master = self.masters()
        self.assertEqual(len(master), 1)
        self.assert_ids(master[0], 0, 0, [4, 27])
        for pid in self.workers():
            self.assert_ids(pid, NOBODY, NOBODY, [NOBODY])
        # The plugin ran as nobody: its events carry the workers' pids.
        self.assertTrue({e["pid"] for e in self.events("init")} &
                        set(self.workers()))
        self.stop(p)

    def test_workers_take_group_over_users_primary_group(self):
        self.require_root()
        self.share_events_with_nobody()
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=100000, user=str(NOBODY),
                                 group="daemon")
        p = self.run_as_root_with_groups(cfg)
        self.wait_events("call", 2, proc=p)
        for pid in self.workers():
            self.assert_ids(pid, NOBODY, 1, [1])
        self.stop(p)

    def test_group_alone_changes_gid_and_groups_not_uid(self):
        self.require_root()
        self.share_events_with_nobody()
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=100000, group="nogroup")
        p = self.run_as_root_with_groups(cfg)
        self.wait_events("call", 2, proc=p)
        for pid in self.workers():
            self.assert_ids(pid, 0, NOBODY, [NOBODY])
        self.stop(p)

    def test_workers_running_as_user_die_with_their_master(self):
        # The drop clears PR_SET_PDEATHSIG: it must be set again after it.
        self.require_root()
        self.share_events_with_nobody()
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=100000, user="nobody")
        p = self.run_fg(cfg, workers=2)
        workers = self.workers()
        for pid in workers:
            self.assert_ids(pid, NOBODY, NOBODY, [NOBODY])
        os.kill(self.masters()[0], signal.SIGKILL)
        t0 = time.monotonic()
        self.wait_gone(workers, "workers of a SIGKILLed master gone",
                       timeout=5)
        self.assertLess(time.monotonic() - t0, 2.0 * harness.SLOW)
        self.wait_exit(p)

    def test_unknown_user_or_group_is_a_config_error_and_starts_nothing(self):
        self.require_root()
        for key, value in (("user", "no_such_user_pmhost"),
                           ("group", "no_such_group_pmhost")):
            for cmd in ("run", "check"):
                with self.subTest(key=key, cmd=cmd):
                    cfg = self.record_config(**{key: value})
                    r = self.pm(cmd, cfg, timeout=10)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    lines = r.stderr.splitlines()
                    self.assertEqual(len(lines), 1, r.stderr)
                    self.assertTrue(lines[0].startswith("pmhost: "), lines)
                    self.assertIn(cfg, lines[0])
                    self.assertIn('%s: unknown %s "%s"' % (key, key, value),
                                  lines[0])
                    self.assertEqual(r.stdout, "")
                    self.assertEqual(self.tagged_pids(), [])
                    self.assertFalse(os.path.exists(os.path.join(
                        self.rundir, self.title + ".pid")))
                    self.assertEqual(self.events(), [])

    def test_user_refused_when_pmhost_is_not_root(self):
        self.require_root()
        # nobody can read the config and create its own run dir.
        os.chmod(self.tmp, 0o711)
        home = self.path("nobody")
        os.mkdir(home)
        os.chown(home, NOBODY, NOBODY)
        self.env["PMHOST_RUNDIR"] = os.path.join(home, "run")
        for cmd in ("run", "check"):
            with self.subTest(cmd=cmd):
                cfg = self.config(user="nobody", maxWorkerNum=1)
                r = subprocess.run(SETPRIV_NOBODY + [harness.PMHOST, cmd, cfg],
                                   env=self.env, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True,
                                   timeout=10 * harness.SLOW)
                self.assertEqual(r.returncode, 2, r.stderr)
                lines = r.stderr.splitlines()
                self.assertEqual(len(lines), 1, r.stderr)
                self.assertRegex(lines[0], r"^pmhost: .*user: can only be "
                                 r"set when pmhost runs as root")
                self.assertIn(cfg, lines[0])
                self.assertEqual(self.tagged_pids(), [])
                self.assertFalse(os.path.exists(os.path.join(
                    home, "run", self.title + ".pid")))


class OrphanTest(ReliabilityTest):

    def test_orphans_are_reaped_and_not_taken_for_workers(self):
        cfg = self.record_config(params={"orphan_ms": 1000}, maxWorkerNum=2,
                                 executeTimes=0, executeUSleep=100000)
        p = self.run_fg(cfg, "--log-level", "debug", workers=2)
        master = self.masters()[0]
        orphans = self.wait_events("orphan", 2, proc=p)
        workers = self.workers()
        self.assertEqual(len(workers), 2)
        opids = [int(e["extra"]) for e in orphans]
        for pid in opids:
            st = harness.proc_stat(pid)
            self.assertIsNotNone(st, "orphan %d already gone" % pid)
            self.assertEqual(st[1], master, "orphan %d not adopted by the "
                             "master" % pid)
            self.assertNotIn(pid, workers)
        # Once they exit, the master reaps them: no zombie, no pid left.
        self.wait_for(lambda: all(harness.proc_stat(pid) is None
                                  for pid in opids),
                      "orphans %s reaped" % opids, proc=p)
        self.assertEqual(zombie_children(master), [])
        for pid in opids:
            self.assertRegex(self.output(p),
                             r"reaped pid %d \(not a worker\)" % pid)
        # The workers were not disturbed by their orphans' exits.
        self.assertEqual(self.workers(), workers)
        out = self.output(p)
        self.assertEqual(self.exits(out), [], out)
        st = self.master_json()
        self.assertEqual(st["count"], 2, st)
        self.assertEqual(sorted(w["pid"] for w in st["workers"]), workers)
        self.stop(p)

    def test_long_lived_orphan_is_killed_at_stop(self):
        cfg = self.record_config(params={"orphan_ms": 60000}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=100000)
        p = self.run_fg(cfg, workers=1)
        master = self.masters()[0]
        orphan = int(self.wait_events("orphan", 1, proc=p)[0]["extra"])
        self.assertEqual(harness.proc_stat(orphan)[1], master)
        self.assertEqual(self.master_json()["count"], 1)
        self.stop(p)
        self.wait_gone([orphan], "orphan %d killed at stop" % orphan)
        self.assertRegex(self.output(p), r"killing pid %d, left behind by a "
                         r"worker" % orphan)
        self.wait_for(lambda: self.tagged_pids() == [],
                      "nothing of the task left")


class Pid1Test(ReliabilityTest):

    def unshare(self):
        argv = ["unshare", "--pid", "--fork", "--mount-proc"]
        try:
            r = subprocess.run(argv + ["true"], capture_output=True,
                               timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.skipTest("unshare unavailable: %s" % e)
        if r.returncode != 0:
            self.skipTest("unshare --pid not permitted here: %s" %
                          r.stderr.decode(errors="replace").strip())
        return argv

    def test_master_as_pid1_reaps_orphans_and_stops_on_sigterm(self):
        argv = self.unshare()
        cfg = self.record_config(params={"orphan_ms": 500}, maxWorkerNum=2,
                                 executeTimes=0, executeUSleep=100000)
        p = self.spawn(argv + [harness.PMHOST, "run", cfg])
        self.wait_for(lambda: len(self.masters()) == 1 and
                      len(self.workers()) == 2, "master and 2 workers",
                      proc=p)
        master = self.masters()[0]
        nspid = proc_status(master)["NSpid"].split()
        self.assertEqual(nspid[-1], "1", "master is not PID 1: %s" % nspid)
        ns = pid_ns(master)
        workers = self.workers()

        # Each worker leaves an orphan that ends after 0.5 s.  Then the
        # namespace holds the master and its workers, and no zombie.
        orphans = self.wait_events("orphan", 2, proc=p)
        self.assertEqual(len({e["extra"] for e in orphans}), 2, orphans)
        spawner = [q for q in harness.children_all(master)
                   if harness.is_spawner(q)]
        expected = sorted([master] + workers + spawner)
        self.wait_for(lambda: sorted(q for q in harness.all_pids()
                                     if pid_ns(q) == ns) == expected,
                      "only the master and its workers in the namespace",
                      proc=p)
        self.assertEqual(zombie_children(master), [])
        self.assertEqual(self.masters(), [master])

        os.kill(master, signal.SIGTERM)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertRegex(self.output(p), r"stopping \(SIGTERM\)")
        self.wait_for(lambda: self.tagged_pids() == [], "nothing left")
        self.assertFalse(os.path.exists(os.path.join(
            self.rundir, self.title + ".pid")))
        self.assertFalse(os.path.exists(os.path.join(
            self.rundir, self.title + ".sock")))

    def test_stop_from_outside_the_namespace_returns_once_master_is_gone(self):
        # The pid file of a master in a pid namespace holds its pid there,
        # 1: stop must still tell when that master is gone (by its lock).
        argv = self.unshare()
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 stopTimeout=1)
        p = self.spawn(argv + [harness.PMHOST, "run", cfg])
        self.wait_for(lambda: len(self.workers()) == 1, "a worker", proc=p)
        self.assertEqual(self.read(os.path.join(
            self.rundir, self.title + ".pid")).strip(), "1")
        t0 = time.monotonic()
        r = self.pm("stop", "--title", self.title, "--timeout", "4")
        took = time.monotonic() - t0
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertEqual((r.returncode, r.stderr), (0, ""),
                         "stop took %.1f s" % took)
        self.assertLess(took, 3.0 * harness.SLOW)


class WorkerOutputTest(ReliabilityTest):
    """What a plugin writes to stdout and stderr becomes log lines of its
    worker: time, level (stdout info, stderr warning), title and pid."""

    def output_line(self, stream, call):
        return (r"^\S+ %s process_m:Worker:%s#\d+\[\d+\]: recorder %s call %d$"
                % ("info" if stream == "stdout" else "warning",
                   re.escape(self.title), stream, call))

    def test_worker_stdout_and_stderr_reach_foreground_output(self):
        cfg = self.record_config(params={"print": 1}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=100000)
        p = self.run_fg(cfg, workers=1)
        self.wait_text(p, self.output_line("stdout", 2))
        self.wait_text(p, self.output_line("stderr", 2))
        self.stop(p)

    def detached_output_lands_in(self, cfg, log):
        r = self.pm("run", cfg, "-d", check=0, timeout=10)
        # One line: what started, and where its log is.
        self.assertRegex(r.stdout, r"^%s: started \(pid \d+, 1 worker; log "
                         "%s\)\n$" % (re.escape(self.title), re.escape(log)))
        self.assertNotIn("recorder", r.stderr)
        self.wait_text(log, self.output_line("stdout", 2))
        self.wait_text(log, self.output_line("stderr", 2))
        self.assertRegex(self.read(log), r"started: 1 worker ")
        self.pm("stop", "--title", self.title, check=0)
        self.wait_for(lambda: self.tagged_pids() == [], "master gone")

    def test_detached_worker_stdout_and_stderr_go_to_run_dir_log(self):
        cfg = self.record_config(params={"print": 1}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=100000)
        self.detached_output_lands_in(
            cfg, os.path.join(self.rundir, self.title + ".log"))

    def test_detached_worker_stdout_and_stderr_go_to_log_file(self):
        log = self.path("task.log")
        cfg = self.record_config(params={"print": 1}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=100000,
                                 logFile=log)
        self.detached_output_lands_in(cfg, log)
        self.assertFalse(os.path.exists(os.path.join(
            self.rundir, self.title + ".log")))


if __name__ == "__main__":
    harness.main()
