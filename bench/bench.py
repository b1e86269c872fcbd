#!/usr/bin/python3
"""Sweep throughput benchmark of recovery-worker, with the floors it is measured against.

For each N: seed N smplat-shaped due orchestrations once into a template database (90 %
opted in with a pending checkout intent, 10 % opted out), then per run, each on a fresh copy
of it:

  sweep       one `recovery-worker sweep` under /usr/bin/time -v against smtp-sink;
              verified: one event per orchestration, one 'sent' ledger row per eligible
              orchestration, smtp-sink counted exactly that many messages
  DB floor    the same database work as set-based SQL alone (bench/db_floor.sql), no email
  SMTP floor  smtp-source -> smtp-sink: as many messages, of the same size (a prompt the
              worker rendered), over as many connections (as the sweep opened), as many at
              a time (the concurrency)

CPU-busy seconds are read from /proc: the PostgreSQL server's processes (the postmaster's
own and reaped children's time plus every live child's), smtp-sink's, and the rusage of the
clients (the worker from time -v, smtp-source from wait4, this process for the DB floor).

    combined floor = N / ((DB floor CPU s + SMTP floor CPU s) / cores)
    ratio          = sweep orchestrations/s / combined floor

With --pgbouncer, each sweep is run a second time on another fresh copy through PgBouncer in
transaction pooling (Debian's pgbouncer, a pool of 2, on 127.0.0.1), as a managed database's
transaction pooler is used, and the two are compared.

Then the relay-latency case: every reply of the relay late by --latency-delay-ms (a delay
line in front of smtp-sink, bench/delay_proxy.py, since smtp-sink's own delays are whole
seconds), concurrency C; messages/s against the bound C / delay.

Everything listens on 127.0.0.1 only; every child is started here and stopped by its PID.
"""
import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from pgcluster import PgCluster, free_port  # noqa: E402
from pgbouncer import PgBouncer, pgbouncer_bin  # noqa: E402

SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
TIME = "/usr/bin/time"
CLK = os.sysconf("SC_CLK_TCK")
SENDER = "checkout@shop.test"
DOMAIN = "shop.test"
LEASE_MS = 5 * 60 * 1000
RETRY_MS = 6 * 3600 * 1000
MAX_PROMPTS = 3


CHILDREN = []  # every server-like child started here, stopped by PID at the end


class BenchError(Exception):
    pass


def fail(msg):
    raise BenchError(msg)


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- processes and /proc

def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in clock ticks, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): field k is rest[k - 3]
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def proc_cpu(pid):
    st = proc_stat(pid)
    if st is None:
        fail(f"process {pid} is gone")
    return st[1] / CLK


def children_of(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st is not None and st[0] == ppid:
            kids.append((int(d), st[1]))
    return kids


def pg_cpu(postmaster):
    """CPU seconds of the whole server so far: the postmaster's own, its reaped children's
    (cutime/cstime) and every live child's."""
    st = proc_stat(postmaster)
    if st is None:
        fail("the PostgreSQL postmaster is gone")
    ticks = st[1] + st[2] + sum(t for _, t in children_of(postmaster))
    return ticks / CLK


def pg_settle(postmaster, dbname, timeout=10.0):
    """Waits until no server process serves `dbname` any more: the backend of a client that
    just disconnected has exited and been reaped, so its time is in the postmaster's cutime."""
    deadline = time.monotonic() + timeout
    needle = f" {dbname} ".encode()
    while time.monotonic() < deadline:
        busy = False
        for pid, _ in children_of(postmaster):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if needle in f.read().replace(b"\0", b" ") + b" ":
                        busy = True
                        break
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.02)
    fail(f"a server process still serves {dbname} after {timeout:.0f}s")


def listening(port):
    """True when something listens on 127.0.0.1:port (read from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def wait_listening(port, proc, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"{what} exited with {proc.returncode} before listening on {port}")
        if listening(port):
            return
        time.sleep(0.02)
    fail(f"{what} is not listening on 127.0.0.1:{port} after {timeout:.0f}s")


def stop_pid(proc, timeout=5.0):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_rusage(args, timeout):
    """Runs a command; returns (exit status, CPU seconds from wait4)."""
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            os.wait4(p.pid, 0)
            p.returncode = -9
            fail(f"{args[0]} did not finish in {timeout}s")
        time.sleep(0.002)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    return p.returncode, ru.ru_utime + ru.ru_stime, err


class Sink:
    """smtp-sink on 127.0.0.1 and a free high port, counting (-c) and storing nothing."""

    COUNTER = re.compile(r"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, workdir):
        self.port = free_port()
        self.out_path = os.path.join(workdir, f"sink-{self.port}.out")
        self.err_path = os.path.join(workdir, f"sink-{self.port}.err")
        args = [SINK, "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # it refuses to run as root otherwise
        args += [f"127.0.0.1:{self.port}", "1024"]
        self.args = args
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err)
        CHILDREN.append(self.proc)
        wait_listening(self.port, self.proc, "smtp-sink")

    def counters(self):
        """(sessions ended, QUIT commands, messages) so far. A session that ended without
        QUIT carried no mail: the worker's connect probe, before its first session."""
        with open(self.out_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read().decode(errors="replace")
        found = self.COUNTER.findall(tail)
        if not found:
            return 0, 0, 0
        return tuple(int(x) for x in found[-1])

    def wait_counts(self, messages, timeout=10.0, quiet=0.15):
        """Waits until `messages` were counted and the counters stopped moving (sessions are
        counted when they end, a moment after the client's last reply)."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while True:
            now = time.monotonic()
            cur = self.counters()
            if cur != last:
                last, since = cur, now
            if (cur[2] >= messages and now - since >= quiet) or now > deadline:
                return cur
            time.sleep(0.02)

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def stop(self):
        stop_pid(self.proc)
        with open(self.err_path, errors="replace") as f:
            err = f.read().strip()
        return err


class DelayProxy:
    def __init__(self, workdir, target_port, delay_ms):
        self.port = free_port()
        self.stats_path = os.path.join(workdir, f"proxy-{self.port}.json")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "delay_proxy.py"),
                                      "--listen", str(self.port), "--target", str(target_port),
                                      "--delay-ms", str(delay_ms), "--stats", self.stats_path])
        CHILDREN.append(self.proc)
        wait_listening(self.port, self.proc, "delay proxy")

    def stop(self):
        stop_pid(self.proc)
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


# ---------------------------------------------------------------- database

SEED_SQL = """
WITH s AS (SELECT g, gen_random_uuid() AS uid, gen_random_uuid() AS mid,
                  gen_random_uuid() AS oid, gen_random_uuid() AS cid
             FROM generate_series(1, %(n)s) g),
     u AS (INSERT INTO users (id, email, display_name)
           SELECT uid, 'member' || g || '@example.test', 'Member ' || g FROM s),
     p AS (INSERT INTO notification_preferences (id, user_id, order_updates)
           SELECT gen_random_uuid(), uid, g %% 10 <> 0 FROM s),
     m AS (INSERT INTO loyalty_members (id, user_id) SELECT mid, uid FROM s),
     i AS (INSERT INTO loyalty_checkout_intents (id, member_id, external_id, kind, status,
                                                  expires_at)
           SELECT gen_random_uuid(), mid, 'intent-' || g, 'redemption', 'pending',
                  now() + interval '7 days' FROM s),
     o AS (INSERT INTO orders (id, order_number, user_id, total, currency)
           SELECT oid, 'SM-' || lpad(g::text, 8, '0'), uid, 19 + g %% 500, 'EUR' FROM s)
INSERT INTO checkout_orchestrations (id, order_id, user_id, current_stage, stage_status,
                                     metadata, next_action_at)
SELECT cid, oid, uid, 'payment', 'waiting', '{}',
       now() - interval '1 hour' + g * interval '1 millisecond' FROM s
"""


def load_floor_sql():
    sections, name, buf = {}, None, []
    with open(os.path.join(HERE, "db_floor.sql")) as f:
        for line in f:
            m = re.match(r"--\s*name:\s*(\w+)", line)
            if m:
                if name:
                    sections[name] = "".join(buf).strip()
                name, buf = m.group(1), []
            elif name:
                buf.append(line)
    if name:
        sections[name] = "".join(buf).strip()
    for k in ("setup", "truncate", "claim", "ledger_begin", "ledger_finish", "finalise"):
        if k not in sections:
            fail(f"db_floor.sql has no section {k}")
    return sections


def worker_env(args, dburl, smtp_port, concurrency):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMTP_", "DATABASE_", "RW_", "RECOVERY_WORKER_", "LOG_"))}
    env.update({
        "DATABASE_URL": dburl,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_TLS": "none",
        "SMTP_SENDER_EMAIL": SENDER,
        "SMTP_SENDER_NAME": "Shop Checkout",
        "RESUME_URL": "https://shop.test/checkout",
        "RW_SWEEP_BATCH_SIZE": str(args.batch_size),
        "RW_SWEEP_CONCURRENCY": str(concurrency),
        "RW_SMTP_MESSAGES_PER_SESSION": str(args.messages_per_session),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warn"),
    })
    return env


class Bench:
    def __init__(self, args):
        self.a = args
        self.cores = os.cpu_count() or 1
        self.work = tempfile.mkdtemp(prefix="rw-bench-")
        self.pg = None
        self.bouncer = None
        self.floor_sql = load_floor_sql()
        self.templates = {}
        self.source_startup = None

    # -- setup

    def start(self):
        self.pg = PgCluster().init()
        if os.environ.get("BENCH_STATEMENTS"):
            # per-statement figures (BENCH_STATEMENTS=1): pg_stat_statements, planning included
            with open(os.path.join(self.pg.data, "postgresql.conf"), "a") as f:
                f.write("shared_preload_libraries = 'pg_stat_statements'\n"
                        "pg_stat_statements.track_planning = on\n")
        self.pg.start()
        if os.environ.get("BENCH_STATEMENTS"):
            self.q("postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        log(f"PostgreSQL on 127.0.0.1:{self.pg.port} (data in {self.pg.dir}); "
            f"work dir {self.work}; {self.cores} cores")
        if self.a.pgbouncer:
            self.bouncer = PgBouncer(self.pg.port, pool_mode="transaction", pool_size=2).start()
            log(f"PgBouncer (transaction pooling, pool of 2) on 127.0.0.1:{self.bouncer.port}")

    def cleanup(self):
        for p in CHILDREN:
            stop_pid(p)
        if self.bouncer is not None:
            self.bouncer.destroy()
        if self.pg is not None:
            self.pg.destroy()
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def q(self, dbname, sql, params=None):
        conn = self.pg.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def worker(self, argv, env, timeout):
        return subprocess.run([self.a.bin] + argv, env=env, cwd=self.work, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def template(self, n):
        """A migrated, seeded, analysed template database of n orchestrations."""
        if n in self.templates:
            return self.templates[n]
        name = f"tmpl_{n}"
        t0 = time.monotonic()
        self.pg.create_db(name)
        r = self.worker(["migrate"], worker_env(self.a, self.pg.url(name), 9, 1), 300)
        if r.returncode != 0:
            fail(f"migrate exited {r.returncode}: {r.stderr[-2000:]}")
        conn = self.pg.connect(name)
        try:
            with conn.cursor() as cur:
                cur.execute(SEED_SQL, {"n": n})
                cur.execute("VACUUM ANALYZE")
                cur.execute("SELECT count(*) FILTER (WHERE np.order_updates), count(*)"
                            "  FROM checkout_orchestrations c"
                            "  JOIN notification_preferences np ON np.user_id = c.user_id")
                eligible, total = cur.fetchone()
        finally:
            conn.close()
        if total != n:
            fail(f"seeded {total} orchestrations, not {n}")
        sample = self.sample_message(name)
        info = {"name": name, "n": n, "eligible": eligible, "message": sample}
        self.templates[n] = info
        log(f"seeded {name}: {n} orchestrations, {eligible} eligible, {n - eligible} opted out; "
            f"prompt {sample['bytes']} bytes ({time.monotonic() - t0:.1f}s)")
        return info

    def sample_message(self, dbname):
        """One prompt as the worker renders it (dry run, which writes nothing to the
        database), with LF line ends for smtp-source -F, which adds CRLF itself."""
        d = os.path.join(self.work, f"dry-{dbname}")
        os.makedirs(d, exist_ok=True)
        r = self.worker(["sweep", "--dry-run", "--dry-run-dir", d, "--limit", "20"],
                        worker_env(self.a, self.pg.url(dbname), 9, 1), 120)
        if r.returncode != 0:
            fail(f"dry-run exited {r.returncode}: {r.stderr[-2000:]}")
        sizes = []
        for line in r.stdout.splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("message_bytes"):
                sizes.append(j["message_bytes"])
        files = sorted(f for f in os.listdir(d) if f.endswith(".eml"))
        if not files or not sizes:
            fail("the dry run rendered no prompt")
        with open(os.path.join(d, files[0]), "rb") as f:
            raw = f.read()
        path = os.path.join(self.work, f"prompt-{dbname}.eml")
        with open(path, "wb") as f:
            f.write(raw.replace(b"\r\n", b"\n"))
        return {"path": path, "bytes": len(raw), "median_bytes": statistics.median(sizes)}

    def fresh_db(self, tmpl, tag):
        name = f"{tag}_{uuid.uuid4().hex[:8]}"
        self.pg.create_db(name, template=tmpl["name"])
        # the copy and its WAL out of the way before anything is measured
        self.q("postgres", "CHECKPOINT")
        return name

    def drop_db(self, name):
        if not self.a.keep:
            self.q("postgres", f"DROP DATABASE IF EXISTS {name}")

    # -- the sweep

    def sweep(self, tmpl, concurrency, delay_ms=None, via_bouncer=False):
        """One sweep on a fresh copy (through PgBouncer when via_bouncer); verified; returns
        its numbers."""
        n, eligible = tmpl["n"], tmpl["eligible"]
        db = self.fresh_db(tmpl, "sweep")
        timefile = os.path.join(self.work, "time.txt")
        timeout = self.a.sweep_timeout or max(600, n // 20)
        sink = Sink(self.work)
        proxy = None
        try:
            proxy = DelayProxy(self.work, sink.port, delay_ms) if delay_ms else None
            port = proxy.port if proxy else sink.port
            url = self.bouncer.url(db) if via_bouncer else self.pg.url(db)
            env = worker_env(self.a, url, port, concurrency)
            s0, q0, m0 = sink.counters()
            pg0, sink0 = pg_cpu(self.pg.pid), sink.cpu()
            pgb0 = proc_cpu(self.bouncer.proc.pid) if via_bouncer else 0.0
            if os.environ.get("BENCH_STATEMENTS"):
                self.q("postgres", "SELECT pg_stat_statements_reset()")
            t0 = time.monotonic()
            r = run_timed([TIME, "-v", "-o", timefile, self.a.bin, "sweep"], env, self.work,
                          timeout)
            wall = time.monotonic() - t0
            if via_bouncer:
                self.bouncer.drop_server_connections(db)  # pooled, they would stay open
            pg_settle(self.pg.pid, db)
            conns, sessions, messages = sink.wait_counts(m0 + eligible, timeout=5)
            conns, sessions, messages = conns - s0, sessions - q0, messages - m0
            pg1, sink1 = pg_cpu(self.pg.pid), sink.cpu()
            pgb1 = proc_cpu(self.bouncer.proc.pid) if via_bouncer else 0.0
        finally:
            pstats = proxy.stop() if proxy else None
            sink_err = sink.stop()
        summary = None
        for line in reversed(r.stdout.splitlines()):
            try:
                summary = json.loads(line)
                break
            except ValueError:
                continue
        if r.returncode != 0 or summary is None:
            fail(f"sweep exited {r.returncode}; stdout {r.stdout[-1000:]!r} "
                 f"stderr {r.stderr[-3000:]!r} smtp-sink {sink_err[-500:]!r}")
        tv = parse_time_v(timefile)
        self.verify(db, n, eligible, summary=summary, sink_messages=messages)
        if os.environ.get("BENCH_STATEMENTS"):
            time.sleep(0.6)  # the statistics collector's flush interval
            rows = self.q(db, """
                SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
                  FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
                 ORDER BY relname""")
            sys.stderr.write("table inserts updates hot-updates deletes\n" +
                             "".join(" ".join(str(c) for c in row) + "\n" for row in rows))
        self.drop_db(db)
        res = {
            "n": n, "eligible": eligible, "concurrency": concurrency, "wall_s": wall,
            "duration_ms": summary.get("duration_ms"), "batches": math.ceil(n / self.a.batch_size),
            "worker_user_s": tv["user"], "worker_sys_s": tv["sys"],
            "worker_cpu_s": tv["user"] + tv["sys"], "rss_mb": tv["rss_kb"] / 1024.0,
            "pg_cpu_s": pg1 - pg0, "sink_cpu_s": sink1 - sink0,
            "smtp_sessions": sessions, "tcp_connections": conns, "sink_messages": messages,
            "orch_per_s": n / wall, "msgs_per_s": summary["nudges_sent"] / wall,
            "stderr_lines": len([l for l in r.stderr.splitlines() if l.strip()]),
            "via_pgbouncer": via_bouncer, "pgbouncer_cpu_s": pgb1 - pgb0,
        }
        if os.environ.get("BENCH_STATEMENTS"):
            rows = self.q("postgres", """
                SELECT calls, rows, round(total_plan_time::numeric, 1),
                       round((total_exec_time + total_plan_time)::numeric, 1),
                       round(((total_exec_time + total_plan_time) * 1000 / %s)::numeric, 1),
                       left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
                  FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC
                 LIMIT 15""", (n,))
            sys.stderr.write("calls rows plan-ms ms us/orch statement\n" +
                             "".join(" ".join(str(c) for c in row) + "\n" for row in rows))
        if os.environ.get("BENCH_LOG_LEVEL"):
            sys.stderr.write("".join(l + "\n" for l in r.stderr.splitlines()
                                     if "journal" in l))
        if pstats is not None:
            res["proxy"] = pstats
        return res

    def verify(self, db, n, eligible, summary=None, sink_messages=None):
        """Every orchestration one event; every eligible one one 'sent' ledger row; nothing
        left due or claimed; smtp-sink took exactly the eligible count."""
        problems = []
        if summary is not None:
            want = {"processed": n, "nudges_sent": eligible, "skipped_opt_out": n - eligible,
                    "deferred": 0, "failed": 0, "unknown": 0, "released": 0,
                    "lost_leases": 0, "superseded": 0, "already_sent": 0}
            for k, v in want.items():
                if summary.get(k) != v:
                    problems.append(f"summary {k}={summary.get(k)}, expected {v}")
        (ev, ev_distinct, ev_sent, ev_opt), = self.q(db, """
            SELECT count(*), count(DISTINCT orchestration_id),
                   count(*) FILTER (WHERE payload->>'outcome' = 'sent'),
                   count(*) FILTER (WHERE payload->>'outcome' = 'skipped_opt_out')
              FROM checkout_orchestration_events""")
        if (ev, ev_distinct) != (n, n):
            problems.append(f"events: {ev} rows for {ev_distinct} orchestrations, expected {n}")
        if (ev_sent, ev_opt) != (eligible, n - eligible):
            problems.append(f"event outcomes: {ev_sent} sent / {ev_opt} opted out, expected "
                            f"{eligible} / {n - eligible}")
        (led, led_sent, led_distinct, led_mids, led_optout), = self.q(db, """
            SELECT count(*), count(*) FILTER (WHERE d.status = 'sent'),
                   count(DISTINCT d.orchestration_id), count(DISTINCT d.message_id),
                   count(*) FILTER (WHERE NOT np.order_updates)
              FROM recovery_deliveries d
              JOIN checkout_orchestrations c ON c.id = d.orchestration_id
              JOIN notification_preferences np ON np.user_id = c.user_id""")
        if not (led == led_sent == led_distinct == led_mids == eligible) or led_optout:
            problems.append(f"ledger: {led} rows, {led_sent} sent, {led_distinct} "
                            f"orchestrations, {led_mids} Message-IDs, {led_optout} opted out; "
                            f"expected {eligible} sent, one each, none opted out")
        (due, claims), = self.q(db, """
            SELECT (SELECT count(*) FROM checkout_orchestrations
                     WHERE stage_status = 'waiting' AND next_action_at <= now()),
                   (SELECT count(*) FROM recovery_claims)""")
        if due or claims:
            problems.append(f"{due} orchestrations still due, {claims} claims left")
        if sink_messages is not None and sink_messages != eligible:
            problems.append(f"smtp-sink counted {sink_messages} messages, expected {eligible}")
        if problems:
            fail(f"verification of {db} failed:\n  " + "\n  ".join(problems))

    # -- the floors

    def db_floor(self, tmpl):
        n, eligible = tmpl["n"], tmpl["eligible"]
        db = self.fresh_db(tmpl, "dbfloor")
        sql = self.floor_sql
        params = {"run": uuid.uuid4().hex[:16], "batch": self.a.batch_size,
                  "lease_ms": LEASE_MS, "retry_ms": RETRY_MS, "max_prompts": MAX_PROMPTS,
                  "domain": DOMAIN}
        max_batches = math.ceil(n / self.a.batch_size) + 2
        pg0 = pg_cpu(self.pg.pid)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        conn = self.pg.connect(db)
        batches = 0
        try:
            with conn.cursor() as cur:
                # the worker's own session settings (worker/cmd_common.c), so the floor does
                # the same work the same way
                cur.execute("SET TIME ZONE 'UTC'; SET enable_bitmapscan = off; SET jit = off")
                cur.execute(sql["setup"])
                for _ in range(max_batches):
                    cur.execute(sql["truncate"])
                    cur.execute(sql["claim"], params)
                    if cur.rowcount == 0:
                        break
                    batches += 1
                    cur.execute(sql["ledger_begin"], params)
                    cur.fetchall()
                    cur.execute(sql["ledger_finish"], params)
                    cur.execute(sql["finalise"], params)
                    cur.fetchall()
                else:
                    fail(f"DB floor did not drain in {max_batches} batches")
        finally:
            conn.close()
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        pg_settle(self.pg.pid, db)
        pg1 = pg_cpu(self.pg.pid)
        self.verify(db, n, eligible)
        self.drop_db(db)
        client = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return {"n": n, "wall_s": wall, "batches": batches, "pg_cpu_s": pg1 - pg0,
                "client_cpu_s": client, "cpu_s": (pg1 - pg0) + client}

    def measure_source_startup(self):
        """CPU of starting smtp-source and nothing else (it exits on `-m 0` after the same
        initialisation), subtracted once per invocation from the SMTP floor."""
        if self.source_startup is None:
            vals = []
            for _ in range(9):
                _rc, cpu, _err = run_rusage([SOURCE, "-m", "0", "127.0.0.1:9"], 10)
                vals.append(cpu)
            self.source_startup = statistics.median(vals)
        return self.source_startup

    def smtp_floor(self, tmpl, concurrency, connections):
        """smtp-source -> smtp-sink: `eligible` messages of the prompt's size over
        `connections` connections, `concurrency` at a time: rounds of smtp-source -s C -d
        (each session carries several messages over one connection), one after another."""
        msgs = tmpl["eligible"]
        conns = max(1, min(connections, msgs))
        per, extra = divmod(msgs, conns)
        counts = [per + (1 if i < extra else 0) for i in range(conns)]
        rounds = []
        for i in range(0, conns, concurrency):
            group = counts[i:i + concurrency]
            rounds.append((len(group), sum(group)))
        startup = self.measure_source_startup()
        sink = Sink(self.work)
        src_cpu = 0.0
        try:
            s0, q0, m0 = sink.counters()
            c0 = sink.cpu()
            t0 = time.monotonic()
            for sessions, m in rounds:
                rc, cpu, err = run_rusage(
                    [SOURCE, "-s", str(sessions), "-d", "-m", str(m),
                     "-F", tmpl["message"]["path"], "-f", SENDER, "-t", "member1@example.test",
                     "-M", "bench.test", f"127.0.0.1:{sink.port}"], 600)
                if rc != 0:
                    fail(f"smtp-source exited {rc}: {err[-1000:]}")
                src_cpu += cpu
            wall = time.monotonic() - t0
            s1, q1, m1 = sink.wait_counts(m0 + msgs, timeout=5)
            c1 = sink.cpu()
        finally:
            sink.stop()
        if m1 - m0 != msgs or q1 - q0 != conns:
            fail(f"SMTP floor: smtp-sink counted {m1 - m0} messages over {q1 - q0} sessions, "
                 f"expected {msgs} over {conns}")
        correction = startup * len(rounds)
        source = max(0.0, src_cpu - correction)
        return {"messages": msgs, "connections": conns, "invocations": len(rounds),
                "wall_s": wall, "source_cpu_raw_s": src_cpu, "startup_correction_s": correction,
                "source_cpu_s": source, "sink_cpu_s": c1 - c0, "cpu_s": source + (c1 - c0)}


def run_timed(args, env, cwd, timeout):
    """Runs /usr/bin/time and the worker in their own process group, so that a sweep that
    overruns its time limit is stopped with everything it started."""
    p = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        fail(f"the sweep did not finish in {timeout}s")
    return subprocess.CompletedProcess(args, p.returncode, out, err)


def parse_time_v(path):
    with open(path) as f:
        text = f.read()

    def grab(label):
        m = re.search(re.escape(label) + r":\s*([0-9.]+)", text)
        if not m:
            fail(f"/usr/bin/time -v output has no {label!r}: {text[-500:]}")
        return float(m.group(1))

    return {"user": grab("User time (seconds)"), "sys": grab("System time (seconds)"),
            "rss_kb": grab("Maximum resident set size (kbytes)")}


# ---------------------------------------------------------------- output

def med(rows, key):
    return statistics.median(r[key] for r in rows)


def table(header, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    out = ["  ".join(str(h).rjust(w) for h, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    return "\n".join(out)


def raw_line(run, s, d, m):
    return (f"run {run}: N={s['n']} C={s['concurrency']} | sweep wall {s['wall_s']:.2f}s "
            f"(worker duration_ms {s['duration_ms']}) {s['orch_per_s']:.0f} orch/s, "
            f"worker {s['worker_user_s']:.2f}u+{s['worker_sys_s']:.2f}s CPU, "
            f"postgres {s['pg_cpu_s']:.2f}s, smtp-sink {s['sink_cpu_s']:.2f}s, "
            f"RSS {s['rss_mb']:.1f} MB, {s['smtp_sessions']} SMTP sessions "
            f"({s['tcp_connections']} TCP connections), "
            f"{s['sink_messages']} messages"
            f" | DB floor wall {d['wall_s']:.2f}s, {d['batches']} batches, postgres "
            f"{d['pg_cpu_s']:.2f}s + client {d['client_cpu_s']:.2f}s = {d['cpu_s']:.2f}s"
            f" | SMTP floor wall {m['wall_s']:.2f}s, {m['messages']} messages over "
            f"{m['connections']} connections ({m['invocations']} smtp-source runs), "
            f"smtp-source {m['source_cpu_raw_s']:.2f}s - startup {m['startup_correction_s']:.2f}s"
            f" + smtp-sink {m['sink_cpu_s']:.2f}s = {m['cpu_s']:.2f}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "worker",
                                                   "recovery-worker"))
    ap.add_argument("--n", type=int, action="append", help="orchestrations (repeatable)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, action="append",
                    help="sweep.concurrency (repeatable; default 4)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--messages-per-session", type=int, default=100)
    ap.add_argument("--latency-n", type=int, default=1000,
                    help="orchestrations in the relay-latency case (0: skip it)")
    ap.add_argument("--latency-concurrency", type=int, action="append",
                    help="C of the relay-latency case (repeatable; default: --concurrency)")
    ap.add_argument("--latency-delay-ms", type=float, default=100.0)
    ap.add_argument("--latency-runs", type=int, default=None,
                    help="runs per C in the latency case (default: --runs)")
    ap.add_argument("--sweep-timeout", type=int, default=0, help="seconds; default max(600, N/20)")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--keep", action="store_true", help="keep databases and the work dir")
    ap.add_argument("--pgbouncer", action="store_true",
                    help="also run each sweep through PgBouncer in transaction pooling")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    a.n = a.n or [10000, 100000]
    a.concurrency = a.concurrency or [4]
    a.latency_concurrency = a.latency_concurrency or a.concurrency
    a.latency_runs = a.latency_runs if a.latency_runs is not None else a.runs
    if a.runs < 1 or any(n < 10 for n in a.n):
        ap.error("--runs must be >= 1 and every --n >= 10")
    for tool in (SINK, SOURCE, TIME, a.bin):
        if not os.access(tool, os.X_OK):
            ap.error(f"{tool} is missing (bench/run.sh installs and builds everything)")
    if a.pgbouncer and pgbouncer_bin() is None:
        ap.error("--pgbouncer: pgbouncer is missing (bench/run.sh installs it)")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    b = Bench(a)
    results = {"cores": b.cores, "args": vars(a), "main": [], "latency": [], "pgbouncer": []}
    started = time.monotonic()
    try:
        b.start()
        log(f"load average at start: {os.getloadavg()}")
        for n in a.n:
            tmpl = b.template(n)
            for c in a.concurrency:
                for run in range(1, a.runs + 1):
                    s = b.sweep(tmpl, c)
                    d = b.db_floor(tmpl)
                    m = b.smtp_floor(tmpl, c, s["smtp_sessions"])
                    results["main"].append({"run": run, "sweep": s, "db_floor": d,
                                            "smtp_floor": m})
                    log(raw_line(run, s, d, m))
                    if a.pgbouncer:
                        p = b.sweep(tmpl, c, via_bouncer=True)
                        results["pgbouncer"].append({"run": run, "direct": s, "pgbouncer": p})
                        log(f"run {run}: N={n} C={c} through PgBouncer: wall {p['wall_s']:.2f}s "
                            f"{p['orch_per_s']:.0f} orch/s (direct {s['wall_s']:.2f}s), "
                            f"postgres {p['pg_cpu_s']:.2f}s, pgbouncer "
                            f"{p['pgbouncer_cpu_s']:.2f}s, worker {p['worker_cpu_s']:.2f}s CPU")
        if a.latency_n > 0:
            tmpl = b.template(a.latency_n)
            for c in a.latency_concurrency:
                for run in range(1, a.latency_runs + 1):
                    s = b.sweep(tmpl, c, delay_ms=a.latency_delay_ms)
                    bound = c / (a.latency_delay_ms / 1000.0)
                    s["bound"] = bound
                    results["latency"].append({"run": run, "sweep": s})
                    p = s.get("proxy", {})
                    rt = p.get("reply_chunks", 0) / max(1, s["sink_messages"])
                    log(f"latency run {run}: C={c} delay {a.latency_delay_ms:.0f} ms, "
                        f"{s['sink_messages']} messages in {s['wall_s']:.2f}s = "
                        f"{s['msgs_per_s']:.1f} msg/s (bound {bound:.0f}), "
                        f"{s['smtp_sessions']} SMTP sessions ({s['tcp_connections']} TCP "
                        f"connections), {rt:.2f} delayed reply "
                        f"writes per message, worker CPU {s['worker_cpu_s']:.2f}s")
        log(f"load average at end: {os.getloadavg()}")
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        b.cleanup()

    # -- summary tables
    print()
    print(f"Sweep vs floors: medians of {a.runs} run(s), batch {a.batch_size}, "
          f"{a.messages_per_session} messages/session, {b.cores} cores")
    header = ["N", "concurrency", "orch/s", "sweep wall s", "worker CPU s",
              "postgres CPU s", "peak RSS MB", "DB floor CPU s", "SMTP floor CPU s",
              "combined floor orch/s", "ratio"]
    rows = []
    for n in a.n:
        for c in a.concurrency:
            rs = [r for r in results["main"] if r["sweep"]["n"] == n
                  and r["sweep"]["concurrency"] == c]
            sw = [r["sweep"] for r in rs]
            dbf = med([r["db_floor"] for r in rs], "cpu_s")
            smf = med([r["smtp_floor"] for r in rs], "cpu_s")
            ours = med(sw, "orch_per_s")
            floor = n / ((dbf + smf) / b.cores)
            rows.append([n, c, f"{ours:.0f}", f"{med(sw, 'wall_s'):.2f}",
                         f"{med(sw, 'worker_cpu_s'):.2f}", f"{med(sw, 'pg_cpu_s'):.2f}",
                         f"{med(sw, 'rss_mb'):.1f}", f"{dbf:.2f}", f"{smf:.2f}",
                         f"{floor:.0f}", f"{ours / floor:.2f}"])
    print(table(header, rows))
    if results["pgbouncer"]:
        print()
        print(f"Through PgBouncer (transaction pooling, pool of 2) vs direct: medians of "
              f"{a.runs} run(s)")
        prow = []
        for n in a.n:
            for c in a.concurrency:
                rs = [r for r in results["pgbouncer"] if r["direct"]["n"] == n
                      and r["direct"]["concurrency"] == c]
                dw = med([r["direct"] for r in rs], "wall_s")
                pw = med([r["pgbouncer"] for r in rs], "wall_s")
                prow.append([n, c, f"{dw:.2f}", f"{pw:.2f}", f"{pw / dw:.2f}",
                             f"{med([r['direct'] for r in rs], 'pg_cpu_s'):.2f}",
                             f"{med([r['pgbouncer'] for r in rs], 'pg_cpu_s'):.2f}",
                             f"{med([r['pgbouncer'] for r in rs], 'pgbouncer_cpu_s'):.2f}"])
        print(table(["N", "concurrency", "direct wall s", "PgBouncer wall s", "ratio",
                     "postgres CPU s direct", "postgres CPU s PgBouncer", "pgbouncer CPU s"],
                    prow))
    if results["latency"]:
        print()
        print(f"Relay latency: every reply {a.latency_delay_ms:.0f} ms late, "
              f"{a.latency_n} orchestrations, medians of {a.latency_runs} run(s)")
        lrows = []
        for c in a.latency_concurrency:
            sw = [r["sweep"] for r in results["latency"] if r["sweep"]["concurrency"] == c]
            mps = med(sw, "msgs_per_s")
            bound = c / (a.latency_delay_ms / 1000.0)
            rts = statistics.median(r.get("proxy", {}).get("reply_chunks", 0)
                                    / max(1, r["sink_messages"]) for r in sw)
            lrows.append([c, f"{mps:.1f}", f"{bound:.0f}", f"{mps / bound:.2f}", f"{rts:.2f}"])
        print(table(["C", "messages/s", f"bound C/{a.latency_delay_ms / 1000.0:g}s", "ratio",
                     "delayed replies/msg"], lrows))
    print(f"\ntotal bench time {time.monotonic() - started:.0f}s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
