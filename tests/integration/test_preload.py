"""Workers forked from a preload process ("preload": true).

The preload process loads the plugin once and calls work_preload(); the
master's workers are cloned from it yet stay the master's children.  These
tests check what a user sees: one preload, its title and row in status,
workers inheriting what it loaded, its supervision, restarts that bring a
new one (refused when its work_preload fails), and nothing left behind."""

import os
import re
import signal
import time

import harness
from harness import SLOW, alive, proc_stat


class PreloadTest(harness.PmTest):

    def task(self, **keys):
        keys.setdefault("maxWorkerNum", 2)
        keys.setdefault("preload", True)
        return self.resident(**keys)

    def preloads(self):
        return self.pids_titled("Preload")

    def test_workers_are_cloned_from_one_preload_and_stay_the_masters(self):
        cfg = self.task(executeTimes=2, executeUSleep=100000)
        p = self.run_fg(cfg, workers=2)
        self.wait_events("init", 6, proc=p)
        pre = self.events("preload")
        self.assertEqual(len(pre), 1, "work_preload once")
        self.assertEqual(pre[0]["slot"], -1)
        self.assertEqual(pre[0]["extra"], "process_m:Preload:%s" % self.title)
        ppid = pre[0]["pid"]
        self.assertEqual(self.preloads(), [ppid])
        master = self.masters()[0]
        self.assertEqual(proc_stat(ppid).ppid, master)
        # Every worker's init saw the preload's mark, and is the master's.
        for ev in self.events("init"):
            self.assertIn("preloaded %d" % ppid, ev["extra"])
        for pid in self.workers():
            self.assertEqual(proc_stat(pid).ppid, master)
        st = self.master_json()
        self.assertEqual(st["preload"]["pid"], ppid)
        self.assertEqual(st["preload"]["state"], "ready")
        self.assertEqual(st["preload"]["title"],
                         "process_m:Preload:%s" % self.title)
        table = self.pm("status", "--title", self.title, check=0).stdout
        self.assertRegex(table, r"(?m)^Preload +%d +process_m:Preload:%s "
                         r".* ready$" % (ppid, self.title))
        self.stop_fg(p)
        self.assertFalse(alive(ppid))
        self.assertEqual(self.tagged_pids(), [])

    def test_a_killed_preload_comes_back_and_workers_work_on(self):
        cfg = self.task(executeTimes=0, executeUSleep=20000)
        p = self.run_fg(cfg, workers=2)
        self.wait_events("preload", 1, proc=p)
        first = self.events("preload")[0]["pid"]
        workers = sorted(self.workers())
        os.kill(first, signal.SIGKILL)
        self.wait_text(p, r"preload process \(pid %d\) exited: killed by "
                       r"SIGKILL .*; starting it again in 0\.0 s \(workers "
                       r"keep running\)" % first)
        self.wait_events("preload", 2, proc=p)
        self.wait_for(lambda: self.master_json()["preload"]["state"] ==
                      "ready", "the preload ready again", proc=p)
        # The same workers went on calling all along.
        n = len(self.events("call"))
        self.wait_for(lambda: len(self.events("call")) > n + 4,
                      "more calls")
        self.assertEqual(sorted(self.workers()), workers)
        self.assertEqual(self.master_json()["preload"]["restarts"], 1)
        # A worker that dies now is cloned from the new preload.
        second = self.events("preload")[1]["pid"]
        os.kill(workers[0], signal.SIGKILL)
        self.wait_for(lambda: any("preloaded %d" % second in e["extra"]
                                  for e in self.events("init")),
                      "a worker from the new preload", proc=p)
        self.stop_fg(p)

    def test_a_failing_work_preload_backs_off_without_workers(self):
        cfg = self.task(params={"preload_fail": 1})
        p = self.run_fg(cfg)
        self.wait_text(p, r"preload: work_preload\(\) returned -1")
        self.wait_text(p, r"preload process \(pid \d+\) exited: exited with "
                       r"status 70.*starting it again in 0\.1 s")
        self.assertEqual(self.events("init"), [])
        self.assertEqual(self.master_json()["count"], 0)
        self.stop_fg(p)
        self.assertEqual(self.tagged_pids(), [])

    def test_restart_brings_a_new_preload_and_retires_the_old(self):
        cfg = self.task(params={"tag": "v1"})
        p = self.run_fg(cfg, workers=2)
        self.wait_events("preload", 1, proc=p)
        old = self.events("preload")[0]["pid"]
        self.task(params={"tag": "v2"})
        r = self.pm("restart", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        pre = self.events("preload")
        self.assertEqual(len(pre), 2)
        new = pre[1]["pid"]
        self.wait_gone([old], "the old preload gone")
        self.assertEqual(self.preloads(), [new])
        v2 = [e for e in self.events("init") if e["extra"].startswith("v2")]
        self.assertTrue(v2 and all("preloaded %d" % new in e["extra"]
                                   for e in v2), v2)
        self.stop_fg(p)

    def test_restart_with_a_failing_work_preload_keeps_the_old_workers(self):
        cfg = self.task(params={"tag": "v1"})
        p = self.run_fg(cfg, workers=2)
        self.wait_events("preload", 1, proc=p)
        old = self.events("preload")[0]["pid"]
        before = sorted(self.workers())
        self.task(params={"tag": "v2", "preload_fail": 1})
        r = self.pm("restart", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("the new preload process failed: exited with status "
                      "70", r.stderr)
        self.assertEqual(sorted(self.workers()), before)
        self.assertEqual(self.preloads(), [old])
        self.assertFalse(any(e["extra"].startswith("v2")
                             for e in self.events("init")))
        self.stop_fg(p)

    def test_restart_can_turn_preload_on_and_off(self):
        cfg = self.task(preload=False)
        p = self.run_fg(cfg, workers=2)
        self.assertEqual(self.preloads(), [])
        self.task(preload=True)
        self.pm("restart", "--title", self.title, check=0)
        self.wait_for(lambda: len(self.preloads()) == 1, "a preload")
        self.task(preload=False)
        self.pm("restart", "--title", self.title, check=0)
        self.wait_for(lambda: self.preloads() == [], "no preload")
        self.assertIsNone(self.master_json()["preload"])
        self.stop_fg(p)

    def test_run_once_with_preload_ends(self):
        cfg = self.task(checkWorkerInterval=0, executeTimes=2,
                        executeUSleep=10000)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p, timeout=20), 0, self.output(p))
        self.assertEqual(len(self.events("fini")), 2)
        self.assertEqual(self.tagged_pids(), [])

    def test_detached_with_preload_and_a_stop(self):
        cfg = self.task(maxWorkerNum=3)
        t0 = time.monotonic()
        self.pm("run", "-d", cfg, check=0)
        self.wait_for(lambda: len(self.workers()) == 3, "3 workers")
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        self.pm("stop", "--title", self.title, check=0)
        self.wait_for(lambda: self.tagged_pids() == [], "nothing left")


if __name__ == "__main__":
    harness.main()
