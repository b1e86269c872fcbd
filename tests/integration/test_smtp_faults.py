"""Relay faults, each classified where it is seen and recorded, none lost (SPEC §3, §4)."""
import os
import time
import unittest

from harness import WorkerTestCase


class RecipientFaults(WorkerTestCase):

    def test_451_for_one_recipient_defers_it_minutes_ahead_and_sends_the_others(self):
        ok = self.seed()
        temp = self.seed(email="tempfail+1@example.test")
        r = self.sweep(expect=0)
        self.assertEqual((r.summary["nudges_sent"], r.summary["deferred"]), (1, 1))
        self.assertEqual(len(self.mails()), 1)
        delay = self.q("SELECT EXTRACT(EPOCH FROM next_action_at - now())"
                       " FROM checkout_orchestrations WHERE id = %s", temp["orch_id"])[0][0]
        self.assertGreater(float(delay), 4 * 60)          # backoff base 5 min, jittered
        self.assertLess(float(delay), 7 * 60)             # not the 6 h retry interval
        ev = self.events(temp["orch_id"])
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["payload"]["outcome"], "deferred")
        self.assertEqual(ev[0]["payload"]["smtpCode"], 451)
        self.assertEqual([l["status"] for l in self.ledger(temp["orch_id"])], ["deferred"])
        self.assertEqual(self.events(ok["orch_id"])[0]["payload"]["outcome"], "sent")

    def test_repeated_deferrals_back_off_exponentially(self):
        temp = self.seed(email="tempfail+2@example.test")
        delays = []
        for _ in range(3):
            self.sweep(expect=0)
            delays.append(float(self.q("SELECT EXTRACT(EPOCH FROM next_action_at - now())"
                                       " FROM checkout_orchestrations WHERE id = %s",
                                       temp["orch_id"])[0][0]))
            self.q("UPDATE checkout_orchestrations SET next_action_at = now() - interval '1s',"
                   " locked_until = NULL WHERE id = %s", temp["orch_id"])
        self.assertGreater(delays[1], delays[0] * 1.5)
        self.assertGreater(delays[2], delays[1] * 1.5)

    def test_550_for_one_recipient_fails_escalates_and_stops_retrying(self):
        bad = self.seed(email="reject+1@example.test")
        r = self.sweep(expect=0)
        self.assertEqual((r.summary["failed"], r.summary["escalations"], r.summary["nudges_sent"]),
                         (1, 1, 0))
        ledger = self.ledger(bad["orch_id"])
        self.assertEqual((ledger[0]["status"], ledger[0]["code"], ledger[0]["enhanced"]),
                         ("failed", 550, "5.1.1"))
        o = self.orch(bad["orch_id"])
        self.assertIsNone(o["next_action_at"])
        self.assertEqual(self.sweep(expect=0).summary["processed"], 0)

    def test_connection_dropped_after_data_is_recorded_unknown_and_not_resent(self):
        ids = self.seed(email="dropdata+1@example.test")
        r = self.sweep(expect=69, RW_SWEEP_LEASE="5s")
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(r.summary["unknown"], 1)
        self.assertEqual([l["status"] for l in self.ledger(ids["orch_id"])], ["unknown"])
        # in doubt: not finalised, and not taken again before its lease has run out
        self.assertEqual(self.events(ids["orch_id"]), [])
        self.assertEqual(self.sweep(expect=0).summary["processed"], 0)
        time.sleep(5.5)
        # then resent once with the same Message-ID (the relay drops it again) ...
        r = self.sweep(expect=69, RW_SWEEP_LEASE="5s")
        self.assertEqual(r.summary["resent_in_doubt"], 1)
        self.assertEqual([(l["status"], l["attempts"]) for l in self.ledger(ids["orch_id"])],
                         [("unknown", 2)])
        time.sleep(5.5)
        # ... and after two attempts in doubt, recorded as unknown without a third
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["unknown"], 1)
        ev = self.events(ids["orch_id"])
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["payload"]["outcome"], "delivery_unknown")
        self.assertEqual(self.smtp.stats()["dropped"], 2)


class StallingRelay(WorkerTestCase):
    smtp_args = {"stall_s": 30}

    def test_relay_stalling_beyond_the_timeout_cuts_the_sweep_short_and_loses_nothing(self):
        ids = self.seed(email="stall+1@example.test")
        start = time.time()
        r = self.sweep(RW_SMTP_TIMEOUT="2s", expect=69)
        self.assertLess(time.time() - start, 20)
        self.assertEqual(r.summary["nudges_sent"], 0)
        ledger = self.ledger(ids["orch_id"])
        self.assertIn(ledger[0]["status"], ("deferred", "released"))
        o = self.orch(ids["orch_id"])
        self.assertTrue(o["next_action_at"] is not None)


class Greeting421(WorkerTestCase):
    smtp_mode = "greet421"

    def test_421_at_greeting_exits_69_and_releases_every_claimed_row(self):
        rows = [self.seed() for _ in range(3)]
        r = self.sweep(expect=69)
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(r.summary["released"], 3)
        for ids in rows:
            self.assertEqual(self.events(ids["orch_id"]), [])
            self.assertFalse(self.orch(ids["orch_id"])["future"], "still due")
            self.assertEqual([l["status"] for l in self.ledger(ids["orch_id"])], ["released"])
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)


class AuthFailure(WorkerTestCase):
    smtp_mode = "auth"
    smtp_args = {"user": "relay", "password": "right-password"}

    def test_535_at_auth_exits_69_and_sends_nothing(self):
        ids = self.seed()
        r = self.sweep(SMTP_USERNAME="relay", SMTP_PASSWORD="wrong-password", expect=69)
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.events(ids["orch_id"]), [])
        self.assertNotIn("wrong-password", r.stderr)
        self.assertFalse(self.orch(ids["orch_id"])["future"])

    def test_right_credentials_send(self):
        self.seed()
        r = self.sweep(SMTP_USERNAME="relay", SMTP_PASSWORD="right-password", expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)


class NoServer(WorkerTestCase):
    smtp_mode = None

    def test_relay_not_listening_exits_69_quickly_and_releases_the_rows(self):
        ids = self.seed()
        start = time.time()
        r = self.sweep(SMTP_PORT="9", expect=69)
        self.assertLess(time.time() - start, 15)
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(self.events(ids["orch_id"]), [])
        self.assertFalse(self.orch(ids["orch_id"])["future"])
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)


if __name__ == "__main__":
    unittest.main()


class StartTlsWithAuth(WorkerTestCase):
    """The worker end to end over STARTTLS (certificate verified against SMTP_HOST) and AUTH."""
    smtp_mode = None

    def start_tls_server(self):
        import shutil, tempfile
        from harness import SmtpServer
        from test_smtp_session import have_openssl, make_ca
        if not have_openssl():
            self.skipTest("openssl CLI not found")
        pki_dir = tempfile.mkdtemp(prefix="rw-pki-", dir=self.tmp)
        self.pki = make_ca(pki_dir)
        self.smtp = SmtpServer.start(mode="starttls", maildir=os.path.join(self.tmp, "mail"),
                                     cert=self.pki["server.pem"], key=self.pki["server.key"],
                                     user="relay", password="right-password")

    def tls_env(self, ca, password="right-password"):
        return dict(SMTP_HOST="localhost", SMTP_TLS="starttls", SMTP_CA_FILE=ca,
                    SMTP_USERNAME="relay", SMTP_PASSWORD=password)

    def test_verified_starttls_and_auth_plain_deliver(self):
        self.start_tls_server()
        self.seed()
        r = self.sweep(expect=0, **self.tls_env(self.pki["ca.pem"]))
        self.assertEqual(r.summary["nudges_sent"], 1)
        m = self.mails()[0]
        self.assertTrue(m.envelope["tls"])
        self.assertEqual(m.envelope["auth_user"], "relay")

    def test_the_wrong_ca_fails_before_anything_is_sent(self):
        self.start_tls_server()
        ids = self.seed()
        r = self.sweep(expect=69, **self.tls_env(self.pki["other.pem"]))
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(self.mails(), [])
        self.assertIn("certificate verification failed", r.stderr)
        self.assertFalse(self.orch(ids["orch_id"])["future"], "released, still due")
        self.assertNotIn("right-password", r.stderr)
