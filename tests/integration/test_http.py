"""The HTTP endpoints against a real PostgreSQL, a real SMTP server and the real server
process: one-click unsubscribe (RFC 8058) with the token from a really swept message, the
page a GET shows (which changes nothing), tokens that must not work, /healthz when
PostgreSQL stops, /metrics through promtool, and 10^4 malformed requests."""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import WorkerTestCase, run_worker, wait_for
from pgcluster import PgCluster
from worker_http import (ONE_CLICK, SECRET, UNSUBSCRIBE_PATH, WorkerHttp, http_env,
                         make_token, query_token, unsubscribe_token_of)


class HttpTestCase(WorkerTestCase):

    def setUp(self):
        super().setUp()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        super().tearDown()

    def serve(self, command="serve", **extra):
        env = self.env(**http_env(**extra))
        srv = WorkerHttp(env, command=command, cwd=self.tmp)
        self.servers.append(srv)
        return srv

    def stop(self, srv):
        self.servers.remove(srv)
        code = srv.stop()
        err = srv.stderr()
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error:", err)
        return code

    def swept_member(self, **seed):
        """A member with one prompt really sent, and the message."""
        ids = self.seed(**seed)
        r = self.sweep(expect=0, **http_env())
        self.assertEqual(r.summary["nudges_sent"], 1, r)
        (m,) = self.mails()
        return ids, m.message

    def state(self):
        """Everything an unsubscribe may write."""
        prefs = self.q("SELECT user_id::text, order_updates, marketing_messages, payment_updates,"
                       " fulfillment_alerts, updated_at FROM notification_preferences"
                       " ORDER BY user_id")
        events = self.q("SELECT count(*) FROM checkout_orchestration_events")[0][0]
        orchs = self.q("SELECT id::text, stage_status::text, next_action_at, metadata::text"
                       " FROM checkout_orchestrations ORDER BY id")
        return prefs, events, orchs

    def pref(self, user_id):
        rows = self.q("SELECT order_updates, marketing_messages FROM notification_preferences"
                      " WHERE user_id = %s", user_id)
        return rows[0] if rows else None


class OneClick(HttpTestCase):

    def test_one_click_post_with_the_token_of_a_swept_message_opts_out_and_next_sweep_skips(self):
        ids, msg = self.swept_member()
        self.assertEqual(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click")
        token = unsubscribe_token_of(msg)
        self.assertIsNone(self.pref(ids["user_id"]))  # no row yet: defaults apply
        srv = self.serve()
        events_before = len(self.events(ids["orch_id"]))

        status, headers, body = srv.one_click(token)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.pref(ids["user_id"]), (False, False))
        ev = self.events(ids["orch_id"])
        self.assertEqual(len(ev), events_before + 1)
        self.assertEqual(ev[-1]["note"], "Member unsubscribed from recovery emails")
        self.assertEqual(ev[-1]["payload"]["preferences"], ["order_updates"])
        self.assertEqual(ev[-1]["payload"]["via"], "one_click")
        email = self.q("SELECT email FROM users WHERE id = %s", ids["user_id"])[0][0]
        self.assertNotIn(email, json.dumps(ev[-1]["payload"]))
        self.assertNotIn(email, srv.stderr())
        self.assertNotIn(token, srv.stderr())

        # A second POST (a retry, or the member clicking twice) is harmless.
        before = self.state()
        status, _, _ = srv.one_click(token)
        self.assertEqual(status, 200)
        self.assertEqual(self.state(), before)

        # The next sweep finds the member opted out.
        self.q("UPDATE checkout_orchestrations SET next_action_at = now() - interval '1 minute',"
               " locked_until = NULL WHERE id = %s", ids["orch_id"])
        r = self.sweep(expect=0, **http_env())
        self.assertEqual((r.summary["skipped_opt_out"], r.summary["nudges_sent"]), (1, 0), r)
        self.assertEqual(len(self.mails()), 1)
        self.assertEqual(self.stop(srv), 0)

    def test_existing_preferences_row_is_updated_and_others_kept(self):
        ids, msg = self.swept_member(opted_out=False)
        self.q("UPDATE notification_preferences SET payment_updates = false,"
               " marketing_messages = true WHERE user_id = %s", ids["user_id"])
        srv = self.serve()
        self.assertEqual(srv.one_click(unsubscribe_token_of(msg))[0], 200)
        row = self.q("SELECT order_updates, payment_updates, fulfillment_alerts,"
                     " marketing_messages FROM notification_preferences WHERE user_id = %s",
                     ids["user_id"])
        self.assertEqual(row, [(False, False, True, True)])
        self.assertEqual(self.q("SELECT count(*) FROM notification_preferences")[0][0], 1)

    def test_consent_both_turns_off_marketing_and_keeps_order_updates(self):
        ids = self.seed(opted_out=False)
        self.q("UPDATE notification_preferences SET marketing_messages = true WHERE user_id = %s",
               ids["user_id"])
        r = self.sweep(expect=0, **http_env(RW_EMAIL_CONSENT="both"))
        self.assertEqual(r.summary["nudges_sent"], 1, r)
        srv = self.serve(RW_EMAIL_CONSENT="both")
        self.assertEqual(srv.one_click(unsubscribe_token_of(self.mails()[0].message))[0], 200)
        self.assertEqual(self.pref(ids["user_id"]), (True, False))
        self.q("UPDATE checkout_orchestrations SET next_action_at = now() - interval '1 minute',"
               " locked_until = NULL WHERE id = %s", ids["orch_id"])
        r = self.sweep(expect=0, **http_env(RW_EMAIL_CONSENT="both"))
        self.assertEqual(r.summary["skipped_opt_out"], 1, r)

    def test_get_shows_a_page_with_a_button_and_changes_nothing(self):
        ids, msg = self.swept_member()
        token = unsubscribe_token_of(msg)
        srv = self.serve()
        before = self.state()
        for method in ("GET", "HEAD", "GET"):
            status, headers, body = srv.request(method, srv.unsubscribe_path(token),
                                                headers={"Accept": "text/html"})
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-type"].startswith("text/html"))
            self.assertEqual(headers["referrer-policy"], "no-referrer")
            self.assertIn("default-src 'none'", headers["content-security-policy"])
        self.assertIn('<form method="post" action="?token=' + token + '">', body)
        self.assertIn('name="List-Unsubscribe" value="One-Click"', body)
        self.assertIn('<button type="submit">Unsubscribe</button>', body)
        self.assertIn('name="viewport"', body)
        self.assertNotRegex(body, r"(src|href)=")  # nothing loaded from anywhere
        self.assertEqual(self.state(), before)

        # The form's POST (a browser: Accept text/html) gets a confirmation page.
        status, headers, body = srv.one_click(token, accept="text/html,application/xhtml+xml")
        self.assertEqual(status, 200)
        self.assertIn("<h1>You are unsubscribed</h1>", body)
        self.assertEqual(self.pref(ids["user_id"])[0], False)
        self.assertEqual(self.events(ids["orch_id"])[-1]["payload"]["via"],
                         "confirmation_page")

    def test_forged_expired_and_wrong_purpose_tokens_change_nothing(self):
        ids, msg = self.swept_member()
        good = unsubscribe_token_of(msg)
        text = msg.get_body(("plain",)).get_content()
        resume = re.search(r"https://shop\.test/checkout\?\S+", text).group(0)
        resume_token = query_token(resume)
        head, mac = good.rsplit(".", 1)
        cases = {
            "tampered signature": (head + "." + ("A" if mac[0] != "A" else "B") + mac[1:], 400),
            "other key": (make_token("unsubscribe", ids["order_id"], ids["orch_id"],
                                     secret="another-secret-of-32-characters-long!!"), 400),
            "unknown kid": (make_token("unsubscribe", ids["order_id"], ids["orch_id"],
                                       kid="k9"), 400),
            "expired": (make_token("unsubscribe", ids["order_id"], ids["orch_id"],
                                   iat=int(time.time()) - 7200, exp=int(time.time()) - 60), 410),
            "wrong purpose (resume link)": (resume_token, 400),
            "made-up": ("not-a-token", 400),
            "empty": ("", 400),
            "huge": ("v1.k1." + "A" * 5000 + "." + "B" * 43, 400),
        }
        srv = self.serve()
        before = self.state()
        for name, (token, want) in cases.items():
            with self.subTest(name):
                self.assertEqual(srv.one_click(token)[0], want)
                status, headers, body = srv.request("GET", srv.unsubscribe_path(token),
                                                    headers={"Accept": "text/html"})
                self.assertEqual(status, want)
                self.assertIn("<h1>", body)
        status, _, _ = srv.request("POST", UNSUBSCRIBE_PATH, body=ONE_CLICK,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400)
        # The right token with a body other than RFC 8058's changes nothing either.
        for body, ctype in (("List-Unsubscribe=Yes", "application/x-www-form-urlencoded"),
                            ("", "application/x-www-form-urlencoded"),
                            ("x=1", "application/x-www-form-urlencoded"),
                            ("List-Unsubscribe=One-Click", "application/json")):
            with self.subTest(body=body, ctype=ctype):
                status, _, _ = srv.request("POST", srv.unsubscribe_path(good), body=body,
                                           headers={"Content-Type": ctype})
                self.assertEqual(status, 400)
        self.assertEqual(self.state(), before)
        # and the real one still works afterwards, as multipart/form-data this time
        boundary = "xYzZY"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\""
                f"\r\n\r\nOne-Click\r\n--{boundary}--\r\n")
        status, _, _ = srv.request("POST", srv.unsubscribe_path(good), body=form,
                                   headers={"Content-Type":
                                            f"multipart/form-data; boundary={boundary}"})
        self.assertEqual(status, 200)
        self.assertEqual(self.pref(ids["user_id"])[0], False)

    def test_unknown_paths_and_methods_get_4xx(self):
        srv = self.serve()
        self.assertEqual(srv.request("GET", "/")[0], 404)
        self.assertEqual(srv.request("GET", "/account/unsubscribe/x")[0], 404)
        status, headers, _ = srv.request("DELETE", UNSUBSCRIBE_PATH + "?token=x")
        self.assertEqual((status, headers["allow"]), (405, "GET, HEAD, POST"))
        self.assertEqual(srv.request("POST", "/healthz", body="x")[0], 405)
        self.assertEqual(srv.request("PUT", "/metrics", body="x")[0], 405)
        status, _, _ = srv.request("POST", UNSUBSCRIBE_PATH + "?token=x", body="A" * 100000,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 413)
        self.assertEqual(srv.request("GET", "/healthz")[0], 200)


class Health(HttpTestCase):

    def test_healthz_turns_503_when_postgresql_stops_and_200_when_it_is_back(self):
        pg = PgCluster().init().start()
        try:
            srv = self.serve(DATABASE_URL=pg.url(), RW_HTTP_DATABASE_TIMEOUT="2s")
            self.assertEqual(srv.request("GET", "/healthz")[:1], (200,))
            pg.stop()
            started = time.monotonic()
            status, _, body = srv.request("GET", "/healthz")
            self.assertEqual(status, 503, body)
            self.assertLess(time.monotonic() - started, 5)
            pg.restart()
            self.assertTrue(wait_for(lambda: srv.request("GET", "/healthz")[0] == 200, 20))
            self.assertEqual(self.stop(srv), 0)
        finally:
            pg.destroy()

    def test_healthz_is_bounded_when_the_database_never_answers(self):
        # A listener that accepts and says nothing: the check gives up within its timeout.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        try:
            port = silent.getsockname()[1]
            srv = self.serve(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x",
                             RW_HTTP_DATABASE_TIMEOUT="2s")
            started = time.monotonic()
            status, _, _ = srv.request("GET", "/healthz", timeout=20)
            self.assertEqual(status, 503)
            self.assertLess(time.monotonic() - started, 6)
        finally:
            silent.close()


class Metrics(HttpTestCase):

    def promtool(self, text):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool not found: scripts/deps.sh installs the prometheus package")
        p = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + text)
        self.assertEqual(p.stdout.strip() + p.stderr.strip(), "", text)

    def test_run_exposes_the_last_sweep_and_promtool_accepts_it(self):
        self.seed()
        old = self.seed()
        self.q("UPDATE checkout_orchestrations SET created_at = now() - interval '40 days'"
               " WHERE id = %s", old["orch_id"])
        srv = self.serve(command="run", RW_SCHEDULE_INTERVAL="1h", RW_SCHEDULE_JITTER="0s")
        self.assertTrue(wait_for(lambda: any(l.get("msg") == "sweep completed"
                                             for l in srv.lines()), 60), srv.stderr())
        status, headers, text = srv.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn('recovery_worker_last_sweep_orchestrations{outcome="sent"} 1\n', text)
        self.assertIn('recovery_worker_last_sweep_orchestrations{outcome="gave_up"} 1\n', text)
        self.assertIn("recovery_worker_last_sweep_success 1\n", text)
        self.assertIn("recovery_worker_last_success_timestamp_seconds ", text)
        self.assertIn("recovery_worker_due_orchestrations 0\n", text)
        self.assertIn("recovery_worker_database_up 1\n", text)
        self.promtool(text)
        self.assertEqual(srv.request("GET", "/healthz")[0], 200)
        self.assertEqual(self.stop(srv), 0)

    def test_serve_alone_exposes_health_and_backlog_and_counts_unsubscribes(self):
        self.seed()
        self.seed(next_action="now() - interval '2 hours'")
        srv = self.serve()
        srv.one_click("forged")
        status, _, text = srv.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("recovery_worker_due_orchestrations 2\n", text)
        self.assertRegex(text, r"recovery_worker_oldest_due_age_seconds 7[0-9]{3}(\.[0-9]+)?\n")
        self.assertIn('recovery_worker_unsubscribe_requests_total{result="invalid"} 1\n', text)
        self.assertNotIn("last_sweep", text)
        self.promtool(text)


class Startup(HttpTestCase):

    def test_bad_listen_address_is_a_configuration_error_naming_the_variable(self):
        r = self.worker("serve", env=self.env(**http_env(HTTP_LISTEN="localhost")), expect=78)
        self.assertIn("environment: HTTP_LISTEN:", r.stderr)
        self.assertIn("expected host:port", r.stderr)

    def test_port_in_use_is_exit_69(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            port = busy.getsockname()[1]
            r = self.worker("serve", env=self.env(**http_env(HTTP_LISTEN=f"127.0.0.1:{port}")),
                            expect=69)
            self.assertIn("cannot listen", r.stderr)
        finally:
            busy.close()


class Bounded(HttpTestCase):

    def test_metrics_answer_in_bounded_time_while_a_statement_cannot_run(self):
        self.seed()
        srv = self.serve(RW_HTTP_DATABASE_TIMEOUT="2s")
        locker = self.pg.connect(self.dbname)
        locker.autocommit = False
        try:
            with locker.cursor() as cur:
                cur.execute("LOCK TABLE checkout_orchestrations IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            status, _, text = srv.request("GET", "/metrics", timeout=20)
            elapsed = time.monotonic() - started
        finally:
            locker.rollback()
            locker.close()
        self.assertEqual(status, 200)
        self.assertLess(elapsed, 4)
        self.assertIn("recovery_worker_database_up 1\n", text)
        self.assertNotIn("recovery_worker_due_orchestrations", text)  # that query timed out
        status, _, text = srv.request("GET", "/metrics")
        self.assertIn("recovery_worker_due_orchestrations 1\n", text)


class Malformed(HttpTestCase):
    N = 10000

    def raw(self, port, data, timeout=2.0):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            s.sendall(data)
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        finally:
            s.close()

    def test_ten_thousand_malformed_requests_leave_the_server_up_and_the_database_unchanged(self):
        ids, msg = self.swept_member()
        good = unsubscribe_token_of(msg)
        srv = self.serve()
        before = self.state()
        rnd = random.Random(14)
        methods = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"PATCH",
                   b"CONNECT", b"G\x00T", b"", b"POST POST", b"get"]
        paths = [b"/", b"/healthz", b"/metrics", UNSUBSCRIBE_PATH.encode(),
                 UNSUBSCRIBE_PATH.encode() + b"/../../etc/passwd", b"*", b"//", b"/%00",
                 b"/%ZZ", b"/\xff\xfe", b"http://evil.test/x", b"/a?b=%", b"?", b""]

        def token():
            k = rnd.randrange(7)
            if k == 0:
                return good[:rnd.randrange(len(good))]  # truncated
            if k == 1:
                i = rnd.randrange(len(good))
                c = rnd.choice([x for x in "AZaz09-_.%" if x != good[i]])
                return good[:i] + c + good[i + 1:]  # one character changed
            if k == 2:
                return "A" * rnd.choice([1000, 5000, 20000, 70000])  # huge
            if k == 3:
                return "".join(chr(rnd.randrange(1, 256)) for _ in range(rnd.randrange(40)))
            if k == 4:
                return "v1." * rnd.randrange(1, 50)
            if k == 5:
                return make_token("resume", ids["order_id"], ids["orch_id"])
            return make_token("unsubscribe", ids["order_id"], ids["orch_id"],
                              secret="forged-secret-forged-secret-forged!!")

        def request(i):
            kind = i % 10
            if kind == 0:  # random bytes
                return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
            method = rnd.choice(methods)
            tok = token().encode("latin-1", "replace")
            path = rnd.choice(paths)
            if rnd.random() < 0.6:
                path = UNSUBSCRIBE_PATH.encode() + b"?token=" + tok
                if rnd.random() < 0.2:
                    path += b"&token=" + tok + b"&x=" + b"%" * rnd.randrange(5)
            version = rnd.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"", b"HTTP"])
            headers = [b"Host: x"]
            if kind == 1:  # a huge header
                headers.append(b"X-Big: " + b"a" * rnd.choice([1000, 20000, 100000]))
            if kind == 2:  # many headers
                headers += [b"X-%d: %d" % (j, j) for j in range(rnd.randrange(50, 2000))]
            if kind == 3:  # broken header lines
                headers.append(rnd.choice([b"NoColon", b": empty name", b"X: a\rb", b" folded",
                                           b"\x00\x01: \x02", b"Content-Length: -1",
                                           b"Content-Length: 99999999999999999999",
                                           b"Transfer-Encoding: chunked, identity"]))
            body = b""
            if method.startswith(b"POST") or rnd.random() < 0.2:
                body = rnd.choice([
                    ONE_CLICK.encode(), b"List-Unsubscribe=One-Click" * 300, b"",
                    b"List-Unsubscribe=%ZZ", b"--b\r\nContent-Disposition: form-data\r\n",
                    bytes(rnd.randrange(256) for _ in range(rnd.randrange(200))),
                    b"x" * rnd.choice([5000, 200000])])
                ctype = rnd.choice([b"application/x-www-form-urlencoded",
                                    b"multipart/form-data; boundary=b",
                                    b"multipart/form-data", b"text/plain", b"", b"\xff"])
                headers.append(b"Content-Type: " + ctype)
                if kind == 4:
                    headers.append(b"Transfer-Encoding: chunked")
                    body = rnd.choice([b"5\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b"FFFFFFFFFFFFFFFF\r\n",
                                       b"1a\r\n" + ONE_CLICK.encode() + b"\r\n0\r\n\r\n"])
                elif kind != 3 and rnd.random() < 0.8:
                    n = len(body) + rnd.choice([0, 0, 0, -3, 10, 10**6])
                    headers.append(b"Content-Length: %d" % max(n, 0))
            return (method + b" " + path + b" " + version + b"\r\n" + b"\r\n".join(headers) +
                    b"\r\n\r\n" + body)

        started = time.monotonic()
        statuses = {}
        for i in range(self.N):
            data = request(i)
            reply = self.raw(srv.port, data)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
            code = int(m.group(1)) if m else 0
            statuses[code] = statuses.get(code, 0) + 1
            if code == 505:
                # the one 5xx, RFC 9110's answer to another major version, from the library
                self.assertNotRegex(data.split(b"\r\n", 1)[0], rb" HTTP/1\.[01]$")
            else:
                self.assertLess(code, 500, data[:300])
            if i % 1000 == 999:
                self.assertTrue(srv.alive(), srv.stderr()[-3000:])
            self.assertLess(time.monotonic() - started, 500, "bounded in time")
        self.assertTrue(srv.alive())
        # every answer that was not a plain GET of /healthz or /metrics was a 4xx
        self.assertEqual(srv.request("GET", "/healthz")[0], 200)
        self.assertEqual(self.state(), before)
        self.assertEqual(srv.one_click(good)[0], 200)  # and it still does its job
        self.assertEqual(self.stop(srv), 0)
        print(f"\n{self.N} malformed requests in {time.monotonic() - started:.1f}s: "
              f"{dict(sorted(statuses.items()))}")


if __name__ == "__main__":
    unittest.main()
