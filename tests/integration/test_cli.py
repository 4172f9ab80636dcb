"""The command line and config validation as a user meets them: help and
version on stdout with exit 0; usage and config errors exit 2 with one
`pmhost:` line per problem that names the word, file, line or key."""

import json
import os
import re

import harness


class CliTest(harness.PmTest):

    def usage_error(self, *args, names=None):
        """Runs pmhost ARGS, expects exit 2 and one 'pmhost:' line on
        stderr (containing names, if given); returns that line."""
        r = self.pm(*args, timeout=10, check=2)
        self.assertEqual(r.stdout, "")
        line = self.assert_one_error_line(r)
        if names is not None:
            self.assertIn(names, line)
        return line

    def good_keys(self):
        return {"plugin": harness.plugin("recorder"), "baseTitle": self.title}


class TestHelpAndVersion(CliTest):

    def test_help_prints_usage_on_stdout_and_exits_0(self):
        for opt in ("--help", "-h"):
            r = self.pm(opt, check=0)
            self.assertEqual(r.stderr, "")
            self.assertIn("usage:", r.stdout)
            for cmd in ("run CONFIG", "stop", "check   CONFIG"):
                self.assertIn("pmhost " + cmd, r.stdout)

    def test_help_run_prints_the_run_usage(self):
        for args in (("help", "run"), ("run", "--help")):
            r = self.pm(*args, check=0)
            self.assertEqual(r.stderr, "")
            self.assertTrue(r.stdout.startswith("usage: pmhost run CONFIG"),
                            r.stdout)
            self.assertIn("--log-file", r.stdout)

    def test_version_names_pmhost_and_a_version(self):
        r = self.pm("--version", check=0)
        self.assertEqual(r.stderr, "")
        self.assertRegex(r.stdout, r"^pmhost \d+\.\d+(\.\d+)?\b")

    def test_help_of_an_unknown_command_is_a_usage_error(self):
        self.usage_error("help", "frobnicate", names="'frobnicate'")


class TestUsageErrors(CliTest):

    def test_no_arguments_is_a_usage_error(self):
        self.usage_error()

    def test_unknown_command_is_named(self):
        self.usage_error("frobnicate", names="'frobnicate'")

    def test_unknown_option_is_named(self):
        self.usage_error("--frobnicate", names="'--frobnicate'")
        cfg = self.record_config()
        self.usage_error("run", cfg, "--frobnicate", names="'--frobnicate'")
        # An option of another command is unknown here.
        self.usage_error("stop", "--title", self.title, "--daemon",
                         names="'--daemon'")
        self.assertEqual(self.tagged_pids(), [])

    def test_invalid_titles_are_usage_errors(self):
        for bad in ("a/b", "..", ".", "a" * 65, "sp ace", ""):
            with self.subTest(title=bad):
                line = self.usage_error("stop", "--title", bad)
                if bad:
                    self.assertIn("'%s'" % bad, line)

    def test_longest_valid_title_is_accepted(self):
        # 64 characters: a valid name, so stop gets as far as the run dir.
        r = self.pm("stop", "--title", "a" * 64, check=1)
        self.assertEqual(r.stderr, "pmhost: %s: not running (run dir %s)\n"
                         % ("a" * 64, self.rundir))

    def test_bad_stop_timeout_is_a_usage_error(self):
        for bad in ("abc", "-1", "1.5", "86401"):
            with self.subTest(timeout=bad):
                self.usage_error("stop", "--title", self.title, "--timeout",
                                 bad, names="--timeout")

    def test_stop_needs_exactly_one_target(self):
        self.usage_error("stop")
        self.usage_error("stop", "--all", "--title", self.title)

    def test_missing_config_argument_is_a_usage_error(self):
        self.usage_error("run", names="CONFIG")
        self.usage_error("check", names="CONFIG")
        self.usage_error("run", "-d", names="CONFIG")

    def test_missing_config_file_is_a_config_error(self):
        missing = self.path("nope.json")
        for cmd in ("run", "check"):
            with self.subTest(cmd=cmd):
                line = self.usage_error(cmd, missing, names=missing)
                self.assertIn("No such file", line)
        self.assertFalse(os.path.exists(self.rundir))


class TestConfigErrors(CliTest):

    def test_json_syntax_error_reports_file_line_and_column(self):
        cfg = self.write("syntax.json",
                         '{\n  "plugin": "x.so",\n  "maxWorkerNum": 4,,\n}\n')
        for cmd in ("run", "check"):
            with self.subTest(cmd=cmd):
                line = self.usage_error(cmd, cfg)
                # The second comma: line 3, column 21.
                self.assertRegex(line, r"^pmhost: %s:3:21: " %
                                 re.escape(cfg))

    def test_bad_value_reports_key_path_and_allowed_range(self):
        keys = self.good_keys()
        keys["maxWorkerNum"] = "four"
        cfg = self.write("four.json", json.dumps(keys))

        line = self.usage_error("run", cfg)

        self.assertEqual(line, 'pmhost: %s: maxWorkerNum: must be an integer '
                         'from 1 to 16384, got "four"' % cfg)
        self.assertFalse(os.path.exists(self.rundir), "run dir created")

    def test_out_of_range_values_report_the_range(self):
        for key, value, allowed in (("maxWorkerNum", 0, "from 1 to 16384"),
                                    ("maxWorkerNum", 16385, "from 1 to 16384"),
                                    ("stopTimeout", -1, "from 0 to 86400")):
            with self.subTest(key=key, value=value):
                keys = self.good_keys()
                keys[key] = value
                cfg = self.write("range.json", json.dumps(keys))
                line = self.usage_error("check", cfg)
                self.assertEqual(line, "pmhost: %s: %s: must be an integer "
                                 "%s, got %d" % (cfg, key, allowed, value))

    def test_bad_value_in_tasks_names_its_key_path(self):
        keys = self.good_keys()
        del keys["baseTitle"]
        keys["tasks"] = [{"baseTitle": self.title + "-a"},
                         {"baseTitle": self.title + "-b",
                          "maxWorkerNum": "four"}]
        cfg = self.write("tasks.json", json.dumps(keys))

        line = self.usage_error("check", cfg)

        self.assertIn("tasks[1].maxWorkerNum: must be an integer from 1 to "
                      '16384, got "four"', line)

    def test_misspelt_key_suggests_the_closest_known_key(self):
        keys = self.good_keys()
        keys["maxWorkerNumm"] = 2
        cfg = self.write("typo.json", json.dumps(keys))

        line = self.usage_error("check", cfg)

        self.assertEqual(line, 'pmhost: %s: maxWorkerNumm: unknown key (did '
                         'you mean "maxWorkerNum"?)' % cfg)

    def test_check_reports_every_problem_at_once(self):
        keys = self.good_keys()
        keys.update({"maxWorkerNum": "four", "exeuteTimes": 1,
                     "stopTimeout": 99999999, "schedule": "sometimes"})
        cfg = self.write("many.json", json.dumps(keys))

        r = self.pm("check", cfg, check=2)

        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 4, "stderr: %r" % r.stderr)
        for line in lines:
            self.assertTrue(line.startswith("pmhost: %s: " % cfg), line)
        text = r.stderr
        self.assertIn("maxWorkerNum: must be an integer from 1 to 16384", text)
        self.assertIn('exeuteTimes: unknown key (did you mean '
                      '"executeTimes"?)', text)
        self.assertIn("stopTimeout: must be an integer from 0 to 86400", text)
        self.assertIn("schedule: ", text)

    def test_run_with_config_errors_reports_them_all_and_starts_nothing(self):
        keys = self.good_keys()
        keys.update({"maxWorkerNum": 0, "limitSeconds": "ten"})
        cfg = self.write("bad.json", json.dumps(keys))

        r = self.pm("run", "-d", cfg, check=2)

        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 2, "stderr: %r" % r.stderr)
        self.assertIn("maxWorkerNum", lines[0] + lines[1])
        self.assertIn("limitSeconds", lines[0] + lines[1])
        self.assertFalse(os.path.exists(self.rundir), "run dir created")
        self.assertEqual(self.tagged_pids(), [])


if __name__ == "__main__":
    harness.main()
