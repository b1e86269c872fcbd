"""Connecting to PostgreSQL: a mistake only the database can see (a missing or wrong CA
with sslmode=verify-full, a wrong or missing password, no pg_hba.conf entry, no such
database) is exit 78 at once, with a message naming it and without the password; a server
that cannot be reached is exit 69 after the retries. Against a real PostgreSQL with TLS on
and SCRAM passwords in pg_hba.conf."""
import os
import shutil
import tempfile
import time
import unittest

from harness import RW_BIN, run_worker
from pgcluster import PgCluster, free_port
from pki import have_openssl, make_ca

PASSWORD = "right-horse-battery-7"
WRONG = "wrong-staple-battery-9"


@unittest.skipUnless(have_openssl(), "openssl CLI not found")
class DatabaseConfigurationErrors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not RW_BIN or not os.access(RW_BIN, os.X_OK):
            raise unittest.SkipTest("RW_BIN does not name the recovery-worker binary")
        cls.pki_dir = tempfile.mkdtemp(prefix="rw-pg-pki-")
        cls.pki = make_ca(cls.pki_dir)
        cls.pg = PgCluster().init(ssl_pki=cls.pki, hba=[
            "local all all trust",
            "host all postgres 127.0.0.1/32 trust",
            "host all rw_scram 127.0.0.1/32 scram-sha-256",
        ]).start()
        conn = cls.pg.connect()
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE rw_scram LOGIN PASSWORD '{PASSWORD}'")
            cur.execute("CREATE DATABASE rw_scram OWNER rw_scram")
            cur.execute("CREATE DATABASE rw_tls")
        conn.close()

    @classmethod
    def tearDownClass(cls):
        cls.pg.destroy()
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def setUp(self):
        # An empty home: libpq looks for ~/.postgresql/root.crt there, as it does in the
        # container image (HOME=/nonexistent).
        self.home = tempfile.mkdtemp(prefix="rw-home-")
        self.addCleanup(shutil.rmtree, self.home, True)

    def migrate(self, url, **env):
        # The server's certificate is for "localhost"; hostaddr keeps libpq off the resolver.
        env = {"DATABASE_URL": url, "HOME": self.home, "RW_DATABASE_CONNECT_RETRIES": "3",
               **env}
        start = time.monotonic()
        r = run_worker(["migrate"], env, cwd=self.home, timeout=120)
        r.elapsed = time.monotonic() - start
        self.assertNotIn("AddressSanitizer", r.stderr, r)
        self.assertNotIn("runtime error:", r.stderr, r)
        return r

    def tls_url(self, query):
        return (f"postgresql://postgres@localhost:{self.pg.port}/rw_tls"
                f"?hostaddr=127.0.0.1&{query}")

    def scram_url(self, password=None, user="rw_scram", dbname="rw_scram"):
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.pg.port}/{dbname}"

    def assert_config_error_at_once(self, r, *phrases):
        self.assertEqual(r.code, 78, r)
        for phrase in phrases:
            self.assertIn(phrase, r.stderr, r)
        errors = [l for l in r.logs if l.get("level") == "error"]
        self.assertEqual(len(errors), 1, r)
        self.assertEqual(errors[0].get("kind"), "config", r)
        self.assertIn("not retried", errors[0]["error"])
        self.assertFalse([l for l in r.logs if "retrying" in l.get("msg", "")],
                         f"a configuration error was retried: {r}")
        # every stderr line is a JSON log line
        self.assertEqual(len(r.logs), len(r.stderr.splitlines()), r)

    def test_verify_full_without_a_root_certificate_exits_78_naming_it(self):
        r = self.migrate(self.tls_url("sslmode=verify-full"))
        root = os.path.join(self.home, ".postgresql", "root.crt")
        self.assert_config_error_at_once(r, f'root certificate file \\"{root}\\" does not exist')

    def test_verify_full_with_the_ca_connects(self):
        r = self.migrate(self.tls_url(f"sslmode=verify-full&sslrootcert={self.pki['ca.pem']}"))
        self.assertEqual(r.code, 0, r)

    def test_verify_full_against_another_ca_exits_78(self):
        r = self.migrate(self.tls_url(f"sslmode=verify-full&sslrootcert={self.pki['other.pem']}"))
        self.assert_config_error_at_once(r, "certificate verify failed")

    def test_a_missing_client_key_exits_78(self):
        r = self.migrate(self.tls_url(f"sslmode=require&sslcert={self.pki['server.pem']}"
                                      f"&sslkey={os.path.join(self.home, 'client.key')}"))
        self.assert_config_error_at_once(r, "private key file")

    def test_a_wrong_password_exits_78_without_showing_it(self):
        r = self.migrate(self.scram_url(WRONG))
        self.assert_config_error_at_once(r, 'password authentication failed for user \\"rw_scram\\"')
        self.assertNotIn(WRONG, r.stderr + r.stdout)
        self.assertNotIn(PASSWORD, r.stderr + r.stdout)

    def test_the_right_password_connects(self):
        r = self.migrate(self.scram_url(PASSWORD))
        self.assertEqual(r.code, 0, r)
        self.assertNotIn(PASSWORD, r.stderr + r.stdout)

    def test_no_password_where_one_is_asked_exits_78(self):
        r = self.migrate(self.scram_url(None), PGPASSFILE=os.path.join(self.home, "none"))
        self.assert_config_error_at_once(r, "no password supplied")

    def test_no_pg_hba_entry_exits_78(self):
        r = self.migrate(self.scram_url(PASSWORD, user="stranger"))
        self.assert_config_error_at_once(r, "no pg_hba.conf entry")

    def test_a_database_that_does_not_exist_exits_78(self):
        r = self.migrate(self.scram_url(PASSWORD, dbname="no_such_db"))
        self.assert_config_error_at_once(r, 'database \\"no_such_db\\" does not exist')

    def test_an_unreachable_server_is_retried_then_exits_69(self):
        port = free_port()  # nothing listens there
        r = self.migrate(f"postgresql://postgres@127.0.0.1:{port}/rw_tls",
                         RW_DATABASE_CONNECT_RETRIES="1")
        self.assertEqual(r.code, 69, r)
        self.assertEqual(len([l for l in r.logs if "retrying" in l.get("msg", "")]), 1, r)
        self.assertIn("after 2 attempts", r.stderr)


if __name__ == "__main__":
    unittest.main()
