"""A staged install is complete and usable on its own.

`meson install --destdir STAGE` of the build under test must put the
binary, the header, pmhost.pc, the man pages, the bash completion, the
systemd unit and the examples in their standard places; a plugin written
out of tree must build with nothing but `pkg-config --cflags pmhost`
pointed at the stage, and run under the installed binary.
"""

import json
import os
import shutil
import subprocess
import unittest

import harness

PLUGIN_SRC = r"""
#include <pmhost.h>

PMHOST_PLUGIN;

int
work(pm_worker *w, void *state)
{
	(void)state;
	pm_log(w, PM_LOG_INFO, "out-of-tree plugin, slot %d, call %llu",
	    pm_worker_slot(w), (unsigned long long)pm_worker_calls(w) + 1);
	return PM_CONTINUE;
}
"""


def prefix_of(build):
    """The install prefix the build was configured with."""
    r = subprocess.run(["meson", "introspect", "--buildoptions", build],
                       stdout=subprocess.PIPE, text=True, check=True)
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    return opts["prefix"], opts["libdir"], opts["datadir"], opts["mandir"]


@unittest.skipIf(shutil.which("pkg-config") is None or
                 shutil.which("cc") is None, "needs pkg-config and cc")
class InstallTest(harness.PmTest):

    def test_staged_install_builds_and_runs_an_out_of_tree_plugin(self):
        stage = self.path("stage")
        r = subprocess.run(["meson", "install", "-C", harness.BUILD,
                            "--no-rebuild", "--destdir", stage],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout)
        prefix, libdir, datadir, mandir = prefix_of(harness.BUILD)
        root = stage + prefix

        def installed(*parts):
            p = os.path.join(root, *parts)
            self.assertTrue(os.path.exists(p), "not installed: " + p)
            return p

        binary = installed("bin", "pmhost")
        installed("include", "pmhost.h")
        pcdir = os.path.dirname(installed(libdir, "pkgconfig", "pmhost.pc"))
        installed(mandir, "man1", "pmhost.1")
        installed(mandir, "man5", "pmhost.json.5")
        installed(datadir, "bash-completion", "completions", "pmhost")
        installed("lib", "systemd", "system", "pmhost@.service")
        installed(datadir, "pmhost", "examples", "hello", "hello.so")
        installed(datadir, "pmhost", "examples", "spool", "spool.so")

        # pkg-config, pointed at the stage, gives the staged include dir.
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir,
                   PKG_CONFIG_SYSROOT_DIR=stage)
        flags = subprocess.run(["pkg-config", "--cflags", "pmhost"],
                               env=env, stdout=subprocess.PIPE, text=True,
                               check=True).stdout.split()
        self.assertIn("-I" + os.path.join(root, "include"), flags)

        src = self.write("task.c", PLUGIN_SRC)
        so = self.path("task.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", *flags, "-o", so, src],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stdout)
        # No pmhost symbol is left for the dynamic linker to find.
        nm = subprocess.run(["nm", "-D", "--undefined-only", so],
                            stdout=subprocess.PIPE, text=True).stdout
        self.assertNotIn("pm_", nm)

        cfg = self.config(plugin_name=so, maxWorkerNum=1, executeTimes=2,
                          executeUSleep=20000)
        r = subprocess.run([binary, "check", cfg], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertEqual((r.returncode, r.stdout.splitlines()[-1]),
                         (0, "ok"), r.stderr)
        p = self.spawn([binary, "run", cfg])
        self.wait_text(p, r"info process_m:Worker:%s#\d+\[\d+\]: out-of-tree "
                       r"plugin, slot 0, call 2$" % self.title)


if __name__ == "__main__":
    harness.main()
