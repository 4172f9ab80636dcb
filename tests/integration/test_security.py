"""A root master never writes through paths its task's user controls.

Tried as the owner of the task's account would: symlinks, hard links and
FIFOs planted where the log goes, configs, plugins and logs in places
others can write; and what a worker may and may not do (no new
privileges, resource limits, plugin code never run as root when `user`
is set)."""

import os
import re
import signal
import stat

import harness

NOBODY = harness.NOBODY


class SecurityTest(harness.PmTest):

    def setUp(self):
        super().setUp()
        # Workers run as nobody: let them through the scratch dir.
        os.chmod(self.tmp, 0o755)
        self.app = self.path("app")
        os.mkdir(self.app)
        os.chown(self.app, NOBODY, NOBODY)      # the usual layout
        self.target = self.path("root-only")    # what an attacker wants
        with open(self.target, "w") as f:
            f.write("secret\n")
        os.chmod(self.target, 0o600)

    def assert_target_untouched(self):
        self.assertEqual(self.read(self.target), "secret\n")

    def task(self, log, **keys):
        keys.setdefault("user", "nobody")
        return self.resident(maxWorkerNum=1, logFile=log,
                             params={"log": 1}, **keys)


class TestLogPaths(SecurityTest):

    def refused_at_start(self, log, reason):
        cfg = self.task(log)
        for cmd in (("run", "-d", cfg), ("run", cfg), ("check", cfg)):
            r = self.pm(*cmd, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertRegex(r.stderr, r"^pmhost: %s: log file: %s" %
                             (re.escape(self.title), reason))
        self.assertEqual(self.tagged_pids(), [])
        self.assert_target_untouched()

    def test_symlinked_log_file_is_refused(self):
        log = os.path.join(self.app, "task.log")
        os.symlink(self.target, log)
        os.lchown(log, NOBODY, NOBODY)
        self.refused_at_start(log, r"%s: a symlink in %s, which another "
                              r"user can write" % (re.escape(log),
                                                   re.escape(self.app)))

    def test_symlinked_directory_in_the_path_is_refused(self):
        os.mkdir(self.path("rootdir"), 0o700)
        os.symlink(self.path("rootdir"), os.path.join(self.app, "sub"))
        log = os.path.join(self.app, "sub", "task.log")
        self.refused_at_start(log, r"%s: a symlink" %
                              re.escape(os.path.join(self.app, "sub")))
        self.assertFalse(os.path.exists(self.path("rootdir/task.log")))

    def test_hard_link_to_another_file_is_refused(self):
        log = os.path.join(self.app, "task.log")
        os.link(self.target, log)
        self.refused_at_start(log, r"%s: has 2 hard links" % re.escape(log))

    def test_fifo_is_refused_without_blocking(self):
        log = os.path.join(self.app, "task.log")
        os.mkfifo(log)
        self.refused_at_start(log, r"%s: not a regular file" %
                              re.escape(log))

    def test_a_file_of_another_user_is_refused(self):
        log = os.path.join(self.app, "task.log")
        with open(log, "w"):
            pass
        os.chown(log, 4242, 4242)
        self.refused_at_start(log, r"%s: owned by uid 4242" %
                              re.escape(log))

    def test_symlink_planted_before_a_reopen_keeps_the_old_log(self):
        log = os.path.join(self.app, "task.log")
        cfg = self.task(log)
        self.pm("run", "-d", cfg, check=0)
        mpid = self.master_pid()
        self.wait_text(log, "recorder call")
        # The attacker (nobody owns the directory) swaps the log.
        os.rename(log, log + ".1")
        os.symlink(self.target, log)
        os.kill(mpid, signal.SIGUSR1)
        self.wait_text(log + ".1", r"reopening the log: %s: a symlink in "
                       r".*; the old log stays open" % re.escape(log))
        # Lines keep going to the old file, none to the target.
        n = len(self.read(log + ".1"))
        self.wait_for(lambda: len(self.read(log + ".1")) > n,
                      "more lines in the old log")
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("a symlink", r.stderr)
        self.pm("stop", "--title", self.title, check=0)
        self.assert_target_untouched()

    def test_a_regular_log_in_the_users_directory_works(self):
        log = os.path.join(self.app, "task.log")
        cfg = self.task(log)
        self.pm("run", "-d", cfg, check=0)
        self.wait_text(log, r"process_m:Worker:%s#\d+\[\d+\]: recorder call" %
                       self.title)
        self.pm("stop", "--title", self.title, check=0)


class TestStrictPaths(SecurityTest):

    def refused(self, cfg, what, why):
        for cmd in ("run", "check"):
            r = self.pm(cmd, cfg, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assert_one_error_line(
                r, r"^pmhost: %s: %s: .*%s; refused, as the master runs "
                   r"as root" % (re.escape(cfg), what, why))
        self.assertEqual(self.tagged_pids(), [])

    def test_config_in_a_world_writable_directory_is_refused(self):
        shared = self.path("shared")
        os.mkdir(shared)
        os.chmod(shared, 0o777)
        cfg = self.resident(name="shared/task.json", maxWorkerNum=1)
        self.refused(cfg, "config file", r"%s: writable by every user "
                     r"\(mode 0777\)" % re.escape(shared))

    def test_group_writable_plugin_is_refused(self):
        plugin = self.path("task.so")
        with open(harness.plugin("recorder"), "rb") as src, \
                open(plugin, "wb") as dst:
            dst.write(src.read())
        os.chown(plugin, 0, NOBODY)
        os.chmod(plugin, 0o775)
        cfg = self.config(plugin_name=plugin, maxWorkerNum=1)
        self.refused(cfg, "plugin", r"%s: writable by group %d "
                     r"\(mode 0775\)" % (re.escape(plugin), NOBODY))

    def test_log_directory_of_another_user_is_refused(self):
        other = self.path("other")
        os.mkdir(other)
        os.chown(other, 4242, 4242)
        cfg = self.task(os.path.join(other, "task.log"))
        self.refused(cfg, "log file", r"%s: owned by uid 4242, not by root"
                     % re.escape(other))

    def test_strict_paths_false_allows_it_with_a_warning_each_start(self):
        other = self.path("other")
        os.mkdir(other)
        os.chown(other, 4242, 4242)
        log = os.path.join(other, "task.log")
        cfg = self.task(log, strictPaths=False)
        r = self.pm("check", cfg, check=0)
        self.assertIn("warning: %s: strictPaths is false, allowing: log "
                      "file: %s: owned by uid 4242" % (self.title, other),
                      r.stderr)
        self.pm("run", "-d", cfg, check=0)
        self.wait_text(log, r"warning process_m:Master:%s\[\d+\]: "
                       r"strictPaths is false, allowing: log file: " %
                       self.title)
        self.pm("restart", "--title", self.title, check=0)
        self.assertEqual(len(re.findall("strictPaths is false",
                                        self.read(log))), 2)
        self.pm("stop", "--title", self.title, check=0)


class TestWorkerPrivileges(SecurityTest):

    def status_field(self, pid, name):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split()[1]
        return None

    def test_workers_have_no_new_privileges_by_default(self):
        cfg = self.resident(maxWorkerNum=2)
        r = self.pm("check", cfg, check=0)
        self.assertIn("%s: workers run as uid 0, as pmhost runs; "
                      "noNewPrivileges on" % self.title, r.stdout)
        p = self.run_fg(cfg, workers=2)
        for pid in self.workers():
            self.assertEqual(self.status_field(pid, "NoNewPrivs"), "1")
        master = self.masters()[0]
        self.assertEqual(self.status_field(master, "NoNewPrivs"), "0")
        self.stop_fg(p)

    def test_no_new_privileges_can_be_turned_off(self):
        cfg = self.resident(maxWorkerNum=1, noNewPrivileges=False)
        r = self.pm("check", cfg, check=0)
        self.assertIn("noNewPrivileges off", r.stdout)
        p = self.run_fg(cfg, workers=1)
        self.assertEqual(self.status_field(self.workers()[0], "NoNewPrivs"),
                         "0")
        self.stop_fg(p)

    def limits_of(self, pid):
        out = {}
        with open("/proc/%d/limits" % pid) as f:
            for line in f.read().splitlines()[1:]:
                name = line[:26].strip()
                out[name] = line[26:].split()[:2]
        return out

    def test_limits_apply_in_each_worker(self):
        cfg = self.resident(maxWorkerNum=2, user="nobody",
                            limits={"nofile": 123, "core": 0,
                                    "as": "infinity", "nproc": 4000})
        r = self.pm("check", cfg, check=0)
        self.assertIn("limits: nofile=123 nproc=4000 core=0 as=infinity",
                      r.stdout)
        p = self.run_fg(cfg, workers=2)
        for pid in self.workers():
            lim = self.limits_of(pid)
            self.assertEqual(lim["Max open files"], ["123", "123"])
            self.assertEqual(lim["Max core file size"], ["0", "0"])
            self.assertEqual(lim["Max processes"], ["4000", "4000"])
            self.assertEqual(lim["Max address space"],
                             ["unlimited", "unlimited"])
        self.assertNotEqual(self.limits_of(self.masters()[0])
                            ["Max open files"], ["123", "123"])
        self.stop_fg(p)

    def test_bad_limits_are_config_errors(self):
        cfg = self.resident(limits={"nofiles": 1, "core": -1, "as": "lots"})
        r = self.pm("check", cfg, check=2)
        self.assertIn('limits.nofiles: unknown limit (did you mean '
                      '"nofile"?)', r.stderr)
        self.assertIn('limits.core: must be an integer >= 0 or "infinity", '
                      'got -1', r.stderr)
        self.assertIn('limits.as: must be an integer >= 0 or "infinity", '
                      'got "lots"', r.stderr)

    def test_plugin_code_never_runs_as_root_when_user_is_set(self):
        who = self.path("who")
        os.mkdir(who)
        os.chmod(who, 0o777)
        ctor_log = os.path.join(who, "ctor.log")
        with open(ctor_log, "w"):
            pass
        os.chmod(ctor_log, 0o666)
        self.env["PMHOST_CTOR_LOG"] = ctor_log
        for keys in ({}, {"preload": True}):
            cfg = self.config(plugin_name="ctorwho", user="nobody",
                              maxWorkerNum=2, executeTimes=0, **keys)
            self.pm("check", cfg, check=0)
            p = self.run_fg(cfg, workers=2)
            self.stop_fg(p)
        lines = self.read(ctor_log).splitlines()
        # Without preload: check's and run's probes, two workers.  With
        # it: the two probes and the preload process (its workers are its
        # clones, where no constructor runs again).
        self.assertEqual(len(lines), 7, lines)
        for line in lines:
            _, pid, euid, nnp = line.split()
            self.assertEqual((euid, nnp), (str(NOBODY), "1"), line)


if __name__ == "__main__":
    harness.main()
