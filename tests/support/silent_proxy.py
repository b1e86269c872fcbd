"""A TCP proxy on 127.0.0.1 that a test can make go silent both ways without closing
anything, as after a failover, a dead NAT entry or a network partition: connections stay
open, nothing is forwarded in either direction and nothing is refused. New connections are
accepted and then left silent too.

    with SilentProxy(target_port) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
        ...
        proxy.go_silent()
"""
import select
import socket
import threading


class SilentProxy:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._lock = threading.Lock()
        self._socks = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def go_silent(self):
        """From now on nothing is forwarded either way; every socket stays open."""
        self._flowing.clear()

    def resume(self):
        self._flowing.set()

    def close(self):
        """Closes the listener and every connection (the end of the test)."""
        self._closed = True
        self._flowing.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def _wait_flowing(self):
        """Blocks while silent; False once the proxy is closed."""
        while not self._flowing.wait(0.2):
            pass
        return not self._closed

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._socks.append(client)
                self.connections += 1
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        if not self._wait_flowing():
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._socks.append(upstream)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            if not self._wait_flowing():
                return
            try:
                ready, _, _ = select.select([src], [], [], 0.2)
                if not ready:
                    continue
                data = src.recv(65536)
            except (OSError, ValueError):
                return
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            # read just as the path went silent: held, like everything after it
            if not self._wait_flowing():
                return
            try:
                dst.sendall(data)
            except OSError:
                return
