"""Hostile data in the storefront's database: sent safely or skipped with an event, never a
crash, never an injected header or recipient (SPEC §4)."""
import unittest

from harness import WorkerTestCase


class HostileData(WorkerTestCase):

    def header_lines(self, raw):
        head = raw.split(b"\r\n\r\n", 1)[0]
        return head.split(b"\r\n")

    def test_crlf_and_bcc_in_a_display_name_never_reach_a_header(self):
        ids = self.seed(name="Eve\r\nBcc: victim@evil.example\r\nX-Injected: 1")
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["nudges_sent"], 1)
        m = self.mails()[0]
        self.assertEqual(len(m.envelope["rcpt_tos"]), 1)
        for line in self.header_lines(m.raw):
            self.assertFalse(line.lower().startswith((b"bcc:", b"x-injected:")), line)
        self.assertNotIn("victim@evil.example", " ".join(m.envelope["rcpt_tos"]))
        tx = "\n".join(self.smtp.transcript())
        self.assertEqual(tx.count("RCPT TO"), 1)

    def test_markup_in_a_name_is_escaped_in_html_and_plain_in_text(self):
        self.seed(name='<script>alert("x")</script> & Co')
        self.sweep(expect=0)
        msg = self.mails()[0].message
        html = msg.get_body(preferencelist=("html",)).get_content()
        text = msg.get_body(preferencelist=("plain",)).get_content()
        self.assertNotIn("<script>", html)
        self.assertIn("&lt;script&gt;", html)
        self.assertIn("<script>", text)

    def test_emoji_and_a_100_kb_name_are_sent_encoded_and_bounded(self):
        self.seed(name="Zoë 🛒 Ünïcödé")
        self.seed(name="A" * 100_000)
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["nudges_sent"], 2)
        for m in self.mails():
            for line in m.raw.split(b"\r\n"):
                self.assertLessEqual(len(line), 998)
            self.assertLess(len(m.raw), 64 * 1024)
        names = {str(m.message["To"]) for m in self.mails()}
        self.assertTrue(any("Zoë 🛒" in n for n in names), names)

    def test_invalid_or_injecting_addresses_are_skipped_with_an_event(self):
        bad = [
            self.seed(email="victim@example.test>\r\nRCPT TO:<other@evil.example"),
            self.seed(email="no-at-sign.example.test"),
            self.seed(email="two@@example.test"),
            self.seed(email="spaces in@example.test"),
        ]
        good = self.seed()
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["invalid_address"], len(bad))
        self.assertEqual(r.summary["nudges_sent"], 1)
        self.assertEqual(len(self.mails()), 1)
        tx = "\n".join(self.smtp.transcript())
        self.assertNotIn("evil.example", tx)
        for ids in bad:
            ev = self.events(ids["orch_id"])
            self.assertEqual(ev[0]["payload"]["outcome"], "invalid_address")
            self.assertNotIn("evil", str(ev[0]["payload"]))
        self.assertEqual(self.events(good["orch_id"])[0]["payload"]["outcome"], "sent")

    def test_an_address_literal_is_decided_invalid_before_any_prompt_is_built(self):
        # RFC 5321 allows member@[192.0.2.1]; a recovery prompt is not sent to one (the
        # message builder refuses it in To), and the decision says so up front.
        lit = self.seed(email="member@[192.0.2.1]")
        good = self.seed()
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["invalid_address"], 1)
        self.assertEqual(r.summary["nudges_sent"], 1)
        self.assertNotIn("cannot be built", r.stderr)
        self.assertEqual(self.events(lit["orch_id"])[0]["payload"]["outcome"], "invalid_address")
        self.assertEqual(self.events(good["orch_id"])[0]["payload"]["outcome"], "sent")

    def test_hostile_order_number_and_currency_stay_out_of_headers(self):
        ids = self.seed()
        self.q("UPDATE orders SET order_number = %s WHERE id = %s",
               "SM-1\r\nBcc: x@evil.example", ids["order_id"])
        r = self.sweep(expect=0)
        self.assertEqual(r.summary["nudges_sent"] + r.summary["invalid_address"], 1)
        for m in self.mails():
            for line in self.header_lines(m.raw):
                self.assertFalse(line.lower().startswith(b"bcc:"), line)


if __name__ == "__main__":
    unittest.main()
