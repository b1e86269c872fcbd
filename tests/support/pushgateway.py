"""pushgateway: a throwaway Prometheus Pushgateway (Debian's prometheus-pushgateway) on a free
loopback port, in memory only, stopped by its PID.

    from pushgateway import Pushgateway
    with Pushgateway.start() as pgw:
        ...  # push to pgw.url
        pgw.metrics()   # {(name, frozenset({(label, value), ...})): float}

The package is installed with
    DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-pushgateway
Its own system service is not used: each test starts its own instance.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def pushgateway_binary():
    """RW_PUSHGATEWAY, or prometheus-pushgateway on PATH or in /usr/bin."""
    override = os.environ.get("RW_PUSHGATEWAY")
    if override:
        return override
    found = shutil.which("prometheus-pushgateway")
    if found:
        return found
    if os.access("/usr/bin/prometheus-pushgateway", os.X_OK):
        return "/usr/bin/prometheus-pushgateway"
    raise RuntimeError("prometheus-pushgateway not found: install the Debian package "
                       "prometheus-pushgateway")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_exposition(text):
    """Text exposition format to {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        labels = {}
        brace, space = line.find("{"), line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name, rest = line[:brace], _parse_labels(line[brace + 1:], labels)
        else:
            name, rest = line[:space], line[space + 1:]
        value = rest.strip().split()[0]
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def _parse_labels(s, labels):
    """Reads 'a="x",b="y"} rest' into labels; returns rest."""
    i = 0
    while True:
        while s[i] in " ,":
            i += 1
        if s[i] == "}":
            return s[i + 1:]
        eq = s.index("=", i)
        key = s[i:eq].strip()
        i = eq + 1
        assert s[i] == '"', s
        i += 1
        val = []
        while s[i] != '"':
            if s[i] == "\\":
                nxt = s[i + 1]
                val.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                i += 2
            else:
                val.append(s[i])
                i += 1
        labels[key] = "".join(val)
        i += 1


class Pushgateway:
    def __init__(self, startup_timeout=20.0):
        self.binary = pushgateway_binary()
        self.workdir = tempfile.mkdtemp(prefix="rw-pgw-")
        self.log_file = os.path.join(self.workdir, "pushgateway.log")
        self.startup_timeout = startup_timeout
        self.port = None
        self.pid = None
        self.proc = None

    @classmethod
    def start(cls, **kwargs):
        pgw = cls(**kwargs)
        pgw._launch()
        return pgw

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _launch(self):
        last = None
        for _ in range(5):
            self.port = free_port()
            with open(self.log_file, "ab") as log:
                # An empty --persistence.file keeps everything in memory (Debian's default
                # would write under /var/lib/prometheus).
                self.proc = subprocess.Popen(
                    [self.binary, f"--web.listen-address=127.0.0.1:{self.port}",
                     "--persistence.file=", "--log.level=info"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            self.pid = self.proc.pid
            if self._wait_ready():
                return
            last = self._log_tail()
            self.stop()
        raise RuntimeError(f"pushgateway did not become ready: {last}")

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _log_tail(self):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def metrics(self):
        """GET /metrics, parsed."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            return parse_exposition(r.read().decode("utf-8"))

    def value(self, name, **labels):
        """One sample's value, or None when the Pushgateway has no such sample."""
        return self.metrics().get((name, frozenset(labels.items())))

    def stop(self):
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.pid = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
