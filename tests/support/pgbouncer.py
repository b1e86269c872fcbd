"""A throwaway PgBouncer (Debian's pgbouncer package) in front of a test PostgreSQL: its own
ini and auth file in a temporary directory, listening on 127.0.0.1 on a free port, started
in the foreground and stopped by PID. PgBouncer refuses to run as root, so when the tests
run as root it runs as the postgres user.

    bouncer = PgBouncer(pg_port, pool_mode="transaction", pool_size=2).start()
    url = bouncer.url("dbname")
    ...
    bouncer.stop()
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from pgcluster import free_port


def pgbouncer_bin():
    for p in ("/usr/sbin/pgbouncer", shutil.which("pgbouncer") or ""):
        if p and os.access(p, os.X_OK):
            return p
    return None


class PgBouncer:
    def __init__(self, pg_port, pool_mode="transaction", pool_size=2, pg_host="127.0.0.1"):
        self.bin = pgbouncer_bin()
        if self.bin is None:
            raise RuntimeError("pgbouncer not found: install the pgbouncer package")
        self.pg = (pg_host, pg_port)
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.dir = tempfile.mkdtemp(prefix="rw-pgbouncer-")
        self.port = None
        self.proc = None
        self._user = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pw = pwd.getpwnam(self._user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    @property
    def log_path(self):
        return os.path.join(self.dir, "pgbouncer.log")

    def _write_config(self):
        ini = os.path.join(self.dir, "pgbouncer.ini")
        users = os.path.join(self.dir, "userlist.txt")
        with open(users, "w") as f:
            f.write('"postgres" ""\n')
        with open(ini, "w") as f:
            f.write(f"""[databases]
* = host={self.pg[0]} port={self.pg[1]}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = {self.pool_mode}
default_pool_size = {self.pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
server_lifetime = 3600
server_idle_timeout = 600
ignore_startup_parameters = extra_float_digits
logfile = {self.log_path}
admin_users = postgres
""")
        if self._user:
            pw = pwd.getpwnam(self._user)
            for p in (ini, users):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        return ini

    def start(self):
        last = None
        for _ in range(5):
            self.port = free_port()
            ini = self._write_config()
            kw = {}
            if self._user:
                pw = pwd.getpwnam(self._user)
                kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            # its log goes to stderr too: a file, so a busy pool never fills a pipe
            with open(os.path.join(self.dir, "stderr.log"), "ab") as err:
                self.proc = subprocess.Popen([self.bin, ini], cwd=self.dir,
                                             stdout=subprocess.DEVNULL, stderr=err, **kw)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                except OSError:
                    time.sleep(0.05)
            with open(os.path.join(self.dir, "stderr.log"), errors="replace") as f:
                last = f.read()[-2000:]
            self.stop()
        raise RuntimeError(f"pgbouncer did not start: {last}")

    def url(self, dbname):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname):
        import psycopg2
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname=dbname)

    def drop_server_connections(self, dbname):
        """Closes the pool's server connections to dbname (admin console KILL, then RESUME),
        e.g. so the database can be dropped."""
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname="pgbouncer")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'KILL "{dbname}"')
                cur.execute(f'RESUME "{dbname}"')
        finally:
            conn.close()

    def stop(self):
        """SIGTERM (PgBouncer's immediate shutdown), then SIGKILL, by PID."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
