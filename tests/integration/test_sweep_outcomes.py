"""The smplat job's own scenarios, and the worker's answers to them, against a real
PostgreSQL and a real SMTP server (SPEC §3)."""
import email
import email.policy
import json
import os
import stat
import subprocess
import unittest

from harness import RW_BIN, SOURCE_DIR, WorkerTestCase, SENDER, sanitizer_env


class SweepOutcomes(WorkerTestCase):

    def test_due_member_with_pending_intent_gets_exactly_one_prompt(self):
        ids = self.seed(name="Ada", total="129.00", currency="EUR", stage="verification")
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["processed"], 1)
        self.assertEqual(r.summary["nudges_sent"], 1)
        for key in ("skipped_opt_out", "no_intents", "escalations", "deferred", "failed",
                    "duration_ms"):
            self.assertIn(key, r.summary)
        mails = self.mails()
        self.assertEqual(len(mails), 1)
        msg = mails[0]
        self.assertIn(ids["order_number"], msg.message["Subject"])
        self.assertEqual(msg.envelope["rcpt_tos"], [f"member-{ids['order_id'][:8]}@example.test"])
        self.assertEqual(msg.envelope["mail_from"], SENDER)
        self.assertEqual(msg.message.get_content_type(), "multipart/alternative")

        events = self.events(ids["orch_id"])
        self.assertEqual(len(events), 1)
        ev = events[0]
        self.assertEqual((ev["stage"], ev["status"], ev["note"]),
                         ("verification", "waiting", "Recovery sweep executed"))
        self.assertEqual(ev["payload"]["outcome"], "sent")
        payload_text = json.dumps(ev["payload"])
        self.assertNotIn("example.test", payload_text)
        self.assertNotIn("Ada", payload_text)

        o = self.orch(ids["orch_id"])
        self.assertEqual(o["status"], "waiting")
        self.assertTrue(o["future"])
        self.assertEqual(o["next_action_at"], o["locked_until"])
        self.assertIn("lastRecoverySweepAt", o["metadata"])
        self.assertEqual(o["metadata"]["lastRecoveryStage"], "verification")
        delay = self.q("SELECT EXTRACT(EPOCH FROM next_action_at - now())"
                       " FROM checkout_orchestrations WHERE id = %s", ids["orch_id"])[0][0]
        self.assertAlmostEqual(float(delay), 6 * 3600, delta=120)

        ledger = self.ledger(ids["orch_id"])
        self.assertEqual([l["status"] for l in ledger], ["sent"])
        self.assertEqual("<" + ledger[0]["message_id"] + ">", msg.message["Message-ID"])
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)

    def test_opted_out_member_gets_nothing_and_is_counted_as_skipped(self):
        ids = self.seed(opted_out=True)
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["skipped_opt_out"], 1)
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(self.mails(), [])
        events = self.events(ids["orch_id"])
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["payload"]["outcome"], "skipped_opt_out")
        self.assertTrue(self.orch(ids["orch_id"])["future"])
        self.assertEqual(self.ledger(ids["orch_id"]), [])

    def test_member_who_kept_order_updates_on_is_prompted(self):
        ids = self.seed(opted_out=False)
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)
        self.assertEqual(len(self.mails()), 1)
        self.assertEqual(self.events(ids["orch_id"])[0]["payload"]["outcome"], "sent")

    def test_order_without_user_is_escalated_with_the_note(self):
        ids = self.seed(user=False)
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["escalations"], 1)
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(self.mails(), [])
        o = self.orch(ids["orch_id"])
        self.assertEqual(o["metadata"]["note"], "Missing member for checkout recovery")
        self.assertTrue(o["future"])
        self.assertEqual(len(self.events(ids["orch_id"])), 1)

    def test_member_without_pending_intents_gets_the_note_and_no_email(self):
        cases = [
            self.seed(member=False),
            self.seed(intents=0),
            self.seed(intent_status="resolved"),
            self.seed(intent_status="cancelled"),
            self.seed(intent_expires="now() - interval '1 minute'"),
        ]
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["no_intents"], len(cases))
        self.assertEqual(r.summary["nudges_sent"], 0)
        self.assertEqual(self.mails(), [])
        for ids in cases:
            o = self.orch(ids["orch_id"])
            self.assertEqual(o["metadata"]["note"], "No pending checkout intents")
            self.assertEqual(len(self.events(ids["orch_id"])), 1)

    def test_intent_without_expiry_counts_as_pending(self):
        ids = self.seed(intent_expires="NULL")
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)
        self.assertEqual(self.events(ids["orch_id"])[0]["payload"]["intentCount"], 1)

    def test_rows_not_due_leased_or_not_waiting_stay_untouched(self):
        untouched = [
            self.seed(next_action="now() + interval '1 hour'"),
            self.seed(next_action="NULL"),
            self.seed(locked_until="now() + interval '3 minutes'"),
            self.seed(status="in_progress"),
            self.seed(status="completed"),
            self.seed(status="failed"),
            self.seed(status="not_started"),
        ]
        before = {i["orch_id"]: self.orch(i["orch_id"]) for i in untouched}
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["processed"], 0)
        self.assertEqual(self.mails(), [])
        for ids in untouched:
            self.assertEqual(self.orch(ids["orch_id"]), before[ids["orch_id"]])
            self.assertEqual(self.events(ids["orch_id"]), [])

    def test_second_sweep_right_after_sends_nothing(self):
        ids = self.seed()
        self.assertEqual(self.sweep(expect=0).summary["nudges_sent"], 1)
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["processed"], 0)
        self.assertEqual(len(self.mails()), 1)
        self.assertEqual(len(self.events(ids["orch_id"])), 1)

    def test_sweep_drains_every_due_row_in_batches_over_one_session_each(self):
        self.seed_many(57)
        r = self.sweep(RW_SWEEP_BATCH_SIZE=10, RW_SWEEP_CONCURRENCY=2)
        self.assertEqual(r.summary["processed"], 57)
        self.assertEqual(r.summary["nudges_sent"], 57)
        self.assertEqual(len(self.mails()), 57)
        self.assertEqual(self.q("SELECT count(*) FROM checkout_orchestration_events")[0][0], 57)
        # 6 batches, at most 2 sessions each: far fewer connections than messages, plus one
        # reachability probe per session that starts before any succeeded (2 here)
        stats = self.smtp.stats()
        self.assertLessEqual(stats["sessions"], 12)
        self.assertLessEqual(stats["tcp_connections"], stats["sessions"] + 2)

    def test_limit_caps_the_number_handled(self):
        self.seed_many(9)
        r = self.sweep("--limit", "4", RW_SWEEP_BATCH_SIZE=3)
        self.assertEqual(r.summary["processed"], 4)
        self.assertEqual(len(self.mails()), 4)
        due = self.q("SELECT count(*) FROM checkout_orchestrations WHERE next_action_at <= now()")
        self.assertEqual(due[0][0], 5)

    def test_prompt_limit_stops_nudging_with_an_event(self):
        ids = self.seed()
        no_cap = {"RW_SWEEP_MEMBER_MIN_INTERVAL": "0s"}
        for _ in range(3):
            self.sweep(expect=0, **no_cap)
            self.q("UPDATE checkout_orchestrations SET next_action_at = now() - interval '1s',"
                   " locked_until = NULL WHERE id = %s", ids["orch_id"])
        r = self.sweep(expect=0, **no_cap)
        self.assertEqual(r.summary["max_prompts"], 1)
        self.assertEqual(len(self.mails()), 3)
        last = self.events(ids["orch_id"])[-1]
        self.assertEqual(last["payload"]["outcome"], "max_prompts")
        o = self.orch(ids["orch_id"])
        self.assertIsNone(o["next_action_at"])
        self.assertEqual(o["metadata"]["note"], "Recovery prompt limit reached")

    def test_dry_run_claims_sends_and_writes_nothing(self):
        ids = self.seed()
        opted = self.seed(opted_out=True)
        before = self.orch(ids["orch_id"])
        r = self.sweep("--dry-run", expect=0)
        self.assertTrue(r.summary["dry_run"])
        self.assertEqual(r.summary["processed"], 2)
        decisions = [json.loads(l) for l in r.stdout.splitlines()[:-1]]
        actions = {d["orchestration_id"]: d["action"] for d in decisions}
        self.assertEqual(actions, {ids["orch_id"]: "send", opted["orch_id"]: "skipped_opt_out"})
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.orch(ids["orch_id"]), before)
        self.assertEqual(self.events(ids["orch_id"]), [])
        self.assertEqual(self.q("SELECT count(*) FROM recovery_deliveries")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)

    def test_dry_run_dir_that_does_not_exist_is_created_and_holds_the_previews(self):
        ids = self.seed()
        opted = self.seed(opted_out=True)
        before = self.orch(ids["orch_id"])
        out = os.path.join(self.tmp, "previews", "today")  # neither level exists yet
        r = self.sweep("--dry-run", "--dry-run-dir", out, expect=0)
        self.assertEqual(r.summary["processed"], 2)
        self.assertEqual(sorted(os.listdir(out)), [f"{ids['orch_id']}.eml"])
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o700)
        with open(os.path.join(out, f"{ids['orch_id']}.eml"), "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        self.assertIn(ids["order_number"], msg["Subject"] + msg.get_body(("plain",)).get_content())
        self.assertFalse(os.path.exists(os.path.join(out, f"{opted['orch_id']}.eml")))
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.orch(ids["orch_id"]), before)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_deliveries")[0][0], 0)

    def test_dry_run_dir_that_cannot_be_made_is_refused_before_anything(self):
        ids = self.seed()
        before = self.orch(ids["orch_id"])
        blocker = os.path.join(self.tmp, "a-file")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        for target in (os.path.join(blocker, "previews"), blocker):
            r = self.sweep("--dry-run", "--dry-run-dir", target, expect=64)
            self.assertIn("--dry-run-dir", r.stderr)
            self.assertIn(blocker, r.stderr)
            self.assertEqual(r.stdout, "")  # not one decision: nothing was read
        self.assertEqual(self.orch(ids["orch_id"]), before)
        self.assertEqual(self.events(ids["orch_id"]), [])
        self.assertEqual(self.mails(), [])

    def test_order_option_handles_one_order_now_even_when_not_due(self):
        later = self.seed(next_action="now() + interval '2 hours'",
                          locked_until="now() + interval '2 hours'")
        other = self.seed()
        r = self.sweep("--order", later["order_id"], expect=0)
        self.assertEqual(r.summary["processed"], 1)
        self.assertEqual(len(self.mails()), 1)
        self.assertEqual(len(self.events(later["orch_id"])), 1)
        self.assertEqual(self.events(other["orch_id"]), [])

    def test_missing_order_is_noted_escalated_and_not_retried_every_sweep(self):
        # smplat's FK makes this impossible unless the storefront dropped it; the worker
        # must still cope.
        self.q("ALTER TABLE checkout_orchestrations"
               " DROP CONSTRAINT checkout_orchestrations_order_id_fkey")
        ids = self.seed()
        self.q("DELETE FROM orders WHERE id = %s", ids["order_id"])
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["escalations"], 1)
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.events(ids["orch_id"])[0]["payload"]["outcome"], "missing_order")
        o = self.orch(ids["orch_id"])
        self.assertIsNone(o["next_action_at"])
        self.assertEqual(self.sweep(expect=0).summary["processed"], 0)

    def test_metadata_that_is_null_an_array_a_scalar_or_huge_is_handled(self):
        big = json.dumps({"blob": "x" * 2_000_000, "keep": 1})
        cases = {
            "null": self.seed(metadata=None),
            "array": self.seed(metadata="[1,2,3]"),
            "scalar": self.seed(metadata='"text"'),
            "huge": self.seed(metadata=big),
        }
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["nudges_sent"], 4)
        for name, ids in cases.items():
            o = self.orch(ids["orch_id"])
            self.assertIsInstance(o["metadata"], dict, name)
            self.assertIn("lastRecoverySweepAt", o["metadata"], name)
        self.assertEqual(self.orch(cases["huge"]["orch_id"])["metadata"]["keep"], 1)

    def test_progress_is_drawn_on_a_terminal_and_never_otherwise(self):
        import os, pty, subprocess
        from harness import RW_BIN, sanitizer_env
        self.seed_many(30)
        master, slave = pty.openpty()
        env = {**os.environ, **sanitizer_env(), **self.env(RW_SWEEP_BATCH_SIZE=10)}
        p = subprocess.Popen([RW_BIN, "sweep"], env=env, cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=slave)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        p.communicate(timeout=60)
        os.close(master)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"swept 30/30", seen)
        # not a terminal: every line on stderr is a JSON log line, no progress
        self.seed()
        self.seed()
        r = self.sweep(expect=0)
        self.assertNotIn("swept", r.stderr)
        self.assertEqual(len(r.logs), len(r.stderr.splitlines()))

    def test_status_prints_the_storefront_shape(self):
        ids = self.seed(stage="loyalty_hold")
        self.sweep(expect=0)
        r = self.worker("status", ids["order_id"], expect=0)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["orderId"], ids["order_id"])
        self.assertEqual(doc["currentStage"], "loyalty_hold")
        self.assertEqual(doc["status"], "waiting")
        for key in ("startedAt", "completedAt", "failedAt", "nextActionAt", "metadata"):
            self.assertIn(key, doc)
        self.assertEqual(doc["events"][0]["note"], "Recovery sweep executed")
        self.assertEqual(set(doc["events"][0]),
                         {"stage", "status", "note", "payload", "createdAt"})
        missing = self.worker("status", "00000000-0000-0000-0000-000000000000")
        self.assertNotEqual(missing.code, 0)



class DryRunJobRecipe(WorkerTestCase):
    """deploy/k8s/dry-run-job.yaml's script, run as the pod would run it (the binary and
    /tmp/preview replaced by this build's and a temporary directory): the operator gets the
    decisions, the log and the .eml files out of `kubectl logs` alone."""

    def script(self):
        import yaml
        with open(os.path.join(SOURCE_DIR, "deploy", "k8s", "dry-run-job.yaml")) as f:
            job = yaml.safe_load(f)
        c = job["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["command"], ["/bin/sh", "-c"])
        script = c["args"][0]
        self.assertIn("recovery-worker sweep ", script)
        root = os.path.join(self.tmp, "pod-tmp")
        os.mkdir(root)
        # /tmp first: the build (RW_BIN) may itself live under /tmp
        return script.replace("/tmp", root).replace("recovery-worker sweep ",
                                                    f"{RW_BIN} sweep "), root

    def run_pod(self, **env):
        script, root = self.script()
        full = {"PATH": "/usr/bin:/bin", **sanitizer_env(), **self.env(**env)}
        return subprocess.run(["/bin/sh", "-c", script], env=full, capture_output=True,
                              timeout=120), root

    def test_the_log_carries_the_decisions_the_log_and_the_messages(self):
        ids = self.seed()
        opted = self.seed(opted_out=True)
        before = self.orch(ids["orch_id"])
        p, _ = self.run_pod()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        # What `kubectl logs ... | base64 -d | tar -xzf -` does on the operator's machine.
        out = os.path.join(self.tmp, "operator")
        os.mkdir(out)
        subprocess.run(["sh", "-c", "base64 -d | tar -xzf -"], input=p.stdout, cwd=out,
                       check=True, timeout=60)
        preview = os.path.join(out, "preview")
        self.assertEqual(os.listdir(os.path.join(preview, "prompts")),
                         [f"{ids['orch_id']}.eml"])
        with open(os.path.join(preview, "decisions.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual({d["orchestration_id"]: d["action"] for d in lines[:-1]},
                         {ids["orch_id"]: "send", opted["orch_id"]: "skipped_opt_out"})
        self.assertTrue(lines[-1]["dry_run"])
        with open(os.path.join(preview, "log.jsonl")) as f:
            self.assertTrue(all(json.loads(l) for l in f))
        self.assertEqual(self.orch(ids["orch_id"]), before)
        self.assertEqual(self.mails(), [])

    def test_a_failing_worker_fails_the_pod_and_the_log_says_why(self):
        p, _ = self.run_pod(RW_SWEEP_QUIET_HOURS_ZONE="Mars/Olympus")
        self.assertEqual(p.returncode, 78)
        self.assertEqual(p.stdout, b"")
        self.assertIn(b"Mars/Olympus", p.stderr)

if __name__ == "__main__":
    unittest.main()
