"""Shared harness for pmhost's integration suites.

Each test drives the real pmhost binary with the fixture plugins under
tests/plugins, in its own scratch directory and run dir, under a baseTitle
of its own.  Every process the test causes carries PMHOST_TEST_ID in its
environment or, where a long process title took over the environment
strings, a master or worker title naming the test's baseTitle;
tearDown kills each of them by pid, whatever the outcome, so no test
leaves anything behind.  Every wait has a deadline.  BUILD, PMHOST,
PLUGINS and SOURCE are absolute paths: tests may change the cwd, and a
config names its plugin relative to the config's directory.
"""

import collections
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

BUILD = os.path.abspath(os.environ.get("PMHOST_BUILD") or
                        os.path.join(os.path.dirname(__file__), "..", "..",
                                     "build"))
PMHOST = os.path.abspath(os.environ.get("PMHOST") or
                         os.path.join(BUILD, "host", "pmhost"))
PLUGINS = os.path.abspath(os.environ.get("PMHOST_PLUGINS") or
                          os.path.join(BUILD, "tests", "plugins"))
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Sanitizer builds are slower; deadlines scale with this.
SLOW = float(os.environ.get("PMHOST_TEST_SLOWDOWN", "1"))

# An unprivileged uid/gid, and the setpriv prefix that runs a command as it.
NOBODY = 65534
SETPRIV_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                  "--clear-groups"]

# "worker 0 (pid 8129) exited: REASON; PLAN" in the log of master TITLE (%s).
EXIT_LINE = (r"^\S+ (?P<level>\w+) (?P<prefix>[^:\s]+):Master:%s\[\d+\]: "
             r"worker (?P<slot>\d+) \(pid (?P<pid>\d+)\) exited: "
             r"(?P<reason>.*?); (?P<plan>.*)$")

_counter = [0]


def plugin(name):
    """Absolute path of a fixture plugin (recorder, nowork, ...); a path
    (with a '/') is taken as it is."""
    if os.sep in name:
        return name
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


# Fields 3 to 7 of /proc/PID/stat; tty is tty_nr (0: no controlling tty).
ProcStat = collections.namedtuple("ProcStat", "state ppid pgid sid tty")


def proc_stat(pid):
    """ProcStat(state, ppid, pgid, sid, tty) of a process, or None if it is
    gone.  A tuple: st[0], st[1], st[2] are state, ppid and pgid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return ProcStat(rest[0], *(int(x) for x in rest[1:5]))


def alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def is_spawner(pid):
    """Is pid a master's spawner process (titled ':Spawner:' and leading
    its own group; a worker it has just cloned shows its title but is in
    its group until it takes its own)?"""
    st = proc_stat(pid)
    return (st is not None and st.pgid == pid and
            ":Spawner:" in (proc_cmdline(pid) or ""))


def children(pid):
    """Live (not zombie) children of pid but its spawner process: a
    master's workers from the moment they are cloned, before they take
    their own title."""
    out = []
    for p in all_pids():
        st = proc_stat(p)
        if st is not None and st.ppid == pid and st.state != "Z" and \
                not is_spawner(p):
            out.append(p)
    return sorted(out)


def children_all(pid):
    """Every live child of pid, its spawner process included."""
    return sorted(p for p in all_pids()
                  if (proc_stat(p) or (0, 0))[1] == pid and alive(p))


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


class PmTest(unittest.TestCase):
    """Base class: scratch dir, unique title, cleanup of every process."""

    def setUp(self):
        _counter[0] += 1
        self.tmp = tempfile.mkdtemp(prefix="pmhost-test-")
        self.rundir = os.path.join(self.tmp, "run")
        # Zero-padded: no other test's title is this one followed by a
        # non-digit (see tagged_pids).
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
        baseTitle or one made from it by a suffix (TITLE_x, TITLE-x,
        TITLEx: a test's other tasks).  A long title may overwrite the
        environment strings; forks of workers keep the worker's title.
        No other test's title is TITLE followed by a non-digit."""
        tag = ("PMHOST_TEST_ID=%s\0" % self.test_id).encode()
        mine = re.compile(r":(Master|Worker|Preload|Spawner):%s(?![0-9])" %
                          re.escape(self.title))
        out = []
        for p in all_pids():
            if p == os.getpid():
                continue
            if tag in proc_environ(p):
                out.append(p)
                continue
            c = proc_cmdline(p)
            if c and mine.search(c):
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
        """Live pids whose cmdline ends with ':ROLE:TITLE' (TITLE: title or
        self.title), whatever their parent: with a worker's forks, a worker
        just forked that still shows its master's title, a worker whose
        master is gone.  The check that none is left after a stop."""
        want = ":%s:%s" % (role, title or self.title)
        out = []
        for pid in all_pids():
            c = proc_cmdline(pid)
            if c is not None and c.endswith(want) and alive(pid):
                out.append(pid)
        return sorted(out)

    def masters(self, title=None):
        """Live masters of TITLE (self.title): titled ':Master:TITLE', with
        a parent that is not so titled (a worker shows its master's title
        between its fork and setting its own)."""
        found = self.pids_titled("Master", title)
        return [p for p in found if (proc_stat(p) or (0, 0))[1] not in found]

    def workers(self, title=None):
        """Live workers of TITLE (self.title): titled ':Worker:TITLE',
        child of a master of TITLE, leading their own process group (a
        worker's forks do not) and not leading a session (an orphan that a
        plugin daemonised with setsid() and the master adopted as subreaper
        has the same title and parent, but a session of its own).  Only
        while their master lives: after it, see pids_titled()."""
        masters = set(self.masters(title))
        want = ":Worker:%s" % (title or self.title)
        out = []
        # One read per process, the title only of a master's children: a
        # scan must be quicker than a short-lived worker's life even when
        # other suites have thousands of processes.
        for pid in all_pids():
            st = proc_stat(pid)
            if st is None or st.ppid not in masters or st.pgid != pid or \
                    st.sid == pid or st.state == "Z":
                continue
            c = proc_cmdline(pid)
            if c is not None and c.endswith(want):
                out.append(pid)
        return sorted(out)

    # -- config and commands --------------------------------------------

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, data):
        """Writes data (text or bytes) to self.path(name); its path."""
        p = self.path(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return p

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

    def resident(self, **keys):
        """A resident recorder task: workers live until stopped."""
        keys.setdefault("executeTimes", 0)
        keys.setdefault("executeUSleep", 20000)
        params = keys.pop("params", None)
        return self.record_config(params=params, **keys)

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

    def spawn(self, argv, env=None):
        """Starts argv (pmhost, or a wrapper around it) in the background,
        stdout and stderr to a file (see output()), killed at cleanup."""
        path = self.path("stderr-%d.log" % len(self.popens))
        with open(path, "w") as log:
            p = subprocess.Popen([str(a) for a in argv],
                                 env=env or self.env,
                                 stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
        p.log_path = path
        self.popens.append(p)
        return p

    def start(self, *args, env=None):
        """Starts `pmhost ARGS` in the background; stderr goes to a file."""
        return self.spawn([PMHOST] + list(args), env=env)

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

    def stop_fg(self, p):
        """Stops this test's master with `pmhost stop` and waits for the
        foreground `run` p to exit 0."""
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))

    def assert_one_error_line(self, r, pattern=None):
        """r's stderr is one line starting 'pmhost: ' (and matching regex
        pattern, if given); returns that line."""
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, "stderr: %r" % r.stderr)
        self.assertTrue(lines[0].startswith("pmhost: "), lines[0])
        if pattern is not None:
            self.assertRegex(lines[0], pattern)
        return lines[0]

    # -- the run dir and status ------------------------------------------

    def pid_file(self, title=None, rundir=None):
        """Path of TITLE.pid (self.title) in rundir (self.rundir)."""
        return os.path.join(rundir or self.rundir,
                            (title or self.title) + ".pid")

    def master_pid(self, title=None):
        """The pid in TITLE's pid file."""
        return int(self.read(self.pid_file(title)).strip())

    def signal_on_pid_file(self, path, sig, proc):
        """Sends sig to the pid written in the pid file at path the moment
        it appears (spinning on the file, under a deadline); returns the
        pid.  proc: the Popen whose output a timeout shows."""
        deadline = time.monotonic() + 10 * SLOW

        def check_deadline():
            if time.monotonic() > deadline:
                self.fail("no pid in %s\n--- pmhost output ---\n%s" %
                          (path, self.output(proc)))

        fd = -1
        while fd < 0:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                check_deadline()
        try:
            while True:
                data = os.pread(fd, 32, 0)
                if data.endswith(b"\n"):
                    pid = int(data)
                    os.kill(pid, sig)
                    return pid
                check_deadline()
        finally:
            os.close(fd)

    def answers(self, title=None):
        """True if `pmhost status --title TITLE` (self.title) exits 0."""
        return self.pm("status", "--title",
                       title or self.title).returncode == 0

    def wait_master(self, proc=None, title=None):
        """Waits until TITLE's master (self.title) answers status."""
        self.wait_for(lambda: self.answers(title),
                      "%s answers status" % (title or self.title), proc=proc)

    def status_json(self, *target):
        """`pmhost status TARGET --json` (--title self.title), parsed;
        the command must exit 0."""
        r = self.pm("status", *(target or ("--title", self.title)), "--json",
                    check=0)
        return json.loads(r.stdout)

    def master_json(self):
        """This test's one master in `status --json`."""
        doc = self.status_json()
        self.assertEqual(len(doc["masters"]), 1, doc)
        return doc["masters"][0]

    def slot_pids(self):
        """{slot: pid} of the live workers in status."""
        return {w["slot"]: w["pid"] for w in self.master_json()["workers"]
                if w["pid"]}

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

    # -- the master's log -------------------------------------------------

    def exits(self, source, slot=None):
        """This test's master's 'worker N (pid P) exited: REASON; PLAN'
        log lines (of slot N only, if given) in a Popen's output or in a
        text: dicts of strings level, prefix, slot, pid, reason, plan."""
        text = self.output(source) \
            if isinstance(source, subprocess.Popen) else source
        rx = re.compile(EXIT_LINE % re.escape(self.title), re.M)
        out = [m.groupdict() for m in rx.finditer(text)]
        return [x for x in out if slot is None or x["slot"] == str(slot)]

    def wait_exits(self, proc, n, slot=None, timeout=10):
        """Waits for n exit lines (of one slot if given); returns them."""
        self.wait_for(lambda: len(self.exits(proc, slot)) >= n,
                      "%d exit lines%s" % (n, "" if slot is None else
                                           " of slot %d" % slot),
                      timeout=timeout, proc=proc)
        return self.exits(proc, slot)

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
