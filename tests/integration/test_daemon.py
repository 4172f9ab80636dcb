"""`pmhost run -d`: readiness, detachment, the pid file and its lock, where
a detached master's log goes, and the run dir's safety checks."""

import fcntl
import os
import re
import signal
import stat
import subprocess
import termios
import time

import harness
from harness import alive, children, proc_cmdline, proc_stat


class DaemonTest(harness.PmTest):

    def daemon(self, cfg, *extra, check=0):
        """`pmhost run -d CFG`; the CompletedProcess."""
        return self.pm("run", "-d", cfg, *extra, check=check)

    def stop_daemon(self):
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.masters(), [])

    def assert_nothing_started(self, rundir=None):
        self.assertEqual(self.tagged_pids(), [], "processes left running")
        self.assertFalse(os.path.exists(self.pid_file(rundir=rundir)),
                         "pid file created")


class TestDetach(DaemonTest):

    def test_run_d_returns_once_master_and_workers_are_running(self):
        # Many workers: forking them all takes long enough that a "ready"
        # sent before the last fork would be seen here.
        cfg = self.record_config(maxWorkerNum=64, executeTimes=0,
                                 executeUSleep=1000000)

        r = self.daemon(cfg)

        # Straight after the return, without waiting for anything.
        master = self.master_pid()
        kids = children(master)
        self.assertTrue(alive(master), "master not running")
        self.assertEqual(len(kids), 64, "workers forked: %r" % kids)
        for k in kids:
            self.assertEqual(proc_stat(k).pgid, k,
                             "worker %d does not lead its group" % k)
        self.assertEqual(r.stdout, "%s: started (pid %d, 64 workers; log %s)\n"
                         % (self.title, master, os.path.join(
                             self.rundir, self.title + ".log")))
        self.assertEqual(r.stderr, "")
        self.assertTrue(proc_cmdline(master).endswith(
            ":Master:" + self.title), proc_cmdline(master))
        self.wait_for(lambda: self.workers() == kids, "64 titled workers")
        self.stop_daemon()

    def test_detached_master_has_its_own_session_and_no_terminal(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        self.daemon(cfg)

        master = self.master_pid()
        self.assertEqual(self.masters(), [master])
        st = proc_stat(master)
        self.assertNotEqual(st.sid, os.getsid(0), "master in our session")
        self.assertEqual(st.tty, 0, "master has a controlling terminal")
        self.stop_daemon()

    def test_run_d_from_a_terminal_leaves_the_terminal_behind(self):
        # The command runs as a session leader whose controlling terminal
        # and stdio are a pty: the master must end up with neither.
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        ptm, pts = os.openpty()
        self.addCleanup(os.close, ptm)
        try:
            r = subprocess.run(
                [harness.PMHOST, "run", "-d", cfg], env=self.env,
                stdin=pts, stdout=pts, stderr=pts, start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
                timeout=30 * harness.SLOW)
        finally:
            os.close(pts)
        self.assertEqual(r.returncode, 0)

        master = self.master_pid()
        st = proc_stat(master)
        self.assertEqual(st.tty, 0, "master kept the controlling terminal")
        self.assertNotEqual(st.sid, os.getsid(0), "master in our session")
        fds = {fd: os.readlink("/proc/%d/fd/%d" % (master, fd))
               for fd in (0, 1, 2)}
        self.assertEqual(fds[0], "/dev/null")
        log = os.path.join(self.rundir, self.title + ".log")
        self.assertEqual(fds[1], log)
        self.assertEqual(fds[2], log)
        self.stop_daemon()

    def test_pid_file_holds_the_master_pid_and_is_removed_on_stop(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        self.daemon(cfg)

        master = self.master_pid()
        self.assertEqual(self.masters(), [master])
        self.stop_daemon()
        self.assertFalse(alive(master))
        self.assertFalse(os.path.exists(self.pid_file()))

    def test_run_d_of_a_running_title_exits_1_naming_its_pid(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=0)
        self.daemon(cfg)
        master = self.master_pid()
        workers = self.wait_for(lambda: len(self.workers()) == 2 and
                                self.workers(), "2 workers")

        r = self.daemon(cfg, check=1)

        self.assertEqual(r.stderr, "pmhost: %s: already running (pid %d)\n"
                         % (self.title, master))
        self.assertEqual(self.masters(), [master])
        self.assertEqual(self.workers(), workers)
        self.assertEqual(self.master_pid(), master)
        self.stop_daemon()

    def test_foreground_run_of_a_running_title_exits_1(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        self.daemon(cfg)
        master = self.master_pid()

        r = self.pm("run", cfg, timeout=10, check=1)

        self.assertEqual(r.stderr, "pmhost: %s: already running (pid %d)\n"
                         % (self.title, master))
        self.assertEqual(self.masters(), [master])
        self.stop_daemon()

    def test_run_d_with_a_broken_plugin_exits_2_and_starts_nothing(self):
        cfg = self.config(plugin_name="nowork")

        r = self.daemon(cfg, check=2)

        self.assert_one_error_line(
            r, r"^pmhost: %s: plugin: .*no work\(\) function" %
            re.escape(cfg))
        self.assert_nothing_started()

    def test_run_d_with_unwritable_log_file_exits_2_starts_nothing(self):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        log = self.path("no/such/dir/task.log")

        r = self.daemon(cfg, "--log-file", log, check=2)

        self.assert_one_error_line(r, r"^pmhost: %s: log file: %s: No such "
                                   r"file or directory$" %
                                   (re.escape(self.title),
                                    re.escape(self.path("no"))))
        self.assert_nothing_started()
        self.assertEqual(self.events(), [])

    def test_sigterm_right_after_pid_file_appears_leaves_no_pid_file(self):
        # The pid file names the detached master before `run -d` returns;
        # a stop from then on must end in a clean stop that removes it.
        # The window is short: try several starts, watching the file
        # without sleeping (still under a deadline).
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        pidfile = self.pid_file()
        end = time.monotonic() + 2.0  # a budget of tries, not a wait
        attempts = 0
        while attempts < 100 and (attempts < 10 or time.monotonic() < end):
            attempts += 1
            self.assertFalse(os.path.exists(pidfile))
            p = self.start("run", "-d", cfg)

            pid = self.signal_on_pid_file(pidfile, signal.SIGTERM, p)

            rc = self.wait_exit(p)
            self.wait_gone([pid], "master %d gone after SIGTERM" % pid)
            self.assertFalse(
                os.path.exists(pidfile),
                "attempt %d: SIGTERM right after the pid file appeared: "
                "master %d gone, pid file left; run -d exit %d: %s" %
                (attempts, pid, rc, self.output(p).strip()))


class TestStalePidFile(DaemonTest):
    """A pid file nobody holds the lock of is stale, whatever pid it names."""

    def write_stale(self, pid):
        os.makedirs(self.rundir, mode=0o700, exist_ok=True)
        with open(self.pid_file(), "w") as f:
            f.write("%d\n" % pid)

    def test_stale_pid_file_naming_a_live_process_does_not_block_run(self):
        self.write_stale(os.getpid())
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)

        p = self.run_fg(cfg, workers=1)

        self.assertIsNone(p.poll())
        self.assertEqual(self.master_pid(), p.pid)
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)

    def test_stale_pid_file_naming_pid_1_does_not_block_run_d(self):
        self.write_stale(1)
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)

        self.daemon(cfg)

        master = self.master_pid()
        self.assertNotEqual(master, 1)
        self.assertEqual(self.masters(), [master])
        self.stop_daemon()


class TestDaemonLog(DaemonTest):

    def log_config(self, **keys):
        # Recorder events go to the worker's stdout: a line from the plugin's
        # own stdio, beside its pm_log lines.
        return self.config(params={"record": "/dev/stdout", "log": 1},
                           maxWorkerNum=1, executeTimes=0, **keys)

    def assert_log_has_everything(self, path):
        """The master's lines, the plugin's pm_log lines and the plugin's
        stdout, as log lines of the worker."""
        self.wait_text(path, r"process_m:Master:%s\[\d+\]: started: 1 "
                       "worker of " % re.escape(self.title))
        self.wait_text(path, r"process_m:Worker:%s#\d+\[\d+\]: recorder call 1 "
                       "in slot 0$" % re.escape(self.title))
        self.wait_text(path, r" info process_m:Worker:%s#\d+\[\d+\]: "
                       r"init 0 \d+ 0 \d+$" % re.escape(self.title))
        self.wait_text(path, r" info process_m:Worker:%s#\d+\[\d+\]: "
                       r"call 0 \d+ 0 \d+$" % re.escape(self.title))

    def test_detached_log_goes_to_title_log_in_the_run_dir(self):
        cfg = self.log_config()
        log = os.path.join(self.rundir, self.title + ".log")

        self.daemon(cfg)

        self.assert_log_has_everything(log)
        self.stop_daemon()
        self.assertRegex(self.read(log), r"\]: stopped\n")

    def test_run_d_honours_log_file_option(self):
        cfg = self.log_config()
        log = self.path("cli.log")

        self.daemon(cfg, "--log-file", log)

        self.assert_log_has_everything(log)
        self.assertFalse(os.path.exists(
            os.path.join(self.rundir, self.title + ".log")))
        self.stop_daemon()

    def test_run_d_honours_log_file_key_relative_to_the_config(self):
        cfg = self.log_config(logFile="task.log")
        os.chdir("/")
        self.addCleanup(os.chdir, os.getcwd())

        self.daemon(cfg)

        self.assert_log_has_everything(self.path("task.log"))
        self.assertFalse(os.path.exists(
            os.path.join(self.rundir, self.title + ".log")))
        self.stop_daemon()

    def test_log_file_option_wins_over_log_file_key(self):
        cfg = self.log_config(logFile=self.path("key.log"))

        self.daemon(cfg, "--log-file", self.path("cli.log"))

        self.assert_log_has_everything(self.path("cli.log"))
        self.assertFalse(os.path.exists(self.path("key.log")))
        self.stop_daemon()

    def test_foreground_run_honours_log_file_option(self):
        cfg = self.log_config()
        log = self.path("fg.log")

        p = self.run_fg(cfg, "--log-file", log, workers=1)

        # In the foreground too, the plugin's stdout is a log line.
        self.assert_log_has_everything(log)
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)
        self.assertRegex(self.read(log), r"\]: stopped\n")
        self.assertNotIn("started", self.output(p))


class TestRunDir(DaemonTest):

    def use_rundir(self, path):
        self.env["PMHOST_RUNDIR"] = path

    def assert_refused(self, rundir, reason, daemon=False):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        args = ("run", "-d", cfg) if daemon else ("run", cfg)

        r = self.pm(*args, timeout=10, check=1)

        self.assert_one_error_line(
            r, r"^pmhost: %s: run dir %s: %s" %
            (re.escape(self.title), re.escape(rundir), reason))
        self.assert_nothing_started(rundir)
        self.assertEqual(self.events(), [])

    def real_dir(self, name="real"):
        d = self.path(name)
        os.mkdir(d, 0o700)
        os.chmod(d, 0o700)
        return d

    def test_run_dir_that_is_a_symlink_is_refused(self):
        link = self.path("link")
        os.symlink(self.real_dir(), link)
        self.use_rundir(link)
        self.assert_refused(link, "is a symlink")

    def test_run_d_refuses_a_symlinked_run_dir(self):
        link = self.path("link")
        os.symlink(self.real_dir(), link)
        self.use_rundir(link)
        self.assert_refused(link, "is a symlink", daemon=True)
        self.assertEqual(os.listdir(self.path("real")), [])

    def test_run_dir_that_is_a_regular_file_is_refused(self):
        f = self.path("file")
        with open(f, "w") as fh:
            fh.write("not a dir\n")
        self.use_rundir(f)
        self.assert_refused(f, "not a directory")

    def test_run_dir_writable_by_others_is_refused(self):
        d = self.path("open")
        os.mkdir(d)
        os.chmod(d, 0o777)
        self.use_rundir(d)
        self.assert_refused(d, r"writable by group or others \(mode 0777\)")

    def test_run_dir_owned_by_another_uid_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give a directory to uid 65534")
        d = self.real_dir("theirs")
        os.chown(d, 65534, 65534)
        self.use_rundir(d)
        self.assert_refused(d, r"owned by uid 65534")

    def test_run_dir_is_created_0700(self):
        d = self.path("deep/er/run")
        self.use_rundir(d)
        self.rundir = d
        # Written first: a config others could write is refused as root.
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        old = os.umask(0)
        self.addCleanup(os.umask, old)

        self.daemon(cfg)

        st = os.lstat(d)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertEqual(st.st_uid, os.geteuid())
        self.assertTrue(os.path.exists(self.pid_file()))
        self.stop_daemon()


if __name__ == "__main__":
    harness.main()
