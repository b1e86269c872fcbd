"""`run`: the long-lived loop, its signals and its retries."""
import json
import os
import signal
import subprocess
import time
import unittest

from harness import WorkerTestCase, RW_BIN, sanitizer_env, wait_for



class RunLoop(WorkerTestCase):

    def start(self, **env):
        full = {**os.environ, **sanitizer_env(), **self.env(**env)}
        return subprocess.Popen([RW_BIN, "run"], env=full, cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, p, sig=signal.SIGTERM, timeout=30):
        p.send_signal(sig)
        out, err = p.communicate(timeout=timeout)
        self.assertNotIn("Sanitizer", err)
        return out, err

    def test_sweeps_at_start_then_sigusr1_sweeps_now_and_sigterm_exits_0(self):
        self.seed()
        p = self.start(RW_SCHEDULE_INTERVAL="1h", RW_SCHEDULE_JITTER="0s")
        self.assertTrue(wait_for(lambda: len(self.mails()) == 1))
        self.seed()
        time.sleep(0.5)
        self.assertEqual(len(self.mails()), 1, "the next sweep is an hour away")
        p.send_signal(signal.SIGUSR1)
        self.assertTrue(wait_for(lambda: len(self.mails()) == 2, 10))
        start = time.time()
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 0, err)
        self.assertLess(time.time() - start, 5)
        summaries = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([s["nudges_sent"] for s in summaries], [1, 1])
        run_ids = {json.loads(l).get("run_id") for l in err.splitlines()} - {None}
        self.assertEqual(len(run_ids), 2, "each sweep has its own run id")

    def test_sweeps_again_after_the_interval(self):
        self.seed()
        p = self.start(RW_SCHEDULE_INTERVAL="1s", RW_SCHEDULE_JITTER="0s")
        self.assertTrue(wait_for(lambda: len(self.mails()) == 1))
        self.seed()
        self.assertTrue(wait_for(lambda: len(self.mails()) == 2, 10))
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 0, err)

    def test_sigterm_before_the_batch_goes_out_sends_nothing_and_releases_it(self):
        self.seed_many(30)
        p = self.start(RW_SWEEP_BATCH_SIZE=10, RW_SCHEDULE_INTERVAL="1h",
                       RECOVERY_WORKER_FAILPOINTS="after_claim=sleep(1500)")
        self.assertTrue(wait_for(lambda: self.q(
            "SELECT count(*) FROM recovery_claims")[0][0] == 10, 20))
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 0, err)
        # the stop came before any message of the claimed batch went out: nothing is sent,
        # and every row is handed back due at once
        self.assertEqual(len(self.mails()), 0)
        self.assertEqual(self.q("SELECT count(*) FROM checkout_orchestration_events")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)
        due = self.q("SELECT count(*) FROM checkout_orchestrations WHERE next_action_at <= now()"
                     " AND (locked_until IS NULL OR locked_until <= now())")[0][0]
        self.assertEqual(due, 30, "everything is left due for the next sweep")

    def test_sweep_stopped_by_sigterm_before_sending_releases_its_batch_and_exits_0(self):
        self.seed_many(30)
        full = {**os.environ, **sanitizer_env(),
                **self.env(RW_SWEEP_BATCH_SIZE=10,
                           RECOVERY_WORKER_FAILPOINTS="after_claim=sleep(1500)")}
        p = subprocess.Popen([RW_BIN, "sweep"], env=full, cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.assertTrue(wait_for(lambda: self.q(
            "SELECT count(*) FROM recovery_claims")[0][0] == 10, 20))
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 0, err)
        summary = json.loads(out.splitlines()[-1])
        self.assertEqual((summary["processed"], summary["released"]), (10, 10))
        self.assertEqual(len(self.mails()), 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_claims")[0][0], 0)
        self.assertEqual(self.sweep().summary["nudges_sent"], 30, "the next sweep sends all")

    def test_failed_sweep_is_retried_with_backoff_then_the_loop_goes_on(self):
        p = self.start(DATABASE_URL="postgresql://postgres@127.0.0.1:9/none",
                       RW_DATABASE_CONNECT_RETRIES=0, RW_SCHEDULE_RETRY_ATTEMPTS=3,
                       RW_SCHEDULE_RETRY_BASE="200ms", RW_SCHEDULE_RETRY_JITTER="0s",
                       RW_SCHEDULE_INTERVAL="1h")
        time.sleep(2.5)
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 0, err)
        logs = [json.loads(l) for l in err.splitlines()]
        retrying = [l for l in logs if l["msg"] == "sweep failed; retrying"]
        failed = [l for l in logs if l["msg"] == "sweep failed"]
        self.assertEqual([l["retry_in_ms"] for l in retrying], [200, 400])
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["attempt"], 3)


if __name__ == "__main__":
    unittest.main()
