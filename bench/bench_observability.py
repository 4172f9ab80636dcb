#!/usr/bin/env python3
"""bench/bench_observability.py - what observability costs, each figure
beside its target.

    bench/bench_observability.py [--quick] --pmhost PATH --plugin-dir DIR
        --out DIR

1. `status --format prometheus` of one task of 1000 workers: wall time of
   the command (bench/cmdtime.c, CLOCK_MONOTONIC around spawn and wait),
   beside `status` (the table) and `status --json` of the same master in
   the same run.  Target: 50 ms.
2. A scrape of `pmhost exporter` with 10 tasks of 64 workers each: GET
   /metrics from connect to the last byte, beside `status --all --format
   prometheus` of the same masters (one request each, one after another).
   Target: 20 ms.
3. A master's idle wakeups: the voluntary context switches of a master
   over 5 s (/proc/PID/status) with every slot full (64 resident workers,
   one empty call a second each) and checkWorkerInterval 1.  Target: 0.

Workers run an empty plugin built here (cc -O2) into OUT; --plugin-dir is
taken for the suites' common command line and not needed.  Each figure is
the median of N runs (quick: fewer) with min and max; missing a target is
not a failure, the table says so.  Everything started is stopped, then
killed by pid (the script is a child subreaper, so detached masters and
their workers come back to it).  The last line is
"SUMMARY passed=N failed=N skipped=N".
"""
import argparse
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EMPTY_PLUGIN = r"""
#include <pmhost.h>

PMHOST_PLUGIN;

int
work(pm_worker *w, void *state)
{
	(void)w;
	(void)state;
	return PM_CONTINUE;
}
"""

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


def descendants():
    """Live processes below this script (ours, and adopted orphans)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        if rest[0] not in ("Z", "X"):
            parent[int(d)] = int(rest[1])
    out, todo = [], [os.getpid()]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                todo.append(c)
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
        for p in set([p for p in STARTED if alive(p)] + descendants()):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
        reap()


def cpu_s(pid):
    """CPU seconds of a live process so far (its threads' time on a CPU,
    /proc/PID/schedstat, in ns: finer than stat's clock ticks)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e9


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ctx_switches(pid):
    """(voluntary, nonvoluntary) context switches of pid so far."""
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    return (int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", text,
                          re.M).group(1)),
            int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", text,
                          re.M).group(1)))


class Bench:

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.bin = os.path.join(self.out, "bin")
        self.pmhost = os.path.abspath(args.pmhost)
        self.quick = args.quick
        self.rows = []
        self.passed = self.failed = self.skipped = 0
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("WATCHDOG_USEC", None)

    # -- set-up -------------------------------------------------------------

    def build(self):
        os.makedirs(self.bin, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        src = os.path.join(self.bin, "empty.c")
        with open(src, "w") as f:
            f.write(EMPTY_PLUGIN)
        self.plugin = os.path.join(self.bin, "empty.so")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-I",
                        os.path.join(ROOT, "include"), "-o", self.plugin,
                        src], check=True)
        self.cmdtime = os.path.join(self.bin, "cmdtime")
        subprocess.run([cc, "-O2", "-o", self.cmdtime,
                        os.path.join(ROOT, "bench", "cmdtime.c")], check=True)

    def run_dir(self, name):
        d = os.path.join(self.out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, mode=0o700)
        return d

    def start_task(self, rundir, title, workers, interval=300):
        """run -d of a task of `workers` idle resident workers; its pid."""
        cfg = os.path.join(rundir, title + ".json")
        with open(cfg, "w") as f:
            json.dump({"plugin": self.plugin, "baseTitle": title,
                       "maxWorkerNum": workers, "executeTimes": 0,
                       "executeUSleep": 1000000,
                       "checkWorkerInterval": interval,
                       "runDir": rundir}, f)
        r = subprocess.run([self.pmhost, "run", "-d", "--timeout", "300",
                            cfg], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=330)
        if r.returncode != 0:
            raise RuntimeError("run -d %s: %s" % (title, r.stderr.strip()))
        pid = int(re.search(r"\(pid (\d+)", r.stdout).group(1))
        STARTED.append(pid)
        return pid

    def stop_all(self, rundir):
        env = dict(self.env, PMHOST_RUNDIR=rundir)
        subprocess.run([self.pmhost, "stop", "--all", "-q", "--timeout",
                        "60"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)

    def cmd_times(self, n, argv, rundir):
        """Wall times (ms) of n runs of argv, by cmdtime; all must exit 0.
        self.cmd_cpu: the CPU ms of one run (of the command and cmdtime)."""
        env = dict(self.env, PMHOST_RUNDIR=rundir)
        out = os.path.join(self.out, "cmdtime.out")
        c0 = children_cpu_s()
        r = subprocess.run([self.cmdtime, "-o", out, str(n)] + argv,
                           env=env, stdout=subprocess.PIPE, text=True,
                           timeout=600)
        times = []
        for line in r.stdout.splitlines():
            ns, status = line.split()
            if int(status) != 0:
                raise RuntimeError("%s exited %s" % (" ".join(argv), status))
            times.append(int(ns) / 1e6)
        self.cmd_cpu = (children_cpu_s() - c0) * 1e3 / n
        return times

    # -- reporting ----------------------------------------------------------

    def row(self, name, values, unit, target=None, note=""):
        med = statistics.median(values)
        verdict = ""
        if target is not None:
            verdict = "meets" if med <= target else "MISSES"
        self.rows.append((name, med, min(values), max(values), unit, target,
                          verdict, note))

    def note(self, text):
        self.rows.append((text, None, None, None, "", None, "note", ""))

    def skip(self, name, why):
        self.rows.append((name, None, None, None, "", None, "skipped", why))
        self.skipped += 1

    def table(self):
        print()
        print("%-52s %9s %9s %9s %-5s %8s %7s  %s" % (
            "figure", "median", "min", "max", "unit", "target", "ratio",
            "verdict"))
        for name, med, lo, hi, unit, target, verdict, note in self.rows:
            if verdict == "note":
                print(name)
                continue
            if med is None:
                print("%-52s %9s %9s %9s %-5s %8s %7s  %s (%s)" % (
                    name, "-", "-", "-", "", "-", "-", verdict, note))
                continue
            ratio = "-"
            if target:
                ratio = "%.2f" % (med / target)
            print("%-52s %9.2f %9.2f %9.2f %-5s %8s %7s  %s%s" % (
                name, med, lo, hi, unit,
                "-" if target is None else "%g" % target, ratio, verdict,
                (" " + note) if note else ""))

    # -- the figures ----------------------------------------------------------

    def status_1000(self):
        """status --format prometheus of 1000 workers, beside the table."""
        rundir = self.run_dir("run1000")
        n = 5 if self.quick else 31
        try:
            t0 = time.monotonic()
            master = self.start_task(rundir, "obs1000", 1000)
            started = time.monotonic() - t0
            base = [self.pmhost, "status", "--title", "obs1000"]
            m0 = cpu_s(master)
            prom = self.cmd_times(n, base + ["--format", "prometheus"],
                                  rundir)
            master_ms = (cpu_s(master) - m0) * 1e3 / n
            cmd_ms = self.cmd_cpu
            table = self.cmd_times(n, base, rundir)
            js = self.cmd_times(n, base + ["--json"], rundir)
            with open(os.path.join(self.out, "cmdtime.out")) as f:
                workers = len(json.load(f)["masters"][0]["workers"])
            self.row("status --format prometheus, 1000 workers", prom, "ms",
                     50, "(%d workers; started in %.1f s)" % (workers,
                                                              started))
            self.row("  reference: status (table), same master", table,
                     "ms")
            self.row("  reference: status --json, same master", js, "ms")
            self.note("  CPU of one status --format prometheus: command "
                      "%.1f ms, master %.1f ms" % (cmd_ms, master_ms))
            self.passed += 1
        finally:
            self.stop_all(rundir)

    def exporter_scrape(self):
        """A scrape of 10 tasks x 64 workers, beside status --all."""
        rundir = self.run_dir("run10x64")
        n = 5 if self.quick else 31
        exporter = None
        try:
            masters = [self.start_task(rundir, "obs64_%d" % i, 64)
                       for i in range(10)]
            log = open(os.path.join(self.out, "exporter.log"), "w")
            exporter = subprocess.Popen(
                [self.pmhost, "exporter", "--listen", "127.0.0.1:0",
                 "--rundir", rundir], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log)
            STARTED.append(exporter.pid)
            port = None
            deadline = time.monotonic() + 10
            while port is None and time.monotonic() < deadline:
                with open(log.name) as f:
                    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/",
                                  f.read())
                port = int(m.group(1)) if m else None
                time.sleep(0.01)
            if port is None:
                raise RuntimeError("the exporter did not start")
            times, size, series = [], 0, 0
            e0 = m0 = 0.0
            for i in range(n + 1):
                if i == 1:
                    e0 = cpu_s(exporter.pid)
                    m0 = sum(cpu_s(m) for m in masters)
                t0 = time.perf_counter()
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n")
                    got = []
                    while True:
                        chunk = s.recv(1 << 20)
                        if not chunk:
                            break
                        got.append(chunk)
                ms = (time.perf_counter() - t0) * 1e3
                body = b"".join(got)
                if not body.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError("scrape: %r" % body[:80])
                if i > 0:           # the first warms the caches
                    times.append(ms)
                size = len(body)
                series = sum(1 for ln in body.split(b"\n")
                             if ln.startswith(b"pmhost_"))
            exp_ms = (cpu_s(exporter.pid) - e0) * 1e3 / n
            mast_ms = (sum(cpu_s(m) for m in masters) - m0) * 1e3 / n
            ups = re.findall(rb"^pmhost_up\{[^}]*\} 1$",
                             body, re.M)
            if len(ups) != 10:
                raise RuntimeError("scrape: %d masters up" % len(ups))
            ref = self.cmd_times(n, [self.pmhost, "status", "--all",
                                     "--format", "prometheus"], rundir)
            self.row("exporter scrape, 10 tasks x 64 workers", times, "ms",
                     20, "(%d series, %d KiB)" % (series, size // 1024))
            self.row("  reference: status --all --format prometheus", ref,
                     "ms")
            self.note("  CPU of one scrape: exporter %.1f ms, the 10 masters "
                      "%.1f ms in all" % (exp_ms, mast_ms))
            self.passed += 1
        finally:
            if exporter is not None:
                exporter.terminate()
                try:
                    exporter.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    exporter.kill()
            self.stop_all(rundir)

    def idle_wakeups(self):
        """A master's voluntary context switches over 5 s, every slot full."""
        rundir = self.run_dir("runidle")
        span = 5.0
        rounds = 1 if self.quick else 3
        try:
            pid = self.start_task(rundir, "obsidle", 64, interval=1)
            # Let start-up settle: every worker through work_init.
            time.sleep(1.0)
            vol, nonvol = [], []
            for _ in range(rounds):
                v0, n0 = ctx_switches(pid)
                time.sleep(span)
                v1, n1 = ctx_switches(pid)
                vol.append(v1 - v0)
                nonvol.append(n1 - n0)
            self.row("master idle wakeups in 5 s (64 workers, check 1 s)",
                     vol, "", 0, "(voluntary context switches)")
            self.row("  for information: involuntary, same spans", nonvol,
                     "")
            self.passed += 1
        finally:
            self.stop_all(rundir)

    def run(self):
        self.build()
        for name, fn in (("status 1000", self.status_1000),
                         ("exporter 10x64", self.exporter_scrape),
                         ("idle wakeups", self.idle_wakeups)):
            try:
                fn()
            except Exception as e:          # noqa: BLE001 - report, go on
                traceback.print_exc()
                self.rows.append((name, None, None, None, "", None,
                                  "FAILED", str(e)))
                self.failed += 1
        self.table()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pmhost", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    become_subreaper()
    b = Bench(args)
    try:
        b.run()
    finally:
        kill_everything()
    left = [p for p in descendants() if alive(p)]
    if left:
        print("left over: %s" % left)
        b.failed += 1
    print("SUMMARY passed=%d failed=%d skipped=%d" %
          (b.passed, b.failed, b.skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
