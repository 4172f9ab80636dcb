"""Several tasks in one config file ({"tasks": [...]}): one master per
task, each with its own pid file and socket; status, stop and restart of
the file act on all of its tasks, --title on one.
"""

import json
import os
import re
import signal
import stat

import harness
from harness import alive, proc_cmdline, proc_stat


class MultiTaskTest(harness.PmTest):

    def setUp(self):
        super().setUp()
        self.a = self.title + "a"
        self.b = self.title + "b"

    def tasks_config(self, tasks, name="tasks.json", **top):
        """A config of several recorder tasks; top-level keys inherited."""
        cfg = {"plugin": harness.plugin("recorder"), "executeTimes": 0,
               "executeUSleep": 20000,
               "params": {"record": self.path("events")}}
        cfg.update(top)
        cfg["tasks"] = tasks
        p = self.path(name)
        with open(p, "w") as f:
            json.dump(cfg, f)
        return p

    def two_tasks(self, **top):
        top.setdefault("maxWorkerNum", 2)
        return self.tasks_config([{"baseTitle": self.a},
                                  {"baseTitle": self.b}], **top)

    def file(self, title, ext):
        return os.path.join(self.rundir, title + ext)

    def wait_running(self, titles, workers, proc=None):
        for t in titles:
            self.wait_for(lambda: self.answers(t) and
                          len(self.workers(t)) >= workers,
                          "%s running with %d workers" % (t, workers),
                          proc=proc)

    def status_doc(self, *target):
        return {m["name"]: m for m in self.status_json(*target)["masters"]}

    # -- run ----------------------------------------------------------------

    def test_run_starts_one_master_per_task(self):
        cfg = self.two_tasks()
        p = self.start("run", cfg)
        self.wait_running((self.a, self.b), 2, proc=p)
        masters = {}
        for t in (self.a, self.b):
            ms = self.masters(t)
            self.assertEqual(len(ms), 1, (t, ms))
            mpid = ms[0]
            masters[t] = mpid
            # Each its own pid file (with its pid) and socket.
            self.assertEqual(self.master_pid(t), mpid)
            st = os.lstat(self.file(t, ".sock"))
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            # In the foreground: children of the one run command.
            self.assertEqual(proc_stat(mpid)[1], p.pid)
            for w in self.pids_titled("Worker", t):
                self.assertEqual(proc_stat(w)[1], mpid)
        self.assertNotEqual(masters[self.a], masters[self.b])
        self.assertEqual(p.poll(), None)

    def test_status_config_shows_every_task(self):
        cfg = self.two_tasks()
        p = self.start("run", cfg)
        self.wait_running((self.a, self.b), 2, proc=p)
        r = self.pm("status", cfg, check=0)
        titles = re.findall(r"^Master\s+(\d+)\s+(\S+)", r.stdout, re.M)
        self.assertEqual(
            sorted(titles),
            sorted([(str(self.master_pid(self.a)),
                     "process_m:Master:" + self.a),
                    (str(self.master_pid(self.b)),
                     "process_m:Master:" + self.b)]), r.stdout)
        doc = self.status_doc(cfg)
        self.assertEqual(sorted(doc), [self.a, self.b])
        for t, m in doc.items():
            self.assertEqual(m["pid"], self.master_pid(t))
            self.assertEqual(m["config"], cfg)
            self.assertEqual(sorted(w["pid"] for w in m["workers"]),
                             self.workers(t))
        # --title names one of them.
        one = self.status_doc("--title", self.b)
        self.assertEqual(list(one), [self.b])

    def test_stop_config_stops_every_task_and_the_run_command_exits_0(self):
        cfg = self.two_tasks()
        p = self.start("run", cfg)
        self.wait_running((self.a, self.b), 2, proc=p)
        everything = self.tagged_pids()
        r = self.pm("stop", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.wait_gone(everything, "masters and workers gone")
        for t in (self.a, self.b):
            self.assertFalse(os.path.exists(self.file(t, ".pid")))
            self.assertFalse(os.path.exists(self.file(t, ".sock")))
        # Every worker finished gracefully.
        fini = {e["pid"] for e in self.events("fini")}
        inits = {e["pid"] for e in self.events("init")}
        self.assertEqual(fini, inits)

    def test_sigterm_to_the_run_command_stops_every_task(self):
        cfg = self.two_tasks()
        p = self.start("run", cfg)
        self.wait_running((self.a, self.b), 2, proc=p)
        everything = self.tagged_pids()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.wait_gone(everything, "masters and workers gone")

    def test_stop_title_stops_only_that_task(self):
        cfg = self.two_tasks()
        p = self.start("run", cfg)
        self.wait_running((self.a, self.b), 2, proc=p)
        a_pids = (self.pids_titled("Master", self.a) +
                  self.pids_titled("Worker", self.a))
        b_pids = (self.pids_titled("Master", self.b) +
                  self.pids_titled("Worker", self.b))
        r = self.pm("stop", "--title", self.a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_gone(a_pids, "task a gone")
        self.assertTrue(all(alive(x) for x in b_pids))
        self.assertEqual(p.poll(), None, "the run command left early")
        self.assertEqual(self.pm("status", "--title", self.a).returncode, 1)
        self.assertEqual(list(self.status_doc("--title", self.b)), [self.b])
        r = self.pm("stop", "--title", self.b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.wait_gone(b_pids, "task b gone")

    def test_run_daemon_starts_every_task_detached(self):
        cfg = self.two_tasks()
        r = self.pm("run", cfg, "-d")
        self.assertEqual(r.returncode, 0, r.stderr)
        for t in (self.a, self.b):
            mpid = self.master_pid(t)
            self.assertTrue(alive(mpid), t)
            self.assertEqual(proc_cmdline(mpid), "process_m:Master:" + t)
            self.assertNotEqual(proc_stat(mpid)[1], os.getpid())
            self.assertNotEqual(os.getsid(mpid), os.getsid(0))
        self.wait_running((self.a, self.b), 2)
        doc = self.status_doc(cfg)
        self.assertEqual(sorted(doc), [self.a, self.b])
        self.assertNotEqual(doc[self.a]["pid"], doc[self.b]["pid"])
        everything = self.tagged_pids()
        r = self.pm("stop", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_gone(everything, "masters and workers gone")

    def test_duplicate_base_title_is_a_config_error(self):
        cfg = self.tasks_config([{"baseTitle": self.a},
                                 {"baseTitle": self.b},
                                 {"baseTitle": self.a}])
        for extra in ((), ("-d",)):
            r = self.pm("run", cfg, *extra)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("baseTitle", r.stderr)
            self.assertIn(self.a, r.stderr)
            self.assertTrue(r.stderr.startswith("pmhost:"), r.stderr)
            self.assertEqual(self.tagged_pids(), [])
            self.assertFalse(os.path.exists(self.file(self.a, ".pid")))
            self.assertFalse(os.path.exists(self.file(self.b, ".pid")))
            self.assertEqual(self.events(), [])

    def test_run_refuses_when_one_task_already_runs(self):
        single = self.config(name="a.json", baseTitle=self.a,
                             executeTimes=0, maxWorkerNum=1)
        pa = self.start("run", single)
        self.wait_running((self.a,), 1, proc=pa)
        before = self.tagged_pids()
        cfg = self.two_tasks()
        r = self.pm("run", cfg)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("%s: already running" % self.a, r.stderr)
        # Nothing of the file started, not even its other task.
        self.assertEqual(self.masters(self.b), [])
        self.assertEqual(self.tagged_pids(), before)

    def test_stop_all_stops_every_master_of_the_run_dir(self):
        cfg = self.two_tasks()
        r = self.pm("run", cfg, "-d")
        self.assertEqual(r.returncode, 0, r.stderr)
        c = self.title + "c"
        single = self.config(name="c.json", baseTitle=c, executeTimes=0,
                             maxWorkerNum=1)
        pc = self.start("run", single)
        self.wait_running((self.a, self.b), 2)
        self.wait_running((c,), 1, proc=pc)
        everything = self.tagged_pids()
        r = self.pm("stop", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_exit(pc), 0, self.output(pc))
        self.wait_gone(everything, "every master and worker gone")
        self.assertEqual([f for f in os.listdir(self.rundir)
                          if f.endswith((".pid", ".sock"))], [])
        # (Its exit status with no master left is test_control's matter.)
        self.assertNotIn("Master", self.pm("status").stdout)

    def test_task_keys_override_the_top_level(self):
        cfg = self.tasks_config([{"baseTitle": self.a, "maxWorkerNum": 1},
                                 {"baseTitle": self.b}], maxWorkerNum=3)
        p = self.start("run", cfg)
        self.wait_running((self.a,), 1, proc=p)
        self.wait_running((self.b,), 3, proc=p)
        doc = self.status_doc(cfg)
        self.assertEqual((doc[self.a]["target"], doc[self.a]["count"]),
                         (1, 1))
        self.assertEqual((doc[self.b]["target"], doc[self.b]["count"]),
                         (3, 3))
        self.assertEqual(len(self.workers(self.a)), 1)
        self.assertEqual(len(self.workers(self.b)), 3)
        # Inherited keys reach both: the plugin and its params.
        self.wait_events("init", 4, proc=p)
        slots = {}
        for e in self.events("init"):
            slots.setdefault(e["slot"], 0)
            slots[e["slot"]] += 1
        self.assertEqual(slots, {0: 2, 1: 1, 2: 1})

    def test_restart_config_restarts_every_task(self):
        cfg = self.two_tasks()
        p = self.start("run", cfg)
        self.wait_running((self.a, self.b), 2, proc=p)
        before = self.status_doc(cfg)
        r = self.pm("restart", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.status_doc(cfg)
        for t in (self.a, self.b):
            self.assertEqual(after[t]["pid"], before[t]["pid"])
            self.assertEqual(after[t]["generation"], 2)
            old = {w["pid"] for w in before[t]["workers"]}
            new = {w["pid"] for w in after[t]["workers"]}
            self.assertEqual(len(new), 2)
            self.assertFalse(old & new)
        self.assertEqual(p.poll(), None)


if __name__ == "__main__":
    harness.main()
