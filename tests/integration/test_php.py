"""PHP tasks (plugins/php): process_manage start scripts run unchanged under
pmhost, and pmhost's own script form (a returned array of closures) with
params and init state.  Uncaught exceptions fail one call; exit(), die()
and fatal errors end the worker as failed; a syntax error is refused by
run, check and restart with the script's file:line, starting nothing.

Everything is read where a user reads it: pmhost's log (the PHP lines are
logged by the script through pmhost\\log or ProcessLog), `status --json`,
exit codes.  The plugin is PMHOST_PHP_PLUGIN, else BUILD/plugins/php/php.so.

Preload: the host's `preload` key is tested against pmhost when pmhost
knows it (the tests skip, saying so, when `pmhost check` refuses it); the
plugin's side of preload (work_preload once, workers cloned from it
without atfork handlers) is tested now with php-preload-driver.

A sanitizer build of the plugin loads no PHP extension: the ASan runtime
aborts every dlopen() with RTLD_DEEPBIND, which libphp uses to load them.
The tests that need one skip there, saying so.
"""

import collections
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW  # noqa: E402

PHP_PLUGIN = os.path.abspath(
    os.environ.get("PMHOST_PHP_PLUGIN") or
    os.path.join(harness.BUILD, "plugins", "php", "php.so"))
DRIVER = os.path.join(os.path.dirname(PHP_PLUGIN), "php-preload-driver")
EXAMPLES = os.path.join(harness.SOURCE, "plugins", "php", "examples")
# The PHP engine's own allocations that LeakSanitizer misreads (the file
# says which and why): the driver exits normally, after a leak check.
LSAN_SUPP = os.path.join(harness.SOURCE, "plugins", "php", "tests",
                         "lsan.supp")

# "2026-12-01T22:52:11.491+0000 info process_m:Worker:TITLE#0[123]: MSG"
LINE = (r"^(?P<ts>\S+) (?P<level>\w+) (?P<prefix>[^:\s]*):"
        r"(?P<role>Worker|Preload|Master):%s(?:#\d+)?\[(?P<pid>\d+)\]: "
        r"(?P<msg>.*)$")


def sanitized():
    """Is the plugin a sanitizer build (it then loads no extension)?"""
    try:
        with open(PHP_PLUGIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = sanitized()
NO_EXTENSIONS = ("sanitizer build: the ASan runtime aborts any dlopen() "
                 "with RTLD_DEEPBIND, which libphp uses for every "
                 "extension, so the plugin loads none")

_preload = {}


def php_script(body):
    return "<?php\n" + body.lstrip("\n")


class PhpTest(harness.PmTest):

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(PHP_PLUGIN),
                        "PHP plugin not built: %s (set PMHOST_PHP_PLUGIN)" %
                        PHP_PLUGIN)

    # -- configs ------------------------------------------------------------

    def php_config(self, script, params=None, name="task.json",
                   script_name="task.php", **keys):
        """Writes script (text) and a config running it; the config's path."""
        self.write(script_name, script)
        prm = {"script": script_name}
        prm.update(params or {})
        cfg = {"plugin": PHP_PLUGIN, "baseTitle": self.title,
               "params": prm}
        cfg.update(keys)
        return self.write(name, json.dumps(cfg))

    def preload_or_skip(self):
        """Skips the test unless pmhost knows the `preload` config key."""
        if "ok" not in _preload:
            cfg = self.write("preload-probe.json", json.dumps(
                {"plugin": harness.plugin("recorder"), "baseTitle": "probe",
                 "preload": True}))
            r = self.pm("check", cfg)
            _preload["ok"] = r.returncode == 0
            _preload["why"] = r.stderr.strip()
        if not _preload["ok"]:
            self.skipTest("this pmhost does not know the `preload` config "
                          "key yet (pmhost check: %s)" % _preload["why"])

    # -- the log ------------------------------------------------------------

    def lines(self, proc, role="Worker"):
        """This test's log lines of ROLE processes: dicts with level, pid
        (int), msg and t (seconds, from the line's timestamp)."""
        rx = re.compile(LINE % re.escape(self.title), re.M)
        out = []
        for m in rx.finditer(self.output(proc)):
            if m.group("role") != role:
                continue
            ts = datetime.datetime.strptime(m.group("ts"),
                                            "%Y-%m-%dT%H:%M:%S.%f%z")
            out.append({"level": m.group("level"), "pid": int(m.group("pid")),
                        "msg": m.group("msg"), "t": ts.timestamp()})
        return out

    def msgs(self, proc, pattern, role="Worker"):
        rx = re.compile(pattern)
        return [x for x in self.lines(proc, role) if rx.search(x["msg"])]

    def by_pid(self, proc, pattern):
        """{pid: [messages matching pattern]}, in log order."""
        out = collections.OrderedDict()
        for x in self.msgs(proc, pattern):
            out.setdefault(x["pid"], []).append(x)
        return out

    def wait_msgs(self, proc, pattern, n, timeout=15):
        return self.wait_for(lambda: len(self.msgs(proc, pattern)) >= n and
                             self.msgs(proc, pattern),
                             "%d log lines matching %r" % (n, pattern),
                             timeout=timeout, proc=proc)

    def stop_and_check(self, proc):
        """Stops the master, which must exit 0 leaving no process."""
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(proc), 0, self.output(proc))
        self.assertEqual(self.tagged_pids(), [])


class TestProcessManageScripts(PhpTest):
    """process_manage's API, unchanged, under pmhost."""

    def test_the_seed_readme_example_runs_as_it_is(self):
        # process_manage's README start script, with its use lines, $config
        # and try/catch; the JSON config (2 workers, 3 calls 0.2 s apart)
        # governs, not $config (1 worker, 1 call, 10 s).
        with open(os.path.join(EXAMPLES, "seed", "task.php")) as f:
            script = f.read()
        cfg = self.php_config(script, maxWorkerNum=2, executeTimes=3,
                              executeUSleep=200000)
        p = self.run_fg(cfg, workers=2)
        # Two whole worker lives, one per slot at least.
        self.wait_for(lambda: sum(len(v) == 3 for v in self.by_pid(
            p, r"^work run \.\.\. $").values()) >= 2,
            "two workers through their 3 calls", timeout=20, proc=p)
        self.stop_and_check(p)

        inits = self.by_pid(p, r"^work init \.\.\. $")
        runs = self.by_pid(p, r"^work run \.\.\. $")
        self.assertGreaterEqual(len(runs), 2)
        for pid, calls in runs.items():
            # init once per worker, before its first call.
            self.assertEqual(len(inits.get(pid, [])), 1, (pid, inits))
            self.assertLessEqual(inits[pid][0]["t"], calls[0]["t"])
            self.assertLessEqual(len(calls), 3)
            for a, b in zip(calls, calls[1:]):
                # Log times have ms resolution, and are taken when the
                # master reads the line: a few ms of slack under load.
                self.assertGreaterEqual(b["t"] - a["t"], 0.19,
                                        "calls of %d closer than "
                                        "executeUSleep" % pid)
            for x in calls + inits[pid]:
                self.assertEqual(x["level"], "info")
        # $config named a different baseTitle: said, with both names.
        warn = self.msgs(p, r"\$config differs")
        self.assertTrue(warn)
        self.assertEqual(warn[0]["level"], "warning")
        self.assertIn("baseTitle ('test' in the script, '%s' in the config)"
                      % self.title, warn[0]["msg"])
        self.assertNotIn("titlePrefix", warn[0]["msg"])
        # start() returned normally: the catch block printed nothing.
        self.assertNotIn("ProcessException", self.output(p))

    def test_set_stop_ends_the_worker_after_the_call(self):
        cfg = self.php_config(php_script(r"""
use ProcessManage\Process\Manage;
use ProcessManage\Process\Worker;
use ProcessManage\Log\ProcessLog;

(new Manage(['baseTitle' => 'x']))
    ->setWork(function (Worker $process) {
        $n = $process->getExecuteTimes();
        ProcessLog::Record('info', $process, "call $n");
        if ($n == 1) {
            $before = var_export($process->isExpectStop(), true);
            $process->setStop();
            ProcessLog::Record('info', $process, "stop set: before=$before "
                . 'after=' . var_export($process->isExpectStop(), true));
        }
    })
    ->start();
"""), maxWorkerNum=1, executeTimes=0, executeUSleep=20000)
        p = self.run_fg(cfg, workers=1)
        ex = self.wait_exits(p, 1, slot=0)
        first = self.msgs(p, r"^stop set")[0]
        self.wait_for(lambda: [x for x in self.msgs(p, r"^call 0$")
                               if x["pid"] != first["pid"]],
                      "the replacement's first call", proc=p)
        self.stop_and_check(p)

        self.assertEqual(first["msg"], "stop set: before=false after=true")
        self.assertEqual(ex[0]["pid"], str(first["pid"]))
        self.assertIn("work() returned PM_DONE after 2 calls",
                      ex[0]["reason"])
        self.assertEqual(ex[0]["plan"], "respawning now")
        # No call after setStop() in that worker.
        self.assertEqual([x["msg"] for x in self.lines(p)
                          if x["pid"] == first["pid"] and
                          x["msg"].startswith("call ")], ["call 0", "call 1"])

    def test_is_expect_stop_turns_true_when_pmhost_stops_the_task(self):
        cfg = self.php_config(php_script(r"""
use ProcessManage\Process\Manage;
use ProcessManage\Process\Worker;
use ProcessManage\Log\ProcessLog;

(new Manage())
    ->setWork(function (Worker $process) {
        ProcessLog::info('waiting, stop=' .
            var_export($process->isExpectStop(), true));
        $until = microtime(true) + 60;
        while (!$process->isExpectStop() && microtime(true) < $until) {
            usleep(5000);
        }
        ProcessLog::info('stop seen: ' .
            var_export($process->isExpectStop(), true));
    })
    ->start();
"""), maxWorkerNum=2, executeTimes=0, executeUSleep=20000, stopTimeout=30)
        p = self.run_fg(cfg, workers=2)
        self.wait_msgs(p, r"^waiting, stop=false$", 2)
        t0 = time.monotonic()
        self.stop_and_check(p)

        self.assertLess(time.monotonic() - t0, 10 * SLOW)
        seen = self.msgs(p, r"^stop seen: ")
        self.assertEqual(sorted(x["msg"] for x in seen),
                         ["stop seen: true"] * 2)
        for e in self.exits(p):
            self.assertRegex(e["reason"], r"^stopped after 1 call")
        self.assertNotIn("SIGKILL", self.output(p))

    def test_an_autoloader_never_loads_the_original_classes(self):
        # What composer's autoloader does: load ProcessManage\ classes
        # from vendor/ on first use.  The plugin's are there first.
        cfg = self.php_config(php_script(r"""
spl_autoload_register(function ($class) {
    pmhost\log('error', "autoloader asked for $class");
});

use ProcessManage\Process\Manage;
use ProcessManage\Process\Worker;
use ProcessManage\Log\ProcessLog;
use ProcessManage\Exception\ProcessException;

try {
    (new Manage(['baseTitle' => 'x']))
        ->setWork(function (Worker $process) {
            ProcessLog::Record('notice', $process, get_class($process) .
                ' ' . (new \ReflectionClass($process))->getFileName());
        })
        ->start();
} catch (ProcessException $e) {
    echo $e->getExceptionAsString();
}
"""), maxWorkerNum=1, executeTimes=1, executeUSleep=10000,
            checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertEqual(self.tagged_pids(), [])
        self.assertEqual(self.msgs(p, r"autoloader"), [])
        line = self.msgs(p, r"^ProcessManage")
        self.assertEqual([(x["level"], x["msg"]) for x in line],
                         [("notice", "ProcessManage\\Process\\Worker "
                           "pmhost/process_manage.php")])

    def test_a_script_starting_several_manages_runs_the_one_named_here(self):
        # ManageMultiple: each of a config's tasks picks its Manage.
        self.write("multi.php", php_script(r"""
use ProcessManage\Process\Manage;
use ProcessManage\Process\ManageMultiple;
use ProcessManage\Log\ProcessLog;

$all = new ManageMultiple();
foreach (['%(t)s_a', '%(t)s_b'] as $name) {
    $all->addManage((new Manage(['baseTitle' => $name]))
        ->setWork(function ($process) use ($name) {
            ProcessLog::info("$name runs in {$process->baseTitle}");
        }));
}
$all->start();
""" % {"t": self.title}))
        cfg = self.write("task.json", json.dumps({
            "plugin": PHP_PLUGIN, "executeUSleep": 50000,
            "params": {"script": "multi.php"},
            "tasks": [{"baseTitle": self.title + "_a", "maxWorkerNum": 1},
                      {"baseTitle": self.title + "_b", "maxWorkerNum": 1}]}))
        p = self.start("run", cfg)
        for t in ("a", "b"):
            self.wait_text(p, r"Worker:%s_%s#\d+\[\d+\]: %s_%s runs in %s_%s$" %
                           ((self.title, t) * 3))
        self.assertNotIn("differs", self.output(p))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p), 0)
        self.assertEqual(self.tagged_pids(), [])


class TestOwnForm(PhpTest):
    """A script returning ['init' => ..., 'work' => ..., 'fini' => ...]."""

    SCRIPT = php_script(r"""
pmhost\log('info', 'top level ran');
return [
    'init' => function (array $params) {
        pmhost\log('info', 'init slot=' . pmhost\slot() . ' tag=' .
            $params['tag'] . ' script=' . $params['script']);
        return new ArrayObject(['tag' => $params['tag'], 'n' => 0]);
    },
    'work' => function (ArrayObject $state, array $params) {
        $state['n']++;
        pmhost\log(pmhost\LOG_INFO, sprintf('call n=%d calls=%d tag=%s '
            . 'same=%s', $state['n'], pmhost\calls(), $state['tag'],
            var_export($params === pmhost\params(), true)));
    },
    'fini' => function (ArrayObject $state, array $params) {
        pmhost\log('notice', 'fini n=' . $state['n']);
    },
];
""")

    def run_to_end(self, **keys):
        """Runs SCRIPT once (run-once master, 2 workers, 3 calls each) to
        its end; the Popen."""
        cfg = self.php_config(self.SCRIPT, params={"tag": "blue"},
                              maxWorkerNum=2, executeTimes=3,
                              executeUSleep=10000, checkWorkerInterval=0,
                              **keys)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p, timeout=30), 0, self.output(p))
        self.assertEqual(self.tagged_pids(), [])
        return p

    def results(self, p):
        """Per worker, what it logged after the top level: the lists of
        messages, sorted (pids differ from run to run)."""
        out = collections.defaultdict(list)
        for x in self.lines(p):
            if x["msg"] != "top level ran":
                out[x["pid"]].append((x["level"], x["msg"]))
        return sorted(out.values())

    def test_params_and_init_state_reach_every_call(self):
        p = self.run_to_end()
        want = [
            ("info", "init slot=%d tag=blue script=task.php"),
            ("info", "call n=1 calls=0 tag=blue same=true"),
            ("info", "call n=2 calls=1 tag=blue same=true"),
            ("info", "call n=3 calls=2 tag=blue same=true"),
            ("notice", "fini n=3"),
        ]
        got = self.results(p)
        self.assertEqual(len(got), 2, self.output(p))
        slots = sorted(int(g[0][1].split()[1][5:]) for g in got)
        self.assertEqual(slots, [0, 1])
        for g in got:
            slot = int(g[0][1].split()[1][5:])
            self.assertEqual(g, [(lv, m % slot if "%d" in m else m)
                                 for lv, m in want])
        # Without preload every worker runs the top level itself.
        self.assertEqual(len(self.msgs(p, r"^top level ran$")), 2)

    def test_preload_on_and_off_give_the_same_results(self):
        off_p = self.run_to_end()          # preload defaults to false
        off = self.results(off_p)
        self.assertEqual(len(off), 2, self.output(off_p))
        self.preload_or_skip()
        on_p = self.run_to_end(preload=True)
        self.assertEqual(self.results(on_p), off)
        # With preload the top level ran once, in the preload process.
        self.assertEqual(len(self.msgs(on_p, r"^top level ran$",
                                       role="Preload")), 1)
        self.assertEqual(self.msgs(on_p, r"^top level ran$"), [])

    def test_return_values_follow_the_c_abi(self):
        cfg = self.php_config(php_script(r"""
return ['work' => function ($state, $params) {
    $n = pmhost\calls();
    pmhost\log('info', "call $n");
    return [null, true, false, -3, 'text', pmhost\DONE][$n];
}];
"""), maxWorkerNum=1, executeTimes=0, executeUSleep=10000,
            checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertEqual(self.tagged_pids(), [])
        ex = self.exits(p)
        self.assertEqual(len(ex), 1)
        self.assertIn("work() returned PM_DONE after 6 calls", ex[0]["reason"])
        # false and -3 failed their calls.
        self.assertRegex(self.output(p), r"work\(\) returned -1 \(call 3;")
        self.assertEqual([x["msg"] for x in self.msgs(p, r"^call ")],
                         ["call %d" % i for i in range(6)])


class TestErrors(PhpTest):
    """What PHP users expect of exceptions, exit(), die() and fatal errors."""

    def erring(self, body, **keys):
        """A resident one-worker task whose work runs body (PHP) on the
        call where pmhost\\calls() is 1; init registers a shutdown function
        and fini logs, so that what ran shows."""
        script = php_script(r"""
return [
    'init' => function ($params) {
        register_shutdown_function(function () {
            pmhost\log('info', 'shutdown function ran');
        });
        pmhost\log('info', 'init');
    },
    'work' => function ($state, $params) {
        $n = pmhost\calls();
        pmhost\log('info', "call $n");
        if ($n == 1) {
            %s
        }
    },
    'fini' => function ($state, $params) { pmhost\log('info', 'fini'); },
];
""" % body)
        keys.setdefault("maxWorkerNum", 1)
        keys.setdefault("executeTimes", 0)
        keys.setdefault("executeUSleep", 20000)
        return self.php_config(script, **keys)

    def line_of(self, needle):
        """The line number of needle in this test's task.php."""
        with open(self.path("task.php")) as f:
            for i, line in enumerate(f, 1):
                if needle in line:
                    return i
        self.fail("%r not in task.php" % needle)

    def test_an_uncaught_exception_fails_the_call_and_the_worker_goes_on(self):
        cfg = self.erring("throw new DomainException('bad input 7');")
        p = self.run_fg(cfg, workers=1)
        self.wait_msgs(p, r"^call 4$", 1)
        st = self.master_json()["workers"][0]
        self.stop_and_check(p)

        err = self.msgs(p, r"uncaught")
        self.assertEqual(len(err), 1)
        self.assertEqual(err[0]["level"], "error")
        self.assertEqual(err[0]["msg"],
                         "work: uncaught DomainException: bad input 7 in "
                         "%s:%d" % (self.path("task.php"),
                                    self.line_of("bad input 7")))
        # The same worker made the calls before and after.
        self.assertEqual({x["pid"] for x in self.msgs(p, r"^call \d$")},
                         {err[0]["pid"]})
        self.assertRegex(self.output(p), r"work\(\) returned -1 \(call 2;")
        self.assertEqual(st["errors"], 1)
        self.assertEqual(st["restarts"], 0)

    def ends_as_failed(self, body, status):
        """Runs erring(body); checks that the worker that ran it ended with
        status, its fini unrun but PHP's shutdown functions run, and that
        a replacement started.  Returns (Popen, that worker's pid)."""
        p = self.run_fg(self.erring(body), workers=1)
        ex = self.wait_exits(p, 1, slot=0)
        pid = int(ex[0]["pid"])
        self.wait_for(lambda: [x for x in self.msgs(p, r"^init$")
                               if x["pid"] != pid],
                      "the replacement's init", proc=p)
        self.stop_and_check(p)

        self.assertRegex(ex[0]["reason"],
                         r"^exited with status %d after 1 call" % status)
        mine = [x["msg"] for x in self.lines(p) if x["pid"] == pid]
        self.assertNotIn("fini", mine)
        self.assertIn("shutdown function ran", mine)
        self.assertEqual(mine[:3], ["init", "call 0", "call 1"])
        return p, pid

    def test_exit_ends_the_worker_as_failed(self):
        p, pid = self.ends_as_failed("exit(3);", 3)
        why = self.msgs(p, r"exit\(")
        self.assertEqual(why[0]["level"], "error")
        self.assertEqual(why[0]["pid"], pid)
        self.assertRegex(why[0]["msg"], r"^php: work: exit\(3\) \(from %s:%d\)"
                         r" ends the worker as failed, exit status 3" %
                         (re.escape(self.path("task.php")),
                          self.line_of("exit(3)")))

    def test_die_ends_the_worker_as_failed_with_its_message_printed(self):
        p, pid = self.ends_as_failed(r'die("goodbye from php\n");', 1)
        self.assertIn("goodbye from php", self.output(p))
        self.assertTrue(self.msgs(p, r"exit\(0\) .* ends the worker as "
                                     r"failed, exit status 1"))

    def test_a_fatal_error_ends_the_worker_as_failed(self):
        p, pid = self.ends_as_failed(
            "ini_set('memory_limit', '16M'); $x = str_repeat('x', 64 << 20);",
            255)
        # (Its replacement may have met the same end by now.)
        fatal = [x for x in self.msgs(p, r"fatal error: Allowed memory size")
                 if x["pid"] == pid]
        self.assertEqual(len(fatal), 1)
        self.assertEqual(fatal[0]["level"], "error")
        self.assertIn("in %s:%d; the worker ends as failed, exit status 255"
                      % (self.path("task.php"), self.line_of("str_repeat")),
                      fatal[0]["msg"])

    def test_a_syntax_error_is_refused_by_run_and_check(self):
        cfg = self.php_config(php_script("""
return [
    'work' => function ($state, $params) {
        echo 'no semicolon'
    },
];
"""))
        for cmd in ("check", "run"):
            r = self.pm(cmd, cfg, check=2)
            self.assert_one_error_line(
                r, r"^pmhost: %s: plugin: php: %s:5: syntax error, "
                   r"unexpected token \"}\"" %
                   (re.escape(cfg), re.escape(self.path("task.php"))))
        self.assertFalse(os.path.exists(self.pid_file()))
        self.assertEqual(self.tagged_pids(), [])

    def test_check_names_a_missing_script_and_bad_params(self):
        cfg = self.php_config("<?php return [];\n", name="a.json")
        os.unlink(self.path("task.php"))
        r = self.pm("check", cfg, check=2)
        self.assert_one_error_line(
            r, r"php: params\.script: %s: No such file or directory$" %
            re.escape(self.path("task.php")))
        cfg = self.write("b.json", json.dumps({
            "plugin": PHP_PLUGIN, "baseTitle": self.title,
            "params": {"script": "task.php", "ini": {"memory_limit": [1]}}}))
        r = self.pm("check", cfg, check=2)
        self.assert_one_error_line(r, r"php: params\.ini\.memory_limit: "
                                      r"must be a string, a number or a "
                                      r"boolean$")

    def test_restart_with_a_broken_script_is_refused_and_workers_stay(self):
        cfg = self.php_config(php_script(r"""
return ['work' => function ($s, $p) {
    pmhost\log('info', 'call ' . pmhost\calls());
}];
"""), maxWorkerNum=2, executeTimes=0, executeUSleep=20000)
        p = self.run_fg(cfg, workers=2)
        self.wait_msgs(p, r"^call 2$", 2)
        before = sorted(self.workers())
        self.write("task.php", "<?php\nreturn ['work' => function () {\n"
                               "    echo 'no semicolon'\n}];\n")

        r = self.pm("restart", "--title", self.title, check=2)

        self.assert_one_error_line(
            r, r"php: %s:4: syntax error" % re.escape(self.path("task.php")))
        self.assertEqual(sorted(self.workers()), before)
        # The old workers keep working.
        n = len(self.msgs(p, r"^call "))
        self.wait_for(lambda: len(self.msgs(p, r"^call ")) >= n + 4,
                      "more calls after the refused restart", proc=p)
        self.assertEqual({x["pid"] for x in self.msgs(p, r"^call ")},
                         set(before))
        self.stop_and_check(p)


class TestExtensions(PhpTest):

    def setUp(self):
        super().setUp()
        if SANITIZED:
            self.skipTest(NO_EXTENSIONS)

    def test_extension_modules_load(self):
        # sqlite3 and pdo_sqlite are shared objects that php.ini loads.
        cfg = self.php_config(php_script(r"""
return [
    'init' => function ($params) {
        $db = new SQLite3(':memory:');
        $db->exec('CREATE TABLE t (n INTEGER)');
        $pdo = new PDO('sqlite::memory:');
        return [$db, $pdo];
    },
    'work' => function ($state, $params) {
        [$db, $pdo] = $state;
        $db->exec('INSERT INTO t VALUES (' . pmhost\calls() . ')');
        pmhost\log('info', sprintf('rows=%d sum=%d pdo=%s',
            $db->querySingle('SELECT count(*) FROM t'),
            $db->querySingle('SELECT sum(n) FROM t'),
            $pdo->query('SELECT 6 * 7')->fetchColumn()));
    },
];
"""), maxWorkerNum=1, executeTimes=3, executeUSleep=10000,
            checkWorkerInterval=0)
        p = self.start("run", cfg)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertEqual(self.tagged_pids(), [])
        self.assertEqual([x["msg"] for x in self.lines(p)],
                         ["rows=1 sum=0 pdo=42", "rows=2 sum=1 pdo=42",
                          "rows=3 sum=3 pdo=42"])

    def test_the_queue_example_does_every_job_once(self):
        php = shutil.which("php")
        if php is None:
            self.skipTest("php (php8.2-cli) is not installed: enqueue.php "
                          "needs it")
        src = os.path.join(EXAMPLES, "queue")
        for f in ("consumer.php", "queue.php", "enqueue.php"):
            shutil.copy(os.path.join(src, f), self.path(f))
        with open(os.path.join(src, "queue.json")) as f:
            cfg = json.load(f)
        cfg.update(plugin=PHP_PLUGIN, baseTitle=self.title, maxWorkerNum=3,
                   executeUSleep=20000)
        cfg["params"].update(db="queue.db", batch=5)
        cfgp = self.write("queue.json", json.dumps(cfg))
        payloads = [json.dumps({"op": "upper", "data": "job %d" % i})
                    for i in range(40)] + ['{"op": "nope"}']
        r = subprocess.run([php, self.path("enqueue.php"),
                            self.path("queue.db")] + payloads,
                           env=self.env, capture_output=True, text=True,
                           timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        p = self.run_fg(cfgp, workers=3)

        import sqlite3

        def rows():
            db = sqlite3.connect(self.path("queue.db"), timeout=10)
            try:
                return db.execute("SELECT id, state, result, error, "
                                  "attempts FROM jobs ORDER BY id").fetchall()
            finally:
                db.close()
        self.wait_for(lambda: all(x[1] in ("done", "failed")
                                  for x in rows()),
                      "every job done or failed", timeout=30, proc=p)
        self.stop_and_check(p)

        got = rows()
        self.assertEqual(len(got), 41)
        for i, (jid, state, result, error, attempts) in enumerate(got[:40]):
            self.assertEqual((state, result, attempts),
                             ("done", "JOB %d" % i, 1))
        self.assertEqual(got[40][1:3], ("failed", None))
        self.assertIn("unknown op", got[40][3])
        self.assertTrue(self.msgs(p, r"queue: job 41 failed: "
                                     r"InvalidArgumentException"))


class TestPreload(PhpTest):
    """The host's preload with PHP tasks (skipped, saying so, until pmhost
    knows the `preload` key)."""

    def test_a_process_manage_script_is_loaded_once_and_warned_about_once(
            self):
        with open(os.path.join(EXAMPLES, "seed", "task.php")) as f:
            script = f.read()
        cfg = self.php_config(script, maxWorkerNum=2, executeTimes=1,
                              executeUSleep=50000, preload=True)
        self.preload_or_skip()
        p = self.run_fg(cfg, workers=2)
        self.wait_for(lambda: len(self.by_pid(p, r"^work run \.\.\. $"))
                      >= 6, "six worker lives", timeout=20, proc=p)
        self.stop_and_check(p)
        # One warning, from the preload process, for every worker life.
        warn = self.msgs(p, r"\$config differs", role="Preload")
        self.assertEqual(len(warn), 1)
        self.assertEqual(self.msgs(p, r"\$config differs"), [])
        for pid, runs in self.by_pid(p, r"^work run").items():
            self.assertEqual(len(runs), 1)
            self.assertEqual(len(self.by_pid(p, r"^work init")[pid]), 1)

    def test_killing_the_preload_process_leaves_the_workers_working(self):
        cfg = self.php_config(php_script(r"""
return ['work' => function ($s, $p) {
    pmhost\log('info', 'call ' . pmhost\calls());
}];
"""), maxWorkerNum=2, executeTimes=0, executeUSleep=20000, preload=True)
        self.preload_or_skip()
        p = self.run_fg(cfg, workers=2)
        self.wait_msgs(p, r"^call 2$", 2)
        before = sorted(self.workers())
        pre = self.pids_titled("Preload")
        self.assertEqual(len(pre), 1)
        os.kill(pre[0], signal.SIGKILL)
        self.wait_for(lambda: [x for x in self.pids_titled("Preload")
                               if x != pre[0]],
                      "a new preload process", proc=p)
        n = len(self.msgs(p, r"^call "))
        self.wait_for(lambda: len(self.msgs(p, r"^call ")) >= n + 4,
                      "calls after the preload process died", proc=p)
        self.assertEqual(sorted(self.workers()), before)
        self.stop_and_check(p)


class TestPreloadPath(PhpTest):
    """The plugin's side of preload, driven by php-preload-driver: the
    script's top level runs once in work_preload, and workers cloned from
    that process without atfork handlers work as if they had loaded it."""

    SCRIPT = php_script(r"""
mt_srand(42);                       // seeded before any fork
$top = mt_rand();
pmhost\log('info', 'top level ran');
return [
    'init' => function ($params) use ($top) {
        return ['top' => $top, 'first' => mt_rand(), 'tag' => $params['tag']];
    },
    'work' => function ($state, $params) {
        pmhost\log('info', sprintf('call %d tag=%s', pmhost\calls(),
            $state['tag']));
        if (pmhost\calls() == 1) {
            pmhost\log('info', 'draw ' . $state['first'] . ' ' . mt_rand());
        }
    },
    'fini' => function ($state, $params) { pmhost\log('info', 'fini'); },
];
""")

    def drive(self, *flags, workers=4, calls=3):
        """Runs the driver over SCRIPT; (log lines, {pid: exit status})."""
        self.write("task.php", self.SCRIPT)
        env = dict(self.env)
        env["LSAN_OPTIONS"] = ":".join(
            x for x in (env.get("LSAN_OPTIONS"),
                        "suppressions=" + LSAN_SUPP) if x)
        r = subprocess.run([DRIVER] + list(flags) + [
            PHP_PLUGIN, json.dumps({"script": "task.php", "tag": "green"}),
            self.tmp, str(workers), str(calls)], env=env,
            capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        logs, exits = [], {}
        for line in r.stdout.splitlines():
            m = re.match(r"^(\w+) (-?\d+) (\d+): (.*)$", line)
            if m:
                logs.append((m.group(1), int(m.group(2)), int(m.group(3)),
                             m.group(4)))
            m = re.match(r"^exit (\d+) (\d+)$", line)
            if m:
                exits[int(m.group(1))] = int(m.group(2))
        # The driver waited for its workers: none may be left.
        self.assertEqual(self.tagged_pids(), [])
        return logs, exits

    def per_worker(self, logs):
        out = collections.defaultdict(list)
        for level, slot, pid, msg in logs:
            if slot >= 0 and not msg.startswith("draw "):
                out[slot].append(msg)
        return dict(out)

    def test_the_top_level_runs_once_and_cloned_workers_run_alike(self):
        self.assertTrue(os.path.exists(DRIVER), DRIVER)
        on, on_exits = self.drive()
        off, off_exits = self.drive("-n")

        self.assertEqual([m for _, slot, _, m in on if m == "top level ran"],
                         ["top level ran"])
        self.assertEqual([slot for _, slot, _, m in on
                          if m == "top level ran"], [-1])
        self.assertEqual(len([m for _, _, _, m in off
                              if m == "top level ran"]), 4)
        want = ["call 0 tag=green", "call 1 tag=green", "call 2 tag=green",
                "fini"]
        self.assertEqual(self.per_worker(on), {s: want for s in range(4)})
        # Without preload each worker runs the top level first.
        self.assertEqual(self.per_worker(off),
                         {s: ["top level ran"] + want for s in range(4)})
        self.assertEqual(sorted(on_exits.values()), [0] * 4)
        self.assertEqual(sorted(off_exits.values()), [0] * 4)

    def test_a_load_check_first_in_the_same_process_changes_nothing(self):
        # The check compiles with a reduced engine and stops it: a preload
        # run next in that process gets the full one.
        checked, exits = self.drive("-c")
        plain, _ = self.drive()
        self.assertEqual(self.per_worker(checked), self.per_worker(plain))
        self.assertEqual(sorted(exits.values()), [0] * 4)

    def test_workers_cloned_from_a_seeded_engine_draw_their_own_numbers(self):
        logs, _ = self.drive(workers=4)
        draws = [m for _, slot, _, m in logs if m.startswith("draw ")]
        self.assertEqual(len(draws), 4)
        # mt_srand(42) ran before the clones: PHP alone would hand every
        # worker the same next numbers.
        self.assertEqual(len(set(draws)), 4, draws)

    def test_exit_in_a_cloned_worker_ends_it_with_its_status(self):
        self.SCRIPT = self.SCRIPT.replace(
            "if (pmhost\\calls() == 1) {",
            "if (pmhost\\calls() == 1 && pmhost\\slot() == 2) { exit(9); }\n"
            "        if (pmhost\\calls() == 1) {")
        logs, exits = self.drive()
        self.assertEqual(sorted(exits.values()), [0, 0, 0, 9])
        self.assertTrue([m for _, slot, _, m in logs
                         if slot == 2 and "exit(9)" in m])


if __name__ == "__main__":
    harness.main()
