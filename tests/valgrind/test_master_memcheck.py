"""The master under valgrind's memcheck, through its whole life.

Starts a master under `valgrind --leak-check=full` and puts it through
respawns, a failed and a successful restart, scaling, wakeup, a log
reopen, status and stop.  The master must exit 0 with no memcheck error
and no definitely lost block; its workers (forks, silent under
--child-silent-after-fork) must not report errors either (they would exit
with valgrind's error code, which the master logs).

Run by hand (the same as this test does):
    valgrind --leak-check=full --errors-for-leak-kinds=definite \\
        --error-exitcode=99 --child-silent-after-fork=yes \\
        build/host/pmhost run CONFIG
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

VALGRIND = shutil.which("valgrind")


@unittest.skipIf(VALGRIND is None, "valgrind is not installed")
class MasterMemcheck(harness.PmTest):

    def test_master_lifecycle_is_memcheck_clean(self):
        vlog = self.path("memcheck.log")
        cfg = self.record_config(maxWorkerNum=2, executeTimes=3,
                                 executeUSleep=50000,
                                 logFile=self.path("task.log"))
        p = subprocess.Popen(
            [VALGRIND, "--leak-check=full", "--errors-for-leak-kinds=definite",
             "--error-exitcode=99", "--child-silent-after-fork=yes",
             "--log-file=" + vlog, harness.PMHOST, "run", cfg],
            env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.popens.append(p)
        slow = 30
        self.wait_for(lambda: len(self.events("call")) >= 6,
                      "workers calling under valgrind", timeout=slow)

        self.pm("status", "--title", self.title, check=0, timeout=slow)
        self.pm("status", "--json", check=0, timeout=slow)
        # A restart the canary refuses, then one that goes through.
        with open(cfg) as f:
            keys = json.load(f)
        keys["params"]["init_fail"] = 1
        with open(cfg, "w") as f:
            json.dump(keys, f)
        self.pm("restart", "--title", self.title, check=1, timeout=slow)
        del keys["params"]["init_fail"]
        keys["maxWorkerNum"] = 3
        with open(cfg, "w") as f:
            json.dump(keys, f)
        self.pm("restart", "--title", self.title, check=0, timeout=slow)
        self.pm("scale", "--title", self.title, 1, check=0, timeout=slow)
        self.pm("wakeup", "--title", self.title, check=0, timeout=slow)
        os.rename(self.path("task.log"), self.path("task.log.1"))
        os.kill(p.pid, signal.SIGUSR1)
        self.wait_for(lambda: os.path.exists(self.path("task.log")),
                      "log reopened", timeout=slow)
        self.pm("stop", "--title", self.title, check=0, timeout=120)

        self.assertEqual(p.wait(timeout=60), 0, self.read(vlog))
        report = self.read(vlog)
        self.assertIn("ERROR SUMMARY: 0 errors", report)
        self.assertRegex(report, r"definitely lost: 0 bytes|no leaks are "
                         r"possible")
        log = self.read(self.path("task.log.1")) + \
            self.read(self.path("task.log"))
        self.assertIn("restart done", log)
        self.assertNotIn("status 99", log, "a worker reported memcheck "
                         "errors")


if __name__ == "__main__":
    harness.main()
