"""Observability: what an operator reads about a running task.

- Per-call figures in status: a paced worker times every call (its
  histogram counts each call, its p50 lies in the bucket of its sleep); a
  hot one times a sample weighted by its stride (its histogram counts about
  every call); failed calls are counted; slot and task totals never go
  backwards, whether workers live one call (executeTimes 1) or a
  scale-down removes slots; exits are counted by reason.
- Prometheus: promtool accepts `status --format prometheus` and the
  exporter's /metrics, and every metric the docs list is there with its
  labels; a real Prometheus server scrapes the exporter and answers
  queries on counters and on the call-time histogram.
- The exporter: only GET of / and /metrics, bounded request size, time and
  connections, slow clients and hung masters hold up nobody, masters come
  and go (a SIGKILLed one is pmhost_up 0), loopback by default.
- pmhost top in a real terminal (tmux): slots and pids as status says,
  sort keys, task switching, q restores the terminal; -b -n N frames.
- Logs: logFormat json (every line a JSON object, worker lines with their
  slot, plugin output and pm_log included, invalid UTF-8 included),
  --log-format overriding the config, journald's <N> prefixes.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOW = harness.SLOW
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
TMUX = "/usr/bin/tmux"
EXEC_SO = os.path.join(harness.BUILD, "plugins", "exec", "exec.so")
DASHBOARD = os.path.join(harness.SOURCE, "contrib", "grafana",
                         "pmhost-dashboard.json")

# The exporter's documented bounds.
CONN_MAX = 16
CONN_TIME_S = 5
GIVE_WAY_S = 1
SCRAPE_TIME_S = 2

SAMPLE_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RX = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{name: [(labels dict, value)]} and {name: type} of an exposition."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RX.match(line)
        assert m, "not a sample line: %r" % line
        labels = dict(LABEL_RX.findall(m.group(2) or ""))
        samples.setdefault(m.group(1), []).append((labels,
                                                   float(m.group(3))))
    return samples, types


def value(samples, name, **labels):
    """The one sample of name whose labels include labels; None if none."""
    found = [v for lab, v in samples.get(name, [])
             if all(lab.get(k) == str(x) for k, x in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_raw(port, data, timeout=10, host="127.0.0.1"):
    """Sends data, reads to EOF: (status code or None, headers, body)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(timeout * SLOW)
        s.connect((host, port))
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.1 (\d{3}) ", lines[0])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return (int(m.group(1)) if m else None), headers, body


def http_get(port, path="/metrics", method="GET", host="127.0.0.1"):
    return http_raw(port, ("%s %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                           (method, path)).encode(), host=host)


class ObservabilityTest(harness.PmTest):

    # -- helpers ----------------------------------------------------------

    def task(self, name, title, **keys):
        """A recorder config for task title (self.title + suffix)."""
        cfg = {"plugin": harness.plugin("recorder"), "baseTitle": title}
        cfg.update(keys)
        return self.write(name, json.dumps(cfg))

    def live_workers(self, title=None):
        """Workers of TITLE (self.title) through work_init, as status says:
        cheaper than scanning /proc on a busy machine."""
        r = self.pm("status", "--title", title or self.title, "--json")
        if r.returncode != 0:
            return 0
        return sum(1 for m in json.loads(r.stdout)["masters"]
                   for w in m["workers"]
                   if w["pid"] and w["state"] in ("idle", "busy"))

    def run_live(self, cfg, *extra, workers=1, title=None):
        """A foreground master with `workers` workers through work_init."""
        p = self.start("run", cfg, *extra)
        self.wait_for(lambda: self.live_workers(title) >= workers,
                      "%d workers through work_init" % workers, proc=p)
        return p

    def master_of(self, title):
        doc = self.status_json("--title", title)
        return doc["masters"][0]

    def prometheus_text(self, *target):
        r = self.pm("status", *target, "--format", "prometheus")
        return r

    def promtool(self, text):
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        return r.returncode, r.stdout

    def start_exporter(self, *extra, listen="127.0.0.1:0"):
        """Starts `pmhost exporter`; (Popen, port) once it listens."""
        p = self.start("exporter", "--listen", listen, *extra)
        m = self.wait_text(p, r"^pmhost: exporter: listening on "
                           r"http://(\S+):(\d+)/metrics \(run dir (.*)\)$")
        return p, int(m.group(2))

    def scrape(self, port):
        status, headers, body = http_get(port)
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith(
            "text/plain; version=0.0.4"), headers)
        return body.decode()

    def socket_fds(self, pid):
        """How many sockets pid holds."""
        n = 0
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(
                        "socket:"):
                    n += 1
            except OSError:
                pass
        return n

    # -- (a) per-call figures in status -----------------------------------

    def test_a_paced_worker_times_every_call_and_counts_failures(self):
        # Each call sleeps 5 ms; the third call of each worker fails.
        cfg = self.resident(maxWorkerNum=2, executeUSleep=10000,
                            params={"sleep_ms": 5, "error_at": 3})
        p = self.run_live(cfg, workers=2)
        self.wait_for(lambda: self.master_json()["calls_total"] >= 60,
                      "60 calls", proc=p)

        def consistent():
            m = self.master_json()
            lat = m["latency"]
            # Never more timed calls than calls; at most one per worker
            # between its count and its timing.
            self.assertLessEqual(lat["count"], m["calls_total"])
            self.assertLessEqual(m["calls_total"] - lat["count"], 2)
            return m if lat["count"] == m["calls_total"] else None

        m = self.wait_for(consistent, "a status where every call is timed")
        buckets = {b["le"]: b["count"] for b in m["latency"]["buckets"]}
        # No call took less than its 5 ms sleep: none under 3 ms.
        self.assertNotIn("0.003", buckets)
        self.assertFalse(any(float(le) <= 0.003 for le in buckets
                             if le != "+Inf"), buckets)
        self.assertGreaterEqual(m["p50_s"], 0.005)
        self.assertLessEqual(m["p50_s"], 0.010)
        self.assertGreaterEqual(m["latency"]["sum_s"],
                                0.005 * m["latency"]["count"])
        # One failed call per worker, per slot and in the task's total.
        self.assertEqual(m["errors_total"], 2)
        for w in m["workers"]:
            self.assertEqual(w["errors_total"], 1, w)
            self.assertEqual(w["latency"]["count"] <= w["calls_total"],
                             True, w)
            self.assertGreater(w["calls_per_s"], 0, w)
            self.assertGreaterEqual(w["p50_s"], 0.005, w)
        # The table shows the same columns.
        table = self.pm("status", "--title", self.title, check=0).stdout
        self.assertRegex(table, r"calls\s+calls/s\s+p50\s+p99\s+errors")
        self.stop_fg(p)

    def test_a_hot_worker_samples_call_times_weighted_by_its_stride(self):
        cfg = self.config(maxWorkerNum=1, executeTimes=0, executeUSleep=0)
        p = self.run_live(cfg, workers=1)
        self.wait_for(lambda: self.master_json()["calls_total"] >= 2000000,
                      "two million calls", timeout=30, proc=p)
        m = self.master_json()
        count, calls = m["latency"]["count"], m["calls_total"]
        # Sampled: one timed call stands for its stride (at most 2^20
        # calls), so the count trails the calls by less than a stride.
        self.assertLessEqual(count, calls)
        self.assertGreaterEqual(count, calls - (1 << 20) - 1000)
        self.assertGreater(count, 0.5 * calls)
        self.assertGreater(m["calls_per_s"], 0)
        self.assertGreater(m["workers"][0]["calls_per_s"], 0)
        # An empty call: well under a millisecond.
        self.assertLess(m["p50_s"], 0.001)
        self.stop_fg(p)

    def test_one_call_workers_counters_never_go_backwards(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=1,
                                 executeUSleep=20000)
        p = self.run_fg(cfg)
        self.wait_master(p)
        seen = []
        deadline = time.monotonic() + 2 * SLOW
        while time.monotonic() < deadline or len(seen) < 10:
            seen.append(self.master_json())
        first, last = seen[0], seen[-1]
        for a, b in zip(seen, seen[1:]):
            self.assertLessEqual(a["calls_total"], b["calls_total"])
            self.assertLessEqual(a["errors_total"], b["errors_total"])
            self.assertLessEqual(a["latency"]["count"],
                                 b["latency"]["count"])
            for reason, n in a["exits_by_reason"].items():
                self.assertLessEqual(n, b["exits_by_reason"][reason])
            sa = {w["slot"]: w["calls_total"] for w in a["workers"]}
            sb = {w["slot"]: w["calls_total"] for w in b["workers"]}
            for slot, n in sa.items():
                self.assertLessEqual(n, sb.get(slot, n), (slot, a, b))
        # Each worker lived one call: calls and executeTimes exits kept
        # pace, and the folded histogram counts every call.
        lives = last["exits_by_reason"]["execute_times"]
        self.assertGreater(lives, first["exits_by_reason"]["execute_times"])
        self.assertGreaterEqual(lives, 20)
        self.assertGreaterEqual(last["calls_total"], lives)
        self.assertLessEqual(last["calls_total"], lives + 2)
        self.assertGreaterEqual(last["latency"]["count"], lives)
        self.assertEqual(sum(last["exits_by_reason"].values()), lives)
        self.stop_fg(p)

    def test_scale_down_keeps_the_task_totals(self):
        cfg = self.resident(maxWorkerNum=4, executeUSleep=5000,
                            params={"error_at": 2})
        p = self.run_live(cfg, workers=4)
        self.wait_for(lambda: self.master_json()["errors_total"] == 4,
                      "a failed call in every slot", proc=p)
        before = self.master_json()
        self.pm("scale", "--title", self.title, "1", check=0)
        seen = [before]
        while len(seen[-1]["workers"]) > 1 or len(seen) < 5:
            seen.append(self.master_json())
            self.assertLess(len(seen), 2000, "slots never went")
        seen.append(self.master_json())
        for a, b in zip(seen, seen[1:]):
            self.assertLessEqual(a["calls_total"], b["calls_total"])
            self.assertLessEqual(a["latency"]["count"],
                                 b["latency"]["count"])
            self.assertLessEqual(a["errors_total"], b["errors_total"])
        after = seen[-1]
        self.assertEqual([w["slot"] for w in after["workers"]], [0])
        # The removed slots' failed calls are still the task's.
        self.assertEqual(after["errors_total"], 4)
        self.assertGreaterEqual(after["exits_by_reason"]["stop"], 3)
        self.stop_fg(p)

    # -- (b) the metrics, checked by promtool ---------------------------

    def check_listed_metrics(self, samples, types, title):
        """Every metric the docs list, with its labels, for task title."""
        expect = {
            "pmhost_up": ("gauge", set()),
            "pmhost_master_start_time_seconds": ("gauge", set()),
            "pmhost_workers": ("gauge", {"state"}),
            "pmhost_worker_calls_total": ("counter", {"slot"}),
            "pmhost_worker_failed_calls_total": ("counter", {"slot"}),
            "pmhost_worker_restarts_total": ("counter", {"slot"}),
            "pmhost_worker_memory_bytes": ("gauge", {"slot"}),
            "pmhost_worker_exits_total": ("counter", {"reason"}),
        }
        for name, (kind, labels) in expect.items():
            self.assertEqual(types.get(name), kind, name)
            mine = [lab for lab, _ in samples.get(name, [])
                    if lab.get("task") == title]
            self.assertTrue(mine, "%s: no sample of %s" % (name, title))
            for lab in mine:
                self.assertEqual(set(lab), {"task"} | labels, (name, lab))
        self.assertEqual(types.get("pmhost_work_duration_seconds"),
                         "histogram")
        les = [lab["le"] for lab, _ in
               samples["pmhost_work_duration_seconds_bucket"]
               if lab["task"] == title]
        self.assertEqual(les[-1], "+Inf")
        self.assertIn("1e-06", les)
        self.assertIn("60", les)
        for suffix in ("_sum", "_count"):
            self.assertIsNotNone(value(samples, "pmhost_work_duration_"
                                       "seconds" + suffix, task=title))
        for reason in ("execute_times", "limit_seconds", "max_rss",
                       "work_timeout", "signal", "exit_status",
                       "init_failure", "load_failure", "done"):
            self.assertIsNotNone(value(samples, "pmhost_worker_exits_total",
                                       task=title, reason=reason), reason)

    def test_promtool_accepts_status_and_exporter_metrics(self):
        cfg = self.resident(maxWorkerNum=2, executeUSleep=10000,
                            params={"sleep_ms": 2, "error_at": 2})
        p = self.run_live(cfg, workers=2)
        self.wait_for(lambda: self.master_json()["errors_total"] == 2,
                      "a failed call in each slot", proc=p)
        before = self.master_json()
        r = self.prometheus_text("--title", self.title)
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, out = self.promtool(r.stdout)
        self.assertEqual((rc, out), (0, ""), r.stdout)
        samples, types = parse_metrics(r.stdout)
        self.check_listed_metrics(samples, types, self.title)
        t = self.title
        self.assertEqual(value(samples, "pmhost_up", task=t), 1)
        self.assertAlmostEqual(
            value(samples, "pmhost_master_start_time_seconds", task=t),
            before["start_unix_ms"] / 1000, places=2)
        self.assertEqual(value(samples, "pmhost_workers", task=t,
                               state="pending"), 0)
        self.assertEqual(sum(v for lab, v in samples["pmhost_workers"]
                             if lab["task"] == t), 2)
        for w in before["workers"]:
            s = w["slot"]
            self.assertGreaterEqual(value(samples, "pmhost_worker_calls_"
                                          "total", task=t, slot=s),
                                    w["calls_total"])
            self.assertEqual(value(samples, "pmhost_worker_failed_calls_"
                                   "total", task=t, slot=s), 1)
            self.assertEqual(value(samples, "pmhost_worker_restarts_total",
                                   task=t, slot=s), 0)
            self.assertGreater(value(samples, "pmhost_worker_memory_bytes",
                                     task=t, slot=s), 100000)
        count = value(samples, "pmhost_work_duration_seconds_count", task=t)
        self.assertEqual(count, value(samples, "pmhost_work_duration_"
                                      "seconds_bucket", task=t, le="+Inf"))
        self.assertGreaterEqual(count, before["latency"]["count"])

        # The exporter's /metrics: the same metrics, accepted as well.
        _, port = self.start_exporter()
        text = self.scrape(port)
        rc, out = self.promtool(text)
        self.assertEqual((rc, out), (0, ""), text)
        samples, types = parse_metrics(text)
        self.check_listed_metrics(samples, types, self.title)
        self.assertGreaterEqual(
            value(samples, "pmhost_work_duration_seconds_count", task=t),
            count)
        self.stop_fg(p)

    # -- (c) the exporter --------------------------------------------------

    def test_exporter_answers_get_of_metrics_and_index_only(self):
        p, port = self.start_exporter()
        status, headers, body = http_get(port, "/")
        self.assertEqual(status, 200)
        self.assertIn(b"/metrics", body)
        self.assertIn(self.rundir.encode(), body)
        # Nothing runs: a valid exposition without a sample.
        text = self.scrape(port)
        self.assertEqual(self.promtool(text), (0, ""))
        self.assertEqual(parse_metrics(text)[0], {})
        status, headers, body = http_get(port, "/metrics", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["content-length"]), 0)
        self.assertEqual(http_get(port, "/metrics?x=1")[0], 200)
        for path in ("/nope", "/metrics/", "/metricsx", "//metrics"):
            self.assertEqual(http_get(port, path)[0], 404, path)
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            status, headers, _ = http_get(port, "/metrics", method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(headers.get("allow"), "GET, HEAD")
        for junk in (b"GET\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                     b"GET /metrics\r\n\r\n", b"GET /metrics FTP/1.0\r\n\r\n",
                     b"GET metrics HTTP/1.1\r\n\r\n"):
            self.assertEqual(http_raw(port, junk)[0], 400, junk)
        # Bare LF line ends are taken as well.
        self.assertEqual(http_raw(port, b"GET / HTTP/1.0\n\n")[0], 200)
        # TERM ends it cleanly.
        p.terminate()
        self.assertEqual(self.wait_exit(p), 0, self.output(p))
        self.assertEqual(len(self.output(p).splitlines()), 1,
                         self.output(p))

    def test_exporter_refuses_an_oversized_request(self):
        p, port = self.start_exporter()
        big = b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000
        status, _, body = http_raw(port, big)
        self.assertEqual(status, 431, body)
        # Headers that never end are refused at the limit too.
        status, _, _ = http_raw(port, b"GET /metrics HTTP/1.1\r\n" +
                                b"X: y\r\n" * 2000 + b"\r\n")
        self.assertEqual(status, 431)
        self.assertEqual(http_get(port)[0], 200)
        self.assertIsNone(p.poll())

    def test_a_slow_client_holds_up_nobody_and_is_cut_off(self):
        cfg = self.resident(maxWorkerNum=1)
        run = self.run_live(cfg, workers=1)
        _, port = self.start_exporter()
        slow = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(slow.close)
        slow.sendall(b"GET /metr")
        began = time.monotonic()
        # Others are served meanwhile, each at once.
        for _ in range(5):
            t0 = time.monotonic()
            samples, _ = parse_metrics(self.scrape(port))
            self.assertEqual(value(samples, "pmhost_up", task=self.title), 1)
            self.assertLess(time.monotonic() - t0, 1.0 * SLOW)
        # A byte now and then does not buy it more time: 408, then closed.
        slow.settimeout(0.3)
        got = b""
        while time.monotonic() - began < (CONN_TIME_S + 3) * SLOW:
            try:
                chunk = slow.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                try:
                    slow.sendall(b"i")
                except OSError:
                    break
            except ConnectionResetError:
                break
        took = time.monotonic() - began
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got)
        self.assertGreaterEqual(took, CONN_TIME_S - 0.5)
        self.assertLess(took, (CONN_TIME_S + 2) * SLOW)
        self.stop_fg(run)

    def test_exporter_serves_a_bounded_number_of_connections(self):
        cfg = self.resident(maxWorkerNum=1)
        run = self.run_live(cfg, workers=1)
        p, port = self.start_exporter()
        base = self.socket_fds(p.pid)
        # 100 connections that send nothing.
        idle = [socket.create_connection(("127.0.0.1", port))
                for _ in range(100)]
        for s in idle:
            self.addCleanup(s.close)
        self.wait_for(lambda: self.socket_fds(p.pid) == base + CONN_MAX,
                      "the exporter holding %d connections" % CONN_MAX)
        # A real request gets through: idle ones give way after 1 s, and
        # the queue of idle ones behind them passes through one place.
        t0 = time.monotonic()
        status, _, _ = http_get(port)
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - t0, (GIVE_WAY_S + 2) * SLOW)
        self.assertLessEqual(self.socket_fds(p.pid), base + CONN_MAX + 1)
        for s in idle:
            s.close()
        self.wait_for(lambda: self.socket_fds(p.pid) == base,
                      "the idle connections closed")
        # 100 whole requests at once, each answered in full.
        results = []

        def fetch():
            try:
                results.append(http_get(port))
            except OSError as e:
                results.append((None, {}, str(e).encode()))

        threads = [threading.Thread(target=fetch) for _ in range(100)]
        most = 0
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            most = max(most, self.socket_fds(p.pid))
            time.sleep(0.002)
        for t in threads:
            t.join()
        bad = [r for r in results if r[0] != 200]
        self.assertEqual(bad, [], "of 100 requests")
        for r in results:
            parse_metrics(r[2].decode())
        # Never more connections than the bound (and the masters' sockets
        # of a scrape).
        self.assertLessEqual(most, base + CONN_MAX + 1)
        self.assertIsNone(p.poll())
        self.stop_fg(run)

    def test_exporter_follows_masters_coming_and_going(self):
        a, b = self.title + "_a", self.title + "_b"
        exp, port = self.start_exporter()
        self.assertNotIn("pmhost_up", parse_metrics(self.scrape(port))[0])
        ra = self.start("run", self.task("a.json", a, maxWorkerNum=2,
                                         executeTimes=0))
        rb = self.start("run", self.task("b.json", b, maxWorkerNum=1,
                                         executeTimes=0))

        def up():
            s = parse_metrics(self.scrape(port))[0]
            return {lab["task"]: v for lab, v in s.get("pmhost_up", [])}

        self.wait_for(lambda: up() == {a: 1, b: 1}, "both up", proc=ra)
        # A master SIGKILLed: pmhost_up 0 while its pid file stays.
        os.kill(self.master_pid(a), 9)
        self.wait_for(lambda: up() == {a: 0, b: 1}, "a down, b up")
        # A master that hangs: 0 once it does not answer in time, while
        # the exporter goes on answering at once.
        mb = self.master_pid(b)
        os.kill(mb, 19)         # SIGSTOP
        self.addCleanup(lambda: os.kill(mb, 18) if harness.alive(mb) else 0)
        got = {}
        fetch = threading.Thread(target=lambda: got.update(up=up()))
        t0 = time.monotonic()
        fetch.start()
        time.sleep(0.2)
        self.assertEqual(http_get(port, "/")[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW)
        fetch.join(timeout=10 * SLOW)
        self.assertEqual(got["up"], {a: 0, b: 0}, "run dir: %s\n%s" % (
            sorted(os.listdir(self.rundir)), self.output(exp)))
        self.assertGreaterEqual(time.monotonic() - t0, SCRAPE_TIME_S - 0.1)
        os.kill(mb, 18)         # SIGCONT
        self.wait_for(lambda: up() == {a: 0, b: 1}, "b answers again")
        # Stopped: gone from the metrics; pruned: the dead one too.
        self.pm("stop", "--title", b, check=0)
        self.wait_exit(rb)
        self.assertEqual(up(), {a: 0})
        self.pm("status", "--prune")
        self.assertEqual(up(), {})

    def test_exporter_listens_on_loopback_unless_told(self):
        p, port = self.start_exporter(listen=":0")
        with open("/proc/net/tcp") as f:
            rows = [ln.split() for ln in f.read().splitlines()[1:]]
        mine = [r for r in rows if r[3] == "0A" and
                int(r[1].split(":")[1], 16) == port]
        self.assertEqual([r[1].split(":")[0] for r in mine], ["0100007F"])
        # A port alone means 127.0.0.1 too; IPv6 in brackets.
        p2, port2 = self.start_exporter(listen=str(free_port()))
        self.assertEqual(http_get(port2, "/")[0], 200)
        if socket.has_ipv6 and os.path.exists("/proc/net/tcp6"):
            try:
                p3, port3 = self.start_exporter(listen="[::1]:0")
            except AssertionError:
                p3 = None           # no IPv6 loopback here
            if p3 is not None:
                self.assertEqual(http_get(port3, "/", host="::1")[0], 200)
        for bad in ("127.0.0.1", "127.0.0.1:70000", "::1:80", "[::1]80",
                    "host:port", ""):
            r = self.pm("exporter", "--listen", bad)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assert_one_error_line(r)
        r = self.pm("exporter")
        self.assertEqual(r.returncode, 2)
        self.assert_one_error_line(r, r"exporter needs --listen")
        # A port taken: a runtime failure, said in one line.
        r = self.pm("exporter", "--listen", "127.0.0.1:%d" % port)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assert_one_error_line(r, r"in use")
        # --rundir in place of PMHOST_RUNDIR.
        other = self.path("other-run")
        os.mkdir(other, 0o700)
        p4, port4 = self.start_exporter("--rundir", other)
        self.assertIn(other.encode(), http_get(port4, "/")[2])

    # -- (d) a real Prometheus ---------------------------------------------

    def test_a_prometheus_server_scrapes_the_exporter(self):
        cfg = self.resident(maxWorkerNum=2, executeUSleep=5000,
                            params={"sleep_ms": 5})
        run = self.run_live(cfg, workers=2)
        _, eport = self.start_exporter()
        pport = free_port()
        scratch = self.path("prometheus")
        os.mkdir(scratch)
        conf = os.path.join(scratch, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: pmhost\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % eport)
        log = open(os.path.join(scratch, "log"), "w")
        prom = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + conf,
             "--web.listen-address=127.0.0.1:%d" % pport,
             "--storage.tsdb.path=" + os.path.join(scratch, "data"),
             "--storage.tsdb.retention.time=1h"],
            cwd=scratch, env=self.env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log)

        def kill_prometheus():
            if prom.poll() is None:
                prom.kill()
            prom.wait(timeout=30)
            log.close()

        # Registered first: whatever fails below, it goes.
        self.addCleanup(kill_prometheus)

        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (
                pport, urllib.parse.urlencode({"query": q}))
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    doc = json.load(r)
            except OSError:
                return None
            self.assertEqual(doc["status"], "success", doc)
            return doc["data"]["result"]

        total = "sum(pmhost_worker_calls_total{task=\"%s\"})" % self.title
        first = self.wait_for(lambda: query(total), "Prometheus has calls",
                              timeout=60)
        v1 = float(first[0]["value"][1])
        self.wait_for(lambda: float((query(total) or first)[0]["value"][1])
                      > v1, "the calls Prometheus has increasing",
                      timeout=30)
        q50 = ('histogram_quantile(0.5, sum by (le) (rate('
               'pmhost_work_duration_seconds_bucket{task="%s"}[5s])))' %
               self.title)

        def median():
            r = query(q50)
            if not r or r[0]["value"][1] in ("NaN", "+Inf", "-Inf"):
                return None
            return float(r[0]["value"][1])

        m = self.wait_for(median, "a call-time median", timeout=30)
        # Calls sleep 5 ms: the median is in the 3 to 10 ms bucket.
        self.assertGreaterEqual(m, 0.003)
        self.assertLessEqual(m, 0.010)
        up = query('pmhost_up{task="%s"}' % self.title)
        self.assertEqual(up[0]["value"][1], "1")
        # Every query of the shipped Grafana dashboard is one Prometheus
        # takes, and those of calls, call times and memory have data.
        with open(DASHBOARD) as f:
            panels = json.load(f)["panels"]
        exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        for e in exprs:
            q = e.replace("$__rate_interval", "5s").replace(
                "$instance", ".*").replace("$task", self.title)
            got = query(q)
            self.assertIsNotNone(got, q)
            if re.search(r"calls_total|duration|memory", e) and \
                    "failed" not in e:
                self.assertTrue(got, "no data: " + q)
        self.stop_fg(run)

    # -- (e) top -----------------------------------------------------------

    def tmux(self, *args, check=True):
        r = subprocess.run([TMUX, "-L", self.sock] + list(args),
                           env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=10)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top")

    def shown_slots(self, text, title):
        """{slot: (pid, line)} under 'slots of TITLE:' in a frame, in the
        order shown."""
        lines = text.splitlines()
        start = lines.index("slots of %s:" % title) + 2
        out = []
        for ln in lines[start:]:
            m = re.match(r"^(\d+)\s+(\d+|-)\s+(\S+)\s+(\S+)", ln)
            if not m:
                break
            out.append((int(m.group(1)), m.group(2), float(m.group(4))
                        if m.group(4) != "-" else -1.0))
        return out

    def test_top_in_a_terminal(self):
        a, b = self.title + "_a", self.title + "_b"
        # Slot 0 of a never gets through work_init: no calls, restarts.
        ra = self.start("run", self.task(
            "a.json", a, maxWorkerNum=3, executeTimes=0, executeUSleep=10000,
            params={"init_fail_slot": 0}))
        rb = self.start("run", self.task("b.json", b, maxWorkerNum=2,
                                         executeTimes=0))
        self.wait_for(lambda: self.live_workers(b) == 2, "b's workers",
                      proc=rb)
        self.wait_for(lambda: self.live_workers(a) >= 2, "a's workers",
                      proc=ra)
        self.sock = "pmhost-%s" % self.title
        self.addCleanup(lambda: self.tmux("kill-server", check=False))
        before, after, rc = (self.path(n) for n in ("before", "after", "rc"))
        shell = ("stty -g > %s; %s top --interval 0.3; echo $? > %s; "
                 "stty -g > %s; echo top-ended; exec sleep 600" %
                 (before, harness.PMHOST, rc, after))
        self.tmux("new-session", "-d", "-s", "top", "-x", "200", "-y", "50",
                  "sh", "-c", shell)
        # The first task (a) is shown, by slot, with status's pids.
        self.wait_for(lambda: "slots of %s:" % a in self.screen(),
                      "top's first frame")
        # Slot 0's workers come and go (each fails its work_init): top's
        # frame and status are read afresh until they agree.
        def agree():
            pids = {w["slot"]: str(w["pid"]) for w in
                    self.master_of(a)["workers"] if w["pid"]}
            return pids and {s: p for s, p, _ in
                             self.shown_slots(self.screen(), a)
                             if p != "-"} == pids

        self.wait_for(agree, "a's slots and pids as status shows them")
        shown = self.shown_slots(self.screen(), a)
        self.assertEqual([s for s, _, _ in shown], [0, 1, 2])
        self.assertIn("slots by slot", self.screen())
        # c: by calls/s, the idle slot 0 last.
        self.tmux("send-keys", "-t", "top", "c")

        def by_rate():
            got = self.shown_slots(self.screen(), a)
            rates = [r for _, _, r in got]
            return len(got) == 3 and got[-1][0] == 0 and \
                rates == sorted(rates, reverse=True) and got

        self.wait_for(by_rate, "slots by calls/s")
        self.assertIn("slots by calls/s", self.screen())
        # s: back by slot.
        self.tmux("send-keys", "-t", "top", "s")
        self.wait_for(lambda: [s for s, _, _ in self.shown_slots(
            self.screen(), a)] == [0, 1, 2] and "slots by slot" in
            self.screen(), "slots by slot again")
        # t: the other task's slots and pids.
        self.tmux("send-keys", "-t", "top", "t")
        self.wait_for(lambda: "slots of %s:" % b in self.screen(),
                      "b's slots")
        self.assertNotIn("slots of %s:" % a, self.screen())
        pids_b = {w["slot"]: str(w["pid"]) for w in
                  self.master_of(b)["workers"]}
        self.assertEqual({s: p for s, p, _ in
                          self.shown_slots(self.screen(), b)}, pids_b)
        self.tmux("send-keys", "-t", "top", "t")
        self.wait_for(lambda: "slots of %s:" % a in self.screen(),
                      "a's slots again")
        # q: top ends with 0 and the terminal is as it was.
        self.tmux("send-keys", "-t", "top", "q")
        self.wait_for(lambda: self.read(rc).strip() == "0", "top's exit 0")
        self.wait_for(lambda: "top-ended" in self.screen(), "the shell")
        self.assertEqual(self.read(before), self.read(after))
        self.assertNotIn("slots of", self.screen())
        self.assertNotIn("pmhost top -", self.screen())

    def test_top_batch_prints_plain_frames(self):
        # Workers of one call: top's own rates are right all the same.
        cfg = self.record_config(maxWorkerNum=2, executeTimes=1,
                                 executeUSleep=50000)
        p = self.run_fg(cfg)
        self.wait_master(p)
        self.wait_for(lambda: self.master_json()["calls_total"] >= 10,
                      "10 calls", proc=p)
        r = self.pm("top", "-b", "-n", "2", "--interval", "1", "--title",
                    self.title, check=0)
        self.assertNotIn("\x1b", r.stdout)
        frames = re.split(r"\n(?=pmhost top - )", r.stdout)
        self.assertEqual(len(frames), 2, r.stdout)
        for fr in frames:
            self.assertRegex(fr, r"^pmhost top - \d{4}-\d\d-\d\d "
                             r"\d\d:\d\d:\d\d - every 1 s - 1 task")
            self.assertEqual(len(self.shown_slots(fr, self.title)), 2)
        line = next(ln for ln in frames[1].splitlines()
                    if ln.startswith("  " + self.title + " "))
        rate = float(line.split()[4])
        # Two slots, a call every 50 ms each: at most 40/s, and each life's
        # fork and exit take little of it.
        self.assertGreater(rate, 10, line)
        self.assertLess(rate, 45, line)
        slot_rates = [r for _, _, r in self.shown_slots(frames[1],
                                                        self.title)]
        self.assertTrue(all(5 < x < 25 for x in slot_rates), slot_rates)
        # Without a terminal, top prints frames all the same.
        r = self.pm("top", "-n", "1", "--title", self.title, check=0)
        self.assertEqual(r.stdout.count("pmhost top - "), 1)
        self.assertNotIn("\x1b", r.stdout)
        # Usage errors.
        for bad in (["--interval", "0"], ["--interval", "0.05"],
                    ["--interval", "1.5s"], ["-n", "0"], ["--all"]):
            r = self.pm("top", *bad)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
        self.stop_fg(p)

    # -- (f) logs ------------------------------------------------------------

    def json_lines(self, text):
        out = []
        for ln in text.splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                self.fail("not a JSON line: %r" % ln)
        return out

    def test_json_log_lines(self):
        cfg = self.record_config(maxWorkerNum=2, executeTimes=3,
                                 executeUSleep=20000, logFormat="json",
                                 params={"log": 1, "print": 1,
                                         "error_at": 2})
        p = self.run_fg(cfg)
        self.wait_for(lambda: len(self.exits_json(p)) >= 2, "2 exits",
                      proc=p)
        self.stop_fg(p)
        with open(p.log_path, "rb") as f:
            raw = f.read()
        lines = self.json_lines(raw.decode("utf-8"))
        self.assertGreater(len(lines), 10)
        for d in lines:
            self.assertTrue({"time", "level", "task", "role", "pid",
                             "message"} <= set(d), d)
            self.assertRegex(d["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
                             r"\.\d{3}[+-]\d{4}$")
            self.assertIn(d["level"], ("debug", "info", "notice", "warning",
                                       "error"))
            self.assertEqual(d["task"], self.title)
            self.assertIn(d["role"], ("master", "worker", "preload"))
            self.assertIsInstance(d["pid"], int)
            self.assertEqual("slot" in d, d["role"] == "worker", d)
        workers = [d for d in lines if d["role"] == "worker"]
        logged = [d for d in workers if d["message"].startswith(
            "recorder call ")]
        self.assertTrue(logged)
        for d in logged:
            self.assertEqual(d["message"], "recorder call %s in slot %d" %
                             (d["message"].split()[2], d["slot"]))
        self.assertTrue(any(d["message"].startswith("recorder stdout call")
                            and d["level"] == "info" for d in workers))
        self.assertTrue(any(d["message"].startswith("recorder stderr call")
                            and d["level"] == "warning" for d in workers))
        self.assertTrue(any(d["message"].startswith("work() returned -1")
                            for d in workers))
        masters = [d for d in lines if d["role"] == "master"]
        self.assertTrue(any(re.match(r"worker \d \(pid \d+\) exited: ",
                                     d["message"]) for d in masters))
        self.assertTrue(all(d["pid"] == p.pid for d in masters))

    def exits_json(self, p):
        out = []
        for ln in self.output(p).splitlines():
            try:
                d = json.loads(ln)
            except ValueError:
                continue
            if re.match(r"worker \d \(pid \d+\) exited", d["message"]):
                out.append(d)
        return out

    def test_json_log_lines_stay_json_whatever_a_plugin_prints(self):
        if not os.path.exists(EXEC_SO):
            self.skipTest("exec.so is not built")
        cfg = self.config(plugin_name=EXEC_SO, maxWorkerNum=1,
                          executeTimes=0, executeUSleep=20000,
                          logFormat="json",
                          params={"command": ["printf",
                                              'a \\377 b \\342\\202 "q"\\t\\n'
                                              ]})
        p = self.run_fg(cfg)
        self.wait_text(p, r"\\ufffd")
        self.stop_fg(p)
        with open(p.log_path, "rb") as f:
            lines = self.json_lines(f.read().decode("utf-8"))
        printed = [d["message"] for d in lines if d["role"] == "worker"]
        self.assertIn('a \ufffd b \ufffd\ufffd "q"\t', printed)

    def test_log_format_option_overrides_the_config(self):
        cfg = self.resident(maxWorkerNum=1, logFormat="text")
        p = self.run_live(cfg, "--log-format", "json", workers=1)
        self.stop_fg(p)
        lines = self.json_lines(self.output(p))
        self.assertTrue(any(d["message"] == "stopped" for d in lines))
        cfg = self.resident(maxWorkerNum=1, logFormat="json")
        p = self.run_live(cfg, "--log-format", "text", workers=1)
        self.stop_fg(p)
        out = self.output(p).splitlines()
        self.assertTrue(out)
        for ln in out:
            self.assertRegex(ln, r"^\d{4}-\d\d-\d\dT\S+ \w+ process_m:"
                             r"(Master|Worker):%s" % self.title)
        r = self.pm("run", cfg, "--log-format", "yaml")
        self.assertEqual(r.returncode, 2)
        self.assert_one_error_line(r, r"--log-format must be text or json")

    def test_journald_prefixes_when_stderr_is_the_journal(self):
        cfg = self.resident(maxWorkerNum=1, params={"log": 1})
        path = self.path("stderr-%d.log" % len(self.popens))
        open(path, "w").close()
        st = os.stat(path)
        env = dict(self.env, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        p = self.start("run", cfg, env=env)
        self.assertEqual(p.log_path, path)
        self.wait_text(path, r"recorder call 3 in slot 0")
        self.stop_fg(p)
        lines = self.read(path).splitlines()
        self.assertGreater(len(lines), 3)
        for ln in lines:
            self.assertRegex(ln, r"^<[3-7]>(debug|info|notice|warning|error)"
                             r" process_m:(Master|Worker):%s" % self.title)
            self.assertNotRegex(ln, r"\d{4}-\d\d-\d\dT\d\d:")
        self.assertTrue(any(ln.startswith("<6>info process_m:Worker:%s#0["
                                          % self.title) for ln in lines))
        self.assertTrue(any(ln.startswith("<6>info process_m:Master:")
                            for ln in lines))
        # Not the journal (another file's identity): timestamps as usual.
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino + 1)
        p = self.start("run", cfg, env=env)
        self.wait_text(p, r"recorder call 1 in slot 0")
        self.stop_fg(p)
        self.assertRegex(self.output(p), r"^\d{4}-\d\d-\d\dT")


if __name__ == "__main__":
    harness.main()
