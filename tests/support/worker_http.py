"""The worker's HTTP endpoints as the tests use them: start `serve` (or `run`) on a free
loopback port (HTTP_LISTEN=127.0.0.1:0; the port is read from the "http server listening"
log line), stop it by PID, plain HTTP/1.1 requests with bounded waits, and link tokens made
the way the README specifies them (for expired ones)."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse

from harness import RW_BIN, sanitizer_env

SECRET = "unsubscribe-test-secret-0123456789abcdef"
UNSUBSCRIBE_URL = "https://shop.test/account/unsubscribe"
UNSUBSCRIBE_PATH = "/account/unsubscribe"
ONE_CLICK = "List-Unsubscribe=One-Click"


class WorkerHttp:
    """A `recovery-worker serve` (or `run`) process with its port."""

    def __init__(self, env, command="serve", cwd=None):
        self.logpath = tempfile.mktemp(prefix="rw-http-", suffix=".log")
        self.log = open(self.logpath, "w+")
        full = {k: v for k, v in os.environ.items()
                if not k.startswith(("SMTP_", "DATABASE_", "RW_", "RECOVERY_WORKER_", "HTTP_"))}
        full.update(sanitizer_env())
        full.update(env)
        full.setdefault("HTTP_LISTEN", "127.0.0.1:0")
        self.proc = subprocess.Popen([RW_BIN, command], env=full, cwd=cwd or tempfile.gettempdir(),
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            for line in self.lines():
                if line.get("msg") == "http server listening":
                    self.port = line["port"]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError(f"the HTTP server did not start: {self.stderr()}")

    def lines(self):
        out = []
        with open(self.logpath) as f:
            for l in f:
                try:
                    out.append(json.loads(l))
                except ValueError:
                    pass
        return out

    def stderr(self):
        with open(self.logpath) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM by PID; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode

    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers dict with lower-case names, body text)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read().decode("utf-8", "replace")
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def unsubscribe_path(self, token):
        return UNSUBSCRIBE_PATH + "?token=" + urllib.parse.quote(token, safe="")

    def one_click(self, token, accept=None):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if accept:
            headers["Accept"] = accept
        return self.request("POST", self.unsubscribe_path(token), body=ONE_CLICK, headers=headers)


def http_env(**extra):
    env = {"RESUME_LINK_SECRET": SECRET, "UNSUBSCRIBE_URL": UNSUBSCRIBE_URL}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(purpose, order, orch, stage="payment", iat=None, exp=None, secret=SECRET,
               kid="k1"):
    """A v1 token as the README specifies it (one secret: kid k1)."""
    now = int(time.time())
    iat = now - 60 if iat is None else iat
    exp = now + 3600 if exp is None else exp
    payload = json.dumps({"purpose": purpose, "order": order, "orch": orch, "stage": stage,
                          "iat": iat, "exp": exp}, separators=(",", ":")).encode()
    head = f"v1.{kid}.{b64url(payload)}"
    mac = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{b64url(mac)}"


def query_token(url):
    """The token= parameter of a URL."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return q["token"][0]


def unsubscribe_token_of(message):
    """The token of a prompt's List-Unsubscribe https URI (an email.message.EmailMessage)."""
    header = str(message["List-Unsubscribe"])
    uri = header.split("<", 1)[1].split(">", 1)[0]
    assert uri.startswith(UNSUBSCRIBE_URL), uri
    return query_token(uri)
