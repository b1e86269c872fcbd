"""`migrate` on a fresh database, twice, concurrently, and on a database that already holds
the storefront's own tables (smplat revision 20251201_31: json columns, its enum types)."""
import json
import os
import threading
import unittest
import uuid

from harness import WorkerTestCase, SOURCE_DIR, cluster, run_worker

FIXTURE = os.path.join(SOURCE_DIR, "tests", "integration", "data", "smplat_20251201_31.sql")


class Migrate(WorkerTestCase):
    smtp_mode = "normal"

    def fresh_db(self):
        name = "m_" + uuid.uuid4().hex[:12]
        self.pg.create_db(name)
        return name

    def schema_snapshot(self, db):
        conn = self.pg.connect(db)
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'public' ORDER BY 1, 2")
            cols = cur.fetchall()
            cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
            idx = cur.fetchall()
            cur.execute("SELECT version FROM recovery_worker_migrations ORDER BY 1")
            versions = cur.fetchall()
        conn.close()
        return cols, idx, versions

    def test_migrate_twice_changes_nothing(self):
        db = self.fresh_db()
        env = {"DATABASE_URL": self.pg.url(db)}
        first = run_worker(["migrate"], env)
        self.assertEqual(first.code, 0, first)
        self.assertGreater(first.summary["applied"], 0)
        snap = self.schema_snapshot(db)
        second = run_worker(["migrate"], env)
        self.assertEqual(second.code, 0, second)
        self.assertEqual(second.summary["applied"], 0)
        self.assertEqual(self.schema_snapshot(db), snap)

    def test_migrate_twice_writes_only_json_lines_on_stderr(self):
        # A second migrate makes PostgreSQL send notices ("relation ... already exists,
        # skipping"); they are log lines like any other, at debug.
        db = self.fresh_db()
        runs = [run_worker(["migrate"], {"DATABASE_URL": self.pg.url(db), "LOG_LEVEL": level})
                for level in ("info", "info", "debug")]
        for r in runs:
            self.assertEqual(r.code, 0, r)
            for line in r.stderr.splitlines():
                try:
                    self.assertIsInstance(json.loads(line), dict, line)
                except ValueError:
                    self.fail(f"not a JSON line on stderr: {line!r}")
            self.assertNotIn("NOTICE:  ", r.stderr)  # libpq's own format
        notices = [l for l in runs[2].logs if l.get("msg") == "database notice"]
        self.assertTrue(notices, runs[2])
        self.assertEqual(notices[0]["level"], "debug")
        self.assertIn("already exists, skipping", notices[0]["notice"])
        self.assertFalse([l for l in runs[1].logs if l.get("msg") == "database notice"])

    def test_concurrent_migrations_serialise_on_the_advisory_lock(self):
        db = self.fresh_db()
        env = {"DATABASE_URL": self.pg.url(db)}
        results = []
        threads = [threading.Thread(target=lambda: results.append(run_worker(["migrate"], env)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(r.code == 0 for r in results), results)
        # Each migration's transaction takes the lock first, so the runs may share the
        # work between them, but each migration is applied by exactly one.
        total = results[0].summary["total"]
        self.assertEqual(sum(r.summary["applied"] for r in results), total)
        self.assertEqual(len(self.schema_snapshot(db)[2]), total)

    def test_sweep_refuses_an_unmigrated_database_with_a_clear_error(self):
        db = self.fresh_db()
        r = self.worker("sweep", env=self.env(DATABASE_URL=self.pg.url(db)))
        self.assertEqual(r.code, 78, r)
        self.assertIn("migrate", r.stderr)

    def test_existing_storefront_database_is_migrated_and_swept(self):
        db = self.fresh_db()
        conn = self.pg.connect(db)
        with open(FIXTURE) as f:
            sql = f.read()
        with conn.cursor() as cur:
            cur.execute(sql)
            uid, mid, oid, cid = (str(uuid.uuid4()) for _ in range(4))
            cur.execute("INSERT INTO users (id, email, display_name) VALUES (%s, 'old@example.test', 'Old')", (uid,))
            cur.execute("INSERT INTO loyalty_members (id, user_id) VALUES (%s, %s)", (mid, uid))
            cur.execute("INSERT INTO loyalty_checkout_intents (id, member_id, external_id, kind)"
                        " VALUES (gen_random_uuid(), %s, 'e1', 'redemption')", (mid,))
            cur.execute("INSERT INTO orders (id, order_number, user_id, total) VALUES (%s, 'SM-OLD-1', %s, 42)", (oid, uid))
            cur.execute("INSERT INTO checkout_orchestrations (id, order_id, user_id, stage_status,"
                        " metadata, next_action_at) VALUES (%s, %s, %s, 'waiting',"
                        " '{\"lastRecoveryStage\": \"seed\"}', now() - interval '5 minutes')",
                        (cid, oid, uid))
        env = self.env(DATABASE_URL=self.pg.url(db))
        r = self.worker("migrate", env=env, expect=0)
        with conn.cursor() as cur:
            cur.execute("SELECT data_type FROM information_schema.columns"
                        " WHERE table_name = 'checkout_orchestrations' AND column_name = 'metadata'")
            self.assertEqual(cur.fetchone()[0], "json")  # the storefront's column is kept as is
        r = self.worker("sweep", env=env, expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)
        self.assertEqual(len(self.mails()), 1)
        with conn.cursor() as cur:
            cur.execute("SELECT metadata::text, next_action_at > now() FROM checkout_orchestrations")
            meta, future = cur.fetchone()
            cur.execute("SELECT transition_note, payload::text FROM checkout_orchestration_events")
            note, payload = cur.fetchone()
        conn.close()
        self.assertIn("lastRecoverySweepAt", meta)
        self.assertTrue(future)
        self.assertEqual(note, "Recovery sweep executed")
        self.assertIn('"outcome"', payload)


if __name__ == "__main__":
    unittest.main()
