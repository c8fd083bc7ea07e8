#!/usr/bin/env python3
"""Message commands through Python's imaplib against a quickimap server.

Usage: imaplib_messages.py HOST PORT USER PASSWORD

APPEND, SELECT, FETCH (FLAGS, RFC822.SIZE, BODY.PEEK[HEADER], BODY[]),
SEARCH (UNSEEN, FROM, SUBJECT, OR), STORE (+FLAGS, -FLAGS, also on a
message another session expunged), COPY and EXPUNGE, on a fresh account (the default mailboxes, empty). Every mismatch
is printed to stderr; the exit status is 1 if there was any, 0 otherwise.
Run by interop/imaplib_messages_test.go.
"""

import imaplib
import re
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


def ok(res, what):
    """Checks that an imaplib call returned OK and returns its data."""
    typ, data = res
    check(typ == "OK", what + ": status", (typ, data), "OK")
    return data


def crlf(s):
    return s.replace("\n", "\r\n").encode()


MESSAGES = [
    # (flags given to APPEND, raw message)
    ("(\\Seen)", crlf(
        "From: Alice Example <alice@example.org>\n"
        "To: user@example.com\n"
        "Subject: Hello world\n"
        "Date: Mon, 1 Jan 2024 09:00:00 +0000\n"
        "Message-ID: <m1@example.org>\n"
        "\n"
        "First message.\n")),
    (None, crlf(
        "From: Bob <bob@example.net>\n"
        "To: user@example.com\n"
        "Subject: Quarterly report\n"
        "Date: Tue, 2 Jan 2024 10:30:00 +0100\n"
        "Message-ID: <m2@example.net>\n"
        "\n"
        "The numbers are in.\n" + "More text. " * 50 + "\n")),
    ("(\\Flagged)", crlf(
        "From: carol@example.com\n"
        "To: user@example.com\n"
        "Subject: hello again\n"
        "Date: Wed, 3 Jan 2024 11:00:00 -0500\n"
        "Message-ID: <m3@example.com>\n"
        "\n"
        "Case-insensitive subjects.\n")),
    ("(\\Seen \\Answered)", crlf(
        "From: Bob <bob@example.net>\n"
        "To: user@example.com\n"
        "Subject: Photos\n"
        "Date: Thu, 4 Jan 2024 12:00:00 +0000\n"
        "Message-ID: <m4@example.net>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="XYZ"\n'
        "\n"
        "--XYZ\n"
        "Content-Type: text/plain\n"
        "\n"
        "See attached.\n"
        "--XYZ\n"
        "Content-Type: image/png\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\n"
        "--XYZ--\n")),
    (None, crlf(
        "From: Dave <dave@example.org>\n"
        "To: user@example.com\n"
        "Subject: Lunch?\n"
        "Date: Fri, 5 Jan 2024 12:30:00 +0000\n"
        "Message-ID: <m5@example.org>\n"
        "\n"
        "Noon at the usual place.\n")),
]

def fetch_items(data, what):
    """Parses imaplib FETCH data into {seq: {ITEM: value}}.

    imaplib gives a literal as a (text before it, literal) tuple and the
    text after the last literal of a response as a separate bytes item.
    The pieces are joined with the literals replaced by placeholders, split
    into responses by parenthesis depth, then parsed item by item: flag
    lists become lists of strings, numbers ints, literals bytes.
    """
    literals = []
    responses = []
    cur, depth = b"", 0
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            text = item[0] + b"\x00" + str(len(literals)).encode() + b"\x00"
            literals.append(item[1])
        else:
            text = item
        cur += text
        for ch in item[0] if isinstance(item, tuple) else item:
            if ch == ord("("):
                depth += 1
            elif ch == ord(")"):
                depth -= 1
        if depth == 0:
            responses.append(cur)
            cur = b""
    check(cur == b"", what + ": unterminated FETCH response", cur)
    out = {}
    for line in responses:
        m = re.match(rb"^(\d+) \((.*)\)$", line, re.S)
        if not check(m is not None, what + ": unparsable FETCH", line):
            continue
        items = out.setdefault(int(m.group(1)), {})
        rest, pos = m.group(2), 0
        while pos < len(rest):
            while rest[pos:pos + 1] == b" ":
                pos += 1
            if pos >= len(rest):
                break
            nm = re.match(rb"([A-Z0-9.]+(?:\[[^\]]*\])?(?:<\d+>)?) ", rest[pos:])
            if not check(nm is not None, what + ": FETCH item name", rest[pos:]):
                break
            name = nm.group(1).decode()
            pos += nm.end()
            c = rest[pos:pos + 1]
            if c == b"(":
                end = rest.index(b")", pos)
                items[name] = rest[pos + 1:end].decode().split()
                pos = end + 1
            elif c == b"{":
                a = rest.index(b"\x00", pos)
                b = rest.index(b"\x00", a + 1)
                items[name] = literals[int(rest[a + 1:b])]
                pos = b + 1
            elif c == b'"':
                end = rest.index(b'"', pos + 1)
                items[name] = rest[pos + 1:end]
                pos = end + 1
            else:
                v = re.match(rb"[^ )]+", rest[pos:]).group(0)
                items[name] = int(v) if v.isdigit() else v
                pos += len(v)
    return out


def search(m, what, *criteria, uid=False):
    if uid:
        data = ok(m.uid("SEARCH", *criteria), what)
    else:
        data = ok(m.search(None, *criteria), what)
    check(len(data) == 1, what + ": one SEARCH line", data)
    return sorted(int(x) for x in data[0].split())


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    m = imaplib.IMAP4(host, port, timeout=20)
    ok(m.login(user, password), "LOGIN")

    # APPEND: each gets APPENDUID with consecutive UIDs.
    uids = []
    validity = None
    for i, (flags, raw) in enumerate(MESSAGES):
        data = ok(m.append("INBOX", flags, None, raw), "APPEND %d" % (i + 1))
        mm = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0] if data else b"")
        if check(mm is not None, "APPEND %d: APPENDUID" % (i + 1), data):
            validity = int(mm.group(1))
            uids.append(int(mm.group(2)))
    check(uids == list(range(1, len(MESSAGES) + 1)), "APPENDUID UIDs", uids, list(range(1, len(MESSAGES) + 1)))
    typ, data = m.append("NoSuchBox", None, None, MESSAGES[0][1])
    check(typ == "NO" and b"TRYCREATE" in data[0], "APPEND to a missing mailbox", (typ, data), "NO [TRYCREATE]")

    # SELECT.
    data = ok(m.select("INBOX"), "SELECT INBOX")
    check(data == [b"5"], "SELECT INBOX: EXISTS", data, [b"5"])
    _, uv = m.response("UIDVALIDITY")
    check(uv == [str(validity).encode()], "SELECT: UIDVALIDITY", uv, [str(validity).encode()])
    _, un = m.response("UNSEEN")
    check(un == [b"2"], "SELECT: first unseen", un, [b"2"])

    # FETCH FLAGS RFC822.SIZE UID.
    items = fetch_items(ok(m.fetch("1:5", "(UID FLAGS RFC822.SIZE)"), "FETCH 1:5"), "FETCH 1:5")
    check(sorted(items) == [1, 2, 3, 4, 5], "FETCH 1:5 sequence numbers", sorted(items))
    want_flags = {1: {"\\Seen"}, 2: set(), 3: {"\\Flagged"}, 4: {"\\Seen", "\\Answered"}, 5: set()}
    for seq, (flags, raw) in enumerate(MESSAGES, 1):
        it = items.get(seq, {})
        check(it.get("RFC822.SIZE") == len(raw), "RFC822.SIZE of %d" % seq, it.get("RFC822.SIZE"), len(raw))
        check(it.get("UID") == seq, "UID of %d" % seq, it.get("UID"), seq)
        got = set(it.get("FLAGS", [])) - {"\\Recent"}
        check(got == want_flags[seq], "FLAGS of %d" % seq, got, want_flags[seq])
        check("\\Recent" in it.get("FLAGS", []), "\\Recent on %d in the session that claimed it" % seq, it.get("FLAGS"))

    # BODY.PEEK[HEADER] leaves \Seen alone.
    raw2 = MESSAGES[1][1]
    header2 = raw2[:raw2.index(b"\r\n\r\n") + 4]
    items = fetch_items(ok(m.fetch("2", "(BODY.PEEK[HEADER])"), "FETCH 2 BODY.PEEK[HEADER]"), "FETCH 2 BODY.PEEK[HEADER]")
    check(items.get(2, {}).get("BODY[HEADER]") == header2, "BODY.PEEK[HEADER] of 2", items.get(2), header2)
    check("FLAGS" not in items.get(2, {}), "BODY.PEEK sends no FLAGS", items.get(2))
    items = fetch_items(ok(m.fetch("2", "(FLAGS)"), "FETCH 2 FLAGS"), "FETCH 2 FLAGS")
    check("\\Seen" not in items.get(2, {}).get("FLAGS", []), "2 still unseen after BODY.PEEK", items.get(2))

    # BODY[] returns the bytes appended and sets \Seen.
    data = ok(m.fetch("2", "(BODY[])"), "FETCH 2 BODY[]")
    items = fetch_items(data, "FETCH 2 BODY[]")
    check(items.get(2, {}).get("BODY[]") == raw2, "BODY[] of 2 is the message appended", items.get(2, {}).get("BODY[]"), raw2)
    items = fetch_items(ok(m.fetch("2", "(FLAGS)"), "FETCH 2 FLAGS"), "FETCH 2 FLAGS")
    check("\\Seen" in items.get(2, {}).get("FLAGS", []), "BODY[] set \\Seen on 2", items.get(2))
    # UID FETCH of the multipart message, whole and by part.
    items = fetch_items(ok(m.uid("FETCH", "4", "(BODY.PEEK[] BODY.PEEK[1])"), "UID FETCH 4"), "UID FETCH 4")
    check(items.get(4, {}).get("BODY[]") == MESSAGES[3][1], "UID FETCH 4 BODY[]", items.get(4, {}).get("BODY[]"), MESSAGES[3][1])
    check(items.get(4, {}).get("BODY[1]") == b"See attached.", "UID FETCH 4 BODY[1]", items.get(4, {}).get("BODY[1]"), b"See attached.")
    check(items.get(4, {}).get("UID") == 4, "UID FETCH returns UID", items.get(4))

    # SEARCH.
    got = search(m, "SEARCH UNSEEN", "UNSEEN")
    check(got == [3, 5], "SEARCH UNSEEN", got, [3, 5])
    got = search(m, "SEARCH FROM bob", "FROM", "bob")
    check(got == [2, 4], "SEARCH FROM bob", got, [2, 4])
    got = search(m, "SEARCH SUBJECT hello", "SUBJECT", "hello")
    check(got == [1, 3], "SEARCH SUBJECT hello (case-insensitive)", got, [1, 3])
    got = search(m, 'SEARCH SUBJECT "hello again"', "SUBJECT", '"hello again"')
    check(got == [3], 'SEARCH SUBJECT "hello again"', got, [3])
    got = search(m, "SEARCH OR FROM carol SUBJECT lunch", "OR", "FROM", "carol", "SUBJECT", "lunch")
    check(got == [3, 5], "SEARCH OR FROM carol SUBJECT lunch", got, [3, 5])
    got = search(m, "SEARCH FROM bob SEEN", "FROM", "bob", "SEEN")
    check(got == [2, 4], "SEARCH FROM bob SEEN", got, [2, 4])
    got = search(m, "SEARCH NOT SEEN", "NOT", "SEEN")
    check(got == [3, 5], "SEARCH NOT SEEN", got, [3, 5])
    got = search(m, "SEARCH BODY usual", "BODY", "usual")
    check(got == [5], "SEARCH BODY usual", got, [5])
    got = search(m, "UID SEARCH UNSEEN", "UNSEEN", uid=True)
    check(got == [3, 5], "UID SEARCH UNSEEN", got, [3, 5])
    got = search(m, "SEARCH nothing", "FROM", "nobody-at-all")
    check(got == [], "SEARCH with no match", got, [])

    # STORE +FLAGS / -FLAGS answer with the new flags.
    items = fetch_items(ok(m.store("5", "+FLAGS", "(\\Flagged $Work)"), "STORE 5 +FLAGS"), "STORE 5 +FLAGS")
    got = set(items.get(5, {}).get("FLAGS", [])) - {"\\Recent"}
    check(got == {"\\Flagged", "$Work"}, "STORE 5 +FLAGS answer", got, {"\\Flagged", "$Work"})
    items = fetch_items(ok(m.store("1", "-FLAGS", "(\\Seen)"), "STORE 1 -FLAGS"), "STORE 1 -FLAGS")
    got = set(items.get(1, {}).get("FLAGS", [])) - {"\\Recent"}
    check(got == set(), "STORE 1 -FLAGS answer", got, set())
    ok(m.store("3", "+FLAGS.SILENT", "(\\Seen)"), "STORE 3 +FLAGS.SILENT")
    got = search(m, "SEARCH UNSEEN after STORE", "UNSEEN")
    check(got == [1, 5], "SEARCH UNSEEN after STORE", got, [1, 5])
    got = search(m, "SEARCH FLAGGED", "FLAGGED")
    check(got == [3, 5], "SEARCH FLAGGED", got, [3, 5])
    got = search(m, "SEARCH KEYWORD $Work", "KEYWORD", "$Work")
    check(got == [5], "SEARCH KEYWORD $Work", got, [5])
    items = fetch_items(ok(m.uid("STORE", "5", "-FLAGS", "($Work)"), "UID STORE 5 -FLAGS"), "UID STORE 5 -FLAGS")
    got = set(items.get(5, {}).get("FLAGS", [])) - {"\\Recent"}
    check(got == {"\\Flagged"}, "UID STORE 5 -FLAGS answer", got, {"\\Flagged"})

    # COPY keeps flags and bytes and answers COPYUID.
    data = ok(m.copy("2:3", "Archive"), "COPY 2:3 Archive")
    mm = re.search(rb"\[COPYUID (\d+) (\S+) (\S+)\]", data[0] if data else b"")
    if check(mm is not None, "COPY: COPYUID", data):
        check(mm.group(2) == b"2:3" and mm.group(3) == b"1:2", "COPYUID sets", mm.groups(), (mm.group(1), b"2:3", b"1:2"))
    typ, data = m.copy("1", "NoSuchBox")
    check(typ == "NO" and b"TRYCREATE" in data[0], "COPY to a missing mailbox", (typ, data), "NO [TRYCREATE]")

    # EXPUNGE: \Deleted messages go, the others are renumbered.
    ok(m.store("2,4", "+FLAGS.SILENT", "(\\Deleted)"), "STORE 2,4 +FLAGS (\\Deleted)")
    data = ok(m.expunge(), "EXPUNGE")
    check(data == [b"4", b"2"] or data == [b"2", b"3"], "EXPUNGE responses", data, [b"4", b"2"])
    items = fetch_items(ok(m.fetch("1:*", "(UID)"), "FETCH 1:* UID after EXPUNGE"), "FETCH 1:* UID after EXPUNGE")
    got = {seq: it.get("UID") for seq, it in items.items()}
    check(got == {1: 1, 2: 3, 3: 5}, "sequence numbers after EXPUNGE", got, {1: 1, 2: 3, 3: 5})
    got = search(m, "SEARCH ALL after EXPUNGE", "ALL")
    check(got == [1, 2, 3], "SEARCH ALL after EXPUNGE", got, [1, 2, 3])
    got = search(m, "SEARCH FROM bob after EXPUNGE", "FROM", "bob")
    check(got == [], "SEARCH FROM bob after EXPUNGE", got, [])
    data = ok(m.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)"), "STATUS INBOX")
    check(data and b"MESSAGES 3" in data[0] and b"UIDNEXT 6" in data[0] and b"UNSEEN 2" in data[0],
          "STATUS INBOX after EXPUNGE", data, "MESSAGES 3 UIDNEXT 6 UNSEEN 2")

    # STORE on a message another session expunged, before this one is
    # told: OK, no FETCH for it, the others change (docs/multiaccess.md).
    m2 = imaplib.IMAP4(host, port, timeout=20)
    ok(m2.login(user, password), "second LOGIN")
    ok(m2.select("INBOX"), "second SELECT INBOX")
    ok(m2.uid("STORE", "3", "+FLAGS.SILENT", "(\\Deleted)"), "second UID STORE 3 +FLAGS (\\Deleted)")
    ok(m2.expunge(), "second EXPUNGE")
    m2.logout()
    # (imaplib keeps no tagged response code: only OK can be checked.)
    typ, data = m.store("2", "+FLAGS", "(\\Answered)")
    check(typ == "OK" and data == [None], "STORE on a message expunged elsewhere", (typ, data), ("OK", [None]))
    typ, data = m.store("1:3", "+FLAGS.SILENT", "(\\Answered)")
    check(typ == "OK", "STORE 1:3 with one message expunged elsewhere", (typ, data), "OK")
    ok(m.noop(), "NOOP after the other session's EXPUNGE")
    _, gone = m.response("EXPUNGE")
    check(gone == [b"2"], "NOOP reports the expunge", gone, [b"2"])
    items = fetch_items(ok(m.fetch("1:*", "(UID FLAGS)"), "FETCH 1:* after the STOREs"), "FETCH 1:* after the STOREs")
    got = {it.get("UID"): "\\Answered" in it.get("FLAGS", []) for it in items.values()}
    check(got == {1: True, 5: True}, "STORE changed the messages that remain", got, {1: True, 5: True})
    ok(m.close(), "CLOSE")

    # The copies in Archive.
    data = ok(m.select("Archive"), "SELECT Archive")
    check(data == [b"2"], "SELECT Archive: EXISTS", data, [b"2"])
    items = fetch_items(ok(m.fetch("1:2", "(UID FLAGS BODY.PEEK[])"), "FETCH Archive"), "FETCH Archive")
    for seq, (src, want_fl) in {1: (MESSAGES[1][1], {"\\Seen"}), 2: (MESSAGES[2][1], {"\\Seen", "\\Flagged"})}.items():
        it = items.get(seq, {})
        check(it.get("BODY[]") == src, "Archive %d: bytes of the copy" % seq, it.get("BODY[]"), src)
        got = set(it.get("FLAGS", [])) - {"\\Recent"}
        check(got == want_fl, "Archive %d: flags of the copy" % seq, got, want_fl)
    got = search(m, "SEARCH SUBJECT in Archive", "SUBJECT", "report")
    check(got == [1], "SEARCH SUBJECT report in Archive", got, [1])
    m.logout()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # an unexpected exception is a failure too
        import traceback
        traceback.print_exc()
        failures.append("exception: %r" % (e,))
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        sys.exit(1)
    print("imaplib message session: all %d checks passed" % checks)
