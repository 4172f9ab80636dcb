"""A plugin written in Rust (plugins/rust-hello, no crates) builds with
cargo offline and runs under pmhost like a C one: it passes the ABI check,
reads its params, knows its slot and call count, and logs through
pm_log_str.  Skipped where cargo is not installed."""

import os
import shutil
import subprocess
import unittest

import harness

CARGO = shutil.which("cargo")
CRATE = os.path.join(harness.SOURCE, "plugins", "rust-hello")


@unittest.skipIf(CARGO is None, "cargo is not installed")
class RustPluginTest(harness.PmTest):

    def build(self):
        target = self.path("target")
        r = subprocess.run([CARGO, "build", "--release", "--offline",
                            "--quiet"], cwd=CRATE,
                           env=dict(os.environ, CARGO_TARGET_DIR=target),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout)
        return os.path.join(target, "release", "libpmhost_rust_hello.so")

    def test_rust_plugin_runs_and_logs_through_the_host(self):
        so = self.build()
        cfg = self.config(plugin_name=so, maxWorkerNum=2, executeTimes=2,
                          executeUSleep=100000, params={"greeting": "hi"})
        self.pm("check", cfg, check=0)
        p = self.run_fg(cfg, workers=2)
        for slot in (0, 1):
            self.wait_text(p, r"info process_m:Worker:%s#\d+\[\d+\]: hello "
                           r"from params from slot %d, call 2$" %
                           (self.title, slot))
        # Both calls ran in one worker; then it was replaced normally.
        self.wait_text(p, r"worker 0 \(pid \d+\) exited: reached "
                       r"executeTimes after 2 calls")


if __name__ == "__main__":
    harness.main()
