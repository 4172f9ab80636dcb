"""Plugins that cannot be loaded are config errors: `run` and `check` refuse
them with the loader's reason, and nothing starts.  A good plugin passes
`check`, and a plugin path is relative to its config file's directory."""

import os
import re
import shutil

import harness


class TestBrokenPlugins(harness.PmTest):
    """Each broken plugin: `run` and `check` exit 2 with one line naming the
    config and the reason; nothing is left running, no pid file appears."""

    def refused(self, plugin_path, reason):
        cfg = self.config()
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace(harness.plugin("recorder"), plugin_path))
        line = r"^pmhost: %s: plugin: .*%s" % (re.escape(cfg), reason)

        r = self.pm("run", cfg, timeout=10, check=2)

        self.assertEqual(r.stdout, "")
        self.assert_one_error_line(r, line)
        self.assertEqual(self.tagged_pids(), [], "processes left running")
        self.assertEqual(self.masters() + self.workers(), [])
        self.assertFalse(os.path.exists(self.pid_file()), "pid file created")

        c = self.pm("check", cfg, timeout=10, check=2)

        self.assertEqual(c.stdout, "")
        self.assertEqual(c.stderr, r.stderr)
        self.assertEqual(self.tagged_pids(), [])

    def test_missing_plugin_file_is_refused(self):
        self.refused(self.path("missing.so"),
                     re.escape(self.path("missing.so")) +
                     ": cannot open shared object file")

    def test_text_file_named_so_is_refused(self):
        x = self.path("x.so")
        with open(x, "w") as f:
            f.write("this is not a shared object, only text.\n" * 4)
        self.refused(x, re.escape(x) +
                     r": (invalid ELF header|file too short|not an ELF)")

    def test_plugin_without_work_is_refused(self):
        self.refused(harness.plugin("nowork"), r"no work\(\) function")

    def test_plugin_without_abi_mark_is_refused(self):
        self.refused(harness.plugin("noabi"), "no PMHOST_PLUGIN mark")

    def test_plugin_built_for_another_abi_is_refused(self):
        self.refused(harness.plugin("badabi"),
                     "built for pmhost ABI 2, this pmhost speaks ABI 1")

    def test_plugin_crashing_while_loading_is_refused(self):
        self.refused(harness.plugin("ctorcrash"),
                     r"plugin crashed while loading \(SIGSEGV\)")


class TestGoodPlugins(harness.PmTest):

    def chdir(self, path):
        old = os.getcwd()
        os.chdir(path)
        self.addCleanup(os.chdir, old)

    def test_check_of_a_good_config_prints_ok(self):
        cfg = self.record_config(maxWorkerNum=2)

        r = self.pm("check", cfg, timeout=10, check=0)

        # What the workers will run as, then the verdict.
        self.assertEqual(r.stdout, "%s: workers run as uid 0, as pmhost "
                         "runs; noNewPrivileges on; limits: as inherited; "
                         "in the current directory (/ with -d)\n"
                         "ok\n" % self.title)
        self.assertEqual(r.stderr, "")
        # check starts nothing: no worker ran work_init, no pid file.
        self.assertEqual(self.events(), [])
        self.assertFalse(os.path.exists(self.pid_file()))
        self.assertEqual(self.tagged_pids(), [])

    def relative_config(self, plugin_rel):
        """A recorder config in TMP/sub naming its plugin as plugin_rel."""
        os.mkdir(self.path("sub"))
        cfg = self.record_config(os.path.join("sub", "task.json"),
                                 maxWorkerNum=1, executeTimes=0)
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace('"%s"' % harness.plugin("recorder"),
                                 '"%s"' % plugin_rel))
        return cfg

    def decoy(self, where):
        """A broken x.so in where: found only by a cwd-relative lookup."""
        os.makedirs(where, exist_ok=True)
        with open(os.path.join(where, "x.so"), "w") as f:
            f.write("decoy: not a shared object\n" * 4)

    def run_and_stop(self, cfg):
        p = self.run_fg(cfg, workers=1)
        self.wait_events("init", 1, proc=p)
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)

    def test_plugin_path_is_relative_to_the_config_dir_not_the_cwd(self):
        shutil.copy(harness.plugin("recorder"), self.path("x.so"))
        cfg = self.relative_config("../x.so")
        elsewhere = self.path("elsewhere/deeper")
        self.decoy(elsewhere)
        self.decoy(self.path("elsewhere"))
        self.chdir(elsewhere)

        r = self.pm("check", cfg, timeout=10, check=0)
        self.assertEqual(r.stdout.splitlines()[-1], "ok")
        self.run_and_stop(cfg)

    def test_plugin_beside_the_config_found_from_any_cwd(self):
        cfg = self.relative_config("x.so")
        shutil.copy(harness.plugin("recorder"), self.path("sub/x.so"))
        self.decoy(self.path("elsewhere"))

        for cwd in (self.path("elsewhere"), "/"):
            self.chdir(cwd)
            r = self.pm("check", cfg, timeout=10, check=0)
            self.assertEqual(r.stdout.splitlines()[-1], "ok", "from %s" % cwd)
        self.run_and_stop(cfg)

    def test_relative_config_path_and_relative_plugin_path(self):
        # `pmhost run sub/task.json` from TMP: the plugin is TMP/sub/x.so,
        # not TMP/x.so (a decoy here).
        cfg = self.relative_config("x.so")
        shutil.copy(harness.plugin("recorder"), self.path("sub/x.so"))
        self.decoy(self.tmp)
        self.chdir(self.tmp)

        r = self.pm("check", "sub/task.json", timeout=10, check=0)
        self.assertEqual(r.stdout.splitlines()[-1], "ok")
        self.run_and_stop("sub/task.json")
        self.assertEqual(len(self.events("init")), 1)


if __name__ == "__main__":
    harness.main()
