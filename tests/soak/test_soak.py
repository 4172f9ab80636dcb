"""Soak: a mix of well- and ill-behaved tasks under random faults.

Runs five masters (normal, crashing, hanging, leaking, slow-init plugins)
for PMHOST_SOAK_SECONDS (default 60) while workers are SIGKILLed, tasks are
restarted, scaled, woken and told to reopen their logs at random.  Then it
checks that nothing leaked: each master's descriptor count is what it was
after warm-up, its RSS has not grown beyond a small allowance, and after
`stop --all` no process of the test, no pid file and no socket is left.
Prints the figures it measured.
"""

import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

DURATION = float(os.environ.get("PMHOST_SOAK_SECONDS", "60"))
RSS_SLACK_KB = 512

TASKS = {
    "normal": {"maxWorkerNum": 4, "executeTimes": 3, "executeUSleep": 20000},
    "crash": {"maxWorkerNum": 2, "executeTimes": 0, "executeUSleep": 20000,
              "params": {"crash_at": 2}},
    "hang": {"maxWorkerNum": 2, "executeTimes": 0, "executeUSleep": 20000,
             "workTimeout": 1, "stopTimeout": 1, "params": {"hang_at": 5}},
    "leak": {"maxWorkerNum": 2, "executeTimes": 0, "executeUSleep": 10000,
             "maxRssMb": 40, "params": {"leak_kb": 4096}},
    "slowinit": {"maxWorkerNum": 2, "executeTimes": 2, "executeUSleep": 50000,
                 "params": {"init_sleep_ms": 300}},
    # In the foreground, its log on a pipe nobody reads.
    "stalled": {"maxWorkerNum": 2, "executeTimes": 0, "executeUSleep": 2000,
                "params": {"log": 1, "print": 1}},
}


def sanitized(pid):
    """Is the master an AddressSanitizer build?  Its quarantine holds
    freed memory, so RSS is no measure of leaks there; LeakSanitizer
    reports them instead, in the log, when the master exits."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak(harness.PmTest):

    def titles(self):
        return ["%s_%s" % (self.title, k) for k in TASKS]

    def status(self):
        r = self.pm("status", "--json", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["masters"]

    def own_fds(self, masters):
        """Each master's descriptors besides the two pipes of each live
        worker (its stdout and stderr, which come and go with it)."""
        live = {m["name"]: m["count"] for m in self.status()}
        return {n: fd_count(p) - 2 * live[n] for n, p in masters.items()}

    def settle(self):
        """Waits until no master is in the middle of a restart."""
        self.wait_for(lambda: all(m["state"] == "running"
                                  for m in self.status()),
                      "every master back to running", timeout=30)

    def test_soak_leaves_nothing_behind(self):
        rng = random.Random(int(os.environ.get("PMHOST_SOAK_SEED", "1")))
        for name, keys in TASKS.items():
            if name == "stalled":
                cfg = self.config("%s.json" % name, baseTitle="%s_%s" %
                                  (self.title, name), **keys)
                reader = self.spawn(["setsid", "sh", "-c",
                                     '"$0" run "$1" 2>&1 | sleep 100000',
                                     harness.PMHOST, cfg])
                self.wait_master(title="%s_%s" % (self.title, name))
                continue
            cfg = self.config("%s.json" % name, baseTitle="%s_%s" %
                              (self.title, name), logFile=self.path(
                                  "%s.log" % name), **keys)
            self.pm("run", "-d", cfg, check=0)
        masters = {m["name"]: m["pid"] for m in self.status()}
        self.assertEqual(sorted(masters), sorted(self.titles()))

        # Warm-up: every path (respawn, backoff, timeouts) taken once.
        deadline = time.monotonic() + 3 * harness.SLOW
        while time.monotonic() < deadline:
            self.status()
            time.sleep(0.05)
        self.settle()
        fds0 = self.own_fds(masters)
        rss0 = {n: rss_kb(p) for n, p in masters.items()}

        counts = dict(kills=0, restarts=0, scales=0, hups=0, wakeups=0,
                      reopens=0, statuses=0)
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            name = rng.choice(self.titles())
            action = rng.random()
            if action < 0.45:
                pids = [w["pid"] for m in self.status() if m["name"] == name
                        for w in m["workers"] if w["pid"]]
                counts["statuses"] += 1
                if pids:
                    try:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        counts["kills"] += 1
                    except ProcessLookupError:
                        pass
            elif action < 0.60:
                r = self.pm("restart", "--title", name, timeout=60)
                self.assertIn(r.returncode, (0, 1), r.stderr)
                counts["restarts"] += 1
            elif action < 0.75:
                r = self.pm("scale", "--title", name, rng.randint(1, 4))
                self.assertIn(r.returncode, (0, 1), r.stderr)
                counts["scales"] += 1
            elif action < 0.82:
                os.kill(masters[name], signal.SIGHUP)
                counts["hups"] += 1
            elif action < 0.90:
                self.pm("wakeup", "--title", name, check=0)
                counts["wakeups"] += 1
            else:
                os.kill(masters[name], signal.SIGUSR1)
                counts["reopens"] += 1
            time.sleep(rng.uniform(0.02, 0.15))

        self.settle()
        after = {m["name"]: m["pid"] for m in self.status()}
        self.assertEqual(after, masters, "a master died or was replaced")
        # Descriptors return to their warm-up count once clients are gone.
        self.wait_for(lambda: self.own_fds(masters) == fds0,
                      "master fd counts back to %r" % fds0, timeout=15)
        fds1 = self.own_fds(masters)
        rss1 = {n: rss_kb(p) for n, p in masters.items()}

        print("soak: %.0f s, %s" % (DURATION, ", ".join(
            "%s %d" % kv for kv in counts.items())))
        for n in masters:
            print("soak: %-24s fds %d -> %d, rss %d -> %d KiB" %
                  (n, fds0[n], fds1[n], rss0[n], rss1[n]))
        asan = sanitized(next(iter(masters.values())))
        for n in masters:
            if not asan:
                self.assertLessEqual(rss1[n], rss0[n] + RSS_SLACK_KB,
                                     "%s: master RSS grew" % n)
        self.assertGreater(counts["kills"], 0)

        r = self.pm("stop", "--all", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The stalled reader is the test's own: it goes now.
        os.killpg(reader.pid, signal.SIGKILL)
        self.wait_for(lambda: not self.tagged_pids(),
                      "every process of the soak gone", timeout=15)
        left = [f for f in os.listdir(self.rundir)
                if f.endswith((".pid", ".sock"))]
        self.assertEqual(left, [])
        # Sanitizer reports (leaks at exit, UB) land in the masters' logs.
        for name in TASKS:
            if name == "stalled":
                continue
            log = self.read(self.path("%s.log" % name))
            for bad in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer",
                        "runtime error:"):
                self.assertNotIn(bad, log, "%s: %s" % (name, bad))


if __name__ == "__main__":
    harness.main()
