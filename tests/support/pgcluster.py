"""A throwaway PostgreSQL cluster for tests: initdb into a temporary directory, start on a
free loopback port (and a unix socket in that directory), stop by PID.

When run as root (CI), the server runs as the `postgres` system user, since PostgreSQL
refuses to run as root.
"""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def pg_bindir():
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(p.split("/")[-2]))
    if not cands:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql/*/bin; install postgresql")
    return cands[-1]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="rw-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = None
        self.pid = None
        self._as_user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)
            self._as_user = "postgres"

    def _run(self, args, **kw):
        if self._as_user:
            args = ["runuser", "-u", self._as_user, "--"] + args
        return subprocess.run(args, check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, **kw)

    def init(self, ssl_pki=None, hba=None):
        """ssl_pki: the certificate and key make_ca() returns (tests/support/pki.py): the
        server then offers TLS with them. hba: pg_hba.conf lines replacing initdb's "trust
        everyone"; keep a line that trusts user postgres on 127.0.0.1, which the tests'
        own connections use."""
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                   "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            # Durability is not what these tests measure; speed is welcome.
            f.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 100\nlisten_addresses = '127.0.0.1'\n")
            if ssl_pki is not None:
                for src, dst in ((ssl_pki["server.pem"], "server.crt"),
                                 (ssl_pki["server.key"], "server.key")):
                    shutil.copyfile(src, os.path.join(self.data, dst))
                    self._own(os.path.join(self.data, dst), 0o600)
                f.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        if hba is not None:
            path = os.path.join(self.data, "pg_hba.conf")
            with open(path, "w") as f:
                f.write("".join(line + "\n" for line in hba))
            self._own(path, 0o600)
        return self

    def _own(self, path, mode):
        """The server reads its files as the user it runs as."""
        os.chmod(path, mode)
        if self._as_user:
            pw = pwd.getpwnam(self._as_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self):
        last = None
        for _ in range(5):
            self.port = free_port()
            log = os.path.join(self.dir, "server.log")
            try:
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", log,
                           "-w", "-t", "60", "-o",
                           f"-p {self.port} -k {self.dir} -h 127.0.0.1", "start"])
            except subprocess.CalledProcessError as e:
                last = e
                continue
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                self.pid = int(f.readline().strip())
            return self
        raise RuntimeError(f"PostgreSQL did not start: {last and last.stdout}")

    def url(self, dbname="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname="postgres"):
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname=dbname)
        conn.autocommit = True
        return conn

    def create_db(self, name, template=None):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                tmpl = f" TEMPLATE {template}" if template else ""
                cur.execute(f"CREATE DATABASE {name}{tmpl}")
        finally:
            conn.close()
        return name

    def _wait_gone(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    def stop(self, immediate=False):
        """Stops the server by PID: SIGINT (fast) or SIGQUIT (immediate), then SIGKILL."""
        if self.pid is None:
            return
        sig = signal.SIGQUIT if immediate else signal.SIGINT
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        if not self._wait_gone(30):
            os.kill(self.pid, signal.SIGKILL)
            self._wait_gone(10)
        self.pid = None

    def restart(self):
        """Starts again on the same port after a stop."""
        log = os.path.join(self.dir, "server.log")
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", log, "-w",
                   "-t", "60", "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1", "start"])
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline().strip())

    def restart_fast(self):
        """pg_ctl restart -m fast: every session is terminated, the server comes back on the
        same port, as after a failover of a managed database."""
        log = os.path.join(self.dir, "server.log")
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", log, "-w",
                   "-t", "60", "-m", "fast", "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1",
                   "restart"])
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline().strip())

    @property
    def log_path(self):
        return os.path.join(self.dir, "server.log")

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
