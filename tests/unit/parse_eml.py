#!/usr/bin/env python3
"""Checks a recovery email (.eml) with Python's own parser (email.policy.default), so the
C builder is judged by an independent implementation of RFC 5322 / 2045-2047.

usage: parse_eml.py FILE --from-name N --from-addr A --to-name N --to-addr A
                         --subject S --message-id ID [--list-unsubscribe URL]
                         [--text-contains S]... [--html-contains S]... [--html-lacks S]...

Exit status 0 when every check passes, 1 otherwise (each failure on stderr)."""

import argparse
import email
import email.policy
import sys


def wire_problems(raw):
    """Line-level rules the parser forgives: CRLF only, <= 998 octets, headers <= 78
    unless a line holds an unfoldable token (an address or a message id)."""
    problems = []
    if b"\r\n\r\n" not in raw:
        return ["no blank line after the header section"]
    if not raw.endswith(b"\r\n"):
        problems.append("message does not end with CRLF")
    lines = raw.split(b"\r\n")
    for n, line in enumerate(lines, 1):
        if b"\r" in line or b"\n" in line:
            problems.append(f"line {n}: bare CR or LF")
        if len(line) > 998:
            problems.append(f"line {n}: {len(line)} octets")
    header = raw.split(b"\r\n\r\n", 1)[0]
    for n, line in enumerate(header.split(b"\r\n"), 1):
        if len(line) > 78 and b" " in line.strip() and b"<" not in line:
            problems.append(f"header line {n}: {len(line)} characters and foldable")
        if any(b > 0x7E for b in line):
            problems.append(f"header line {n}: 8-bit octets in a header")
    return problems


def check(args):
    with open(args.file, "rb") as f:
        raw = f.read()
    problems = wire_problems(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    problems += [f"parser defect: {d!r}" for d in msg.defects]

    def expect(what, got, want):
        if got != want:
            problems.append(f"{what}: got {got!r}, want {want!r}")

    for field, name, addr in (("From", args.from_name, args.from_addr),
                              ("To", args.to_name, args.to_addr)):
        header = msg[field]
        if header is None or len(header.addresses) != 1:
            problems.append(f"{field}: want exactly one address")
            continue
        expect(f"{field} display name", header.addresses[0].display_name, name)
        expect(f"{field} address", header.addresses[0].addr_spec, addr)
    expect("Subject", str(msg["Subject"]), args.subject)
    expect("Message-ID", str(msg["Message-ID"]), f"<{args.message_id}>")
    expect("MIME-Version", str(msg["MIME-Version"]), "1.0")
    expect("Auto-Submitted", str(msg["Auto-Submitted"]), "auto-generated")
    for name in ("Bcc", "Cc", "Reply-To"):
        if msg[name] is not None:
            problems.append(f"unexpected {name} header")
    if args.list_unsubscribe is None:
        expect("List-Unsubscribe", msg["List-Unsubscribe"], None)
    else:
        expect("List-Unsubscribe", str(msg["List-Unsubscribe"]), f"<{args.list_unsubscribe}>")

    expect("Content-Type", msg.get_content_type(), "multipart/alternative")
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    expect("part types", [p.get_content_type() for p in parts], ["text/plain", "text/html"])
    if len(parts) == 2:
        for p in parts:
            expect(f"{p.get_content_type()} charset", p.get_content_charset(), "utf-8")
            expect(f"{p.get_content_type()} encoding", p["Content-Transfer-Encoding"],
                   "quoted-printable")
        text, html = parts[0].get_content(), parts[1].get_content()
        for s in args.text_contains:
            if s not in text:
                problems.append(f"text part lacks {s!r}")
        for s in args.html_contains:
            if s not in html:
                problems.append(f"html part lacks {s!r}")
        for s in args.html_lacks:
            if s in html:
                problems.append(f"html part holds {s!r}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--from-name", required=True)
    ap.add_argument("--from-addr", required=True)
    ap.add_argument("--to-name", required=True)
    ap.add_argument("--to-addr", required=True)
    ap.add_argument("--subject", required=True)
    ap.add_argument("--message-id", required=True)
    ap.add_argument("--list-unsubscribe")
    ap.add_argument("--text-contains", action="append", default=[])
    ap.add_argument("--html-contains", action="append", default=[])
    ap.add_argument("--html-lacks", action="append", default=[])
    args = ap.parse_args()
    problems = check(args)
    for p in problems:
        print(f"{args.file}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
