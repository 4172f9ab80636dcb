"""Stopping a master: `pmhost stop`, SIGTERM and SIGINT, stopTimeout, and
what is left of a task afterwards (nothing: no master, no worker, no
grandchild, no pid file)."""

import os
import re
import signal
import time

import harness
from harness import alive, proc_stat


class StopTest(harness.PmTest):

    def stop(self, *args, check=None):
        """Runs `pmhost stop ARGS`; (CompletedProcess, seconds taken)."""
        t0 = time.monotonic()
        r = self.pm("stop", *args, check=check)
        return r, time.monotonic() - t0


class TestStop(StopTest):

    def test_stop_returns_once_master_gone_pidfile_removed_no_worker(self):
        # work_fini takes 300 ms: the master outlives the SIGTERM by that
        # much, so a stop that returned on sending the signal would show.
        cfg = self.record_config(params={"fini_sleep_ms": 300},
                                 maxWorkerNum=3, executeTimes=0,
                                 executeUSleep=100000)
        p = self.run_fg(cfg, workers=3)
        workers = self.workers()
        with open(self.pid_file()) as f:
            self.assertEqual(int(f.read().strip()), p.pid)

        r, took = self.stop("--title", self.title, check=0)

        self.assertEqual(r.stderr, "")
        self.assertGreaterEqual(took, 0.3)
        self.assertFalse(alive(p.pid), "master still alive after stop")
        self.assertFalse(os.path.exists(self.pid_file()), "pid file left")
        self.assertEqual([w for w in workers if alive(w)], [])
        self.assertEqual(self.pids_titled("Worker"), [])
        self.assertEqual(self.wait_exit(p), 0)
        out = self.output(p)
        self.assertRegex(out, r"stopping \(stop command\): 3 workers to finish")
        self.assertRegex(out, r"stopped\n")
        self.assertEqual(sorted(e["pid"] for e in self.events("fini")),
                         sorted(workers))

    def test_stop_wakes_sleeping_workers_at_once(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=10000000)
        p = self.run_fg(cfg, workers=2)
        calls = self.wait_events("call", 2, proc=p)

        r, took = self.stop("--title", self.title, check=0)

        # Each worker sleeps 10 s between calls; a stop that waited for the
        # sleep to end would take that long.
        self.assertLess(took, 2.0 * harness.SLOW)
        self.assertEqual(self.wait_exit(p), 0)
        fini = self.events("fini")
        self.assertEqual(sorted(e["pid"] for e in fini),
                         sorted(e["pid"] for e in calls))
        self.assertEqual(len(self.events("call")), 2,
                         "a sleeping worker made another call on stop")

    def test_busy_worker_finishes_its_current_call_before_exiting(self):
        cfg = self.record_config(params={"sleep_ms": 500}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=0)
        p = self.run_fg(cfg, workers=1)
        first = self.wait_events("call", 1, proc=p)[0]

        stop_sent = time.monotonic()
        self.stop("--title", self.title, check=0)

        self.assertEqual(self.wait_exit(p), 0)
        calls = self.events("call")
        fini = self.events("fini")
        self.assertEqual(len(fini), 1, "no work_fini: %r" % self.events())
        last = calls[-1]
        self.assertEqual(fini[0]["pid"], first["pid"])
        self.assertEqual(last["pid"], first["pid"])
        # The call in progress ran its full 500 ms, was counted (fini's
        # calls field is pm_worker_calls()), and only then did work_fini run.
        self.assertGreaterEqual(fini[0]["t"] - last["t"], 0.5)
        self.assertEqual(fini[0]["calls"], len(calls))
        # No call began after the stop was asked for.
        self.assertLess(last["t"], stop_sent)

    def test_hung_work_is_killed_after_stop_timeout(self):
        cfg = self.record_config(params={"hang_at": 1}, maxWorkerNum=1,
                                 executeTimes=0, stopTimeout=1)
        p = self.run_fg(cfg, workers=1)
        hung = self.wait_events("call", 1, proc=p)[0]["pid"]

        r, took = self.stop("--title", self.title, check=0)

        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 5.0 * harness.SLOW)
        self.assertFalse(alive(hung))
        self.assertEqual(self.wait_exit(p), 0)
        out = self.output(p)
        self.assertIn("worker 0 (pid %d) still running after stopTimeout; "
                      "killing its process group" % hung, out)
        self.assertRegex(out, r"stopped\n")
        self.assertEqual(self.events("fini"), [])
        self.assertFalse(os.path.exists(self.pid_file()))

    def _stop_by_signal(self, sig, name):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0)
        p = self.run_fg(cfg, workers=2)
        workers = self.workers()

        p.send_signal(sig)

        self.assertEqual(self.wait_exit(p), 0)
        out = self.output(p)
        self.assertIn("stopping (%s): 2 workers to finish" % name, out)
        self.assertRegex(out, r"stopped\n")
        self.assertEqual([w for w in workers if alive(w)], [])
        self.assertFalse(os.path.exists(self.pid_file()))
        self.assertEqual(sorted(e["pid"] for e in self.events("fini")),
                         sorted(workers))

    def test_sigterm_stops_a_foreground_master_with_exit_0(self):
        self._stop_by_signal(signal.SIGTERM, "SIGTERM")

    def test_sigint_stops_a_foreground_master_with_exit_0(self):
        self._stop_by_signal(signal.SIGINT, "SIGINT")

    def test_sigterm_right_after_pid_file_appears_stops_cleanly(self):
        # `pmhost stop` finds a master as soon as its pid file is locked and
        # names it; a SIGTERM from then on must be a clean stop (exit 0,
        # pid file removed), however early it comes.  The window right
        # after the pid file appears is short, so try several starts and
        # watch the file without sleeping (still under a deadline).
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        pidfile = self.pid_file()
        end = time.monotonic() + 2.0  # a budget of tries, not a wait
        attempts = 0
        while attempts < 100 and (attempts < 10 or time.monotonic() < end):
            attempts += 1
            self.assertFalse(os.path.exists(pidfile))
            p = self.start("run", cfg)

            pid = self.signal_on_pid_file(pidfile, signal.SIGTERM, p)

            self.assertEqual(pid, p.pid)

            rc = self.wait_exit(p)
            self.assertEqual(
                (rc, os.path.exists(pidfile)), (0, False),
                "attempt %d: SIGTERM right after the pid file appeared: "
                "exit %d, pid file left: %s\n--- pmhost output ---\n%s" %
                (attempts, rc, os.path.exists(pidfile), self.output(p)))

    def test_stop_config_stops_the_task_it_names(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0)
        p = self.run_fg(cfg, workers=2)

        r, _ = self.stop(cfg, check=0)

        self.assertFalse(alive(p.pid))
        self.assertEqual(self.wait_exit(p), 0)
        self.assertEqual(self.pids_titled("Worker"), [])
        self.assertFalse(os.path.exists(self.pid_file()))

    def test_stop_of_a_title_not_running_exits_1(self):
        r, _ = self.stop("--title", self.title, check=1)
        # Where it looked, so a wrong PMHOST_RUNDIR or runDir shows.
        self.assertEqual(r.stderr, "pmhost: %s: not running (run dir %s)\n"
                         % (self.title, self.rundir))
        self.assertEqual(r.stdout, "")

    def test_stop_config_of_a_task_not_running_exits_1(self):
        cfg = self.record_config()
        r, _ = self.stop(cfg, check=1)
        self.assertEqual(r.stderr, "pmhost: %s: not running (run dir %s)\n"
                         % (self.title, self.rundir))

    def test_stop_ignores_a_stale_pid_file_with_a_live_pid(self):
        # The file names a live process (this test) but nobody holds its
        # lock: nothing is running, and the test must not be signalled.
        os.makedirs(self.rundir, mode=0o700)
        with open(self.pid_file(), "w") as f:
            f.write("%d\n" % os.getpid())
        got = []
        old = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
        self.addCleanup(signal.signal, signal.SIGTERM, old)

        r, _ = self.stop("--title", self.title, check=1)

        # A master that died without cleaning up, named as such.
        self.assertEqual(r.stderr, "pmhost: %s: not running: its master (pid "
                         "%d) died without stopping (run dir %s; \"pmhost "
                         "status --prune\" removes its files)\n"
                         % (self.title, os.getpid(), self.rundir))
        self.assertEqual(got, [])

    def test_stop_timeout_reports_a_master_still_running(self):
        cfg = self.record_config(params={"hang_at": 1}, maxWorkerNum=1,
                                 executeTimes=0, stopTimeout=10)
        p = self.run_fg(cfg, workers=1)
        hung = self.wait_events("call", 1, proc=p)[0]["pid"]

        r, took = self.stop("--title", self.title, "--timeout", "1",
                            check=1)

        self.assert_one_error_line(
            r, r"^pmhost: %s: master pid %d still running after 1 s$" %
            (re.escape(self.title), p.pid))
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 5.0 * harness.SLOW)
        self.assertTrue(alive(p.pid), "master gone despite stopTimeout 10")
        self.assertIsNone(p.poll())
        # Clean up: the master dies, and its hung worker with it.
        p.kill()
        self.wait_exit(p)
        self.wait_gone([hung], "hung worker gone after its master")

    def test_stop_all_stops_every_master(self):
        ta, tb = self.title + "-a", self.title + "-b"
        pa = self.start("run", self.config("a.json", baseTitle=ta,
                                           maxWorkerNum=2, executeTimes=0))
        pb = self.start("run", self.config("b.json", baseTitle=tb,
                                           maxWorkerNum=1, executeTimes=0))
        self.wait_for(lambda: len(self.workers(ta)) == 2 and
                      len(self.workers(tb)) == 1, "workers of both masters",
                      proc=pa)

        r, _ = self.stop("--all", check=0)

        self.assertEqual(r.stderr, "")
        self.assertFalse(alive(pa.pid))
        self.assertFalse(alive(pb.pid))
        self.assertEqual(self.wait_exit(pa), 0)
        self.assertEqual(self.wait_exit(pb), 0)
        self.assertEqual(self.pids_titled("Worker", ta) +
                         self.pids_titled("Worker", tb), [])
        self.assertFalse(os.path.exists(self.pid_file(ta)))
        self.assertFalse(os.path.exists(self.pid_file(tb)))

    def test_stop_all_with_nothing_running_exits_0(self):
        r, _ = self.stop("--all", check=0)
        self.assertEqual(r.stderr, "")


class TestNothingOutlivesTheTask(StopTest):

    def child_of(self, p, n=1):
        """Waits for n workers' grandchildren; [(worker pid, child pid)]."""
        evs = self.wait_events("child", n, proc=p)
        pairs = [(e["pid"], int(e["extra"])) for e in evs]
        for w, c in pairs:
            self.assertTrue(alive(c), "grandchild %d not running" % c)
            st = proc_stat(c)
            self.assertEqual(st[2], w, "grandchild not in its worker's group")
        return pairs

    def test_a_workers_grandchild_is_gone_after_stop(self):
        cfg = self.record_config(params={"fork_child": 1}, maxWorkerNum=1,
                                 executeTimes=0)
        p = self.run_fg(cfg, workers=1)
        [(worker, child)] = self.child_of(p)

        self.stop("--title", self.title, check=0)

        self.wait_gone([worker, child], "worker and grandchild gone",
                       timeout=1)
        self.assertEqual(self.wait_exit(p), 0)

    def test_a_workers_grandchild_dies_when_the_worker_is_killed(self):
        cfg = self.record_config(params={"fork_child": 1}, maxWorkerNum=1,
                                 executeTimes=0, executeUSleep=100000)
        p = self.run_fg(cfg, workers=1)
        [(worker, child)] = self.child_of(p)

        os.kill(worker, signal.SIGKILL)

        self.wait_gone([worker, child], "killed worker's grandchild gone",
                       timeout=1)
        # The master lives on and respawns the slot.
        self.assertIsNone(p.poll())
        self.wait_for(lambda: [e for e in self.events("init")
                               if e["pid"] != worker], "a respawned worker",
                      proc=p)
        self.assertTrue(alive(p.pid))

    def test_workers_and_grandchildren_die_within_1_s_of_master_kill(self):
        cfg = self.record_config(params={"fork_child": 1}, maxWorkerNum=2,
                                 executeTimes=0)
        p = self.run_fg(cfg, workers=2)
        pairs = self.child_of(p, 2)
        everything = [pid for pair in pairs for pid in pair]

        p.kill()
        self.wait_exit(p)

        self.wait_gone(everything, "workers and grandchildren gone",
                       timeout=1)
        self.assertEqual(self.pids_titled("Worker"), [])


if __name__ == "__main__":
    harness.main()
