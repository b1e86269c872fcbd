"""SPEC §8: after each sweep the worker pushes last-sweep gauges to a real Prometheus
Pushgateway and pings a heartbeat URL on start and on success or failure; neither target
being down ever fails the sweep."""
import http.server
import json
import socket
import threading
import time
import unittest
import uuid

from harness import WorkerTestCase
from pushgateway import Pushgateway, free_port

JOB = "recovery-worker"


class HeartbeatRecorder:
    """A loopback HTTP server that answers 200 to everything and records each request."""

    def __init__(self):
        self.requests = []  # (method, path, body)
        lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
                with lock:
                    recorder.requests.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _record

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self):
        return [p for _, p, _ in self.requests]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port():
    return free_port()


class MetricsPush(WorkerTestCase):

    def setUp(self):
        super().setUp()
        self.pgw = Pushgateway.start()
        self.addCleanup(self.pgw.cleanup)
        self.instance = "it-" + uuid.uuid4().hex[:8]

    def pushed(self, name, instance=None, **labels):
        labels.update(job=JOB, instance=instance or self.instance)
        return self.pgw.value(name, **labels)

    def sweep_pushing(self, *args, expect=0, **env):
        return self.sweep(*args, expect=expect, PUSHGATEWAY_URL=self.pgw.url,
                          RW_METRICS_INSTANCE=self.instance, **env)

    def test_completed_sweep_pushes_counts_by_outcome_and_success(self):
        for _ in range(3):
            self.seed()
        self.seed(opted_out=True)
        before = time.time()
        r = self.sweep_pushing(expect=0)
        self.assertEqual(r.summary["nudges_sent"], 3, r)
        name = "recovery_worker_last_sweep_orchestrations"
        self.assertEqual(self.pushed(name, outcome="sent"), 3)
        self.assertEqual(self.pushed(name, outcome="skipped_opt_out"), 1)
        self.assertEqual(self.pushed(name, outcome="failed"), 0)
        self.assertEqual(self.pushed("recovery_worker_last_sweep_processed"), 4)
        self.assertEqual(self.pushed("recovery_worker_last_sweep_success"), 1)
        self.assertGreaterEqual(self.pushed("recovery_worker_last_sweep_duration_seconds"), 0)
        last_success = self.pushed("recovery_worker_last_success_timestamp_seconds")
        self.assertIsNotNone(last_success)
        self.assertAlmostEqual(last_success, time.time(), delta=120)
        self.assertGreaterEqual(last_success, before - 5)
        self.assertAlmostEqual(self.pushed("recovery_worker_last_sweep_timestamp_seconds"),
                               last_success, delta=5)
        # Everything due was handled and moved forward.
        self.assertEqual(self.pushed("recovery_worker_due_orchestrations"), 0)

    def test_backlog_left_by_a_limited_sweep_is_pushed(self):
        for _ in range(3):
            self.seed(next_action="now() - interval '10 minutes'")
        self.sweep_pushing("--limit", "1", expect=0)
        self.assertEqual(self.pushed("recovery_worker_last_sweep_processed"), 1)
        self.assertEqual(self.pushed("recovery_worker_due_orchestrations"), 2)
        self.assertGreaterEqual(self.pushed("recovery_worker_oldest_due_age_seconds"), 500)

    def test_failed_sweep_pushes_success_0_and_keeps_the_last_success_time(self):
        self.seed()
        self.sweep_pushing(expect=0)
        t_ok = self.pushed("recovery_worker_last_success_timestamp_seconds")
        self.assertIsNotNone(t_ok)
        time.sleep(1.1)
        self.seed()
        self.sweep_pushing(expect=69, SMTP_PORT=9)
        self.assertEqual(self.pushed("recovery_worker_last_sweep_success"), 0)
        self.assertEqual(self.pushed("recovery_worker_last_sweep_orchestrations", outcome="sent"),
                         0)
        self.assertEqual(self.pushed("recovery_worker_last_success_timestamp_seconds"), t_ok)
        self.assertGreater(self.pushed("recovery_worker_last_sweep_timestamp_seconds"), t_ok)

    def test_instance_defaults_to_the_host_name(self):
        self.seed()
        self.sweep(expect=0, PUSHGATEWAY_URL=self.pgw.url)
        self.assertEqual(self.pushed("recovery_worker_last_sweep_success",
                                     instance=socket.gethostname()), 1)

    def test_dry_run_pushes_nothing(self):
        self.seed()
        self.sweep_pushing("--dry-run", expect=0)
        names = {name for name, _ in self.pgw.metrics()}
        self.assertFalse([n for n in names if n.startswith("recovery_worker_")], names)

    def test_unreachable_pushgateway_and_heartbeat_leave_the_sweep_successful(self):
        self.seed()
        start = time.time()
        r = self.sweep(expect=0,
                       PUSHGATEWAY_URL=f"http://pusher:s3cret-pw@127.0.0.1:{closed_port()}",
                       HEARTBEAT_URL=f"http://127.0.0.1:{closed_port()}/ping/hb-secret-uuid")
        self.assertLess(time.time() - start, 60)
        self.assertEqual(r.summary["nudges_sent"], 1)
        self.assertEqual(len(self.mails()), 1)
        warnings = [l for l in r.logs if l.get("level") == "warn"]
        msgs = [l.get("msg") for l in warnings]
        self.assertIn("metrics push failed", msgs, r)
        self.assertIn("heartbeat ping failed", msgs, r)
        self.assertNotIn("s3cret-pw", r.stderr)
        self.assertNotIn("hb-secret-uuid", r.stderr)


class Heartbeat(WorkerTestCase):

    def setUp(self):
        super().setUp()
        self.hb = HeartbeatRecorder()
        self.addCleanup(self.hb.stop)

    def test_successful_sweep_pings_start_then_success(self):
        self.seed()
        r = self.sweep(expect=0, HEARTBEAT_URL=self.hb.url("/ping/check-1"))
        self.assertEqual(self.hb.paths(), ["/ping/check-1/start", "/ping/check-1"], r)
        run_ids = {l["run_id"] for l in r.logs if "run_id" in l}
        _, _, body = self.hb.requests[-1]
        report = json.loads(body)
        self.assertIn(report["run_id"], run_ids)
        self.assertEqual(report["nudges_sent"], 1)

    def test_failed_sweep_pings_start_then_fail(self):
        self.seed()
        r = self.sweep(expect=69, SMTP_PORT=9, HEARTBEAT_URL=self.hb.url("/ping/check-2/"))
        self.assertEqual(self.hb.paths(), ["/ping/check-2/start", "/ping/check-2/fail"], r)

    def test_heartbeat_alone_needs_no_pushgateway(self):
        r = self.sweep(expect=0, HEARTBEAT_URL=self.hb.url("/hc"))
        self.assertEqual(self.hb.paths(), ["/hc/start", "/hc"], r)
        self.assertFalse([l for l in r.logs if l.get("level") == "warn"], r)


if __name__ == "__main__":
    unittest.main()
