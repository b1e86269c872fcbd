"""sweep.give_up_after: an orchestration older than the recovery window (from created_at) is
not nudged again: no email, one event that says the window closed, never due again."""
import unittest

from harness import WorkerTestCase


class RecoveryWindow(WorkerTestCase):

    def age(self, ids, days):
        self.q("UPDATE checkout_orchestrations SET created_at = now() - %s * interval '1 day'"
               " WHERE id = %s", days, ids["orch_id"])

    def test_forty_day_old_due_orchestration_gets_no_email_one_event_and_is_not_due_again(self):
        old = self.seed()
        young = self.seed()
        self.age(old, 40)
        self.age(young, 29)
        r = self.sweep(expect=0)
        self.assertEqual((r.summary["gave_up"], r.summary["nudges_sent"]), (1, 1), r)

        mails = self.mails()
        self.assertEqual(len(mails), 1)
        self.assertIn(young["order_number"], mails[0].message["Subject"])
        self.assertNotIn(old["order_number"].encode(), mails[0].raw)

        ev = self.events(old["orch_id"])
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["note"], "Recovery sweep executed")
        self.assertEqual(ev[0]["payload"]["outcome"], "gave_up")
        self.assertTrue(ev[0]["payload"]["nudgesStopped"])
        o = self.orch(old["orch_id"])
        self.assertIsNone(o["next_action_at"])
        self.assertEqual(o["metadata"]["note"], "Recovery window closed")
        self.assertEqual(o["metadata"]["lastRecoveryOutcome"], "gave_up")

        # Not due again: later sweeps neither touch nor count it, even forced by time passing.
        self.q("UPDATE checkout_orchestrations SET next_action_at = now() - interval '1 minute',"
               " locked_until = NULL WHERE id = %s", young["orch_id"])
        r2 = self.sweep(expect=0)
        self.assertEqual(r2.summary["gave_up"], 0, r2)
        self.assertEqual(len(self.events(old["orch_id"])), 1)
        self.assertEqual(len(self.mails()), 1 + r2.summary["nudges_sent"])

    def test_stalled_without_intents_is_swept_until_the_window_then_stops(self):
        ids = self.seed(intents=0)
        self.age(ids, 31)
        r = self.sweep(expect=0)
        self.assertEqual((r.summary["gave_up"], r.summary["no_intents"]), (1, 0), r)
        self.assertIsNone(self.orch(ids["orch_id"])["next_action_at"])

    def test_zero_never_gives_up(self):
        ids = self.seed()
        self.age(ids, 400)
        r = self.sweep(RW_SWEEP_GIVE_UP_AFTER="0s", expect=0)
        self.assertEqual((r.summary["gave_up"], r.summary["nudges_sent"]), (0, 1), r)
        self.assertIsNotNone(self.orch(ids["orch_id"])["next_action_at"])

    def test_dry_run_says_it_would_give_up_and_writes_nothing(self):
        ids = self.seed()
        self.age(ids, 40)
        r = self.sweep("--dry-run", expect=0)
        self.assertEqual(r.summary["gave_up"], 1, r)
        self.assertIn('"action":"gave_up"', r.stdout)
        self.assertEqual(self.events(ids["orch_id"]), [])


if __name__ == "__main__":
    unittest.main()
