"""Shared harness for pmhost's integration suites.

Each test drives the real pmhost binary with the fixture plugins under
tests/plugins, in its own scratch directory and run dir, under a baseTitle
of its own.  Every process the test causes carries PMHOST_TEST_ID in its
environment; tearDown kills each of them by pid, whatever the outcome, so
no test leaves anything behind.  Every wait has a deadline.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("PMHOST_BUILD") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
PMHOST = os.path.abspath(os.environ.get("PMHOST") or
                         os.path.join(BUILD, "host", "pmhost"))
PLUGINS = os.path.abspath(os.environ.get("PMHOST_PLUGINS") or
                          os.path.join(BUILD, "tests", "plugins"))
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Sanitizer builds are slower; deadlines scale with this.
SLOW = float(os.environ.get("PMHOST_TEST_SLOWDOWN", "1"))

_counter = [0]


def plugin(name):
    """Absolute path of a fixture plugin (recorder, nowork, ...)."""
    return os.path.join(PLUGINS, name + ".so")


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def proc_cmdline(pid):
    """The process's command line as one string (NULs to spaces), or None."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def proc_stat(pid):
    """(state, ppid, pgid) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


class PmTest(unittest.TestCase):
    """Base class: scratch dir, unique title, cleanup of every process."""

    def setUp(self):
        _counter[0] += 1
        self.tmp = tempfile.mkdtemp(prefix="pmhost-test-")
        self.rundir = os.path.join(self.tmp, "run")
        # Zero-padded: no test's title is a prefix of another's.
        self.title = "t%d_%03d" % (os.getpid(), _counter[0])
        self.test_id = "%s-%s" % (self.title, os.path.basename(self.tmp))
        self.env = dict(os.environ)
        self.env["PMHOST_TEST_ID"] = self.test_id
        self.env["PMHOST_RUNDIR"] = self.rundir
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("WATCHDOG_USEC", None)
        self.popens = []
        self.addCleanup(self._cleanup)

    # -- processes -------------------------------------------------------

    def tagged_pids(self):
        """Every live process of this test: it carries PMHOST_TEST_ID in
        its environment, or a master/worker title naming this test's
        baseTitle (a long title may overwrite the environment strings;
        forks of workers keep the worker's title)."""
        tag = ("PMHOST_TEST_ID=%s\0" % self.test_id).encode()
        out = []
        for p in all_pids():
            if p == os.getpid():
                continue
            if tag in proc_environ(p):
                out.append(p)
                continue
            c = proc_cmdline(p)
            if c and re.search(r":(Master|Worker):%s(_|$)" %
                               re.escape(self.title), c):
                out.append(p)
        return out

    def _cleanup(self):
        for p in self.popens:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        # Twice: a master killed first may have spawned one more worker.
        for _ in range(2):
            for pid in self.tagged_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in self.popens:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        deadline = time.monotonic() + 10
        while self.tagged_pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pids_titled(self, role, title=None):
        """Live pids whose cmdline is TITLEPREFIX:role:TITLE (self.title).
        A worker's forked children share its title: only processes whose
        parent is the master (or, for masters, any) count."""
        want = ":%s:%s" % (role, title or self.title)
        out = []
        for pid in all_pids():
            c = proc_cmdline(pid)
            if c is None or not c.endswith(want) or not alive(pid):
                continue
            if role == "Worker":
                st = proc_stat(pid)
                pc = st and proc_cmdline(st[1])
                if not pc or not pc.endswith(":Master:%s" %
                                             (title or self.title)):
                    continue
            out.append(pid)
        return sorted(out)

    def workers(self):
        return self.pids_titled("Worker")

    def masters(self):
        return self.pids_titled("Master")

    # -- config and commands --------------------------------------------

    def path(self, name):
        return os.path.join(self.tmp, name)

    def config(self, name="task.json", plugin_name="recorder", **keys):
        """Writes a config (baseTitle and plugin filled in); its path."""
        cfg = {"plugin": plugin(plugin_name), "baseTitle": self.title}
        cfg.update(keys)
        p = self.path(name)
        with open(p, "w") as f:
            json.dump(cfg, f)
        return p

    def record_config(self, name="task.json", params=None, **keys):
        """A recorder config writing events to self.path('events')."""
        prm = {"record": self.path("events")}
        prm.update(params or {})
        return self.config(name, params=prm, **keys)

    def pm(self, *args, timeout=30, env=None, check=None):
        """Runs a pmhost command to completion; CompletedProcess."""
        r = subprocess.run([PMHOST] + [str(a) for a in args],
                           env=env or self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout * SLOW, text=True)
        if check is not None:
            self.assertEqual(r.returncode, check,
                             "pmhost %s: exit %d, stderr: %s" %
                             (" ".join(map(str, args)), r.returncode,
                              r.stderr))
        return r

    def start(self, *args, env=None):
        """Starts `pmhost ARGS` in the background; stderr goes to a file."""
        path = self.path("stderr-%d.log" % len(self.popens))
        with open(path, "w") as log:
            p = subprocess.Popen([PMHOST] + [str(a) for a in args],
                                 env=env or self.env,
                                 stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
        p.log_path = path
        self.popens.append(p)
        return p

    def output(self, p):
        with open(p.log_path) as f:
            return f.read()

    def run_fg(self, cfg, *extra, workers=None):
        """Starts a foreground master and waits for its workers; Popen."""
        p = self.start("run", cfg, *extra)
        if workers:
            self.wait_for(lambda: len(self.workers()) >= workers,
                          "%d workers running" % workers, proc=p)
        return p

    # -- waiting ----------------------------------------------------------

    def wait_for(self, cond, what, timeout=10, proc=None):
        """Polls cond until true or the deadline; fails naming what."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                extra = ""
                if proc is not None:
                    extra = "\n--- pmhost output ---\n" + self.output(proc)
                self.fail("timed out after %.1f s waiting for: %s%s" %
                          (timeout * SLOW, what, extra))
            time.sleep(0.005)

    def wait_exit(self, p, timeout=10):
        try:
            return p.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.fail("pmhost did not exit within %.1f s\n%s" %
                      (timeout * SLOW, self.output(p)))

    def wait_gone(self, pids, what="processes gone", timeout=10):
        self.wait_for(lambda: not any(alive(p) for p in pids), what,
                      timeout=timeout)

    # -- events -----------------------------------------------------------

    def events(self, kind=None):
        """Recorder events: list of dicts (event, slot, pid, calls, t, extra)."""
        out = []
        try:
            with open(self.path("events")) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            parts = line.split(" ", 5)
            if len(parts) < 5:
                continue
            ev = {"event": parts[0], "slot": int(parts[1]),
                  "pid": int(parts[2]), "calls": int(parts[3]),
                  "t": int(parts[4]) / 1e9,
                  "extra": parts[5] if len(parts) > 5 else ""}
            if kind is None or ev["event"] == kind:
                out.append(ev)
        return out

    def wait_events(self, kind, n, timeout=10, proc=None):
        return self.wait_for(lambda: len(self.events(kind)) >= n and
                             self.events(kind),
                             "%d '%s' events" % (n, kind), timeout, proc)

    def read(self, path):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_text(self, path_or_proc, pattern, timeout=10):
        """Waits until a file (or a Popen's output) matches regex pattern."""
        get = (lambda: self.output(path_or_proc)) \
            if isinstance(path_or_proc, subprocess.Popen) \
            else (lambda: self.read(path_or_proc))
        return self.wait_for(lambda: re.search(pattern, get(), re.M),
                             "output matching %r" % pattern, timeout)


def main():
    """Runs the calling module's tests; prints the line tests/summary reads."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
    passed = r.testsRun - failed - len(r.skipped)
    print("SUMMARY passed=%d failed=%d skipped=%d" %
          (passed, failed, len(r.skipped)))
    sys.exit(1 if failed else 0)
