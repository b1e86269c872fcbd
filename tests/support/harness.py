"""Shared scaffolding for the integration tests: one throwaway PostgreSQL per test module
(a migrated template database, copied for each test), a real SMTP server per test, the
worker binary run as a subprocess, and helpers to seed smplat-shaped data and read back
what the worker wrote."""
import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

from pgcluster import PgCluster
from smtp_server import SmtpServer

RW_BIN = os.environ.get("RW_BIN", "")
SOURCE_DIR = os.environ.get("RW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SENDER = "checkout@shop.test"

_cluster = None
_template_ready = False


def cluster():
    """The module's PostgreSQL cluster, started on first use and stopped at exit."""
    global _cluster
    if _cluster is None:
        _cluster = PgCluster().init().start()
        atexit.register(_cluster.destroy)
    return _cluster


def wait_for(pred, timeout=30, step=0.05):
    """Polls pred until it holds or timeout seconds pass; returns whether it held."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def sanitizer_env():
    lsan = os.path.join(SOURCE_DIR, "tests", "support", "lsan.supp")
    env = {
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=98",
    }
    if os.path.exists(lsan):
        env["LSAN_OPTIONS"] = f"suppressions={lsan}:print_suppressions=0"
    return env


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.summary = None
        lines = [l for l in proc.stdout.splitlines() if l.strip()]
        if lines:
            try:
                self.summary = json.loads(lines[-1])
            except ValueError:
                pass
        self.logs = []
        for l in proc.stderr.splitlines():
            try:
                self.logs.append(json.loads(l))
            except ValueError:
                pass

    def __repr__(self):
        return f"<exit {self.code} stdout={self.stdout[-2000:]!r} stderr={self.stderr[-4000:]!r}>"


class WorkerTestCase(unittest.TestCase):
    """Each test gets its own migrated database and its own SMTP server."""

    smtp_mode = "normal"
    smtp_args = {}

    @classmethod
    def setUpClass(cls):
        global _template_ready
        if not RW_BIN or not os.access(RW_BIN, os.X_OK):
            raise unittest.SkipTest("RW_BIN does not name the recovery-worker binary")
        c = cluster()
        if not _template_ready:
            c.create_db("rw_template")
            r = run_worker(["migrate"], {"DATABASE_URL": c.url("rw_template")})
            if r.code != 0:
                raise RuntimeError(f"migrate failed: {r}")
            _template_ready = True

    def setUp(self):
        self.pg = cluster()
        self.dbname = "t_" + uuid.uuid4().hex[:12]
        self.pg.create_db(self.dbname, template="rw_template")
        self.conn = self.pg.connect(self.dbname)
        self.tmp = tempfile.mkdtemp(prefix="rw-test-")
        self.smtp = None
        if self.smtp_mode is not None:
            self.smtp = SmtpServer.start(mode=self.smtp_mode,
                                         maildir=os.path.join(self.tmp, "mail"),
                                         **self.smtp_args)

    def tearDown(self):
        if self.smtp is not None:
            self.smtp.cleanup()
        self.conn.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- running the worker

    def env(self, **extra):
        env = {
            "DATABASE_URL": self.pg.url(self.dbname),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp.port if self.smtp else 9),
            "SMTP_TLS": "none",
            "SMTP_SENDER_EMAIL": SENDER,
            "SMTP_SENDER_NAME": "Shop Checkout",
            "RESUME_URL": "https://shop.test/checkout",
            "LOG_LEVEL": "info",
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def worker(self, *args, env=None, timeout=300, expect=None):
        r = run_worker(list(args), env if env is not None else self.env(), cwd=self.tmp,
                       timeout=timeout)
        if expect is not None:
            self.assertEqual(r.code, expect, r)
        self.assertNotIn("AddressSanitizer", r.stderr, r)
        self.assertNotIn("runtime error:", r.stderr, r)
        self.assertNotIn("LeakSanitizer", r.stderr, r)
        return r

    def sweep(self, *args, expect=0, **env):
        return self.worker("sweep", *args, env=self.env(**env), expect=expect)

    # ---- seeding

    def q(self, sql, *params):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            if cur.description is None:
                return None
            return cur.fetchall()

    def seed(self, *, email=None, name="Member", user=True, member=True, intents=1,
             intent_status="pending", intent_expires="now() + interval '1 day'",
             opted_out=None, stage="payment", status="waiting",
             next_action="now() - interval '5 minutes'", locked_until=None,
             total="129.00", currency="EUR", metadata="{}"):
        """One smplat-shaped orchestration and what it hangs on. Returns its ids."""
        ids = {"order_id": str(uuid.uuid4()), "orch_id": str(uuid.uuid4()), "user_id": None}
        if email is None:
            email = f"member-{ids['order_id'][:8]}@example.test"
        if user:
            ids["user_id"] = str(uuid.uuid4())
            self.q("INSERT INTO users (id, email, display_name) VALUES (%s, %s, %s)",
                   ids["user_id"], email, name)
            if opted_out is not None:
                self.q("INSERT INTO notification_preferences (id, user_id, order_updates)"
                       " VALUES (gen_random_uuid(), %s, %s)", ids["user_id"], not opted_out)
            if member:
                mid = str(uuid.uuid4())
                self.q("INSERT INTO loyalty_members (id, user_id) VALUES (%s, %s)",
                       mid, ids["user_id"])
                for i in range(intents):
                    self.q("INSERT INTO loyalty_checkout_intents"
                           " (id, member_id, external_id, kind, status, expires_at)"
                           f" VALUES (gen_random_uuid(), %s, %s, 'redemption', %s,"
                           f"         {intent_expires})",
                           mid, f"intent-{i}", intent_status)
        order_number = "SM-" + ids["order_id"][:8].upper()
        ids["order_number"] = order_number
        self.q("INSERT INTO orders (id, order_number, user_id, total, currency)"
               " VALUES (%s, %s, %s, %s, %s)",
               ids["order_id"], order_number, ids["user_id"], total, currency)
        locked = locked_until if locked_until is not None else "NULL"
        self.q("INSERT INTO checkout_orchestrations (id, order_id, user_id, current_stage,"
               " stage_status, metadata, next_action_at, locked_until)"
               f" VALUES (%s, %s, %s, %s, %s, %s, {next_action}, {locked})",
               ids["orch_id"], ids["order_id"], ids["user_id"], stage, status, metadata)
        return ids

    def seed_many(self, n, *, opted_out_every=0, delay_ms=0):
        """n due, eligible orchestrations in a few set-based statements."""
        self.q("""
            WITH s AS (SELECT g, gen_random_uuid() AS uid, gen_random_uuid() AS mid,
                              gen_random_uuid() AS oid, gen_random_uuid() AS cid
                         FROM generate_series(1, %s) g),
                 u AS (INSERT INTO users (id, email, display_name)
                       SELECT uid, 'bulk' || g || '@example.test', 'Bulk ' || g FROM s),
                 p AS (INSERT INTO notification_preferences (id, user_id, order_updates)
                       SELECT gen_random_uuid(), uid, NOT (%s > 0 AND g %% %s = 0) FROM s),
                 m AS (INSERT INTO loyalty_members (id, user_id) SELECT mid, uid FROM s),
                 i AS (INSERT INTO loyalty_checkout_intents (id, member_id, external_id, kind)
                       SELECT gen_random_uuid(), mid, 'x' || g, 'redemption' FROM s),
                 o AS (INSERT INTO orders (id, order_number, user_id, total)
                       SELECT oid, 'BULK-' || g, uid, 10 + g FROM s)
            INSERT INTO checkout_orchestrations (id, order_id, user_id, current_stage,
                                                 stage_status, metadata, next_action_at)
            SELECT cid, oid, uid, 'payment', 'waiting', '{}',
                   now() - interval '1 hour' + g * interval '1 millisecond' FROM s
        """, n, opted_out_every, max(opted_out_every, 1))

    # ---- reading back

    def orch(self, orch_id):
        rows = self.q("SELECT stage_status::text, next_action_at, locked_until, metadata::text,"
                      " next_action_at > now() FROM checkout_orchestrations WHERE id = %s",
                      orch_id)
        s, nxt, locked, meta, future = rows[0]
        return {"status": s, "next_action_at": nxt, "locked_until": locked,
                "metadata": json.loads(meta) if meta else None, "future": future}

    def events(self, orch_id):
        rows = self.q("SELECT stage::text, status::text, transition_note, payload::text"
                      " FROM checkout_orchestration_events WHERE orchestration_id = %s"
                      " ORDER BY created_at, id", orch_id)
        return [{"stage": a, "status": b, "note": c, "payload": json.loads(d) if d else None}
                for a, b, c, d in rows]

    def ledger(self, orch_id):
        rows = self.q("SELECT status, attempts, message_id, smtp_code, smtp_enhanced"
                      " FROM recovery_deliveries WHERE orchestration_id = %s ORDER BY due_at",
                      orch_id)
        return [{"status": a, "attempts": b, "message_id": c, "code": d, "enhanced": e}
                for a, b, c, d, e in rows]

    def mails(self):
        return self.smtp.messages() if self.smtp else []

    def connections(self):
        return self.smtp.stats()["connections"]


def run_worker(args, env, cwd=None, timeout=300):
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("SMTP_", "DATABASE_", "RW_", "RECOVERY_WORKER_"))}
    full.update(sanitizer_env())
    full.update(env)
    proc = subprocess.run([RW_BIN] + args, env=full, cwd=cwd or tempfile.gettempdir(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    return Result(proc)
