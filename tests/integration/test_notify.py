"""systemd's notify protocol, against a fake NOTIFY_SOCKET.

A datagram socket stands in for the service manager (a path, or an
abstract "@name"); the suite checks which messages pmhost sends and in
what order: READY=1 once the workers are up, RELOADING=1 with
MONOTONIC_USEC and READY=1 again around a reload, STOPPING=1 on stop,
STATUS= lines, and WATCHDOG=1 at half of WATCHDOG_USEC.
"""

import os
import re
import signal
import socket
import time

import harness


class NotifyTest(harness.PmTest):

    def listen(self, abstract=False):
        """A fake manager; (its socket, NOTIFY_SOCKET value)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "@pmhost-test-%s" % self.test_id
            s.bind("\0" + name[1:])
        else:
            name = self.path("notify.sock")
            s.bind(name)
        self.addCleanup(s.close)
        return s, name

    def receive(self, s, pattern, timeout=10):
        """Messages until one matches pattern; the list, last the match."""
        got = []
        deadline = time.monotonic() + timeout * harness.SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no notify message matching %r; got %r" %
                          (pattern, got))
            s.settimeout(left)
            try:
                msg = s.recv(4096).decode()
            except socket.timeout:
                continue
            got.append(msg)
            if re.search(pattern, msg, re.M):
                return got

    def start_notified(self, sock_name, cfg, **env):
        e = dict(self.env, NOTIFY_SOCKET=sock_name, **env)
        return self.start("run", cfg, env=e)

    def test_ready_reloading_stopping_in_order(self):
        s, name = self.listen()
        cfg = self.resident(maxWorkerNum=2)
        p = self.start_notified(name, cfg)
        got = self.receive(s, r"^READY=1$")
        self.assertEqual(len(got), 1, "READY=1 must be the first message")
        self.assertRegex(got[0], r"(?m)^STATUS=2/2 workers", got[0])
        # By READY, the master holds its pid file and has forked its
        # workers (they may not have taken their own title yet).
        self.assertTrue(os.path.exists(self.pid_file()))
        self.assertEqual(len(harness.children(self.master_pid())), 2)

        os.kill(p.pid, signal.SIGHUP)
        got = self.receive(s, r"^RELOADING=1$")
        self.assertRegex(got[-1], r"(?m)^MONOTONIC_USEC=\d+$")
        usec = int(re.search(r"^MONOTONIC_USEC=(\d+)$", got[-1],
                             re.M).group(1))
        self.assertLessEqual(usec, time.monotonic_ns() // 1000)
        got = self.receive(s, r"^READY=1$")
        self.assertRegex(got[-1], r"generation 2")

        self.pm("stop", "--title", self.title, check=0)
        got = self.receive(s, r"^STOPPING=1$")
        self.assertEqual(self.wait_exit(p), 0)

    def test_abstract_socket_name(self):
        s, name = self.listen(abstract=True)
        self.start_notified(name, self.resident(maxWorkerNum=1))
        self.receive(s, r"^READY=1$")

    def test_watchdog_pings_at_half_the_interval(self):
        s, name = self.listen()
        p = self.start_notified(name, self.resident(maxWorkerNum=1),
                                WATCHDOG_USEC="200000")
        self.receive(s, r"^READY=1$")
        stamps = []
        for _ in range(4):
            self.receive(s, r"^WATCHDOG=1$", timeout=2)
            stamps.append(time.monotonic())
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        # Every 100 ms: never early, and far from busy.
        self.assertGreater(min(gaps), 0.08, gaps)
        self.assertLess(max(gaps), 0.1 + 0.4 * harness.SLOW, gaps)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p), 0)

    def test_watchdog_for_another_pid_is_ignored(self):
        s, name = self.listen()
        self.start_notified(name, self.resident(maxWorkerNum=1),
                            WATCHDOG_USEC="100000", WATCHDOG_PID="1")
        got = self.receive(s, r"^READY=1$")
        s.settimeout(0.5 * harness.SLOW)
        with self.assertRaises(socket.timeout):
            got.append(s.recv(4096).decode())
            # Anything else but a WATCHDOG would also be unexpected.
            self.fail("unexpected message %r" % got[-1])

    def test_detached_master_does_not_notify(self):
        # run -d: the detached master is not the manager's main process.
        s2, name2 = self.listen(abstract=True)
        cfg2 = self.resident(name="d.json", baseTitle=self.title + "_d")
        self.pm("run", "-d", cfg2, check=0,
                env=dict(self.env, NOTIFY_SOCKET=name2))
        s2.settimeout(0.5 * harness.SLOW)
        with self.assertRaises(socket.timeout):
            s2.recv(4096)

    def test_group_of_tasks_is_ready_once_every_master_is(self):
        s, name = self.listen()
        cfg = self.config(executeTimes=0, executeUSleep=100000,
                          maxWorkerNum=1,
                          tasks=[{"baseTitle": self.title + "_a"},
                                 {"baseTitle": self.title + "_b"}])
        p = self.start_notified(name, cfg)
        got = self.receive(s, r"^READY=1$")
        self.assertEqual(len(got), 1, got)
        self.assertRegex(got[0], r"STATUS=2 of 2 tasks running")
        for t in ("_a", "_b"):
            master = self.master_pid(self.title + t)
            self.assertEqual(len(harness.children(master)), 1)
        p.send_signal(signal.SIGTERM)
        self.receive(s, r"^STOPPING=1$")
        self.assertEqual(self.wait_exit(p), 0)


if __name__ == "__main__":
    harness.main()
