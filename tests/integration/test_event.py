"""`event`: the storefront's state machine from the command line."""
import json
import unittest
import uuid

from harness import WorkerTestCase


class Event(WorkerTestCase):
    smtp_mode = None

    def event(self, order_id, *args, expect=0):
        return self.worker("event", order_id, *args, expect=expect)

    def test_completed_advances_and_records_the_event(self):
        ids = self.seed(stage="payment", status="in_progress")
        r = self.event(ids["order_id"], "--stage", "payment", "--status", "completed",
                       "--note", "paid", "--payload", '{"psp": "x"}')
        doc = json.loads(r.stdout)
        self.assertEqual((doc["currentStage"], doc["status"]), ("verification", "not_started"))
        self.assertEqual(doc["events"][-1],
                         {**doc["events"][-1], "stage": "payment", "status": "completed",
                          "note": "paid", "payload": {"psp": "x"}})
        self.assertIsNone(doc["nextActionAt"])

    def test_waiting_sets_next_action_and_lease_and_merges_metadata(self):
        ids = self.seed(stage="verification", status="in_progress", metadata='{"a": 1}')
        r = self.event(ids["order_id"], "--stage", "verification", "--status", "waiting",
                       "--next-action-at", "2030-01-02T03:04:05Z",
                       "--metadata-patch", '{"b": 2}')
        doc = json.loads(r.stdout)
        self.assertEqual(doc["status"], "waiting")
        self.assertTrue(doc["nextActionAt"].startswith("2030-01-02T03:04:05"))
        self.assertEqual(doc["metadata"], {"a": 1, "b": 2})
        o = self.orch(ids["orch_id"])
        self.assertEqual(o["locked_until"], o["next_action_at"])

    def test_failed_sets_failed_at_and_keeps_the_stage(self):
        ids = self.seed(stage="loyalty_hold")
        doc = json.loads(self.event(ids["order_id"], "--stage", "loyalty_hold",
                                    "--status", "failed").stdout)
        self.assertEqual((doc["currentStage"], doc["status"]), ("loyalty_hold", "failed"))
        self.assertIsNotNone(doc["failedAt"])

    def test_in_progress_sets_started_at_once(self):
        ids = self.seed(status="not_started")
        first = json.loads(self.event(ids["order_id"], "--stage", "payment",
                                      "--status", "in_progress").stdout)["startedAt"]
        second = json.loads(self.event(ids["order_id"], "--stage", "payment",
                                       "--status", "in_progress").stdout)["startedAt"]
        self.assertIsNotNone(first)
        self.assertEqual(first, second)

    def test_order_without_orchestration_gets_one_created(self):
        oid = str(uuid.uuid4())
        self.q("INSERT INTO orders (id, order_number) VALUES (%s, 'SM-NEW')", oid)
        doc = json.loads(self.event(oid, "--stage", "payment", "--status",
                                    "in_progress").stdout)
        self.assertEqual([e["note"] for e in doc["events"]],
                         ["Checkout orchestration initialized", None])

    def test_invalid_input_exits_64_and_writes_nothing(self):
        ids = self.seed()
        before = self.orch(ids["orch_id"])
        bad = [
            ("--stage", "shipping", "--status", "waiting"),
            ("--stage", "payment", "--status", "WAITING"),
            ("--stage", "payment", "--status", "waiting", "--metadata-patch", "{nope"),
            ("--stage", "payment", "--status", "waiting", "--payload", "[1]"),
            ("--stage", "payment", "--status", "waiting", "--next-action-at", "tomorrowish"),
        ]
        for args in bad:
            with self.subTest(args=args):
                r = self.event(ids["order_id"], *args, expect=64)
                self.assertTrue(r.stderr.strip())
        self.event(str(uuid.uuid4()), "--stage", "payment", "--status", "waiting", expect=64)
        self.assertEqual(self.orch(ids["orch_id"]), before)
        self.assertEqual(self.events(ids["orch_id"]), [])


if __name__ == "__main__":
    unittest.main()
