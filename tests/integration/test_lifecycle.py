"""A worker's life as a user sees it: how many work() calls it makes, when
work_init and work_fini run, when it ends (executeTimes, limitSeconds,
PM_DONE, run-once), the cadence of its calls (schedule delay and rate,
also across respawns), what reaches the plugin (params) and what comes back
(pm_log), and how the processes look from outside (titles, process groups,
slots).  Driven through the recorder fixture plugin and the master's log.
"""

import os
import re
import signal

import harness
from harness import SLOW, alive, proc_cmdline, proc_stat


def by_pid(events):
    """Events grouped by pid, each list in file (= time) order."""
    out = {}
    for ev in events:
        out.setdefault(ev["pid"], []).append(ev)
    return out


def call_starts(events, slot=None):
    """Start times of the recorded work() calls, in order."""
    return sorted(ev["t"] for ev in events
                  if ev["event"] == "call" and
                  (slot is None or ev["slot"] == slot))


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def fmt_ms(values):
    return "[" + ", ".join("%.1f" % (v * 1000) for v in values) + "] ms"


class LifecycleTest(harness.PmTest):

    def stop(self, proc):
        """Stops the master with SIGTERM; its exit status."""
        proc.send_signal(signal.SIGTERM)
        return self.wait_exit(proc)

    # -- how many calls --------------------------------------------------

    def test_execute_times_counts_calls_exactly_per_worker(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=3,
                                 executeUSleep=20000)
        p = self.run_fg(cfg)
        self.wait_events("fini", 6, proc=p)
        self.assertEqual(self.stop(p), 0, self.output(p))

        finished = 0
        for pid, evs in by_pid(self.events()).items():
            kinds = [e["event"] for e in evs]
            if kinds[-1] != "fini":
                continue
            fini = evs[-1]
            # A worker that ended because of the stop may have made fewer.
            if fini["calls"] < 3:
                continue
            finished += 1
            self.assertEqual(kinds, ["init", "call", "call", "call", "fini"],
                             "pid %d: %s" % (pid, kinds))
            # pm_worker_calls() during each call: 0, 1, 2; 3 at fini.
            self.assertEqual([e["calls"] for e in evs], [0, 0, 1, 2, 3])
            self.assertGreaterEqual(fini["t"], evs[-2]["t"])
        self.assertGreaterEqual(finished, 6)
        for pid, evs in by_pid(self.events()).items():
            self.assertLessEqual(
                len([e for e in evs if e["event"] == "call"]), 3,
                "pid %d made more than executeTimes calls" % pid)

        reasons = [x["reason"] for x in self.exits(p)
                   if x["reason"].startswith("reached executeTimes")]
        self.assertGreaterEqual(len(reasons), 6)
        for r in reasons:
            self.assertRegex(r, r"^reached executeTimes after 3 calls, "
                                r"\d+\.\d\d s$")

    def test_execute_times_zero_means_unlimited_calls(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=5000)
        p = self.run_fg(cfg)
        calls = self.wait_events("call", 40, proc=p)
        pids = {e["pid"] for e in self.events()}
        self.assertEqual(len(pids), 1, "one worker keeps calling: %s" % pids)
        self.assertEqual(self.events("fini"), [])
        self.assertEqual([e["calls"] for e in calls[:40]], list(range(40)))
        self.assertEqual(self.exits(p), [])
        self.assertTrue(alive(pids.pop()))

    def test_work_init_once_per_worker_and_fini_on_every_orderly_exit(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=2,
                                 executeUSleep=20000)
        p = self.run_fg(cfg)
        self.wait_events("fini", 6, proc=p)
        # The stop is an orderly exit too: the workers alive then run
        # work_fini as well, so every worker ever started has one.
        self.assertEqual(self.stop(p), 0, self.output(p))

        groups = by_pid(self.events())
        self.assertGreaterEqual(len(groups), 6)
        for pid, evs in groups.items():
            kinds = [e["event"] for e in evs]
            self.assertEqual(kinds[0], "init", "pid %d: %s" % (pid, kinds))
            self.assertEqual(kinds.count("init"), 1, "pid %d: %s" %
                             (pid, kinds))
            self.assertEqual(kinds[-1], "fini", "pid %d: %s" % (pid, kinds))
            self.assertEqual(kinds.count("fini"), 1, "pid %d: %s" %
                             (pid, kinds))
        orderly = [x for x in self.exits(p) if x["level"] == "info"]
        self.assertEqual(len(orderly), len(groups), self.output(p))

    # -- run once --------------------------------------------------------

    def test_run_once_exits_zero_after_exactly_workers_times_calls(self):
        cfg = self.record_config(checkWorkerInterval=0, maxWorkerNum=3,
                                 executeTimes=2, executeUSleep=20000)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))

        self.assertEqual(len(self.events("call")), 3 * 2)
        self.assertEqual(len(self.events("init")), 3, "no respawn")
        self.assertEqual(len(self.events("fini")), 3)
        self.assertEqual({e["slot"] for e in self.events("init")}, {0, 1, 2})
        ex = self.exits(p)
        self.assertEqual(len(ex), 3, self.output(p))
        for x in ex:
            self.assertEqual(x["plan"], "not respawned")
        self.assertRegex(self.output(p), r"all workers done \(run once\)")
        self.assertEqual(self.pids_titled("Worker") + self.masters(), [])

    def test_negative_check_interval_is_run_once_too(self):
        cfg = self.record_config(checkWorkerInterval=-1, maxWorkerNum=2,
                                 executeTimes=1, executeUSleep=20000)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertEqual(len(self.events("call")), 2)
        self.assertEqual(len(self.events("init")), 2)

    def test_run_once_with_a_crashing_worker_exits_one(self):
        cfg = self.record_config(checkWorkerInterval=0, maxWorkerNum=2,
                                 executeTimes=3, executeUSleep=20000,
                                 params={"crash_at": 2})
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 1, self.output(p))
        self.assertEqual(len(self.events("init")), 2, "no respawn")
        self.assertEqual(len(self.events("call")), 4)
        self.assertEqual(self.events("fini"), [])
        ex = self.exits(p)
        self.assertEqual(len(ex), 2, self.output(p))
        for x in ex:
            self.assertEqual(x["level"], "warning")
            self.assertRegex(x["reason"], r"^killed by SIGSEGV")
            self.assertEqual(x["plan"], "not respawned")
        self.assertRegex(self.output(p),
                         r"all workers done \(run once\); some failed")

    # -- how a worker ends -------------------------------------------------

    def test_limit_seconds_recycles_worker_in_same_slot(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=50000, limitSeconds=1)
        p = self.run_fg(cfg)
        inits = self.wait_events("init", 2, timeout=5, proc=p)
        first, second = inits[0], inits[1]
        self.assertNotEqual(first["pid"], second["pid"])
        self.assertEqual(first["slot"], 0)
        self.assertEqual(second["slot"], 0)

        old = by_pid(self.events())[first["pid"]]
        self.assertEqual(old[-1]["event"], "fini")
        lived = old[-1]["t"] - first["t"]
        self.assertGreaterEqual(lived, 1.0)
        self.assertLess(lived, 1.0 + 1.5 * SLOW)
        # It kept calling until the limit: about 20 calls in 1 s.
        self.assertGreaterEqual(len([e for e in old if e["event"] == "call"]),
                                5)
        # Replaced at once: an orderly exit.
        self.assertLess(second["t"] - old[-1]["t"], 0.5 * SLOW)
        ex = self.exits(p)
        self.assertEqual(ex[0]["slot"], "0")
        self.assertEqual(int(ex[0]["pid"]), first["pid"])
        self.assertEqual(ex[0]["level"], "info")
        self.assertRegex(ex[0]["reason"],
                         r"^reached limitSeconds after \d+ calls?, 1\.\d\d s$")
        self.assertEqual(ex[0]["plan"], "respawning now")

    def test_pm_done_ends_worker_orderly_and_respawns_at_once(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=20000,
                                 params={"done_at": 2})
        p = self.run_fg(cfg)
        self.wait_events("fini", 5, proc=p)
        self.wait_for(lambda: len(self.exits(p)) >= 5, "5 exit lines",
                      proc=p)

        # Five in a row: were PM_DONE a failure, the third would wait.
        for x in self.exits(p)[:5]:
            self.assertEqual(x["level"], "info", x)
            self.assertRegex(x["reason"], r"^work\(\) returned PM_DONE "
                                          r"after 2 calls, ")
            self.assertEqual(x["plan"], "respawning now")
        for pid, evs in by_pid(self.events()).items():
            if evs[-1]["event"] != "fini":
                continue
            self.assertEqual([e["event"] for e in evs],
                             ["init", "call", "call", "fini"])

    def test_negative_return_is_logged_and_worker_goes_on(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=4,
                                 executeUSleep=20000,
                                 params={"error_at": 2})
        p = self.run_fg(cfg)
        self.wait_events("fini", 1, proc=p)
        pid = self.events("init")[0]["pid"]
        self.wait_text(p, r"worker 0 \(pid %d\) exited" % pid)

        out = self.output(p)
        self.assertRegex(out, r"(?m)^\S+ warning [^:\s]+:Worker:%s#\d+\[%d\]: "
                              r"work\(\) returned -1 \(call 2;" %
                         (re.escape(self.title), pid))
        calls = [e for e in self.events("call") if e["pid"] == pid]
        self.assertEqual([e["calls"] for e in calls], [0, 1, 2, 3],
                         "the worker goes on after the error")
        x = self.exits(p)[0]
        self.assertEqual(x["level"], "info")
        self.assertRegex(x["reason"], r"^reached executeTimes after 4 calls")
        self.assertEqual(x["plan"], "respawning now")

    # -- what reaches the plugin and what comes back ------------------------

    def test_params_reach_the_plugin(self):
        os.mkdir(self.path("sub dir"))
        target = self.path("sub dir/events.log")
        cfg = self.config(maxWorkerNum=2, executeTimes=0,
                          executeUSleep=50000,
                          params={"tag": "release-1.2_x", "record": target,
                                  "nested": {"list": [1, 2, 3]}})
        p = self.run_fg(cfg)
        self.wait_for(lambda: self.read(target).count("init ") >= 2,
                      "2 init lines in %s" % target, proc=p)
        inits = [ln.split(" ") for ln in self.read(target).splitlines()
                 if ln.startswith("init ")]
        for fields in inits:
            self.assertEqual(fields[-1], "release-1.2_x", fields)
        self.assertEqual(sorted(int(f[1]) for f in inits[:2]), [0, 1])
        self.assertFalse(os.path.exists(self.path("events")))

    def test_pm_log_lines_carry_worker_title_and_pid(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=2,
                                 executeUSleep=20000, params={"log": 1})
        p = self.run_fg(cfg)
        rx = re.compile(r"^\S+ info process_m:Worker:%s#\d+\[(\d+)\]: "
                        r"recorder call (\d+) in slot (\d+)$" %
                        re.escape(self.title), re.M)
        self.wait_for(lambda: len(rx.findall(self.output(p))) >= 6,
                      "6 pm_log lines", proc=p)
        lines = rx.findall(self.output(p))
        calls = self.events("call")
        for pid, n, slot in lines[:6]:
            self.assertIn((int(pid), int(slot), int(n) - 1),
                          [(e["pid"], e["slot"], e["calls"]) for e in calls],
                          "log line names the worker that made the call")

    # -- cadence ----------------------------------------------------------

    def test_schedule_delay_waits_executeusleep_after_each_call_ends(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=100000, schedule="delay",
                                 params={"sleep_ms": 40})
        p = self.run_fg(cfg)
        self.wait_events("call", 8, proc=p)
        starts = call_starts(self.events())[:8]
        self.assertEqual(len({e["pid"] for e in self.events("call")}), 1)
        g = gaps(starts)
        self.assertGreaterEqual(min(g), 0.140,
                                "call 40 ms + pause 100 ms: %s" % fmt_ms(g))

    def test_schedule_rate_starts_calls_on_a_fixed_period(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=100000, schedule="rate",
                                 params={"sleep_ms": 40})
        p = self.run_fg(cfg)
        self.wait_events("call", 11, proc=p)
        starts = call_starts(self.events())[:11]
        g = gaps(starts)
        avg = (starts[-1] - starts[0]) / (len(starts) - 1)
        # Absolute deadlines: a late wake-up makes the next gap shorter,
        # never the grid slower; the call's 40 ms do not add up.
        self.assertLess(avg, 0.130, "average gap: %s" % fmt_ms(g))
        self.assertGreaterEqual(avg, 0.0995, "average gap: %s" % fmt_ms(g))
        self.assertGreaterEqual(min(g), 0.090, "gaps: %s" % fmt_ms(g))

    def test_delay_cadence_holds_across_respawns(self):
        # executeTimes 1: every call is made by a fresh worker, yet a slot's
        # calls never come closer than executeUSleep (no fork storm).
        cfg = self.record_config(maxWorkerNum=2, executeTimes=1,
                                 executeUSleep=100000)
        p = self.run_fg(cfg)
        self.wait_for(lambda: all(len(call_starts(self.events(), s)) >= 6
                                  for s in (0, 1)),
                      "6 calls in each slot", proc=p)
        for slot in (0, 1):
            calls = sorted((e for e in self.events("call")
                            if e["slot"] == slot), key=lambda e: e["t"])[:6]
            self.assertEqual(len({e["pid"] for e in calls}), 6,
                             "each call in a fresh worker")
            g = gaps([e["t"] for e in calls])
            # 1 ms: the host stamps the call a few us before the plugin does.
            self.assertGreaterEqual(min(g), 0.099,
                                    "slot %d: %s" % (slot, fmt_ms(g)))

    def test_delay_cadence_across_respawns_counts_from_the_call_end(self):
        # schedule "delay" sleeps executeUSleep after each call ends, and
        # the cadence holds across respawns: a call of 50 ms then a pause
        # of 100 ms, whether or not the next call is made by a new worker.
        cfg = self.record_config(maxWorkerNum=1, executeTimes=1,
                                 executeUSleep=100000,
                                 params={"sleep_ms": 50})
        p = self.run_fg(cfg)
        self.wait_events("call", 6, proc=p)
        calls = sorted(self.events("call"), key=lambda e: e["t"])[:6]
        self.assertEqual(len({e["pid"] for e in calls}), 6)
        g = gaps([e["t"] for e in calls])
        self.assertGreaterEqual(min(g), 0.149,
                                "call 50 ms + pause 100 ms between starts "
                                "in one slot, across respawns: %s" %
                                fmt_ms(g))

    def test_default_config_runs_about_five_calls_per_second_per_worker(self):
        # Only the plugin, the title and the recorder's path: defaults for
        # everything else (4 workers, executeTimes 1, executeUSleep 0.2 s).
        cfg = self.record_config()
        p = self.run_fg(cfg)
        first = self.wait_events("call", 1, proc=p)[0]["t"]
        t0 = first + 0.3
        t1 = t0 + 2.0
        self.wait_for(lambda: any(e["t"] > t1 for e in self.events("call")),
                      "calls past the 2 s window", proc=p)
        calls = [e for e in self.events("call") if t0 <= e["t"] < t1]
        self.assertEqual({e["slot"] for e in calls}, {0, 1, 2, 3})
        low = 8 if SLOW <= 1 else 4
        for slot in range(4):
            mine = [e for e in calls if e["slot"] == slot]
            # 0.2 s apart at least: at most 10 starts in [t0, t0 + 2 s).
            self.assertLessEqual(len(mine), 10, "slot %d: %s" %
                                 (slot, fmt_ms(gaps(sorted(e["t"] for e in
                                                           mine)))))
            self.assertGreaterEqual(len(mine), low, "slot %d" % slot)
            self.assertEqual(len({e["pid"] for e in mine}), len(mine),
                             "each call in a fresh worker")

    # -- what the processes look like ----------------------------------------

    def test_titles_of_master_and_workers_in_cmdline(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=50000)
        p = self.run_fg(cfg, workers=2)
        self.assertEqual(proc_cmdline(p.pid), "process_m:Master:" + self.title)
        for pid in self.workers():
            self.assertEqual(proc_cmdline(pid),
                             "process_m:Worker:" + self.title)
        self.assertEqual(self.masters(), [p.pid])

    def test_custom_title_prefix_in_cmdline(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0,
                                 executeUSleep=50000, titlePrefix="acme_jobs")
        p = self.run_fg(cfg, workers=2)
        self.assertEqual(proc_cmdline(p.pid), "acme_jobs:Master:" + self.title)
        ws = self.workers()
        self.assertEqual(len(ws), 2)
        for pid in ws:
            self.assertEqual(proc_cmdline(pid),
                             "acme_jobs:Worker:" + self.title)
        self.assertRegex(self.output(p),
                         r"(?m)^\S+ info acme_jobs:Master:%s\[%d\]: started" %
                         (re.escape(self.title), p.pid))

    def test_workers_lead_their_own_process_groups(self):
        cfg = self.record_config(maxWorkerNum=3, executeTimes=0,
                                 executeUSleep=50000)
        p = self.run_fg(cfg, workers=3)
        # Every process titled as a worker: workers() keeps group leaders.
        ws = self.pids_titled("Worker")
        self.assertEqual(len(ws), 3)
        master_pgid = proc_stat(p.pid)[2]
        for pid in ws:
            state, ppid, pgid = proc_stat(pid)[:3]
            self.assertEqual(pgid, pid, "worker %d leads its group" % pid)
            self.assertEqual(ppid, p.pid)
            self.assertNotEqual(pgid, master_pgid)

    def test_slots_are_zero_to_max_worker_num_minus_one(self):
        cfg = self.record_config(maxWorkerNum=3, executeTimes=1,
                                 executeUSleep=20000)
        p = self.run_fg(cfg)
        self.wait_events("init", 12, proc=p)
        inits = self.events("init")
        self.assertEqual({e["slot"] for e in inits}, {0, 1, 2})
        for slot in range(3):
            pids = {e["pid"] for e in inits if e["slot"] == slot}
            self.assertGreaterEqual(len(pids), 2,
                                    "slot %d kept across respawns" % slot)
        for x in self.exits(p):
            self.assertIn(x["slot"], ("0", "1", "2"))


if __name__ == "__main__":
    harness.main()
