"""pmhost restart (and SIGHUP): the in-place reload.

A restart re-reads the master's config file, checks it and the plugin,
starts one canary worker, then replaces each slot's worker once its
replacement has finished work_init.  These tests check what a user sees:
the exit code and message, the pids before and after, the generation in
status, what each plugin version recorded, and that the task keeps live
workers throughout.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import harness
from harness import SLOW, alive, proc_cmdline, proc_stat

# A small plugin built at test time, in two versions, to deploy a rebuilt
# .so.  It writes recorder.c's event lines ("EVENT SLOT PID CALLS MONO_NS
# [EXTRA]"), its VERSION on init lines.  params: record (path), sleep_ms
# (each call), fail_slot (work_init fails in that slot) and fail_once (a
# marker path: fail only while it does not exist, creating it).
VERSIONED_PLUGIN = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pmhost.h>

PMHOST_PLUGIN;

static long
num_param(const char *j, const char *key, long def)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(j, pat)) == NULL)
		return def;
	return strtol(p + strlen(pat), NULL, 10);
}

static void
str_param(const char *j, const char *key, char *buf, size_t size)
{
	char pat[64];
	const char *p;
	size_t n;

	buf[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	if ((p = strstr(j, pat)) == NULL)
		return;
	p += strlen(pat);
	n = strcspn(p, "\"");
	if (n >= size)
		n = size - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts) != 0)
		;
}

static void
record(pm_worker *w, const char *event, const char *extra)
{
	char path[4096], line[512];
	struct timespec ts;
	int fd, n;

	str_param(pm_worker_params(w), "record", path, sizeof(path));
	if (path[0] == '\0')
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%s %d %ld %llu %lld%s%s\n", event,
	    pm_worker_slot(w), (long)getpid(),
	    (unsigned long long)pm_worker_calls(w),
	    (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
	    extra[0] ? " " : "", extra);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		abort();
	close(fd);
}

int
work_init(pm_worker *w, void **state)
{
	const char *j = pm_worker_params(w);
	char marker[4096];

	*state = NULL;
	sleep_ms(INIT_SLEEP_MS);
	record(w, "init", VERSION);
	if (pm_worker_slot(w) == num_param(j, "fail_slot", -1)) {
		str_param(j, "fail_once", marker, sizeof(marker));
		if (marker[0] == '\0')
			return -1;
		if (access(marker, F_OK) != 0) {
			close(open(marker, O_WRONLY | O_CREAT, 0644));
			return -1;
		}
	}
	return 0;
}

int
work(pm_worker *w, void *state)
{
	(void)state;
	record(w, "call", "");
	sleep_ms(num_param(pm_worker_params(w), "sleep_ms", 0));
	return PM_CONTINUE;
}

void
work_fini(pm_worker *w, void *state)
{
	(void)state;
	record(w, "fini", "");
}
"""


# -- helpers (this suite's own) ---------------------------------------------

# Worker states in status of a process past work_init and not yet leaving.
READY = ("held", "idle", "busy", "stopping")


class RestartTest(harness.PmTest):

    @classmethod
    def setUpClass(cls):
        cls.built = None
        cls.build_error = None
        cc = shutil.which("cc")
        if cc is None:
            return
        cls.build_dir = tempfile.mkdtemp(prefix="pmhost-restart-so-")
        src = os.path.join(cls.build_dir, "versioned.c")
        with open(src, "w") as f:
            f.write(VERSIONED_PLUGIN)
        built = {}
        for name, defs in (("v1", ['-DVERSION="v1"', "-DINIT_SLEEP_MS=0"]),
                           ("v2", ['-DVERSION="v2"',
                                   "-DINIT_SLEEP_MS=300"])):
            out = os.path.join(cls.build_dir, name + ".so")
            r = subprocess.run([cc, "-shared", "-fPIC", "-I",
                                os.path.join(harness.SOURCE, "include")] +
                               defs + ["-o", out, src],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                cls.build_error = r.stderr
                return
            built[name] = out
        cls.built = built

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "build_dir", None):
            shutil.rmtree(cls.build_dir, ignore_errors=True)

    def versioned(self, version):
        """Path of the built plugin version, or skip without a compiler."""
        if self.build_error:
            self.fail("cannot build the test plugin:\n" + self.build_error)
        if not self.built:
            self.skipTest("no C compiler (cc) to build a plugin version")
        return self.built[version]

    def install(self, version, path):
        """Replaces path atomically with a plugin version, as a deploy
        does: write a new file, rename it over the old one."""
        tmp = path + ".new"
        shutil.copyfile(self.versioned(version), tmp)
        os.rename(tmp, path)

    # -- status -----------------------------------------------------------

    def start_master(self, cfg, workers):
        p = self.run_fg(cfg, workers=workers)
        self.wait_master(p)
        return p

    def init_tag(self, pid):
        tags = [e["extra"] for e in self.events("init") if e["pid"] == pid]
        return tags[0] if len(tags) == 1 else tags

    def assert_untouched(self, before, mpid):
        """The master and its workers are those of before, generation 1."""
        m = self.master_json()
        self.assertEqual(m["pid"], mpid)
        self.assertEqual(m["generation"], 1)
        self.assertEqual(m["state"], "running")
        self.assertEqual({w["slot"]: w["pid"] for w in m["workers"]
                          if w["pid"]}, before)
        self.assertEqual(sorted(before.values()), self.workers())
        for w in m["workers"]:
            self.assertEqual(w["generation"], 1, w)
        fini = {e["pid"] for e in self.events("fini")}
        self.assertFalse(fini & set(before.values()), "old workers stopped")

    # -- a good restart -------------------------------------------------

    def test_rebuilt_plugin_replaces_every_worker_without_a_gap(self):
        so = self.path("task.so")
        self.install("v1", so)
        cfg = self.config(plugin=so, maxWorkerNum=2, executeTimes=0,
                          executeUSleep=20000,
                          params={"record": self.path("events"),
                                  "sleep_ms": 30})
        p = self.start_master(cfg, workers=2)
        mpid = self.master_pid()
        before = self.slot_pids()
        self.assertEqual(sorted(before), [0, 1])
        for pid in before.values():
            self.assertEqual(self.init_tag(pid), "v1")
        self.assertEqual(self.master_json()["generation"], 1)

        self.install("v2", so)
        samples = []        # (monotonic, live worker processes)
        json_samples = []   # (monotonic, initialised workers in status)
        done = threading.Event()

        def sample_proc():
            while not done.is_set():
                samples.append((time.monotonic(), len(self.workers())))
                time.sleep(0.002)

        def sample_status():
            while not done.is_set():
                r = self.pm("status", "--title", self.title, "--json")
                if r.returncode == 0:
                    m = json.loads(r.stdout)["masters"][0]
                    # Past work_init: ready (held), working, or
                    # finishing the call it was in when asked to leave.
                    json_samples.append((time.monotonic(), len(
                        [w for w in m["workers"] if w["pid"] and
                         w["state"] in READY])))
                time.sleep(0.002)
        threads = [threading.Thread(target=sample_proc),
                   threading.Thread(target=sample_status)]
        for t in threads:
            t.start()
        try:
            self.wait_for(lambda: len(samples) > 3 and len(json_samples) > 3,
                          "samplers running")
            t0 = time.monotonic()
            r = self.pm("restart", "--title", self.title)

            def settled():
                # Every worker of the new generation past work_init.
                m = self.master_json()
                return (m["generation"] == 2 and len(m["workers"]) == 2 and
                        all(w["generation"] == 2 and
                            w["state"] in ("idle", "busy")
                            for w in m["workers"]))
            self.wait_for(settled, "generation 2 settled", proc=p)
            t1 = time.monotonic()
            self.wait_for(lambda: samples[-1][0] > t1 and
                          json_samples[-1][0] > t1, "samples after")
        finally:
            done.set()
            for t in threads:
                t.join(10 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)

        self.assertGreaterEqual(min(n for _, n in samples), 1,
                                "a moment without live worker processes")
        self.assertGreaterEqual(min(n for _, n in json_samples), 1,
                                "status showed no initialised worker")
        during = [n for t, n in json_samples if t0 <= t <= t1]
        self.assertGreater(len(during), 2, "the rollout was not sampled")

        m = self.master_json()
        self.assertEqual(m["pid"], mpid)
        self.assertEqual(p.poll(), None)
        self.assertEqual(m["generation"], 2)
        self.assertEqual(m["count"], 2)
        after = {w["slot"]: w["pid"] for w in m["workers"]}
        self.assertEqual(sorted(after), [0, 1])
        self.assertFalse(set(after.values()) & set(before.values()))
        self.assertEqual(sorted(after.values()), self.workers())
        for w in m["workers"]:
            self.assertEqual(w["generation"], 2)
            self.assertEqual(self.init_tag(w["pid"]), "v2")
        self.wait_gone(before.values(), "old workers gone")
        fini = {e["pid"] for e in self.events("fini")}
        self.assertTrue(set(before.values()) <= fini, "old ones ran fini")

    def test_restart_applies_a_new_worker_count(self):
        cfg = self.resident(maxWorkerNum=2, params={"tag": "v1"})
        self.start_master(cfg, workers=2)
        mpid = self.master_pid()
        self.resident(maxWorkerNum=3, params={"tag": "v2"})
        r = self.pm("restart", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)

        def three():
            m = self.master_json()
            live = [w for w in m["workers"] if w["pid"]]
            return (len(live) == 3 and len(self.workers()) == 3 and
                    all(self.init_tag(w["pid"]) == "v2" for w in live) and m)
        m = self.wait_for(three, "3 workers of the new config")
        self.assertEqual(m["pid"], mpid)
        self.assertEqual((m["count"], m["target"], m["generation"]),
                         (3, 3, 2))
        self.assertEqual(sorted(w["slot"] for w in m["workers"]), [0, 1, 2])

    def test_slot_calls_never_overlap_during_restart(self):
        # Each call takes 200 ms: an overlap would be wide and plain.
        cfg = self.resident(maxWorkerNum=2, executeUSleep=0,
                            params={"tag": "v1", "sleep_ms": 200})
        self.start_master(cfg, workers=2)
        self.wait_events("call", 2)
        self.resident(maxWorkerNum=2, executeUSleep=0,
                      params={"tag": "v2", "sleep_ms": 200})
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.slot_pids()
        self.wait_for(lambda: {e["pid"] for e in self.events("call")} >=
                      set(after.values()), "calls by the new workers")

        ev = self.events()
        for slot in (0, 1):
            inits = [e for e in ev if e["event"] == "init" and
                     e["slot"] == slot]
            old = [e["pid"] for e in inits if e["extra"] == "v1"]
            new = [e["pid"] for e in inits if e["extra"] == "v2"]
            self.assertEqual(len(old), 1, inits)
            self.assertEqual(new, [after[slot]], inits)
            old, new = old[0], new[0]

            def of(pid, kind):
                return [e["t"] for e in ev if e["pid"] == pid and
                        e["event"] == kind]
            old_fini = of(old, "fini")
            self.assertEqual(len(old_fini), 1, "slot %d: old fini" % slot)
            old_fini = old_fini[0]
            self.assertTrue(all(t < old_fini for t in of(old, "call")))
            # The replacement ran work_init while the old one still worked,
            self.assertLess(of(new, "init")[0], old_fini,
                            "slot %d: replacement initialised late" % slot)
            # and called work() only once the old one had finished.
            self.assertGreater(min(of(new, "call")), old_fini,
                               "slot %d: calls of two workers overlap" % slot)

    def test_sighup_reloads_a_changed_config(self):
        cfg = self.resident(maxWorkerNum=2, params={"tag": "v1"})
        p = self.start_master(cfg, workers=2)
        mpid = self.master_pid()
        before = self.slot_pids()
        self.resident(maxWorkerNum=2, params={"tag": "v2"})
        os.kill(mpid, signal.SIGHUP)

        def reloaded():
            m = self.master_json()
            live = [w for w in m["workers"] if w["pid"]]
            return (m["generation"] == 2 and m["state"] == "running" and
                    len(live) == 2 and
                    all(self.init_tag(w["pid"]) == "v2" for w in live) and m)
        m = self.wait_for(reloaded, "generation 2 running v2", proc=p)
        self.assertEqual(m["pid"], mpid)
        self.assertFalse({w["pid"] for w in m["workers"]} &
                         set(before.values()))
        self.wait_gone(before.values(), "old workers gone")
        self.wait_text(p, r"restart done: generation 2")

    # -- refused restarts -------------------------------------------------

    def test_broken_config_is_refused_and_workers_untouched(self):
        cfg = self.resident(maxWorkerNum=2)
        self.start_master(cfg, workers=2)
        mpid, before = self.master_pid(), self.slot_pids()
        self.resident(maxWorkerNum="four")
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("maxWorkerNum", r.stderr)
        self.assertTrue(r.stderr.startswith("pmhost:"), r.stderr)
        self.assert_untouched(before, mpid)
        # A JSON syntax error too.
        with open(cfg, "w") as f:
            f.write('{"plugin": "x.so",\n "baseTitle": ')
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(cfg, r.stderr)
        self.assert_untouched(before, mpid)

    def test_plugin_without_work_is_refused_and_workers_untouched(self):
        cfg = self.resident(maxWorkerNum=2)
        self.start_master(cfg, workers=2)
        mpid, before = self.master_pid(), self.slot_pids()
        self.config(plugin_name="nowork", maxWorkerNum=2, executeTimes=0,
                    params={"record": self.path("events")})
        r = self.pm("restart", cfg)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("nowork.so", r.stderr)
        self.assertIn("work", r.stderr)
        self.assert_untouched(before, mpid)

    def test_canary_init_failure_keeps_the_old_workers(self):
        cfg = self.resident(maxWorkerNum=2, params={"tag": "v1"})
        p = self.start_master(cfg, workers=2)
        mpid, before = self.master_pid(), self.slot_pids()
        self.resident(maxWorkerNum=2, params={"tag": "v2", "init_fail": 1})
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("canary", r.stderr)
        self.assertTrue(r.stderr.startswith("pmhost:"), r.stderr)
        # One canary tried, in slot 0, and no other new worker.
        tried = [e for e in self.events("init") if e["extra"] == "v2"]
        self.assertEqual([e["slot"] for e in tried], [0], tried)
        self.assertFalse(alive(tried[0]["pid"]))
        self.assert_untouched(before, mpid)
        # Once fixed, the next restart goes through.
        self.resident(maxWorkerNum=2, params={"tag": "v3"})
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.master_json()
        self.assertEqual(m["generation"], 2)
        for w in m["workers"]:
            self.assertEqual(self.init_tag(w["pid"]), "v3")

    def test_replacement_failing_init_after_the_canary_leaves_no_slot_empty(
            self):
        # Slot 1's first new worker fails work_init once; a respawn works.
        # The old workers are in 300 ms calls, so the failed replacement
        # is gone well before its predecessor finishes.
        so = self.path("task.so")
        self.install("v1", so)
        keys = dict(plugin=so, maxWorkerNum=2, executeTimes=0,
                    executeUSleep=20000)
        cfg = self.config(params={"record": self.path("events"),
                                  "sleep_ms": 300}, **keys)
        p = self.start_master(cfg, workers=2)
        self.wait_events("call", 2, proc=p)
        self.config(params={"record": self.path("events"), "sleep_ms": 300,
                            "fail_slot": 1,
                            "fail_once": self.path("failed-once")}, **keys)
        r = self.pm("restart", "--title", self.title)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        self.assertTrue(os.path.exists(self.path("failed-once")),
                        "slot 1's replacement did not fail as planned")

        def two_live():
            m = self.master_json()
            live = [w for w in m["workers"] if w["pid"] and alive(w["pid"])
                    and w["state"] in ("idle", "busy")]
            return len(live) == 2 and m
        # checkWorkerInterval is 300 s: the respawn policy must act.
        m = self.wait_for(two_live, "both slots with a live worker again",
                          timeout=4, proc=p)
        self.assertEqual(sorted(w["slot"] for w in m["workers"]), [0, 1])

    def test_restart_of_a_title_not_running_exits_1(self):
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pmhost: %s: not running" % self.title, r.stderr)
        self.assertEqual(self.masters(), [])

    def test_sighup_with_a_broken_config_keeps_the_workers(self):
        cfg = self.resident(maxWorkerNum=2)
        p = self.start_master(cfg, workers=2)
        mpid, before = self.master_pid(), self.slot_pids()
        self.resident(maxWorkerNum=0)
        os.kill(mpid, signal.SIGHUP)
        self.wait_text(p, r"restart failed: .*maxWorkerNum")
        self.assert_untouched(before, mpid)

    # -- restart of a task not running ------------------------------------

    def test_restart_of_a_config_not_running_starts_it_detached(self):
        cfg = self.resident(maxWorkerNum=2)
        r = self.pm("restart", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(self.pid_file()))
        mpid = self.master_pid()
        self.assertTrue(alive(mpid))
        self.assertEqual(proc_cmdline(mpid), "process_m:Master:" + self.title)
        # Detached: not a child of the command that started it.
        self.assertNotEqual(proc_stat(mpid)[1], os.getpid())
        self.assertNotEqual(os.getsid(mpid), os.getsid(0))
        self.wait_for(lambda: len(self.workers()) == 2, "2 workers")
        m = self.master_json()
        self.assertEqual((m["pid"], m["count"], m["generation"]), (mpid, 2, 1))
        self.assertEqual(self.pm("stop", "--title", self.title).returncode, 0)
        self.assertFalse(alive(mpid))

    # -- restarts that meet another command -------------------------------

    def test_second_restart_during_a_restart_is_refused(self):
        cfg = self.resident(maxWorkerNum=2, params={"tag": "v1"})
        self.start_master(cfg, workers=2)
        # The canary takes 1.5 s in work_init: time for a second restart.
        self.resident(maxWorkerNum=2, params={"tag": "v2",
                                              "init_sleep_ms": 1500})
        first = self.start("restart", "--title", self.title)
        self.wait_for(lambda: self.master_json()["state"] == "restarting",
                      "the master restarting", proc=first)
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("already in progress", r.stderr)
        self.assertEqual(self.wait_exit(first), 0, self.output(first))
        m = self.master_json()
        self.assertEqual(m["generation"], 2)
        self.assertEqual(m["state"], "running")
        for w in m["workers"]:
            self.assertEqual(self.init_tag(w["pid"]), "v2")

    def test_restart_while_stopping_is_refused(self):
        cfg = self.resident(maxWorkerNum=1, params={"fini_sleep_ms": 1500})
        self.start_master(cfg, workers=1)
        mpid = self.master_pid()
        stop = self.start("stop", "--title", self.title)
        self.wait_for(lambda: self.master_json()["state"] == "stopping",
                      "the master stopping", proc=stop)
        r = self.pm("restart", "--title", self.title)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("stopping", r.stderr)
        self.assertEqual(self.wait_exit(stop), 0, self.output(stop))
        self.assertFalse(alive(mpid))
        self.assertEqual(self.tagged_pids(), [])

    def test_stop_during_a_restart_ends_it_with_an_error(self):
        cfg = self.resident(maxWorkerNum=2, params={"tag": "v1"})
        self.start_master(cfg, workers=2)
        mpid = self.master_pid()
        self.resident(maxWorkerNum=2, params={"tag": "v2",
                                              "init_sleep_ms": 1500})
        restart = self.start("restart", "--title", self.title)
        self.wait_for(lambda: self.master_json()["state"] == "restarting",
                      "the master restarting", proc=restart)
        r = self.pm("stop", "--title", self.title)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_exit(restart), 1, self.output(restart))
        self.assertIn("stopping", self.output(restart))
        self.assertFalse(alive(mpid))
        self.wait_for(lambda: self.tagged_pids() == [], "nothing left")



class RestartKeepsTheCommandLine(harness.PmTest):
    """What `run` was told on its command line holds across restarts; a
    config's changed logFile takes effect."""

    def test_log_level_from_the_command_line_survives_a_restart(self):
        cfg = self.resident(maxWorkerNum=1, logLevel="warning")
        log = self.path("task.log")
        self.pm("run", "-d", cfg, "--log-level", "info", "--log-file", log,
                check=0)
        self.pm("restart", "--title", self.title, check=0)
        self.pm("stop", "--title", self.title, check=0)
        text = self.read(log)
        # Info lines of the master after the restart: the config's
        # "warning" did not take over from the command line's "info".
        after = text[text.index("restart done"):]
        self.assertRegex(after, r" info \S+:Master:%s\[\d+\]: stopping "
                         % self.title)
        self.assertRegex(after, r" info \S+:Master:%s\[\d+\]: stopped$"
                         % self.title)

    def test_log_file_from_the_command_line_survives_a_config_change(self):
        cfg = self.resident(maxWorkerNum=1, logFile="config.log")
        log = self.path("cli.log")
        self.pm("run", "-d", cfg, "--log-file", log, check=0)
        self.pm("restart", "--title", self.title, check=0)
        self.pm("stop", "--title", self.title, check=0)
        self.assertIn("restart done", self.read(log))
        self.assertIn(": stopped", self.read(log))
        self.assertFalse(os.path.exists(self.path("config.log")))

    def test_a_changed_log_file_takes_effect_on_restart(self):
        cfg = self.resident(maxWorkerNum=2, logFile="one.log",
                            params={"log": 1})
        self.pm("run", "-d", cfg, check=0)
        self.wait_text(self.path("one.log"), "recorder call")
        self.resident(maxWorkerNum=2, logFile="two.log", params={"log": 1})
        self.pm("restart", "--title", self.title, check=0)
        one = self.read(self.path("one.log"))
        self.assertIn("restart: the log moves to %s" % self.path("two.log"),
                      one)
        # The new workers' lines and the master's own go to the new file.
        self.wait_text(self.path("two.log"), "recorder call")
        self.pm("stop", "--title", self.title, check=0)
        two = self.read(self.path("two.log"))
        self.assertIn("restart done", two)
        self.assertRegex(two, r"restart: logging to %s \(was %s\)" % (
            re.escape(self.path("two.log")), re.escape(self.path("one.log"))))
        self.assertRegex(two, r":Master:%s\[\d+\]: stopped$" % self.title)
        self.assertNotIn(": stopped", self.read(self.path("one.log")))


if __name__ == "__main__":
    harness.main()
