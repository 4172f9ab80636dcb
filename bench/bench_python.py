#!/usr/bin/env python3
"""bench/bench_python.py - the Python plugin's figures, each next to its
reference measured in the same run.

    python3 bench/bench_python.py [--quick] --pmhost PATH --plugin-dir DIR
                                  --out SCRATCHDIR

DIR holds python.so (a build's plugins/python/, or plugins/ above it).
Figures:
- empty work() calls/s with executeUSleep 0, against the same function
  called in a plain loop by the same interpreter (target >= 0.8x);
- pmhost run -> first call of all 64 workers, without and with preload,
  against supervisord starting 64 copies of an equivalent Python loop;
- worker SIGKILL -> replacement's first call, with preload against the
  fork floor (a Python process forks, the child calls work(); target
  <= 2x), without preload against fork + exec of the interpreter;
- PSS per worker at 64 workers, without and with preload, against the
  programs under supervisord; supervisord's own RSS.
A figure that needs the host's preload key is skipped while pmhost
refuses the key.  Every time is a CLOCK_MONOTONIC reading: starts are
taken right before execvp() (bench/launch.c, built into SCRATCHDIR) or
before kill(); ends are written by the worker itself.  Everything started
is tracked by pid (the bench is a child subreaper) and killed at the end.
The last line is "SUMMARY passed=N failed=N skipped=N".
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

DEBIAN_PYTHON = "/usr/bin/python3.11"
SRC = os.path.dirname(os.path.abspath(__file__))
MS = 1000000
SEC = 1000000000
N = 64                  # workers / programs of the start and memory figures
GAP_MS = 50             # idle before each kill and floor fork

# The task every pmhost figure runs: records "KIND SLOT PID NS VALUE".
TASK = '''
import os, time

def _rec(path, kind, slot, value=0):
    line = "%s %d %d %d %d\\n" % (kind, slot, os.getpid(),
                                  time.monotonic_ns(), value)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)

def work_init(worker):
    return {"out": worker.params["out"], "slot": worker.slot,
            "mode": worker.params.get("mode", "sleep"), "first": True}

def work(worker, state):
    if state["first"]:
        state["first"] = False
        _rec(state["out"], "FIRST", state["slot"])
    elif state["mode"] == "block":
        time.sleep(60)
'''

# The empty call: the same function in pmhost and in the plain loop.
EMPTY = '''
import os, time

def work_init(worker):
    _rec(worker, "INIT", 0)

def work(worker, state):
    pass

def work_fini(worker, state):
    _rec(worker, "FINI", worker.calls)

def _rec(worker, kind, value):
    line = "%s 0 %d %d %d\\n" % (kind, os.getpid(), time.monotonic_ns(),
                                 value)
    with open(worker.params["out"], "a") as f:
        f.write(line)
'''

# The same function in a plain Python loop, timed by the loop itself.
LOOP = '''
import sys, time
sys.path.insert(0, sys.argv[1])
from bench_empty import work

secs = float(sys.argv[2])
end = time.monotonic_ns() + int(secs * 1e9)
n = 0
t0 = time.monotonic_ns()
while True:
    for _ in range(4096):
        work(None, None)
    n += 4096
    t = time.monotonic_ns()
    if t >= end:
        break
print(n * 1e9 / (t - t0))
'''

# supervisord's program and the fork floors: the same task, the same
# first call, in a plain interpreter.
PEER = '''
import os, sys, time
sys.path.insert(0, sys.argv[1])
import bench_task

class Worker:
    def __init__(self, out, slot):
        self.params = {"out": out}
        self.slot = slot

w = Worker(sys.argv[2], int(sys.argv[3]))
state = bench_task.work_init(w)
while True:
    bench_task.work(w, state)
    time.sleep(600)
'''

FORK_FLOOR = '''
import os, sys, time
sys.path.insert(0, sys.argv[1])
import bench_task

class Worker:
    def __init__(self, out, slot):
        self.params = {"out": out}
        self.slot = slot

out, n, gap = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
for i in range(n):
    time.sleep(gap)
    t0 = time.monotonic_ns()
    pid = os.fork()
    if pid == 0:
        w = Worker(out, i)
        bench_task.work(w, bench_task.work_init(w))
        os._exit(0)
    os.waitpid(pid, 0)
    print(pid, t0, flush=True)
'''

QUICK = False
R = {}                  # figure -> samples
NOTES = {}              # figure -> why it is missing
STARTED = {}            # pid -> Popen
FAILED = []


def log(msg):
    print(msg, flush=True)


def note(msg):
    print("  " + msg, file=sys.stderr, flush=True)


def reps(full, quick):
    return quick if QUICK else full


def add(key, v):
    R.setdefault(key, []).append(v)


# ---------------------------------------------------------------- processes

def become_subreaper():
    """Orphans of what we start come back to us, to be killed by pid."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except OSError:
        pass


def spawn(argv, out=None, env=None, cwd=None):
    f = open(out, "ab") if out else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT if out else None,
                             env=env, cwd=cwd)
    finally:
        if out:
            f.close()
    STARTED[p.pid] = p
    return p


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] not in ("Z", "X")


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        p = STARTED.get(pid)
        if p is not None and p.returncode is None:
            p.returncode = -1


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        reap()
        time.sleep(0.005)
    reap()
    return True


def stop(p, timeout=20):
    """SIGTERM, then SIGKILL after timeout, of a process we started."""
    if p is None or not alive(p.pid):
        reap()
        return
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if not wait_gone([p.pid], timeout):
        os.kill(p.pid, signal.SIGKILL)
        wait_gone([p.pid], 5)


def descendants():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            kids.setdefault(int(st[st.rfind(")") + 2:].split()[1]),
                            []).append(int(d))
    out, todo = [], [os.getpid()]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cleanup():
    """Kills by pid whatever we started that still lives; reaps it."""
    for _ in range(3):
        pids = {p for p in descendants() if alive(p)}
        pids |= {p for p in STARTED if alive(p)}
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap()
    left = [p for p in descendants() if alive(p)]
    if left:
        FAILED.append("processes left after cleanup: %s" % left)


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return None


def cpu_busy():
    """(monotonic s, CPU s the machine was busy, CPU s of this bench and
    its reaped children)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    t = os.times()
    return (time.monotonic(),
            (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK"),
            t.user + t.system + t.children_user + t.children_system)


def others_share(since):
    """Share of all CPUs (%) that other processes used since `since`."""
    t, busy, ours = cpu_busy()
    cap = (t - since[0]) * os.cpu_count() / 100
    return max(0.0, (busy - since[1]) - (ours - since[2])) / cap


def wait_quiet(limit_s):
    """Full runs: waits (at most limit_s) until other processes use less
    than 5% of the CPUs, so that a phase does not share the machine with
    someone's build."""
    deadline = time.monotonic() + limit_s
    while True:
        since = cpu_busy()
        time.sleep(0.5)
        other = others_share(since)
        if other < 5 or time.monotonic() > deadline:
            return other


# ------------------------------------------------------------------ records

class Records:
    """A records file, "KIND SLOT PID NS VALUE" per line."""

    def __init__(self, path):
        self.path = path
        open(path, "w").close()

    def items(self):
        out = []
        with open(self.path) as f:
            for ln in f.read().split("\n"):
                p = ln.split()
                if len(p) == 5:
                    out.append((p[0], int(p[1]), int(p[2]), int(p[3]),
                                int(p[4])))
        return out

    def first(self):
        """{slot: (pid, ns)} of each slot's first FIRST."""
        out = {}
        for k, slot, pid, ns, _ in self.items():
            if k == "FIRST" and slot not in out:
                out[slot] = (pid, ns)
        return out

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            items = self.items()
            if pred(items):
                return items
            if time.monotonic() > deadline:
                raise RuntimeError("timed out waiting for %s" % what)
            reap()
            time.sleep(0.002)


# ------------------------------------------------------------------- bench

class Bench:

    def __init__(self, args):
        self.pmhost = os.path.abspath(args.pmhost)
        d = os.path.abspath(args.plugin_dir)
        self.plugin = os.path.join(d, "python.so")
        if not os.path.exists(self.plugin):
            self.plugin = os.path.join(d, "python", "python.so")
        self.out = os.path.abspath(args.out)
        self.run_dir = os.path.join(self.out, "run")
        self.task_dir = os.path.join(self.out, "task")
        self.launch = None
        self.preload = None
        self.clone_driver = None
        for c in (os.path.join(os.path.dirname(self.plugin),
                               "preload_clone"),):
            if os.access(c, os.X_OK):
                self.clone_driver = c

    def setup(self):
        if not os.path.exists(self.plugin):
            raise RuntimeError("no python.so under the plugin dir")
        shutil.rmtree(self.out, ignore_errors=True)
        for d in (self.run_dir, self.task_dir):
            os.makedirs(d)
        os.chmod(self.run_dir, 0o700)
        for name, text in (("bench_task.py", TASK),
                           ("bench_empty.py", EMPTY), ("loop.py", LOOP),
                           ("peer.py", PEER), ("fork_floor.py", FORK_FLOOR)):
            with open(os.path.join(self.task_dir, name), "w") as f:
                f.write(text)
        exe = os.path.join(self.out, "launch")
        r = subprocess.run(["gcc", "-O2", "-o", exe,
                            os.path.join(SRC, "launch.c")],
                           capture_output=True, text=True)
        if r.returncode == 0:
            self.launch = exe
        else:
            note("no bench/launch (%s): starts are timed by this script"
                 % r.stderr.strip())
        self.preload = self.preload_supported()

    def env(self):
        return dict(os.environ, PMHOST_RUNDIR=self.run_dir)

    def config(self, name, workers, params, **keys):
        rec = os.path.join(self.out, name + ".rec")
        prm = {"module": "bench_task", "path": self.task_dir, "out": rec}
        prm.update(params)
        cfg = {"plugin": self.plugin, "baseTitle": "bpy_" + name,
               "maxWorkerNum": workers, "runDir": self.run_dir,
               "executeTimes": 0, "executeUSleep": 600000000,
               "params": prm}
        cfg.update(keys)
        path = os.path.join(self.out, name + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path, Records(rec)

    def preload_supported(self):
        cfg, _ = self.config("probe", 1, {}, preload=True)
        r = subprocess.run([self.pmhost, "check", cfg], capture_output=True,
                           text=True, env=self.env())
        if r.returncode == 0:
            return True
        note("preload figures skipped: %s" % r.stderr.strip())
        return False

    def start(self, argv, name, cwd=None):
        """Starts argv; (Popen, T0 ns) with T0 right before its exec."""
        log_path = os.path.join(self.out, name + ".log")
        if self.launch:
            ts = os.path.join(self.out, name + ".ts")
            p = spawn([self.launch, ts] + argv, out=log_path,
                      env=self.env(), cwd=cwd)
            deadline = time.monotonic() + 10
            while True:
                try:
                    with open(ts) as f:
                        text = f.read().replace("\0", " ").split()[0]
                    if text:
                        return p, int(text)
                except (OSError, ValueError, IndexError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("launch wrote no timestamp")
                time.sleep(0.001)
        t0 = time.monotonic_ns()
        return spawn(argv, out=log_path, env=self.env(), cwd=cwd), t0

    # -- figures -------------------------------------------------------

    def calls(self):
        """Empty work() calls/s against the plain loop, alternating."""
        secs = reps(3, 1)
        for _ in range(reps(5, 2)):
            cfg, recs = self.config("calls", 1, {"module": "bench_empty"},
                                    executeUSleep=0, limitSeconds=secs)
            p, _ = self.start([self.pmhost, "run", cfg], "calls")
            try:
                items = recs.wait(lambda it: any(r[0] == "FINI"
                                                 for r in it),
                                  secs + 20, "the count worker's FINI")
            finally:
                stop(p)
            fini = [r for r in items if r[0] == "FINI"][0]
            init = [r for r in items if r[0] == "INIT" and
                    r[2] == fini[2]][0]
            add("calls", fini[4] * SEC / (fini[3] - init[3]))
            r = subprocess.run([DEBIAN_PYTHON, os.path.join(self.task_dir,
                                                            "loop.py"),
                                self.task_dir, str(secs)],
                               capture_output=True, text=True, check=True)
            add("loop", float(r.stdout))

    def start64(self, key, preload):
        """pmhost run -> all N workers' first call."""
        keys = {"preload": True} if preload else {}
        for i in range(reps(8, 2)):
            cfg, recs = self.config(key, N, {}, **keys)
            p, t0 = self.start([self.pmhost, "run", cfg], key)
            try:
                recs.wait(lambda it: len(Records.first(recs)) >= N, 60,
                          "%d first calls" % N)
                first = [ns for _, ns in recs.first().values()]
                add(key, max(first) - t0)
                add(key + "_first", min(first) - t0)
                if i == 0:
                    self.memory(key, recs)
            finally:
                stop(p)

    def memory(self, key, recs):
        """Mean PSS of the N workers once each has made its call."""
        time.sleep(0.5)
        pss = [pss_kb(pid) for pid, _ in recs.first().values()]
        pss = [v for v in pss if v is not None]
        if pss:
            add(key + "_pss", 1024 * sum(pss) / len(pss))

    def kill(self, key, preload):
        """SIGKILL of a worker blocked in its second call -> the
        replacement's first call in the same slot."""
        keys = {"preload": True} if preload else {}
        cfg, recs = self.config(key, 1, {"mode": "block"}, executeUSleep=0,
                                stopTimeout=1, **keys)
        p, _ = self.start([self.pmhost, "run", cfg], key)
        try:
            recs.wait(lambda it: len(it) >= 1, 30, "the first call")
            for _ in range(reps(15, 3)):
                seen = len(recs.items())
                victim = recs.items()[-1][2]
                time.sleep(GAP_MS / 1000)
                t0 = time.monotonic_ns()
                os.kill(victim, signal.SIGKILL)
                items = recs.wait(lambda it: len(it) > seen, 30,
                                  "the replacement's first call")
                add(key, items[seen][3] - t0)
        finally:
            stop(p)

    def fork_floor(self):
        """A Python process with the task imported forks; the child's
        first call.  What a preloaded worker cannot beat."""
        recs = Records(os.path.join(self.out, "fork_floor.rec"))
        r = subprocess.run([DEBIAN_PYTHON, os.path.join(self.task_dir,
                                                        "fork_floor.py"),
                            self.task_dir, recs.path, str(reps(30, 5)),
                            str(GAP_MS / 1000)], capture_output=True,
                           text=True, check=True)
        first = {pid: ns for _, _, pid, ns, _ in recs.items()}
        for ln in r.stdout.split("\n"):
            if ln.strip():
                pid, t0 = (int(x) for x in ln.split())
                add("floor_fork", first[pid] - t0)

    def clone(self):
        """The plugin's own part of a preloaded start, without the host:
        preload_clone (built with the tests) calls work_preload() and
        clones one worker with _Fork(), which runs work_init() (the
        after-fork work) and its first call."""
        if self.clone_driver is None:
            NOTES["clone"] = "preload_clone not built"
            return
        params = json.dumps({"module": "bench_task", "path": self.task_dir,
                             "out": ""})
        for _ in range(reps(15, 3)):
            recs = Records(os.path.join(self.out, "clone.rec"))
            prm = json.loads(params)
            prm["out"] = recs.path
            time.sleep(GAP_MS / 1000)
            r = subprocess.run([self.clone_driver, self.plugin,
                                json.dumps(prm), self.task_dir, "1", "1"],
                               capture_output=True, text=True, check=True)
            forked = {int(p[2]): int(p[6]) for p in
                      (ln.split() for ln in r.stdout.split("\n"))
                      if len(p) == 7 and p[0] == "worker"}
            for _, _, pid, ns, _ in recs.items():
                add("clone", ns - forked[pid])

    def exec_floor(self):
        """fork + exec of the interpreter, import of the task, first call:
        what a worker starting its own interpreter cannot beat."""
        recs = Records(os.path.join(self.out, "exec_floor.rec"))
        code = ("import sys; sys.path.insert(0, %r); import bench_task\n"
                "class W: params = {'out': %r}; slot = 0\n"
                "bench_task.work(W, bench_task.work_init(W))"
                % (self.task_dir, recs.path))
        for _ in range(reps(15, 3)):
            time.sleep(GAP_MS / 1000)
            seen = len(recs.items())
            t0 = time.monotonic_ns()
            subprocess.run([DEBIAN_PYTHON, "-c", code], check=True)
            add("floor_exec", recs.items()[seen][3] - t0)

    def supervisord(self):
        """supervisord with N copies of the same task in a plain loop:
        start -> all first calls; their PSS; supervisord's RSS."""
        if not shutil.which("supervisord"):
            NOTES["sup_all"] = "no supervisord"
            return
        d = os.path.join(self.out, "sup")
        os.makedirs(os.path.join(d, "child"))
        rec = os.path.join(d, "peer.rec")
        conf = os.path.join(d, "supervisord.conf")
        with open(conf, "w") as f:
            f.write("""[unix_http_server]
file={d}/supervisor.sock
chmod=0700

[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}/child
directory={d}
nodaemon=true
identifier=pmhost-bench-python

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:peer]
command={py} {peer} {task} {rec} %(process_num)d
process_name=%(program_name)s_%(process_num)02d
numprocs={n}
autostart=true
autorestart=true
startsecs=1
stdout_logfile=NONE
stderr_logfile=NONE
""".format(d=d, py=DEBIAN_PYTHON, peer=os.path.join(self.task_dir,
                                                     "peer.py"),
           task=self.task_dir, rec=rec, n=N))
        for i in range(reps(3, 1)):
            recs = Records(rec)
            p, t0 = self.start(["supervisord", "-n", "-c", conf], "sup",
                               cwd=d)
            try:
                recs.wait(lambda it: len(Records.first(recs)) >= N, 120,
                          "supervisord's %d programs" % N)
                first = [ns for _, ns in recs.first().values()]
                add("sup_all", max(first) - t0)
                add("sup_first", min(first) - t0)
                if i == 0:
                    time.sleep(0.5)
                    pss = [pss_kb(pid) for pid, _ in recs.first().values()]
                    pss = [v for v in pss if v is not None]
                    add("sup_pss", 1024 * sum(pss) / len(pss))
                    add("sup_rss", 1024 * rss_kb(p.pid))
            finally:
                progs = [pid for pid, _ in recs.first().values()]
                stop(p)
                for pid in progs:
                    if alive(pid):
                        os.kill(pid, signal.SIGKILL)
                wait_gone(progs, 10)


# ------------------------------------------------------------------- table

def fmt(unit, v):
    if unit == "rate":
        return "%.3g M/s" % (v / 1e6)
    if unit == "bytes":
        return "%.2f MiB" % (v / 1048576) if v >= 1048576 else \
            "%.0f KiB" % (v / 1024)
    if v < MS:
        return "%.3g us" % (v / 1e3)
    if v < SEC:
        return "%.3g ms" % (v / 1e6)
    return "%.3g s" % (v / 1e9)


# name, key, unit, reference text, reference key, (kind, factor), target
ROWS = [
    ("empty work() calls/s, executeUSleep 0", "calls", "rate",
     "same function, plain loop, python3.11", "loop", ("ge", 0.8),
     ">= 0.8x loop"),
    ("run -> all 64 workers' first call, no preload", "start", "time",
     "supervisord -> 64 python3.11 loops", "sup_all", None, "-"),
    ("run -> all 64 workers' first call, preload", "start_pre", "time",
     "supervisord -> 64 python3.11 loops", "sup_all", None, "-"),
    ("worker SIGKILL -> replacement's call, preload", "kill_pre", "time",
     "fork floor: python fork -> child's call", "floor_fork", ("le", 2),
     "<= 2x floor"),
    ("worker SIGKILL -> replacement's call, no preload", "kill", "time",
     "exec floor: python3.11 start -> call", "floor_exec", None, "-"),
    ("PSS per worker, 64 workers, preload", "start_pre_pss", "bytes",
     "PSS per python3.11 loop under supervisord", "sup_pss", ("le", 1),
     "< supervisord"),
    ("PSS per worker, 64 workers, no preload", "start_pss", "bytes",
     "PSS per python3.11 loop under supervisord", "sup_pss", None, "-"),
    ("(info) preload clone -> first call (no host)", "clone", "time",
     "fork floor: python fork -> child's call", "floor_fork", None, ""),
    ("(info) run -> first of 64 workers' calls, no preload", "start_first",
     "time", None, None, None, ""),
    ("(info) run -> first of 64 workers' calls, preload", "start_pre_first",
     "time", None, None, None, ""),
    ("(ref) same function, plain loop", "loop", "rate", None, None, None,
     ""),
    ("(ref) fork floor: python fork -> child's call", "floor_fork", "time",
     None, None, None, ""),
    ("(ref) exec floor: python3.11 start -> call", "floor_exec", "time",
     None, None, None, ""),
    ("(ref) supervisord -> first of 64 programs", "sup_first", "time", None,
     None, None, ""),
    ("(ref) supervisord -> all 64 programs", "sup_all", "time", None, None,
     None, ""),
    ("(ref) supervisord RSS", "sup_rss", "bytes", None, None, None, ""),
]


def table():
    head = ["figure", "median", "min", "max", "reference (what, median)",
            "ratio", "target", "met?"]
    body = []
    counts = {"passed": 0, "skipped": 0}
    for name, key, unit, ref, ref_key, target, tgt in ROWS:
        v = R.get(key, [])
        refv = R.get(ref_key, []) if ref_key else []
        med = statistics.median(v) if v else None
        refmed = statistics.median(refv) if refv else None
        cells = [name]
        cells += [fmt(unit, x) for x in (med, min(v), max(v))] if v else \
            ["-", "-", "-"]
        cells.append("%s, %s" % (ref, fmt(unit, refmed) if refmed else
                                 "n/a") if ref else "-")
        cells.append("%.3gx" % (med / refmed) if med and refmed else "-")
        cells.append(tgt)
        met = "-"
        if target and med is not None and refmed:
            kind, k = target
            ok = med >= k * refmed if kind == "ge" else med <= k * refmed
            met = "yes" if ok else "NO (target missed)"
        elif target:
            met = "n/a"
        if key in NOTES:
            met += " (%s)" % NOTES[key]
        cells.append(met)
        body.append(cells)
        if not name.startswith("("):
            counts["passed" if v else "skipped"] += 1
    w = [max(len(c[i]) for c in [head] + body) for i in range(len(head))]
    line = lambda c: " | ".join(x.ljust(w[i]) for i, x in
                                enumerate(c)).rstrip()
    log(line(head))
    log("-+-".join("-" * x for x in w))
    for c in body:
        log(line(c))
    return counts


def main():
    global QUICK
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pmhost", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    QUICK = args.quick
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    become_subreaper()
    b = Bench(args)
    phases = [("calls", b.calls),
              ("start, no preload", lambda: b.start64("start", False)),
              ("start, preload", lambda: b.start64("start_pre", True)
               if b.preload else NOTES.update(start_pre="no preload key")),
              ("kill, no preload", lambda: b.kill("kill", False)),
              ("kill, preload", lambda: b.kill("kill_pre", True)
               if b.preload else NOTES.update(kill_pre="no preload key")),
              ("preload clone, no host", b.clone),
              ("fork floor", b.fork_floor),
              ("exec floor", b.exec_floor),
              ("supervisord", b.supervisord)]
    try:
        b.setup()
        log("python plugin benchmark (%s), %s, %d CPUs" %
            ("quick" if QUICK else "full", os.uname().release,
             os.cpu_count()))
        for name, fn in phases:
            if not QUICK:
                wait_quiet(30)
            since = cpu_busy()
            try:
                fn()
            except Exception as e:
                FAILED.append("%s: %s" % (name, e))
                traceback.print_exc()
            finally:
                cleanup()
            note("%s: %.1f s, other processes used %.0f%% of the CPUs" %
                 (name, time.monotonic() - since[0], others_share(since)))
        if not b.preload:
            NOTES["start_pre_pss"] = "no preload key"
    except Exception as e:
        FAILED.append(str(e))
        traceback.print_exc()
    finally:
        cleanup()
    counts = table()
    for f in FAILED:
        log("FAILED: %s" % f)
    log("SUMMARY passed=%d failed=%d skipped=%d" %
        (counts["passed"], len(FAILED), counts["skipped"]))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
