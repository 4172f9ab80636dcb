"""Robustness: no wedged master, no orphaned requests, clean
daemonization, atomic groups of tasks, valid output whatever the bytes.

Each test reproduces a way a master could be wedged, fooled or made to
spin, and checks what a user would see instead."""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import SLOW, alive


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RobustnessTest(harness.PmTest):

    def sock(self, title=None):
        return os.path.join(self.rundir, (title or self.title) + ".sock")

    def raw(self, data, timeout=5):
        """Sends raw bytes on NAME.sock, half-closes, reads the answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout * SLOW)
        s.connect(self.sock())
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out

    def chatty(self, **keys):
        """Workers that each write a log line, a stdout and a stderr line
        every millisecond."""
        keys.setdefault("maxWorkerNum", 3)
        return self.resident(executeUSleep=1000,
                             params={"log": 1, "print": 1}, **keys)

    def calls(self):
        return sum(w["work"] or 0 for w in self.master_json()["workers"])


class TestStalledLog(RobustnessTest):
    """The log's reader stalls or goes away: the master keeps working."""

    def pipeline(self, cfg, reader):
        """`pmhost run CFG 2>&1 | READER` in a session of its own; the
        Popen of the shell."""
        return self.spawn(["setsid", "sh", "-c", '"$0" run "$1" 2>&1 | %s'
                           % reader, harness.PMHOST, cfg])

    def test_a_stalled_reader_does_not_wedge_stop(self):
        cfg = self.chatty(stopTimeout=2)
        self.pipeline(cfg, "sleep 600")
        self.wait_master()
        # Far more than a pipe holds has been written by now.
        self.wait_for(lambda: self.calls() > 3000, "3000 chatty calls",
                      timeout=30)
        before = {w["slot"]: w["pid"] for w in self.master_json()["workers"]}
        self.assertTrue(all(w["restarts"] == 0 and w["failures"] == 0
                            for w in self.master_json()["workers"]))
        mpid = self.masters()[0]
        t0 = time.monotonic()
        r = self.pm("stop", "--title", self.title, "--timeout", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertFalse(alive(mpid))
        self.wait_gone(before.values(), "workers gone")

    def test_a_reader_that_exits_does_not_crash_the_workers(self):
        cfg = self.chatty()
        self.pipeline(cfg, "head -2")
        self.wait_master()
        pids = self.wait_for(lambda: (lambda w: len(w) == 3 and w)(
            sorted(self.workers())), "3 workers")
        # Long after head has gone, the same workers are still calling.
        self.wait_for(lambda: self.calls() > 3000, "3000 calls", timeout=30)
        self.assertEqual(sorted(self.workers()), pids)
        for w in self.master_json()["workers"]:
            self.assertEqual((w["restarts"], w["failures"]), (0, 0), w)
        self.pm("stop", "--title", self.title, check=0)
        self.wait_for(lambda: not self.masters(), "master gone")


class TestDaemonization(RobustnessTest):

    def test_run_d_does_not_keep_the_callers_descriptors(self):
        cfg = self.resident(maxWorkerNum=1)
        lock = self.path("deploy.lock")
        r = subprocess.run(["flock", lock, harness.PMHOST, "run", "-d", cfg],
                           env=self.env, timeout=20 * SLOW,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_master()
        # The master does not hold deploy.lock: it is free at once.
        r = subprocess.run(["flock", "-n", lock, "true"], timeout=10)
        self.assertEqual(r.returncode, 0)
        mpid = self.masters()[0]
        fds = sorted(os.readlink("/proc/%d/fd/%s" % (mpid, fd))
                     for fd in os.listdir("/proc/%d/fd" % mpid))
        self.assertFalse(any("deploy.lock" in f for f in fds), fds)
        self.pm("stop", "--title", self.title, check=0)

    def test_command_substitution_of_run_d_returns(self):
        cfg = self.resident(maxWorkerNum=1)
        # The caller waits for EOF on the pipe that is also fd 7.
        r = subprocess.run(["sh", "-c", 'out=$("$0" run -d "$1" 7>&1); '
                            'echo "done:$out"', harness.PMHOST, cfg],
                           env=self.env, timeout=20 * SLOW,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("done:"), r.stdout)
        self.pm("stop", "--title", self.title, check=0)

    def test_a_log_fifo_is_refused_at_once(self):
        fifo = self.path("log.fifo")
        os.mkfifo(fifo)
        cfg = self.resident(maxWorkerNum=1)
        t0 = time.monotonic()
        r = self.pm("run", "-d", cfg, "--log-file", fifo, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a regular file", r.stderr)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertEqual(self.tagged_pids(), [])


class TestRequests(RobustnessTest):

    def test_requests_whose_clients_gave_up_are_dropped(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        mpid = self.masters()[0]
        os.kill(mpid, signal.SIGSTOP)
        try:
            scale = self.start("scale", "--title", self.title, "3")
            wakeup = self.start("wakeup", "--title", self.title)
            for c in (scale, wakeup):
                self.assertEqual(self.wait_exit(c, timeout=20), 1)
                self.assertIn("no reply within", self.output(c))
        finally:
            os.kill(mpid, signal.SIGCONT)
        # Neither acted: the task still runs with two workers.
        self.wait_text(p, r"dropped request \"(scale|wakeup)\": its client "
                       r"has gone")
        self.wait_text(p, r"dropped request \"(scale|wakeup)\".*\n.*"
                       r"dropped request \"(scale|wakeup)\"")
        self.assertEqual(self.master_json()["target"], 2)
        self.assertTrue(alive(mpid))
        self.stop_fg(p)

    def test_crlf_requests_are_answered(self):
        p = self.run_fg(self.resident(maxWorkerNum=1), workers=1)
        reply = self.raw(b"status\r\n")
        self.assertTrue(reply.startswith(b"master "), reply)
        self.assertTrue(reply.endswith(b"\nok\n"), reply)
        self.stop_fg(p)

    def test_pipelined_requests_are_refused_whole(self):
        p = self.run_fg(self.resident(maxWorkerNum=2), workers=2)
        reply = self.raw(b"status\nscale 1\n")
        self.assertEqual(reply, b"error one request per connection\n")
        self.assertEqual(self.master_json()["target"], 2)
        self.stop_fg(p)

    def test_restart_gives_up_at_its_timeout(self):
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        mpid = self.masters()[0]
        os.kill(mpid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = self.pm("restart", "--title", self.title, "--timeout", "2",
                        timeout=30)
            took = time.monotonic() - t0
        finally:
            os.kill(mpid, signal.SIGCONT)
        # status itself waits 5 s for the stopped master first.
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no reply within", r.stderr)
        self.assertLess(took, 15 * SLOW)
        self.stop_fg(p)

    def test_out_of_descriptors_the_master_refuses_and_does_not_spin(self):
        p = self.run_fg(self.resident(maxWorkerNum=1, executeUSleep=500000),
                        workers=1)
        mpid = self.masters()[0]
        base = fd_count(mpid)
        subprocess.run(["prlimit", "--pid", str(mpid),
                        "--nofile=%d:" % (base + 1)], check=True)
        clients = []
        try:
            for _ in range(4):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5 * SLOW)
                s.connect(self.sock())
                clients.append(s)
            # One client fits; the rest are answered, not left pending.
            answers = [s.recv(4096) for s in clients[1:]]
            self.assertIn(b"error the master is out of file descriptors\n",
                          answers)
            t0 = cpu_ticks(mpid)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertLess(cpu_ticks(mpid) - t0, 20, "the master spun")
        finally:
            for s in clients:
                s.close()
            subprocess.run(["prlimit", "--pid", str(mpid),
                            "--nofile=1024:"], check=True)
        self.wait_text(p, r"control: cannot take a client: Too many open "
                       r"files")
        self.pm("status", "--title", self.title, check=0)
        self.stop_fg(p)


class TestGroups(RobustnessTest):

    def group(self, n, name="group.json", **keys):
        tasks = [{"baseTitle": "%s_%d" % (self.title, i)} for i in range(n)]
        cfg = {"plugin": harness.plugin("recorder"), "tasks": tasks,
               "maxWorkerNum": 1, "executeTimes": 0, "executeUSleep": 1000000}
        cfg.update(keys)
        return self.write(name, json.dumps(cfg))

    def masters_of_group(self, n):
        r = self.pm("status", "--json", timeout=60)
        doc = json.loads(r.stdout) if r.stdout else {"masters": []}
        return [m for m in doc["masters"]
                if m["name"].startswith(self.title + "_")]

    def test_1100_tasks_start_and_stop_with_1024_descriptors(self):
        n = 1100
        cfg = self.group(n)
        t0 = time.monotonic()
        r = self.pm("check", cfg, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # One load check for the whole file, not one per task.
        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        p = self.spawn(["sh", "-c", 'ulimit -n 1024 && exec "$0" run "$1"',
                        harness.PMHOST, cfg])
        self.wait_for(lambda: len(self.masters_of_group(n)) == n,
                      "%d masters answering" % n, timeout=120, proc=p)
        self.assertEqual(alive(p.pid), True)
        os.kill(p.pid, signal.SIGTERM)
        self.assertEqual(self.wait_exit(p, timeout=120), 0, self.output(p))
        self.assertEqual(self.masters_of_group(n), [])
        self.assertNotIn("pmhost:", self.output(p))

    def test_concurrent_runs_of_one_file_never_split_its_tasks(self):
        cfg = self.group(5)
        for trial in range(3):
            runs = [self.start("run", "-d", cfg) for _ in range(2)]
            codes = sorted(self.wait_exit(r, timeout=60) for r in runs)
            self.assertEqual(codes, [0, 1], [self.output(r) for r in runs])
            loser = [r for r in runs if r.returncode == 1][0]
            self.assertIn("already running", self.output(loser))
            self.assertEqual(len(self.masters_of_group(5)), 5)
            r = self.pm("stop", cfg, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.masters_of_group(5), [])


class TestOddBytes(RobustnessTest):

    def test_status_json_is_valid_with_paths_that_are_not_utf8(self):
        d = os.path.join(self.tmp.encode(), b"odd-\xff\xfe")
        os.mkdir(d)
        cfg = os.fsdecode(os.path.join(d, b"task.json"))
        with open(cfg, "w") as f:
            json.dump({"plugin": harness.plugin("recorder"),
                       "baseTitle": self.title, "maxWorkerNum": 1,
                       "executeTimes": 0}, f)
        p = self.spawn([harness.PMHOST, "run", cfg])
        self.wait_master(proc=p)
        r = subprocess.run([harness.PMHOST, "status", "--json"],
                           env=self.env, capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0)
        doc = json.loads(r.stdout.decode("utf-8"))
        mine = [m for m in doc["masters"] if m["name"] == self.title][0]
        self.assertIn("odd-\ufffd\ufffd/task.json", mine["config"])
        self.stop_fg(p)

    def test_plugin_built_for_another_machine_says_so(self):
        with open(harness.plugin("recorder"), "rb") as f:
            data = bytearray(f.read())
        data[18:20] = (183).to_bytes(2, "little")      # EM_AARCH64
        with open(self.path("arm.so"), "wb") as f:
            f.write(data)
        cfg = self.config(plugin_name=self.path("arm.so"))
        r = self.pm("check", cfg, check=2)
        self.assert_one_error_line(
            r, r"plugin: %s: built for aarch64 \(ELF machine 183\), this "
               r"pmhost runs on x86-64 \(62\); rebuild it for this machine$"
               % re.escape(self.path("arm.so")))

    def test_relative_paths_of_a_symlinked_config_follow_the_real_file(self):
        real = self.path("app")
        os.mkdir(real)
        with open(harness.plugin("recorder"), "rb") as src, \
                open(os.path.join(real, "task.so"), "wb") as dst:
            dst.write(src.read())
        with open(os.path.join(real, "task.json"), "w") as f:
            json.dump({"plugin": "task.so", "baseTitle": self.title}, f)
        os.mkdir(self.path("etc"))
        link = self.path("etc/task.json")
        os.symlink(os.path.join(real, "task.json"), link)
        r = self.pm("check", link, check=0)
        self.assertEqual(r.stdout.splitlines()[-1], "ok")


class TestScaleDuringRestart(RobustnessTest):

    def test_scale_down_then_restart_honours_stop_timeout(self):
        cfg = self.resident(maxWorkerNum=2, stopTimeout=2,
                            params={"sleep_ms": 25000})
        p = self.run_fg(cfg, workers=2)
        self.wait_events("call", 2, proc=p)
        self.pm("scale", "--title", self.title, "1", check=0)
        t0 = time.monotonic()
        r = self.pm("restart", "--title", self.title, timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        # Both old workers are in 25 s calls: stopTimeout 2 ends them.
        self.assertLess(took, 12 * SLOW, "restart took %.1f s" % took)
        self.assertRegex(self.output(p), r"worker 1 \(pid \d+\) still "
                         r"running after stopTimeout")
        self.stop_fg(p)

    def test_ttin_during_a_restart_is_refused_in_the_log(self):
        cfg = self.resident(maxWorkerNum=1, params={"tag": "v1"})
        p = self.run_fg(cfg, workers=1)
        self.resident(maxWorkerNum=1, params={"init_sleep_ms": 2000})
        restart = self.start("restart", "--title", self.title)
        self.wait_for(lambda: self.master_json()["state"] == "restarting",
                      "restarting", proc=restart)
        os.kill(self.masters()[0], signal.SIGTTIN)
        self.wait_text(p, r"SIGTTIN: refused: a restart is in progress")
        self.assertEqual(self.wait_exit(restart, timeout=30), 0)
        self.assertEqual(self.master_json()["target"], 1)
        self.stop_fg(p)


if __name__ == "__main__":
    harness.main()
