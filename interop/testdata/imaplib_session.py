#!/usr/bin/env python3
"""An IMAP session through Python's imaplib against a quickimap server.

Usage: imaplib_session.py HOST PORT USER PASSWORD

The account must be fresh (the default mailboxes only). Every mismatch is
printed to stderr; the exit status is 1 if there was any, 0 otherwise.
Run by interop/imaplib_test.go.
"""

import imaplib
import re
import sys

failures = []


def check(cond, what, got=None, want=None):
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
    check(typ == "OK", what + ": status", typ, "OK")
    return data


LIST_RE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?P<delim>"[^"]*"|NIL) (?P<name>.+)$')


def parse_list(data, what):
    """Returns {name: set(lower-case attributes)} from LIST/LSUB data."""
    out = {}
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):  # a literal name
            check(False, what + ": unexpected literal in LIST response", item)
            continue
        m = LIST_RE.match(item)
        if not check(m is not None, what + ": unparsable line", item):
            continue
        check(m.group("delim") == b'"/"', what + ": delimiter", m.group("delim"), b'"/"')
        name = m.group("name")
        if name.startswith(b'"') and name.endswith(b'"'):
            name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        name = name.decode()
        check(name not in out, what + ": %s listed twice" % name)
        attrs = {a.lower() for a in m.group("attrs").decode().split()}
        out[name] = attrs
    return out


def status_map(data, what):
    """Parses 'NAME (K V K V ...)' into (name, {K: int})."""
    check(len(data) == 1, what + ": one STATUS line", data)
    m = re.match(rb'^(?P<name>"[^"]*"|\S+) \((?P<items>[^)]*)\)$', data[0])
    if not check(m is not None, what + ": unparsable STATUS", data[0]):
        return None, {}
    it = m.group("items").decode().split()
    return m.group("name").decode().strip('"'), {it[i]: int(it[i + 1]) for i in range(0, len(it), 2)}


DEFAULTS = {
    "INBOX": None,
    "Archive": "\\archive",
    "Drafts": "\\drafts",
    "Junk": "\\junk",
    "Sent": "\\sent",
    "Trash": "\\trash",
}
SPECIAL = {v for v in DEFAULTS.values() if v}


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

    # A wrong password is refused with an error, the connection stays.
    m = imaplib.IMAP4(host, port, timeout=20)
    check(m.state == "NONAUTH", "state after greeting", m.state, "NONAUTH")
    check("IMAP4REV1" in m.capabilities, "IMAP4rev1 in capabilities", m.capabilities)
    check("AUTH=PLAIN" in m.capabilities, "AUTH=PLAIN in capabilities", m.capabilities)
    try:
        m.login(user, password + "x")
        check(False, "LOGIN with a wrong password succeeded")
    except imaplib.IMAP4.error as e:
        check("AUTHENTICATIONFAILED" in str(e), "wrong password error", str(e), "[AUTHENTICATIONFAILED] ...")
    ok(m.noop(), "NOOP after failed LOGIN")
    m.logout()

    m = imaplib.IMAP4(host, port, timeout=20)
    typ, data = m.login(user, password)
    check(typ == "OK", "LOGIN", (typ, data), "OK")
    check(m.state == "AUTH", "state after LOGIN", m.state, "AUTH")
    caps = ok(m.capability(), "CAPABILITY")[0].decode().split()
    for c in ("IMAP4rev1", "NAMESPACE", "UNSELECT", "SPECIAL-USE", "LIST-EXTENDED", "CHILDREN"):
        check(c in caps, "capability %s after LOGIN" % c, caps)

    # LIST of the defaults.
    boxes = parse_list(ok(m.list(), "LIST"), "LIST")
    check(sorted(boxes) == sorted(DEFAULTS), "LIST names", sorted(boxes), sorted(DEFAULTS))
    for name, su in DEFAULTS.items():
        attrs = boxes.get(name, set())
        check("\\hasnochildren" in attrs, "%s has \\HasNoChildren" % name, attrs)
        want = {su} if su else set()
        check(attrs & SPECIAL == want, "%s special-use" % name, attrs & SPECIAL, want)
    boxes = parse_list(ok(m.list('""', "%"), 'LIST "" %'), 'LIST "" %')
    check(sorted(boxes) == sorted(DEFAULTS), 'LIST "" % names', sorted(boxes), sorted(DEFAULTS))

    # CREATE, nested, with a space and with a modified UTF-7 name.
    for name in ("Projects/2024/Q1", '"My Folder"', "Entw&APw-rfe"):
        ok(m.create(name), "CREATE " + name)
    typ, data = m.create("Projects")
    check(typ == "NO" and b"ALREADYEXISTS" in data[0], "CREATE Projects (exists)", (typ, data), "NO [ALREADYEXISTS]")
    boxes = parse_list(ok(m.list('""', "*"), "LIST after CREATE"), "LIST after CREATE")
    want = sorted(list(DEFAULTS) + ["Projects", "Projects/2024", "Projects/2024/Q1", "My Folder", "Entw&APw-rfe"])
    check(sorted(boxes) == want, "LIST after CREATE", sorted(boxes), want)
    check("\\haschildren" in boxes.get("Projects", set()), "Projects has \\HasChildren", boxes.get("Projects"))
    check("\\hasnochildren" in boxes.get("Projects/2024/Q1", set()), "Q1 has \\HasNoChildren", boxes.get("Projects/2024/Q1"))
    boxes = parse_list(ok(m.list("Projects/", "%"), 'LIST "Projects/" %'), 'LIST "Projects/" %')
    check(sorted(boxes) == ["Projects/2024"], 'LIST "Projects/" %', sorted(boxes), ["Projects/2024"])

    # RENAME moves children.
    ok(m.rename("Projects/2024", "Archive/2024"), "RENAME Projects/2024 Archive/2024")
    boxes = parse_list(ok(m.list('""', "*"), "LIST after RENAME"), "LIST after RENAME")
    want = sorted(list(DEFAULTS) + ["Projects", "Archive/2024", "Archive/2024/Q1", "My Folder", "Entw&APw-rfe"])
    check(sorted(boxes) == want, "LIST after RENAME", sorted(boxes), want)
    check({"\\haschildren", "\\archive"} <= boxes.get("Archive", set()), "Archive attributes after RENAME", boxes.get("Archive"))
    typ, data = m.rename("Nope", "Nope2")
    check(typ == "NO" and b"NONEXISTENT" in data[0], "RENAME Nope", (typ, data), "NO [NONEXISTENT]")

    # DELETE.
    ok(m.delete('"My Folder"'), "DELETE My Folder")
    ok(m.delete("Archive/2024/Q1"), "DELETE Archive/2024/Q1")
    ok(m.delete("Archive/2024"), "DELETE Archive/2024")
    typ, data = m.delete("INBOX")
    check(typ == "NO", "DELETE INBOX", (typ, data), "NO")
    boxes = parse_list(ok(m.list('""', "*"), "LIST after DELETE"), "LIST after DELETE")
    want = sorted(list(DEFAULTS) + ["Projects", "Entw&APw-rfe"])
    check(sorted(boxes) == want, "LIST after DELETE", sorted(boxes), want)

    # SUBSCRIBE / LSUB / UNSUBSCRIBE.
    subs = parse_list(ok(m.lsub('""', "*"), "LSUB"), "LSUB")
    check(sorted(subs) == sorted(DEFAULTS), "LSUB initial", sorted(subs), sorted(DEFAULTS))
    ok(m.subscribe("Projects"), "SUBSCRIBE Projects")
    ok(m.subscribe("Entw&APw-rfe"), "SUBSCRIBE Entw&APw-rfe")
    ok(m.unsubscribe("Junk"), "UNSUBSCRIBE Junk")
    subs = parse_list(ok(m.lsub('""', "*"), "LSUB after SUBSCRIBE"), "LSUB after SUBSCRIBE")
    want = sorted(["INBOX", "Archive", "Drafts", "Sent", "Trash", "Projects", "Entw&APw-rfe"])
    check(sorted(subs) == want, "LSUB after SUBSCRIBE", sorted(subs), want)
    subs = parse_list(ok(m.lsub('""', "P%"), 'LSUB "" P%'), 'LSUB "" P%')
    check(sorted(subs) == ["Projects"], 'LSUB "" P%', sorted(subs), ["Projects"])
    ok(m.unsubscribe("Projects"), "UNSUBSCRIBE Projects")
    ok(m.unsubscribe("Entw&APw-rfe"), "UNSUBSCRIBE Entw&APw-rfe")
    ok(m.subscribe("Junk"), "SUBSCRIBE Junk")
    subs = parse_list(ok(m.lsub(), "LSUB restored"), "LSUB restored")
    check(sorted(subs) == sorted(DEFAULTS), "LSUB restored", sorted(subs), sorted(DEFAULTS))

    # STATUS.
    name, st = status_map(ok(m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS INBOX"), "STATUS INBOX")
    check(name == "INBOX", "STATUS mailbox name", name, "INBOX")
    want = {"MESSAGES": 0, "RECENT": 0, "UIDNEXT": 1, "UNSEEN": 0}
    check({k: st.get(k) for k in want} == want, "STATUS INBOX counters", st, want)
    validity = st.get("UIDVALIDITY", 0)
    check(validity > 0, "STATUS INBOX UIDVALIDITY non-zero", validity)
    typ, data = m.status("Nope", "(MESSAGES)")
    check(typ == "NO" and b"NONEXISTENT" in data[0], "STATUS Nope", (typ, data), "NO [NONEXISTENT]")

    # SELECT and EXAMINE.
    data = ok(m.select("INBOX"), "SELECT INBOX")
    check(data == [b"0"], "SELECT INBOX EXISTS", data, [b"0"])
    check(m.state == "SELECTED", "state after SELECT", m.state, "SELECTED")
    typ, uv = m.response("UIDVALIDITY")
    check(uv == [str(validity).encode()], "SELECT UIDVALIDITY equals STATUS", uv, [str(validity).encode()])
    typ, un = m.response("UIDNEXT")
    check(un == [b"1"], "SELECT UIDNEXT", un, [b"1"])
    check("READ-WRITE" in m.untagged_responses, "SELECT [READ-WRITE]", sorted(m.untagged_responses))
    ok(m.check(), "CHECK")
    data = ok(m.select("Projects", readonly=True), "EXAMINE Projects")
    check(data == [b"0"], "EXAMINE Projects EXISTS", data, [b"0"])
    check("READ-ONLY" in m.untagged_responses, "EXAMINE [READ-ONLY]", sorted(m.untagged_responses))
    typ, pf = m.response("PERMANENTFLAGS")
    check(pf == [b"()"], "EXAMINE PERMANENTFLAGS", pf, [b"()"])
    typ, uv = m.response("UIDVALIDITY")
    check(uv and uv[0] and int(uv[0]) > 0, "EXAMINE UIDVALIDITY non-zero", uv)
    ok(m.unselect(), "UNSELECT")
    check(m.state == "AUTH", "state after UNSELECT", m.state, "AUTH")
    typ, data = m.select("Nope")
    check(typ == "NO" and b"NONEXISTENT" in data[0], "SELECT Nope", (typ, data), "NO [NONEXISTENT]")

    # NAMESPACE.
    data = ok(m.namespace(), "NAMESPACE")
    check(data == [b'(("" "/")) NIL NIL'], "NAMESPACE", data, [b'(("" "/")) NIL NIL'])

    # Clean up and LOGOUT.
    ok(m.delete("Projects"), "DELETE Projects")
    ok(m.delete("Entw&APw-rfe"), "DELETE Entw&APw-rfe")
    boxes = parse_list(ok(m.list(), "final LIST"), "final LIST")
    check(sorted(boxes) == sorted(DEFAULTS), "final LIST", sorted(boxes), sorted(DEFAULTS))
    typ, data = m.logout()
    check(typ == "BYE", "LOGOUT", (typ, data), "BYE")

    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("imaplib session ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
