"""What an operator sees in the first hour: `run -d` returns once the
workers work, commands confirm in one line, a dead master shows in status
and is cleaned, `pmhost logs` tails, filters and follows a task's log,
plugin output becomes log lines, status shows each slot's health and exit
history, `env` and `workingDirectory` reach the workers, and command names
are forgiving."""

import json
import os
import re
import signal
import time

import harness

SLOW = harness.SLOW

# "2026-12-01T23:59:39.253+0000 info process_m:Worker:T#1[PID]: text"
LOG_LINE = re.compile(r"^(?P<time>\S+) (?P<level>\w+) (?P<who>[^:\s]+:"
                      r"(?P<role>Master|Worker):[^#\[\s]+(?:#(?P<slot>\d+))?"
                      r"\[(?P<pid>\d+)\]): (?P<text>.*)$")


def parse_log(text):
    """The lines of a log text that have the log's shape (LOG_LINE
    matches)."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m is not None:
            out.append(m)
    return out


class OperatorTest(harness.PmTest):

    def log_path(self, title=None):
        """Where a task started with -d logs: NAME.log in the run dir."""
        return os.path.join(self.rundir, (title or self.title) + ".log")

    def log(self, title=None):
        return self.read(self.log_path(title))

    def daemon(self, cfg, *extra):
        """`run -d CONFIG`, which must succeed; CompletedProcess."""
        return self.pm("run", "-d", cfg, *extra, check=0)

    def stop(self, title=None):
        self.pm("stop", "--title", title or self.title, check=0)
        self.wait_for(lambda: not self.masters(title), "master gone")

    def worker_json(self, slot):
        for w in self.master_json()["workers"]:
            if w["slot"] == slot:
                return w
        self.fail("no slot %d in status" % slot)

    def fds(self, pid):
        """{fd: target} of a live process."""
        d = "/proc/%d/fd" % pid
        out = {}
        for name in os.listdir(d):
            try:
                out[int(name)] = os.readlink(os.path.join(d, name))
            except OSError:
                pass
        return out


class TestDetachedStart(OperatorTest):
    """run -d: ready means every slot's worker is through work_init."""

    def test_run_d_returns_once_every_worker_finished_work_init(self):
        cfg = self.resident(maxWorkerNum=2, params={"init_sleep_ms": 300})
        t0 = time.monotonic()
        r = self.daemon(cfg)
        took = time.monotonic() - t0

        pid = self.master_pid()
        self.assertEqual(r.stdout, "%s: started (pid %d, 2 workers; log %s)\n"
                         % (self.title, pid, self.log_path()))
        self.assertEqual(r.stderr, "")
        # Both work_init calls had ended (each records after its sleep).
        self.assertEqual(sorted(e["slot"] for e in self.events("init")),
                         [0, 1])
        self.assertGreaterEqual(took, 0.3)
        self.stop()

    def test_run_d_waits_neither_for_the_cadence_nor_for_respawns(self):
        # One call per worker, then 3 s before a slot's next call: ready
        # must not wait for the replacements.
        cfg = self.record_config(maxWorkerNum=2, executeTimes=1,
                                 executeUSleep=3000000)
        t0 = time.monotonic()
        self.daemon(cfg)
        took = time.monotonic() - t0

        self.assertLess(took, 1.0 * SLOW, "run -d took %.2f s" % took)
        self.assertEqual(sorted(set(e["slot"] for e in self.events("init"))),
                         [0, 1])
        # The cadence holds meanwhile: no slot made a second call yet.
        calls = [e["slot"] for e in self.events("call")]
        self.assertEqual(len(calls), len(set(calls)), calls)
        self.stop()

    def test_work_init_failing_everywhere_exits_1_and_leaves_nothing(self):
        cfg = self.resident(maxWorkerNum=2, params={"init_fail": 1})
        t0 = time.monotonic()
        r = self.pm("run", "-d", cfg)
        took = time.monotonic() - t0

        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assert_one_error_line(
            r, r"^pmhost: %s: worker \d failed: work_init\(\) failed "
               r"\(exit status \d+\) \(see %s\)$" %
               (re.escape(self.title), re.escape(self.log_path())))
        self.assertLess(took, 5 * SLOW)
        # Nothing is left by the time it returns.
        self.assertFalse(os.path.exists(self.pid_file()))
        self.assertEqual(self.tagged_pids(), [])
        # The log tells why, with the plugin's own line.
        self.assertIn("recorder: init_fail requested", self.log())
        self.assertIn("start-up failed", self.log())
        # The plugin fixed, the next run starts at once.
        cfg = self.resident(maxWorkerNum=2)
        self.assertIn("started", self.daemon(cfg).stdout)
        self.stop()

    def test_one_slot_failing_stops_the_others_before_run_d_returns(self):
        # Slot 0 starts well and takes 300 ms in work_fini when stopped.
        cfg = self.resident(maxWorkerNum=2, params={"init_fail_slot": 1,
                                                    "fini_sleep_ms": 300})
        r = self.pm("run", "-d", cfg)

        self.assertEqual(r.returncode, 1, r.stderr)
        self.assert_one_error_line(r, r"^pmhost: %s: worker 1 failed: "
                                   r"work_init\(\) failed" %
                                   re.escape(self.title))
        self.assertFalse(os.path.exists(self.pid_file()))
        self.assertEqual(self.tagged_pids(), [])
        # Stopped in order: slot 0's worker ran work_fini.
        self.assertEqual([e["slot"] for e in self.events("fini")], [0])

    def test_a_worker_failing_after_work_init_does_not_fail_run_d(self):
        # Through work_init, then a crash in the first call: started,
        # whichever of the two the master hears of first.
        cfg = self.resident(maxWorkerNum=2, params={"crash_at": 1})
        for _ in range(5):
            r = self.daemon(cfg)
            self.assertRegex(r.stdout, r"^%s: started " %
                             re.escape(self.title))
            self.stop()

    def test_quiet_run_d_prints_nothing(self):
        cfg = self.resident(maxWorkerNum=1)
        r = self.pm("run", "-d", "-q", cfg, check=0)
        self.assertEqual((r.stdout, r.stderr), ("", ""))
        self.assertEqual(len(self.workers()), 1)
        self.stop()


class TestConfirmations(OperatorTest):
    """State-changing commands say what they did, in one line."""

    def test_scale_wakeup_restart_and_stop_confirm_in_one_line(self):
        cfg = self.resident(maxWorkerNum=2)
        self.daemon(cfg)
        t = re.escape(self.title)

        r = self.pm("scale", "--title", self.title, 3, check=0)
        self.assertEqual(r.stdout, "%s: scaled 2 -> 3\n" % self.title)
        self.wait_for(lambda: len(self.workers()) == 3, "3 workers")

        r = self.pm("wakeup", "--title", self.title, check=0)
        self.assertRegex(r.stdout, r"^%s: woke up: respawned 0 workers\n$"
                         % t)

        r = self.pm("restart", "--title", self.title, check=0)
        # The config says 2 workers: the reload comes back to them.
        self.assertRegex(r.stdout, r"^%s: restarted: generation 2 running "
                         r"with 2 workers\n$" % t)
        self.assertEqual(self.master_json()["generation"], 2)

        r = self.pm("stop", "--title", self.title, check=0)
        self.assertRegex(r.stdout, r"^%s: stopped \(2 workers, \d+\.\d s\)\n$"
                         % t)
        self.assertEqual(r.stderr, "")
        self.assertEqual(self.tagged_pids(), [])

    def test_quiet_silences_the_confirmation_and_nothing_else(self):
        cfg = self.resident(maxWorkerNum=1)
        self.daemon(cfg)
        for args in (("scale", "-q", "--title", self.title, 2),
                     ("wakeup", "-q", "--title", self.title),
                     ("restart", "--quiet", "--title", self.title)):
            r = self.pm(*args, check=0)
            self.assertEqual((r.stdout, r.stderr), ("", ""), args)
        self.assertEqual(self.master_json()["generation"], 2)
        # Errors still speak.
        r = self.pm("scale", "-q", "--title", self.title, "many")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        self.assert_one_error_line(r)
        r = self.pm("stop", "-q", "--title", self.title, check=0)
        self.assertEqual((r.stdout, r.stderr), ("", ""))
        self.assertEqual(self.tagged_pids(), [])
        r = self.pm("stop", "-q", "--title", self.title)
        self.assertEqual(r.returncode, 1)
        self.assert_one_error_line(r, r"not running")

    def test_status_with_nothing_running_says_so(self):
        r = self.pm("status", check=0)
        self.assertEqual(r.stdout, "no task is running (run dir %s)\n" %
                         self.rundir)
        self.assertEqual(r.stderr, "")

    def test_commands_on_a_task_not_running_name_the_run_dir(self):
        want = "pmhost: %s: not running (run dir %s)\n" % (self.title,
                                                        self.rundir)
        for args in (("status", "--title", self.title),
                     ("stop", "--title", self.title),
                     ("wakeup", "--title", self.title),
                     ("scale", "--title", self.title, 2),
                     ("restart", "--title", self.title)):
            r = self.pm(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertEqual((r.stdout, r.stderr), ("", want), args)


class TestDeadMaster(OperatorTest):
    """A master killed with SIGKILL: its workers go and say so; status
    reports it; --prune or the next run cleans up."""

    def kill_master(self, title=None):
        """SIGKILLs a -d task's master; waits until its workers are gone;
        (master pid, {worker pid: slot})."""
        title = title or self.title
        mpid = self.master_pid(title)
        workers = {w["pid"]: w["slot"] for w in self.status_json(
            "--title", title)["masters"][0]["workers"] if w["pid"]}
        os.kill(mpid, signal.SIGKILL)
        self.wait_gone([mpid] + list(workers), "master and workers gone",
                       timeout=5)
        return mpid, workers

    def test_workers_die_with_their_master_and_log_it_last(self):
        cfg = self.resident(maxWorkerNum=2, params={"log": 1})
        self.daemon(cfg)
        self.wait_text(self.log_path(), r"recorder call 2 in slot 1")

        mpid, workers = self.kill_master()

        self.assertEqual(len(workers), 2)
        self.assertEqual(self.pids_titled("Worker"), [])
        lines = parse_log(self.log())
        for wpid, slot in workers.items():
            mine = [m for m in lines if m.group("pid") == str(wpid)]
            self.assertTrue(mine, "no line of worker %d" % wpid)
            last = mine[-1]
            self.assertEqual(last.group("slot"), str(slot))
            self.assertEqual(last.group("level"), "warning")
            self.assertEqual(last.group("text"),
                             "its master (pid %d) is gone: the worker and "
                             "its children end now" % mpid)

    def test_status_reports_the_dead_master_and_prune_removes_its_files(self):
        cfg = self.resident(maxWorkerNum=1)
        self.daemon(cfg)
        sock = os.path.join(self.rundir, self.title + ".sock")
        mpid, _ = self.kill_master()

        for target in ((), ("--title", self.title), (cfg,)):
            r = self.pm("status", *target)
            self.assertEqual(r.returncode, 1, target)
            row = [ln for ln in r.stdout.splitlines()
                   if ln.startswith("Master")]
            self.assertEqual(len(row), 1, r.stdout)
            self.assertEqual(row[0].split()[1], str(mpid))
            self.assertEqual(row[0].split()[-1], "dead")
            line = self.assert_one_error_line(r)
            self.assertIn("pid %d" % mpid, line)
            self.assertIn("status --prune", line)

        r = self.pm("status", "--json")
        self.assertEqual(r.returncode, 1)
        doc = json.loads(r.stdout)
        self.assertEqual([(m["name"], m["pid"], m["state"])
                          for m in doc["masters"]],
                         [(self.title, mpid, "dead")])
        self.assertTrue(os.path.exists(self.pid_file()))
        self.assertTrue(os.path.exists(sock))

        r = self.pm("status", "--prune", check=0)
        self.assertIn("%s: removed the pid file and socket of its dead "
                      "master (pid %d)" % (self.title, mpid), r.stdout)
        self.assertFalse(os.path.exists(self.pid_file()))
        self.assertFalse(os.path.exists(sock))
        r = self.pm("status", check=0)
        self.assertEqual(r.stdout, "no task is running (run dir %s)\n" %
                         self.rundir)

    def test_the_next_run_takes_over_and_logs_the_dead_master(self):
        cfg = self.resident(maxWorkerNum=1)
        self.daemon(cfg)
        mpid, _ = self.kill_master()

        r = self.daemon(cfg)
        self.assertIn("%s: started" % self.title, r.stdout)
        self.assertNotEqual(self.master_pid(), mpid)
        self.assertEqual(self.master_json()["state"], "running")
        self.assertRegex(self.log(), r"warning \S+:Master:%s\[%d\]: the "
                         r"previous master \(pid %d\) died without stopping"
                         % (re.escape(self.title), self.master_pid(), mpid))
        self.stop()

    def test_a_worker_writing_when_its_master_dies_still_says_its_last_word(
            self):
        # The master's end of a worker's pipes closes before the kernel
        # sends the worker its parent-death signal: a worker writing
        # without pause hits the broken pipe first, and must not die of
        # it silently.
        cfg = self.resident(maxWorkerNum=2, executeUSleep=0,
                            params={"log": 1})
        self.daemon(cfg)
        for slot in (0, 1):
            self.wait_text(self.log_path(), r"recorder call \d+ in slot %d"
                           % slot)
        mpid, workers = self.kill_master()
        log = self.log()
        for wpid in workers:
            self.assertIn("[%d]: its master (pid %d) is gone" % (wpid, mpid),
                          log)

    def test_a_worker_of_another_user_holds_nothing_of_the_masters(self):
        # Workers as nobody must not keep the root master's log open; a
        # worker of the master's own user keeps it to say its last word.
        os.chmod(self.tmp, 0o755)
        other = self.title + "_n"
        mine = self.config("mine.json", maxWorkerNum=1, executeTimes=0,
                           executeUSleep=20000, params={"log": 1})
        theirs = self.config("theirs.json", baseTitle=other, user="nobody",
                             maxWorkerNum=1, executeTimes=0,
                             executeUSleep=20000, params={"log": 1})
        self.daemon(mine)
        self.daemon(theirs)
        self.wait_text(self.log_path(other), r"recorder call 2 ")
        self.wait_text(self.log_path(), r"recorder call 2 ")

        (w_mine,) = self.workers()
        (w_theirs,) = self.workers(other)
        self.assertEqual(os.stat("/proc/%d" % w_theirs).st_uid,
                         harness.NOBODY)
        fds = self.fds(w_theirs)
        self.assertEqual(sorted(fds), [0, 1, 2], fds)
        fds = self.fds(w_mine)
        extra = {fd: target for fd, target in fds.items() if fd > 2}
        self.assertEqual(list(extra.values()), [self.log_path()], fds)

        _, gone_theirs = self.kill_master(other)
        _, gone_mine = self.kill_master()
        self.assertEqual(list(gone_theirs), [w_theirs])
        self.assertEqual(list(gone_mine), [w_mine])
        self.assertIn("[%d]: its master (pid " % w_mine, self.log())
        self.assertNotIn("is gone", self.log(other))


class TestLogs(OperatorTest):
    """pmhost logs: tail, filter by slot or level, follow across reopen."""

    def stopped_task_log(self, **params):
        """A -d task with two slots that recycle and log, run until both
        slots have exit lines, then stopped; the log's text."""
        cfg = self.cfg = self.record_config(params=dict(log=1, **params),
                                            maxWorkerNum=2, executeTimes=2,
                                            executeUSleep=5000)
        self.daemon(cfg)
        for slot in (0, 1):
            self.wait_text(self.log_path(), r"Master:%s\[\d+\]: worker %d "
                           r"\(pid \d+\) exited" % (self.title, slot))
        self.wait_for(lambda: self.log().count("\n") >= 30, "30 log lines")
        self.stop()
        return self.log()

    def logs(self, *args):
        return self.pm("logs", "--title", self.title, *args, check=0)

    def test_last_n_lines_of_a_stopped_task(self):
        text = self.stopped_task_log()
        lines = text.splitlines()
        self.assertGreater(len(lines), 12)
        self.assertEqual(self.logs("-n", 3).stdout.splitlines(), lines[-3:])
        self.assertEqual(self.logs().stdout.splitlines(), lines[-10:])
        self.assertEqual(self.logs("-n", 100000).stdout, text)
        # The config names the same task.
        r = self.pm("logs", self.cfg, "-n", 3, check=0)
        self.assertEqual(r.stdout.splitlines(), lines[-3:])

    def test_slot_filter_keeps_the_slots_lines_and_the_masters_about_it(self):
        text = self.stopped_task_log()
        about_1 = re.compile(r"^\S+ \w+ (\S+:Worker:%s#1\[\d+\]: |"
                             r"\S+:Master:%s\[\d+\]: (worker 1 |slot 1:))"
                             % ((re.escape(self.title),) * 2))
        want = [ln for ln in text.splitlines() if about_1.match(ln)]
        got = self.logs("-n", 100000, "--slot", 1).stdout.splitlines()

        self.assertEqual(got, want)
        # Both kinds are there: the worker's own, the master's about it.
        self.assertTrue(any(":Worker:" in ln for ln in got), got)
        self.assertTrue(any("worker 1 (pid" in ln for ln in got), got)
        self.assertTrue(any("#0[" in ln for ln in text.splitlines()))
        self.assertEqual(self.logs("-n", 4, "--slot", 1).stdout.splitlines(),
                         want[-4:])

    def test_level_warning_shows_only_warnings_and_errors(self):
        text = self.stopped_task_log(print=1)   # stderr lines: warnings
        want = [ln for ln in text.splitlines()
                if ln.split(" ")[1] in ("warning", "error")]
        self.assertTrue(want)
        self.assertLess(len(want), len(text.splitlines()))
        got = self.logs("-n", 100000, "--level", "warning").stdout
        self.assertEqual(got.splitlines(), want)
        self.assertEqual(self.logs("-n", 2, "--level", "warning")
                         .stdout.splitlines(), want[-2:])

    def follower(self):
        """A running -d task that logs every call, and `logs -f` on it."""
        cfg = self.resident(maxWorkerNum=1, executeUSleep=10000,
                            params={"log": 1})
        self.daemon(cfg)
        f = self.start("logs", "--title", self.title, "-f", "-n", 1)
        self.wait_text(f, r"recorder call \d+ in slot 0")
        return f

    def wait_followed(self, f, path):
        """Waits until a line written to path after now shows in f."""
        def newest():
            done = [ln for ln in self.read(path).splitlines(True)
                    if ln.endswith("\n") and "recorder call" in ln]
            return done[-1].rstrip("\n") if done else None

        first = newest()
        line = self.wait_for(lambda: newest() != first and newest(),
                             "a new line in %s" % path)
        self.wait_text(f, "^" + re.escape(line) + "$")

    def test_follow_goes_on_after_the_log_is_renamed_and_reopened(self):
        f = self.follower()
        log = self.log_path()
        os.rename(log, log + ".1")
        os.kill(self.master_pid(), signal.SIGUSR1)
        self.wait_for(lambda: os.path.exists(log), "the log reopened")

        self.wait_followed(f, log)
        self.assertIsNone(f.poll(), self.output(f))
        f.kill()
        f.wait()
        # What it showed is the two files' lines in order: none lost
        # at the switch, none twice.
        shown = self.output(f).splitlines()
        both = (self.read(log + ".1") + self.read(log)).splitlines()
        self.assertIn(shown[0], both)
        i = both.index(shown[0])
        self.assertEqual(shown, both[i:i + len(shown)])
        self.assertTrue(any(ln in shown for ln in
                            self.read(log + ".1").splitlines()[-1:]))
        self.stop()

    def test_follow_goes_on_after_a_copytruncate(self):
        f = self.follower()
        log = self.log_path()
        with open(log, "r+") as fh:
            fh.truncate(0)

        self.wait_followed(f, log)
        self.assertIsNone(f.poll(), self.output(f))
        f.kill()
        self.stop()

    def test_a_foreground_master_logging_to_a_file_is_tailed(self):
        log = self.path("fg.log")
        cfg = self.resident(maxWorkerNum=1, params={"log": 1})
        p = self.run_fg(cfg, "--log-file", log, workers=1)
        self.wait_text(log, r"recorder call 3 in slot 0")
        r = self.pm("logs", "--title", self.title, "-n", 2, check=0)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r.stdout)
        for ln in lines:
            self.assertIn(ln, self.read(log).splitlines())
        self.stop_fg(p)

    def test_a_master_logging_to_stderr_points_to_journalctl(self):
        cfg = self.resident(maxWorkerNum=1)
        p = self.run_fg(cfg, workers=1)
        r = self.pm("logs", "--title", self.title)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assert_one_error_line(r, r"^pmhost: %s: .*journalctl" %
                                   re.escape(self.title))
        self.stop_fg(p)


class TestPluginOutput(OperatorTest):
    """What a plugin prints becomes log lines, whole and in time."""

    def test_every_printed_line_is_a_log_line_naming_title_slot_and_pid(self):
        cfg = self.resident(maxWorkerNum=2, params={"print": 1})
        self.daemon(cfg)
        for stream in ("stdout", "stderr"):
            for slot in (0, 1):
                self.wait_text(self.log_path(),
                               r"Worker:%s#%d\[\d+\]: recorder %s call 3$" %
                               (re.escape(self.title), slot, stream))
        pids = {str(w["pid"]): w["slot"] for w in
                self.master_json()["workers"]}
        self.stop()
        printed = [m for m in parse_log(self.log())
                   if m.group("text").startswith("recorder std")]
        self.assertGreaterEqual(len(printed), 12)
        for m in printed:
            self.assertEqual(m.group("who"), "process_m:Worker:%s#%d[%s]" %
                             (self.title, pids[m.group("pid")],
                              m.group("pid")))
            self.assertEqual(m.group("level"), "info" if "stdout" in
                             m.group("text") else "warning", m.group(0))
        # Nothing raw: every line of the log has the log's shape.
        raw = [ln for ln in self.log().splitlines() if not LOG_LINE.match(ln)]
        self.assertEqual(raw, [])

    def test_a_worker_crashing_right_after_printing_loses_nothing(self):
        cfg = self.resident(maxWorkerNum=1, params={"print": 1,
                                                    "crash_at": 2})
        self.daemon(cfg)
        self.wait_text(self.log_path(), r"exited: killed by SIGSEGV(.|\n)*"
                       r"exited: killed by SIGSEGV")
        self.stop()
        lines = parse_log(self.log())
        crashed = [m for m in self.exits(self.log())
                   if "SIGSEGV" in m["reason"]]
        self.assertGreaterEqual(len(crashed), 2)
        for ex in crashed:
            said = [(m.group("level"), m.group("text")) for m in lines
                    if m.group("pid") == ex["pid"]]
            for call in (1, 2):
                self.assertIn(("info", "recorder stdout call %d" % call),
                              said, ex)
                self.assertIn(("warning", "recorder stderr call %d" % call),
                              said, ex)

    def test_a_plugin_writing_without_end_never_blocks_the_master(self):
        cfg = self.resident(maxWorkerNum=1, stopTimeout=2,
                            params={"flood": 1})
        self.daemon(cfg)
        log = self.log_path()
        self.wait_text(log, r"recorder flood x+$")
        sizes = []
        for _ in range(5):
            t0 = time.monotonic()
            doc = self.master_json()
            took = time.monotonic() - t0
            self.assertLess(took, 1.0 * SLOW, "status took %.2f s" % took)
            self.assertEqual(doc["workers"][0]["state"], "busy")
            sizes.append(os.path.getsize(log))
        self.assertGreater(sizes[-1], sizes[0], "the flood stalled")
        t0 = time.monotonic()
        r = self.pm("stop", "--title", self.title, check=0)
        self.assertLess(time.monotonic() - t0, 4 * SLOW, r.stdout)
        self.assertEqual(self.tagged_pids(), [])


class TestHealth(OperatorTest):
    """Per-slot health in status: lifetime calls, recycles and failures
    apart, the last exits, crash loops; scale-down forgets a slot."""

    def test_json_counts_recycles_apart_and_keeps_the_last_five_exits(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=2,
                                 executeUSleep=5000)
        self.daemon(cfg)
        self.wait_for(lambda: self.worker_json(0)["recycles"] >= 7,
                      "7 recycles")
        w = self.worker_json(0)

        self.assertEqual(w["failures_total"], 0)
        self.assertIs(w["crash_loop"], False)
        # Lifetime calls: two per ended worker plus the live one's.
        # A slot between two workers has no live one: work is null.
        self.assertEqual(w["calls_total"],
                         2 * w["recycles"] + (w["work"] or 0))
        exits = w["exits"]
        self.assertEqual(len(exits), 5)
        for e in exits:
            self.assertEqual(sorted(e), ["at", "at_unix_ms", "calls",
                                         "failed", "lived_s", "reason"])
            self.assertEqual(e["calls"], 2)
            self.assertIs(e["failed"], False)
            self.assertRegex(e["reason"], r"^reached executeTimes after 2 "
                             r"calls, ")
            self.assertGreater(e["lived_s"], 0)
            self.assertRegex(e["at"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        ats = [e["at_unix_ms"] for e in exits]
        self.assertEqual(ats, sorted(ats), "oldest first")
        self.assertLess(abs(ats[-1] / 1000 - time.time()), 30)
        self.assertEqual(w["last_exit"], exits[-1]["reason"])

        # The table: a summary in columns calls, recycled, failed.
        r = self.pm("status", "--title", self.title, check=0)
        lines = r.stdout.splitlines()
        head = [ln for ln in lines if " work " in ln][0]
        row = [ln for ln in lines if ln.startswith("Worker")][0]
        self.assertRegex(head, r" calls +calls/s +p50 +p99 +errors +"
                         r"recycled +failed +last exit$")
        # Columns are aligned on the header's words.
        at = [head.index(" %s " % c) + 1 for c in
              ("calls", "calls/s", "recycled", "failed", "last")]
        calls, _, recycled, failed = (row[a:b] for a, b in
                                      zip(at, at[1:]))
        calls, recycled, failed = int(calls), int(recycled), int(failed)
        self.assertGreaterEqual(recycled, 7)
        self.assertGreaterEqual(calls, 2 * recycled)
        self.assertEqual(failed, 0)
        self.stop()

    def test_three_failures_in_a_row_are_a_crash_loop(self):
        cfg = self.resident(maxWorkerNum=1, params={"crash_at": 1})
        self.daemon(cfg)

        def looping():
            w = self.worker_json(0)
            return w if w["state"] == "crash-loop" else None
        w = self.wait_for(looping, "slot 0 in crash-loop")

        self.assertIs(w["crash_loop"], True)
        self.assertGreaterEqual(w["failures_total"], 3)
        self.assertGreaterEqual(w["failures"], 3)
        self.assertEqual(w["recycles"], 0)
        self.assertIsNotNone(w["respawn_in_s"])
        for e in w["exits"]:
            self.assertIs(e["failed"], True)
            self.assertRegex(e["reason"], r"^killed by SIGSEGV after 0 "
                             r"calls, ")
        self.assertRegex(self.log(), r"respawning in \d+\.\d s "
                         r"\(3 failures in a row\)")
        self.stop()

    def test_slots_made_again_by_scale_start_with_a_clean_history(self):
        cfg = self.resident(maxWorkerNum=4)
        self.daemon(cfg)
        old = self.slot_pids()
        for slot in (0, 2, 3):
            os.kill(old[slot], signal.SIGKILL)
        self.wait_for(lambda: all(
            self.worker_json(s)["restarts"] == 1 and
            self.worker_json(s)["pid"] not in (None, old[s])
            for s in (0, 2, 3)), "slots 0, 2, 3 respawned")
        for s in (2, 3):
            self.assertEqual(self.worker_json(s)["failures_total"], 1)

        r = self.pm("scale", "--title", self.title, 2, check=0)
        self.assertEqual(r.stdout, "%s: scaled 4 -> 2\n" % self.title)
        self.wait_for(lambda: len(self.workers()) == 2, "2 workers")
        r = self.pm("scale", "--title", self.title, 4, check=0)
        self.assertEqual(r.stdout, "%s: scaled 2 -> 4\n" % self.title)
        self.wait_for(lambda: len(self.workers()) == 4, "4 workers")

        for s in (2, 3):
            w = self.worker_json(s)
            self.assertEqual((w["recycles"], w["failures_total"],
                              w["restarts"], w["failures"],
                              w["last_exit"], w["exits"]),
                             (0, 0, 0, 0, None, []), w)
        # A slot that stayed keeps its history.
        w = self.worker_json(0)
        self.assertEqual((w["failures_total"], w["restarts"]), (1, 1))
        self.assertRegex(w["last_exit"], r"^killed by SIGKILL")
        self.assertEqual(len(w["exits"]), 1)
        self.stop()

    def test_a_call_killed_by_work_timeout_is_a_failure_named_once(self):
        # The call returns once asked to stop: the case, where the
        # call was named twice and the exit counted as healthy.
        cfg = self.resident(maxWorkerNum=1, workTimeout=1,
                            params={"sleep_ms": 60000, "poll_stop": 1})
        self.daemon(cfg)
        exits = self.wait_log_exits(3, timeout=15)
        text = self.log()

        for e in exits:
            self.assertRegex(e["reason"], r"^workTimeout: call 1 ran 1\.\d s,"
                             r" killed$")
            self.assertEqual(e["level"], "warning")
        self.assertEqual([e["plan"] for e in exits[:3]],
                         ["respawning now",
                          "respawning in 0.1 s (2 failures in a row)",
                          "respawning in 0.2 s (3 failures in a row)"])
        for e in exits:
            about = [ln for ln in text.splitlines()
                     if "(pid %s)" % e["pid"] in ln or
                     "[%s]:" % e["pid"] in ln]
            self.assertFalse([ln for ln in about if "call 2" in ln], about)
            self.assertTrue([ln for ln in about if re.search(
                r"work\(\) call 1 has run 1\.\d s, over workTimeout 1 s",
                ln)], about)
        w = self.worker_json(0)
        self.assertGreaterEqual(w["failures_total"], 3)
        self.assertEqual(w["recycles"], 0)
        self.assertTrue(all(e["failed"] for e in w["exits"]), w["exits"])
        self.stop()

    def wait_log_exits(self, n, timeout=10):
        """Waits for n exit lines in the -d task's log; all of them."""
        return self.wait_for(lambda: len(self.exits(self.log())) >= n and
                             self.exits(self.log()),
                             "%d exit lines in the log" % n, timeout)


class TestEnvironment(OperatorTest):
    """env and workingDirectory: what the worker sees, what check says."""

    def run_once(self, **keys):
        """Runs a one-call task in the foreground to its end; the env
        line its worker recorded."""
        cfg = self.record_config(checkWorkerInterval=0, maxWorkerNum=1,
                                 executeTimes=1, **keys)
        self.pm("run", cfg, check=0)
        (ev,) = self.events("env")
        return ev["extra"]

    def test_env_and_a_relative_working_directory_reach_the_worker(self):
        os.mkdir(self.path("wd"))
        seen = self.run_once(env={"GREETING": "hello world=1"},
                             workingDirectory="wd",
                             params={"show_env": "GREETING"})
        self.assertEqual(seen, "GREETING=hello world=1 cwd=%s" %
                         self.path("wd"))

    def test_env_overrides_the_home_of_a_user_task(self):
        os.chmod(self.tmp, 0o755)
        events = self.write("events", "")
        os.chown(events, harness.NOBODY, harness.NOBODY)
        seen = self.run_once(user="nobody", params={"show_env": "HOME"})
        home = [ln.split(":")[5] for ln in self.read("/etc/passwd")
                .splitlines() if ln.startswith("nobody:")][0]
        self.assertEqual(seen.split(" cwd=")[0], "HOME=%s" % home)

        os.truncate(events, 0)
        seen = self.run_once(user="nobody", env={"HOME": "/srv/app"},
                             params={"show_env": "HOME"})
        self.assertEqual(seen.split(" cwd=")[0], "HOME=/srv/app")

    def test_check_names_the_working_directory(self):
        os.mkdir(self.path("wd"))
        cfg = self.resident(workingDirectory="wd", env={"A": "b"})
        r = self.pm("check", cfg, check=0)
        self.assertRegex(r.stdout, r"; in %s\n" % re.escape(self.path("wd")))
        self.assertTrue(r.stdout.endswith("ok\n"), r.stdout)

    def test_check_refuses_a_bad_env_or_a_missing_directory(self):
        cases = [
            ({"env": {"1BAD": "x"}}, r"env\.1BAD: not a variable name"),
            ({"env": {"A=B": "x"}}, r"env\.A=B: not a variable name"),
            ({"env": {"PORT": 8080}}, r"env\.PORT: must be a string"),
            ({"env": ["A=b"]}, r"env: must be an object"),
            ({"workingDirectory": "nope"},
             r"workingDirectory: %s: No such file or directory" %
             re.escape(self.path("nope"))),
        ]
        for keys, why in cases:
            cfg = self.resident(**keys)
            for cmd in ("check", "run"):
                r = self.pm(cmd, cfg)
                self.assertEqual(r.returncode, 2, (cmd, keys, r.stderr))
                self.assert_one_error_line(r, r"^pmhost: %s: %s" %
                                           (re.escape(cfg), why))
        self.assertEqual(self.tagged_pids(), [])
        self.assertEqual(self.events(), [])


class TestCommandNames(OperatorTest):

    def test_start_is_run(self):
        cfg = self.resident(maxWorkerNum=2)
        r = self.pm("start", cfg, "-d", check=0)
        self.assertEqual(r.stdout, "%s: started (pid %d, 2 workers; log %s)\n"
                         % (self.title, self.master_pid(), self.log_path()))
        self.assertEqual(len(self.workers()), 2)
        self.stop()

    def test_a_misspelt_command_gets_a_suggestion(self):
        r = self.pm("stauts")
        self.assertEqual(r.returncode, 2)
        self.assert_one_error_line(r, r"did you mean 'status'\?")

    def test_an_unrelated_word_gets_none(self):
        r = self.pm("bogus")
        self.assertEqual(r.returncode, 2)
        line = self.assert_one_error_line(r, r"'bogus'")
        self.assertNotIn("did you mean", line)


class TestPlurals(OperatorTest):

    def test_one_call_and_one_worker_are_singular(self):
        # Run once: the worker crashes in its second call; no respawn.
        cfg = self.record_config(maxWorkerNum=1, checkWorkerInterval=0,
                                 executeTimes=0, executeUSleep=1000,
                                 params={"crash_at": 2})
        r = self.pm("run", cfg)
        self.assertRegex(r.stderr, r"exited: killed by SIGSEGV after 1 "
                         r"call, \d")

        cfg = self.resident(maxWorkerNum=1)
        r = self.daemon(cfg)
        self.assertIn(" 1 worker;", r.stdout)
        r = self.pm("stop", "--title", self.title, check=0)
        self.assertRegex(r.stdout, r"stopped \(1 worker, ")
        log = self.log()
        self.assertRegex(log, r"Master:%s\[\d+\]: started: 1 worker of " %
                         re.escape(self.title))
        self.assertRegex(log, r"(?m): 1 worker to finish$")
        self.assertNotRegex(r.stderr + log, r"\b1 (calls|workers)\b")


if __name__ == "__main__":
    harness.main()
