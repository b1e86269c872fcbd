"""The database as production has it (SPEC §4 "every wait is bounded", §8 poolers): a
network that goes silent mid-sweep, a PostgreSQL restart mid-sweep, and PgBouncer in
transaction pooling with a pool of two in front of the worker."""
import collections
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest
import uuid

from harness import WorkerTestCase, RW_BIN, run_worker, sanitizer_env, wait_for
from pgbouncer import PgBouncer, pgbouncer_bin
from silent_proxy import SilentProxy

# What the tests below configure, and the margin a loaded machine gets on top.
REPLY_TIMEOUT_S = 5
STATEMENT_TIMEOUT_S = 3
MARGIN_S = 4


def popen_worker(args, env, cwd):
    return subprocess.Popen([RW_BIN] + args, env={**os.environ, **sanitizer_env(), **env},
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class StderrReader:
    """Reads a worker's JSON log lines as they come, so a test can act on one."""

    def __init__(self, proc):
        self.lines = []
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, pred, timeout):
        deadline = time.time() + timeout
        with self._cond:
            while time.time() < deadline:
                for line in self.lines:
                    try:
                        if pred(json.loads(line)):
                            return True
                    except ValueError:
                        pass
                if self._eof:
                    return False
                self._cond.wait(0.1)
        return False

    def text(self):
        self._thread.join(10)
        return "".join(self.lines)


class Deadlines(WorkerTestCase):
    smtp_args = {"delay_ms": 2}

    def assert_everyone_prompted(self, n, max_duplicates):
        events = self.q("SELECT count(*), count(DISTINCT orchestration_id)"
                        " FROM checkout_orchestration_events")[0]
        self.assertEqual(events, (n, n), "every orchestration finalised exactly once")
        self.assertEqual(self.q("SELECT count(*) FROM checkout_orchestrations"
                                " WHERE next_action_at <= now()")[0][0], 0)
        self.assertEqual(self.q("SELECT count(*) FROM recovery_deliveries"
                                " WHERE status IN ('queued', 'sending')")[0][0], 0)
        by_rcpt = collections.defaultdict(list)
        for m in self.mails():
            for r in m.envelope["rcpt_tos"]:
                by_rcpt[r].append(m.message["Message-ID"])
        self.assertEqual(len(by_rcpt), n, "every due member got a prompt")
        # the only second copies: messages on the wire when the database went away, at most
        # one per session, resent with the same Message-ID and marked in the ledger
        dups = {r: ids for r, ids in by_rcpt.items() if len(ids) > 1}
        self.assertLessEqual(sum(len(ids) - 1 for ids in dups.values()), max_duplicates)
        for ids in dups.values():
            self.assertEqual(len(set(ids)), 1)
            self.assertEqual(self.q("SELECT resent_in_doubt FROM recovery_deliveries"
                                    " WHERE message_id = %s", ids[0].strip("<>")), [(True,)])

    def sweep_through_a_path_that_goes_silent(self, n, failpoint, reply_timeout_s,
                                              sigterm_grace_s=None):
        """Starts a sweep through a SilentProxy, makes the proxy go silent both ways when the
        worker reaches `failpoint` (a 1.5 s pause there, when no statement is in flight,
        so the silence starts between two round trips), and returns (exit code, seconds
        from the silence to the exit, stderr). With sigterm_grace_s, the worker runs with
        that sweep.shutdown_grace and gets SIGTERM as the silence starts."""
        with SilentProxy(self.pg.port) as proxy:
            extra = {}
            if sigterm_grace_s is not None:
                extra["RW_SWEEP_SHUTDOWN_GRACE"] = f"{sigterm_grace_s}s"
            env = self.env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{proxy.port}/{self.dbname}",
                           RW_SWEEP_BATCH_SIZE=50, RW_SWEEP_CONCURRENCY=1, RW_SWEEP_LEASE="5s",
                           RW_DATABASE_STATEMENT_TIMEOUT=f"{STATEMENT_TIMEOUT_S}s",
                           RW_DATABASE_REPLY_TIMEOUT=f"{reply_timeout_s}s",
                           RECOVERY_WORKER_FAILPOINTS=f"{failpoint}=sleep(1500)", **extra)
            p = popen_worker(["sweep"], env, self.tmp)
            log = StderrReader(p)
            name = failpoint.split("#")[0]
            self.assertTrue(log.wait_for(lambda l: l.get("failpoint") == name, 60),
                            log.lines[-20:])
            proxy.go_silent()
            silent_at = time.monotonic()
            if sigterm_grace_s is not None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(3 * reply_timeout_s + 60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail("the sweep hung on a silent database")
            held = time.monotonic() - silent_at
            err = log.text()
            p.stdout.close()
            p.stderr.close()
        self.assertNotIn("Sanitizer", err)
        print(f"\nsilent database at {failpoint}: sweep exited {p.returncode} after {held:.1f}s"
              f" (reply_timeout {reply_timeout_s}s)", flush=True)
        return p.returncode, held, err

    def drain_and_check(self, n):
        # no message goes out without the journal, so a silent database stops the sending
        self.assertLess(len(self.mails()), n)
        time.sleep(5.5)  # the leases of the cut-short sweep run out
        r = self.worker("sweep", env=self.env(RW_SWEEP_BATCH_SIZE=50), expect=0)
        self.assertGreater(r.summary["processed"], 0)
        self.assert_everyone_prompted(n, max_duplicates=1)  # one session

    def test_database_going_silent_mid_sweep_ends_it_with_69_within_the_reply_timeout(self):
        # Protects the reply deadline in common/db.c (poll up to database.reply_timeout,
        # then drop the connection): without it the sweep waits on the silent socket for
        # good (the kernel keeps the proxy's connections alive). Here the silence starts
        # after the first batch went to the relay; both connections then wait at once.
        n = 300
        self.seed_many(n)
        code, held, err = self.sweep_through_a_path_that_goes_silent(n, "after_send#1",
                                                                     REPLY_TIMEOUT_S)
        self.assertEqual(code, 69, err[-3000:])
        # the documented bound: database.reply_timeout (plus the rest of the pause)
        self.assertLess(held, REPLY_TIMEOUT_S + 1.5 + MARGIN_S, err[-3000:])
        self.assertGreater(held, REPLY_TIMEOUT_S - 0.5)
        self.assertIn("no reply within", err)
        self.drain_and_check(n)

    def test_silence_while_the_second_connection_is_idle_still_ends_within_one_timeout(self):
        # Protects db_share_fate: the silence starts after the second batch was claimed,
        # while the first is with the relay and the second connection is idle. The claim
        # connection's ledger step times out; the second connection then has the first
        # batch to record, and must give up at once instead of waiting out a deadline of
        # its own (two reply timeouts in all).
        n = 300
        self.seed_many(n)
        reply = 6
        code, held, err = self.sweep_through_a_path_that_goes_silent(n, "after_claim#2", reply)
        self.assertEqual(code, 69, err[-3000:])
        self.assertLess(held, reply + 1.5 + MARGIN_S, err[-3000:])
        self.drain_and_check(n)

    def test_sigterm_while_the_database_is_silent_exits_within_the_grace(self):
        # Protects db_options.stop: after SIGTERM no database wait outlasts
        # sweep.shutdown_grace. Without it the session waiting for its journal mark, and the
        # writer behind it, wait out database.reply_timeout (30 s here), far past a pod's
        # grace period.
        n = 300
        self.seed_many(n)
        grace = 2
        code, held, err = self.sweep_through_a_path_that_goes_silent(
            n, "after_send#1", 30, sigterm_grace_s=grace)
        self.assertEqual(code, 69, err[-3000:])
        # the rest of the failpoint's pause, then at most the grace for the wait in flight
        self.assertLess(held, 1.5 + grace + MARGIN_S, err[-3000:])
        self.assertIn("of the stop request", err)
        self.drain_and_check(n)

    def test_postgres_restart_mid_sweep_ends_it_with_69_quickly_and_the_next_completes(self):
        # Protects the handling of a connection the server closes (57P01, then a broken
        # socket) in the pipeline loop of common/db.c: the sweep ends at once, not at a
        # deadline, and leaves nothing half done.
        n = 1500
        self.seed_many(n)
        env = self.env(RW_SWEEP_BATCH_SIZE=50, RW_SWEEP_CONCURRENCY=2, RW_SWEEP_LEASE="5s",
                       RW_DATABASE_CONNECT_RETRIES=0)
        p = popen_worker(["sweep"], env, self.tmp)
        self.assertTrue(wait_for(lambda: len(os.listdir(self.smtp.maildir)) >= 200, 60))
        self.conn.close()
        started = time.monotonic()
        self.pg.restart_fast()
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("the sweep hung across a PostgreSQL restart")
        took = time.monotonic() - started
        self.conn = self.pg.connect(self.dbname)
        self.assertEqual(p.returncode, 69, err[-3000:])
        self.assertLess(took, 15, "ends with the restart, not at a deadline")
        self.assertNotIn("Sanitizer", err)

        time.sleep(5.5)  # leases of the interrupted batches run out
        self.worker("sweep", env=env, expect=0)
        events = self.q("SELECT count(*), count(DISTINCT orchestration_id)"
                        " FROM checkout_orchestration_events")[0]
        self.assertEqual(events, (n, n))
        self.assert_everyone_prompted(n, max_duplicates=2)  # two sessions


@unittest.skipIf(pgbouncer_bin() is None, "pgbouncer is not installed (scripts/deps.sh)")
class TransactionPooler(WorkerTestCase):
    """PgBouncer 1.18 in pool_mode=transaction with two server connections, as Supabase's
    port 6543, RDS Proxy and most PgBouncer deployments are used."""
    smtp_args = {"delay_ms": 1}

    def setUp(self):
        super().setUp()
        self.bouncer = PgBouncer(self.pg.port, pool_mode="transaction", pool_size=2).start()

    def tearDown(self):
        self.bouncer.destroy()
        super().tearDown()

    def test_five_concurrent_migrates_through_the_pooler_all_succeed(self):
        # Protects pg_advisory_xact_lock taken first in each migration's transaction: with a
        # session lock (released on whichever backend the pool hands out) or DDL before the
        # lock, runs collide on pg_type or wait for good on a lock an idle backend holds.
        for round_no in range(3):
            db = self.pg.create_db("mp_" + uuid.uuid4().hex[:12])
            env = {"DATABASE_URL": self.bouncer.url(db)}
            results = [None] * 5

            def migrate(i):
                results[i] = run_worker(["migrate"], env, timeout=120)

            threads = [threading.Thread(target=migrate, args=(i,)) for i in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for r in results:
                self.assertEqual(r.code, 0, f"round {round_no + 1}: {r}")
            total = results[0].summary["total"]
            self.assertEqual(sum(r.summary["applied"] for r in results), total)
            conn = self.pg.connect(db)
            with conn.cursor() as cur:
                cur.execute("SELECT version, count(*) FROM recovery_worker_migrations GROUP BY 1")
                self.assertEqual(len(cur.fetchall()), total)
            conn.close()

    def server_settings(self, conn):
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('enable_bitmapscan'), current_setting('jit'),"
                        " current_setting('TimeZone')")
            return cur.fetchone()

    def test_three_concurrent_sweeps_through_the_pooler_each_row_once_no_settings_left(self):
        # Protects the per-transaction settings (common/db.c's prelude, cmd_common's list):
        # a session SET would show up in the pool's other clients below, and the claim
        # plans logged by auto_explain would run without enable_bitmapscan = off.
        self.q(f"ALTER DATABASE {self.dbname} SET TimeZone = 'Asia/Tokyo'")
        self.q(f"ALTER DATABASE {self.dbname} SET session_preload_libraries = 'auto_explain'")
        self.q(f"ALTER DATABASE {self.dbname} SET auto_explain.log_min_duration = 0")
        self.q(f"ALTER DATABASE {self.dbname} SET auto_explain.log_settings = on")
        direct = self.pg.connect(self.dbname)
        own = self.server_settings(direct)
        direct.close()
        self.assertEqual(own[0], "on")
        self.assertEqual(own[2], "Asia/Tokyo")

        n = 2000
        self.seed_many(n)
        with open(self.pg.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            log_from = f.tell()
        env = self.env(DATABASE_URL=self.bouncer.url(self.dbname), RW_SWEEP_BATCH_SIZE=200,
                       RW_SWEEP_CONCURRENCY=2)
        procs = [popen_worker(["sweep"], env, self.tmp) for _ in range(3)]
        outs = [p.communicate(timeout=300) for p in procs]
        summaries = []
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err[-3000:])
            self.assertNotIn("Sanitizer", err)
            summaries.append(json.loads(out.strip().splitlines()[-1]))
        self.assertEqual(sum(s["processed"] for s in summaries), n)
        self.assertEqual(sum(s["nudges_sent"] for s in summaries), n)
        per_rcpt = collections.Counter(r for m in self.mails() for r in m.envelope["rcpt_tos"])
        self.assertEqual(len(per_rcpt), n)
        self.assertEqual(max(per_rcpt.values()), 1)
        events = self.q("SELECT count(*), count(DISTINCT orchestration_id)"
                        " FROM checkout_orchestration_events")[0]
        self.assertEqual(events, (n, n))

        # every claim ran with the worker's planner settings in effect
        with open(self.pg.log_path, "rb") as f:
            f.seek(log_from)
            log = f.read().decode(errors="replace")
        plans = [p for p in re.split(r"\n(?=\S)", log)
                 if "Query Text: WITH due AS" in p and "SKIP LOCKED" in p]
        self.assertGreater(len(plans), 0, log[-3000:])
        for plan in plans:
            self.assertRegex(plan, r"Settings: .*enable_bitmapscan = 'off'", plan)
            self.assertRegex(plan, r"Settings: .*jit = 'off'", plan)

        # the pool's two server connections carry none of the worker's settings
        clients = [self.bouncer.connect(self.dbname) for _ in range(2)]
        try:
            seen = [self.server_settings(c) for c in clients]  # each holds one server
            pids = set()
            for c in clients:
                with c.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid()")
                    pids.add(cur.fetchone()[0])
        finally:
            for c in clients:
                c.close()
        self.assertEqual(len(pids), 2, "both of the pool's server connections were looked at")
        self.assertEqual(seen, [own, own])


if __name__ == "__main__":
    unittest.main()
