"""pmhost's control plane: NAME.sock, status, wakeup, scale, and the
signals that do the same (TTIN/TTOU, ALRM, USR1).

Each test runs a real master from a config and checks what a user sees:
status rows against /proc, the exit codes, the JSON, what the recorder
plugin wrote, the log.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import harness
from harness import SLOW, alive, proc_cmdline, proc_stat


# -- helpers (this suite's own) ---------------------------------------------

def parse_table(text):
    """The Master and Worker rows of `pmhost status`, as dicts keyed by the
    column names of the header line above them ("last exit" included)."""
    rows = []
    header = None
    for line in text.splitlines():
        if line.startswith(" "):
            # A header: each column starts where its name does.
            names, pos, i = [], [], 0
            while i < len(line):
                if line[i] != " ":
                    j = line.find("  ", i)
                    j = len(line) if j < 0 else j
                    names.append(line[i:j])
                    pos.append(i)
                    i = j
                else:
                    i += 1
            header = list(zip(names, pos))
        elif line.startswith(("Master", "Worker")) and header:
            row = {"type": line.split()[0]}
            for k, (name, start) in enumerate(header):
                end = header[k + 1][1] if k + 1 < len(header) else None
                row[name] = line[start:end].strip()
            rows.append(row)
    return rows


def request(path, data, timeout=5):
    """Sends raw bytes to a control socket; (reply bytes, send error).

    Sending runs in a thread: a master that refuses a long request stops
    reading, and the reply must still be read."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    s.connect(path)
    err = []

    def send():
        try:
            s.sendall(data)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=send)
    t.start()
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except ConnectionResetError:
        # The master closed with our unread bytes queued: its reply was
        # read first; the reset stands for the close.
        pass
    t.join(timeout * SLOW)
    s.close()
    return out, (err[0] if err else None)


class ControlTest(harness.PmTest):

    def sock_path(self, title=None):
        return os.path.join(self.rundir, (title or self.title) + ".sock")

    def status_rows(self, *target):
        r = self.pm("status", *(target or ("--title", self.title)), check=0)
        return parse_table(r.stdout), r.stdout

    # -- status -----------------------------------------------------------

    def test_status_rows_match_proc(self):
        cfg = self.resident(maxWorkerNum=3)
        p = self.run_fg(cfg, workers=3)
        self.wait_master(p)
        rows, text = self.status_rows()
        masters = [r for r in rows if r["type"] == "Master"]
        workers = [r for r in rows if r["type"] == "Worker"]
        self.assertEqual(len(masters), 1, text)
        m = masters[0]
        mpid = int(m["pid"])
        self.assertEqual(mpid, self.master_pid(), text)
        self.assertEqual(mpid, p.pid, "foreground master is the run command")
        self.assertEqual(m["title"], "process_m:Master:" + self.title)
        self.assertEqual(proc_cmdline(mpid), m["title"])
        self.assertEqual(m["state"], "running")
        self.assertEqual(int(m["count"]), 3, text)
        self.assertEqual(len(workers), 3, text)
        self.assertEqual(sorted(int(w["slot"]) for w in workers), [0, 1, 2])
        wpids = sorted(int(w["pid"]) for w in workers)
        self.assertEqual(wpids, self.workers(), text)
        for w in workers:
            pid = int(w["pid"])
            self.assertTrue(alive(pid), w)
            self.assertEqual(w["title"], "process_m:Worker:" + self.title)
            self.assertEqual(proc_cmdline(pid), w["title"])
            self.assertEqual(proc_stat(pid)[1], mpid, "worker's parent")
            self.assertIn(w["state"], ("idle", "busy"), w)
            self.assertEqual(w["last exit"], "-", w)
            self.assertEqual((w["recycled"], w["failed"]), ("0", "0"), w)
            self.assertGreaterEqual(int(w["calls"]), int(w["work"]), w)
            self.assertRegex(w["start"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
            self.assertGreater(float(w["memory(m)"]), 0)

    def test_work_counts_grow_between_status_calls(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        first = {int(w["slot"]): (w["pid"], int(w["work"]))
                 for w in self.status_rows()[0] if w["type"] == "Worker"}
        self.wait_events("call", len(self.events("call")) + 6, proc=p)

        def grown():
            now = {int(w["slot"]): (w["pid"], int(w["work"]))
                   for w in self.status_rows()[0] if w["type"] == "Worker"}
            return all(now[s][0] == first[s][0] and now[s][1] > first[s][1]
                       for s in first) and now
        now = self.wait_for(grown, "every worker's work count grows", proc=p)
        # The count is the worker's calls as the plugin saw them.
        for slot, (pid, work) in now.items():
            recorded = [e for e in self.events("call") if e["pid"] == int(pid)]
            self.assertGreaterEqual(len(recorded), work)

    def test_json_carries_what_the_table_shows(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        rows, text = self.status_rows()
        r = self.pm("status", "--title", self.title, "--json", check=0)
        doc = json.loads(r.stdout)
        self.assertEqual(len(doc["masters"]), 1)
        m = doc["masters"][0]
        trow = rows[0]
        self.assertEqual(m["name"], self.title)
        self.assertEqual(m["pid"], int(trow["pid"]))
        self.assertEqual(m["pid"], self.master_pid())
        self.assertEqual(m["title"], trow["title"])
        self.assertEqual(m["state"], "running")
        self.assertEqual(m["count"], int(trow["count"]))
        self.assertEqual(m["count"], 2)
        self.assertEqual(m["target"], 2)
        self.assertEqual(m["generation"], 1)
        self.assertEqual(m["config"], cfg)
        self.assertEqual(m["plugin"], harness.plugin("recorder"))
        self.assertEqual(m["run_dir"], self.rundir)
        self.assertEqual(m["stop_timeout"], 5)
        self.assertEqual(m["start"], trow["start"])
        self.assertGreater(m["memory_kb"], 0)
        tw = {int(w["slot"]): w for w in rows if w["type"] == "Worker"}
        self.assertEqual(sorted(w["slot"] for w in m["workers"]), [0, 1])
        for w in m["workers"]:
            t = tw[w["slot"]]
            self.assertEqual(w["pid"], int(t["pid"]), text)
            self.assertEqual(w["title"], t["title"])
            self.assertEqual(w["title"], "process_m:Worker:" + self.title)
            # The JSON was taken after the table: counts only grow.
            self.assertGreaterEqual(w["work"], int(t["work"]))
            self.assertEqual(w["recycles"], int(t["recycled"]))
            self.assertEqual(w["failures_total"], int(t["failed"]))
            self.assertGreaterEqual(w["calls_total"], int(t["calls"]))
            self.assertEqual(w["exits"], [])
            self.assertEqual(w["generation"], 1)
            self.assertIsNone(w["last_exit"])
            self.assertIsNone(w["respawn_in_s"])
            self.assertTrue(alive(w["pid"]))
        self.assertEqual(sorted(w["pid"] for w in m["workers"]),
                         self.workers())

    def test_status_answers_while_every_worker_is_busy(self):
        cfg = self.resident(maxWorkerNum=2, params={"sleep_ms": 3000})
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        calls = self.wait_events("call", 2, proc=p)
        self.assertEqual(sorted(e["slot"] for e in calls), [0, 1])
        started = time.monotonic()
        r = self.pm("status", "--title", self.title, "--json", check=0)
        took = time.monotonic() - started
        # Far less than the 3 s call it must not wait for.
        self.assertLess(took, min(1.0 * SLOW, 2.5))
        self.assertLess(time.monotonic(), min(e["t"] for e in calls) + 3.0,
                        "status answered only after the calls ended")
        m = json.loads(r.stdout)["masters"][0]
        self.assertEqual(m["count"], 2)
        for w in m["workers"]:
            self.assertEqual(w["state"], "busy", w)
            self.assertEqual(w["work"], 0, w)
            self.assertIsNotNone(w["call_s"], w)
            self.assertGreaterEqual(w["call_s"], 0)

    def test_status_without_arguments_lists_every_running_master(self):
        a, b = self.title + "a", self.title + "b"
        cfg_a = self.resident(name="a.json", baseTitle=a, maxWorkerNum=1)
        cfg_b = self.resident(name="b.json", baseTitle=b, maxWorkerNum=2)
        pa = self.start("run", cfg_a)
        pb = self.start("run", cfg_b)
        for t, p in ((a, pa), (b, pb)):
            self.wait_master(p, t)
        r = self.pm("status", check=0)
        rows = parse_table(r.stdout)
        masters = {r["title"]: int(r["pid"]) for r in rows
                   if r["type"] == "Master"}
        self.assertEqual(masters, {"process_m:Master:" + a: pa.pid,
                                   "process_m:Master:" + b: pb.pid},
                         r.stdout)
        doc = json.loads(self.pm("status", "--json", check=0).stdout)
        got = {m["name"]: (m["pid"], len(m["workers"]))
               for m in doc["masters"]}
        self.assertEqual(got, {a: (pa.pid, 1), b: (pb.pid, 2)})

    def test_status_and_stop_all_with_no_master_running_succeed(self):
        # A run dir that exists but holds no master (the last one stopped).
        os.makedirs(self.rundir, 0o700)
        r = self.pm("status")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertNotIn("Master", r.stdout)
        r = self.pm("status", "--json")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(json.loads(r.stdout), {"masters": []})
        r = self.pm("stop", "--all")
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_status_of_a_title_not_running_exits_1(self):
        r = self.pm("status", "--title", self.title)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pmhost: %s: not running" % self.title, r.stderr)
        self.assertNotIn("Master", r.stdout)
        r = self.pm("status", "--title", self.title, "--json")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pmhost: %s: not running" % self.title, r.stderr)
        cfg = self.resident()
        r = self.pm("status", cfg)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pmhost: %s: not running" % self.title, r.stderr)

    def test_backoff_slot_shows_state_and_last_exit(self):
        cfg = self.resident(maxWorkerNum=1, params={"crash_at": 1})
        p = self.run_fg(cfg)
        self.wait_for(lambda: os.path.exists(self.sock_path()),
                      "control socket", proc=p)

        def backing_off():
            w = self.master_json()["workers"]
            return len(w) == 1 and w[0]["state"] in ("backoff", "crash-loop") and w
        w = self.wait_for(backing_off, "slot 0 in backoff", proc=p)[0]
        self.assertIsNone(w["pid"])
        self.assertEqual(w["slot"], 0)
        self.assertIn("SIGSEGV", w["last_exit"])
        self.assertGreaterEqual(w["failures"], 2)
        self.assertGreater(w["respawn_in_s"], 0)
        self.assertGreaterEqual(w["restarts"], 1)

        def table_backoff():
            rows, text = self.status_rows()
            ws = [r for r in rows if r["type"] == "Worker"]
            return len(ws) == 1 and ws[0]["state"] in ("backoff", "crash-loop") and ws[0]
        row = self.wait_for(table_backoff, "table row in backoff", proc=p)
        self.assertEqual(row["pid"], "-")
        self.assertEqual(row["slot"], "0")
        self.assertIn("SIGSEGV", row["last exit"])
        self.assertIn("respawn in", row["last exit"])
        # The crashes are the plugin's: every worker died in its first call.
        calls = self.events("call")
        self.assertTrue(calls)
        self.assertFalse(self.events("fini"))

    # -- the socket ---------------------------------------------------------

    def test_socket_is_mode_0600(self):
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_master(p)
        st = os.lstat(self.sock_path())
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())

    def _nobody(self):
        """Argv prefix to run a command as uid/gid 65534, or skip."""
        if os.geteuid() != 0:
            self.skipTest("needs root to run a client as another uid")
        argv = ["setpriv", "--reuid=65534", "--regid=65534",
                "--clear-groups"]
        try:
            r = subprocess.run(argv + ["true"], env=self.env,
                               stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=10 * SLOW)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.skipTest("setpriv unavailable: %s" % e)
        if r.returncode != 0:
            self.skipTest("setpriv cannot switch uid: %s" % r.stderr)
        return argv

    def test_client_with_another_uid_is_refused(self):
        nobody = self._nobody()
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_master(p)
        mpid = self.master_pid()
        # As it is, another user cannot even reach the run dir.
        r = subprocess.run(nobody + [harness.PMHOST, "status", "--title",
                                     self.title], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10 * SLOW)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertNotIn(str(mpid), r.stdout)
        self.assertIn("pmhost:", r.stderr)
        # Open the way to the socket: the master itself must refuse.
        os.chmod(self.tmp, 0o711)
        os.chmod(self.rundir, 0o711)
        os.chmod(self.sock_path(), 0o666)
        script = ("import socket,sys\n"
                  "s=socket.socket(socket.AF_UNIX)\n"
                  "s.settimeout(10)\n"
                  "s.connect(sys.argv[1])\n"
                  "try:\n"
                  "    s.sendall(b'status\\n')\n"
                  "except BrokenPipeError:\n"
                  "    pass\n"
                  "out=b''\n"
                  "while True:\n"
                  "    try:\n"
                  "        d=s.recv(4096)\n"
                  "    except ConnectionResetError:\n"
                  "        break\n"
                  "    if not d: break\n"
                  "    out+=d\n"
                  "sys.stdout.write(out.decode())\n")
        try:
            r = subprocess.run(nobody + [sys.executable, "-c", script,
                                         self.sock_path()],
                               env=self.env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True,
                               timeout=10 * SLOW)
        finally:
            os.chmod(self.sock_path(), 0o600)
            os.chmod(self.rundir, 0o700)
            os.chmod(self.tmp, 0o700)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "error permission denied\n")
        self.wait_text(p, r"refused a client with uid 65534")
        # Its own user is still served, by the same master.
        m = self.master_json()
        self.assertEqual(m["pid"], mpid)
        self.assertEqual(m["count"], 1)

    def test_status_as_another_uid_says_permission_denied(self):
        # pmhost's own client, run by another user who can reach the
        # socket, must pass on the master's refusal.
        nobody = self._nobody()
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_master(p)
        os.chmod(self.tmp, 0o711)
        os.chmod(self.rundir, 0o711)
        os.chmod(self.sock_path(), 0o666)
        results = []
        try:
            for _ in range(5):
                r = subprocess.run(nobody + [harness.PMHOST, "status",
                                             "--title", self.title],
                                   env=self.env, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True,
                                   timeout=10 * SLOW)
                results.append((r.returncode, r.stderr.strip()))
        finally:
            os.chmod(self.sock_path(), 0o600)
            os.chmod(self.rundir, 0o700)
            os.chmod(self.tmp, 0o700)
        for code, err in results:
            self.assertEqual(code, 1, results)
            self.assertIn("permission denied", err, results)

    def test_a_full_client_table_lets_the_longest_idle_client_go(self):
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_master(p)
        mpid = self.master_pid()
        held = []
        try:
            # Fill every client place with silent connections.
            for _ in range(64):
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock_path())
                held.append(s)
            reply, _ = request(self.sock_path(), b"status\n")
            self.assertTrue(reply.endswith(b"\nok\n"), reply)
            # The first, longest idle, was closed to make room.
            held[0].settimeout(5)
            self.assertEqual(held[0].recv(100), b"")
            r = self.pm("status", "--title", self.title)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            for s in held:
                s.close()
        self.assertEqual(self.master_json()["pid"], mpid)

    def test_garbage_requests_get_an_error_and_the_master_keeps_serving(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        mpid = self.master_pid()
        wpids = self.workers()
        sock = self.sock_path()

        def still_serving(what):
            reply, _ = request(sock, b"status\n")
            self.assertTrue(reply.startswith(b"master "), (what, reply))
            self.assertTrue(reply.endswith(b"\nok\n"), (what, reply))
            self.assertIn(b" pid=%d " % mpid, reply)
            m = self.master_json()
            self.assertEqual(m["pid"], mpid, what)
            self.assertEqual(sorted(w["pid"] for w in m["workers"]), wpids,
                             what)

        reply, _ = request(sock, b"bogus\n")
        self.assertRegex(reply, rb"^error unknown request \"bogus\"[^\n]*\n$")
        still_serving("bogus")

        reply, _ = request(sock, b"sta\0tus\n")
        self.assertEqual(reply, b"error malformed request\n")
        still_serving("NUL bytes")

        reply, _ = request(sock, b"scale 0\n")
        self.assertTrue(reply.startswith(b"error "), reply)
        still_serving("scale 0")

        reply, _ = request(sock, b"x" * (1 << 20))
        self.assertRegex(reply, rb"^error request longer than \d+ bytes\n$")
        still_serving("1 MiB without a newline")

        # Half a line, then a half-close: the master says so.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5 * SLOW)
        s.connect(sock)
        s.sendall(b"sta")
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            reply += d
        s.close()
        self.assertEqual(reply, b"error incomplete request\n")
        still_serving("half a line, half-closed")

        # Half a line, then gone altogether.
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b"stat")
        s.close()
        still_serving("half a line, closed")

        # Connect and leave at once.
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.close()
        still_serving("empty connection")
        self.assertEqual(p.poll(), None, self.output(p))

    def test_silent_clients_do_not_hold_up_others(self):
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        self.wait_master(p)
        mpid = self.master_pid()
        held = []
        try:
            for i in range(8):
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock_path())
                if i % 2:
                    s.sendall(b"stat")   # half a line, and then silence
                held.append(s)
            for _ in range(3):
                started = time.monotonic()
                m = self.master_json()
                self.assertEqual(m["pid"], mpid)
                self.assertEqual(m["count"], 1)
                # Well inside the 10 s a silent client is given.
                self.assertLess(time.monotonic() - started, 5)
            r = self.pm("wakeup", "--title", self.title)
            self.assertEqual(r.returncode, 0, r.stderr)
            # The silent ones got no answer meanwhile.
            for s in held:
                s.setblocking(False)
                try:
                    got = s.recv(100)
                except BlockingIOError:
                    continue
                self.fail("a silent client was answered or dropped early: "
                          "%r" % got)
        finally:
            for s in held:
                s.close()
        self.assertEqual(self.master_json()["pid"], mpid)

    # -- wakeup -------------------------------------------------------------

    def _long_backoff(self, p, at_least):
        """Waits until slot 0 (init_fail) backs off for >= at_least s;
        (monotonic time taken before the status call, respawn_in_s)."""
        def long_enough():
            t = time.monotonic()
            w = self.master_json()["workers"][0]
            return (w["state"] in ("backoff", "crash-loop") and
                    (w["respawn_in_s"] or 0) >= at_least and
                    (t, w["respawn_in_s"]))
        return self.wait_for(long_enough, "a backoff of %.1f s" % at_least,
                             timeout=12, proc=p)

    def _assert_respawned_early(self, p, inits_before, t0, respawn_in):
        new = self.wait_for(lambda: self.events("init")[inits_before:],
                            "a new worker's work_init", proc=p)
        # Before the backoff would have let the slot respawn.
        self.assertLess(new[0]["t"], t0 + respawn_in,
                        "the respawn waited for the backoff")

    def test_wakeup_respawns_a_backoff_slot_now(self):
        cfg = self.resident(maxWorkerNum=1, params={"init_fail": 1})
        p = self.run_fg(cfg)
        self.wait_for(lambda: os.path.exists(self.sock_path()),
                      "control socket", proc=p)
        t0, respawn_in = self._long_backoff(p, 1.5)
        inits = len(self.events("init"))
        r = self.pm("wakeup", "--title", self.title)
        self.assertEqual(r.returncode, 0, r.stderr)
        # One line, the master's text: no blank line after it.
        self.assertRegex(r.stdout, r"^%s: woke up: respawned \d+ workers?\n$"
                         % self.title)
        self._assert_respawned_early(p, inits, t0, respawn_in)
        self.wait_text(p, r"wakeup command: checked workers, respawned 1")

    def test_sigalrm_respawns_a_backoff_slot_now(self):
        cfg = self.resident(maxWorkerNum=1, params={"init_fail": 1})
        p = self.run_fg(cfg)
        self.wait_for(lambda: os.path.exists(self.sock_path()),
                      "control socket", proc=p)
        t0, respawn_in = self._long_backoff(p, 1.5)
        inits = len(self.events("init"))
        os.kill(self.master_pid(), signal.SIGALRM)
        self._assert_respawned_early(p, inits, t0, respawn_in)

    def test_wakeup_of_a_title_not_running_exits_1(self):
        r = self.pm("wakeup", "--title", self.title)
        self.assertEqual(r.returncode, 1)
        self.assertIn("pmhost: %s: not running" % self.title, r.stderr)

    # -- scale --------------------------------------------------------------

    def test_scale_up_and_down_keeps_the_remaining_slots(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        before = self.slot_pids()
        self.assertEqual(sorted(before), [0, 1])

        r = self.pm("scale", "--title", self.title, 4)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s: scaled 2 -> 4\n" % self.title)
        self.wait_for(lambda: len(self.workers()) == 4, "4 workers", proc=p)
        up = self.wait_for(lambda: len(self.slot_pids()) == 4 and
                           self.slot_pids(), "4 slots in status", proc=p)
        self.assertEqual(sorted(up), [0, 1, 2, 3])
        self.assertEqual(up[0], before[0])
        self.assertEqual(up[1], before[1])
        self.assertEqual(sorted(up.values()), self.workers())
        m = self.master_json()
        self.assertEqual((m["count"], m["target"]), (4, 4))

        r = self.pm("scale", cfg, 1)
        self.assertEqual(r.returncode, 0, r.stderr)
        surplus = [up[s] for s in (1, 2, 3)]
        self.wait_gone(surplus, "surplus workers gone")
        self.assertEqual(self.workers(), [up[0]])
        # They left gracefully, through work_fini.
        fini = {e["pid"] for e in self.events("fini")}
        for pid in surplus:
            self.assertIn(pid, fini)
        self.assertNotIn(up[0], fini)
        m = self.wait_for(lambda: (lambda m: len(m["workers"]) == 1 and m)(
            self.master_json()), "one row in status", proc=p)
        self.assertEqual((m["count"], m["target"]), (1, 1))
        self.assertEqual(m["workers"][0]["pid"], up[0])
        self.assertEqual(m["workers"][0]["slot"], 0)

    def test_workers_asked_for_at_once_beyond_the_spawner_socket_all_start(
            self):
        # More starts than the spawner's socket holds requests (about
        # 290): each is asked for in turn, none fails, and a scale-up by
        # 400 at once goes the same way.
        cfg = self.resident(maxWorkerNum=400, executeUSleep=10000000)
        p = self.run_fg(cfg)
        self.wait_for(lambda: len(self.workers()) == 400,
                      "400 workers running", timeout=60, proc=p)
        self.wait_events("init", 400, timeout=30, proc=p)
        m = self.wait_for(lambda: (lambda m: m["count"] == 400 and m)(
            self.master_json()), "400 workers in status", proc=p)
        self.assertEqual(len({w["pid"] for w in m["workers"]}), 400)
        self.assertEqual(sorted(w["slot"] for w in m["workers"]),
                         list(range(400)))
        r = self.pm("scale", "--title", self.title, 800)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for(lambda: len(self.workers()) == 800,
                      "800 workers running", timeout=60, proc=p)
        self.stop_fg(p)
        failed = [ln for ln in self.output(p).splitlines()
                  if "cannot start" in ln or "could not be started" in ln]
        self.assertEqual(failed[:3], [])
        self.assertEqual(len({e["slot"] for e in self.events("init")}),
                         800)

    def test_run_once_starts_every_worker_of_a_large_task(self):
        # Run once (checkWorkerInterval 0): nothing respawns, so each of
        # the 400 first workers must be started by the master as the
        # spawner takes them, and the master ends when all 400 are done.
        cfg = self.record_config(maxWorkerNum=400, executeTimes=1,
                                 executeUSleep=0, checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p, timeout=60), 0, self.output(p))
        fini = self.events("fini")
        self.assertEqual(sorted(e["slot"] for e in fini), list(range(400)))
        self.assertTrue(all(e["calls"] == 1 for e in fini))

    def test_scale_out_of_range_is_a_usage_error(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        before = self.slot_pids()
        for n in ("0", "16385", "-1", "two", "1.5"):
            r = self.pm("scale", "--title", self.title, n)
            self.assertEqual(r.returncode, 2, (n, r.stderr))
            self.assertTrue(r.stderr.startswith("pmhost:"), r.stderr)
        m = self.master_json()
        self.assertEqual((m["count"], m["target"]), (2, 2))
        self.assertEqual(self.slot_pids(), before)

    def test_scale_back_up_before_surplus_workers_exit_refills_slots(self):
        # Surplus workers are in a 1 s call when the count comes back up.
        cfg = self.resident(maxWorkerNum=4, executeUSleep=0,
                            params={"sleep_ms": 1000})
        p = self.run_fg(cfg, workers=4)
        self.wait_master(p)
        self.wait_events("call", 4, proc=p)
        self.assertEqual(self.pm("scale", "--title", self.title, 1)
                         .returncode, 0)
        r = self.pm("scale", "--title", self.title, 4)
        self.assertEqual(r.returncode, 0, r.stderr)

        def four():
            m = self.master_json()
            live = [w for w in m["workers"] if w["pid"] and
                    w["state"] not in ("stopping", "exiting")]
            return (len(live) == 4 and
                    sorted(w["pid"] for w in live) == self.workers() and m)
        # Whether the surplus workers are kept or replaced, four must be
        # working again soon; checkWorkerInterval is 300 s, so only the
        # scale itself can bring them back.
        m = self.wait_for(four, "4 live workers after scale 1 then 4",
                          timeout=4, proc=p)
        self.assertEqual(sorted(w["slot"] for w in m["workers"]),
                         [0, 1, 2, 3])
        self.assertEqual(m["count"], 4)

    def test_ttin_and_ttou_change_the_worker_count_by_one(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        mpid = self.master_pid()

        def count_is(n):
            def ok():
                m = self.master_json()
                return (m["target"] == n and m["count"] == n and
                        len(self.workers()) == n)
            self.wait_for(ok, "%d workers" % n, proc=p)
        os.kill(mpid, signal.SIGTTIN)
        count_is(3)
        os.kill(mpid, signal.SIGTTOU)
        count_is(2)
        os.kill(mpid, signal.SIGTTOU)
        count_is(1)
        # Never below one worker.
        os.kill(mpid, signal.SIGTTOU)
        self.wait_text(p, r"SIGTTOU: worker count stays 1")
        count_is(1)
        self.assertEqual(self.master_json()["pid"], mpid)

    # -- the log --------------------------------------------------------------

    def test_usr1_reopens_a_moved_log_file(self):
        log = self.path("task.log")
        cfg = self.resident(maxWorkerNum=1, logFile=log,
                            params={"log": 1})
        p = self.run_fg(cfg, workers=1)
        self.wait_master(p)
        self.wait_text(log, r"started: 1 worker ")
        moved = self.path("task.log.1")
        os.rename(log, moved)
        os.kill(self.master_pid(), signal.SIGUSR1)
        self.wait_text(log, r"log reopened \(SIGUSR1\)")
        # Workers follow too: their pm_log lines reach the new file.
        self.wait_text(log, r"process_m:Worker:%s#\d+\[\d+\]: recorder call" %
                       self.title)
        self.assertTrue(os.path.exists(moved))
        self.assertNotIn("log reopened", self.read(moved))
        st = os.stat(log)
        self.assertNotEqual(st.st_ino, os.stat(moved).st_ino)


if __name__ == "__main__":
    harness.main()
