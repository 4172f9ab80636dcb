"""The plugin API beyond work(): work_check() refuses a config in the load
check of run, check and restart, with what it logged as the reason;
pm_worker_stop_fd() wakes a plugin blocked in poll() when a stop comes;
pm_worker_config_dir() names the config file's directory."""

import json
import re
import time

import harness


class TestWorkCheck(harness.PmTest):

    def failing(self):
        return self.record_config(params={"check_fail": 1,
                                          "check_msg": "no-such-table"},
                                  maxWorkerNum=2)

    def test_run_and_check_exit_2_with_what_work_check_logged(self):
        cfg = self.failing()
        for cmd in ("run", "check"):
            r = self.pm(cmd, cfg, timeout=20, check=2)
            line = self.assert_one_error_line(
                r, r"^pmhost: %s: plugin: recorder: check failed: "
                   r"no-such-table \(config dir %s\)$" %
                   (re.escape(cfg), re.escape(self.tmp)))
            # Lines below warning level are not reasons.
            self.assertNotIn("not an error", line)
            self.assertEqual(self.events(), [], "work_init ran")
            self.assertEqual(self.tagged_pids(), [])

    def test_restart_refuses_a_config_that_work_check_fails(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        before = sorted(self.workers())
        self.record_config(params={"check_fail": 1, "check_msg": "bad"},
                           maxWorkerNum=2, executeTimes=0,
                           executeUSleep=20000)

        r = self.pm("restart", "--title", self.title, timeout=20, check=2)

        self.assertIn("recorder: check failed: bad", r.stderr)
        self.assertEqual(sorted(self.workers()), before)
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)


class TestStopFd(harness.PmTest):

    def test_a_call_blocked_in_poll_on_the_stop_fd_ends_at_stop(self):
        # Each call would block 60 s; stop must end it at once.
        cfg = self.resident(params={"block_ms": 60000}, maxWorkerNum=2,
                            stopTimeout=30)
        p = self.run_fg(cfg, workers=2)
        self.wait_events("call", 2, proc=p)

        t0 = time.monotonic()
        self.pm("stop", "--title", self.title, check=0)
        took = time.monotonic() - t0

        self.assertEqual(self.wait_exit(p), 0)
        self.assertLess(took, 5 * harness.SLOW, "stop took %.1f s" % took)
        self.assertEqual(len(self.events("woken")), 2)
        self.assertEqual(len(self.events("fini")), 2)
        # Ended by the plugin's return, not by stopTimeout's SIGKILL.
        self.assertNotIn("SIGKILL", self.output(p))

    def test_limit_seconds_wakes_a_blocked_call_too(self):
        cfg = self.resident(params={"block_ms": 60000}, maxWorkerNum=1,
                            limitSeconds=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_events("woken", 1, timeout=10, proc=p)
        ex = self.wait_exits(p, 1)
        self.assertIn("reached limitSeconds", ex[0]["reason"])


class TestEndings(harness.PmTest):

    def test_pm_fail_ends_the_worker_as_failed_with_work_fini(self):
        cfg = self.resident(params={"fail_at": 2}, maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        ex = self.wait_exits(p, 2)
        for x in ex:
            self.assertEqual(x["level"], "warning", x)
            self.assertIn("work() returned PM_FAIL", x["reason"])
        # The second failure in a row waits: the respawn backs off.
        self.assertRegex(ex[1]["plan"], r"respawning in 0\.1 s")
        self.assertGreaterEqual(len(self.events("fini")), 2)
        self.stop_fg(p)

    def test_the_stop_reason_tells_a_stop_from_a_lifetime(self):
        cfg = self.resident(params={"block_ms": 60000}, maxWorkerNum=1,
                            limitSeconds=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_events("fini", 1, proc=p)
        self.assertEqual(self.events("fini")[0]["extra"], "2")  # lifetime
        self.wait_events("call", 2, proc=p)
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)
        self.assertEqual(self.events("fini")[-1]["extra"], "1")  # stop

    def test_the_task_config_reaches_the_plugin_as_json(self):
        cfg = self.resident(params={"show_config": 1, "x": [1, 2]},
                            maxWorkerNum=2, stopTimeout=7)
        p = self.run_fg(cfg, workers=2)
        ev = self.wait_events("config", 1, proc=p)[0]
        doc = json.loads(ev["extra"])
        self.assertEqual(doc["maxWorkerNum"], 2)
        self.assertEqual(doc["stopTimeout"], 7)
        self.assertEqual(doc["baseTitle"], self.title)
        self.assertEqual(doc["params"]["x"], [1, 2])
        self.assertEqual(doc["plugin"], harness.plugin("recorder"))
        self.assertFalse(doc["preload"])
        self.stop_fg(p)


if __name__ == "__main__":
    harness.main()
