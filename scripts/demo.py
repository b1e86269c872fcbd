"""One real sweep against a throwaway PostgreSQL and a local SMTP catcher: migrate, seed
orchestrations in different situations, sweep, then show the emails and the events."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid

from pgcluster import PgCluster
from smtp_server import SmtpServer

BIN = os.environ["RW_BIN"]


def run(args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "DATABASE_"))}
    full.update(env)
    return subprocess.run([BIN] + args, env=full, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())


def seed(cur, label, *, name, email, user=True, member=True, intents=1, opted_out=False,
         stage="payment", due=True):
    uid = str(uuid.uuid4()) if user else None
    if user:
        cur.execute("INSERT INTO users (id, email, display_name) VALUES (%s, %s, %s)",
                    (uid, email, name))
        cur.execute("INSERT INTO notification_preferences (id, user_id, order_updates)"
                    " VALUES (gen_random_uuid(), %s, %s)", (uid, not opted_out))
        if member:
            mid = str(uuid.uuid4())
            cur.execute("INSERT INTO loyalty_members (id, user_id) VALUES (%s, %s)", (mid, uid))
            for i in range(intents):
                cur.execute("INSERT INTO loyalty_checkout_intents (id, member_id, external_id,"
                            " kind, expires_at) VALUES (gen_random_uuid(), %s, %s,"
                            " 'redemption', now() + interval '2 days')", (mid, f"i{i}"))
    oid = str(uuid.uuid4())
    number = "SM-" + oid[:6].upper()
    cur.execute("INSERT INTO orders (id, order_number, user_id, total, currency)"
                " VALUES (%s, %s, %s, 149.90, 'EUR')", (oid, number, uid))
    cur.execute("INSERT INTO checkout_orchestrations (id, order_id, user_id, current_stage,"
                " stage_status, metadata, next_action_at) VALUES (gen_random_uuid(), %s, %s,"
                " %s, 'waiting', '{}', now() + %s::interval)",
                (oid, uid, stage, "-10 minutes" if due else "3 hours"))
    return label, oid, number


def main():
    pg = PgCluster().init().start()
    work = tempfile.mkdtemp(prefix="rw-demo-")
    smtp = SmtpServer.start(mode="normal", maildir=os.path.join(work, "mail"))
    try:
        pg.create_db("shop")
        env = {"DATABASE_URL": pg.url("shop"), "SMTP_HOST": "127.0.0.1",
               "SMTP_PORT": str(smtp.port), "SMTP_TLS": "none",
               "SMTP_SENDER_EMAIL": "checkout@shop.example", "SMTP_SENDER_NAME": "Shop Checkout",
               "RESUME_URL": "https://shop.example/checkout", "LOG_LEVEL": "warn"}
        r = run(["migrate"], env)
        print(f"$ recovery-worker migrate\n{r.stdout.strip()}\n")
        if r.returncode:
            sys.exit(r.stderr)
        conn = pg.connect("shop")
        with conn.cursor() as cur:
            orders = [
                seed(cur, "member waiting on payment, 2 pending intents", name="Ada Lovelace",
                     email="ada@example.org", intents=2),
                seed(cur, "member in identity verification, name with markup",
                     name="<b>Grace</b> Hopper", email="grace@example.org", stage="verification"),
                seed(cur, "member who opted out of order updates", name="Alan",
                     email="alan@example.org", opted_out=True),
                seed(cur, "member without pending intents", name="Edsger",
                     email="edsger@example.org", intents=0),
                seed(cur, "order without a member", name=None, email=None, user=False),
                seed(cur, "not due for another 3 hours", name="Barbara",
                     email="barbara@example.org", due=False),
            ]
        r = run(["sweep"], env)
        print(f"$ recovery-worker sweep\n{r.stdout.strip()}   (exit {r.returncode})\n")
        if r.stderr.strip():
            print(r.stderr)

        mails = smtp.messages()
        print(f"=== {len(mails)} email(s) captured by the local SMTP server ===")
        for m in mails:
            msg = m.message
            print(f"\n--- to {', '.join(m.envelope['rcpt_tos'])}")
            for h in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"):
                print(f"{h}: {msg[h]}")
            text = msg.get_body(preferencelist=("plain",))
            print()
            print(textwrap.indent(text.get_content().strip(), "    "))

        print("\n=== the orchestrations afterwards (recovery-worker status ORDER_ID) ===")
        for label, oid, number in orders:
            doc = json.loads(run(["status", oid], env).stdout)
            ev = doc["events"]
            outcome = ev[-1]["payload"].get("outcome") if ev else "-"
            note = doc["metadata"].get("note", "")
            print(f"\n{number}  {label}\n  status={doc['status']} nextActionAt={doc['nextActionAt']}"
                  f"\n  events={len(ev)} last outcome={outcome}" + (f" note={note!r}" if note else ""))
        print("\nFull JSON of the first order:")
        print(run(["status", orders[0][1]], env).stdout)
        conn.close()
    finally:
        smtp.cleanup()
        pg.destroy()


if __name__ == "__main__":
    main()
