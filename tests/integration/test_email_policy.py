"""Consent basis, the per-member frequency cap and quiet hours, end to end: deferred to when a
prompt may go, never dropped, never sent twice."""
import unittest
import uuid

from harness import WorkerTestCase


class Consent(WorkerTestCase):

    def test_marketing_consent_basis_needs_an_opt_in(self):
        no_row = self.seed()                      # no preferences row: marketing defaults to off
        opted_in = self.seed(opted_out=False)
        self.q("UPDATE notification_preferences SET marketing_messages = true WHERE user_id = %s",
               opted_in["user_id"])
        r = self.sweep(RW_EMAIL_CONSENT="marketing_messages", expect=0)
        self.assertEqual((r.summary["nudges_sent"], r.summary["skipped_opt_out"]), (1, 1))
        self.assertEqual(self.events(opted_in["orch_id"])[0]["payload"]["consentBasis"],
                         "marketing_messages")
        self.assertEqual(self.events(no_row["orch_id"])[0]["payload"]["outcome"],
                         "skipped_opt_out")

    def test_both_requires_both_preferences(self):
        ids = self.seed(opted_out=False)
        r = self.sweep(RW_EMAIL_CONSENT="both", expect=0)
        self.assertEqual(r.summary["skipped_opt_out"], 1)
        self.assertEqual(self.mails(), [])


class FrequencyCap(WorkerTestCase):

    def seed_second_order_for(self, first):
        """Another due orchestration of the same member."""
        oid, cid = str(uuid.uuid4()), str(uuid.uuid4())
        self.q("INSERT INTO orders (id, order_number, user_id, total) VALUES (%s, %s, %s, 5)",
               oid, "SM-2-" + oid[:6], first["user_id"])
        self.q("INSERT INTO checkout_orchestrations (id, order_id, user_id, stage_status, metadata,"
               " next_action_at) VALUES (%s, %s, %s, 'waiting', '{}', now() - interval '1 minute')",
               cid, oid, first["user_id"])
        return {"orch_id": cid, "order_id": oid}

    def test_two_due_orchestrations_of_one_member_give_one_prompt_and_defer_the_other(self):
        first = self.seed(next_action="now() - interval '10 minutes'")
        second = self.seed_second_order_for(first)
        r = self.sweep(expect=0)
        self.assertEqual((r.summary["nudges_sent"], r.summary["member_capped"]), (1, 1))
        self.assertEqual(len(self.mails()), 1)
        ev = self.events(second["orch_id"])
        self.assertEqual(ev[0]["payload"]["outcome"], "member_capped")
        delay = float(self.q("SELECT EXTRACT(EPOCH FROM next_action_at - now())"
                             " FROM checkout_orchestrations WHERE id = %s", second["orch_id"])[0][0])
        self.assertGreater(delay, 23.9 * 3600)
        self.assertLess(delay, 24 * 3600 + 601)

    def test_member_prompted_recently_is_deferred_until_the_cap_allows(self):
        first = self.seed()
        self.sweep(expect=0)
        second = self.seed_second_order_for(first)
        r = self.sweep(RW_SWEEP_MEMBER_MIN_INTERVAL="2h", expect=0)
        self.assertEqual(r.summary["member_capped"], 1)
        self.assertEqual(len(self.mails()), 1)
        delay = float(self.q("SELECT EXTRACT(EPOCH FROM next_action_at - now())"
                             " FROM checkout_orchestrations WHERE id = %s", second["orch_id"])[0][0])
        self.assertGreater(delay, 2 * 3600 - 60)
        self.assertLess(delay, 2 * 3600 + 720)

    def test_cap_off_sends_both(self):
        first = self.seed()
        self.seed_second_order_for(first)
        r = self.sweep(RW_SWEEP_MEMBER_MIN_INTERVAL="0s", expect=0)
        self.assertEqual(r.summary["nudges_sent"], 2)


class QuietHours(WorkerTestCase):

    def local_window_around_now(self, zone):
        """A quiet window from one hour ago to one hour ahead, in zone's local time."""
        now = self.q("SELECT to_char(now() AT TIME ZONE %s - interval '1 hour', 'HH24:MI'),"
                     "       to_char(now() AT TIME ZONE %s + interval '1 hour', 'HH24:MI')",
                     zone, zone)[0]
        return f"{now[0]}-{now[1]}"

    def test_inside_quiet_hours_rows_are_deferred_to_their_end(self):
        zone = "Pacific/Auckland"
        ids = self.seed()
        r = self.sweep(RW_SWEEP_QUIET_HOURS=self.local_window_around_now(zone),
                       RW_SWEEP_QUIET_HOURS_ZONE=zone, expect=0)
        self.assertEqual((r.summary["quiet_hours"], r.summary["nudges_sent"]), (1, 0))
        self.assertEqual(self.mails(), [])
        delay = float(self.q("SELECT EXTRACT(EPOCH FROM next_action_at - now())"
                             " FROM checkout_orchestrations WHERE id = %s", ids["orch_id"])[0][0])
        self.assertGreater(delay, 3400)
        self.assertLess(delay, 3600 + 600 + 60)
        self.assertEqual(self.events(ids["orch_id"])[0]["payload"]["outcome"], "quiet_hours")

    def test_outside_quiet_hours_prompts_go(self):
        self.seed()
        window = self.q("SELECT to_char(now() + interval '2 hours', 'HH24:MI') || '-' ||"
                        "       to_char(now() + interval '3 hours', 'HH24:MI')")[0][0]
        r = self.sweep(RW_SWEEP_QUIET_HOURS=window, RW_SWEEP_QUIET_HOURS_ZONE="UTC", expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)

    def test_unknown_zone_is_a_configuration_error_before_any_sweep(self):
        ids = self.seed()
        before = self.orch(ids["orch_id"])
        r = self.sweep(RW_SWEEP_QUIET_HOURS="22:00-08:00", RW_SWEEP_QUIET_HOURS_ZONE="Mars/Olympus",
                       expect=78)
        self.assertIn('RW_SWEEP_QUIET_HOURS_ZONE: unknown time zone "Mars/Olympus"', r.stderr)
        self.assertNotIn("sweep started", r.stderr)
        self.assertEqual(self.orch(ids["orch_id"]), before)
        self.assertEqual(self.events(ids["orch_id"]), [])
        self.assertEqual(self.mails(), [])


if __name__ == "__main__":
    unittest.main()


class Unsubscribe(WorkerTestCase):

    def test_one_click_unsubscribe_headers_and_a_mailto(self):
        self.seed()
        r = self.sweep(UNSUBSCRIBE_URL="https://shop.test/unsubscribe",
                       RESUME_LINK_SECRET="k1:" + "s" * 40,
                       UNSUBSCRIBE_MAILTO="unsubscribe@shop.test", expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)
        msg = self.mails()[0].message
        value = " ".join(str(msg["List-Unsubscribe"]).split())
        self.assertRegex(value, r"^<https://shop\.test/unsubscribe\?token=v1\.k1\.[^>]+>, "
                                r"<mailto:unsubscribe@shop\.test\?subject=unsubscribe>$")
        self.assertEqual(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click")
        text = msg.get_body(preferencelist=("plain",)).get_content()
        self.assertIn("https://shop.test/unsubscribe?token=v1.k1.", text)
        resume = [w for w in text.split() if w.startswith("https://shop.test/checkout")][0]
        token = resume.split("token=")[1]
        v = self.worker("verify-token", token, env=self.env(RESUME_LINK_SECRET="k1:" + "s" * 40),
                        expect=0)
        self.assertIn('"valid":true', v.stdout.replace(" ", ""))

    def test_unsubscribe_url_without_a_signing_key_is_refused(self):
        r = self.worker("sweep", env=self.env(UNSUBSCRIBE_URL="https://shop.test/u"))
        self.assertEqual(r.code, 78, r)


class FrequencyCapAcrossWorkers(WorkerTestCase):
    seed_second_order_for = FrequencyCap.seed_second_order_for

    def test_two_workers_sending_to_one_member_at_once_send_one_prompt(self):
        # Protects the cross-worker cap in store_ledger_begin: each worker claims a different
        # orchestration of the same member, and both pass the claim-time check.
        import os, subprocess
        from harness import RW_BIN, sanitizer_env, wait_for
        first = self.seed(next_action="now() - interval '10 minutes'")
        second = self.seed_second_order_for(first)
        env_a = self.env(RW_SWEEP_BATCH_SIZE=1, RW_SWEEP_CONCURRENCY=1,
                         RECOVERY_WORKER_FAILPOINTS="after_ledger_begin=sleep(2000)")
        a = subprocess.Popen([RW_BIN, "sweep", "--limit", "1"],
                             env={**os.environ, **sanitizer_env(), **env_a}, cwd=self.tmp,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertTrue(wait_for(lambda: self.q(
            "SELECT count(*) FROM recovery_deliveries WHERE status = 'queued'")[0][0] == 1, 20))
        r = self.sweep("--limit", "1", expect=0)
        a.communicate(timeout=60)
        self.assertEqual(a.returncode, 0)
        self.assertEqual(len(self.mails()), 1, "one prompt for the member, not two")
        self.assertEqual(r.summary["superseded"], 1)
        # the other orchestration is left for a later sweep, which records the cap
        self.assertEqual(self.q("SELECT count(*) FROM checkout_orchestration_events")[0][0], 1)
