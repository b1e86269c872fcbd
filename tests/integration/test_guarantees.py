"""SPEC §4 under concurrency, crashes and races: every test here fails if the guarantee it
names breaks (see the comment on each for the code it protects)."""
import collections
import json
import os
import signal
import subprocess
import sys
import time
import unittest

from harness import WorkerTestCase, RW_BIN, run_worker, sanitizer_env, wait_for
from smtp_server import SmtpServer



class Concurrency(WorkerTestCase):
    smtp_args = {"delay_ms": 3}

    def test_four_workers_at_once_send_each_due_orchestration_exactly_once(self):
        # Protects FOR UPDATE SKIP LOCKED in the claim and the ledger's unique key: without
        # them two workers take the same rows and members get two prompts.
        n = 3000
        self.seed_many(n)
        env = self.env(RW_SWEEP_BATCH_SIZE=100, RW_SWEEP_CONCURRENCY=4)
        procs = [subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                                  cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        outs = [p.communicate(timeout=600) for p in procs]
        import json
        summaries = []
        run_ids = set()
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err[-3000:])
            self.assertNotIn("Sanitizer", err)
            summaries.append(json.loads(out.strip().splitlines()[-1]))
            for line in err.splitlines():
                run_ids.add(json.loads(line).get("run_id"))
        run_ids.discard(None)
        self.assertEqual(len(run_ids), 4, "each process logs under its own run id")
        self.assertEqual(sum(s["processed"] for s in summaries), n)
        self.assertEqual(sum(s["nudges_sent"] for s in summaries), n)
        self.assertTrue(all(s["processed"] > 0 for s in summaries), summaries)

        mails = self.mails()
        per_rcpt = collections.Counter(r for m in mails for r in m.envelope["rcpt_tos"])
        self.assertEqual(len(mails), n)
        self.assertEqual(max(per_rcpt.values()), 1)
        events = self.q("SELECT orchestration_id, count(*) FROM checkout_orchestration_events"
                        " WHERE transition_note = 'Recovery sweep executed' GROUP BY 1")
        self.assertEqual(len(events), n)
        self.assertTrue(all(c == 1 for _, c in events))
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM checkout_orchestrations"
                                " WHERE next_action_at <= now() OR locked_until <= now()")[0][0], 0)
        runs = self.q("SELECT count(DISTINCT run_id) FROM recovery_deliveries")[0][0]
        self.assertEqual(runs, 4)


class Crashes(WorkerTestCase):
    """Nothing lost after kill -9 at any instant; the only duplicates are messages whose data
    was on the wire at the kill, at most one per SMTP session, resent with the same
    Message-ID and marked in the ledger."""
    smtp_args = {"delay_ms": 5}

    def lease_env(self, **extra):
        settings = {"RW_SWEEP_LEASE": "5s", "RW_SWEEP_BATCH_SIZE": 50, "RW_SWEEP_CONCURRENCY": 2}
        settings.update(extra)
        return self.env(**settings)

    def drain_after_leases_expire(self, env, timeout=90):
        """Sweeps until nothing is due (waiting out the dead workers' leases)."""
        summaries = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            left = self.q("SELECT count(*) FROM checkout_orchestrations"
                          " WHERE stage_status = 'waiting' AND next_action_at <= now()")[0][0]
            if left == 0:
                break
            r = self.worker("sweep", env=env, expect=0)
            summaries.append(r.summary)
            time.sleep(0.5)
        return summaries

    def assert_each_finalised_once(self, n):
        events = self.q("SELECT count(*), count(DISTINCT orchestration_id)"
                        " FROM checkout_orchestration_events")[0]
        self.assertEqual(events, (n, n), "every orchestration finalised exactly once")
        self.assertEqual(self.q("SELECT count(*) FROM checkout_orchestrations"
                                " WHERE next_action_at IS NOT NULL AND next_action_at <= now()")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_deliveries"
                                " WHERE status IN ('queued', 'sending')")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)

    def assert_every_member_prompted(self, n, max_duplicates):
        """No member without a prompt; each duplicate shares its Message-ID with the first
        copy and the ledger shows the occurrence was resent in doubt."""
        by_rcpt = collections.defaultdict(list)
        for m in self.mails():
            for r in m.envelope["rcpt_tos"]:
                by_rcpt[r].append(m.message["Message-ID"])
        missing = self.q("SELECT u.email, d.status, d.attempts, d.resent_in_doubt, d.smtp_text"
                         " FROM users u JOIN orders o ON o.user_id = u.id"
                         " JOIN checkout_orchestrations c ON c.order_id = o.id"
                         " LEFT JOIN recovery_deliveries d ON d.orchestration_id = c.id"
                         " WHERE u.email <> ALL(%s)", list(by_rcpt))
        self.assertEqual(len(by_rcpt), n, "members without their prompt: %s" % missing)
        dups = {r: ids for r, ids in by_rcpt.items() if len(ids) > 1}
        self.assertLessEqual(sum(len(ids) - 1 for ids in dups.values()), max_duplicates)
        for rcpt, ids in dups.items():
            self.assertEqual(len(set(ids)), 1, "a duplicate carries the same Message-ID")
            rows = self.q("SELECT status, attempts, resent_in_doubt FROM recovery_deliveries"
                          " WHERE message_id = %s", ids[0].strip("<>"))
            self.assertEqual(len(rows), 1)
            status, attempts, resent = rows[0]
            self.assertEqual((status, resent), ("sent", True), "the ledger shows the resend")
            self.assertGreaterEqual(attempts, len(ids))
        return sum(len(ids) - 1 for ids in dups.values())

    def start_sweep(self, env):
        return subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def test_kill_9_at_many_instants_loses_no_prompt(self):
        # Protects the journal: a message is 'sending' only once its data is about to go out
        # and its reply is recorded before the session's next message goes out. Without it a
        # kill leaves whole batches in doubt (members without a prompt, or many duplicates).
        n, sessions = 2000, 4
        self.seed_many(n)
        self.smtp.cleanup()
        self.smtp = SmtpServer.start(maildir=os.path.join(self.tmp, "mail20"), delay_ms=20)
        env = self.env(RW_SWEEP_LEASE="5s", RW_SWEEP_BATCH_SIZE=100,
                       RW_SWEEP_CONCURRENCY=sessions)
        # kill instants: seconds after start, or messages received since start
        instants = [("s", 0.15), ("s", 0.4), ("m", 1), ("s", 0.8), ("m", 7), ("s", 1.3),
                    ("m", 30), ("s", 2.0), ("m", 90), ("m", 160), ("s", 3.0)]
        report = []
        for kind, at in instants:
            before = len(os.listdir(self.smtp.maildir))
            p = self.start_sweep(env)
            t0 = time.time()
            if kind == "s":
                time.sleep(at)
            else:
                wait_for(lambda: len(os.listdir(self.smtp.maildir)) >= before + 2 * at, 30,
                         step=0.005)
            os.kill(p.pid, signal.SIGKILL)
            _, err = p.communicate()
            run_id = next((json.loads(l).get("run_id") for l in err.splitlines()
                           if l.startswith("{") and "run_id" in l), None)
            out = (len(os.listdir(self.smtp.maildir)) - before) // 2
            doubt = self.q("SELECT count(*) FROM recovery_deliveries"
                           " WHERE status = 'sending' AND run_id = %s", run_id)[0][0]
            report.append((kind, at, round(time.time() - t0, 2), out, doubt))
            self.assertLessEqual(doubt, sessions, "in doubt after the kill: only what was "
                                 "on the wire, one per session (%s)" % report)
        in_doubt = sum(r[4] for r in report)
        time.sleep(5.5)
        self.drain_after_leases_expire(env)
        self.assert_each_finalised_once(n)
        dups = self.assert_every_member_prompted(n, max_duplicates=in_doubt)
        print("\nkill -9 instants (kind, at, after s, messages out, in doubt):", report,
              "duplicates:", dups, file=sys.stderr)

    def test_kill_9_after_the_relay_accepted_but_before_recording(self):
        # The reply of the last instant: the relay took the message, the journal had not
        # written it yet. Default: resent once with the same Message-ID; skip: never resent.
        for policy, copies, status in (("resend", 2, ("sent", 2, True)),
                                       ("skip", 1, ("unknown", 1, False))):
            with self.subTest(policy=policy):
                self.q("TRUNCATE checkout_orchestrations, recovery_deliveries,"
                       " recovery_claims, orders, users CASCADE")
                for f in os.listdir(self.smtp.maildir):
                    os.unlink(os.path.join(self.smtp.maildir, f))
                ids = self.seed()
                # journal write 1 marks it 'sending', write 2 would record the reply
                r = self.worker("sweep", env=self.lease_env(
                    RECOVERY_WORKER_FAILPOINTS="before_journal_write#2=kill"))
                self.assertEqual(r.code, -signal.SIGKILL, r)
                self.assertEqual(len(self.mails()), 1)
                self.assertEqual([l["status"] for l in self.ledger(ids["orch_id"])], ["sending"])
                time.sleep(5.5)
                self.drain_after_leases_expire(self.lease_env(RW_SWEEP_ON_UNKNOWN_DELIVERY=policy))
                mails = self.mails()
                self.assertEqual(len(mails), copies)
                self.assertEqual(len({m.message["Message-ID"] for m in mails}), 1)
                self.assertEqual(self.q("SELECT status, attempts, resent_in_doubt"
                                        " FROM recovery_deliveries")[0], status)
                self.assertEqual(len(self.events(ids["orch_id"])), 1)

    def test_kill_9_at_each_step_then_sweeps_finish_everything(self):
        points = ("after_claim", "after_ledger_begin", "before_journal_write#1",
                  "after_journal_write#1", "before_data#1", "after_reply#1",
                  "before_journal_write#3", "after_journal_write#4", "before_data#5",
                  "after_send", "after_ledger_finish", "after_finalise")
        for point in points:
            with self.subTest(point=point):
                self.q("TRUNCATE checkout_orchestrations, recovery_deliveries,"
                       " recovery_claims, orders, users CASCADE")
                for f in os.listdir(self.smtp.maildir):
                    os.unlink(os.path.join(self.smtp.maildir, f))
                self.seed_many(20)
                name, _, nth = point.partition("#")
                fp = f"{name}#{nth or 1}=kill"
                r = self.worker("sweep", env=self.lease_env(
                    RW_SWEEP_BATCH_SIZE=10, RECOVERY_WORKER_FAILPOINTS=fp))
                self.assertEqual(r.code, -signal.SIGKILL, r)
                time.sleep(5.2)
                self.drain_after_leases_expire(self.lease_env())
                self.assert_each_finalised_once(20)
                self.assert_every_member_prompted(20, max_duplicates=2)


class Stopping(WorkerTestCase):
    """SIGTERM: the messages on the wire finish, nothing more goes out, and what was not sent
    is released, within sweep.shutdown_grace."""
    smtp_args = {"delay_ms": 200}

    def test_sigterm_with_a_slow_relay_stops_within_the_grace_and_loses_nothing(self):
        n = 600
        self.seed_many(n)
        env = self.env(RW_SWEEP_CONCURRENCY=16, RW_SWEEP_BATCH_SIZE=100,
                       RW_SWEEP_SHUTDOWN_GRACE="5s")
        p = subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                             cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.assertTrue(wait_for(lambda: len(os.listdir(self.smtp.maildir)) >= 2 * 40, 60))
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        took = time.time() - t0
        self.assertEqual(p.returncode, 0, err[-3000:])
        self.assertLess(took, 5.0, "stopped within the grace")
        summary = json.loads(out.strip().splitlines()[-1])
        self.assertLess(summary["nudges_sent"], n, "the stop came mid-sweep")
        # what was not sent is due again at once: the next sweep finishes it
        self.assertEqual(self.q("SELECT count(*) FROM recovery_deliveries"
                                " WHERE status IN ('queued', 'sending')")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)
        self.sweep(RW_SWEEP_CONCURRENCY=16)
        per_rcpt = collections.Counter(r for m in self.mails() for r in m.envelope["rcpt_tos"])
        self.assertEqual(len(per_rcpt), n, "nothing lost")
        self.assertEqual(max(per_rcpt.values()), 1, "nothing duplicated")
        events = self.q("SELECT count(*), count(DISTINCT orchestration_id)"
                        " FROM checkout_orchestration_events")[0]
        self.assertEqual(events, (n, n))

    def test_grace_over_cuts_stalled_sessions_short_and_nothing_is_lost(self):
        # A relay that stops answering: past the grace the sessions are cut; the message
        # that was on the wire is in doubt and resent once, nothing else is lost.
        self.smtp.cleanup()
        self.smtp = SmtpServer.start(maildir=os.path.join(self.tmp, "mail2"), delay_ms=30000)
        n = 10
        self.seed_many(n)
        env = self.env(RW_SWEEP_CONCURRENCY=2, RW_SWEEP_SHUTDOWN_GRACE="1s",
                       RW_SMTP_TIMEOUT="60s", RW_SWEEP_LEASE="5s")
        p = subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                             cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.assertTrue(wait_for(lambda: self.q("SELECT count(*) FROM recovery_deliveries"
                                                " WHERE status = 'sending'")[0][0] == 2, 30))
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err[-3000:])
        self.assertLess(time.time() - t0, 4.0, "the grace bounds the stop")
        self.assertEqual(self.q("SELECT status, count(*) FROM recovery_deliveries"
                                " GROUP BY 1 ORDER BY 1"), [("released", n - 2), ("unknown", 2)])
        self.smtp.cleanup()
        self.smtp = SmtpServer.start(maildir=os.path.join(self.tmp, "mail3"))
        time.sleep(5.5)
        self.sweep(SMTP_PORT=self.smtp.port, RW_SWEEP_LEASE="5s")
        per_rcpt = collections.Counter(r for m in self.mails() for r in m.envelope["rcpt_tos"])
        self.assertEqual(len(per_rcpt), n, "nothing lost")
        rows = self.q("SELECT status, count(*) FILTER (WHERE resent_in_doubt)"
                      " FROM recovery_deliveries GROUP BY 1")
        self.assertEqual(rows, [("sent", 2)])


class Races(WorkerTestCase):

    def test_worker_whose_lease_expired_does_not_finalise_over_the_next_one(self):
        # Protects the claim guard in store_finalise: without it the slow worker writes a
        # second event and moves next_action_at over the second worker's result.
        ids = self.seed()
        slow_env = self.env(RW_SWEEP_LEASE="5s",
                            RECOVERY_WORKER_FAILPOINTS="after_ledger_finish=sleep(8000)")
        slow = subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **slow_env},
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self.assertTrue(wait_for(lambda: len(self.mails()) == 1, 20))
        time.sleep(5.5)  # the slow worker's lease has now expired
        fast = self.worker("sweep", env=self.env(RW_SWEEP_LEASE="5s"), expect=0)
        self.assertEqual(fast.summary["already_sent"], 1)
        out, err = slow.communicate(timeout=60)
        self.assertEqual(slow.returncode, 0, err)
        import json
        slow_summary = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(slow_summary["lost_leases"], 1)
        self.assertIn("lease lost", err)
        self.assertEqual(len(self.mails()), 1)
        self.assertEqual(len(self.events(ids["orch_id"])), 1)

    def test_member_resuming_checkout_after_the_claim_gets_no_prompt(self):
        # Protects the re-check in store_ledger_begin and the status guard in finalise.
        ids = self.seed()
        env = self.env(RECOVERY_WORKER_FAILPOINTS="after_claim=sleep(3000)")
        p = subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                             cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.assertTrue(wait_for(lambda: self.q(
            "SELECT count(*) FROM recovery_claims")[0][0] == 1, 20))
        self.q("UPDATE checkout_orchestrations SET stage_status = 'in_progress',"
               " next_action_at = NULL, locked_until = NULL, metadata = '{\"by\": \"storefront\"}'"
               " WHERE id = %s", ids["orch_id"])
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.events(ids["orch_id"]), [])
        o = self.orch(ids["orch_id"])
        self.assertEqual((o["status"], o["metadata"]), ("in_progress", {"by": "storefront"}))
        self.assertIsNone(o["next_action_at"])
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)

    def start(self, env):
        return subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def test_expired_worker_does_not_finalise_while_the_next_one_holds_the_claim(self):
        # Protects the claim guard in store_finalise: A's lease runs out, B claims and is still
        # working when A wakes. next_action_at has not moved yet, so only the claim stops A.
        import json
        ids = self.seed()
        a = self.start(self.env(RW_SWEEP_LEASE="5s",
                                RECOVERY_WORKER_FAILPOINTS="after_ledger_finish=sleep(8000)"))
        self.assertTrue(wait_for(lambda: len(self.mails()) == 1, 20))
        time.sleep(5.5)  # A's lease has expired
        b = self.start(self.env(RW_SWEEP_LEASE="30s",
                                RECOVERY_WORKER_FAILPOINTS="after_claim=sleep(6000)"))
        a_out, a_err = a.communicate(timeout=60)
        b_out, b_err = b.communicate(timeout=60)
        self.assertEqual((a.returncode, b.returncode), (0, 0), a_err + b_err)
        b_run = {json.loads(l).get("run_id") for l in b_err.splitlines()} - {None}
        events = self.events(ids["orch_id"])
        self.assertEqual(len(self.mails()), 1)
        self.assertEqual(len(events), 1)
        self.assertIn(events[0]["payload"]["runId"], b_run,
                      "the event is written by the worker that holds the claim")
        self.assertEqual(json.loads(a_out.strip().splitlines()[-1])["lost_leases"], 1)

    def test_storefront_failing_the_order_after_the_claim_means_no_prompt(self):
        # Protects the stage_status re-check in store_ledger_begin: the storefront's `failed`
        # keeps next_action_at, so nothing else stands between the claim and a send.
        ids = self.seed()
        p = self.start(self.env(RECOVERY_WORKER_FAILPOINTS="after_claim=sleep(3000)"))
        self.assertTrue(wait_for(lambda: self.q(
            "SELECT count(*) FROM recovery_claims")[0][0] == 1, 20))
        self.q("UPDATE checkout_orchestrations SET stage_status = 'failed', locked_until = NULL,"
               " metadata = '{\"by\": \"storefront\"}' WHERE id = %s", ids["orch_id"])
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.events(ids["orch_id"]), [])

    def test_storefront_change_between_send_and_finalise_is_not_overwritten(self):
        # Protects the status/due guard in store_finalise.
        ids = self.seed()
        p = self.start(self.env(RECOVERY_WORKER_FAILPOINTS="after_ledger_finish=sleep(3000)"))
        self.assertTrue(wait_for(lambda: len(self.mails()) == 1, 20))
        self.q("UPDATE checkout_orchestrations SET stage_status = 'in_progress',"
               " next_action_at = NULL, locked_until = NULL,"
               " metadata = '{\"by\": \"storefront\"}' WHERE id = %s", ids["orch_id"])
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(self.events(ids["orch_id"]), [])
        o = self.orch(ids["orch_id"])
        self.assertEqual((o["status"], o["metadata"]), ("in_progress", {"by": "storefront"}))
        self.assertIsNone(o["next_action_at"])
        self.assertEqual([l["status"] for l in self.ledger(ids["orch_id"])], ["sent"],
                         "the ledger still tells the truth about the delivery")

    def test_opt_out_landing_between_claim_and_send_still_wins(self):
        # Protects the consent re-check in store_ledger_begin.
        ids = self.seed(opted_out=False)
        p = self.start(self.env(RECOVERY_WORKER_FAILPOINTS="after_claim=sleep(3000)"))
        self.assertTrue(wait_for(lambda: self.q(
            "SELECT count(*) FROM recovery_claims")[0][0] == 1, 20))
        self.q("UPDATE notification_preferences SET order_updates = false WHERE user_id = %s",
               ids["user_id"])
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(self.mails(), [])
        self.assertEqual(self.events(ids["orch_id"]), [], "left for the next sweep to record")

    def test_opt_out_read_at_claim_time_wins(self):
        ids = self.seed(opted_out=False)
        self.q("UPDATE notification_preferences SET order_updates = false WHERE user_id = %s",
               ids["user_id"])
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["skipped_opt_out"], 1)
        self.assertEqual(self.mails(), [])


class DatabaseFaults(WorkerTestCase):
    smtp_args = {"delay_ms": 2}

    def test_database_stopped_mid_sweep_leaves_no_partial_state(self):
        # Protects finalisation in one statement: an event without its next_action_at (or
        # the reverse) would show up as a mismatch below.
        n = 1500
        self.seed_many(n)
        env = self.env(RW_SWEEP_BATCH_SIZE=50, RW_SWEEP_CONCURRENCY=2, RW_SWEEP_LEASE="5s",
                       RW_DATABASE_CONNECT_RETRIES=0)
        p = subprocess.Popen([RW_BIN, "sweep"], env={**os.environ, **sanitizer_env(), **env},
                             cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.assertTrue(wait_for(lambda: len(os.listdir(self.smtp.maildir)) >= 2 * 200, 60))
        self.conn.close()
        self.pg.stop(immediate=True)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 69, err[-3000:])
        self.pg.restart()
        self.conn = self.pg.connect(self.dbname)
        mismatched = self.q("""
            SELECT count(*) FROM checkout_orchestrations c
             WHERE (EXISTS (SELECT 1 FROM checkout_orchestration_events e
                             WHERE e.orchestration_id = c.id))
                   <> (c.next_action_at > now())""")[0][0]
        self.assertEqual(mismatched, 0, "an event always comes with its next_action_at")
        done = self.q("SELECT count(*) FROM checkout_orchestration_events")[0][0]
        self.assertGreater(done, 0)
        self.assertLess(done, n)
        time.sleep(5.5)  # leases of the interrupted batch expire
        r = self.worker("sweep", env=env, expect=0)
        events = self.q("SELECT count(*), count(DISTINCT orchestration_id)"
                        " FROM checkout_orchestration_events")[0]
        self.assertEqual(events, (n, n))

    def test_database_unreachable_exits_69_after_bounded_retries(self):
        start = time.time()
        r = self.worker("sweep", env=self.env(DATABASE_URL="postgresql://postgres@127.0.0.1:9/x",
                                              RW_DATABASE_CONNECT_RETRIES=2))
        self.assertEqual(r.code, 69, r)
        self.assertLess(time.time() - start, 30)
        retries = [l for l in r.logs if l.get("msg") == "database connect failed; retrying"]
        self.assertEqual(len(retries), 2)


if __name__ == "__main__":
    unittest.main()
