"""The Debian packages build, pass lintian, install, run and purge cleanly.

The source tree (the files git knows, as they are in the work tree) is
copied to a scratch dir and `dpkg-buildpackage -b -us -uc` builds the
binary packages there once for the whole suite: the tree itself is never
written.  lintian must report no error and no warning.  The packages are
then installed into this machine with `dpkg -i`: the hello example runs
from its installed config, a plugin written out of tree builds with
`pkg-config pmhost` against the installed header, every plugin package's
example config passes `check`, and `systemd-analyze verify` accepts the
installed unit.  `dpkg --purge` must then remove every file they brought.

Installing is what the suite is about, so it needs root and a machine
where no pmhost package or file is in place: it leaves the machine as it
found it (the purge is registered before the first `dpkg -i`) and skips,
saying why, rather than replace anything it did not install.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness

PACKAGES = ["pmhost", "pmhost-dev", "pmhost-plugin-php",
            "pmhost-plugin-python", "pmhost-plugin-pgqueue"]
# What each plugin package must declare beside pmhost itself.
PLUGIN_LIBS = {"pmhost-plugin-php": ("php.so", "libphp8.2-embed"),
               "pmhost-plugin-python": ("python.so", "libpython3.11"),
               "pmhost-plugin-pgqueue": ("pgqueue.so", "libpq5")}
# Example configs each plugin package installs, checked with its plugin.
PLUGIN_EXAMPLES = {
    "pmhost-plugin-php": ["php/seed/task.json", "php/queue/queue.json"],
    "pmhost-plugin-python": ["python/consumer.json"],
    "pmhost-plugin-pgqueue": ["pgqueue/pgqueue.json"],
}
EXAMPLES = "/usr/share/pmhost/examples"
BINARY = "/usr/bin/pmhost"
UNIT = "/lib/systemd/system/pmhost@.service"
# Below meson's 600 s for the whole suite, so that the cleanups run.
BUILD_TIMEOUT = 420
DPKG_LOCK_WAIT = 120

PLUGIN_SRC = r"""
#include <pmhost.h>

PMHOST_PLUGIN;

int
work(pm_worker *w, void *state)
{
	(void)state;
	pm_log(w, PM_LOG_INFO, "packaged header, slot %d, call %llu",
	    pm_worker_slot(w), (unsigned long long)pm_worker_calls(w) + 1);
	return PM_CONTINUE;
}
"""

# What setUpModule found or built; read by every class.
built = {"skip": None, "debs": {}, "changes": None, "version": None,
         "multiarch": None, "clash": None}


def run(argv, cwd=None, env=None, timeout=120):
    """Runs argv to completion, stdout and stderr merged into stdout;
    CompletedProcess.  At the deadline its whole process group is killed
    (a package build's compilers too) and the test fails."""
    with subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as p:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise AssertionError("%s: no end within %d s" %
                                 (" ".join(argv), timeout))
        return subprocess.CompletedProcess(argv, p.returncode, out)


def sanitized_build():
    """True if the build under test is a sanitizer build: the packages do
    not depend on it, so its run of this suite would only repeat the plain
    build's."""
    try:
        r = subprocess.run(["meson", "introspect", "--buildoptions",
                            harness.BUILD], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=60)
        opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return opts.get("b_sanitize", "none") not in ("none", "")


def copy_source(dest):
    """Copies the source tree to dest: the files git tracks or would
    track, as they are in the work tree (no build dirs); without git, the
    whole tree but build dirs."""
    r = subprocess.run(["git", "-C", harness.SOURCE, "ls-files", "-z",
                        "--cached", "--others", "--exclude-standard"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        shutil.copytree(harness.SOURCE, dest, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "build*",
                                                      "__pycache__"))
        return
    for rel in sorted(set(r.stdout.decode().split("\0")) - {""}):
        src = os.path.join(harness.SOURCE, rel)
        if not os.path.lexists(src):
            continue                    # deleted in the work tree
        to = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(to), exist_ok=True)
        shutil.copy2(src, to, follow_symlinks=False)


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", deb, field],
                          stdout=subprocess.PIPE, text=True,
                          check=True).stdout.strip()


def deb_paths(deb):
    """{path: type letter} of what a .deb installs ('d', '-', 'l'),
    paths absolute and without a trailing slash."""
    out = subprocess.run(["dpkg-deb", "-c", deb], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    paths = {}
    for line in out.splitlines():
        fields = line.split(None, 5)
        name = fields[5].split(" -> ")[0]
        path = "/" + name.lstrip("./").rstrip("/")
        if path != "/":
            paths[path] = fields[0][0]
    return paths


def known_to_dpkg(names):
    """Those of names dpkg knows in any state but 'not installed'."""
    out = []
    for name in names:
        r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}",
                            name], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if r.returncode == 0 and r.stdout.strip() not in ("", "un"):
            out.append(name)
    return out


def dpkg(*args):
    """Runs dpkg, waiting (under a deadline) while another dpkg or apt
    holds its lock; CompletedProcess."""
    deadline = time.monotonic() + DPKG_LOCK_WAIT
    while True:
        r = run(["dpkg", *args], timeout=300)
        if r.returncode == 0 or "lock" not in r.stdout or \
                time.monotonic() > deadline:
            return r
        time.sleep(1)


def purge_ours():
    """Purges every package of this source that dpkg knows: the cleanup
    that puts the machine back as it was."""
    names = known_to_dpkg(sorted(set(PACKAGES) | set(built["debs"])))
    if names:
        return dpkg("--purge", *names)
    return None


def setUpModule():
    if os.geteuid() != 0:
        built["skip"] = "needs root: installs the packages with dpkg -i"
        return
    for tool in ("dpkg-buildpackage", "dpkg-checkbuilddeps", "dh"):
        if shutil.which(tool) is None:
            built["skip"] = ("%s not found (dpkg-dev and debhelper; "
                             "tests/install-deps installs them)" % tool)
            return
    if sanitized_build():
        built["skip"] = ("sanitizer build: the packages are built from the "
                         "source, not from this build, and the plain "
                         "build's run checks them")
        return
    scratch = tempfile.mkdtemp(prefix="pmhost-deb-")
    unittest.addModuleCleanup(shutil.rmtree, scratch, ignore_errors=True)
    src = os.path.join(scratch, "pmhost")
    copy_source(src)
    r = run(["dpkg-checkbuilddeps"], cwd=src)
    if r.returncode != 0:
        built["skip"] = ("build dependencies missing (tests/install-deps "
                         "installs them): " + r.stdout.strip())
        return
    started = time.monotonic()
    env = dict(os.environ)
    for k in [k for k in env if k.startswith(("PMHOST", "ASAN", "UBSAN"))]:
        del env[k]
    r = run(["dpkg-buildpackage", "-b", "-us", "-uc", "-jauto"], cwd=src,
            env=env, timeout=BUILD_TIMEOUT)
    built["build_log"] = r.stdout
    built["build_rc"] = r.returncode
    print("dpkg-buildpackage: exit %d in %.0f s" %
          (r.returncode, time.monotonic() - started), file=sys.stderr)
    changes = glob.glob(os.path.join(scratch, "*.changes"))
    built["changes"] = changes[0] if len(changes) == 1 else None
    for deb in glob.glob(os.path.join(scratch, "*.deb")):
        name = deb_field(deb, "Package")
        if not name.endswith("-dbgsym"):
            built["debs"][name] = deb
    built["version"] = subprocess.run(
        ["dpkg-parsechangelog", "-l", os.path.join(src, "debian",
                                                   "changelog"),
         "-S", "Version"], stdout=subprocess.PIPE, text=True,
        check=True).stdout.strip()
    built["multiarch"] = subprocess.run(
        ["dpkg-architecture", "-qDEB_HOST_MULTIARCH"],
        stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    # Judged once, before anything is installed: what a purge leaves
    # behind later is a failure, not a reason to skip.
    built["clash"] = clash()


class DebianTest(harness.PmTest):
    """Base: skips without the built packages; runs installed commands."""

    @classmethod
    def setUpClass(cls):
        if built["skip"]:
            raise unittest.SkipTest(built["skip"])

    def setUp(self):
        super().setUp()
        self.assertEqual(built["build_rc"], 0,
                         "dpkg-buildpackage -b -us -uc failed:\n" +
                         built["build_log"][-6000:])
        self.assertEqual(sorted(built["debs"]), sorted(PACKAGES),
                         "binary packages built")

    def installed_pm(self, *args, timeout=30):
        """Runs the installed pmhost to completion; CompletedProcess."""
        return subprocess.run([BINARY, *map(str, args)], env=self.env,
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout * harness.SLOW)

    def plugin_dir(self):
        return "/usr/lib/%s/pmhost" % built["multiarch"]


class BuiltPackagesTest(DebianTest):
    """What dpkg-buildpackage made, before anything is installed."""

    def test_lintian_reports_no_error_or_warning(self):
        if shutil.which("lintian") is None:
            self.skipTest("lintian not found (tests/install-deps installs "
                          "it)")
        r = run(["lintian", "--fail-on", "error,warning", built["changes"]],
                timeout=600)
        tags = [ln for ln in r.stdout.splitlines()
                if re.match(r"^[EW]: ", ln)]
        self.assertEqual((r.returncode, tags), (0, []), r.stdout)

    def test_each_package_holds_its_files(self):
        ma = built["multiarch"]
        want = {
            "pmhost": [BINARY, "/usr/share/man/man1/pmhost.1.gz",
                       "/usr/share/man/man5/pmhost.json.5.gz",
                       "/usr/share/bash-completion/completions/pmhost",
                       UNIT, self.plugin_dir() + "/exec.so",
                       EXAMPLES + "/hello/hello.json",
                       EXAMPLES + "/hello/hello.so",
                       EXAMPLES + "/spool/spool.json",
                       "/usr/share/doc/pmhost/copyright"],
            "pmhost-dev": ["/usr/include/pmhost.h",
                           "/usr/lib/%s/pkgconfig/pmhost.pc" % ma],
        }
        for pkg, (so, _) in PLUGIN_LIBS.items():
            want[pkg] = [self.plugin_dir() + "/" + so]
        for pkg, paths in want.items():
            have = deb_paths(built["debs"][pkg])
            for p in paths:
                self.assertIn(p, have, "%s does not ship %s" % (pkg, p))
        # The examples' plugins are ELF: they live in the multiarch dir,
        # and /usr/share holds a symlink where each config expects them.
        pm = deb_paths(built["debs"]["pmhost"])
        self.assertEqual(pm[EXAMPLES + "/hello/hello.so"], "l")
        self.assertEqual(pm[self.plugin_dir() + "/examples/hello/hello.so"],
                         "-")

    def test_plugin_packages_depend_on_their_pmhost_and_library(self):
        version = built["version"]
        deps = {p: [d.strip() for d in
                    deb_field(built["debs"][p], "Depends").split(",")]
                for p in PACKAGES}
        self.assertIn("libjansson4", " ".join(deps["pmhost"]))
        for pkg, (_, lib) in PLUGIN_LIBS.items():
            self.assertIn("pmhost (= %s)" % version, deps[pkg], pkg)
            self.assertTrue(any(d.split()[0] == lib for d in deps[pkg]),
                            "%s: Depends %s lacks %s" % (pkg, deps[pkg], lib))


class InstalledPackagesTest(DebianTest):
    """The packages installed into this machine, used from their paths."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if built["clash"]:
            raise unittest.SkipTest(built["clash"])
        cls.install_rc, cls.install_output = 1, "nothing was built"
        if built["build_rc"] != 0 or sorted(built["debs"]) != \
                sorted(PACKAGES):
            return                      # setUp reports the build's failure
        cls.addClassCleanup(purge_ours)
        r = dpkg("-i", *built["debs"].values())
        cls.install_rc, cls.install_output = r.returncode, r.stdout

    def setUp(self):
        super().setUp()
        self.assertEqual(self.install_rc, 0, "dpkg -i failed:\n" +
                         self.install_output)

    def test_hello_example_runs_from_its_installed_config(self):
        cfg = EXAMPLES + "/hello/hello.json"
        r = self.installed_pm("--version")
        self.assertEqual(r.stdout.split()[:2], ["pmhost", built["version"]],
                         "the installed pmhost is not the package's version "
                         "(add a debian/changelog entry when the version "
                         "changes)")
        r = self.installed_pm("check", cfg)
        self.assertEqual((r.returncode, r.stdout.splitlines()[-1:]),
                         (0, ["ok"]), r.stderr)

        pid_file = self.pid_file("hello")
        self.addCleanup(self.kill_from_pid_file, pid_file)
        r = self.installed_pm("run", "-d", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"^hello: started \(pid (\d+), 2 workers; log (\S+)\)$",
                      r.stdout, re.M)
        self.assertTrue(m, r.stdout)
        master, log = int(m.group(1)), m.group(2)
        self.assertEqual(self.master_pid("hello"), master)
        self.wait_text(log, r"started: 2 workers of %s/hello/hello\.so$" %
                       re.escape(EXAMPLES))
        for slot in (0, 1):
            self.wait_text(log, r"info process_m:Worker:hello#%d\[\d+\]: "
                           r"hello from slot %d, call 2$" % (slot, slot))
        r = self.installed_pm("status", "--title", "hello", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)["masters"][0]
        workers = [w["pid"] for w in doc["workers"] if w["pid"]]
        self.assertEqual((doc["pid"], len(workers)), (master, 2), doc)

        r = self.installed_pm("stop", "--title", "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_gone([master] + workers, "hello's master and workers gone")
        self.assertFalse(os.path.exists(pid_file))

    def kill_from_pid_file(self, path):
        """SIGKILLs the master named in a pid file, if it is still there."""
        try:
            pid = int(self.read(path).strip() or 0)
        except ValueError:
            return
        if pid > 0 and "Master:hello" in (harness.proc_cmdline(pid) or ""):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def test_out_of_tree_plugin_builds_with_pkg_config(self):
        if shutil.which("cc") is None:
            self.skipTest("no C compiler")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PKG_CONFIG")}

        def pkgconfig(*args):
            return subprocess.run(["pkg-config", *args, "pmhost"], env=env,
                                  stdout=subprocess.PIPE, text=True)

        r = pkgconfig("--modversion")
        self.assertEqual((r.returncode, r.stdout.strip()),
                         (0, built["version"]))
        self.assertEqual(pkgconfig("--variable=includedir").stdout.strip(),
                         "/usr/include")
        cflags = pkgconfig("--cflags").stdout.split()
        src = self.write("task.c", PLUGIN_SRC)
        so, deps = self.path("task.so"), self.path("task.d")
        r = run(["cc", *cflags, "-shared", "-fPIC", "-MD", "-MF", deps,
                 "-o", so, src], env=env)
        self.assertEqual(r.returncode, 0, r.stdout)
        # The header the compiler used is the package's.
        self.assertIn("/usr/include/pmhost.h", self.read(deps).split())

        cfg = self.config(plugin_name=so, maxWorkerNum=1, executeTimes=2,
                          executeUSleep=20000)
        r = self.installed_pm("check", cfg)
        self.assertEqual((r.returncode, r.stdout.splitlines()[-1:]),
                         (0, ["ok"]), r.stderr)
        p = self.spawn([BINARY, "run", cfg])
        self.wait_text(p, r"info process_m:Worker:%s#0\[\d+\]: packaged "
                       r"header, slot 0, call 2$" % self.title)
        r = self.installed_pm("stop", "--title", self.title)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_exit(p), 0, self.output(p))

    def test_each_plugin_package_checks_its_example_configs(self):
        for configs in PLUGIN_EXAMPLES.values():
            for rel in configs:
                cfg = os.path.join(EXAMPLES, rel)
                with open(cfg) as f:
                    plugin = json.load(f)["plugin"]
                so = os.path.realpath(os.path.join(os.path.dirname(cfg),
                                                   plugin))
                self.assertEqual(os.path.dirname(so), self.plugin_dir(), cfg)
                r = self.installed_pm("check", cfg)
                self.assertEqual((r.returncode, r.stdout.splitlines()[-1:]),
                                 (0, ["ok"]), "%s: %s" % (cfg, r.stderr))

    def test_systemd_accepts_the_installed_unit(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not found (the systemd package; "
                          "tests/install-deps installs it)")
        with open(UNIT) as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStart=%s run /etc/pmhost/%%i\.json$"
                         % re.escape(BINARY))
        # verify runs man for each Documentation= page: without man, that
        # part cannot be checked.
        man = [] if shutil.which("man") else ["--man=no"]
        r = run(["systemd-analyze", "verify", *man, UNIT], timeout=60)
        about_unit = [ln for ln in r.stdout.splitlines() if "pmhost" in ln]
        self.assertEqual((r.returncode, about_unit), (0, []), r.stdout)


class PurgeTest(DebianTest):
    """dpkg --purge takes away everything dpkg -i brought."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if built["clash"]:
            raise unittest.SkipTest(built["clash"])
        cls.addClassCleanup(purge_ours)

    def test_purge_leaves_nothing_behind(self):
        r = dpkg("-i", *built["debs"].values())
        self.assertEqual(r.returncode, 0, r.stdout)
        kinds = {}
        for deb in built["debs"].values():
            kinds.update(deb_paths(deb))
        listed = []
        for pkg in PACKAGES:
            r = run(["dpkg", "-L", pkg])
            self.assertEqual(r.returncode, 0, r.stdout)
            listed += [p for p in r.stdout.splitlines() if p not in ("/.", "")]
        self.assertEqual(sorted(set(listed)), sorted(kinds),
                         "dpkg -L lists what the packages hold")
        files = [p for p in listed if kinds[p] != "d"]
        self.assertIn(BINARY, files)
        missing = [p for p in files if not os.path.lexists(p)]
        self.assertEqual(missing, [], "listed by dpkg -L but not installed")

        r = dpkg("--purge", *PACKAGES)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(known_to_dpkg(PACKAGES), [])
        left = [p for p in files if os.path.lexists(p)]
        self.assertEqual(left, [], "files left after dpkg --purge")
        # A directory of theirs that is still there must be another
        # package's, or hold something else.
        dirs = [p for p in listed if kinds[p] == "d" and os.path.isdir(p) and
                not os.listdir(p)]
        orphans = []
        if dirs:
            r = run(["dpkg-query", "-S", *dirs])
            orphans = re.findall(r"no path found matching pattern (\S+)",
                                 r.stdout)
        self.assertEqual(orphans, [], "empty directories left by the purge")
        for d in own_dirs():
            self.assertFalse(os.path.lexists(d), d)


def own_dirs():
    """The directories only pmhost's packages make."""
    return ["/usr/share/pmhost", "/usr/lib/%s/pmhost" % built["multiarch"],
            "/usr/share/doc/pmhost"]


def clash():
    """Why the packages may not be installed here, or None: any of them is
    known to dpkg, or a file they ship exists already (dpkg -i would
    overwrite it and the purge delete it)."""
    known = known_to_dpkg(PACKAGES)
    if known:
        return ("already known to dpkg: %s; the suite would replace and "
                "purge them" % " ".join(known))
    for d in own_dirs():
        if os.path.lexists(d):
            return "%s exists already, not from a package" % d
    for pkg, deb in built["debs"].items():
        for path, kind in deb_paths(deb).items():
            if kind != "d" and os.path.lexists(path):
                return ("%s exists already (not from a package); %s would "
                        "overwrite it" % (path, pkg))
    return None


if __name__ == "__main__":
    harness.main()
