#!/usr/bin/env python3
"""Reliability of what runs and who may talk to the master: the plugin
code pinned at run and restart (a file renamed over, truncated or
deleted changes nothing until a restart checks it), idle or leaked
control connections that never lock out status or stop, and recycle
jitter that spreads the lives of workers started together."""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import time

import harness
from harness import NOBODY, alive, plugin


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class PinTest(harness.PmTest):
    """A task whose plugin is a file of its own (task.so), so that the
    test can replace, truncate or delete it under the running task."""

    def setUp(self):
        super().setUp()
        self.so = self.path("task.so")
        shutil.copyfile(plugin("recorder"), self.so)

    def task(self, **keys):
        keys.setdefault("maxWorkerNum", 2)
        keys.setdefault("executeTimes", 1)
        keys.setdefault("executeUSleep", 20000)
        cfg = {"plugin": "task.so", "baseTitle": self.title,
               "params": {"record": self.path("events")}}
        cfg.update(keys)
        return self.write("task.json", json.dumps(cfg))

    def replace_plugin(self, source):
        """What a deploy does: a new file renamed over the old path."""
        tmp = self.path("task.so.new")
        shutil.copyfile(source, tmp)
        os.rename(tmp, self.so)

    def copies(self):
        d = os.path.join(self.rundir, "plugins")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def inits(self):
        return len(self.events("init"))

    def test_status_shows_the_pinned_copy_and_its_hash(self):
        p = self.run_fg(self.task())
        self.wait_master(p)
        m = self.master_json()
        self.assertEqual(m["plugin"], self.so)
        self.assertEqual(m["plugin_sha256"], sha256(self.so))
        copy = m["plugin_copy"]
        self.assertEqual(os.path.dirname(copy),
                         os.path.join(self.rundir, "plugins"))
        self.assertEqual(os.path.basename(copy), "%s-%s.so" %
                         (self.title, m["plugin_sha256"][:16]))
        self.assertEqual(sha256(copy), m["plugin_sha256"])
        # A person reading the maps of a worker sees the copy's path
        # (workers live one call here: read one that is still there).
        def maps_show_copy():
            for pid in self.slot_pids().values():
                try:
                    with open("/proc/%d/maps" % pid) as f:
                        if copy in f.read():
                            return True
                except OSError:
                    pass
            return False
        self.wait_for(maps_show_copy, "a worker mapping %s" % copy)
        self.stop_fg(p)
        self.assertEqual(self.copies(), [])

    def test_a_plugin_renamed_over_reaches_workers_only_through_restart(self):
        p = self.run_fg(self.task())
        self.wait_master(p)
        old = sha256(self.so)
        # hello.so writes no events: recorder's events keep coming only
        # while the respawned workers run the pinned recorder.
        self.replace_plugin(os.path.join(harness.BUILD, "plugins", "hello",
                                         "hello.so"))
        n = self.inits()
        self.wait_events("init", n + 10, proc=p)
        self.assertNotIn("hello from slot", self.output(p))
        self.assertEqual(self.master_json()["plugin_sha256"], old)

        r = self.pm("restart", "--title", self.title, check=0)
        self.assertIn("restarted", r.stdout)
        new = sha256(self.so)
        self.wait_text(p, r"restart: plugin %s sha256 %s -> %s" %
                       (re.escape(self.so), old[:16], new[:16]))
        self.wait_text(p, r"hello from slot")
        self.assertEqual(self.master_json()["plugin_sha256"], new)
        # The old copy went with its generation.
        self.assertEqual(self.copies(), ["%s-%s.so" % (self.title,
                                                       new[:16])])
        self.stop_fg(p)

    def test_truncating_or_deleting_the_plugin_kills_nothing(self):
        p = self.run_fg(self.task())
        self.wait_master(p)
        with open(self.so, "w"):
            pass                    # truncated in place, as cp or ld do
        n = self.inits()
        self.wait_events("init", n + 10, proc=p)
        os.unlink(self.so)
        n = self.inits()
        self.wait_events("init", n + 10, proc=p)
        for w in self.master_json()["workers"]:
            self.assertEqual(w["failures_total"], 0, w)
        self.stop_fg(p)

    def test_restart_with_a_broken_file_keeps_the_running_code(self):
        p = self.run_fg(self.task())
        self.wait_master(p)
        old = sha256(self.so)
        self.write("task.so.new", b"\x7fELF but not really")
        os.rename(self.path("task.so.new"), self.so)

        r = self.pm("restart", "--title", self.title)

        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not an ELF file", r.stderr)
        n = self.inits()
        self.wait_events("init", n + 6, proc=p)
        self.assertEqual(self.master_json()["plugin_sha256"], old)
        self.assertEqual(self.copies(), ["%s-%s.so" % (self.title, old[:16])])
        self.stop_fg(p)

    def test_a_worker_of_another_user_loads_the_copy(self):
        # The run dir is root's (mode 0700): the worker reaches the copy
        # through the descriptor it inherits, then keeps none of it.
        os.chmod(self.tmp, 0o755)
        os.chmod(self.so, 0o644)
        cfg = self.task(user="nobody", executeTimes=0, maxWorkerNum=1,
                        params={})
        r = self.pm("run", cfg, "-d", check=0)
        self.assertIn("started", r.stdout)
        pid = self.wait_for(lambda: self.slot_pids().get(0), "a worker")
        self.assertEqual(os.stat("/proc/%d" % pid).st_uid, NOBODY)
        copy = self.master_json()["plugin_copy"]
        with open("/proc/%d/maps" % pid) as f:
            self.assertIn(copy, f.read())
        self.assertEqual(sorted(os.listdir("/proc/%d/fd" % pid)),
                         ["0", "1", "2"])
        self.pm("stop", "--title", self.title, check=0)


class LockoutTest(harness.PmTest):

    def idle_clients(self, n):
        """n connections to the master's socket that never send a byte."""
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        path = os.path.join(self.rundir, self.title + ".sock")
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except BlockingIOError:
                pass                # in the backlog, not yet accepted
            held.append(s)
        return held

    def test_a_thousand_idle_connections_lock_out_neither_status_nor_stop(self):
        p = self.run_fg(self.resident(maxWorkerNum=2), workers=2)
        self.wait_master(p)
        mpid = self.master_pid()
        base = fd_count(mpid)
        held = self.idle_clients(1000)

        t = time.monotonic()
        r = self.pm("status", "--title", self.title, "--json", check=0)
        self.assertLess(time.monotonic() - t, 3 * harness.SLOW)
        self.assertEqual(json.loads(r.stdout)["masters"][0]["pid"], mpid)
        # The client table is bounded: the idle ones were let go.
        self.assertLessEqual(fd_count(mpid), base + 64 + 1)
        for s in held:
            s.close()
        self.wait_for(lambda: fd_count(mpid) == base,
                      "the master's descriptors back to %d" % base)

        self.idle_clients(1000)
        r = self.pm("stop", "--title", self.title, check=0)
        self.assertRegex(r.stdout, r"stopped \(2 workers")
        self.assertEqual(self.wait_exit(p), 0)

    def test_stop_signals_a_master_whose_socket_does_not_answer(self):
        p = self.run_fg(self.resident(maxWorkerNum=1), workers=1)
        self.wait_master(p)
        mpid = self.master_pid()
        os.kill(mpid, signal.SIGSTOP)
        self.addCleanup(lambda: alive(mpid) and os.kill(mpid, signal.SIGCONT))
        stop = self.start("stop", "--title", self.title)
        # After the request's own deadline, the fallback: SIGTERM.
        self.wait_text(stop, r"did not serve .*; sent SIGTERM to the "
                       r"master \(pid %d\)" % mpid, timeout=15)
        os.kill(mpid, signal.SIGCONT)
        self.assertEqual(self.wait_exit(stop, timeout=20), 0,
                         self.output(stop))
        self.assertEqual(self.wait_exit(p), 0)


class JitterTest(harness.PmTest):

    def test_execute_times_jitter_spreads_worker_lives(self):
        cfg = self.record_config(maxWorkerNum=4, executeTimes=3,
                                 executeTimesJitter=12, executeUSleep=1000)
        p = self.run_fg(cfg)
        finis = self.wait_events("fini", 24, proc=p, timeout=20)
        lives = [e["calls"] for e in finis]
        # Each life drew its own limit from [3, 15].
        self.assertTrue(all(3 <= n <= 15 for n in lives), lives)
        self.assertGreater(len(set(lives)), 3, lives)
        for w in self.master_json()["workers"]:
            if w["pid"]:
                self.assertTrue(3 <= w["execute_times"] <= 15, w)
        self.stop_fg(p)

    def test_limit_seconds_jitter_is_drawn_per_worker(self):
        cfg = self.resident(maxWorkerNum=8, limitSeconds=1000,
                            limitSecondsJitter=1000)
        p = self.run_fg(cfg, workers=8)
        self.wait_master(p)
        drawn = [w["limit_seconds"] for w in self.master_json()["workers"]]
        self.assertTrue(all(1000 <= s <= 2000 for s in drawn), drawn)
        self.assertGreater(len(set(drawn)), 1, drawn)
        self.stop_fg(p)

    def test_without_jitter_every_life_has_the_configured_limit(self):
        cfg = self.resident(maxWorkerNum=2, limitSeconds=1000)
        p = self.run_fg(cfg, workers=2)
        self.wait_master(p)
        for w in self.master_json()["workers"]:
            self.assertEqual((w["limit_seconds"], w["execute_times"]),
                             (1000, None), w)
        self.stop_fg(p)

    def test_check_refuses_a_bad_jitter(self):
        for key, bad in (("executeTimesJitter", -1),
                         ("limitSecondsJitter", "5"),
                         ("limitSecondsJitter", 10 ** 10)):
            with self.subTest(key=key, value=bad):
                cfg = self.record_config(**{key: bad})
                r = self.pm("check", cfg, check=2)
                self.assert_one_error_line(r, r"%s: must be an integer" %
                                           key)


if __name__ == "__main__":
    harness.main()
