"""postfix: a private Postfix instance for tests (Debian's postfix package), never the system
one. Its smtpd listens on 127.0.0.1 on a free port and relays everything to a loopback SMTP
server the test gives (host, port) with relayhost = [127.0.0.1]:PORT; nothing is delivered off
the machine (no DNS, no local delivery).

    from postfix import Postfix
    with Postfix.start(relay_port=sink.port, extra={"smtpd_client_message_rate_limit": "20"}) as pf:
        ...  # send to 127.0.0.1:pf.port
        pf.wait_queue_empty()
        pf.log_lines()  # its maillog (debug_peer_list logs every client command)

Everything lives in one temporary directory: config_directory (main.cf, master.cf),
queue_directory, data_directory and the maillog. It runs as the package's postfix user and
postdrop group, started with `postfix -c DIR start` and stopped with `postfix -c DIR stop`,
then by the master's PID if that did not work. Needs root (postfix start does).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
DAEMON_DIR = "/usr/lib/postfix/sbin"

# No chroot (column 5 "n"), so nothing has to be copied into the queue directory.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available():
    """Whether a private instance can run here: the package's programs and users, and root."""
    if os.geteuid() != 0 or not os.access(POSTFIX, os.X_OK):
        return False
    try:
        import grp
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return False
    return True


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postfix:
    def __init__(self, relay_port, extra=None, tls_cert=None, tls_key=None):
        self.relay_port = relay_port
        self.extra = dict(extra or {})
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.dir = tempfile.mkdtemp(prefix="rw-postfix-")
        os.chmod(self.dir, 0o755)  # the daemons run as postfix
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = None
        self.started = False

    @classmethod
    def start(cls, relay_port, extra=None, **kwargs):
        pf = cls(relay_port, extra, **kwargs)
        try:
            pf._start()
        except Exception:
            pf.cleanup()
            raise
        return pf

    def main_cf(self):
        conf = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": "postfix-rwtest",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "postfix.rw.test",
            "mydomain": "rw.test",
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:no local delivery",
            "alias_maps": "",
            "alias_database": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            # Every message goes to the test's server, never off the machine.
            "relayhost": "[127.0.0.1]:%d" % self.relay_port,
            "default_transport": "smtp",
            "relay_transport": "smtp",
            "smtp_dns_support_level": "disabled",
            "smtp_tls_security_level": "none",
            "smtpd_banner": "$myhostname ESMTP",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "biff": "no",
            # Every client command in the maillog ("< localhost[127.0.0.1]: BDAT 1234").
            "debug_peer_list": "127.0.0.1",
            "debug_peer_level": "2",
        }
        if self.tls_cert:
            conf.update({
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": self.tls_cert,
                "smtpd_tls_key_file": self.tls_key,
                "smtpd_tls_loglevel": "1",  # "TLS connection established ...: TLSv1.3 ..."
            })
        conf.update(self.extra)
        return "".join("%s = %s\n" % kv for kv in conf.items())

    def _start(self):
        os.makedirs(self.conf)
        os.makedirs(self.queue)
        os.makedirs(self.data)
        self.port = free_port()
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        # Queue and data directories owned as Postfix insists (post-install creates the
        # queue subdirectories with their modes).
        self._run([DAEMON_DIR + "/post-install", "config_directory=" + self.conf,
                   "meta_directory=/etc/postfix", "create-missing"])
        os.chown(self.data, pwd.getpwnam("postfix").pw_uid, -1)
        self._run([POSTFIX, "-c", self.conf, "start"])
        self.started = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("postfix did not start: %s" % self.log_text()[-3000:])

    def _run(self, cmd):
        # postfix writes its errors to stderr only when that is a terminal (syslog
        # otherwise, which a test machine may not have): script(1) gives it one.
        proc = subprocess.run(["script", "-qec", " ".join(cmd), "/dev/null"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode,
                                                       proc.stdout))
        return proc.stdout

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def queue_size(self):
        """Messages still in the queue (incoming, active, deferred, hold)."""
        n = 0
        for sub in ("incoming", "active", "deferred", "hold", "maildrop"):
            for _, _, files in os.walk(os.path.join(self.queue, sub)):
                n += len(files)
        return n

    def wait_queue_empty(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_size() == 0:
                return True
            time.sleep(0.2)
        return False

    def log_text(self):
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        try:
            subprocess.run([POSTFIX, "-c", self.conf, "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        if pid is None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False
