#!/usr/bin/env python3
"""COMPRESS=DEFLATE (RFC 4978) with Python's zlib (raw deflate, wbits=-15).

Usage: QI_ZMODE=MODE compress_zlib.py HOST PORT USER PASSWORD

MODE is the flush zlib ends each command with: Z_SYNC_FLUSH,
Z_PARTIAL_FLUSH or Z_FULL_FLUSH. The session: LOGIN, COMPRESS, a 3 MB
APPEND (synchronizing literal, the continuation read compressed), FETCH
of it compared byte for byte, an IDLE that receives an update made by a
second, uncompressed connection while this one sends nothing, pauses
between commands long enough for the server to release its compressor
(every response after them comes from a fresh one: the stream must still
inflate), DONE, LOGOUT. Prints "ok" lines and exits non-zero on the
first mismatch. Run by interop/compress_test.go.
"""
import os
import random
import socket
import sys
import time
import zlib

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
mode = os.environ["QI_ZMODE"]
FLUSH = getattr(zlib, mode)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


class Conn:
    def __init__(self):
        self.s = socket.create_connection((host, port), timeout=30)
        self.buf = b""
        self.comp = None
        self.decomp = None

    def send(self, data):
        if self.comp:
            data = self.comp.compress(data) + self.comp.flush(FLUSH)
        self.s.sendall(data)

    def fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            fail("connection closed")
        if self.decomp:
            chunk = self.decomp.decompress(chunk)
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode("latin-1")

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        b, self.buf = self.buf[:n], self.buf[n:]
        return b

    def until(self, tag):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag + " "):
                return lines

    def cmd(self, tag, text):
        self.send((tag + " " + text + "\r\n").encode())
        lines = self.until(tag)
        if not lines[-1].startswith(tag + " OK"):
            fail("%s %s: %r" % (tag, text, lines))
        return lines


def login():
    c = Conn()
    c.line()
    c.cmd("l", "LOGIN %s %s" % (user, password))
    return c


c = login()
caps = c.cmd("c", "CAPABILITY")[0]
if "COMPRESS=DEFLATE" not in caps.split():
    fail("no COMPRESS=DEFLATE in %r" % caps)
c.send(b"z COMPRESS DEFLATE\r\n")
l = c.line()
if not l.startswith("z OK"):
    fail("COMPRESS: %r" % l)
if c.buf:
    fail("bytes after the tagged OK before compression: %r" % c.buf)
c.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
c.decomp = zlib.decompressobj(-15)
print("ok compression on,", mode)
c.cmd("n", "NOOP")

rnd = random.Random(5)
alpha = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
parts = [b"From: py@example.org\r\nTo: b@example.org\r\nSubject: big\r\n\r\n"]
size = 0
while size < 3_000_000:
    if rnd.random() < 0.5:
        p = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    else:
        p = bytes(rnd.choice(alpha) for _ in range(76)) + b"\r\n"
    parts.append(p)
    size += len(p)
msg = b"".join(parts)

c.send(b"a APPEND INBOX {%d}\r\n" % len(msg))
l = c.line()
if not l.startswith("+"):
    fail("APPEND continuation: %r" % l)
c.send(msg + b"\r\n")
l = c.until("a")[-1]
if not l.startswith("a OK"):
    fail("APPEND: %r" % l)
print("ok APPEND of", len(msg), "bytes")

time.sleep(0.3)  # idle: the server releases its compressor
c.cmd("s", "SELECT INBOX")
c.send(b"f UID FETCH 1:* BODY.PEEK[]\r\n")
l = c.line()
if not l.endswith("{%d}" % len(msg)):
    fail("FETCH: %r" % l)
body = c.exact(len(msg))
if body != msg:
    fail("FETCH body differs")
rest = c.until("f")
if rest[0] != ")" or not rest[-1].startswith("f OK"):
    fail("FETCH end: %r" % rest)
print("ok FETCH byte for byte")

c.send(b"i IDLE\r\n")
l = c.line()
if not l.startswith("+"):
    fail("IDLE: %r" % l)
time.sleep(0.3)
o = login()
m = b"Subject: update\r\n\r\nhello\r\n"
o.send(b"b APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n")
l = o.until("b")[-1]
if not l.startswith("b OK"):
    fail("second APPEND: %r" % l)
l = c.line()
if not (l.startswith("* ") and l.endswith(" EXISTS")):
    fail("update during IDLE: %r" % l)
print("ok IDLE got", l, "while the client sent nothing")
c.send(b"DONE\r\n")
c.until("i")
time.sleep(0.3)
c.cmd("n2", "NOOP")
c.send(b"q LOGOUT\r\n")
c.until("q")
print("ok LOGOUT")
