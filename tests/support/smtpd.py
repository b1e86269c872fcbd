#!/usr/bin/python3
"""smtpd.py: a real SMTP server for tests (Debian's python3-aiosmtpd), with fault injection.

    smtpd.py --maildir DIR [--port N] [--port-file F] [--pid-file F] [--stats-file F]
             [--transcript F] [--mode normal|greet421|auth|starttls] [--user U --password P]
             [--cert F --key F] [--delay-ms N] [--stall-s N] [--plain-ehlo]
             [--max-rate N] [--max-connections N] [--mail-tempfail-after N] [--quota N]
             [--tls-min 1.2|1.3] [--implicit-tls]

Listens on 127.0.0.1. --port 0 (the default) picks a free port; the port is printed on
stdout and written to --port-file. The PID goes to --pid-file. SIGTERM or SIGINT stops it.

Storage. Every accepted message becomes two files in --maildir, named by a sequence number
starting at 000001: NNNNNN.eml holds the message bytes exactly as received (dot-stuffing
removed, nothing added), and NNNNNN.json the envelope: {"seq", "mail_from", "rcpt_tos",
"peer", "helo", "tls", "auth_user", "received_at"}. Both are written under a temporary name
and renamed; the .json first, so whoever sees NNNNNN.eml can read both. The envelope is a
sidecar rather than X-Envelope headers so that the stored message is byte-exact.

Faults, by the local part of a recipient:
    tempfail+...@  RCPT gets "451 4.3.0 try later"
    reject+...@    RCPT gets "550 5.1.1 no such user"
    dropdata+...@  the DATA content is read, then the connection closes without a reply
    stall+...@     RCPT is answered only after --stall-s seconds (default 60)
Modes:
    normal    plain SMTP, no AUTH
    greet421  "421 4.3.2 ..." as the greeting, then the connection closes
    auth      AUTH PLAIN/LOGIN required (--user/--password); wrong ones get 535 5.7.8
    starttls  STARTTLS (--cert/--key) required before MAIL; with --user, AUTH too
EHLO announces PIPELINING and ENHANCEDSTATUSCODES, as Postfix does, unless --plain-ehlo.
--delay-ms delays the reply to each message's end of data (a slow relay).
Relay limits, as real relays answer them:
    --max-rate N             beyond N messages accepted in the last second, the end of data
                             gets "454 4.7.0 Throttling failure: Maximum sending rate
                             exceeded." (Amazon SES)
    --max-connections N      beyond N connections open at once, the greeting is "421 4.7.0
                             Too many connections" and the connection closes
    --mail-tempfail-after N  once N messages were accepted, every MAIL FROM gets "450 4.7.1
                             Error: too much mail from 127.0.0.1" (Postfix's anvil)
    --quota N                once N messages were accepted, the end of data gets "454
                             Throttling failure: Daily message quota exceeded." (Amazon SES)
TLS: --tls-min 1.3 makes STARTTLS accept TLS 1.3 only; --implicit-tls speaks TLS from the
first byte (port 465 style, --cert/--key) instead of STARTTLS.

Stats (--stats-file) is JSON rewritten atomically after every change: "connections" (TCP
connections on which the client sent something), "tcp_connections" (every connection
accepted, including reachability checks that close without a word), "sessions" (connections
that sent EHLO or HELO), "messages", "dropped", "auth_failures", "sni" (server names clients
sent in TLS), "throttled" (454 rate replies), "refused_connections" (421 greetings for
the connection cap), "mail_refused" (450 replies to MAIL FROM), "max_open" (the most
connections open at once). The transcript
(--transcript) has one line per client line, "cN <line>", with AUTH arguments and SASL
responses replaced by "[redacted]".
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

FAULT_TEMPFAIL = "451 4.3.0 try later"
FAULT_REJECT = "550 5.1.1 no such user"
GREETING_421 = "421 4.3.2 service not available, closing channel"
THROTTLE_RATE = "454 4.7.0 Throttling failure: Maximum sending rate exceeded."
THROTTLE_QUOTA = "454 Throttling failure: Daily message quota exceeded."
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections"
TOO_MUCH_MAIL = "450 4.7.1 Error: too much mail from 127.0.0.1"


class State:
    """Counters, storage and the transcript shared by every connection."""

    def __init__(self, args):
        self.args = args
        self.connections = 0
        self.tcp_connections = 0
        self.sessions = 0
        self.messages = 0
        self.dropped = 0
        self.auth_failures = 0
        self.sni = []
        self.seq = 0
        self.throttled = 0
        self.refused_connections = 0
        self.mail_refused = 0
        self.open = 0
        self.max_open = 0
        self.accepted_times = []  # monotonic times of accepted messages, for --max-rate
        self.transcript = open(args.transcript, "a", encoding="utf-8") if args.transcript else None

    def write_stats(self):
        if not self.args.stats_file:
            return
        stats = {
            "connections": self.connections,
            "tcp_connections": self.tcp_connections,
            "sessions": self.sessions,
            "messages": self.messages,
            "dropped": self.dropped,
            "auth_failures": self.auth_failures,
            "sni": self.sni,
            "throttled": self.throttled,
            "refused_connections": self.refused_connections,
            "mail_refused": self.mail_refused,
            "max_open": self.max_open,
        }
        write_atomic(self.args.stats_file, json.dumps(stats).encode())

    def store(self, session, envelope):
        self.seq += 1
        name = "%06d" % self.seq
        meta = {
            "seq": self.seq,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": list(session.peer) if session.peer else None,
            "helo": session.host_name,
            "tls": session.ssl is not None,
            "auth_user": login_name(session),
            "received_at": time.time(),
        }
        maildir = self.args.maildir
        write_atomic(os.path.join(maildir, name + ".json"), json.dumps(meta).encode())
        write_atomic(os.path.join(maildir, name + ".eml"), bytes(envelope.original_content))
        self.messages += 1
        self.write_stats()
        return name

    def log_client(self, conn_id, line):
        if self.transcript:
            self.transcript.write("c%d %s\n" % (conn_id, line))
            self.transcript.flush()


def login_name(session):
    login = getattr(session, "login_data", None)
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return login


def write_atomic(path, data):
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, ".tmp-%d-%s" % (os.getpid(), base))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def local_part(address):
    return address.rsplit("@", 1)[0].lower()


class Handler:
    """aiosmtpd hooks: EHLO extensions, fault injection, storage."""

    def __init__(self, state):
        self.state = state

    def _count_session(self, server):
        if not getattr(server, "rw_counted", False):
            server.rw_counted = True
            self.state.sessions += 1
            self.state.write_stats()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self._count_session(server)
        session.host_name = hostname
        if not self.state.args.plain_ehlo:
            responses[-1:-1] = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self._count_session(server)
        session.host_name = hostname
        return "250 %s" % server.hostname

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        after = self.state.args.mail_tempfail_after
        if after is not None and self.state.messages >= after:
            self.state.mail_refused += 1
            self.state.write_stats()
            return TOO_MUCH_MAIL
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = local_part(address)
        if local.startswith("tempfail+"):
            return FAULT_TEMPFAIL
        if local.startswith("reject+"):
            return FAULT_REJECT
        if local.startswith("stall+"):
            await asyncio.sleep(self.state.args.stall_s)
            return "451 4.4.2 stalled"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(local_part(r).startswith("dropdata+") for r in envelope.rcpt_tos):
            self.state.dropped += 1
            self.state.write_stats()
            server.transport.close()
            # connection_lost() cancels this coroutine: the reply is never written.
            await asyncio.sleep(3600)
        if self.state.args.delay_ms > 0:
            await asyncio.sleep(self.state.args.delay_ms / 1000.0)
        args = self.state.args
        if args.quota is not None and self.state.messages >= args.quota:
            self.state.throttled += 1
            self.state.write_stats()
            return THROTTLE_QUOTA
        if args.max_rate is not None:
            now = time.monotonic()
            recent = [t for t in self.state.accepted_times if now - t < 1.0]
            self.state.accepted_times = recent
            if len(recent) >= args.max_rate:
                self.state.throttled += 1
                self.state.write_stats()
                return THROTTLE_RATE
            recent.append(now)
        name = self.state.store(session, envelope)
        return "250 2.0.0 OK queued as %s" % name


class TestSMTP(SMTP):
    """aiosmtpd's SMTP with connection counting and a redacted transcript of client lines."""

    def __init__(self, handler, state, **kwargs):
        super().__init__(handler, **kwargs)
        self.rw_state = state
        self.rw_id = 0
        self.rw_spoke = False
        self.rw_partial = b""
        self.rw_last_reply = ""

    def connection_made(self, transport):
        if self._original_transport is None:  # not the TLS layer of a STARTTLS
            st = self.rw_state
            st.tcp_connections += 1
            self.rw_id = st.tcp_connections
            st.open += 1
            st.max_open = max(st.max_open, st.open)
            self.rw_counted_open = True
            st.write_stats()
        super().connection_made(transport)

    def connection_lost(self, exc):
        if getattr(self, "rw_counted_open", False):
            self.rw_counted_open = False
            self.rw_state.open -= 1
        super().connection_lost(exc)

    async def _handle_client(self):
        cap = self.rw_state.args.max_connections
        if cap is not None and self.rw_state.open > cap:
            self.rw_state.refused_connections += 1
            self.rw_state.write_stats()
            await self.push(TOO_MANY_CONNECTIONS)
            self.transport.close()
            return
        await super()._handle_client()

    def data_received(self, data):
        if not self.rw_spoke:
            self.rw_spoke = True
            self.rw_state.connections += 1
            self.rw_state.write_stats()
        self._transcribe(data)
        super().data_received(data)

    def _transcribe(self, data):
        buf = self.rw_partial + data
        lines = buf.split(b"\n")
        self.rw_partial = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r").decode("ascii", "backslashreplace")
            if self.rw_last_reply == "334":
                line = "[redacted]"
                self.rw_last_reply = ""
            elif line[:5].upper() == "AUTH ":
                words = line.split(" ")
                line = " ".join(words[:2]) + (" [redacted]" if len(words) > 2 else "")
            self.rw_state.log_client(self.rw_id, line)

    async def push(self, status):
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        self.rw_last_reply = text[:3]
        await super().push(status)


class Greet421SMTP(TestSMTP):
    async def _handle_client(self):
        await self.push(GREETING_421)
        self.transport.close()


def tls_context(args, state):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.tls_min == "1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def sni_callback(sslobj, server_name, context):
        state.sni.append(server_name)
        state.write_stats()

    ctx.sni_callback = sni_callback
    return ctx


def parse_args(argv):
    p = argparse.ArgumentParser(description="SMTP server for tests")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--pid-file")
    p.add_argument("--stats-file")
    p.add_argument("--transcript")
    p.add_argument("--maildir", required=True)
    p.add_argument("--mode", choices=["normal", "greet421", "auth", "starttls"], default="normal")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--stall-s", type=float, default=60.0)
    p.add_argument("--plain-ehlo", action="store_true")
    p.add_argument("--max-rate", type=int)
    p.add_argument("--max-connections", type=int)
    p.add_argument("--mail-tempfail-after", type=int)
    p.add_argument("--quota", type=int)
    p.add_argument("--tls-min", choices=["1.2", "1.3"], default="1.2")
    p.add_argument("--implicit-tls", action="store_true")
    args = p.parse_args(argv)
    if args.implicit_tls and (args.cert is None or args.key is None):
        p.error("--implicit-tls needs --cert and --key")
    if args.mode == "auth" and (args.user is None or args.password is None):
        p.error("--mode auth needs --user and --password")
    if args.mode == "starttls" and (args.cert is None or args.key is None):
        p.error("--mode starttls needs --cert and --key")
    return args


async def serve(args):
    os.makedirs(args.maildir, exist_ok=True)
    state = State(args)
    handler = Handler(state)
    loop = asyncio.get_running_loop()

    kwargs = {"hostname": "smtpd.test", "loop": loop}
    auth = args.user is not None and args.mode in ("auth", "starttls")
    if args.mode == "starttls":
        kwargs.update(tls_context=tls_context(args, state), require_starttls=True)
    if auth:
        user, password = args.user.encode(), args.password.encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            if (isinstance(auth_data, LoginPassword) and auth_data.login == user
                    and auth_data.password == password):
                return AuthResult(success=True, auth_data=auth_data)
            state.auth_failures += 1
            state.write_stats()
            return AuthResult(success=False, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=args.mode == "starttls")
    cls = Greet421SMTP if args.mode == "greet421" else TestSMTP

    server = await loop.create_server(lambda: cls(handler, state, **kwargs),
                                      host="127.0.0.1", port=args.port,
                                      ssl=tls_context(args, state) if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    state.write_stats()
    if args.pid_file:
        write_atomic(args.pid_file, b"%d\n" % os.getpid())
    if args.port_file:
        write_atomic(args.port_file, b"%d\n" % port)
    print(port, flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if args.pid_file:
        try:
            os.unlink(args.pid_file)
        except FileNotFoundError:
            pass


def main(argv):
    args = parse_args(argv)
    # Plain-text AUTH is what the auth mode is for; aiosmtpd warns about it on every connection.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
