"""test_smtp_session: common/smtp.c against a real SMTP server (tests/support/smtpd.py), driven
through the smtp-probe tool (tests/support/smtp_probe.c). Each case names the behaviour it
guarantees. Skipped unless RW_SMTP_PROBE points at a built smtp-probe."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(os.path.dirname(HERE), "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)

from pki import have_openssl, make_ca  # noqa: E402,F401 (make_ca: also for test_smtp_faults)
from smtp_server import SmtpServer, free_port  # noqa: E402

PROBE = os.environ.get("RW_SMTP_PROBE")
LSAN_SUPP = os.path.join(SUPPORT, "lsan.supp")
SENDER = "bounce@example.org"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def message_data(i, rcpt):
    return ("Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n"
            "From: Shop <shop@example.org>\r\n"
            "To: <%s>\r\n"
            "Message-ID: <m%d.test@example.org>\r\n"
            "Subject: Your cart, %d\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "Hello %d\r\n"
            ".a line that starts with a dot\r\n"
            "..and one with two\r\n" % (rcpt, i, i, i))


def batch(*recipients):
    return [{"sender": SENDER, "recipient": r, "data": message_data(i, r)}
            for i, r in enumerate(recipients)]


class ProbeRun:
    def __init__(self, proc, elapsed):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.elapsed = elapsed
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        self.sessions = {}
        for obj in lines:
            s = self.sessions.setdefault(obj["session"], {"messages": [], "result": None})
            if "result" in obj:
                s["result"] = obj
            else:
                s["messages"].append(obj)

    def messages(self, session=1):
        return self.sessions[session]["messages"]

    def outcomes(self, session=1):
        return [m["outcome"] for m in self.messages(session)]

    def result(self, session=1):
        return self.sessions[session]["result"]["result"]

    def error(self, session=1):
        return self.sessions[session]["result"]["error"]

    def report(self, session=1):
        """The session line: "hooks", "refused", "throttled", "quota", "report_code", ..."""
        return self.sessions[session]["result"]


@unittest.skipUnless(PROBE and os.access(PROBE, os.X_OK), "RW_SMTP_PROBE not set or not built")
class SmtpCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rw-smtp-test-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server(self, mode="normal", **kwargs):
        maildir = os.path.join(self.tmp, "md%d" % len(self.servers))
        srv = SmtpServer.start(mode=mode, maildir=maildir, **kwargs)
        self.servers.append(srv)
        return srv

    def probe(self, port, msgs, host="localhost", tls=None, ca_file=None, user=None,
              password=None, timeout_ms=5000, connect_timeout_ms=2000, sessions=1, helo=None,
              hold_back=None, parallel=False):
        path = os.path.join(self.tmp, "batch-%d.jsonl" % time.monotonic_ns())
        with open(path, "w") as f:
            for m in msgs:
                f.write(json.dumps(m) + "\n")
        cmd = [PROBE, "--host", host, "--port", str(port), "--timeout-ms", str(timeout_ms),
               "--connect-timeout-ms", str(connect_timeout_ms), "--sessions", str(sessions)]
        if tls:
            cmd += ["--tls", tls]
        if ca_file:
            cmd += ["--ca-file", ca_file]
        if user:
            cmd += ["--user", user]
        if helo:
            cmd += ["--helo", helo]
        if hold_back is not None:
            cmd += ["--hold-back", str(hold_back)]
        if parallel:
            cmd.append("--parallel")
        cmd.append(path)
        env = dict(os.environ)
        env.pop("RW_SMTP_PASSWORD", None)
        if password is not None:
            env["RW_SMTP_PASSWORD"] = password
        if os.path.exists(LSAN_SUPP):
            env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % LSAN_SUPP
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        run = ProbeRun(proc, time.monotonic() - t0)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, proc.stderr, proc.stderr)
        if password:
            self.assertNotIn(password, proc.stdout + proc.stderr)
        return run


class PlainSessionTest(SmtpCase):
    def test_three_messages_travel_in_one_session(self):
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost", "b@localhost", "c@localhost"))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["sent"] * 3)
        for m in run.messages():
            self.assertEqual((m["code"], m["enhanced"]), (250, "2.0.0"))
            self.assertTrue(m["text"].startswith("OK queued as "), m["text"])

        stored = srv.messages()
        self.assertEqual([s.envelope["rcpt_tos"] for s in stored],
                         [["a@localhost"], ["b@localhost"], ["c@localhost"]])
        self.assertEqual({s.envelope["mail_from"] for s in stored}, {SENDER})
        stats = srv.stats()
        # One SMTP session; the other TCP connection is the reachability check made before
        # it, which closes without a word.
        self.assertEqual((stats["sessions"], stats["connections"]), (1, 1))
        self.assertEqual(stats["tcp_connections"], 2)

    def test_message_reaches_the_relay_byte_for_byte_without_added_headers(self):
        srv = self.server()
        msgs = batch("a@localhost")
        run = self.probe(srv.port, msgs)
        self.assertEqual(run.outcomes(), ["sent"])
        (stored,) = srv.messages()
        self.assertEqual(stored.raw, msgs[0]["data"].encode())
        for header in ("Date", "From", "To", "Message-ID", "Subject"):
            self.assertEqual(len(stored.message.get_all(header)), 1, header)
        self.assertEqual(stored.message["Message-ID"], "<m0.test@example.org>")

    def test_ehlo_name_is_the_configured_one(self):
        srv = self.server()
        self.probe(srv.port, batch("a@localhost"), helo="worker.example.org")
        (stored,) = srv.messages()
        self.assertEqual(stored.envelope["helo"], "worker.example.org")

    def test_tempfail_recipient_is_deferred_and_the_rest_are_sent(self):
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost", "tempfail+1@localhost", "b@localhost"))
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["sent", "deferred", "sent"])
        m = run.messages()[1]
        self.assertEqual((m["code"], m["enhanced"], m["text"]), (451, "4.3.0", "try later"))
        self.assertEqual(len(srv.messages()), 2)

    def test_rejected_recipient_fails_with_enhanced_code(self):
        srv = self.server()
        run = self.probe(srv.port, batch("reject+1@localhost", "a@localhost"))
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["failed", "sent"])
        m = run.messages()[0]
        self.assertEqual((m["code"], m["enhanced"], m["text"]), (550, "5.1.1", "no such user"))

    def test_enhanced_codes_are_read_from_relays_that_do_not_announce_them(self):
        srv = self.server(plain_ehlo=True)  # no ENHANCEDSTATUSCODES, no PIPELINING
        run = self.probe(srv.port, batch("tempfail+1@localhost", "reject+2@localhost",
                                         "a@localhost"))
        self.assertEqual(run.outcomes(), ["deferred", "failed", "sent"])
        self.assertEqual([m["enhanced"] for m in run.messages()], ["4.3.0", "5.1.1", "2.0.0"])
        self.assertEqual(run.messages()[1]["text"], "no such user")

    def test_connection_dropped_after_data_is_unknown(self):
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost", "dropdata+1@localhost", "b@localhost"))
        self.assertEqual(run.returncode, 69)
        self.assertEqual(run.result(), "unavailable")
        self.assertEqual(run.outcomes(), ["sent", "unknown", "not_attempted"])
        self.assertEqual(run.messages()[1]["code"], 0)
        self.assertIn("end of data", run.error())
        self.assertEqual(len(srv.messages()), 1)
        self.assertEqual(srv.stats()["dropped"], 1)

    def test_stalled_rcpt_times_out_as_deferred(self):
        srv = self.server(stall_s=30)
        run = self.probe(srv.port, batch("a@localhost", "stall+1@localhost", "b@localhost"),
                         timeout_ms=1500)
        self.assertLess(run.elapsed, 10)
        self.assertEqual(run.result(), "unavailable")
        self.assertEqual(run.outcomes(), ["sent", "deferred", "not_attempted"])
        self.assertIn("no reply from localhost:%d to RCPT within 1500 ms" % srv.port, run.error())

    def test_stalled_reply_to_end_of_data_is_unknown(self):
        srv = self.server(delay_ms=4000)
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"), timeout_ms=1500)
        self.assertLess(run.elapsed, 10)
        self.assertEqual(run.result(), "unavailable")
        self.assertEqual(run.outcomes(), ["unknown", "not_attempted"])
        self.assertIn("end of data within 1500 ms", run.error())

    def test_greeting_421_is_a_refused_session_that_attempts_nothing(self):
        # The relay answered: not "unavailable", but a session the caller should not repeat
        # at the same concurrency.
        srv = self.server(mode="greet421")
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["not_attempted"] * 2)
        rep = run.report()
        self.assertTrue(rep["refused"])
        self.assertFalse(rep["throttled"])
        self.assertEqual(rep["report_code"], 421)
        self.assertIn("service not available", rep["report_text"])
        self.assertEqual(rep["hooks"], [])
        self.assertEqual(srv.stats()["sessions"], 0)

    def test_connection_cap_refusal_is_reported_as_refused(self):
        srv = self.server(max_connections=0)
        run = self.probe(srv.port, batch("a@localhost"))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.outcomes(), ["not_attempted"])
        self.assertTrue(run.report()["refused"])
        self.assertIn("Too many connections", run.report()["report_text"])
        self.assertEqual(srv.messages(), [])

    def test_concurrent_sessions_share_one_probe_so_a_cap_of_two_fits_two_sessions(self):
        # Each session used to open a bare probe connection before its real one: with a cap
        # of two connections and two sessions, one of them was refused.
        srv = self.server(max_connections=2, delay_ms=200)
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"), sessions=2,
                         parallel=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        for k in (1, 2):
            self.assertFalse(run.report(k)["refused"], run.report(k))
            self.assertEqual(run.outcomes(k), ["sent", "sent"])
        stats = srv.stats()
        self.assertEqual(stats["refused_connections"], 0, stats)
        self.assertEqual(stats["tcp_connections"], 3, stats)  # one probe, two sessions

    def test_tempfail_to_mail_from_stops_the_session_instead_of_repeating_it(self):
        srv = self.server(mail_tempfail_after=1)
        rcpts = ["r%d@localhost" % i for i in range(5)]
        run = self.probe(srv.port, batch(*rcpts))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.outcomes(), ["sent", "deferred"] + ["not_attempted"] * 3)
        self.assertEqual(run.messages()[1]["code"], 450)
        self.assertEqual(run.messages()[1]["kind"], "throttle")
        self.assertTrue(run.report()["throttled"])
        self.assertEqual(run.report()["report_code"], 450)
        # One refused MAIL FROM, then QUIT: nothing more into the relay's error limit.
        mails = [line for line in srv.transcript() if " MAIL FROM:" in line]
        self.assertEqual(len(mails), 2, srv.transcript())
        self.assertEqual(srv.stats()["mail_refused"], 1)
        self.assertIn("QUIT", srv.transcript()[-1])
        self.assertEqual(run.report()["hooks"], ["before 0", "after 0", "after 1"])

    def test_throttling_reply_after_data_ends_the_session_transactions(self):
        srv = self.server(max_rate=2)
        rcpts = ["r%d@localhost" % i for i in range(6)]
        run = self.probe(srv.port, batch(*rcpts))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.outcomes(), ["sent", "sent", "deferred"] + ["not_attempted"] * 3)
        third = run.messages()[2]
        self.assertEqual((third["code"], third["enhanced"], third["kind"]), (454, "4.7.0", "throttle"))
        self.assertTrue(run.report()["throttled"])
        self.assertIn("Maximum sending rate", run.report()["report_text"])
        self.assertEqual(len(srv.messages()), 2)
        self.assertEqual(srv.stats()["throttled"], 1)
        mails = [line for line in srv.transcript() if " MAIL FROM:" in line]
        self.assertEqual(len(mails), 3)

    def test_daily_quota_reply_is_reported_and_defers_the_message(self):
        srv = self.server(quota=1)
        run = self.probe(srv.port, batch("a@localhost", "b@localhost", "c@localhost"))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.outcomes(), ["sent", "deferred", "not_attempted"])
        self.assertEqual(run.messages()[1]["kind"], "quota")
        self.assertTrue(run.report()["quota"])
        self.assertIn("Daily message quota", run.report()["report_text"])

    def test_before_data_hook_holds_back_a_message_and_the_rest(self):
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost", "b@localhost", "c@localhost"),
                         hold_back=1)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["sent", "not_attempted", "not_attempted"])
        self.assertEqual(run.report()["hooks"], ["before 0", "after 0", "before 1", "after 1"])
        # The relay never got the held-back message's data.
        self.assertEqual([m.envelope["rcpt_tos"] for m in srv.messages()], [["a@localhost"]])

    def test_hooks_see_every_message_once_in_order(self):
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost", "tempfail+b@localhost", "c@localhost",
                                         "reject+d@localhost", "e@localhost"))
        self.assertEqual(run.outcomes(), ["sent", "deferred", "sent", "failed", "sent"])
        self.assertEqual(run.messages()[1]["kind"], "none")
        hooks = run.report()["hooks"]
        for i in range(5):
            self.assertEqual(hooks.count("after %d" % i), 1, hooks)
        self.assertEqual([h for h in hooks if h.startswith("after")],
                         ["after %d" % i for i in range(5)])
        self.assertLess(hooks.index("before 0"), hooks.index("after 0"))

    def test_relay_not_listening_fails_fast(self):
        run = self.probe(free_port(), batch("a@localhost"), host="127.0.0.1")
        self.assertLess(run.elapsed, 2)
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("cannot connect to 127.0.0.1:", run.error())
        self.assertIn("refused", run.error())
        self.assertEqual(run.outcomes(), ["not_attempted"])

    def test_relay_that_never_accepts_fails_within_the_connect_timeout(self):
        # A listener whose accept queue is full: further SYNs are dropped, connect() hangs.
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                fillers.append(c)
            time.sleep(0.2)
            run = self.probe(port, batch("a@localhost"), host="127.0.0.1",
                             connect_timeout_ms=700)
        finally:
            for c in fillers:
                c.close()
            lsock.close()
        self.assertLess(run.elapsed, 3)
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("no answer within 700 ms", run.error())

    def test_line_breaks_in_addresses_never_reach_the_wire(self):
        srv = self.server()
        smuggled = ("victim@localhost>\r\nRSET\r\nMAIL FROM:<spoof@evil.test>\r\n"
                    "RCPT TO:<x@localhost")
        msgs = batch(smuggled, "a@localhost")
        msgs.append({"sender": SENDER + "\r\nRSET", "recipient": "b@localhost",
                     "data": message_data(9, "b@localhost")})
        run = self.probe(srv.port, msgs)
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["failed", "sent", "failed"])
        self.assertEqual(run.messages()[0]["text"], "invalid address")
        self.assertEqual(run.messages()[2]["text"], "invalid address")
        wire = srv.transcript()
        commands = [line.split(" ", 1)[1] for line in wire]
        self.assertEqual([c for c in commands if c.startswith("RCPT")], ["RCPT TO:<a@localhost>"])
        self.assertEqual([c for c in commands if c.startswith("MAIL")], ["MAIL FROM:<%s>" % SENDER])
        self.assertNotIn("RSET", commands)
        self.assertFalse(any("spoof" in c for c in commands))

    def test_only_invalid_messages_means_no_connection(self):
        srv = self.server()
        run = self.probe(srv.port, [{"sender": SENDER, "recipient": "a@localhost\n",
                                     "data": message_data(0, "x@localhost")}])
        self.assertEqual(run.result(), "ok")
        self.assertEqual(run.outcomes(), ["failed"])
        self.assertEqual(srv.stats()["tcp_connections"], 0)

    def test_bare_lf_in_data_is_refused_before_the_wire(self):
        srv = self.server()
        data = message_data(0, "a@localhost").replace("Hello 0\r\n", "Hello\n.\r\nQUIT\r\n")
        run = self.probe(srv.port, [{"sender": SENDER, "recipient": "a@localhost", "data": data}])
        self.assertEqual(run.outcomes(), ["failed"])
        self.assertIn("invalid message data", run.messages()[0]["text"])
        self.assertEqual(srv.messages(), [])

    def test_implicit_tls_is_a_configuration_error(self):
        run = self.probe(465, batch("a@localhost"), tls="implicit")
        self.assertEqual(run.returncode, 78)
        self.assertIn("implicit TLS (port 465) is not supported", run.error(0))


class AuthTest(SmtpCase):
    def test_right_password_sends(self):
        srv = self.server(mode="auth", user="alice", password="s3cret pass")
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"), user="alice",
                         password="s3cret pass")
        self.assertEqual(run.result(), "ok", run.error())
        self.assertEqual(run.outcomes(), ["sent", "sent"])
        self.assertEqual({s.envelope["auth_user"] for s in srv.messages()}, {"alice"})

    def test_wrong_password_sends_nothing(self):
        srv = self.server(mode="auth", user="alice", password="s3cret")
        run = self.probe(srv.port, batch("a@localhost", "b@localhost", "c@localhost"),
                         user="alice", password="wrong-password")
        self.assertEqual(run.returncode, 69)
        self.assertEqual(run.result(), "unavailable")
        self.assertEqual(run.error(), "authentication failed: 535 5.7.8 Authentication "
                                      "credentials invalid")
        self.assertEqual(run.outcomes(), ["not_attempted"] * 3)
        self.assertEqual(srv.messages(), [])
        self.assertGreaterEqual(srv.stats()["auth_failures"], 1)
        for line in srv.transcript():  # the transcript shows AUTH lines redacted
            if "AUTH" in line:
                self.assertTrue(line.endswith("[redacted]"), line)

    def test_relay_requiring_auth_without_credentials_is_a_session_failure(self):
        srv = self.server(mode="auth", user="alice", password="s3cret")
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"))
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("requires authentication or TLS: 530", run.error())
        self.assertEqual(run.outcomes(), ["not_attempted"] * 2)

    def test_credentials_without_auth_on_the_relay_send_nothing(self):
        # libESMTP carries on unauthenticated when AUTH is not offered; the data is withheld.
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"), user="alice",
                         password="s3cret")
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("authentication failed", run.error())
        self.assertEqual(run.outcomes(), ["not_attempted"] * 2)
        self.assertEqual(srv.messages(), [])

    def test_clear_text_password_to_a_remote_relay_is_refused(self):
        run = self.probe(25, batch("a@localhost"), host="192.0.2.1", user="alice",
                         password="s3cret")
        self.assertEqual(run.result(), "config")
        self.assertIn("clear text", run.error())


@unittest.skipUnless(have_openssl(), "openssl CLI not found")
class StartTlsTest(SmtpCase):
    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="rw-smtp-pki-")
        cls.pki = make_ca(cls.pki_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def tls_server(self, **kwargs):
        return self.server(mode="starttls", cert=self.pki["server.pem"],
                           key=self.pki["server.key"], **kwargs)

    def test_starttls_sessions_in_a_row_in_one_process(self):
        # libESMTP 1.1.0 crashes on the second STARTTLS session unless the SSL_CTX is shared.
        srv = self.tls_server()
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"), tls="starttls",
                         ca_file=self.pki["ca.pem"], sessions=5)
        self.assertEqual(run.returncode, 0, run.stderr)
        for k in range(1, 6):
            self.assertEqual(run.result(k), "ok", run.error(k))
            self.assertEqual(run.outcomes(k), ["sent", "sent"])
        stored = srv.messages()
        self.assertEqual(len(stored), 10)
        self.assertTrue(all(s.envelope["tls"] for s in stored))
        stats = srv.stats()
        self.assertEqual(stats["sessions"], 5)
        self.assertEqual(stats["sni"], ["localhost"] * 5)

    def test_starttls_to_a_tls13_only_relay_sends_without_stalling(self):
        # A TLS 1.3 server sends session tickets after the handshake; libESMTP 1.1.0 used to
        # wait for the EHLO reply with the EHLO still in its buffer until the timeout.
        srv = self.tls_server(tls_min="1.3")
        run = self.probe(srv.port, batch("a@localhost", "b@localhost"), tls="starttls",
                         ca_file=self.pki["ca.pem"], sessions=3, timeout_ms=5000)
        self.assertEqual(run.returncode, 0, run.stderr)
        for k in range(1, 4):
            self.assertEqual(run.result(k), "ok", run.error(k))
            self.assertEqual(run.outcomes(k), ["sent", "sent"])
            # a reply timeout is 5 s: a stall would show here
            self.assertLess(run.report(k)["elapsed_ms"], 2000)
        stored = srv.messages()
        self.assertEqual(len(stored), 6)
        self.assertTrue(all(s.envelope["tls"] for s in stored))

    def test_starttls_with_an_untrusted_ca_fails(self):
        srv = self.tls_server()
        run = self.probe(srv.port, batch("a@localhost"), tls="starttls",
                         ca_file=self.pki["other.pem"])
        self.assertEqual(run.returncode, 69)
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("TLS with localhost:%d failed: certificate verification failed"
                      % srv.port, run.error())
        self.assertEqual(run.outcomes(), ["not_attempted"])
        self.assertEqual(srv.messages(), [])

    def test_starttls_certificate_must_match_the_configured_host(self):
        srv = self.tls_server()
        run = self.probe(srv.port, batch("a@localhost"), host="127.0.0.1", tls="starttls",
                         ca_file=self.pki["ca.pem"])
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("mismatch", run.error())
        self.assertEqual(srv.messages(), [])

    def test_starttls_with_auth(self):
        srv = self.tls_server(user="alice", password="s3cret")
        run = self.probe(srv.port, batch("a@localhost"), tls="starttls",
                         ca_file=self.pki["ca.pem"], user="alice", password="s3cret")
        self.assertEqual(run.result(), "ok", run.error())
        self.assertEqual(run.outcomes(), ["sent"])
        (stored,) = srv.messages()
        self.assertEqual((stored.envelope["tls"], stored.envelope["auth_user"]), (True, "alice"))

    def test_starttls_required_but_not_offered_sends_nothing(self):
        srv = self.server()
        run = self.probe(srv.port, batch("a@localhost"), tls="starttls",
                         ca_file=self.pki["ca.pem"])
        self.assertEqual(run.result(), "unavailable")
        self.assertIn("does not offer STARTTLS", run.error())
        self.assertEqual(run.outcomes(), ["not_attempted"])
        self.assertEqual(srv.messages(), [])

    def test_missing_ca_file_is_a_configuration_error(self):
        run = self.probe(25, batch("a@localhost"), tls="starttls",
                         ca_file=os.path.join(self.pki_dir, "absent.pem"))
        self.assertEqual(run.returncode, 78)
        self.assertIn("cannot load CA file", run.error(0))


if __name__ == "__main__":
    unittest.main()
