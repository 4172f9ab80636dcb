#!/usr/bin/env python3
"""bench/bench_php.py - PHP tasks under pmhost, next to process_manage (the
PHP original) running the same closures, in the same run.

    python3 bench/bench_php.py [--quick] --pmhost PATH --plugin-dir DIR
                               --out SCRATCHDIR [--seed DIR] [--php PHP]

DIR holds php.so (the build's plugins/php, or its plugins/).  The original
is loaded from --seed (default: the first of $PMHOST_PHP_SEED,
ROOT/../shared/seed/process_manage, /work/shared/seed/process_manage) by a
small PSR-4 autoloader written into SCRATCHDIR, and run by php-cli (which
must have pcntl and posix).  Both sides run the very same closures file.

Figures (each next to its reference, with median, min, max, the ratio and
the target):
  start1, start64  pmhost run / php start.php -> the last worker's first
                   call (timestamps: CLOCK_MONOTONIC right before exec, by
                   bench/launch.c, and hrtime() in the closure)
  lives            executeTimes 1, executeUSleep 0, 4 workers: worker lives
                   per second over a window
  dispatch         an empty closure called back to back: calls/s in one
                   worker, and in a plain PHP loop in a php-cli process
  pss              PSS per worker with 64 workers up
  status, stop     pmhost status / stop of 64 PHP workers, next to 64 C
                   workers (plugins/hello) and to the original's
  driver           the plugin's preload path without the host
                   (php-preload-driver: work_preload, then workers cloned
                   from it): start -> first call, PSS; stated only
pmhost is measured without preload and, when this pmhost knows the
`preload` config key, with it (otherwise those rows are skipped).

Everything it starts is tracked by pid; it is a child subreaper, and at the
end it SIGKILLs each remaining descendant by pid.  Exit 0 when it ran to
the end; the last line is "SUMMARY passed=N failed=N skipped=N" (a figure
that could not be measured is skipped, a crash is a failure; a missed
target is not a failure: the table says so).
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEC = 1000000000
MS = 1000000

A = None            # parsed arguments
STARTED = {}        # pid -> Popen
REAPED = {}         # pid -> wait status
R = {}              # figure -> samples
NOTES = {}          # figure -> note
SKIPPED = {}        # figure -> why
FAILED = {}         # figure -> error
PRELOAD = {"ok": None, "why": ""}


def note(msg):
    print("  " + msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------ processes

def become_subreaper():
    """Orphans of what we start (workers of a killed master) come back to
    us, so that the end can find and kill them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except OSError:
        pass


def spawn(argv, log=None, env=None, cwd=None):
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT if log else None,
                             env=env, cwd=cwd, close_fds=True)
    finally:
        if log:
            out.close()
    STARTED[p.pid] = p
    return p.pid


def reap():
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        REAPED[pid] = st
        p = STARTED.get(pid)
        if p is not None and p.returncode is None:
            p.returncode = os.waitstatus_to_exitcode(st)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] not in ("Z", "X")


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while True:
        reap()
        if not any(alive(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            rest = st[st.rfind(")") + 2:].split()
            if int(rest[1]) == pid and rest[0] not in ("Z", "X"):
                out.append(int(d))
    return out


def descendants():
    kids, todo, out = {}, [os.getpid()], []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            kids.setdefault(int(st[st.rfind(")") + 2:].split()[1]),
                            []).append(int(d))
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def end_proc(pid, timeout=15):
    """SIGTERM, then SIGKILL after timeout; waits for it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone([pid], timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone([pid], 5)


def cleanup():
    """Kills, by pid, every descendant still alive; returns how many."""
    n = 0
    for _ in range(3):
        pids = [p for p in descendants() if alive(p)]
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                n += 1
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap()
    reap()
    return n


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return None


# ------------------------------------------------------------ records

class Records:
    """Lines "KIND PID NS [VALUE]" that the closures append."""

    def __init__(self, path):
        self.path = path
        open(path, "wb").close()

    def read(self, kind=None):
        out = []
        with open(self.path, "rb") as f:
            for ln in f.read().split(b"\n"):
                p = ln.split()
                if len(p) >= 3 and (kind is None or p[0].decode() == kind):
                    out.append((p[0].decode(), int(p[1]), int(p[2]),
                                int(p[3]) if len(p) > 3 else 0,
                                int(p[4]) if len(p) > 4 else 0))
        return out

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            items = self.read()
            if pred(items):
                return items
            if time.monotonic() > deadline:
                raise RuntimeError("timed out after %.0f s waiting for %s"
                                   % (timeout, what))
            reap()
            time.sleep(0.003)


def first_calls(items):
    """{pid: ns of its first call}."""
    out = {}
    for kind, pid, ns, _, _ in items:
        if kind == "FIRST" and pid not in out:
            out[pid] = ns
    return out


def read_ts(path):
    with open(path) as f:
        return int(f.read().replace("\0", " ").split()[0])


# ------------------------------------------------------------ the scripts

# The closures both sides run.  $rec is the records file; RECORD_FIRST
# writes once per process.
CLOSURES = {
    "first": r"""
$work = function ($process, $init = null) use ($rec) {
    static $seen = false;
    if (!$seen) {
        $seen = true;
        file_put_contents($rec, 'FIRST ' . getmypid() . ' ' . hrtime(true)
            . "\n", FILE_APPEND);
    }
};
$init = null;
""",
    "linger": r"""
$work = function ($process, $init = null) use ($rec) {
    file_put_contents($rec, 'FIRST ' . getmypid() . ' ' . hrtime(true)
        . "\n", FILE_APPEND);
    usleep(1000000);            // alive while the harness reads PSS
};
$init = null;
""",
    "lives": r"""
$work = function ($process, $init = null) use ($rec) {
    file_put_contents($rec, 'LIFE ' . getmypid() . ' ' . hrtime(true)
        . "\n", FILE_APPEND);
};
$init = null;
""",
    "dispatch": r"""
$work = function ($process, $init = null) {
};
$cpu = function () {
    $u = getrusage();
    return $u['ru_utime.tv_sec'] * 1000000 + $u['ru_utime.tv_usec']
        + $u['ru_stime.tv_sec'] * 1000000 + $u['ru_stime.tv_usec'];
};
$init = function ($process) use ($rec, $cpu) {
    file_put_contents($rec, 'START ' . getmypid() . ' ' . hrtime(true)
        . ' 0 ' . $cpu() . "\n", FILE_APPEND);
    register_shutdown_function(function () use ($process, $rec, $cpu) {
        file_put_contents($rec, 'COUNT ' . getmypid() . ' ' . hrtime(true)
            . ' ' . $process->getExecuteTimes() . ' ' . $cpu() . "\n",
            FILE_APPEND);
    });
};
""",
}

AUTOLOAD = r"""<?php
// PSR-4 for ProcessManage\ over the original's src/ (no composer here).
spl_autoload_register(function ($class) {
    $prefix = 'ProcessManage\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = %(src)s . '/' . str_replace('\\', '/',
        substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
"""


def php_str(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def closures_file(name, kind, rec):
    return write(os.path.join(A.out, "php", name + ".closures.php"),
                 "<?php\n$rec = %s;\n%s" % (php_str(rec), CLOSURES[kind]))


def task_config(name, workers, keys):
    """process_manage's $config for the same task as the JSON."""
    cfg = {"titlePrefix": "pmbench", "baseTitle": name,
           "maxWorkerNum": workers}
    cfg.update(keys)
    return cfg


def php_array(d):
    return "[" + ", ".join("%s => %s" % (php_str(k), json.dumps(v))
                           for k, v in d.items()) + "]"


def orig_script(name, kind, rec, workers, keys):
    """The original's start script: autoloader, its dirs in scratch, the
    closures, Manage(...)->start()."""
    closures = closures_file("orig-" + name, kind, rec)
    base = os.path.join(A.out, "orig", name)
    return write(os.path.join(A.out, "php", "orig-%s.php" % name), """<?php
require %(autoload)s;
use ProcessManage\\Config\\ProcessConfig;
use ProcessManage\\Config\\LogConfig;
use ProcessManage\\Process\\Manage;
ProcessConfig::LoadConfig(['PidRoot' => %(pid)s,
    'StatusFileRoot' => %(status)s]);
LogConfig::LoadConfig(['LogBaseRoot' => %(log)s]);
require %(closures)s;
$config = %(config)s;
(new Manage($config))->setWorkInit($init)->setWork($work)->start();
""" % {"autoload": php_str(os.path.join(A.out, "orig", "autoload.php")),
       "pid": php_str(base + "/pid"), "status": php_str(base + "/status"),
       "log": php_str(base + "/log"), "closures": php_str(closures),
       "config": php_array(task_config(name, workers, keys))})


def pm_script(name, kind, rec, workers, keys, preload):
    """pmhost's config and script: the same closures, the same Manage call,
    the JSON config with the same values."""
    closures = closures_file("pm-" + name, kind, rec)
    script = write(os.path.join(A.out, "php", "pm-%s.php" % name), """<?php
require %(closures)s;
$config = %(config)s;
(new ProcessManage\\Process\\Manage($config))->setWorkInit($init)
    ->setWork($work)->start();
""" % {"closures": php_str(closures),
       "config": php_array(task_config(name, workers, keys))})
    cfg = {"plugin": A.php_so, "titlePrefix": "pmbench", "baseTitle": name,
           "maxWorkerNum": workers, "runDir": os.path.join(A.out, "run"),
           "params": {"script": script}}
    cfg.update(keys)
    if preload:
        cfg["preload"] = True
    return write(os.path.join(A.out, "cfg", name + ".json"), json.dumps(cfg))


def c_config(name, workers):
    cfg = {"plugin": A.hello_so, "titlePrefix": "pmbench", "baseTitle": name,
           "maxWorkerNum": workers, "runDir": os.path.join(A.out, "run"),
           "executeTimes": 0, "executeUSleep": 600000000,
           "params": {"greeting": "hi"}}
    return write(os.path.join(A.out, "cfg", name + ".json"), json.dumps(cfg))


def pm_env():
    return dict(os.environ, PMHOST_RUNDIR=os.path.join(A.out, "run"))


# ------------------------------------------------------------ measuring

def add(key, v):
    R.setdefault(key, []).append(v)


def reps(full, quick):
    return quick if A.quick else full


def launch(argv, log):
    """Starts argv through launch (timestamp right before exec); its pid
    and the timestamp file."""
    ts = os.path.join(A.out, "ts-%d" % time.monotonic_ns())
    return spawn([os.path.join(A.out, "bin", "launch"), ts] + argv,
                 log=log, env=pm_env()), ts


def cmdtime(n, argv):
    """Wall times (ns) and statuses of n runs of argv, one after another."""
    r = subprocess.run([os.path.join(A.out, "bin", "cmdtime"), str(n)] + argv,
                       capture_output=True, text=True, env=pm_env(),
                       timeout=600)
    out = []
    for ln in r.stdout.split("\n"):
        p = ln.split()
        if len(p) == 2:
            out.append((int(p[0]), int(p[1])))
    return out


def variants():
    """(label, runner) pairs: the original, pmhost, pmhost with preload."""
    out = []
    if A.seed_src:
        out.append(("orig", None))
    out.append(("pm", False))
    if PRELOAD["ok"]:
        out.append(("pmpre", True))
    else:
        for k in ("start1", "start64", "lives", "pss"):
            SKIPPED["%s.pmpre" % k] = ("this pmhost does not know the "
                                       "`preload` key: %s" % PRELOAD["why"])
    return out


def start_task(label, name, kind, rec, workers, keys, log):
    """Starts the task under label's runner; (master pid, ts file)."""
    if label == "orig":
        script = orig_script(name, kind, rec, workers, keys)
        return launch([A.php, script], log)
    cfg = pm_script(name, kind, rec, workers, keys, label == "pmpre")
    return launch([A.pmhost, "run", cfg], log)


def workers_of(master):
    """The master's workers: its children but its spawner process."""
    out = []
    for p in children_of(master):
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                title = f.read()
        except OSError:
            continue
        if b":Spawner:" not in title:
            out.append(p)
    return out


def stop_task(label, name, master):
    """Stops the task; the ns the stop took (command to all gone)."""
    pids = [master] + workers_of(master)
    t0 = time.monotonic_ns()
    if label == "orig":
        # Its master can miss a SIGTERM that comes while it forks (the
        # handler runs at the loop's top, after a blocking wait): say it
        # again each second, as an operator would.
        for _ in range(30):
            os.kill(master, signal.SIGTERM)
            ok = wait_gone(pids, 1)
            if ok:
                break
    else:
        subprocess.run([A.pmhost, "stop", "--title", name], env=pm_env(),
                       capture_output=True, timeout=60)
        ok = wait_gone(pids, 30)
    took = time.monotonic_ns() - t0
    if not ok:
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        wait_gone(pids, 5)
        raise RuntimeError("%s %s: not all gone 30 s after stop" %
                           (label, name))
    return took


def m_start(n):
    """start -> the n-th worker's first call; with 64, also PSS per worker,
    status and stop."""
    key = "start%d" % n
    for label, _ in variants():
        runs = reps(10, 3) if n == 1 else reps(3, 1)
        for i in range(runs):
            name = "%s_%s_%d" % (key, label, i)
            rec = Records(os.path.join(A.out, "rec", name))
            log = os.path.join(A.out, "log", name + ".log")
            master, ts = start_task(label, name, "first", rec.path, n,
                                    {"executeTimes": 0,
                                     "executeUSleep": 600000000,
                                     "checkWorkerInterval": 300}, log)
            try:
                items = rec.wait(lambda it: len(first_calls(it)) >= n,
                                 30 + n * 0.2, "%d first calls" % n)
                firsts = sorted(first_calls(items).values())
                add("%s.%s" % (key, label), firsts[n - 1] - read_ts(ts))
                if n == 64:
                    measure_64(label, name, master)
                else:
                    stop_task(label, name, master)
            finally:
                end_proc(master)


def measure_64(label, name, master):
    """PSS per worker, status and stop, with 64 workers up."""
    workers = workers_of(master)
    kb = [pss_kb(p) for p in workers]
    kb = [k for k in kb if k is not None]
    if kb:
        add("pss.%s" % label, sum(kb) / len(kb) / 1024)
    if label != "orig":
        for ns, st in cmdtime(reps(30, 5), [A.pmhost, "status", "--title",
                                            name]):
            if st == 0:
                add("status.%s" % label, ns)
    else:
        status = write(os.path.join(A.out, "php", "orig-status.php"), """<?php
require %s;
use ProcessManage\\Config\\ProcessConfig;
use ProcessManage\\Process\\Manage;
ProcessConfig::LoadConfig(['PidRoot' => %s, 'StatusFileRoot' => %s]);
Manage::showStatus((new Manage(%s))->status(), true);
""" % (php_str(os.path.join(A.out, "orig", "autoload.php")),
            php_str(os.path.join(A.out, "orig", name, "pid")),
            php_str(os.path.join(A.out, "orig", name, "status")),
            php_array({"titlePrefix": "pmbench", "baseTitle": name})))
        for ns, st in cmdtime(reps(3, 1), [A.php, status]):
            if st == 0:
                add("status.orig", ns)
    add("stop.%s" % label, stop_task(label, name, master))


def m_driver():
    """The plugin's preload path without the host: php-preload-driver runs
    work_preload, then clones N workers from it (as the host's preload
    will); start -> the last first call, and PSS with 64 workers up."""
    if not A.driver:
        for k in ("start1", "start64", "pss"):
            SKIPPED[k + ".driver"] = "no php-preload-driver beside php.so"
        return
    for n, runs in ((1, reps(10, 3)), (64, reps(3, 1))):
        for i in range(runs):
            name = "driver%d_%d" % (n, i)
            rec = Records(os.path.join(A.out, "rec", name))
            script = pm_script(name, "linger" if n == 64 else "first",
                               rec.path, n, {}, False)
            with open(script) as f:
                params = json.load(f)["params"]
            pid, ts = launch([A.driver, A.php_so, json.dumps(params),
                              os.path.dirname(script), str(n), "1"],
                             os.path.join(A.out, "log", name + ".log"))
            try:
                items = rec.wait(lambda it: len(first_calls(it)) >= n,
                                 30 + n * 0.2, "%d first calls" % n)
                firsts = sorted(first_calls(items).values())
                add("start%d.driver" % n, firsts[n - 1] - read_ts(ts))
                if n == 64:
                    kb = [pss_kb(p) for p in children_of(pid)]
                    kb = [k for k in kb if k is not None]
                    if kb:
                        add("pss.driver", sum(kb) / len(kb) / 1024)
                wait_gone([pid], 30)
            finally:
                end_proc(pid)


def m_c64():
    """The C figures: status and stop of 64 workers of plugins/hello."""
    if not A.hello_so:
        SKIPPED["status.c"] = SKIPPED["stop.c"] = "no hello.so found"
        return
    for i in range(reps(3, 1)):
        name = "c64_%d" % i
        cfg = c_config(name, 64)
        master = spawn([A.pmhost, "run", cfg],
                       log=os.path.join(A.out, "log", name + ".log"),
                       env=pm_env())
        try:
            deadline = time.monotonic() + 30
            while len(workers_of(master)) < 64:
                if time.monotonic() > deadline:
                    raise RuntimeError("64 C workers did not start")
                time.sleep(0.01)
            time.sleep(0.2)
            for ns, st in cmdtime(reps(30, 5), [A.pmhost, "status",
                                                "--title", name]):
                if st == 0:
                    add("status.c", ns)
            add("stop.c", stop_task("c", name, master))
        finally:
            end_proc(master)


def m_lives():
    """executeTimes 1, executeUSleep 0, 4 workers: lives per second."""
    window = 2.0 if A.quick else 10.0
    warm = 0.5 if A.quick else 1.0
    for label, _ in variants():
        name = "lives_%s" % label
        rec = Records(os.path.join(A.out, "rec", name))
        master, ts = start_task(label, name, "lives", rec.path, 4,
                                {"executeTimes": 1, "executeUSleep": 0,
                                 "checkWorkerInterval": 300},
                                os.path.join(A.out, "log", name + ".log"))
        try:
            rec.wait(lambda it: len(it) >= 4, 30, "4 first lives")
            t0 = time.monotonic_ns() + int(warm * SEC)
            time.sleep(warm + window)
            t1 = t0 + int(window * SEC)
            n = sum(1 for _, _, ns, _, _ in rec.read("LIFE")
                    if t0 <= ns < t1)
            add("lives.%s" % label, n / window)
            stop_task(label, name, master)
        finally:
            end_proc(master)


def m_dispatch():
    """An empty closure back to back: calls per second of wall time and
    per CPU second (steal-proof on a shared machine) in one worker, and in
    a plain PHP loop in a php-cli process; the runs alternate."""
    secs = 2 if A.quick else 5     # limitSeconds: whole seconds
    closures = closures_file("loop", "dispatch", os.devnull)
    loop = write(os.path.join(A.out, "php", "loop.php"), """<?php
require %s;
$process = new stdClass;
$n = 0;
$c0 = $cpu();
$t0 = hrtime(true);
$end = $t0 + %g * 1000000000;
do {
    for ($i = 0; $i < 4096; $i++) {
        $work($process, null);
    }
    $n += 4096;
} while (($now = hrtime(true)) < $end);
echo $n / (($now - $t0) / 1e9), " ", $n / (($cpu() - $c0) / 1e6), "\\n";
""" % (php_str(closures), secs))
    for i in range(reps(3, 1)):
        for label, _ in variants():
            if label == "pmpre":
                continue        # one worker's calls: preload changes nothing
            name = "dispatch_%s_%d" % (label, i)
            rec = Records(os.path.join(A.out, "rec", name))
            master, ts = start_task(label, name, "dispatch", rec.path, 1,
                                    {"executeTimes": 0, "executeUSleep": 0,
                                     "limitSeconds": secs,
                                     "checkWorkerInterval": 300},
                                    os.path.join(A.out, "log",
                                                 name + ".log"))
            try:
                items = rec.wait(lambda it: any(x[0] == "COUNT"
                                                for x in it),
                                 secs + 30, "the worker's call count")
                start = [x for x in items if x[0] == "START"][0]
                end = [x for x in items if x[0] == "COUNT"][0]
                add("dispatch.%s" % label,
                    end[3] / ((end[2] - start[2]) / SEC))
                add("dispatch_cpu.%s" % label,
                    end[3] / ((end[4] - start[4]) / 1e6))
                stop_task(label, name, master)
            finally:
                end_proc(master)
        r = subprocess.run([A.php, loop], capture_output=True, text=True,
                           timeout=secs + 60)
        wall, cpu = (float(x) for x in r.stdout.split())
        add("dispatch.loop", wall)
        add("dispatch_cpu.loop", cpu)


# ------------------------------------------------------------ the table

# figure: (title, unit, scale, subject, reference, target text, target test)
def ratio_le(limit):
    return lambda s, ref: s <= limit * ref


def ratio_ge(limit):
    return lambda s, ref: s >= limit * ref


ROWS = [
    ("start1.pm", "start -> first call, 1 worker", "ms", MS, "start1.orig",
     "<= 0.1x original", ratio_le(0.1)),
    ("start1.pmpre", "  with preload", "ms", MS, "start1.orig",
     "<= 0.1x original", ratio_le(0.1)),
    ("start1.driver", "  plugin's preload path, no host", "ms", MS,
     "start1.orig", "(stated)", None),
    ("start64.pm", "start -> first call, 64 workers", "ms", MS,
     "start64.orig", "<= 0.1x original", ratio_le(0.1)),
    ("start64.pmpre", "  with preload", "ms", MS, "start64.orig",
     "<= 0.1x original", ratio_le(0.1)),
    ("start64.driver", "  plugin's preload path, no host", "ms", MS,
     "start64.orig", "(stated)", None),
    ("lives.pmpre", "worker lives/s (4 workers, 1 call each)", "/s", 1,
     "lives.orig", ">= 2x original", ratio_ge(2)),
    ("lives.pm", "  without preload", "/s", 1, "lives.orig",
     "(stated)", None),
    ("dispatch.pm", "empty closure calls/s, one worker", "/s", 1,
     "dispatch.loop", ">= 0.8x plain PHP loop", ratio_ge(0.8)),
    ("dispatch.orig", "  the original's worker", "/s", 1, "dispatch.loop",
     "(stated)", None),
    ("dispatch_cpu.pm", "  per CPU second", "/cpu-s", 1, "dispatch_cpu.loop",
     ">= 0.8x plain PHP loop", ratio_ge(0.8)),
    ("dispatch_cpu.orig", "  the original's, per CPU second", "/cpu-s", 1,
     "dispatch_cpu.loop", "(stated)", None),
    ("pss.pm", "PSS per worker, 64 workers", "MiB", 1, "pss.orig",
     "<= original", ratio_le(1)),
    ("pss.pmpre", "  with preload", "MiB", 1, "pss.orig", "<= original",
     ratio_le(1)),
    ("pss.driver", "  plugin's preload path, no host", "MiB", 1, "pss.orig",
     "(stated)", None),
    ("status.pm", "pmhost status, 64 PHP workers", "ms", MS, "status.c",
     "~ C figure", ratio_le(1.5)),
    ("stop.pm", "pmhost stop, 64 PHP workers", "ms", MS, "stop.c",
     "~ C figure", ratio_le(1.5)),
    ("status.orig", "  original's status()", "ms", MS, None, "(stated)",
     None),
    ("stop.orig", "  original's stop (SIGTERM -> all gone)", "ms", MS, None,
     "(stated)", None),
]


def fmt(v, scale):
    v = v / scale
    return "%.3g" % v if v < 100 else "%.0f" % v


def table():
    passed = skipped = 0
    print()
    print("%-44s %9s %9s %9s %-5s | %9s %-16s %7s  %s" % (
        "figure", "median", "min", "max", "unit", "reference", "",
        "ratio", "target"))
    print("-" * 130)
    for key, title, unit, scale, ref, target, test in ROWS:
        s = R.get(key)
        if key in FAILED:
            print("%-44s FAILED: %s" % (title, FAILED[key]))
            continue
        if not s:
            why = SKIPPED.get(key) or NOTES.get(key) or "not measured"
            print("%-44s skipped: %s" % (title, why))
            skipped += 1
            continue
        passed += 1
        med = statistics.median(s)
        line = "%-44s %9s %9s %9s %-5s" % (title, fmt(med, scale),
                                           fmt(min(s), scale),
                                           fmt(max(s), scale), unit)
        if ref and R.get(ref):
            rmed = statistics.median(R[ref])
            ratio = med / rmed if rmed else float("nan")
            met = "" if test is None else (" met" if test(med, rmed)
                                           else " NOT met")
            line += " | %9s %-16s %6.3gx  %s%s" % (
                fmt(rmed, scale), ref, ratio, target, met)
        elif ref:
            line += " | %9s %-16s %7s  %s" % ("-", ref, "-", target)
        else:
            line += " | %9s %-16s %7s  %s" % ("", "", "", target)
        if key in NOTES:
            line += "  (" + NOTES[key] + ")"
        print(line)
    print("\nsamples: %s" % ", ".join("%s=%d" % (k, len(v))
                                       for k, v in sorted(R.items())))
    return passed, skipped


# ------------------------------------------------------------ set-up

def find_seed():
    cands = [A.seed, os.environ.get("PMHOST_PHP_SEED"),
             os.path.join(ROOT, "..", "shared", "seed", "process_manage"),
             "/work/shared/seed/process_manage"]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "src", "Process",
                                             "Manage.php")):
            return os.path.abspath(os.path.join(c, "src"))
    return None


def setup():
    for d in ("bin", "php", "cfg", "rec", "log", "run", "orig"):
        os.makedirs(os.path.join(A.out, d), exist_ok=True)
    for tool in ("launch", "cmdtime"):
        subprocess.run(["gcc", "-O2", "-o", os.path.join(A.out, "bin", tool),
                        os.path.join(ROOT, "bench", tool + ".c")], check=True)
    A.php_so = None
    for c in (os.path.join(A.plugin_dir, "php.so"),
              os.path.join(A.plugin_dir, "php", "php.so")):
        if os.path.isfile(c):
            A.php_so = os.path.abspath(c)
            break
    if A.php_so is None:
        raise SystemExit("bench_php: no php.so in %s" % A.plugin_dir)
    A.driver = os.path.join(os.path.dirname(A.php_so), "php-preload-driver")
    if not os.access(A.driver, os.X_OK):
        A.driver = None
    A.hello_so = None
    for c in (os.path.join(A.plugin_dir, "..", "hello", "hello.so"),
              os.path.join(A.plugin_dir, "hello", "hello.so"),
              os.path.join(os.path.dirname(os.path.dirname(A.pmhost)),
                           "plugins", "hello", "hello.so")):
        if os.path.isfile(c):
            A.hello_so = os.path.abspath(c)
            break
    A.seed_src = find_seed()
    if A.seed_src is None:
        for k in ("start1", "start64", "lives", "dispatch", "pss", "status",
                  "stop"):
            SKIPPED[k + ".orig"] = "process_manage not found (--seed)"
    elif shutil.which(A.php) is None:
        A.seed_src = None
        for k in ("start1", "start64", "lives", "dispatch", "pss", "status",
                  "stop"):
            SKIPPED[k + ".orig"] = "no %s" % A.php
    else:
        write(os.path.join(A.out, "orig", "autoload.php"),
              AUTOLOAD % {"src": php_str(A.seed_src)})
    # Does this pmhost know `preload`?
    probe = write(os.path.join(A.out, "cfg", "preload-probe.json"),
                  json.dumps({"plugin": A.php_so, "baseTitle": "probe",
                              "preload": True,
                              "params": {"script": os.path.join(
                                  A.out, "php", "probe.php")}}))
    write(os.path.join(A.out, "php", "probe.php"),
          "<?php return ['work' => function () {}];\n")
    r = subprocess.run([A.pmhost, "check", probe], capture_output=True,
                       text=True, env=pm_env(), timeout=60)
    PRELOAD["ok"] = r.returncode == 0
    PRELOAD["why"] = r.stderr.strip().splitlines()[-1] if r.stderr else ""


def main():
    global A
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pmhost", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed")
    ap.add_argument("--php", default="php8.2" if shutil.which("php8.2")
                    else "php")
    ap.add_argument("--only", help="comma-separated phases: start1, "
                    "start64, driver, c64, lives, dispatch")
    A = ap.parse_args()
    A.pmhost = os.path.abspath(A.pmhost)
    A.out = os.path.abspath(A.out)
    become_subreaper()
    failed = 0
    try:
        setup()
        print("pmhost %s, php.so %s, original %s, preload %s" % (
            A.pmhost, A.php_so, A.seed_src or "-",
            "yes" if PRELOAD["ok"] else "no (%s)" % PRELOAD["why"]),
            flush=True)
        phases = {"start1": lambda: m_start(1),
                  "start64": lambda: m_start(64), "driver": m_driver,
                  "c64": m_c64, "lives": m_lives, "dispatch": m_dispatch}
        only = A.only.split(",") if A.only else list(phases)
        for name in only:
            phase = phases[name]
            try:
                phase()
            except Exception as e:      # a crash: say it, go on
                traceback.print_exc()
                FAILED[name] = str(e)
                failed += 1
            finally:
                cleanup()
    finally:
        left = cleanup()
    passed, skipped = table()
    if left:
        print("%d processes were still alive at the end and were killed" %
              left)
    for k, v in FAILED.items():
        print("FAILED %s: %s" % (k, v))
    print("SUMMARY passed=%d failed=%d skipped=%d" % (passed, failed,
                                                      skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
