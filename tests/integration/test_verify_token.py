"""`verify-token`: tokens made in Python from the format documented in common/token.h (as a
storefront would make and check them) are verified by the binary; tampered, expired,
unknown-key and wrong-purpose tokens are refused with the documented reason and exit 1.
No database or SMTP server is needed."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import RW_BIN, sanitizer_env

NEW_SECRET = "new-key-2026-" + "0123456789abcdef" * 3
OLD_SECRET = "old-key-2025-" + "fedcba9876543210" * 3


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token(kid, secret, *, purpose="resume", order=None, orch=None, stage="payment",
               iat=None, exp=None):
    """A v1 token: v1.<kid>.<base64url(JSON)>.<base64url(HMAC-SHA256(secret, v1.<kid>.<payload>))>."""
    now = int(time.time())
    claims = {
        "purpose": purpose,
        "order": order or str(uuid.uuid4()),
        "orch": orch or str(uuid.uuid4()),
        "stage": stage,
        "iat": now if iat is None else iat,
        "exp": now + 3600 if exp is None else exp,
    }
    signed = f"v1.{kid}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    mac = hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()
    return f"{signed}.{b64url(mac)}", claims


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class VerifyToken(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()  # no ./worker.yaml there
        self.addCleanup(self.tmp.cleanup)

    def run_verify(self, *args, secret=NEW_SECRET):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **sanitizer_env()}
        if secret is not None:
            env["RESUME_LINK_SECRET"] = secret
        proc = subprocess.run([RW_BIN, "verify-token", *args], env=env, cwd=self.tmp.name,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        self.assertNotIn("Sanitizer", proc.stderr)
        self.assertNotIn(NEW_SECRET, proc.stdout + proc.stderr)
        self.assertNotIn(OLD_SECRET, proc.stdout + proc.stderr)
        return proc

    def assertRefused(self, proc, reason):
        self.assertEqual(proc.returncode, 1, proc)
        out = json.loads(proc.stdout)
        self.assertIs(out["valid"], False)
        self.assertEqual(out["reason"], reason)
        return out

    def test_token_signed_in_python_is_valid(self):
        token, claims = make_token("k1", NEW_SECRET, purpose="unsubscribe", stage="loyalty_hold")
        proc = self.run_verify(token)
        self.assertEqual(proc.returncode, 0, proc)
        self.assertEqual(json.loads(proc.stdout), {
            "valid": True,
            "purpose": "unsubscribe",
            "orderId": claims["order"],
            "orchestrationId": claims["orch"],
            "stage": "loyalty_hold",
            "expiresAt": iso(claims["exp"]),
            "issuedAt": iso(claims["iat"]),
            "keyId": "k1",
        })

    def test_purpose_is_checked_when_asked(self):
        token, _ = make_token("k1", NEW_SECRET, purpose="resume")
        self.assertEqual(self.run_verify(token, "--purpose", "resume").returncode, 0)
        self.assertEqual(self.run_verify("--purpose", "resume", token).returncode, 0)
        out = self.assertRefused(self.run_verify(token, "--purpose", "unsubscribe"),
                                 "wrong_purpose")
        self.assertEqual(out["purpose"], "resume")

    def test_tampered_payload_is_bad_signature(self):
        token, claims = make_token("k1", NEW_SECRET)
        forged, _ = make_token("k1", "attacker-" + "x" * 40, order=claims["order"],
                               exp=claims["exp"] + 86400 * 365)
        # the attacker's longer-lived payload under the real signature
        spliced = forged.rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
        self.assertRefused(self.run_verify(spliced), "bad_signature")
        self.assertRefused(self.run_verify(forged), "bad_signature")

    def test_tampered_signature_is_bad_signature(self):
        token, _ = make_token("k1", NEW_SECRET)
        head, mac = token.rsplit(".", 1)
        flipped = ("B" if mac[0] == "A" else "A") + mac[1:]
        self.assertRefused(self.run_verify(f"{head}.{flipped}"), "bad_signature")

    def test_expired_token_is_refused(self):
        now = int(time.time())
        token, claims = make_token("k1", NEW_SECRET, iat=now - 7200, exp=now - 60)
        out = self.assertRefused(self.run_verify(token), "expired")
        self.assertEqual(out["expiresAt"], iso(claims["exp"]))

    def test_unknown_kid_is_refused(self):
        token, _ = make_token("k9", NEW_SECRET)
        self.assertRefused(self.run_verify(token), "unknown_key")

    def test_rotation_old_key_verifies_while_in_the_ring(self):
        old, _ = make_token("k1", OLD_SECRET)
        new, _ = make_token("k2", NEW_SECRET)
        ring = f"k2:{NEW_SECRET},k1:{OLD_SECRET}"
        self.assertEqual(self.run_verify(old, secret=ring).returncode, 0)
        out = json.loads(self.run_verify(new, secret=ring).stdout)
        self.assertEqual(out["keyId"], "k2")
        self.assertRefused(self.run_verify(old, secret=f"k2:{NEW_SECRET}"), "unknown_key")

    def test_malformed_tokens_are_refused(self):
        good, _ = make_token("k1", NEW_SECRET)
        for bad in ["garbage", "v1.k1.a.b", good + ".x", good.replace("v1.", "v2.", 1),
                    "v1.k1.!!!!." + good.rsplit(".", 1)[1], "v1.k1." + "A" * 5000]:
            with self.subTest(bad=bad[:40]):
                self.assertRefused(self.run_verify(bad), "malformed")

    def test_no_key_ring_is_exit_78(self):
        token, _ = make_token("k1", NEW_SECRET)
        proc = self.run_verify(token, secret=None)
        self.assertEqual(proc.returncode, 78, proc)
        self.assertIn("RESUME_LINK_SECRET", proc.stderr)
        self.assertEqual(proc.stdout, "")

    def test_bad_key_ring_is_exit_78_naming_the_key(self):
        token, _ = make_token("k1", NEW_SECRET)
        proc = self.run_verify(token, secret=f"k2:{NEW_SECRET},k1:too-short")
        self.assertEqual(proc.returncode, 78, proc)
        self.assertIn('key "k1": must be at least 32 characters', proc.stderr)
        self.assertNotIn("too-short", proc.stderr)

    def test_usage(self):
        self.assertEqual(self.run_verify().returncode, 64)
        self.assertEqual(self.run_verify("a", "b").returncode, 64)
        self.assertEqual(self.run_verify("x", "--purpose", "login").returncode, 64)
        proc = self.run_verify("--help", secret=None)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("exit status: 0 valid, 1 invalid", proc.stdout)


if __name__ == "__main__":
    unittest.main()
