"""Python tasks (plugins/python, python.so) as their authors see them: the
task's work_init/work/work_fini run in Debian's CPython with state and
params; return values, exceptions, SystemExit and crashes end calls and
workers as documented; logging goes to pmhost's log; a venv supplies
packages; a stop ends a worker asleep in time.sleep() at once; a broken
module is refused by run, check and restart with its file and line; the
preload path shares one import among cloned workers.

Each test writes its task module into its scratch dir.  Tasks record
events in the recorder's format (see harness.events) through rec.py.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import unittest

import harness
from harness import SLOW

PY_DIR = os.path.join(harness.BUILD, "plugins", "python")
PY_PLUGIN = os.path.join(PY_DIR, "python.so")
PRELOAD_CLONE = os.path.join(PY_DIR, "preload_clone")
EXAMPLES = os.path.join(harness.SOURCE, "plugins", "python", "examples")
# Sanitizer builds: what the embedded interpreter holds at exit is not a
# leak (the file says why).
LSAN_SUPP = os.path.join(harness.SOURCE, "plugins", "python", "tests",
                         "lsan.supp")
# The interpreter the plugin embeds; never the python3 first on PATH.
DEBIAN_PYTHON = "/usr/bin/python3.11"

BACKOFF_PLANS = [
    "respawning now",
    "respawning in 0.1 s (2 failures in a row)",
    "respawning in 0.2 s (3 failures in a row)",
]

# Imported by the tasks: one event line per call, appended atomically.
REC = '''
import json, os, time

def rec(worker, event, extra=None):
    line = "%s %d %d %d %d %s\\n" % (
        event, worker.slot, os.getpid(), worker.calls, time.time_ns(),
        json.dumps(extra, sort_keys=True) if extra is not None else "")
    fd = os.open(worker.params["record"],
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
'''


@unittest.skipUnless(os.path.exists(PY_PLUGIN),
                     "python.so not built (no python3-embed)")
class PyTest(harness.PmTest):
    """A test with a Python task in its scratch dir."""

    def setUp(self):
        super().setUp()
        self.write("rec.py", REC)
        lsan = self.env.get("LSAN_OPTIONS")
        self.env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0%s" \
            % (LSAN_SUPP, ":" + lsan if lsan else "")

    def task(self, source, name="task.py"):
        """Writes a task file (source dedented); its path."""
        return self.write(name, textwrap.dedent(source))

    def py_config(self, params=None, name="task.json", **keys):
        """A config running module "task" from the scratch dir."""
        prm = {"module": "task", "record": self.path("events")}
        prm.update(params or {})
        keys.setdefault("executeTimes", 0)
        keys.setdefault("executeUSleep", 20000)
        return self.config(name, plugin_name=PY_PLUGIN, params=prm, **keys)

    def extras(self, kind):
        """The JSON extras of the events of one kind."""
        return [json.loads(e["extra"]) for e in self.events(kind)]

    def stop(self, p):
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)

    def log_lines(self, p, level=None):
        """Worker lines of the log: (level, message) pairs."""
        rx = re.compile(r"^\S+ (\w+) \S+:Worker:%s#\d+\[\d+\]: (.*)$" %
                        re.escape(self.title), re.M)
        return [(lv, msg) for lv, msg in rx.findall(self.output(p))
                if level is None or lv == level]


class TestCalls(PyTest):

    def test_work_init_state_reaches_each_call_and_calls_count(self):
        self.task('''
            from rec import rec

            def work_init(worker):
                rec(worker, "init", {"title": worker.title})
                return {"n": 0}

            def work(worker, state):
                state["n"] += 1
                rec(worker, "call", {"n": state["n"]})

            def work_fini(worker, state):
                rec(worker, "fini", {"n": state["n"]})
            ''')
        cfg = self.py_config(maxWorkerNum=2, executeTimes=3,
                             executeUSleep=5000)
        p = self.run_fg(cfg)
        self.wait_exits(p, 4)
        self.stop(p)

        lives = [int(x["pid"]) for x in self.exits(p)
                 if x["reason"].startswith("reached executeTimes")]
        self.assertGreaterEqual(len(lives), 4)
        for pid in lives:
            calls = [e for e in self.events("call") if e["pid"] == pid]
            # One state per worker, handed to every call: n counts on;
            # worker.calls is the count before each call.
            self.assertEqual([json.loads(e["extra"])["n"] for e in calls],
                             [1, 2, 3])
            self.assertEqual([e["calls"] for e in calls], [0, 1, 2])
            fini = [e for e in self.events("fini") if e["pid"] == pid]
            self.assertEqual(json.loads(fini[0]["extra"]), {"n": 3})
            self.assertEqual(fini[0]["calls"], 3)
        inits = self.events("init")
        self.assertEqual({e["slot"] for e in inits}, {0, 1})
        self.assertEqual({json.loads(e["extra"])["title"] for e in inits},
                         {"process_m:Worker:%s" % self.title})
        for x in self.exits(p):
            self.assertRegex(x["reason"], r"^(reached executeTimes after 3"
                             r" calls|stopped after [0-2] calls?,)")

    def test_params_reach_python_as_a_dict(self):
        self.task('''
            from rec import rec

            def work(worker, state):
                rec(worker, "params", worker.params)
                return False
            ''')
        own = {"n": -42, "f": 2.5e-3, "s": "caf\u00e9 \"q\" \\ \n\t\U0001f600",
               "l": [1, None, True, False, []], "o": {"a": {"b": {}}},
               "u": "\u2603"}
        cfg = self.py_config(params=own, maxWorkerNum=1)
        p = self.run_fg(cfg)
        self.wait_events("params", 1, proc=p)
        self.stop(p)
        got = self.extras("params")[0]
        # The plugin's own keys are not the task's.
        want = dict(own, record=self.path("events"))
        self.assertEqual(got, want)

    def test_return_values(self):
        self.task('''
            from rec import rec

            def work(worker, state):
                rec(worker, "call")
                return [None, True, "yes", False][worker.calls]
            ''')
        cfg = self.py_config(maxWorkerNum=1, executeUSleep=5000)
        p = self.run_fg(cfg)
        ex = self.wait_exits(p, 1)
        self.stop(p)
        # None and True go on; a str is a failed call; False ends the
        # worker in order.
        self.assertRegex(ex[0]["reason"],
                         r"^work\(\) returned PM_DONE after 4 calls")
        self.assertEqual(ex[0]["plan"], "respawning now")
        first = int(ex[0]["pid"])
        self.assertEqual(len([e for e in self.events("call")
                              if e["pid"] == first]), 4)
        errors = [m for _, m in self.log_lines(p, "error")]
        self.assertIn("work() returned a str: return None or True to go "
                      "on, False to end the worker; counted as a failed "
                      "call", errors)
        self.assertRegex(self.output(p), r"work\(\) returned -1 \(call 3;")

    def test_exception_is_logged_with_traceback_and_counted(self):
        self.task('''
            from rec import rec

            def fail(n):
                raise ValueError("boom at call %d" % n)

            def work(worker, state):
                rec(worker, "call")
                if worker.calls == 1:
                    fail(worker.calls)
            ''')
        cfg = self.py_config(maxWorkerNum=1, executeUSleep=50000)
        p = self.run_fg(cfg, workers=1)
        self.wait_events("call", 4, proc=p)
        w = self.master_json()["workers"][0]
        self.stop(p)

        # The worker went on after the failed call, and counted it.
        self.assertEqual(len({e["pid"] for e in self.events("call")}), 1)
        self.assertEqual(w["errors"], 1)
        errors = [m for _, m in self.log_lines(p, "error")]
        task = self.path("task.py")
        self.assertEqual(errors, [
            "work() raised ValueError: boom at call 1",
            "Traceback (most recent call last):",
            '  File "%s", line 10, in work' % task,
            "    fail(worker.calls)",
            '  File "%s", line 5, in fail' % task,
            '    raise ValueError("boom at call %d" % n)',
            "ValueError: boom at call 1",
        ])
        self.assertRegex(self.output(p), r"warning \S+:Worker:\S+ "
                         r"work\(\) returned -1 \(call 2;")

    def test_exception_in_work_init_fails_the_worker_with_backoff(self):
        self.task('''
            def work_init(worker):
                raise KeyError("no config")

            def work(worker, state):
                pass
            ''')
        p = self.run_fg(self.py_config(maxWorkerNum=1))
        ex = self.wait_exits(p, 3, slot=0)
        self.stop(p)
        self.assertEqual([x["plan"] for x in ex[:3]], BACKOFF_PLANS)
        for x in ex[:3]:
            self.assertIn("work_init() failed", x["reason"])
        self.assertIn(("error", "work_init() raised KeyError: 'no config'"),
                      self.log_lines(p))

    def test_system_exit_ends_the_worker_as_failed(self):
        self.task('''
            import atexit, sys
            from rec import rec

            def work_init(worker):
                atexit.register(rec, worker, "atexit")
                return None

            def work(worker, state):
                rec(worker, "call")
                sys.exit(4)

            def work_fini(worker, state):
                rec(worker, "fini")
            ''')
        p = self.run_fg(self.py_config(maxWorkerNum=1))
        ex = self.wait_exits(p, 3, slot=0)
        self.stop(p)
        # A failure each time: the slot backs off.
        self.assertEqual([x["plan"] for x in ex[:3]], BACKOFF_PLANS)
        for x in ex[:3]:
            self.assertRegex(x["reason"], r"^exited with status 4 after 0 "
                             r"calls")
            self.assertEqual(x["level"], "warning")
        # work_fini does not run; what atexit holds does.
        self.assertEqual(self.events("fini"), [])
        self.assertGreaterEqual(len(self.events("atexit")), 3)
        self.assertIn("work() raised SystemExit(4): the worker ends as "
                      "failed, with exit status 4, without work_fini "
                      "(return False from work() to end a worker in "
                      "order)", [m for _, m in self.log_lines(p, "error")])

    def test_crash_in_the_interpreter_fails_the_worker(self):
        self.task('''
            import ctypes

            def work(worker, state):
                ctypes.string_at(0)
            ''')
        p = self.run_fg(self.py_config(maxWorkerNum=1))
        ex = self.wait_exits(p, 2, slot=0)
        self.stop(p)
        self.assertEqual([x["plan"] for x in ex[:2]], BACKOFF_PLANS[:2])
        self.assertRegex(ex[0]["reason"], r"^killed by SIGSEGV")
        # Where Python was when it crashed.
        self.assertIn('File "%s", line 5 in work' % self.path("task.py"),
                      self.output(p))


class TestInterpreter(PyTest):

    def test_debians_interpreter_with_its_c_extensions(self):
        self.task('''
            import signal, sys
            import _decimal, _json, _sqlite3
            import sqlite3
            from rec import rec

            def work(worker, state):
                db = sqlite3.connect(":memory:")
                rec(worker, "facts", {
                    "executable": sys.executable, "prefix": sys.prefix,
                    "base_prefix": sys.base_prefix,
                    "version": list(sys.version_info[:2]),
                    "ext": [m.__file__ for m in (_decimal, _json, _sqlite3)],
                    "sql": db.execute("select 6 * 7").fetchone()[0],
                    "sigint": repr(signal.getsignal(signal.SIGINT)),
                    "argv": sys.argv})
                return False
            ''')
        env = dict(self.env)
        # Another python3 first on PATH and a PYTHONHOME pointing at it
        # change nothing.
        env["PYTHONHOME"] = os.path.dirname(os.path.dirname(
            os.path.realpath(sys.executable)))
        p = self.start("run", self.py_config(maxWorkerNum=1), env=env)
        self.wait_events("facts", 1, proc=p)
        self.stop(p)
        f = self.extras("facts")[0]
        self.assertEqual(f["executable"], DEBIAN_PYTHON)
        self.assertEqual(f["prefix"], "/usr")
        self.assertEqual(f["base_prefix"], "/usr")
        self.assertEqual(f["version"], [3, 11])
        for path in f["ext"]:
            self.assertTrue(path.startswith("/usr/lib/python3.11/"
                                            "lib-dynload/"), path)
        self.assertEqual(f["sql"], 42)
        # Python installed no SIGINT handler of its own.
        self.assertNotIn("default_int_handler", f["sigint"])
        self.assertEqual(f["argv"], ["task"])

    def test_sigint_to_a_worker_is_the_hosts_stop_not_keyboardinterrupt(self):
        self.task('''
            import time
            from rec import rec

            def work(worker, state):
                rec(worker, "sleeping")
                time.sleep(60)

            def work_fini(worker, state):
                rec(worker, "fini")
            ''')
        p = self.run_fg(self.py_config(maxWorkerNum=1, stopTimeout=30))
        pid = self.wait_events("sleeping", 1, proc=p)[0]["pid"]
        os.kill(pid, signal.SIGINT)
        ex = self.wait_exits(p, 1)
        self.stop(p)
        self.assertRegex(ex[0]["reason"], r"^stopped after 1 call,")
        self.assertEqual([e["pid"] for e in self.events("fini")][:1], [pid])
        self.assertNotIn("KeyboardInterrupt", self.output(p))

    def test_threads_of_the_task_run_between_calls(self):
        self.task('''
            import threading, time
            from rec import rec

            ticks = 0

            def tick():
                global ticks
                while True:
                    ticks += 1
                    time.sleep(0.001)

            def work_init(worker):
                threading.Thread(target=tick, daemon=True).start()

            def work(worker, state):
                rec(worker, "call", {"ticks": ticks})
            ''')
        cfg = self.py_config(maxWorkerNum=1, executeUSleep=300000)
        p = self.run_fg(cfg)
        self.wait_events("call", 4, proc=p)
        self.stop(p)
        ticks = [x["ticks"] for x in self.extras("call")]
        # 300 ms between calls, a tick a millisecond or so (a busy machine
        # makes it fewer): the thread had the GIL while the worker waited.
        # Held by the worker, it would have had none.
        for a, b in zip(ticks[1:], ticks[2:]):
            self.assertGreater(b - a, 10, ticks)

    def test_script_runs_as_a_module_named_after_its_file(self):
        os.mkdir(self.path("jobs"))
        self.write("jobs/helper.py", "WORD = 'helped'\n")
        self.task('''
            import sys
            import helper
            from rec import rec

            def work(worker, state):
                rec(worker, "ran", {"name": __name__,
                                    "word": helper.WORD,
                                    "argv": sys.argv})
                return False

            if __name__ == "__main__":
                raise SystemExit("a script's main part must not run")
            ''', name="jobs/job.py")
        shutil.copy(self.path("rec.py"), self.path("jobs/rec.py"))
        cfg = self.config(plugin_name=PY_PLUGIN, executeTimes=0,
                          params={"script": "jobs/job.py",
                                  "record": self.path("events")})
        p = self.run_fg(cfg)
        self.wait_events("ran", 1, proc=p)
        self.stop(p)
        self.assertEqual(self.extras("ran")[0],
                         {"name": "job", "word": "helped",
                          "argv": [self.path("jobs/job.py")]})


class TestLogging(PyTest):

    def test_logging_and_pmhost_log_reach_pmhosts_log(self):
        self.task('''
            import warnings
            import pmhost

            def work(worker, state):
                # Imported late: served all the same.
                import logging
                log = logging.getLogger("job")
                log.debug("d-line")
                log.info("i-line %d", 7)
                log.log(25, "n-line")
                log.warning("w-line")
                log.error("e-line")
                log.critical("c-line")
                try:
                    {}["missing"]
                except KeyError:
                    log.exception("x-line")
                pmhost.log(pmhost.NOTICE, "p-line\\nsecond line")
                pmhost.log("warning", "q-line")
                warnings.warn("careful")
                print("printed line")
                return False
            ''')
        cfg = self.py_config(maxWorkerNum=1, checkWorkerInterval=0)
        p = self.run_fg(cfg, "--log-level", "debug")
        self.assertEqual(self.wait_exit(p), 0)
        lines = self.log_lines(p)
        for want in [("debug", "job: d-line"), ("info", "job: i-line 7"),
                     ("notice", "job: n-line"), ("warning", "job: w-line"),
                     ("error", "job: e-line"), ("error", "job: c-line"),
                     ("error", "job: x-line"),
                     ("error", "Traceback (most recent call last):"),
                     ("error", "KeyError: 'missing'"),
                     ("notice", "p-line"), ("notice", "second line"),
                     ("warning", "q-line")]:
            self.assertIn(want, lines)
        self.assertTrue(any(lv == "warning" and "UserWarning: careful" in m
                            for lv, m in lines), lines)
        self.assertIn("printed line\n", self.output(p))

    def test_debug_lines_follow_the_hosts_log_level(self):
        self.task('''
            import logging

            def work(worker, state):
                logging.getLogger("job").debug("hidden")
                logging.getLogger("job").info("shown")
                return False
            ''')
        cfg = self.py_config(maxWorkerNum=1, checkWorkerInterval=0)
        p = self.run_fg(cfg)
        self.assertEqual(self.wait_exit(p), 0)
        self.assertIn(("info", "job: shown"), self.log_lines(p))
        self.assertNotIn("hidden", self.output(p))


class TestVenv(PyTest):

    def make_venv(self, name="venv"):
        """A venv made by Debian's interpreter, with a package in it and
        a .pth file adding one more directory; its path."""
        venv = self.path(name)
        subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", venv],
                       check=True, timeout=60 * SLOW, env=self.env)
        site = os.path.join(venv, "lib", "python3.11", "site-packages")
        os.mkdir(os.path.join(site, "vdep"))
        with open(os.path.join(site, "vdep", "__init__.py"), "w") as f:
            f.write("VALUE = 'from the venv'\n")
        extra = self.path("extra")
        os.mkdir(extra)
        with open(os.path.join(extra, "pthmod.py"), "w") as f:
            f.write("VALUE = 'by a .pth file'\n")
        with open(os.path.join(site, "extra.pth"), "w") as f:
            f.write(extra + "\n")
        return venv

    def test_a_venvs_packages_are_importable(self):
        venv = self.make_venv()
        self.task('''
            import sys
            import pthmod, vdep
            from rec import rec

            def work(worker, state):
                rec(worker, "venv", {
                    "vdep": vdep.VALUE, "pth": pthmod.VALUE,
                    "vdep_file": vdep.__file__, "prefix": sys.prefix,
                    "base_prefix": sys.base_prefix,
                    "executable": sys.executable, "path": sys.path})
                return False
            ''')
        cfg = self.py_config(params={"venv": "venv"}, maxWorkerNum=1)
        self.pm("check", cfg, check=0)
        p = self.run_fg(cfg)
        self.wait_events("venv", 1, proc=p)
        self.stop(p)
        v = self.extras("venv")[0]
        self.assertEqual(v["vdep"], "from the venv")
        self.assertEqual(v["pth"], "by a .pth file")
        self.assertTrue(v["vdep_file"].startswith(venv + "/"))
        self.assertEqual(v["prefix"], venv)
        self.assertEqual(v["base_prefix"], "/usr")
        self.assertEqual(v["executable"], os.path.join(venv, "bin",
                                                       "python"))
        # The venv does not include the system's site-packages.
        self.assertNotIn("/usr/lib/python3/dist-packages", v["path"])
        self.assertIn("/usr/lib/python3.11", v["path"])
        self.assertEqual(v["path"][0], self.tmp)

    def test_without_the_venv_its_package_is_missing(self):
        self.make_venv()
        self.task('''
            import vdep

            def work(worker, state):
                pass
            ''')
        r = self.pm("check", self.py_config(maxWorkerNum=1), check=2)
        self.assertIn("task.py:2: ModuleNotFoundError: No module named "
                      "'vdep'", r.stderr)

    def test_a_venv_of_another_python_version_is_refused(self):
        venv = self.make_venv()
        cfgfile = os.path.join(venv, "pyvenv.cfg")
        with open(cfgfile) as f:
            text = f.read()
        with open(cfgfile, "w") as f:
            f.write(re.sub(r"version = 3\.11\.\d+", "version = 3.9.2", text))
        self.task("def work(worker, state):\n    pass\n")
        cfg = self.py_config(params={"venv": "venv"})
        for cmd in ("run", "check"):
            r = self.pm(cmd, cfg, check=2)
            self.assert_one_error_line(
                r, r"venv: %s was made by Python 3\.9\.2; this plugin "
                   r"runs Python 3\.11: recreate it with "
                   r"/usr/bin/python3\.11 -m venv" % re.escape(venv))
        self.assertEqual(self.tagged_pids(), [])


class TestRefusal(PyTest):

    def test_a_syntax_error_is_refused_with_file_and_line(self):
        self.task('''
            import os

            def work(worker, state)
                pass
            ''')
        cfg = self.py_config(maxWorkerNum=2)
        for cmd in ("run", "check"):
            r = self.pm(cmd, cfg, check=2)
            self.assert_one_error_line(
                r, r"%s:4: SyntaxError: expected ':'$" %
                   re.escape(self.path("task.py")))
        self.assertEqual(self.tagged_pids(), [])
        self.assertEqual(self.events(), [])

    def test_an_import_error_names_the_tasks_line(self):
        self.task('''
            import json
            json.loads("{not json")

            def work(worker, state):
                pass
            ''')
        r = self.pm("check", self.py_config(), check=2)
        # The task's own line, not json's internals.
        self.assert_one_error_line(
            r, r"%s:3: (json\.decoder\.)?JSONDecodeError: Expecting "
               r"property name" % re.escape(self.path("task.py")))

    def test_params_that_name_no_task_are_refused(self):
        cases = [
            ({"module": None}, r'name either "module" \(with "path"\) or '
                               r'"script"$'),
            ({"module": "nosuch"}, r"no module named 'nosuch' in %s$" %
             re.escape(self.tmp)),
            ({"module": 5}, r"params\.module: must be a non-empty string$"),
            ({"script": "task.py"}, r'name either "module" \(with "path"\) '
                                    r'or "script", not both$'),
            ({"module": None, "script": "gone.py"},
             r"params\.script: cannot read %s: No such file or directory$"
             % re.escape(self.path("gone.py"))),
        ]
        self.task("def work(worker, state):\n    pass\n")
        self.task("x = 1\n", name="nowork.py")
        for params, rx in cases:
            prm = dict(params)
            cfg = self.py_config()
            with open(cfg) as f:
                doc = json.load(f)
            doc["params"].update(prm)
            doc["params"] = {k: v for k, v in doc["params"].items()
                             if v is not None}
            with open(cfg, "w") as f:
                json.dump(doc, f)
            r = self.pm("check", cfg, check=2)
            self.assert_one_error_line(r, rx)
        r = self.pm("check", self.py_config(params={"module": "nowork"}),
                    check=2)
        self.assert_one_error_line(r, r"nowork\.py defines no "
                                      r"work\(worker, state\) function$")

    def test_restart_with_a_broken_module_keeps_the_old_workers(self):
        self.task('''
            from rec import rec

            def work(worker, state):
                rec(worker, "call")
            ''')
        cfg = self.py_config(maxWorkerNum=2)
        p = self.run_fg(cfg, workers=2)
        self.wait_events("call", 2, proc=p)
        before = sorted(self.workers())
        self.task('''
            from rec import rec

            def work(worker, state):
                rec(worker, "call"
            ''')

        r = self.pm("restart", "--title", self.title, check=2)

        self.assertRegex(r.stderr, r"%s:5: SyntaxError: '\(' was never "
                         r"closed" % re.escape(self.path("task.py")))
        self.assertEqual(sorted(self.workers()), before)
        # And they go on working.
        n = len(self.events("call"))
        self.wait_events("call", n + 4, proc=p)
        self.assertEqual({e["pid"] for e in self.events("call")},
                         set(before))
        self.stop(p)


class TestStop(PyTest):

    SLEEPER = '''
        import time, pmhost
        from time import sleep
        from rec import rec

        def work_init(worker):
            rec(worker, "init")
            return {}

        def work(worker, state):
            rec(worker, "sleeping")
            try:
                %s
            finally:
                rec(worker, "woken")

        def work_fini(worker, state):
            rec(worker, "fini")
        '''

    def stop_sleeping(self, call, workers=2):
        """Stops workers asleep in call; the time stop took."""
        self.task(self.SLEEPER % call)
        cfg = self.py_config(maxWorkerNum=workers, stopTimeout=30)
        p = self.run_fg(cfg, workers=workers)
        self.wait_events("sleeping", workers, proc=p)
        t0 = time.monotonic()
        self.pm("stop", "--title", self.title, check=0)
        took = time.monotonic() - t0
        self.assertEqual(self.wait_exit(p), 0)
        self.assertNotIn("SIGKILL", self.output(p))
        return took, p

    def test_stop_ends_time_sleep_at_once_and_runs_work_fini(self):
        took, p = self.stop_sleeping("time.sleep(60)")
        self.assertLess(took, 2 * SLOW, "stop took %.1f s" % took)
        self.assertEqual(len(self.events("woken")), 2)
        self.assertEqual(len(self.events("fini")), 2)
        for x in self.exits(p):
            self.assertRegex(x["reason"], r"^stopped after 1 call,")
        # Not an error: the call ended because of the stop.
        self.assertEqual(self.log_lines(p, "error"), [])

    def test_a_sleep_imported_by_name_is_ended_too(self):
        took, _ = self.stop_sleeping("sleep(60)", workers=1)
        self.assertLess(took, 2 * SLOW, "stop took %.1f s" % took)
        self.assertEqual(len(self.events("fini")), 1)

    def test_pmhost_sleep_returns_false_at_a_stop(self):
        took, _ = self.stop_sleeping(
            "rec(worker, 'slept', pmhost.sleep(60))", workers=1)
        self.assertLess(took, 2 * SLOW, "stop took %.1f s" % took)
        self.assertEqual(self.extras("slept"), [False])

    def test_stop_during_work_init_sleep_skips_work_fini(self):
        self.task('''
            import time
            from rec import rec

            def work_init(worker):
                rec(worker, "init")
                time.sleep(60)

            def work(worker, state):
                rec(worker, "call")

            def work_fini(worker, state):
                rec(worker, "fini")
            ''')
        p = self.run_fg(self.py_config(maxWorkerNum=1, stopTimeout=30))
        self.wait_events("init", 1, proc=p)
        t0 = time.monotonic()
        self.pm("stop", "--title", self.title, check=0)
        took = time.monotonic() - t0
        self.assertEqual(self.wait_exit(p), 0)
        self.assertLess(took, 2 * SLOW, "stop took %.1f s" % took)
        # It never got ready: no call, nothing to finish.
        self.assertEqual(self.events("call"), [])
        self.assertEqual(self.events("fini"), [])
        self.assertNotIn("SIGKILL", self.output(p))

    def test_limit_seconds_ends_a_sleeping_call(self):
        self.task(self.SLEEPER % "time.sleep(60)")
        cfg = self.py_config(maxWorkerNum=1, limitSeconds=1)
        p = self.run_fg(cfg)
        ex = self.wait_exits(p, 1, timeout=10)
        self.stop(p)
        self.assertRegex(ex[0]["reason"], r"^reached limitSeconds after 1 "
                         r"call,")
        self.assertGreaterEqual(len(self.events("fini")), 1)


class TestPreload(PyTest):

    TASK = '''
        import os, random, time
        from rec import rec

        IMPORTED_IN = os.getpid()

        def work_init(worker):
            rec(worker, "init", {"imported_in": IMPORTED_IN,
                                 "random": random.random()})

        def work(worker, state):
            rec(worker, "call")
            time.sleep(60)

        def work_fini(worker, state):
            rec(worker, "fini")
        '''

    def run_task(self, preload):
        self.task(self.TASK)
        keys = {"preload": True} if preload else {}
        cfg = self.py_config(maxWorkerNum=3, stopTimeout=30, **keys)
        # Whose children the workers are is the host's business: count
        # the calls they made.
        p = self.run_fg(cfg)
        self.wait_events("call", 3, proc=p)
        self.pm("stop", "--title", self.title, check=0)
        self.assertEqual(self.wait_exit(p), 0)
        self.assertEqual(len(self.events("fini")), 3)
        inits = self.extras("init")
        self.assertEqual(len({x["random"] for x in inits}), 3)
        return [e["pid"] for e in self.events("init")], \
            [x["imported_in"] for x in inits]

    def test_without_preload_each_worker_imports_the_task(self):
        pids, imported = self.run_task(False)
        self.assertEqual(pids, imported)

    def test_with_preload_the_task_is_imported_once(self):
        pids, imported = self.run_task(True)
        self.assertEqual(len(set(imported)), 1)
        self.assertNotIn(imported[0], pids)


@unittest.skipUnless(os.path.exists(PRELOAD_CLONE),
                     "preload_clone not built")
class TestPreloadClones(PyTest):
    """The preload path on its own: work_preload() once, workers cloned
    with _Fork() (no atfork handlers), as the host's preload does."""

    def test_cloned_workers_share_the_import_and_work(self):
        self.task('''
            import logging, os, random, threading, time
            from rec import rec

            IMPORTED_IN = os.getpid()
            log = logging.getLogger("pre")

            def work_init(worker):
                out = []
                t = threading.Thread(target=lambda: out.append(os.getpid()))
                t.start()
                t.join()
                rec(worker, "init", {"imported_in": IMPORTED_IN,
                                     "thread_pid": out[0],
                                     "random": random.random()})
                log.info("init slot %d", worker.slot)

            def work(worker, state):
                rec(worker, "call")
                if worker.slot == 0:
                    time.sleep(60)

            def work_fini(worker, state):
                rec(worker, "fini")
            ''')
        params = json.dumps({"module": "task", "record": self.path("events")})
        p = self.spawn([PRELOAD_CLONE, PY_PLUGIN, params, self.tmp, "3", "2"])
        sleeper = self.wait_for(
            lambda: [e["pid"] for e in self.events("call")
                     if e["slot"] == 0], "slot 0 asleep", proc=p)[0]
        t0 = time.monotonic()
        os.kill(sleeper, signal.SIGTERM)
        self.assertEqual(self.wait_exit(p), 0)
        took = time.monotonic() - t0
        out = self.output(p)

        self.assertIn("preload 0\n", out)
        self.assertEqual(len(re.findall(r"^worker \d \d+ exit 0 forked \d+$",
                                        out, re.M)), 3, out)
        inits = self.events("init")
        pids = {e["pid"] for e in inits}
        extras = [json.loads(e["extra"]) for e in inits]
        self.assertEqual(len(pids), 3)
        self.assertEqual({x["imported_in"] for x in extras}, {p.pid})
        self.assertEqual([x["thread_pid"] for x in extras],
                         [e["pid"] for e in inits])
        self.assertEqual(len({x["random"] for x in extras}), 3)
        self.assertEqual(len(self.events("fini")), 3)
        self.assertLess(took, 5 * SLOW)
        self.assertEqual(len(re.findall(r"^info slot \d pid \d+: pre: "
                                        r"init slot \d$", out, re.M)), 3,
                         out)


class TestExample(PyTest):

    def test_the_example_consumer_handles_every_job_once(self):
        for f in ("consumer.py", "enqueue.py"):
            shutil.copy(os.path.join(EXAMPLES, f), self.path(f))
        texts = ["job %d" % i for i in range(40)]
        subprocess.run([DEBIAN_PYTHON, self.path("enqueue.py"),
                        self.path("queue.db")] + texts, check=True,
                       timeout=30 * SLOW, stdout=subprocess.DEVNULL)
        with open(os.path.join(EXAMPLES, "consumer.json.in")) as f:
            doc = json.loads(f.read().replace("@PLUGIN@", PY_PLUGIN))
        doc["baseTitle"] = self.title
        doc["executeUSleep"] = 20000
        doc["params"]["batch"] = 3
        cfg = self.write("consumer.json", json.dumps(doc))
        p = self.run_fg(cfg, workers=2)

        def done():
            db = sqlite3.connect(self.path("queue.db"), timeout=10)
            try:
                return db.execute("SELECT payload, result, worker FROM jobs "
                                  "WHERE state = 'done'").fetchall()
            finally:
                db.close()
        self.wait_for(lambda: len(done()) == 40, "40 jobs done", proc=p)
        self.stop(p)
        rows = done()
        self.assertEqual(sorted(r[0] for r in rows), sorted(texts))
        for payload, result, _ in rows:
            self.assertEqual(result,
                             hashlib.sha256(payload.encode()).hexdigest())


if __name__ == "__main__":
    harness.main()
