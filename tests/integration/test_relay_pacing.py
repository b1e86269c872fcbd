"""test_relay_pacing: sweeps through relays that limit their senders, as real relays do: a
rate limit answered with Amazon SES's 454, a connection cap answered with 421, smtp.max_rate,
a real Postfix (PIPELINING + CHUNKING, and its anvil limits), a relay that speaks only TLS 1.3,
and implicit TLS (port 465) through the stunnel recipe in deploy/stunnel. Each test asserts
what the member and the operator see: every member gets one prompt, nothing is marked failed,
the sweep exits 0."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from collections import Counter

from harness import SOURCE_DIR, WorkerTestCase
from pki import have_openssl, make_ca
from smtp_server import SmtpServer, free_port
import postfix

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
STUNNEL_RECIPE = os.path.join(SOURCE_DIR, "deploy", "stunnel", "recovery-worker-smtps.conf")


class RelayCase(WorkerTestCase):
    def delivered_once_each(self, n, mails=None):
        """Every one of the n bulk members got exactly one prompt."""
        mails = self.mails() if mails is None else mails
        rcpts = Counter(r for m in mails for r in m.envelope["rcpt_tos"])
        self.assertEqual(len(rcpts), n, "members without a prompt")
        self.assertEqual(set(rcpts.values()), {1}, "members with more than one prompt")

    def nothing_failed(self):
        rows = self.q("SELECT status, count(*) FROM recovery_deliveries GROUP BY 1")
        statuses = dict(rows)
        self.assertEqual(set(statuses) - {"sent"}, set(), statuses)
        due = self.q("SELECT count(*) FROM checkout_orchestrations WHERE stage_status = 'waiting'"
                     " AND next_action_at <= now()")[0][0]
        self.assertEqual(due, 0, "rows left due")

    def sweep_until_drained(self, n, sweeps=3, **env):
        """Back-to-back sweeps (in practice one) until n prompts went out; each exits 0 and
        counts nothing as deferred or failed."""
        results = []
        for _ in range(sweeps):
            r = self.sweep(expect=0, **env)
            results.append(r)
            self.assertEqual(r.summary["failed"], 0, r)
            self.assertEqual(r.summary["deferred"], 0, r)
            if len(self.mails()) >= n:
                break
        return results


class ThrottlingRelay(RelayCase):
    # Accepts 10 messages a second and answers the rest as Amazon SES does.
    smtp_args = {"max_rate": 10}

    def test_150_due_rows_are_delivered_none_failed_with_few_throttle_replies(self):
        self.seed_many(150)
        results = self.sweep_until_drained(150, RW_SWEEP_CONCURRENCY=4)
        self.delivered_once_each(150)
        self.nothing_failed()
        self.assertEqual(sum(r.summary["nudges_sent"] for r in results), 150)
        # The worker slows down instead of hammering: far fewer 454s than messages.
        self.assertLess(self.smtp.stats()["throttled"], 150 // 5, self.smtp.stats())


class ConnectionCap(RelayCase):
    # A relay that refuses a third connection with "421 4.7.0 Too many connections".
    smtp_args = {"max_connections": 2}

    def test_one_sweep_at_concurrency_8_exits_0_and_delivers_all(self):
        self.seed_many(80)
        r = self.sweep(expect=0, RW_SWEEP_CONCURRENCY=8, RW_SMTP_MESSAGES_PER_SESSION=10)
        self.assertEqual(r.summary["nudges_sent"], 80, r)
        self.delivered_once_each(80)
        self.nothing_failed()
        self.assertLessEqual(self.smtp.stats()["max_open"], 3)  # 2, and the one refused


class MaxRate(RelayCase):
    def test_max_rate_5_never_has_more_than_6_accepted_in_a_second(self):
        self.seed_many(30)
        r = self.sweep(expect=0, SMTP_MAX_RATE=5, RW_SWEEP_CONCURRENCY=4)
        self.assertEqual(r.summary["nudges_sent"], 30, r)
        self.delivered_once_each(30)
        times = sorted(m.envelope["received_at"] for m in self.mails())
        most = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
        self.assertLessEqual(most, 6, times)
        # and not slower than asked: 30 at 5/s is about 6 s
        self.assertLess(times[-1] - times[0], 12)


@unittest.skipUnless(postfix.available(), "needs root and Debian's postfix package")
class PostfixRelay(RelayCase):
    """A private Postfix 3.7 smtpd on loopback (it advertises PIPELINING and CHUNKING, so
    libESMTP sends BDAT), relaying to the test's aiosmtpd, which stores what arrives."""

    postfix_extra = {}

    def setUp(self):
        super().setUp()
        self.pf = postfix.Postfix.start(self.smtp.port, extra=self.postfix_extra)

    def tearDown(self):
        self.pf.cleanup()
        super().tearDown()

    def env(self, **extra):
        env = super().env(**extra)
        env["SMTP_PORT"] = str(self.pf.port)
        return env

    def arrived(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.mails()) < n:
            time.sleep(0.2)
        return self.mails()


class PostfixChunking(PostfixRelay):
    def test_sweep_through_postfix_with_bdat_arrives_intact(self):
        self.seed_many(40)
        r = self.sweep(expect=0, RW_SWEEP_CONCURRENCY=2)
        self.assertEqual(r.summary["nudges_sent"], 40, r)
        mails = self.arrived(40)
        self.delivered_once_each(40, mails)
        self.nothing_failed()
        # libESMTP used BDAT, not DATA: Postfix logged each client command.
        log = self.pf.log_text()
        bdat = [l for l in log.splitlines() if "< localhost[127.0.0.1]: BDAT" in l
                or "< unknown[127.0.0.1]: BDAT" in l]
        self.assertTrue(any(" LAST" in l for l in bdat), log[-3000:])
        self.assertFalse([l for l in log.splitlines()
                          if "[127.0.0.1]: DATA" in l and "smtpd" in l], "DATA was used")
        # Each message is the one the ledger recorded, whole: its Message-ID, a MIME
        # structure without defects, and the member's order in the text.
        ledger = dict(self.q("SELECT message_id, orchestration_id::text FROM recovery_deliveries"))
        orders = dict(self.q("SELECT c.id::text, o.order_number FROM checkout_orchestrations c"
                             " JOIN orders o ON o.id = c.order_id"))
        for m in mails:
            mid = m.message["Message-ID"].strip("<>")
            self.assertIn(mid, {k.strip("<>") for k in ledger}, m.raw[:500])
            orch = ledger.get(mid) or ledger.get("<%s>" % mid)
            self.assertEqual(m.message.defects, [], m.raw[:500])
            for part in m.message.walk():
                self.assertEqual(part.defects, [], m.raw[:500])
            text = m.message.get_body(("plain",)).get_content()
            self.assertIn(orders[orch], text)
            self.assertTrue(m.raw.endswith(b"\r\n") or m.raw.endswith(b"\n"))


class PostfixAnvil(PostfixRelay):
    # Postfix's own limits on one client, with loopback no longer exempt.
    postfix_extra = {
        "smtpd_client_event_limit_exceptions": "",
        "anvil_rate_time_unit": "10s",
        "smtpd_client_message_rate_limit": "20",
        "smtpd_client_connection_count_limit": "2",
    }

    def test_everything_is_delivered_eventually_nothing_failed(self):
        self.seed_many(60)
        results = self.sweep_until_drained(60, RW_SWEEP_CONCURRENCY=4,
                                           RW_SMTP_THROTTLE_BUDGET="2m")
        mails = self.arrived(60)
        self.delivered_once_each(60, mails)
        self.nothing_failed()
        self.assertTrue(all(r.code == 0 for r in results))
        # never into Postfix's error limit
        self.assertNotIn("too many errors", self.pf.log_text())


@unittest.skipUnless(have_openssl(), "openssl CLI not found")
class Tls13Relay(RelayCase):
    """A relay that accepts only TLS 1.3 after STARTTLS."""

    smtp_mode = None  # started in setUp with the test CA

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki_dir = tempfile.mkdtemp(prefix="rw-pki-")
        cls.pki = make_ca(cls.pki_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)
        super().tearDownClass()

    def env(self, **extra):
        env = super().env(**extra)
        env.update({"SMTP_HOST": "localhost", "SMTP_TLS": "starttls",
                    "SMTP_CA_FILE": self.pki["ca.pem"], "RW_SMTP_TIMEOUT": "5s"})
        return env

    def test_sweep_to_a_tls13_only_aiosmtpd_delivers_all(self):
        self.smtp = SmtpServer.start(mode="starttls", maildir=os.path.join(self.tmp, "mail"),
                                     cert=self.pki["server.pem"], key=self.pki["server.key"],
                                     tls_min="1.3")
        self.seed_many(20)
        t0 = time.monotonic()
        r = self.sweep(expect=0, RW_SWEEP_CONCURRENCY=2)
        self.assertEqual(r.summary["nudges_sent"], 20, r)
        self.delivered_once_each(20)
        self.assertTrue(all(m.envelope["tls"] for m in self.mails()))
        self.assertLess(time.monotonic() - t0, 30)  # no reply timeouts on the way

    @unittest.skipUnless(postfix.available(), "needs root and Debian's postfix package")
    def test_sweep_to_a_tls13_only_postfix_delivers_all(self):
        self.smtp = SmtpServer.start(maildir=os.path.join(self.tmp, "mail"))
        pf = postfix.Postfix.start(self.smtp.port, tls_cert=self.pki["server.pem"],
                                   tls_key=self.pki["server.key"], extra={
                                       "smtpd_tls_security_level": "encrypt",
                                       "smtpd_tls_protocols": ">=TLSv1.3",
                                       "smtpd_tls_mandatory_protocols": ">=TLSv1.3",
                                   })
        try:
            self.seed_many(20)
            r = self.sweep(expect=0, SMTP_PORT=pf.port, RW_SWEEP_CONCURRENCY=2)
            self.assertEqual(r.summary["nudges_sent"], 20, r)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(self.mails()) < 20:
                time.sleep(0.2)
            self.delivered_once_each(20)
            established = [l for l in pf.log_lines() if "TLS connection established" in l]
            self.assertTrue(established, pf.log_text()[-2000:])
            self.assertTrue(all("TLSv1.3" in l for l in established), established)
        finally:
            pf.cleanup()


def stunnel_config(recipe, accept_port, relay_port, ca_file, host):
    """deploy/stunnel's recipe with the test's ports, CA and host name put in."""
    out = []
    with open(recipe) as f:
        for line in f:
            key = line.split("=", 1)[0].strip()
            if key == "accept":
                line = "accept = 127.0.0.1:%d\n" % accept_port
            elif key == "connect":
                line = "connect = 127.0.0.1:%d\n" % relay_port
            elif key == "CAfile":
                line = "CAfile = %s\n" % ca_file
            elif key in ("checkHost", "sni"):
                line = "%s = %s\n" % (key, host)
            out.append(line)
    return "".join(out)


@unittest.skipUnless(STUNNEL and have_openssl(), "needs stunnel4 and openssl")
class ImplicitTlsThroughStunnel(RelayCase):
    """The deploy/stunnel recipe: worker -> stunnel (client, loopback) -> relay on implicit TLS."""

    smtp_mode = None

    def setUp(self):
        super().setUp()
        self.pki = make_ca(self.tmp)
        self.smtp = SmtpServer.start(maildir=os.path.join(self.tmp, "mail"), implicit_tls=True,
                                     cert=self.pki["server.pem"], key=self.pki["server.key"])
        self.stunnel = None

    def tearDown(self):
        if self.stunnel is not None and self.stunnel.poll() is None:
            os.kill(self.stunnel.pid, signal.SIGTERM)
            try:
                self.stunnel.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.stunnel.pid, signal.SIGKILL)
                self.stunnel.wait(timeout=5)
        if self.stunnel is not None:
            self.stunnel_log.close()
        super().tearDown()

    def start_stunnel(self, host):
        port = free_port()
        conf = os.path.join(self.tmp, "stunnel.conf")
        with open(conf, "w") as f:
            f.write(stunnel_config(STUNNEL_RECIPE, port, self.smtp.port, self.pki["ca.pem"], host))
        self.stunnel_log = open(os.path.join(self.tmp, "stunnel.log"), "wb")
        self.stunnel = subprocess.Popen([STUNNEL, conf], stdout=self.stunnel_log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                time.sleep(0.05)
        self.fail("stunnel did not listen")

    def test_sweep_through_the_stunnel_recipe_delivers_over_tls(self):
        port = self.start_stunnel("localhost")
        self.seed_many(15)
        r = self.sweep(expect=0, SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_TLS="none",
                       RW_SWEEP_CONCURRENCY=2)
        self.assertEqual(r.summary["nudges_sent"], 15, r)
        self.delivered_once_each(15)
        # The relay saw TLS from the first byte: nothing reached it in clear text.
        self.assertEqual(self.smtp.stats()["sessions"], self.smtp.stats()["connections"])

    def test_a_relay_certificate_for_another_name_sends_nothing(self):
        # checkHost in the recipe: a certificate that does not name the relay is refused.
        port = self.start_stunnel("relay.example.org")
        self.seed_many(3)
        r = self.sweep(expect=69, SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_TLS="none")
        self.assertEqual(self.mails(), [], r)


if __name__ == "__main__":
    unittest.main()
