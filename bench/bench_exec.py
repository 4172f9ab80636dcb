#!/usr/bin/env python3
"""bench/bench_exec.py - exec.so's figures, each beside its floor.

    bench/bench_exec.py [--quick] --pmhost PATH --plugin-dir DIR --out DIR

Call mode: calls/s of /bin/true for one worker, against a bare C loop of
fork + exec + wait (and, for information, posix_spawn + wait).  Coprocess
mode: round trips/s with a C echo coprocess, against a bare pipe
ping-pong between two processes running the same echo program.  Both
are measured with every process on one CPU and free on all of them: on a
small VM, a wakeup that crosses CPUs costs more than the work measured,
and the scheduler decides where each one lands.  Beside them,
supervisord's cycle for the same /bin/true (start to next start, and
exit to respawn), from its own scratch dir, config and socket.

pmhost's rates are read from `status --json` (its "work" count) at the
two ends of a timed window; floors time themselves with CLOCK_MONOTONIC
around their loop.  The floors and pmhost take turns, never overlapping.
The helpers (plugins/exec/bench/*.c) are built with cc -O2 into OUT.
Everything started is killed by pid at the end (the script is a child
subreaper, so orphans come back to it).  The last line is
"SUMMARY passed=N failed=N skipped=N"; missing a target is not a failure.
"""
import argparse
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER_SRC = os.path.join(ROOT, "plugins", "exec", "bench")
TARGET = 0.8

STARTED = []        # pids of every process started here


def become_subreaper():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except OSError:
        pass


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:].split()[0] not in ("Z", "X")


def my_children():
    """Live processes whose parent is this script (ours or adopted)."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if int(rest[1]) == me and rest[0] not in ("Z", "X"):
            out.append(int(d))
    return out


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_everything():
    """SIGKILL, by pid, whatever is left of what we started; reap it."""
    for _ in range(3):
        pids = [p for p in STARTED if alive(p)] + my_children()
        for p in set(pids):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
        reap()


class CpuMeter:
    """How much of the CPUs processes outside this benchmark took over an
    interval: the machine's busy time (/proc/stat) less this script's own
    and that of every child it has waited for."""

    def __init__(self):
        self.start = self.now()

    @staticmethod
    def now():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        t = os.times()
        return (time.monotonic(),
                (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK"),
                t.user + t.system + t.children_user + t.children_system)

    def others_pct(self):
        reap()
        t1, busy1, ours1 = self.now()
        t0, busy0, ours0 = self.start
        other = max(0.0, (busy1 - busy0) - (ours1 - ours0))
        return other * 100 / ((t1 - t0) * os.cpu_count())


def wait_quiet(limit_s):
    """Waits, at most limit_s, for a half second in which other processes
    take under 5% of the CPUs; False if none came."""
    deadline = time.monotonic() + limit_s
    while True:
        meter = CpuMeter()
        time.sleep(0.5)
        if meter.others_pct() < 5:
            return True
        if time.monotonic() > deadline:
            return False


def pinned(cpu):
    """preexec_fn: run the child (and all it starts) on one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def children_cpu():
    """CPU seconds of every child waited for so far (user + system)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid, waited=False):
    """CPU seconds of a live process, and of its waited-for children if
    waited, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    rest = st[st.rfind(")") + 2:].split()
    ticks = int(rest[11]) + int(rest[12])
    if waited:
        ticks += int(rest[13]) + int(rest[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rfind(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return out


def run_helper(argv, cpu):
    """Runs a floor helper; the nanoseconds it printed and the CPU seconds
    it and its children used."""
    c0 = children_cpu()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, preexec_fn=pinned(cpu))
    STARTED.append(p.pid)
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d" % (argv[0], p.returncode))
    return int(out.split()[0]), children_cpu() - c0


class Bench:

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.bin = os.path.join(self.out, "bin")
        self.run_dir = os.path.join(self.out, "run")
        self.pmhost = os.path.abspath(args.pmhost)
        so = os.path.join(args.plugin_dir, "exec.so")
        if not os.path.exists(so):
            so = os.path.join(args.plugin_dir, "exec", "exec.so")
        self.plugin = os.path.abspath(so)
        self.reps = 3 if args.quick else 10
        self.window = 0.5 if args.quick else 1.0
        self.results = []       # rows for the table
        self.others = []        # (figure, % of the CPUs others took)
        self.passed = self.failed = self.skipped = 0
        self.env = dict(os.environ, PMHOST_RUNDIR=self.run_dir)

    # -- set-up ---------------------------------------------------------

    def build_helpers(self):
        os.makedirs(self.bin, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        for name in ("spawnloop", "pingpong", "echo"):
            subprocess.run([cc, "-O2", "-o", os.path.join(self.bin, name),
                            os.path.join(HELPER_SRC, name + ".c")],
                           check=True)

    def helper(self, name):
        return os.path.join(self.bin, name)

    # -- pmhost ---------------------------------------------------------

    def pm(self, *args, check=True):
        r = subprocess.run([self.pmhost] + list(args), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("pmhost %s: %s" % (" ".join(args),
                                                  r.stderr.strip()))
        return r

    def work_count(self, title):
        doc = json.loads(self.pm("status", "--title", title,
                                 "--json").stdout)
        return sum(w["work"] or 0 for w in doc["masters"][0]["workers"])

    def pm_rate(self, title, params, cpu):
        """Starts a one-worker exec task, counts its calls over a window,
        stops it.  Calls per second, and CPU microseconds per call of the
        worker and its children (a coprocess, or the commands it ran)."""
        cfg = os.path.join(self.out, title + ".json")
        with open(cfg, "w") as f:
            json.dump({"plugin": self.plugin, "baseTitle": title,
                       "maxWorkerNum": 1, "executeTimes": 0,
                       "executeUSleep": 0, "runDir": self.run_dir,
                       "logFile": os.path.join(self.out, title + ".log"),
                       "logLevel": "warning", "params": params}, f)
        p = subprocess.Popen([self.pmhost, "run", cfg, "-d"], env=self.env,
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=pinned(cpu))
        STARTED.append(p.pid)
        _, err = p.communicate(timeout=60)
        if p.returncode != 0:
            raise RuntimeError("pmhost run: %s" % err.strip())
        pidfile = os.path.join(self.run_dir, title + ".pid")
        with open(pidfile) as f:
            master = int(f.read())
        STARTED.append(master)
        try:
            time.sleep(0.1)
            # The worker, not the master's spawner (also its child).
            doc = json.loads(self.pm("status", "--title", title,
                                     "--json").stdout)
            worker = doc["masters"][0]["workers"][0]["pid"]
            co = children_of(worker) if params.get("mode") else []

            def cpu_now():
                return proc_cpu(worker, waited=True) + sum(
                    proc_cpu(c) for c in co)

            n0, t0, c0 = self.work_count(title), time.monotonic(), cpu_now()
            time.sleep(self.window)
            n1, t1, c1 = self.work_count(title), time.monotonic(), cpu_now()
        finally:
            self.pm("stop", "--title", title, "--timeout", "10",
                    check=False)
            reap()
        return (n1 - n0) / (t1 - t0), (c1 - c0) * 1e6 / (n1 - n0)

    # -- floors ---------------------------------------------------------

    def floor_rate(self, argv_for, cpu):
        """Runs a floor helper for about one window; operations per
        second, and CPU microseconds per operation."""
        n = 200
        ns, _ = run_helper(argv_for(n), cpu)
        n = max(200, int(n * self.window * 1e9 / max(ns, 1)))
        ns, secs = run_helper(argv_for(n), cpu)
        return n * 1e9 / ns, secs * 1e6 / n

    # -- supervisord ----------------------------------------------------

    def supervisord_cycles(self):
        """supervisord restarting /bin/true: start-to-start and
        exit-to-respawn intervals in seconds, from its log."""
        d = os.path.join(self.out, "sup")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        conf = os.path.join(d, "supervisord.conf")
        with open(conf, "w") as f:
            f.write("""[unix_http_server]
file={d}/supervisor.sock
chmod=0700

[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
directory={d}
nodaemon=true
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:true]
command=/bin/true
autostart=true
autorestart=true
startsecs=0
startretries=1000000
stdout_logfile=NONE
stderr_logfile=NONE
""".format(d=d))
        p = subprocess.Popen(["supervisord", "-n", "-c", conf], cwd=d,
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        STARTED.append(p.pid)
        try:
            time.sleep(4 if self.args.quick else 10)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        stamp = r"^(\d+-\d+-\d+ \d+:\d+:\d+),(\d+) INFO "
        spawned, exited = [], []
        with open(os.path.join(d, "supervisord.log")) as f:
            for line in f:
                m = re.match(stamp + r"(spawned: 'true'|exited: true)", line)
                if not m:
                    continue
                t = time.mktime(time.strptime(m.group(1),
                                              "%Y-%m-%d %H:%M:%S")) + \
                    int(m.group(2)) / 1000
                (spawned if m.group(3).startswith("spawned") else
                 exited).append(t)
        cycle = [b - a for a, b in zip(spawned, spawned[1:])]
        respawn = []
        for e in exited:
            nxt = [s for s in spawned if s >= e]
            if nxt:
                respawn.append(nxt[0] - e)
        return cycle, respawn

    # -- the figures ----------------------------------------------------

    def compare(self, name, unit, ours_fn, ref_name, ref_fn, extra=None):
        """Measures ours and the reference in turns; one table row."""
        if not self.args.quick and not wait_quiet(30):
            print("  %s: the machine stayed busy; measuring anyway" % name,
                  file=sys.stderr)
        meter = CpuMeter()
        try:
            ours, ref, more = [], [], []
            for _ in range(self.reps):
                ref.append(ref_fn())
                if extra is not None:
                    more.append(extra[1]())
                ours.append(ours_fn())
            self.results.append((name, unit, ours, ref_name, ref,
                                 (extra[0], more) if extra else None))
            self.others.append((name, meter.others_pct()))
            self.passed += 1
        except Exception:
            traceback.print_exc()
            self.results.append((name, unit, None, ref_name, None, None))
            self.failed += 1

    def run(self):
        cpu = sorted(os.sched_getaffinity(0))[0]
        true = ["/bin/true"]
        echo = self.helper("echo")
        for where, c in (("one CPU", cpu), ("all CPUs", None)):
            self.compare(
                "call mode, /bin/true, %s" % where, "calls/s",
                lambda c=c: self.pm_rate("bexec_call", {"command": true}, c),
                "fork+exec+wait loop",
                lambda c=c: self.floor_rate(
                    lambda n: [self.helper("spawnloop"), "fork", str(n)] +
                    true, c),
                ("posix_spawn+wait loop", lambda c=c: self.floor_rate(
                    lambda n: [self.helper("spawnloop"), "spawn", str(n)] +
                    true, c)))
            self.compare(
                "coprocess mode, C echo, %s" % where, "round trips/s",
                lambda c=c: self.pm_rate("bexec_co", {
                    "command": [echo], "mode": "coprocess"}, c),
                "pipe ping-pong",
                lambda c=c: self.floor_rate(
                    lambda n: [self.helper("pingpong"), str(n), echo], c))
        if shutil.which("supervisord") is None:
            self.skipped += 1
            self.sup = None
        else:
            try:
                self.sup = self.supervisord_cycles()
                self.passed += 1
            except Exception:
                traceback.print_exc()
                self.sup = None
                self.failed += 1

    # -- the table ------------------------------------------------------

    def report(self):
        def fig(xs):
            return "%9.1f (%.1f-%.1f)" % (statistics.median(xs), min(xs),
                                          max(xs)) if max(xs) < 100 else \
                "%9.0f (%.0f-%.0f)" % (statistics.median(xs), min(xs),
                                       max(xs))

        def row(name, unit, ours, ref_name, ref, ratio, verdict):
            print("%-34s %-18s %-26s %-22s %-26s %6s  %s" % (
                name, unit, fig(ours), ref_name, fig(ref),
                "-" if ratio is None else "%.2f" % ratio, verdict))

        def over(a, b):
            # A CPU time below the clock's tick reads 0: no ratio then.
            a, b = statistics.median(a), statistics.median(b)
            return a / b if b > 0 else None

        print()
        print("exec.so on %s, %d CPUs; %d runs per figure, median (min-max);"
              % (os.uname().nodename, os.cpu_count(), self.reps))
        print("ratio: pmhost's rate over the reference's (CPU: the "
              "reference's CPU per operation over pmhost's)")
        print("%-34s %-18s %-26s %-22s %-26s %6s  %s" % (
            "figure", "unit", "pmhost exec.so", "reference", "", "ratio",
            "target >= %.1f" % TARGET))
        for name, unit, ours, ref_name, ref, extra in self.results:
            if ours is None:
                print("%-34s %-18s %s" % (name, unit, "FAILED"))
                continue
            o_rate, o_cpu = [x[0] for x in ours], [x[1] for x in ours]
            r_rate, r_cpu = [x[0] for x in ref], [x[1] for x in ref]
            ratio = over(o_rate, r_rate)
            row(name, unit, o_rate, ref_name, r_rate, ratio,
                "met" if ratio is not None and ratio >= TARGET
                else "NOT MET")
            row("", "CPU us per op", o_cpu, "", r_cpu,
                over(r_cpu, o_cpu),
                "(CPU)")
            if extra is not None:
                e_rate = [x[0] for x in extra[1]]
                e_cpu = [x[1] for x in extra[1]]
                row("", unit, o_rate, extra[0], e_rate,
                    over(o_rate, e_rate),
                    "(information)")
                row("", "CPU us per op", o_cpu, "", e_cpu,
                    over(e_cpu, o_cpu),
                    "(information, CPU)")
        for name, pct in self.others:
            print("other processes took %3.0f%% of the CPUs during: %s" %
                  (pct, name))
        if self.sup is None:
            print("supervisord: not measured")
            return
        cycle, respawn = self.sup
        if not cycle:
            print("supervisord: fewer than two starts of /bin/true seen")
            return
        ms = [x * 1000 for x in cycle]
        print("%-34s %-18s %s" % ("supervisord, /bin/true",
                                  "ms start-start", fig(ms)))
        if respawn:
            print("%-34s %-18s %s" % ("", "ms exit-respawn",
                                      fig([x * 1000 for x in respawn])))
        calls = [[x[0] for x in r[2]] for r in self.results
                 if r[0].startswith("call mode") and r[2]]
        if calls:
            ours = [1000 / x for x in calls[-1]]
            print("%-34s %-18s %-26s  %.0fx as many starts" % (
                "pmhost exec.so, /bin/true (all)", "ms start-start",
                fig(ours), statistics.median(ms) / statistics.median(ours)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pmhost", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    become_subreaper()
    b = Bench(args)
    try:
        b.build_helpers()
        b.run()
        b.report()
    except Exception:
        traceback.print_exc()
        b.failed += 1
    finally:
        kill_everything()
    print("SUMMARY passed=%d failed=%d skipped=%d" % (b.passed, b.failed,
                                                      b.skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
