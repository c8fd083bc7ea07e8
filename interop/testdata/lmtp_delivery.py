#!/usr/bin/env python3
"""LMTP delivery through Python's smtplib.LMTP, read back with imaplib.

Usage: lmtp_delivery.py HOST LMTP_PORT IMAP_PORT PASSWORD MAX_SIZE

The server has the accounts alice (with a mailbox "Lists") and bob, both
with PASSWORD, serves the domain example.org only, has "+" as recipient
delimiter and MAX_SIZE as its message size limit. Checks: LHLO
capabilities (SIZE, 8BITMIME, no AUTH), one transaction with mixed
recipients (known, unknown user, foreign domain, +detail, upper case), an
8-bit body kept byte for byte, a message over the limit (refused at MAIL
by SIZE= and after DATA), then reads every copy back over IMAP. Every
mismatch is printed to stderr; the exit status is 1 if there was any.
Run by interop/lmtp_test.go.
"""

import imaplib
import smtplib
import sys

failures = []
checks = 0


def check(cond, what, got=None, want=None):
    global checks
    checks += 1
    if not cond:
        msg = what
        if got is not None or want is not None:
            msg += "\n     got:  %r\n     want: %r" % (got, want)
        failures.append(msg)
        print("FAIL: " + msg, file=sys.stderr)
    return cond


host, lmtp_port, imap_port, password, max_size = sys.argv[1:6]
max_size = int(max_size)

SENDER = "sender@example.net"
BODY = (
    b"From: Zo\xc3\xab <zoe@example.net>\r\n"
    b"To: alice@example.org, bob@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, \xe2\x82\xac 5.\r\n"
    b"Latin-1 byte: \xe9, high bytes: \x80\xff\r\n"
    b".a line starting with a dot\r\n"
    b"\r\n"
    b"-- \r\n"
    b"Zo\xc3\xab\r\n"
)

lmtp = smtplib.LMTP(host, int(lmtp_port))
code, _ = lmtp.ehlo("python.test")  # smtplib.LMTP sends LHLO for ehlo
check(code == 250, "LHLO", code, 250)
check(lmtp.has_extn("8bitmime"), "8BITMIME advertised", lmtp.esmtp_features)
check(lmtp.has_extn("enhancedstatuscodes"), "ENHANCEDSTATUSCODES advertised", lmtp.esmtp_features)
check(lmtp.esmtp_features.get("size") == str(max_size), "SIZE advertised",
      lmtp.esmtp_features.get("size"), str(max_size))
check(not lmtp.has_extn("auth"), "AUTH not advertised", lmtp.esmtp_features)

# One transaction, mixed recipients. smtplib.LMTP.sendmail reads a single
# reply after DATA, so the per-recipient replies (RFC 2033 section 4.2)
# are read here with getreply.
code, msg = lmtp.mail(SENDER, ["BODY=8BITMIME"])
check(code == 250, "MAIL FROM", (code, msg), 250)
rcpts = [
    ("alice@example.org", 250, None),
    ("nobody@example.org", 550, b"5.1.1"),
    ("BOB@Example.ORG", 250, None),
    ("alice@elsewhere.test", 550, b"5.1.2"),
    ("alice+Lists@example.org", 250, None),
]
accepted = []
for addr, want, enh in rcpts:
    code, msg = lmtp.rcpt(addr)
    check(code == want, "RCPT TO:<%s>" % addr, (code, msg), want)
    if enh is not None:
        check(msg.startswith(enh), "RCPT TO:<%s> enhanced code" % addr, msg, enh)
    if code == 250:
        accepted.append(addr)
code, msg = lmtp.data(BODY)
replies = [(code, msg)]
for _ in accepted[1:]:
    replies.append(lmtp.getreply())
check(len(replies) == 3, "one reply per accepted recipient", replies)
for addr, (code, msg) in zip(accepted, replies):
    check(code == 250 and msg.startswith(b"2.0.0 <" + addr.encode() + b">"),
          "DATA reply for %s" % addr, (code, msg), "250 2.0.0 <%s> ..." % addr)

# A message over the limit: refused at MAIL when SIZE= says so, and after
# the data otherwise, for each recipient.
code, msg = lmtp.mail(SENDER, ["SIZE=%d" % (max_size + 1)])
check(code == 552 and msg.startswith(b"5.3.4"), "MAIL with SIZE over the limit", (code, msg), 552)
lmtp.rset()
big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * (max_size // 78 + 10)
code, msg = lmtp.mail(SENDER)
check(code == 250, "MAIL FROM (big)", (code, msg), 250)
for addr in ("alice@example.org", "bob@example.org"):
    code, msg = lmtp.rcpt(addr)
    check(code == 250, "RCPT TO:<%s> (big)" % addr, (code, msg), 250)
first = lmtp.data(big)
second = lmtp.getreply()
for code, msg in (first, second):
    check(code == 552 and msg.startswith(b"5.3.4"), "DATA over the limit", (code, msg), "552 5.3.4")

# The session goes on after the refusal: a small message to bob.
code, msg = lmtp.mail("")
check(code == 250, "MAIL FROM:<>", (code, msg), 250)
code, msg = lmtp.rcpt("bob+Nowhere@example.org")
check(code == 250, "RCPT bob+Nowhere (no such mailbox: INBOX)", (code, msg), 250)
code, msg = lmtp.data(b"Subject: bounce\r\n\r\nnull sender\r\n")
check(code == 250 and b"INBOX" in msg, "DATA null sender", (code, msg), 250)
lmtp.quit()


def fetch_all(user, mailbox):
    imap = imaplib.IMAP4(host, int(imap_port))
    imap.login(user, password)
    typ, data = imap.select(mailbox, readonly=True)
    check(typ == "OK", "SELECT %s as %s" % (mailbox, user), (typ, data))
    bodies = []
    n = int(data[0])
    for i in range(1, n + 1):
        typ, data = imap.fetch(str(i), "(BODY.PEEK[])")
        check(typ == "OK", "FETCH", (typ, data))
        bodies.append(data[0][1])
    imap.logout()
    return bodies


def check_copy(body, rcpt, sender, original, what):
    prefix = b"Return-Path: <" + sender.encode() + b">\r\nDelivered-To: " + rcpt.encode() + b"\r\nReceived: from "
    check(body.startswith(prefix), what + ": trace header fields", body[:120], prefix)
    check(body.endswith(original), what + ": the message byte for byte", body[-len(original) - 20:], original)
    # Only trace fields come before the original message.
    head = body[: len(body) - len(original)]
    for line in head.split(b"\r\n"):
        check(line == b"" or line.startswith((b"Return-Path:", b"Delivered-To:", b"Received:", b"\t")),
              what + ": only trace fields added", line)


inbox = fetch_all("alice", "INBOX")
if check(len(inbox) == 1, "alice's INBOX", len(inbox), 1):
    check_copy(inbox[0], "alice@example.org", SENDER, BODY, "alice INBOX")
lists = fetch_all("alice", "Lists")
if check(len(lists) == 1, "alice's Lists", len(lists), 1):
    check_copy(lists[0], "alice+Lists@example.org", SENDER, BODY, "alice Lists")
bob = fetch_all("bob", "INBOX")
if check(len(bob) == 2, "bob's INBOX", len(bob), 2):
    check_copy(bob[0], "BOB@Example.ORG", SENDER, BODY, "bob INBOX")
    check_copy(bob[1], "bob+Nowhere@example.org", "", b"Subject: bounce\r\n\r\nnull sender\r\n", "bob null sender")

print("%d checks, %d failures" % (checks, len(failures)))
sys.exit(1 if failures else 0)
