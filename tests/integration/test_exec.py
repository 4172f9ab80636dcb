"""exec.so: any program as a task.  Call mode runs the command once per
call: its exit status and signals count as status shows them, its output
becomes log lines, workTimeout and stop end it and everything it forked.
Coprocess mode starts the program once and exchanges one line per call:
ok, done, error TEXT; a coprocess that dies, hangs, floods or says
anything else ends its worker as failed.  check refuses a command that
is not there to run."""

import json
import os
import re
import shutil
import subprocess
import time

import harness

EXEC = os.path.join(harness.BUILD, "plugins", "exec", "exec.so")
README = os.path.join(harness.SOURCE, "plugins", "exec", "README.md")


def readme_example(heading, lang):
    """The first ```lang block after the README heading that starts with
    heading."""
    with open(README) as f:
        text = f.read()
    at = text.index("\n### " + heading)
    m = re.compile(r"```%s\n(.*?)```" % lang, re.S).search(text, at)
    return m.group(1)


def vm_rss_kb(pid):
    """Resident memory of pid in KiB (0 if gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def bytes_written(pid):
    """wchar of /proc/PID/io: what the process has written so far."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class ExecTest(harness.PmTest):

    def setUp(self):
        super().setUp()
        self.addCleanup(self.no_sanitizer_reports)

    def no_sanitizer_reports(self):
        """Under the sanitizer build, a report about the plugin's code in
        a worker's output (which the worker may survive, or die of with
        any status) fails the test.  The host's own reports are its
        suites' business."""
        for p in self.popens:
            out = self.output(p)
            for line in out.splitlines():
                if "runtime error:" in line:
                    self.assertNotIn("plugins/exec/", line)
            for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer"):
                at = out.find(mark)
                if at >= 0:
                    self.assertNotRegex(out[at:], r"plugins/exec/|exec\.so",
                                        out[at:])

    def exec_config(self, params, **keys):
        """A config running exec.so with these params."""
        return self.config(plugin_name=EXEC, params=params, **keys)

    def script(self, name, body):
        """An executable /bin/sh script in the scratch dir, where $D is
        that dir; its path."""
        p = self.write(name, "#!/bin/sh\nD='%s'\n%s" % (self.tmp, body))
        os.chmod(p, 0o755)
        return p

    def pid_in(self, name):
        """Waits for a pid written to the scratch file NAME; returns it."""
        path = self.path(name)
        self.wait_for(lambda: self.read(path).endswith("\n"),
                      "a pid in %s" % name)
        return int(self.read(path))

    def worker_row(self):
        """The one worker of this test's master in status --json."""
        workers = self.master_json()["workers"]
        self.assertEqual(len(workers), 1, workers)
        return workers[0]

    def log_line(self, proc, level, text):
        """Regex of a worker log line at level whose message is text."""
        return r"^\S+ %s process_m:Worker:%s#\d+\[\d+\]: %s$" % (
            level, re.escape(self.title), text)

    def nothing_left(self, pids):
        """pids, and every process of this test, are gone within moments
        (a process killed as the master exits may take that long to
        die)."""
        self.wait_gone(pids, "%s gone" % pids, timeout=2)
        self.wait_for(lambda: not self.tagged_pids(), "no process of the "
                      "test left", timeout=2)

    def stop(self, proc, max_s):
        """pmhost stop; the master must exit 0 within max_s seconds."""
        t0 = time.monotonic()
        self.pm("stop", "--title", self.title, timeout=60, check=0)
        self.assertEqual(self.wait_exit(proc), 0)
        took = time.monotonic() - t0
        self.assertLess(took, max_s * harness.SLOW,
                        "stop took %.1f s" % took)
        return took


class TestCallMode(ExecTest):

    def resident(self, command, **keys):
        keys.setdefault("maxWorkerNum", 1)
        keys.setdefault("executeTimes", 0)
        keys.setdefault("executeUSleep", 20000)
        return self.exec_config({"command": command}, **keys)

    def test_exit_codes_count_as_errors_and_output_becomes_log_lines(self):
        cfg = self.resident(["sh", "-c", 'echo "out $PMHOST_CALL"; '
                             'echo "err $PMHOST_CALL" >&2; '
                             "printf 'a NUL\\000byte\\r\\n'; "
                             '[ "$PMHOST_CALL" -gt 3 ] || exit 3'])
        p = self.run_fg(cfg, workers=1)
        # Calls 1-3 exit 3, the rest 0: errors settle at exactly 3.
        row = self.wait_for(lambda: (lambda w: w["work"] >= 6 and w)(
            self.worker_row()), "6 calls", proc=p)
        self.assertEqual(row["errors"], 3, row)
        self.wait_text(p, self.log_line(p, "info", "out 6"))
        out = self.output(p)
        self.assertRegex(out, re.compile(
            self.log_line(p, "notice", "err 1"), re.M))
        # A NUL byte does not cut a line short; CR LF ends one like LF.
        self.assertRegex(out, re.compile(
            self.log_line(p, "info", r"a NUL\?byte"), re.M))
        self.assertRegex(out, re.compile(self.log_line(
            p, "warning", "exec: call 1: sh exited with status 3"), re.M))
        # Calls 2 and 3 failed within the same second: not one line each.
        self.assertNotIn("exec: call 2:", out)
        self.assertEqual(self.worker_row()["errors"], 3)
        self.stop(p, 5)

    def test_a_signal_is_a_failed_call_named_in_the_log(self):
        cfg = self.resident(["sh", "-c",
                             '[ "$PMHOST_CALL" -gt 2 ] || kill -USR1 $$'])
        p = self.run_fg(cfg, workers=1)
        row = self.wait_for(lambda: (lambda w: w["work"] >= 5 and w)(
            self.worker_row()), "5 calls", proc=p)
        self.assertEqual(row["errors"], 2, row)
        self.assertRegex(self.output(p), re.compile(self.log_line(
            p, "warning", "exec: call 1: sh killed by SIGUSR1"), re.M))
        self.stop(p, 5)

    def test_env_vars_and_a_relative_command_reach_the_child(self):
        out = self.path("seen")
        self.script("job.sh", 'echo "$PMHOST_SLOT|$PMHOST_CALL|'
                    '$PMHOST_TITLE|$GREETING|$HOME|$PWD" >> "$1"\n')
        cfg = self.exec_config({"command": ["./job.sh", out],
                                "env": {"GREETING": "hello world",
                                        "HOME": "/nonexistent-home"}},
                               maxWorkerNum=2, executeTimes=2,
                               executeUSleep=0, checkWorkerInterval=0)
        # From another directory: the command is relative to the config.
        r = subprocess.run([harness.PMHOST, "run", cfg], cwd="/",
                           env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=30 * harness.SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = sorted(self.read(out).splitlines())
        worker = "process_m:Worker:%s" % self.title
        want = sorted("%d|%d|%s|hello world|/nonexistent-home|/" %
                      (slot, call, worker)
                      for slot in (0, 1) for call in (1, 2))
        self.assertEqual(rows, want)

    def test_work_timeout_kills_the_child_and_its_grandchild(self):
        # Both ignore SIGTERM: only the group's SIGKILL ends them.
        cfg = self.exec_config(
            {"command": ["sh", "-c", "trap '' TERM; sleep 300 & "
                         "echo $! > $0/grand; echo $$ > $0/child; wait",
                         self.tmp]},
            maxWorkerNum=1, executeTimes=0, workTimeout=1,
            checkWorkerInterval=0)
        p = self.start("run", cfg)
        child, grand = self.pid_in("child"), self.pid_in("grand")
        self.assertTrue(harness.alive(child) and harness.alive(grand))
        ex = self.wait_exits(p, 1, timeout=15)
        self.assertRegex(ex[0]["reason"], r"^workTimeout: call 1 ran ")
        self.wait_gone([child, grand], "the command and its grandchild "
                       "gone after workTimeout")
        # Run once, and a worker failed: the master says so.
        self.assertEqual(self.wait_exit(p), 1)

    def test_stop_during_a_long_command_is_prompt_and_leaves_nothing(self):
        cfg = self.exec_config(
            {"command": ["sh", "-c", "sleep 300 & echo $! > $0/grand; "
                         "echo $$ > $0/child; wait", self.tmp]},
            maxWorkerNum=1, executeTimes=0, stopTimeout=30)
        p = self.run_fg(cfg, workers=1)
        child, grand = self.pid_in("child"), self.pid_in("grand")
        self.stop(p, 5)
        self.nothing_left([child, grand])
        out = self.output(p)
        # Ended by the SIGTERM passed on, not by stopTimeout's SIGKILL.
        self.assertNotIn("SIGKILL", out)
        self.assertRegex(out, re.compile(self.log_line(
            p, "notice", r"exec: call 1: sh killed by SIGTERM \(the "
            r"worker is ending\)"),
            re.M))
        self.assertNotIn("work() returned", out)
        # The SIGTERM the worker sent its own group too was a stop to it.
        self.assertRegex(self.exits(p)[0]["reason"], r"^stopped after ")

    def test_a_flooding_command_neither_stalls_nor_grows_the_worker(self):
        # One endless line on stdout: logged once, truncated; the rest is
        # read and dropped as fast as it comes.
        cfg = self.exec_config(
            {"command": ["sh", "-c", "echo $$ > $0/child; "
                         "exec tr '\\0' x < /dev/zero", self.tmp]},
            maxWorkerNum=1, executeTimes=0, stopTimeout=30)
        p = self.run_fg(cfg, workers=1)
        child = self.pid_in("child")
        worker = self.workers()[0]
        self.wait_text(p, r"\[line truncated\]$")
        # The worker keeps reading: tr gets 200 MB through the pipe.
        self.wait_for(lambda: bytes_written(child) > 200 << 20,
                      "200 MB through the worker", timeout=30, proc=p)
        self.assertLess(vm_rss_kb(worker), 128 << 10,
                        "worker RSS %d KiB" % vm_rss_kb(worker))
        self.stop(p, 5)
        out = self.output(p)
        self.assertEqual(out.count("[line truncated]"), 1)
        self.assertLess(len(out), 64 << 10)
        self.nothing_left([child])

    def test_check_and_run_refuse_a_command_that_cannot_run(self):
        self.write("plain.txt", "echo not executable\n")
        cases = [
            (["no-such-program-x"], r'"no-such-program-x": not found on '
             r'PATH \('),
            (["./missing.sh"], r'"\./missing\.sh": %s does not exist' %
             re.escape(self.path("missing.sh"))),
            (["./plain.txt", "arg"], r'"\./plain\.txt": %s is not '
             r'executable \(Permission denied\)' %
             re.escape(self.path("plain.txt"))),
        ]
        for command, why in cases:
            cfg = self.exec_config({"command": command})
            for cmd in ("check", "run"):
                r = self.pm(cmd, cfg, timeout=20, check=2)
                self.assert_one_error_line(
                    r, r"^pmhost: %s: plugin: exec: params\.command: %s" %
                    (re.escape(cfg), why))
                self.assertEqual(self.tagged_pids(), [])

    def test_check_refuses_bad_params_naming_each_key(self):
        cfg = self.exec_config({"comand": ["true"], "mode": "sometimes",
                                "env": {"A": 1}})
        r = self.pm("check", cfg, check=2)
        line = self.assert_one_error_line(r)
        self.assertIn('unknown key "comand" (did you mean "command"?)', line)
        self.assertIn("params.command: required", line)
        self.assertIn('params.mode: must be "call"', line)
        self.assertIn("params.env.A: must be a string", line)
        cfg = self.exec_config({"command": ["true"], "protocol": "json"})
        r = self.pm("check", cfg, check=2)
        self.assertIn('params.protocol: only applies to "mode": '
                      '"coprocess"', r.stderr)
        cfg = self.exec_config({"command": ["true"]})
        r = self.pm("check", cfg, check=0)
        self.assertEqual(r.stdout.splitlines()[-1], "ok")


class TestCoprocess(ExecTest):

    # Records "PID REQUEST" for each request in $1; error on call 3.  It
    # ignores SIGTERM, so that a stop that lands in a call lets the call
    # finish and the end come as EOF on its stdin, as between calls.
    ANSWERS = """
trap '' TERM
echo "start $$" >> "$1"
while IFS= read -r req; do
  echo "$$ $req" >> "$1"
  echo "working on $req" >&2
  case "$req" in
    "call 3") echo "error disk full" ;;
    *) echo ok ;;
  esac
done
echo "eof $$" >> "$1"
"""

    def coprocess(self, body, *args, params=None, **keys):
        """A config running script body as the task's coprocess."""
        self.script("co.sh", body)
        prm = {"command": ["./co.sh"] + list(args), "mode": "coprocess"}
        prm.update(params or {})
        keys.setdefault("maxWorkerNum", 1)
        keys.setdefault("executeTimes", 0)
        keys.setdefault("executeUSleep", 20000)
        return self.exec_config(prm, **keys)

    def records(self):
        return self.read(self.path("rec")).splitlines()

    def test_a_coprocess_answers_every_call_of_its_worker(self):
        cfg = self.coprocess(self.ANSWERS, self.path("rec"))
        p = self.run_fg(cfg, workers=1)
        self.wait_for(lambda: len(self.records()) >= 7, "6 requests",
                      proc=p)
        row = self.worker_row()
        self.assertGreaterEqual(row["work"], 5)
        self.assertEqual(row["errors"], 1, row)
        self.stop(p, 5)
        recs = self.records()
        start, end = recs[0], recs[-1]
        pid = start.split()[1]
        self.assertEqual(start, "start %s" % pid)
        # One process served every call, in order, and saw EOF at stop.
        self.assertEqual(end, "eof %s" % pid)
        reqs = recs[1:-1]
        self.assertEqual(reqs, ["%s call %d" % (pid, i)
                                for i in range(1, len(reqs) + 1)])
        out = self.output(p)
        self.assertRegex(out, re.compile(self.log_line(
            p, "warning", "exec: call 3: error: disk full"), re.M))
        self.assertRegex(out, re.compile(self.log_line(
            p, "notice", "working on call 1"), re.M))
        self.nothing_left([int(pid)])

    def test_json_protocol_names_slot_and_call(self):
        cfg = self.coprocess(self.ANSWERS, self.path("rec"),
                             params={"protocol": "json"}, maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_for(lambda: len([r for r in self.records()
                                   if '"call":2}' in r]) >= 2,
                      "two calls on each slot", proc=p)
        self.stop(p, 5)
        by_pid = {}
        for rec in self.records():
            pid, req = rec.split(" ", 1)
            if pid not in ("start", "eof"):
                by_pid.setdefault(pid, []).append(json.loads(req))
        self.assertEqual(len(by_pid), 2)
        slots = set()
        for reqs in by_pid.values():
            slot = reqs[0]["slot"]
            slots.add(slot)
            self.assertEqual(reqs, [{"slot": slot, "call": i}
                                    for i in range(1, len(reqs) + 1)])
        self.assertEqual(slots, {0, 1})

    def test_done_ends_the_worker_normally(self):
        cfg = self.coprocess("""
n=0
while read -r req; do
  n=$((n + 1))
  if [ $n -eq 2 ]; then echo done; else echo ok; fi
done
echo eof >> "$1"
""", self.path("rec"), checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 0)
        ex = self.exits(p)
        self.assertEqual(len(ex), 1, self.output(p))
        self.assertRegex(ex[0]["reason"],
                         r"^work\(\) returned PM_DONE after 2 calls")
        self.assertEqual(self.records(), ["eof"])

    def test_a_coprocess_that_dies_fails_its_worker_with_backoff(self):
        cfg = self.coprocess('echo "cannot open the queue" >&2\nexit 3\n')
        p = self.run_fg(cfg)
        ex = self.wait_exits(p, 3, slot=0, timeout=15)
        for e in ex:
            self.assertEqual(e["level"], "warning")
            self.assertRegex(e["reason"], r"^exited with status 70 after "
                             r"0 calls")
        # Each failure in a row waits longer before the respawn.
        self.assertRegex(ex[1]["plan"], r"^respawning in 0\.1 s")
        self.assertRegex(ex[2]["plan"], r"^respawning in 0\.2 s")
        out = self.output(p)
        self.assertRegex(out, re.compile(self.log_line(
            p, "error", r"exec: coprocess \./co\.sh (closed its stdin "
            r"\(it )?exited with status 3\)? before replying to call 1; "
            r"ending this worker \(exit status 70\)"), re.M))
        self.assertRegex(out, re.compile(self.log_line(
            p, "notice", "cannot open the queue"), re.M))
        self.stop(p, 5)

    def test_a_hung_coprocess_is_ended_by_work_timeout(self):
        cfg = self.coprocess('echo $$ > $D/pid\nread -r req\nsleep 300 &\n'
                             'echo $! > $D/grand\nwait\n', workTimeout=1,
                             checkWorkerInterval=0)
        p = self.start("run", cfg)
        co, grand = self.pid_in("pid"), self.pid_in("grand")
        ex = self.wait_exits(p, 1, timeout=15)
        self.assertRegex(ex[0]["reason"], r"^workTimeout: call \d+ ran ")
        self.assertRegex(self.output(p), r"worker 0 \(pid %s\): work\(\) "
                         r"call 1 has run 1\.\d s, over workTimeout 1 s" %
                         ex[0]["pid"])
        self.assertEqual(self.wait_exit(p), 1)
        self.wait_gone([co, grand], "the coprocess and its child gone")

    def test_a_coprocess_flooding_stdout_fails_its_worker(self):
        # The shell keeps its stdin open; tr floods its stdout once it
        # has said who it is.
        cfg = self.coprocess("echo $$ > $D/pid\n"
                             "sh -c 'echo $$ > \"$0/tr\"; exec tr \"\\0\" x' "
                             "\"$D\" < /dev/zero &\nwait\n",
                             checkWorkerInterval=0)
        p = self.start("run", cfg)
        co, tr = self.pid_in("pid"), self.pid_in("tr")
        ex = self.wait_exits(p, 1, timeout=15)
        self.assertRegex(ex[0]["reason"], r"^exited with status 70")
        self.assertRegex(self.output(p), re.compile(self.log_line(
            p, "error", r"exec: coprocess \./co\.sh sent a reply line "
            r"longer than 4096 bytes; ending this worker \(exit status "
            r"70\)"), re.M))
        self.assertEqual(self.wait_exit(p), 1)
        self.wait_gone([co, tr], "the flooding coprocess gone")

    def test_a_malformed_reply_fails_its_worker(self):
        cfg = self.coprocess("read -r req\necho 'OK!'\nsleep 300\n",
                             checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 1)
        self.assertRegex(self.output(p), re.compile(self.log_line(
            p, "error", r'exec: coprocess \./co\.sh replied "OK!" to call '
            r"1, not ok, done or error TEXT; ending this worker "
            r"\(exit status 70\)"), re.M))
        self.assertRegex(self.exits(p)[0]["reason"],
                         r"^exited with status 70")

    def test_stop_during_a_long_call_is_prompt_and_leaves_nothing(self):
        cfg = self.coprocess('echo $$ > $D/pid\nread -r req\nsleep 300\n'
                             'echo ok\n', stopTimeout=30)
        p = self.run_fg(cfg, workers=1)
        co = self.pid_in("pid")
        self.wait_for(lambda: self.worker_row()["state"] == "busy",
                      "a call under way", proc=p)
        self.stop(p, 5)
        self.nothing_left([co])
        out = self.output(p)
        self.assertNotIn("SIGKILL", out)
        self.assertRegex(out, re.compile(self.log_line(
            p, "notice", r"exec: coprocess \./co\.sh .*killed by SIGTERM.* "
            r"\(the worker is ending\)"), re.M))

    def test_a_coprocess_ignoring_eof_is_terminated_in_bounded_time(self):
        # A stop that lands in a call must not end it before its EOF.
        cfg = self.coprocess("trap '' TERM\n"
                             "while read -r req; do echo ok; done\n"
                             "trap - TERM\n"
                             "echo $$ > $D/pid\nexec sleep 300\n",
                             stopTimeout=30)
        p = self.run_fg(cfg, workers=1)
        self.wait_for(lambda: self.worker_row()["work"] >= 1, "a call",
                      proc=p)
        took = self.stop(p, 10)
        self.assertGreater(took, 1.5)
        self.nothing_left([self.pid_in("pid")])
        self.assertRegex(self.output(p), re.compile(self.log_line(
            p, "notice", r"exec: coprocess \./co\.sh \(pid \d+\) still "
            r"running 2000 ms after its stdin closed; sending SIGTERM"),
            re.M))


class TestReadmeExamples(ExecTest):
    """The coprocess examples of the plugin's README work as printed."""

    def run_example(self, command, **params):
        cfg = self.exec_config(dict(command=command, mode="coprocess",
                                    **params),
                               maxWorkerNum=2, executeTimes=3,
                               executeUSleep=0, checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p, timeout=20), 0, self.output(p))
        out = self.output(p)
        for slot in (0, 1):
            self.assertRegex(out, re.compile(self.log_line(
                p, "notice", "slot %d: call 3" % slot), re.M))
        self.assertNotIn("exec: call", out)
        return out

    def test_the_shell_example(self):
        self.script("co.sh", readme_example("A coprocess in shell", "sh"))
        self.run_example(["./co.sh"], env={"STAMP_DIR": self.tmp})
        for slot in (0, 1):
            self.assertRegex(self.read(self.path("slot-%d" % slot)),
                             r"^\d+\n$")

    def test_the_node_example(self):
        node = shutil.which("node")
        if node is None:
            self.skipTest("node is not installed")
        self.write("worker.js", readme_example("A coprocess in Node", "js"))
        self.run_example([node, self.path("worker.js")], protocol="json")

    def test_the_go_example(self):
        go = shutil.which("go")
        if go is None:
            self.skipTest("go is not installed")
        src = self.write("main.go", readme_example("A coprocess in Go",
                                                   "go"))
        env = dict(self.env, GOCACHE=self.path("gocache"),
                   GOPATH=self.path("gopath"), GOFLAGS="-mod=mod")
        subprocess.run([go, "build", "-o", self.path("co"), src], env=env,
                       cwd=self.tmp, check=True, timeout=120,
                       capture_output=True)
        self.run_example(["./co"])


if __name__ == "__main__":
    harness.main()
