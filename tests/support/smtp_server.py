"""smtp_server: start and stop tests/support/smtpd.py, a throwaway SMTP server on a free
loopback port, and read what it received.

    from smtp_server import SmtpServer
    with SmtpServer.start(mode="normal", maildir=tmpdir) as srv:
        ...  # send to 127.0.0.1:srv.port
        msgs = srv.messages()   # [StoredMessage(seq, envelope, message, raw)]
        srv.stats()["sessions"]

The server runs as a child process and is stopped by its PID (SIGTERM, then SIGKILL).
"""

import email
import email.policy
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
SMTPD = os.path.join(HERE, "smtpd.py")


class StoredMessage(NamedTuple):
    seq: int
    envelope: dict  # mail_from, rcpt_tos, helo, tls, auth_user, peer, received_at
    message: email.message.EmailMessage
    raw: bytes


def smtpd_python():
    """An interpreter that can import aiosmtpd: RW_SMTPD_PYTHON, this one, or Debian's."""
    override = os.environ.get("RW_SMTPD_PYTHON")
    if override:
        return override
    if importlib.util.find_spec("aiosmtpd") is not None:
        return sys.executable
    return "/usr/bin/python3"


class SmtpServer:
    def __init__(self, mode="normal", maildir=None, user=None, password=None, cert=None,
                 key=None, delay_ms=0, stall_s=None, plain_ehlo=False, startup_timeout=15.0,
                 max_rate=None, max_connections=None, mail_tempfail_after=None, quota=None,
                 tls_min=None, implicit_tls=False):
        self.mode = mode
        self.workdir = tempfile.mkdtemp(prefix="rw-smtpd-")
        self.maildir = maildir or os.path.join(self.workdir, "maildir")
        self.user, self.password = user, password
        self.cert, self.key = cert, key
        self.delay_ms = delay_ms
        self.stall_s = stall_s
        self.plain_ehlo = plain_ehlo
        self.startup_timeout = startup_timeout
        self.limits = {"--max-rate": max_rate, "--max-connections": max_connections,
                       "--mail-tempfail-after": mail_tempfail_after, "--quota": quota,
                       "--tls-min": tls_min}
        self.implicit_tls = implicit_tls
        self.host = "127.0.0.1"
        self.port = None
        self.pid = None
        self.proc = None
        self.port_file = os.path.join(self.workdir, "port")
        self.pid_file = os.path.join(self.workdir, "pid")
        self.stats_file = os.path.join(self.workdir, "stats.json")
        self.transcript_file = os.path.join(self.workdir, "transcript.txt")
        self.log_file = os.path.join(self.workdir, "smtpd.log")

    @classmethod
    def start(cls, mode="normal", maildir=None, **kwargs):
        server = cls(mode=mode, maildir=maildir, **kwargs)
        server._launch()
        return server

    def _command(self):
        cmd = [smtpd_python(), SMTPD, "--port", "0", "--port-file", self.port_file,
               "--pid-file", self.pid_file, "--stats-file", self.stats_file,
               "--transcript", self.transcript_file, "--maildir", self.maildir,
               "--mode", self.mode, "--delay-ms", str(self.delay_ms)]
        if self.user is not None:
            cmd += ["--user", self.user, "--password", self.password or ""]
        if self.cert is not None:
            cmd += ["--cert", self.cert, "--key", self.key]
        if self.stall_s is not None:
            cmd += ["--stall-s", str(self.stall_s)]
        if self.plain_ehlo:
            cmd.append("--plain-ehlo")
        for flag, value in self.limits.items():
            if value is not None:
                cmd += [flag, str(value)]
        if self.implicit_tls:
            cmd.append("--implicit-tls")
        return cmd

    def _launch(self):
        os.makedirs(self.maildir, exist_ok=True)
        log = open(self.log_file, "wb")
        try:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("smtpd.py exited with %s: %s" % (self.proc.returncode,
                                                                    self.log()))
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                if self._accepts():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtpd.py did not start within %.0f s: %s" % (self.startup_timeout,
                                                                         self.log()))

    def _accepts(self):
        # Not a connect(): that would count as a connection in the stats.
        return os.path.exists(self.stats_file)

    def log(self):
        try:
            with open(self.log_file, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stats(self):
        with open(self.stats_file) as f:
            return json.load(f)

    def transcript(self):
        """Client lines received, "cN <line>", AUTH secrets redacted."""
        try:
            with open(self.transcript_file, encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def messages(self):
        out = []
        for name in sorted(os.listdir(self.maildir)):
            if not name.endswith(".eml") or name.startswith("."):
                continue
            base = os.path.join(self.maildir, name[:-4])
            with open(base + ".eml", "rb") as f:
                raw = f.read()
            with open(base + ".json") as f:
                envelope = json.load(f)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            out.append(StoredMessage(envelope["seq"], envelope, msg, raw))
        return out

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


def start(mode="normal", maildir=None, **kwargs):
    return SmtpServer.start(mode=mode, maildir=maildir, **kwargs)


def free_port():
    """A port nothing listens on right now (for "relay not listening" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
