"""Respawn policy as a user sees it: a worker that ends in order is replaced
at once; one that fails (signal, non-zero exit, work_init failure) is
replaced after a per-slot delay that doubles with each failure in a row and
resets after a healthy run; a replacement keeps its slot; the master keeps
maxWorkerNum workers alive.  Every exit is logged with slot, pid, reason.
"""

import os
import re
import signal
import time

import harness
from harness import SLOW, alive

# The plans of a slot that fails again and again, in order.
BACKOFF_PLANS = [
    "respawning now",
    "respawning in 0.1 s (2 failures in a row)",
    "respawning in 0.2 s (3 failures in a row)",
    "respawning in 0.4 s (4 failures in a row)",
    "respawning in 0.8 s (5 failures in a row)",
    "respawning in 1.6 s (6 failures in a row)",
]


class RespawnTest(harness.PmTest):

    def slot_pid(self, slot):
        """The newest pid that recorded an init in slot."""
        return [e["pid"] for e in self.events("init") if e["slot"] == slot][-1]

    def inits(self, slot):
        return [e for e in self.events("init") if e["slot"] == slot]

    def assert_backs_off(self, proc, slots, reason_rx, nfail):
        """Each slot's first nfail exits match reason_rx, are warnings,
        and follow BACKOFF_PLANS; its starts are at least that far apart."""
        for slot in slots:
            ex = self.wait_exits(proc, nfail, slot)[:nfail]
            self.assertEqual([x["plan"] for x in ex], BACKOFF_PLANS[:nfail],
                             "slot %d:\n%s" % (slot, self.output(proc)))
            for x in ex:
                self.assertEqual(x["level"], "warning", x)
                self.assertRegex(x["reason"], reason_rx)
            starts = [e["t"] for e in self.inits(slot)]
            self.assertEqual([e["pid"] for e in self.inits(slot)][:nfail],
                             [int(x["pid"]) for x in ex],
                             "the log names the pid that failed")
            # From the 3rd start on, each waits 0.1 s, 0.2 s, 0.4 s ...
            for i in range(2, nfail):
                self.assertGreaterEqual(starts[i] - starts[i - 1],
                                        0.1 * 2 ** (i - 2),
                                        "slot %d, start %d: %s" %
                                        (slot, i + 1, starts))

    # -- signals ------------------------------------------------------------

    def test_sigkilled_worker_is_replaced_quickly_in_same_slot(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=50000)
        p = self.run_fg(cfg)
        self.wait_for(lambda: {e["slot"] for e in self.events("call")} ==
                      {0, 1}, "calls in both slots", proc=p)
        victim, bystander = self.slot_pid(1), self.slot_pid(0)

        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        new = self.wait_for(
            lambda: [e for e in self.inits(1) if e["pid"] != victim],
            "a new worker in slot 1", proc=p)[0]
        self.assertLess(new["t"] - killed_at, 1.0 * SLOW,
                        "respawn latency after SIGKILL")
        self.assertEqual(new["slot"], 1)

        ex = self.wait_exits(p, 1)
        self.assertEqual(len(ex), 1, self.output(p))
        self.assertEqual((ex[0]["slot"], int(ex[0]["pid"])), ("1", victim))
        self.assertEqual(ex[0]["level"], "warning")
        self.assertRegex(ex[0]["reason"],
                         r"^killed by SIGKILL after \d+ calls?, \d+\.\d\d s$")
        # It had made calls: a healthy run, so no delay.
        self.assertEqual(ex[0]["plan"], "respawning now")
        self.assertTrue(alive(bystander), "the other slot is untouched")
        self.wait_for(lambda: len(self.workers()) == 2, "2 workers", proc=p)
        self.assertNotIn(victim, self.workers())

    def test_sigterm_to_a_worker_finishes_its_call_and_it_is_replaced(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=0, params={"sleep_ms": 300})
        p = self.run_fg(cfg)
        self.wait_for(lambda: {e["slot"] for e in self.events("init")} ==
                      {0, 1}, "workers in both slots", proc=p)
        call = self.wait_for(
            lambda: [e for e in self.events("call") if e["slot"] == 0],
            "a call in slot 0", proc=p)[0]
        victim = call["pid"]
        bystander = self.slot_pid(1)
        os.kill(victim, signal.SIGTERM)

        fini = self.wait_for(
            lambda: [e for e in self.events("fini") if e["pid"] == victim],
            "work_fini of the worker sent SIGTERM", proc=p)[0]
        calls = [e for e in self.events("call") if e["pid"] == victim]
        # The call in progress ran to its end (300 ms) before work_fini.
        self.assertEqual(fini["calls"], len(calls))
        self.assertGreaterEqual(fini["t"] - calls[-1]["t"], 0.3)

        self.wait_for(lambda: [e for e in self.inits(0)
                               if e["pid"] != victim],
                      "a new worker in slot 0", proc=p)
        ex = self.wait_exits(p, 1)
        self.assertEqual((ex[0]["slot"], int(ex[0]["pid"])), ("0", victim))
        self.assertEqual(ex[0]["level"], "info")
        self.assertRegex(ex[0]["reason"], r"^stopped after \d+ calls?")
        self.assertEqual(ex[0]["plan"], "respawning now")
        self.assertTrue(alive(p.pid), "the master goes on")
        self.assertTrue(alive(bystander), "the other slot is untouched")

    def test_workers_killed_before_their_first_call_are_backed_off(self):
        # Killed during a long work_init: no call completed, a short life,
        # so each kill is a failure in a row.
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 params={"init_sleep_ms": 5000})
        p = self.run_fg(cfg, workers=1)
        killed = []
        for n in range(3):
            pid = self.wait_for(
                lambda: [w for w in self.workers() if w not in killed],
                "worker %d" % (n + 1), proc=p)[0]
            if killed:
                # Respawn times: now, then 0.1 s after the 2nd failure.
                self.assertGreaterEqual(time.monotonic() - kill_time,
                                        [0, 0, 0.1][n])
            kill_time = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        ex = self.wait_exits(p, 3)
        self.assertEqual([int(x["pid"]) for x in ex], killed)
        self.assertEqual([x["plan"] for x in ex], BACKOFF_PLANS[:3])
        for x in ex:
            self.assertRegex(x["reason"], r"^killed by SIGKILL after 0 calls")

    # -- failing plugins ---------------------------------------------------

    def test_crash_loop_backs_off_instead_of_spinning(self):
        # executeUSleep 0: nothing but the backoff keeps a crashing slot
        # from respawning in a hot loop.
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=0, params={"crash_at": 1})
        p = self.run_fg(cfg)
        self.assert_backs_off(p, (0, 1), r"^killed by SIGSEGV( \(core "
                                         r"dumped\))? after 0 calls, ", 6)
        # The 6th failure waits 1.6 s: at least 1.5 s have passed since
        # each slot's first start, and they made 6 starts, not hundreds.
        for slot in (0, 1):
            starts = [e["t"] for e in self.inits(slot)]
            self.assertEqual(len(starts), 6, "slot %d starts" % slot)
            self.assertGreaterEqual(time.monotonic() - starts[0], 1.5)
        self.assertEqual(self.events("fini"), [])

    def test_work_init_failure_backs_off_and_is_logged(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=0, params={"init_fail": 1})
        p = self.run_fg(cfg)
        self.assert_backs_off(p, (0,), r"^work_init\(\) failed "
                                       r"\(exit status 70\)$", 4)
        self.assertEqual(self.events("call"), [], "work() never called")
        self.assertEqual(self.events("fini"), [],
                         "no work_fini without a work_init")
        pid = self.inits(0)[0]["pid"]
        self.assertRegex(self.output(p),
                         r"(?m)^\S+ error [^:\s]+:Worker:%s#\d+\[%d\]: slot 0: "
                         r"work_init\(\) returned -1$" %
                         (re.escape(self.title), pid))

    def test_healthy_run_resets_the_failure_streak(self):
        # Every worker completes 2 calls, then crashes in the 3rd: each run
        # was healthy, so every respawn is immediate.
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=20000, params={"crash_at": 3})
        p = self.run_fg(cfg)
        for slot in (0, 1):
            self.wait_exits(p, 4, slot)
        ex = self.exits(p)
        for x in ex:
            self.assertEqual(x["level"], "warning", x)
            self.assertRegex(x["reason"], r"^killed by SIGSEGV( \(core "
                                          r"dumped\))? after 2 calls, ")
            self.assertEqual(x["plan"], "respawning now", x)
        self.assertNotRegex(self.output(p), r"respawning in ")
        for x in ex:
            calls = [e for e in self.events("call")
                     if e["pid"] == int(x["pid"])]
            self.assertEqual(len(calls), 3, "pid %s" % x["pid"])

    def test_plugin_exit_nonzero_is_a_failure_and_backed_off(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=0,
                                 params={"exit_at": 1, "exit_code": 3})
        p = self.run_fg(cfg)
        self.assert_backs_off(p, (0,), r"^exited with status 3 after 0 "
                                       r"calls, \d+\.\d\d s$", 4)

    def test_plugin_exit_zero_is_orderly_and_respawned_at_once(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=20000,
                                 params={"exit_at": 1, "exit_code": 0})
        p = self.run_fg(cfg)
        ex = self.wait_exits(p, 5)
        for x in ex:
            self.assertEqual(x["level"], "info", x)
            self.assertRegex(x["reason"], r"^exited with status 0 after 0 "
                                          r"calls, ")
            self.assertEqual(x["plan"], "respawning now", x)
        self.assertNotRegex(self.output(p), r"respawning in ")

    # -- steady state ------------------------------------------------------

    def test_max_worker_num_workers_stay_alive(self):
        cfg = self.record_config(maxWorkerNum=3, executeTimes=0,
                                 executeUSleep=20000)
        p = self.run_fg(cfg, workers=3)
        self.wait_events("call", 30, proc=p)
        self.assertEqual(len(self.workers()), 3)
        self.assertEqual(self.exits(p), [], "resident workers do not exit")
        self.assertEqual(self.masters(), [p.pid])

    def test_worker_count_returns_to_max_worker_num_under_churn(self):
        # Each worker makes 2 calls and is replaced: the count never goes
        # above maxWorkerNum and comes back to it after every wait.
        # Each lives about 0.6 s: a /proc scan on a machine busy with
        # thousands of other processes still sees all three at once.
        cfg = self.record_config(maxWorkerNum=3, executeTimes=2,
                                 executeUSleep=300000)
        p = self.run_fg(cfg, workers=3)
        most = [0]

        def count():
            n = len(self.workers())
            most[0] = max(most[0], n)
            return n

        for n in (6, 12, 18):
            self.wait_for(lambda: len(self.events("fini")) >= n and
                          count() == 3,
                          "%d exits, then 3 workers again" % n, proc=p)
        self.assertLessEqual(most[0], 3)
        self.assertGreaterEqual(len({e["pid"] for e in self.events("init")}),
                                18)
        self.assertEqual({e["slot"] for e in self.events("init")}, {0, 1, 2})
        for x in self.exits(p):
            self.assertEqual(x["plan"], "respawning now", x)


if __name__ == "__main__":
    harness.main()
