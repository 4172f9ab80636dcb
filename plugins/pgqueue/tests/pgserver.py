"""A scratch PostgreSQL server for pgqueue's tests and benchmark.

initdb and pg_ctl from PGBIN (default /usr/lib/postgresql/15/bin) run as
an unprivileged user (PostgreSQL refuses root), in a directory of their
own, listening on a Unix socket in that directory only: no TCP port.
Every start and stop is bounded in time; stop() ends with SIGKILL by pid
if the server has not gone by itself.  Queries go through psql.
"""

import os
import shutil
import signal
import subprocess
import time

PGBIN = os.environ.get("PMHOST_PGBIN", "/usr/lib/postgresql/15/bin")
NOBODY = 65534
AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
             "--clear-groups"]
PORT = 5432
USER = "pgq"
DB = "postgres"


def available():
    """None if a server can be started here, else why not."""
    for tool in ("initdb", "pg_ctl", "postgres", "psql"):
        if not os.access(os.path.join(PGBIN, tool), os.X_OK):
            return "%s not found in %s" % (tool, PGBIN)
    if shutil.which("setpriv") is None:
        return "setpriv not found"
    return None


class PgError(Exception):
    pass


class PgServer:
    """One server in root/ (made, and chowned to nobody).  settings: extra
    postgresql.conf settings, as {name: value}."""

    def __init__(self, root, settings=None):
        self.root = root
        self.data = os.path.join(root, "data")
        self.log = os.path.join(root, "server.log")
        self.settings = {
            "listen_addresses": "''",
            "unix_socket_directories": "'%s'" % root,
            "port": str(PORT),
            "max_connections": "200",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] '",
        }
        self.settings.update(settings or {})
        self.pid = None
        # A clean environment: nothing of a test's tag, no PG* overrides.
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PMHOST_", "PG"))}
        self.env["LC_ALL"] = "C"

    @property
    def conninfo(self):
        return self.conninfo_for(DB)

    def conninfo_for(self, db):
        return "host=%s port=%d user=%s dbname=%s" % (self.root, PORT, USER,
                                                      db)

    def _as_nobody(self, argv, timeout):
        r = subprocess.run(AS_NOBODY + argv, env=self.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise PgError("%s failed (%d): %s" % (argv[0], r.returncode,
                                                  r.stdout[-2000:]))
        return r.stdout

    def init(self, timeout=60):
        os.makedirs(self.root, exist_ok=True)
        # nobody must reach root: its parent is typically a private
        # mkdtemp() dir.  Search permission only, nothing readable.
        parent = os.path.dirname(os.path.abspath(self.root))
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
        os.chown(self.root, NOBODY, NOBODY)
        os.chmod(self.root, 0o700)
        self._as_nobody([os.path.join(PGBIN, "initdb"), "-D", self.data,
                         "-U", USER, "--auth=trust", "--no-sync",
                         "-E", "UTF8", "--locale=C"], timeout)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            for k, v in self.settings.items():
                f.write("%s = %s\n" % (k, v))

    def start(self, timeout=30):
        """Starts the server and waits until it accepts connections."""
        self._as_nobody([os.path.join(PGBIN, "pg_ctl"), "-D", self.data,
                         "-l", self.log, "-w", "-t", str(int(timeout)),
                         "start"], timeout + 5)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def ensure_started(self, timeout=30):
        """Starts the server unless this object started it already."""
        if self.pid is None:
            self.start(timeout)

    def stop(self, timeout=10):
        """Stops the server at once (-m immediate), then SIGKILLs its
        postmaster by pid if it is still there.  Safe to call twice."""
        if self.pid is None:
            return
        try:
            self._as_nobody([os.path.join(PGBIN, "pg_ctl"), "-D", self.data,
                             "-m", "immediate", "-w", "-t",
                             str(int(timeout)), "stop"], timeout + 5)
        except (PgError, subprocess.TimeoutExpired):
            pass
        deadline = time.monotonic() + timeout
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _alive(self.pid):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        # Its children (backends) die with it; wait for them to go.
        while _children_of(self.pid) and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        self.pid = None

    def psql(self, sql, db=DB, timeout=60, check=True):
        """Runs sql with psql in database db (unaligned, tuples only, |
        between fields); stdout, stripped."""
        r = subprocess.run(
            [os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-d", self.conninfo_for(db),
             "-c", sql],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise PgError("psql: %s\n%s\n--- server log, last lines ---\n%s"
                          % (r.stderr.strip(), sql[:300],
                             "\n".join(self.server_log().splitlines()[-15:])))
        return r.stdout.strip()

    def scalar(self, sql, db=DB, timeout=60):
        out = self.psql(sql, db, timeout)
        return int(out) if out.lstrip("-").isdigit() else out

    def server_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2] != "Z"


def _children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if int(rest[1]) == pid and rest[0] != "Z":
            out.append(int(d))
    return out
