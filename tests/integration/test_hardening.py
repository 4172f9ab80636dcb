"""Hardening: every bad input a user or a neighbour can hand pmhost gets
the right exit code and a clear `pmhost:` error, and leaves nothing
behind -- config files (truncated, binary, huge, deeply nested, bad
UTF-8, huge numbers, directories, unreadable, symlink loops, empty),
command-line arguments, PMHOST_RUNDIR, and malformed control-socket
requests, after each of which the master keeps serving.
"""

import json
import os
import select
import socket
import subprocess

import harness
from harness import NOBODY, SETPRIV_NOBODY

CTL_MAX_CLIENTS = 64


class HardeningTest(harness.PmTest):

    def run_raw(self, *args, prefix=(), cwd=None, env=None):
        """Runs pmhost ARGS (behind prefix, e.g. setpriv); bytes output."""
        return subprocess.run(list(prefix) + [harness.PMHOST] +
                              [str(a) for a in args], env=env or self.env,
                              cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True,
                              timeout=10 * harness.SLOW)

    def assert_refused(self, r, code, names=(), one_line=False):
        """Exit code, pmhost: error lines each naming every name, no
        stdout; the error lines as text."""
        what = "exit %d, stderr %r" % (r.returncode, r.stderr)
        self.assertEqual(r.returncode, code, what)
        self.assertEqual(r.stdout, b"", what)
        lines = r.stderr.decode("utf-8", "replace").split("\n")
        self.assertEqual(lines[-1], "", "stderr does not end in a newline: "
                         + what)
        lines = lines[:-1]
        self.assertGreaterEqual(len(lines), 1, what)
        if one_line:
            self.assertEqual(len(lines), 1, what)
        for line in lines:
            self.assertTrue(line.startswith("pmhost: "), what)
            for name in names:
                self.assertIn(name, line, what)
        return lines

    def assert_nothing_left(self, rundir=None):
        rundir = rundir or self.rundir
        for ext in (".pid", ".sock"):
            self.assertFalse(os.path.lexists(
                os.path.join(rundir, self.title + ext)), ext)
        self.assertEqual(self.tagged_pids(), [])


class ConfigFileTest(HardeningTest):
    """Each bad config, for run and check: exit 2, every line names it."""

    def good_keys(self):
        return ('"plugin": %s, "baseTitle": "%s"' %
                (json.dumps(harness.plugin("recorder")), self.title)).encode()

    def refused_by_run_and_check(self, path, prefix=(), must_say=None):
        for cmd in ("check", "run"):
            with self.subTest(cmd=cmd):
                r = self.run_raw(cmd, path, prefix=prefix)
                lines = self.assert_refused(r, 2, names=[path])
                if must_say is not None:
                    self.assertRegex(" ".join(lines), must_say)
                self.assert_nothing_left()

    def test_truncated_json_is_refused_with_its_position(self):
        p = self.write("trunc.json", b"{" + self.good_keys() +
                       b', "maxWorker')
        self.refused_by_run_and_check(p, must_say=r"trunc\.json:1:\d+: ")

    def test_binary_garbage_is_refused(self):
        p = self.write("garbage.json", bytes(range(256)) * 16)
        self.refused_by_run_and_check(p)

    def test_syntax_error_does_not_echo_control_bytes(self):
        # A terminal shows the error line: no raw ESC or invalid UTF-8.
        for data in (b"\x1b[2J", b"{" + self.good_keys() +
                     b', "params": \x1b[31m}', b'{"a": \x7f}',
                     b"\xff\xfe"):
            with self.subTest(data=data):
                p = self.write("ctl.json", data)
                r = self.run_raw("check", p)
                self.assert_refused(r, 2, names=[p], one_line=True)
                try:
                    text = r.stderr.decode("utf-8")
                except UnicodeDecodeError as e:
                    self.fail("not UTF-8 (%s): %r" % (e, r.stderr))
                bad = [c for c in text[:-1] if not c.isprintable()]
                self.assertEqual(bad, [], r.stderr)

    def test_ten_mib_file_is_refused_as_too_large(self):
        p = self.write("huge.json", b"{" + self.good_keys() +
                       b', "params": "' + b"a" * (10 << 20) + b'"}')
        self.refused_by_run_and_check(p, must_say=r"too large")

    def test_100000_nested_arrays_are_refused(self):
        p = self.write("deep.json", b"[" * 100000 + b"]" * 100000)
        self.refused_by_run_and_check(p)

    def test_100000_nested_arrays_in_params_are_refused(self):
        p = self.write("deep-params.json", b"{" + self.good_keys() +
                       b', "params": ' + b"[" * 100000 + b"]" * 100000 +
                       b"}")
        self.refused_by_run_and_check(p)

    def test_invalid_utf8_in_a_string_is_refused(self):
        p = self.write("utf8.json", b"{" + self.good_keys() +
                       b', "titlePrefix": "ab\xff\xfecd"}')
        self.refused_by_run_and_check(p)

    def test_escaped_nul_in_a_string_is_refused(self):
        p = self.write("nul.json", b'{"plugin": "x.so", "baseTitle": '
                       b'"a\\u0000b"}')
        self.refused_by_run_and_check(p)

    def test_integer_beyond_64_bits_is_refused(self):
        for n in (b"18446744073709551616",
                  b"123456789012345678901234567890",
                  b"-99999999999999999999"):
            with self.subTest(n=n):
                p = self.write("big.json", b"{" + self.good_keys() +
                               b', "maxWorkerNum": ' + n + b"}")
                self.refused_by_run_and_check(p)

    def test_title_with_slash_or_dotdot_in_config_is_refused(self):
        for title in ("../evil", "a/b", ".."):
            with self.subTest(title=title):
                p = self.path("title.json")
                with open(p, "w") as f:
                    json.dump({"plugin": harness.plugin("recorder"),
                               "baseTitle": title}, f)
                self.refused_by_run_and_check(p, must_say=r"baseTitle")
                self.assertFalse(os.path.lexists(os.path.join(
                    self.tmp, "evil.pid")))

    def test_directory_as_config_is_refused(self):
        d = self.path("conf.d")
        os.mkdir(d)
        self.refused_by_run_and_check(d, must_say=r"directory")

    def test_fifo_as_config_is_refused_without_hanging(self):
        f = self.path("fifo.json")
        os.mkfifo(f)
        self.refused_by_run_and_check(f, must_say=r"not a regular file")

    def test_missing_config_is_refused(self):
        self.refused_by_run_and_check(self.path("absent.json"),
                                      must_say=r"No such file")

    def test_unreadable_config_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run pmhost as another user")
        os.chmod(self.tmp, 0o711)
        p = self.write("secret.json", b"{" + self.good_keys() + b"}")
        os.chmod(p, 0o600)
        self.refused_by_run_and_check(p, prefix=SETPRIV_NOBODY,
                                      must_say=r"Permission denied")

    def test_symlink_loop_is_refused(self):
        a, b = self.path("loop-a.json"), self.path("loop-b.json")
        os.symlink(b, a)
        os.symlink(a, b)
        self.refused_by_run_and_check(a, must_say=r"symbolic links")

    def test_empty_file_is_refused(self):
        for data in (b"", b" \n\t\n"):
            with self.subTest(data=data):
                p = self.write("empty.json", data)
                self.refused_by_run_and_check(p, must_say=r"empty")


class CommandLineTest(HardeningTest):
    """Usage errors: exit 2, one line, nothing started."""

    def refused(self, *args, must_say=None):
        with self.subTest(args=[str(a)[:20] for a in args]):
            r = self.run_raw(*args)
            lines = self.assert_refused(r, 2, one_line=True)
            if must_say is not None:
                self.assertRegex(lines[0], must_say)
            self.assert_nothing_left()
            return lines[0]

    def test_missing_arguments_are_usage_errors(self):
        t = self.title
        self.refused()
        for args in (["run"], ["check"], ["stop"], ["restart"], ["wakeup"],
                     ["scale"], ["scale", "--title", t], ["stop", "--title"],
                     ["run", self.record_config(), "--log-file"],
                     ["stop", "--title", t, "--timeout"]):
            self.refused(*args)

    def test_repeated_options_are_usage_errors(self):
        cfg = self.record_config()
        t = self.title
        for args in (["run", cfg, "-d", "--daemon"],
                     ["run", cfg, "--log-level", "info", "--log-level",
                      "debug"],
                     ["run", cfg, cfg],
                     ["status", "--title", t, "--title", t],
                     ["stop", "--title", t, "--timeout", "1", "--timeout",
                      "2"],
                     ["status", "--json", "--json"]):
            self.refused(*args, must_say=r"twice|unexpected")

    def test_overlong_title_is_a_usage_error(self):
        long_title = "a" * 200
        for cmd in (["status"], ["stop"], ["wakeup"], ["restart"],
                    ["scale", "2"]):
            line = self.refused(*(cmd + ["--title", long_title]),
                                must_say=r"title")
            self.assertLess(len(line), 300, line)
        self.refused("status", "--title", "b" * 65, must_say=r"title")

    def test_titles_with_slash_or_dotdot_are_usage_errors(self):
        for title in ("a/b", "../x", "..", ".", "/etc/passwd", "x/../y",
                      "a b", ""):
            for cmd in ("status", "stop", "wakeup"):
                self.refused(cmd, "--title=" + title,
                             must_say=r"title|needs a value")

    def test_unknown_options_and_commands_are_usage_errors(self):
        cfg = self.record_config()
        for args in (["--bogus"], ["run", cfg, "--bogus"],
                     ["run", cfg, "-x"], ["stop", "--json", cfg],
                     ["check", cfg, "-d"], ["frobnicate"],
                     ["run", cfg, "--daemon=yes"]):
            self.refused(*args, must_say=r"unknown|takes no value")


class RunDirTest(HardeningTest):
    """PMHOST_RUNDIR that must be refused: exit 1, one line naming it."""

    def refused_with(self, rundir, must_say, shown=None, cwd=None):
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0)
        env = dict(self.env, PMHOST_RUNDIR=rundir)
        for extra in ([], ["-d"]):
            with self.subTest(run=extra):
                r = self.run_raw("run", cfg, *extra, env=env, cwd=cwd)
                lines = self.assert_refused(r, 1, names=[shown or rundir],
                                            one_line=True)
                self.assertRegex(lines[0], must_say)
                self.assertEqual(self.events(), [], "a worker ran")
                self.assert_nothing_left(os.path.join(cwd or "/", rundir))

    def test_rundir_that_is_a_regular_file_is_refused(self):
        f = self.path("not-a-dir")
        with open(f, "w"):
            pass
        self.refused_with(f, r"not a directory")

    def test_world_writable_rundir_is_refused(self):
        d = self.path("open")
        os.mkdir(d)
        os.chmod(d, 0o777)
        self.refused_with(d, r"writable by group or others \(mode 0777\)")
        self.assertEqual(os.listdir(d), [])

    def test_rundir_of_another_user_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to make a dir another user owns")
        d = self.path("theirs")
        os.mkdir(d, 0o700)
        os.chown(d, NOBODY, NOBODY)
        self.refused_with(d, r"owned by uid %d" % NOBODY)
        self.assertEqual(os.listdir(d), [])

    def test_relative_rundir_is_refused(self):
        self.refused_with("relrun", r"absolute", cwd=self.tmp)
        self.assertFalse(os.path.lexists(self.path("relrun")))

    def test_rundir_that_is_a_symlink_is_refused(self):
        real = self.path("real")
        os.mkdir(real, 0o700)
        link = self.path("link")
        os.symlink(real, link)
        self.refused_with(link, r"symlink")
        self.refused_with(link + "/", r"symlink", shown=link)
        self.assertEqual(os.listdir(real), [])


class ControlSocketTest(HardeningTest):
    """Malformed requests straight to NAME.sock: an error reply or a
    close, and the master goes on serving `pmhost status`."""

    def setUp(self):
        super().setUp()
        cfg = self.record_config(maxWorkerNum=1, executeTimes=0,
                                 executeUSleep=200000)
        self.proc = self.run_fg(cfg)
        self.sock = os.path.join(self.rundir, self.title + ".sock")
        # Not the socket file: it exists from bind(), before listen().
        self.wait_master(self.proc)
        self.master = self.status()["pid"]

    def status(self):
        r = self.pm("status", "--title", self.title, "--json", timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["masters"][0]

    def connect(self):
        """A connection to the master; waits while its backlog is full."""
        def attempt():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5 * harness.SLOW)
            try:
                s.connect(self.sock)
            except BlockingIOError:
                s.close()
                return None
            self.addCleanup(s.close)
            return s
        return self.wait_for(attempt, "a connection to %s" % self.sock,
                             proc=self.proc)

    def read_reply(self, s):
        """Everything the master sends until it closes (b"" for a bare
        close or a reset)."""
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def request(self, data, shut=False):
        s = self.connect()
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if shut:
            s.shutdown(socket.SHUT_WR)
        reply = self.read_reply(s)
        s.close()
        return reply

    def assert_serving(self):
        st = self.status()
        self.assertEqual(st["pid"], self.master)
        self.assertEqual(st["state"], "running")
        self.assertEqual(st["target"], 1)
        self.assertIsNone(self.proc.poll(), self.output(self.proc))

    def assert_error_reply(self, reply, text):
        self.assertTrue(reply.startswith(b"error "), reply)
        self.assertTrue(reply.endswith(b"\n"), reply)
        self.assertEqual(reply.count(b"\n"), 1, reply)
        self.assertIn(text, reply)

    def test_empty_request_gets_an_error_and_master_serves_on(self):
        self.assert_error_reply(self.request(b"\n"), b"unknown request")
        self.assert_serving()

    def test_unknown_verb_gets_an_error_naming_it(self):
        self.assert_error_reply(self.request(b"frobnicate now\n"),
                                b"frobnicate")
        self.assert_serving()

    def test_bad_scale_counts_are_refused_and_change_nothing(self):
        for req in (b"scale abc\n", b"scale 0\n", b"scale 99999\n",
                    b"scale -1\n", b"scale 1e3\n",
                    b"scale 99999999999999999999999\n", b"scale \n"):
            with self.subTest(req=req):
                self.assert_error_reply(self.request(req), b"scale")
                self.assert_serving()
                self.assertEqual(self.status()["count"], 1)

    def test_oversized_request_without_newline_gets_an_error(self):
        self.assert_error_reply(self.request(b"s" * 4096), b"longer than")
        self.assert_serving()

    def test_request_with_embedded_nul_gets_an_error(self):
        self.assert_error_reply(self.request(b"sta\0tus\n"), b"malformed")
        self.assert_serving()

    def test_half_closed_partial_line_gets_an_error(self):
        self.assert_error_reply(self.request(b"stat", shut=True),
                                b"incomplete")
        self.assert_serving()

    def test_idle_client_with_half_a_line_does_not_block_others(self):
        s = self.connect()
        s.sendall(b"stat")
        # The master answers others while this client dawdles.
        for _ in range(3):
            self.assert_serving()
        s.sendall(b"us\n")
        reply = self.read_reply(s)
        self.assertTrue(reply.endswith(b"ok\n"), reply)
        self.assertIn(b"pid=%d" % self.master, reply)

    def test_connections_beyond_the_client_limit_push_out_idle_ones(self):
        n = CTL_MAX_CLIENTS + 36
        socks = [self.connect() for _ in range(n)]

        def closed():
            ready, _, _ = select.select(socks, [], [], 0)
            return len(ready) >= n - CTL_MAX_CLIENTS and ready
        ready = self.wait_for(closed, "%d let go" % (n - CTL_MAX_CLIENTS),
                              proc=self.proc)
        # The longest idle, the first ones, were closed without a word;
        # the last 64 hold the places.
        self.assertEqual(ready, socks[:n - CTL_MAX_CLIENTS])
        for s in ready:
            self.assertEqual(self.read_reply(s), b"")
        # A request still gets in, and is answered.
        self.assert_serving()
        for s in socks:
            s.close()
        self.assert_serving()

if __name__ == "__main__":
    harness.main()
