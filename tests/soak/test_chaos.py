"""Chaos soak: the spool example works through a stream of job files while
faults are injected at random, then every job must be done exactly once,
nothing of the test may be left, and the master's descriptors and RSS
must be where they were after warm-up.

The task is plugins/spool (built-in checksum) run as "nobody" with
limits.nproc, 4 workers, its log at debug level.  A thread drops job files
into incoming/ at a steady rate the whole time.  The faults, one kind at a
time, the windowed ones overlapping whatever comes next:

  kill_worker   SIGKILL of a worker (now and then of the preload process)
  stop_worker   SIGSTOP of a worker, SIGCONT after up to 3 s (workTimeout
                is 2 s: a worker stopped inside a call may be killed)
  stop_master   SIGSTOP of the master for up to 2.5 s, a status asked
                meanwhile, SIGCONT
  fork_fail     fork failures: threads of "nobody" push the user over the
                task's nproc limit for up to 2.5 s, and a worker is killed
                so that one must be forked (preload masters only: other
                workers are forked by root, whom the limit does not stop)
  fd_limit      the master's soft RLIMIT_NOFILE lowered below the numbers
                of its workers' pipes (just above its spare descriptor)
                for up to 2.5 s, clients and a respawn forced meanwhile
                (masters without preload: see SKIPPED)
  plugin_swap   the configured .so renamed over with junk or a plugin
                without work(), truncated in place, or deleted: workers
                keep running and respawning on the pinned copy, restart
                refuses (exit 2), then the good file comes back and
                restart takes it
  flood         hundreds of idle connections held open, status asked
                through them, a burst of status / wakeup / scale commands
  restart       restart or SIGHUP with another config (executeTimes,
                batch, cadence, log on a file or on /dev/full; a master
                may also start on /dev/full).  What pmhost says of a
                logFile /dev/full is checked first and printed: refused
                under strictPaths, those configs add strictPaths false
  signals       USR1 (reopen the log), TTIN, TTOU, ALRM to the master
  master_kill   SIGKILL of the master (sometimes with a worker stopped):
                workers gone, status says dead, run -d again takes the pid
                file over; the next master alternates preload on and off.
                Not before a master has lived a fifth of the run, nor in
                its last quarter

Every kind is injected once before any repeats, as soon as it applies.
Each fault that should leave a mark in the log (a failed fork, a failed
respawn) is waited for there when the log is a file.  After the fault
phase the stream stops, the last master restarts onto a log file and
scales to 6 workers (each slot recovers its own), every job must leave
incoming/ and work/, and stop must leave no process, pid file, socket or
plugin copy.  Every job must be in done/ once, intact, with its right
.sum, none in failed/, and none logged as done twice.
Each master's life (an "incarnation") is measured twice at a quiet point:
after its warm-up (a flood and a restart) and before it is killed or at
the end.  Its own descriptors (all but two pipes per live worker) must be
equal and its RSS within RSS_SLACK_KB (not under AddressSanitizer, whose
quarantine holds freed memory).

Environment:
  PMHOST_CHAOS_SECONDS  length of the fault phase; default
                        PMHOST_SOAK_SECONDS (the meson option soak_seconds,
                        30), else 30.  600 makes the long run.
  PMHOST_CHAOS_SEED     the random seed; default a new one (printed).
  PMHOST_CHAOS_RATE     jobs dropped per second (default 150).
  PMHOST_CHAOS_KEEP     a directory: the master's log and the journal of
                        faults are kept there under the test's title.

Prints the figures: jobs, faults by kind, what the master logged, each
incarnation's descriptors and RSS, wall time.
"""

import collections
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))
import harness  # noqa: E402
from harness import SLOW, NOBODY, alive  # noqa: E402

DURATION = float(os.environ.get("PMHOST_CHAOS_SECONDS") or
                 os.environ.get("PMHOST_SOAK_SECONDS") or "30")
RATE = float(os.environ.get("PMHOST_CHAOS_RATE") or "150")
# The combinations that once hit host bugs are injected: those are fixed.
HOST_BUGS = True
SPOOL_PLUGIN = os.path.join(harness.BUILD, "plugins", "spool", "spool.so")
# A Python the unprivileged user can run (the first python3 on PATH may
# live under /root).
HOLDER_PYTHON = "/usr/bin/python3.11"

WORKERS = 4
SCALE_MAX = 6
NPROC = 64
RSS_SLACK_KB = 1024

# Faults that stay off because they hit a known host bug, with the reason
# printed at the end: none now.
SKIPPED = {}

WEIGHTS = {
    "kill_worker": 24, "stop_worker": 10, "stop_master": 6, "fork_fail": 6,
    "fd_limit": 6, "plugin_swap": 4, "flood": 8, "restart": 6,
    "signals": 6, "master_kill": 3,
}

DONE_RX = re.compile(r"spool: job (\S+) done: ", re.M)
HOLDER = """
import sys, threading, time
for _ in range(int(sys.argv[1])):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def job_name(i):
    return "job-%07d" % i


def job_content(i):
    return ("job %07d %s\n" % (i, "abcdefgh"[i % 8] * (i % 61))).encode()


def result_line(data):
    return ("%016x %d\n" % (fnv1a64(data), len(data))).encode()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


class Dropper(threading.Thread):
    """Drops job files into incoming/ at RATE per second: written under a
    hidden name, then renamed into place."""

    def __init__(self, incoming):
        super().__init__(daemon=True)
        self.incoming = incoming
        self.n = 0
        self.error = None
        self.halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        try:
            while not self.halt.is_set():
                due = int((time.monotonic() - t0) * RATE)
                while self.n < due:
                    name = job_name(self.n)
                    tmp = os.path.join(self.incoming, "." + name)
                    with open(tmp, "wb") as f:
                        f.write(job_content(self.n))
                    os.rename(tmp, os.path.join(self.incoming, name))
                    self.n += 1
                self.halt.wait(0.02)
        except OSError as e:
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(timeout=10)


class Chaos(harness.PmTest):

    # -- set-up -------------------------------------------------------------

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(SPOOL_PLUGIN),
                        "spool plugin not built: %s" % SPOOL_PLUGIN)
        # The workers run as nobody: they pass through the scratch dir
        # into a spool of their own.
        os.chmod(self.tmp, 0o711)
        self.spool = self.path("spool")
        for d in (self.spool, os.path.join(self.spool, "incoming")):
            os.mkdir(d)
            os.chown(d, NOBODY, NOBODY)
        self.so = self.path("spool.so")
        shutil.copyfile(SPOOL_PLUGIN, self.so)
        self.good_sha = self.sha256(self.so)
        self.log = self.path("pmhost.log")
        self.cfg = self.path("chaos.json")
        self.faults = collections.Counter()
        self.notes = collections.Counter()
        self.incs = []
        self.stopped = {}       # pid -> when to SIGCONT it
        self.holder = None      # (Popen, end)
        self.fd_window = None   # (master pid, soft, hard, end)
        self.idle = None        # (sockets, end)
        self.max_status_s = 0.0
        self.journal = []
        self.t_start = time.monotonic()
        self.addCleanup(self.end_windows)
        if os.environ.get("PMHOST_CHAOS_KEEP"):
            self.addCleanup(self.keep)

    def keep(self):
        """PMHOST_CHAOS_KEEP=DIR: the log and the journal kept there."""
        d = os.path.join(os.environ["PMHOST_CHAOS_KEEP"], self.title)
        os.makedirs(d, exist_ok=True)
        if os.path.exists(self.log):
            shutil.copy(self.log, d)
        with open(os.path.join(d, "journal"), "w") as f:
            f.write("\n".join(self.journal) + "\n")

    def note(self, what):
        self.journal.append("%8.3f %s" % (time.monotonic() - self.t_start,
                                          what))

    def pm(self, *args, **kw):
        """harness pm(); a command that does not return in time fails the
        test with what came before."""
        try:
            return super().pm(*args, **kw)
        except subprocess.TimeoutExpired:
            self.fail("pmhost %s: no answer in time\n--- faults ---\n%s\n%s"
                      % (" ".join(map(str, args)),
                         "\n".join(self.journal[-30:]), self.log_tail()))

    @staticmethod
    def sha256(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def dev_full_keys(self):
        """What pmhost says of logFile /dev/full at start, and the keys a
        config needs for it to be taken."""
        cfg = self.write_config({"logFile": "/dev/full"}, self.path(
            "devfull.json"))
        r = self.pm("check", cfg)
        if r.returncode == 0:
            self.devfull_said = "accepted"
            return {}
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("/dev/full", r.stderr)
        self.devfull_said = r.stderr.strip()
        # Refused as a path others can write, though it is a character
        # device of root's (README: "such as /dev/null" is allowed).
        self.assertIn("writable by every user", r.stderr)
        return {"strictPaths": False}

    def write_config(self, keys, path=None):
        cfg = {"plugin": "spool.so", "baseTitle": self.title,
               "maxWorkerNum": WORKERS, "executeTimes": 0,
               "executeUSleep": 10000, "workTimeout": 2, "stopTimeout": 2,
               "user": "nobody", "limits": {"nproc": NPROC},
               "logFile": self.log, "logLevel": "debug",
               "params": {"dir": self.spool, "batch": 10}}
        cfg.update(keys)
        path = path or self.cfg
        with open(path + ".new", "w") as f:
            json.dump(cfg, f)
        os.rename(path + ".new", path)
        return path

    def variant(self, rng, preload, log=None):
        """A config for the current incarnation: its preload setting, the
        rest drawn at random."""
        if log is None:
            log = "/dev/full" if rng.random() < 0.2 else self.log
        times = rng.choice([0, 0, 25, 200])
        keys = {"preload": preload,
                "executeTimes": times if HOST_BUGS or not preload else 0,
                "executeUSleep": rng.choice([2000, 10000, 30000]),
                "logFile": log,
                "params": {"dir": self.spool,
                           "batch": rng.choice([1, 5, 20])}}
        if log == "/dev/full":
            keys.update(self.devfull_keys)
            self.notes["configs with the log on /dev/full"] += 1
        self.log_now = log
        return self.write_config(keys)

    # -- the master ---------------------------------------------------------

    def master(self):
        """This test's master in status --json.  The command must exit 0,
        but for a master out of descriptors (it refuses clients, or with
        not even a spare descriptor to refuse them, leaves them waiting):
        asked again until its fd window is over."""
        deadline = time.monotonic() + 30 * SLOW
        while True:
            t = time.monotonic()
            r = self.pm("status", "--title", self.title, "--json")
            self.max_status_s = max(self.max_status_s,
                                    time.monotonic() - t)
            if r.returncode == 0:
                break
            why = re.search(r"out of file descriptors|no reply within",
                            r.stderr)
            if self.fd_window is None or r.returncode != 1 or not why or \
                    time.monotonic() > deadline:
                self.fail("status failed (exit %d): %s\n%s" %
                          (r.returncode, r.stderr, self.log_tail()))
            self.notes["status out of descriptors: %s" % why.group(0)] += 1
            self.tick()
            time.sleep(0.02)
        doc = json.loads(r.stdout)
        self.assertEqual(len(doc["masters"]), 1, doc)
        # Where it logs now: a refused restart leaves the log where it was.
        self.log_now = doc["masters"][0]["log"]
        return doc["masters"][0]

    def dead(self):
        """Does status show this test's master as dead (exit 1)?"""
        r = self.pm("status", "--title", self.title, "--json")
        try:
            m = json.loads(r.stdout)["masters"]
        except ValueError:
            return False
        return r.returncode == 1 and len(m) == 1 and m[0]["state"] == "dead"

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def wait_logged(self, offset, pattern, what):
        """Waits for the master to log pattern after offset, when its log
        is a file; 1 if it did."""
        if self.log_now != self.log:
            return 0
        self.wait_for(lambda: re.search(pattern, self.log_since(offset)),
                      what, timeout=30)
        self.notes[what] += 1
        return 1

    def live(self, m):
        return [w["pid"] for w in m["workers"] if w["pid"]]

    def serving(self, m):
        """Workers whose slot is respawned when they die: neither surplus
        after a scale nor on their way out."""
        return [w["pid"] for w in m["workers"] if w["pid"] and
                w["slot"] < m["target"] and w["state"] in ("idle", "busy")]

    def log_tail(self, n=40):
        lines = [line for line in self.read(self.log).splitlines()
                 if " debug " not in line]
        return "--- pmhost log, debug lines left out ---\n" + \
            "\n".join(lines[-n:])

    def inc(self):
        return self.incs[-1]

    def start_master(self, rng, preload, takeover=None):
        """run -d a new incarnation, warm it up, take its baseline."""
        cfg = self.variant(rng, preload)
        r = self.pm("run", "-d", cfg, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr + self.log_tail())
        self.assertIn("started", r.stdout)
        if self.log_now == "/dev/full":
            self.assertIn("log /dev/full", r.stdout)
        mpid = self.master_pid()
        self.assertTrue(alive(mpid))
        if takeover is not None:
            self.assertNotEqual(mpid, takeover)
            if self.log_now != "/dev/full":
                self.wait_text(self.log, r"Master:%s\[%d\]: the previous "
                               r"master \(pid %d\) died without stopping; "
                               r"its pid file was taken over" %
                               (re.escape(self.title), mpid, takeover))
        self.incs.append({"pid": mpid, "preload": preload,
                          "t0": time.monotonic(), "faults": 0})
        # Warm-up: every path a measurement could first grow on.
        self.fault_flood(rng)
        self.close_idle()
        self.variant(rng, preload, log=self.log)
        r = self.pm("restart", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.settle()
        seen = [None]

        def steady():
            n, seen[0] = seen[0], self.own_fds(mpid)
            return n == seen[0]
        self.wait_for(steady, "a steady fd count", timeout=15)
        self.inc()["fds0"] = seen[0]
        self.inc()["rss0"] = rss_kb(mpid)
        self.inc()["t_base"] = time.monotonic()

    def settle(self):
        """A quiet point: windows closed, the master running with every
        slot (and the preload process) up.  wakeup skips backoff."""
        self.end_windows()
        deadline = time.monotonic() + 60 * SLOW
        woke = 0
        while True:
            m = self.master()
            pre = m["preload"]
            if (m["state"] == "running" and m["count"] == m["target"] and
                    all(w["pid"] for w in m["workers"]) and
                    (pre is None or pre["state"] == "ready")):
                return m
            if time.monotonic() > deadline:
                self.fail("no quiet point within %.0f s: %s\n%s" %
                          (60 * SLOW, json.dumps(m)[:2000],
                           self.log_tail()))
            if time.monotonic() - woke > 1:
                self.pm("wakeup", "--title", self.title)
                woke = time.monotonic()
            time.sleep(0.02)

    def own_fds(self, mpid):
        """The master's descriptors besides two pipes per live worker,
        read between two status answers naming the same workers."""
        deadline = time.monotonic() + 30 * SLOW
        while True:
            a = set(self.live(self.master()))
            n = fd_count(mpid)
            b = set(self.live(self.master()))
            if a == b:
                return n - 2 * len(a)
            if time.monotonic() > deadline:
                self.fail("workers never still long enough to count fds")

    def finish_incarnation(self):
        """Measures the current master at a quiet point; the fd count is
        waited for (clients and exits settle), RSS is read once."""
        inc = self.inc()
        mpid = inc["pid"]
        self.settle()
        got = []

        def flat():
            got[:] = [self.own_fds(mpid)]
            return got[0] == inc["fds0"]
        try:
            self.wait_for(flat, "master fds back to %d" % inc["fds0"],
                          timeout=15)
        except self.failureException:
            pass            # reported with the figures
        inc["fds1"] = got[0]
        inc["rss1"] = rss_kb(mpid)
        inc["lived"] = time.monotonic() - inc["t0"]
        inc["asan"] = sanitized(mpid)

    # -- windows: faults that last while others come ----------------------

    def tick(self, final=False):
        now = time.monotonic()
        for pid, end in list(self.stopped.items()):
            if final or now >= end:
                if alive(pid):
                    os.kill(pid, signal.SIGCONT)
                self.note("  SIGCONT worker %d" % pid)
                del self.stopped[pid]
        if self.holder is not None and (final or now >= self.holder[1]):
            self.end_holder()
        if self.fd_window is not None and (final or now >=
                                           self.fd_window[3]):
            self.end_fd_window()
        if self.idle is not None and (final or now >= self.idle[1]):
            self.close_idle()

    def end_holder(self):
        if self.holder is not None:
            p = self.holder[0]
            p.kill()
            p.wait(timeout=10)
            self.holder = None
            self.note("  nproc holder gone")

    def end_fd_window(self):
        if self.fd_window is not None:
            mpid, soft, hard, _ = self.fd_window
            try:
                resource.prlimit(mpid, resource.RLIMIT_NOFILE, (soft, hard))
            except ProcessLookupError:
                pass
            self.fd_window = None
            self.note("  fd limit back to %d" % soft)

    def end_windows(self):
        self.tick(final=True)

    def close_idle(self):
        if self.idle is not None:
            self.note("  %d idle clients closed" % len(self.idle[0]))
            for s in self.idle[0]:
                s.close()
            self.idle = None

    def open_idle(self, n):
        """n connections to the master's socket that never send a byte."""
        held = []
        path = os.path.join(self.rundir, self.title + ".sock")
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except (BlockingIOError, ConnectionRefusedError):
                pass        # in the backlog, or the backlog is full
            held.append(s)
        return held

    # -- faults -------------------------------------------------------------

    def fault_kill_worker(self, rng):
        m = self.master()
        pids = self.live(m)
        if m["preload"] and m["preload"]["pid"] and rng.random() < 0.1:
            os.kill(m["preload"]["pid"], signal.SIGKILL)
            self.notes["preload processes killed"] += 1
        else:
            self.kill_one(rng, pids)

    def master_fds_of(self, mpid, wpid):
        """The master's descriptors of worker wpid's stdout and stderr
        pipes."""
        ends = set()
        for fd in ("1", "2"):
            try:
                ends.add(os.readlink("/proc/%d/fd/%s" % (wpid, fd)))
            except OSError:
                pass
        out = []
        for fd in os.listdir("/proc/%d/fd" % mpid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (mpid, fd)) in ends:
                    out.append(int(fd))
            except OSError:
                pass
        return out

    def kill_one(self, rng, pids):
        """SIGKILLs one of pids and waits until it is dead (a zombie for
        its master to reap, or gone); 1 if it did."""
        if pids:
            pid = rng.choice(pids)
            self.note("  SIGKILL worker %d" % pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return 0
            self.wait_for(lambda: not alive(pid), "worker %d dead" % pid,
                          timeout=5)
            return 1
        return 0

    def fault_stop_worker(self, rng):
        pids = [p for p in self.live(self.master()) if p not in self.stopped]
        if pids:
            pid = rng.choice(pids)
            try:
                os.kill(pid, signal.SIGSTOP)
                self.note("  SIGSTOP worker %d" % pid)
                self.stopped[pid] = time.monotonic() + rng.uniform(0.05, 3)
            except ProcessLookupError:
                pass

    def fault_stop_master(self, rng):
        mpid = self.inc()["pid"]
        os.kill(mpid, signal.SIGSTOP)
        try:
            asked = subprocess.Popen(
                [harness.PMHOST, "status", "--title", self.title],
                env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0.1, 2.5))
        finally:
            os.kill(mpid, signal.SIGCONT)
        # The client gives up on a silent master in its own time, or is
        # answered once it runs again: it never hangs.
        try:
            _, err = asked.communicate(timeout=15 * SLOW)
        except subprocess.TimeoutExpired:
            asked.kill()
            asked.communicate()
            self.fail("status hung on a stopped master")
        self.assertIn(asked.returncode, (0, 1), err)
        self.notes["status while the master was stopped: exit %d" %
                   asked.returncode] += 1

    def fault_fork_fail(self, rng):
        self.end_holder()
        # Threads of nobody: the task's own processes count against the
        # same limit, so NPROC more always reach it.
        p = self.spawn(["setpriv", "--reuid=%d" % NOBODY,
                        "--regid=%d" % NOBODY, "--clear-groups",
                        HOLDER_PYTHON, "-c", HOLDER, str(NPROC)])
        self.holder = (p, time.monotonic() + rng.uniform(0.3, 2.5))
        self.wait_for(lambda: "ready" in self.output(p) or
                      p.poll() is not None, "the nproc holder ready")
        self.assertIsNone(p.poll(), self.output(p))
        # A worker to replace now (SIGALRM skips its slot's backoff): the
        # clone must fail, and the master say so.
        offset = self.log_size()
        if self.kill_one(rng, self.serving(self.master())):
            os.kill(self.inc()["pid"], signal.SIGALRM)
            self.wait_logged(offset, r"worker \d+ could not be started: "
                             r"Resource temporarily unavailable",
                             "fork failures logged in fork_fail windows")

    def fault_fd_limit(self, rng):
        self.end_fd_window()
        mpid = self.inc()["pid"]
        pids = self.serving(self.master())
        soft, hard = resource.prlimit(mpid, resource.RLIMIT_NOFILE)
        # The limit bounds descriptor numbers: below those of the
        # workers' pipes, a dead worker's give nothing back, so neither a
        # respawn nor a client gets one.  Above the master's spare one
        # (/dev/null), kept to refuse clients with (see SKIPPED).
        spare = [int(fd) for fd in os.listdir("/proc/%d/fd" % mpid)
                 if int(fd) > 2 and os.readlink("/proc/%d/fd/%s" % (
                     mpid, fd)) == "/dev/null"]
        low = max(spare) + 1 if spare and not HOST_BUGS else \
            rng.randint(4, 10)
        offset = self.log_size()
        resource.prlimit(mpid, resource.RLIMIT_NOFILE, (low, hard))
        self.note("  fd limit %d (%d open)" % (low, fd_count(mpid)))
        self.fd_window = (mpid, soft, hard,
                          time.monotonic() + rng.uniform(0.3, 2.5))
        for s in self.open_idle(20):
            s.close()
        # Only a worker whose pipes are above the limit: a dead worker's
        # lower ones would be free numbers for its replacement's; and
        # only when no number below the limit is free already.
        used = {int(fd) for fd in os.listdir("/proc/%d/fd" % mpid)}
        if any(fd not in used for fd in range(low)):
            pids = []
        pids = [p for p in pids if min(self.master_fds_of(mpid, p) or
                                       [0]) >= low]
        slot_of = {w["pid"]: w["slot"] for w in self.master()["workers"]}
        pids = [p for p in pids if p in slot_of]
        if self.kill_one(rng, pids[:1]):
            # The slot's respawn fails for want of a descriptor, as a
            # rule; or it gets one that another worker's end has freed
            # below the limit meanwhile (workers recycle every few ms):
            # either way the master acts on the slot and lives on.
            slot = slot_of[pids[0]]
            os.kill(mpid, signal.SIGALRM)
            self.wait_logged(offset, r"(worker %d could not be started|"
                             r"slot %d: cannot start a worker): Too many "
                             r"open files|slot %d: worker pid \d+ started"
                             % (slot, slot, slot),
                             "the killed worker's slot respawned, or its "
                             "respawn failed, in fd_limit windows")

    def fault_plugin_swap(self, rng):
        self.settle()
        how = rng.choice(["junk", "truncate", "unlink", "nowork"])
        self.notes["plugin %s" % how] += 1
        self.note("  plugin %s" % how)
        if how == "junk":
            self.write("spool.so.new", b"\x7fELF, or so it says")
            os.rename(self.path("spool.so.new"), self.so)
        elif how == "truncate":
            with open(self.so, "r+b") as f:
                f.truncate(0)       # in place, as cp or a linker do
        elif how == "unlink":
            os.unlink(self.so)
        else:
            shutil.copyfile(harness.plugin("nowork"), self.so + ".new")
            os.rename(self.so + ".new", self.so)

        # A worker killed now is respawned on the pinned copy and works.
        m = self.master()
        self.assertEqual(m["plugin_sha256"], self.good_sha)
        w = rng.choice([w for w in m["workers"] if w["pid"]])
        try:
            os.kill(w["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass    # it ended meanwhile: its slot is respawned anyway
        self.pm("wakeup", "--title", self.title)
        done0 = self.done_now()

        def respawned():
            for x in self.master()["workers"]:
                if x["slot"] == w["slot"] and x["pid"] and \
                        x["pid"] != w["pid"] and x["work"] >= 1:
                    return True
            return False
        self.wait_for(respawned, "slot %d respawned on the pinned copy"
                      % w["slot"], timeout=30)
        self.wait_for(lambda: self.done_now() > done0,
                      "jobs done with the plugin file %s" % how, timeout=30)

        r = self.pm("restart", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 2, "restart took a %s plugin: %s%s"
                         % (how, r.stdout, r.stderr))
        self.assertRegex(r.stderr, r"^pmhost: .*plugin: %s: " %
                         re.escape(self.so))
        self.assertEqual(self.master()["plugin_sha256"], self.good_sha)

        shutil.copyfile(SPOOL_PLUGIN, self.so + ".new")
        os.rename(self.so + ".new", self.so)
        r = self.pm("restart", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.master()["plugin_sha256"], self.good_sha)

    def fault_flood(self, rng):
        self.close_idle()
        held = self.open_idle(rng.randint(100, 800))
        self.idle = (held, time.monotonic() + rng.uniform(0.3, 3))
        self.note("  %d idle clients" % len(held))
        if self.fd_window is None:
            t = time.monotonic()
            self.master()
            self.assertLess(time.monotonic() - t, 3 * SLOW,
                            "status slow behind idle clients")
        burst = []
        scales = 0
        for _ in range(rng.randint(10, 40)):
            what = rng.choice([["status"], ["status", "--json"],
                               ["wakeup"], ["scale",
                                            str(rng.randint(1, SCALE_MAX))]])
            if what[0] == "scale" and self.inc()["preload"] and \
                    not HOST_BUGS:
                scales += 1
                if scales > 1:
                    what = ["wakeup"]
            burst.append((what[0], subprocess.Popen(
                [harness.PMHOST, what[0], "--title", self.title] + what[1:],
                env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)))
        for what, p in burst:
            try:
                _, err = p.communicate(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                self.fail("%s hung in a burst" % what)
            # scale is refused during a restart, anything when the master
            # is out of descriptors; nothing may crash.
            self.assertIn(p.returncode, (0, 1), "%s: %s" % (what, err))
            if p.returncode == 0:
                self.notes["burst commands answered"] += 1
            else:
                self.notes["burst commands refused"] += 1

    def fault_restart(self, rng):
        if self.holder is not None and self.inc()["preload"] and \
                not HOST_BUGS:
            self.end_holder()
            self.notes["fork_fail windows cut short for a restart"] += 1
        self.variant(rng, self.inc()["preload"])
        self.note("  config: %s" % self.read(self.cfg))
        if rng.random() < 0.3:
            os.kill(self.inc()["pid"], signal.SIGHUP)
            self.note("  SIGHUP")
            return
        r = self.pm("restart", "--title", self.title, timeout=60)
        self.note("  restart exit %d" % r.returncode)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        if r.returncode:
            self.notes["restarts refused: %s" % re.sub(
                r"\d+", "N", r.stderr.strip())[:90]] += 1

    def fault_signals(self, rng):
        os.kill(self.inc()["pid"], rng.choice(
            [signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU,
             signal.SIGALRM]))

    def fault_master_kill(self, rng):
        self.finish_incarnation()
        old = self.inc()
        m = self.master()
        pids = self.live(m) + ([m["preload"]["pid"]] if m["preload"] else [])
        frozen = None
        if rng.random() < 0.5:
            frozen = rng.choice(self.live(m))
            os.kill(frozen, signal.SIGSTOP)
        os.kill(old["pid"], signal.SIGKILL)
        self.wait_for(self.dead, "status showing the master dead")
        if frozen is not None:
            # Told of its master's death while stopped: it acts on it
            # once it runs.
            os.kill(frozen, signal.SIGCONT)
            self.notes["workers stopped when their master died"] += 1
        self.wait_gone(pids, "workers gone with their master", timeout=5)
        self.start_master(rng, not old["preload"], takeover=old["pid"])

    # -- the spool ----------------------------------------------------------

    def names(self, *parts):
        try:
            return [n for n in os.listdir(os.path.join(self.spool, *parts))
                    if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def done_now(self):
        return sum(1 for n in self.names("done") if not n.endswith(".sum"))

    def slots(self):
        return sorted(self.names("work"))

    def all_done(self, n):
        return (not self.names("incoming") and
                not any(self.names("work", s) for s in self.slots()) and
                len(self.names("failed")) + self.done_now() == n)

    def spool_state(self):
        return "incoming/ %d, work/ %s, done/ %d, failed/ %d" % (
            len(self.names("incoming")),
            {s: len(self.names("work", s)) for s in self.slots()},
            self.done_now(), len(self.names("failed")))

    # -- the soak -----------------------------------------------------------

    def choose(self, rng, pending, end):
        """The next kind: one not yet injected if any applies, else drawn
        by WEIGHTS.  A master is killed once it has lived a fifth of the
        run, and not in the last quarter: the last one has a life to
        measure."""
        inc = self.inc()
        now = time.monotonic()
        ok = {"fork_fail": inc["preload"],
              "fd_limit": HOST_BUGS or not inc["preload"],
              "master_kill": now - inc["t_base"] >= max(5.0, DURATION / 5)
              and end - now > DURATION / 4}
        eligible = [k for k in WEIGHTS if ok.get(k, True)]
        first = [k for k in eligible if k in pending]
        if first:
            return rng.choice(sorted(first))
        return rng.choices(eligible, [WEIGHTS[k] for k in eligible])[0]

    def test_chaos_every_job_done_once_nothing_left(self):
        seed = int(os.environ.get("PMHOST_CHAOS_SEED") or
                   random.randrange(1 << 32))
        rng = random.Random(seed)
        print("chaos: seed %d, %.0f s of faults, %.0f jobs/s" %
              (seed, DURATION, RATE), flush=True)
        self.devfull_keys = self.dev_full_keys()
        t_start = time.monotonic()
        dropper = Dropper(os.path.join(self.spool, "incoming"))
        dropper.start()
        self.addCleanup(dropper.stop)

        self.start_master(rng, rng.random() < 0.5)
        pending = set(WEIGHTS)
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            self.tick()
            kind = self.choose(rng, pending, end)
            pending.discard(kind)
            self.note(kind)
            getattr(self, "fault_" + kind)(rng)
            self.faults[kind] += 1
            self.inc()["faults"] += 1
            # Whatever came, the master answers.
            m = self.master()
            self.assertIn(m["state"], ("running", "restarting"), m)
            time.sleep(rng.uniform(0.05, 0.4))
        self.finish_incarnation()

        # The rest of the stream, on a log file whatever the last variant
        # (sanitizer reports at exit land there), every slot up so that
        # each recovers its own.
        dropper.stop()
        self.assertIsNone(dropper.error)
        n = dropper.n
        self.variant(rng, self.inc()["preload"], log=self.log)
        r = self.pm("restart", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.pm("scale", "--title", self.title, SCALE_MAX, check=0)
        t_drain = time.monotonic()
        try:
            self.wait_for(lambda: self.all_done(n), "all %d jobs out of "
                          "incoming/ and work/" % n, timeout=60 + n / 500)
        except self.failureException as e:
            raise self.failureException("%s\nspool: %s\n%s" % (
                e, self.spool_state(), self.log_tail())) from None
        drain_s = time.monotonic() - t_drain

        r = self.pm("stop", "--title", self.title, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        wall = time.monotonic() - t_start

        log = self.read(self.log)
        done_lines = collections.Counter(DONE_RX.findall(log))
        said = collections.Counter()
        for line in log.splitlines():
            f = line.split(" ", 3)
            if len(f) == 4 and f[1] in ("warning", "error"):
                said[re.sub(r"\d+(\.\d+)?", "N", f[3].split(": ", 1)[-1])
                     [:100]] += 1
        self.report(seed, n, wall, drain_s, done_lines, said)

        # Nothing of the test is left: no process, pid file, socket or
        # plugin copy.
        self.wait_for(lambda: not self.tagged_pids(),
                      "every process of the test gone", timeout=15)
        self.assertEqual([f for f in os.listdir(self.rundir)
                          if f.endswith((".pid", ".sock"))], [])
        self.assertEqual(os.listdir(os.path.join(self.rundir, "plugins")),
                         [])

        # Every job done exactly once, intact, with its result.
        self.assertEqual(self.names("failed"), [])
        for s in self.slots():
            self.assertEqual(self.names("work", s), [], "work/%s" % s)
        self.assertEqual(self.names("incoming"), [])
        names = set(self.names("done"))
        want = {job_name(i) for i in range(n)}
        self.assertEqual(names - {x + ".sum" for x in want}, want)
        self.assertEqual(len(names), 2 * n)
        bad = []
        for i in range(n):
            p = os.path.join(self.spool, "done", job_name(i))
            with open(p, "rb") as f:
                data = f.read()
            with open(p + ".sum", "rb") as f:
                res = f.read()
            if data != job_content(i) or res != result_line(data):
                bad.append(job_name(i))
        self.assertEqual(bad[:10], [], "%d jobs wrong" % len(bad))
        twice = sorted(k for k, c in done_lines.items() if c > 1)
        self.assertEqual(twice, [], "jobs completed twice")

        # The whole catalogue ran (fork_fail and fd_limit each need a
        # master of one kind: with two or more, both came).
        for kind in WEIGHTS:
            if len(self.incs) > 1 or kind not in ("fork_fail", "fd_limit",
                                                  "master_kill"):
                self.assertGreater(self.faults[kind], 0, kind)
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "runtime error:"):
            self.assertNotIn(bad, log)

        # Each master's own descriptors and RSS where warm-up left them.
        for k, inc in enumerate(self.incs):
            self.assertEqual(inc["fds1"], inc["fds0"],
                             "master %d (pid %d): descriptors" %
                             (k + 1, inc["pid"]))
            if not inc["asan"]:
                self.assertLessEqual(inc["rss1"], inc["rss0"] +
                                     RSS_SLACK_KB, "master %d (pid %d): "
                                     "RSS grew" % (k + 1, inc["pid"]))

    def report(self, seed, n, wall, drain_s, done_lines, said):
        out = ["chaos: seed %d; %d jobs in %.1f s wall (%.0f s of faults, "
               "drained in %.1f s); %d done lines in the log, %d jobs "
               "recovered, %d requeued" %
               (seed, n, wall, DURATION, drain_s, sum(done_lines.values()),
                len(re.findall(r"spool: recovering job ",
                               self.read(self.log))),
                len(re.findall(r"spool: requeued job ",
                               self.read(self.log))))]
        out.append("chaos: faults: %s (%d in all)" % (", ".join(
            "%s %d" % (k, self.faults[k]) for k in WEIGHTS),
            sum(self.faults.values())))
        for k, v in sorted(self.notes.items()):
            out.append("chaos:   %-60s %d" % (k, v))
        out.append("chaos: slowest status %.2f s; logFile /dev/full at "
                   "start: %s" % (self.max_status_s, self.devfull_said))
        for k, inc in enumerate(self.incs):
            out.append("chaos: master %d (pid %d, preload %s): lived %.0f "
                       "s, %d faults, fds %d -> %d, rss %d -> %d KiB%s" %
                       (k + 1, inc["pid"], "on" if inc["preload"] else
                        "off", inc["lived"], inc["faults"], inc["fds0"],
                        inc["fds1"], inc["rss0"], inc["rss1"],
                        " (ASan)" if inc["asan"] else ""))
        out.append("chaos: warnings and errors in the log (numbers as N):")
        for k, v in said.most_common(12):
            out.append("chaos:   %6d  %s" % (v, k))
        for k, why in SKIPPED.items():
            out.append("chaos: skipped: %s: %s" % (k, why))
        print("\n".join(out), flush=True)


if __name__ == "__main__":
    harness.main()
