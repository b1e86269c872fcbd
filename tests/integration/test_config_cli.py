"""The configuration as an operator meets it: check-config, errors with file:line:column,
secrets masked, templates checked at start-up."""
import os
import unittest

from harness import RW_BIN, run_worker


class ConfigCli(unittest.TestCase):

    def setUp(self):
        if not RW_BIN:
            self.skipTest("RW_BIN not set")
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="rw-cfg-")

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_every_mistake_is_reported_at_once_with_file_line_column_and_key(self):
        path = self.write("worker.yaml", "smtp:\n  port: abc\n  hots: x\nsweep:\n  batch_size: 0\n")
        r = run_worker(["--config", path, "check-config"], {})
        self.assertEqual(r.code, 78, r)
        self.assertIn(f"{path}:2:9: smtp.port:", r.stderr)
        self.assertIn(f"{path}:3:3: smtp.hots: unknown key", r.stderr)
        self.assertIn(f"{path}:5:15: sweep.batch_size:", r.stderr)

    def test_explicit_config_that_cannot_be_read_exits_78(self):
        r = run_worker(["--config", os.path.join(self.dir, "missing.yaml"), "check-config"], {})
        self.assertEqual(r.code, 78, r)
        self.assertIn("cannot read", r.stderr)

    def test_no_config_file_means_defaults_and_environment(self):
        r = run_worker(["check-config"], {"SMTP_PORT": "2525"}, cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        self.assertIn("port: 2525", r.stdout)

    def test_secrets_are_masked(self):
        r = run_worker(["check-config"], {
            "SMTP_USERNAME": "relay", "SMTP_PASSWORD": "hunter2-secret",
            "DATABASE_URL": "postgresql://app:db-secret@db.example/shop",
            "RESUME_LINK_SECRET": "k1:" + "s" * 40}, cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        for secret in ("hunter2-secret", "db-secret", "s" * 40):
            self.assertNotIn(secret, r.stdout + r.stderr)

    def test_a_template_with_an_unknown_placeholder_fails_at_start_up(self):
        tpl = os.path.join(self.dir, "tpl")
        os.mkdir(tpl)
        self.write("tpl/payment.subject", "Hello {{nmae}}\n")
        r = run_worker(["check-config"], {"RW_EMAIL_TEMPLATES_DIR": tpl}, cwd=self.dir)
        self.assertEqual(r.code, 78, r)
        self.assertIn("payment.subject:1", r.stderr)
        self.assertIn("nmae", r.stderr)

    def test_an_unknown_time_zone_is_refused_at_start_up_by_every_command(self):
        path = self.write("worker.yaml", "sweep:\n  quiet_hours: \"21:00-08:00\"\n"
                                         "  quiet_hours_zone: Mars/Olympus\n")
        # sweep and migrate point at a port nothing listens on: the zone is refused before
        # any connection is tried.
        env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
        for command in (["check-config"], ["sweep"], ["migrate"], ["sweep", "--dry-run"]):
            r = run_worker(["--config", path] + command, env)
            self.assertEqual(r.code, 78, (command, r))
            self.assertIn(f"{path}:3:3: sweep.quiet_hours_zone: unknown time zone "
                          f"\"Mars/Olympus\"", r.stderr)
            self.assertNotIn("connect", r.stderr)
        r = run_worker(["check-config"], {"RW_SWEEP_QUIET_HOURS_ZONE": "../../etc/passwd"},
                       cwd=self.dir)
        self.assertEqual(r.code, 78, r)
        self.assertIn("RW_SWEEP_QUIET_HOURS_ZONE", r.stderr)
        r = run_worker(["check-config"], {"RW_SWEEP_QUIET_HOURS_ZONE": "Europe/Berlin"},
                       cwd=self.dir)
        self.assertEqual(r.code, 0, r)
        self.assertIn('quiet_hours_zone: "Europe/Berlin"', r.stdout)

    def test_bad_usage_exits_64(self):
        self.assertEqual(run_worker(["frobnicate"], {}).code, 64)
        self.assertEqual(run_worker(["sweep", "--limit", "x"], {}).code, 64)
        self.assertEqual(run_worker(["status", "not-a-uuid"], {}).code, 64)
        self.assertEqual(run_worker(["--version"], {}).code, 0)


if __name__ == "__main__":
    unittest.main()
