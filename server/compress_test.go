package server_test

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// bigMessage is a message of about size bytes, half text and half
// random base64-like lines.
func bigMessage(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 9))
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: big\r\n\r\n")
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for b.Len() < size {
		if r.IntN(2) == 0 {
			b.WriteString("The quick brown fox jumps over the lazy dog, again and again.\r\n")
			continue
		}
		for range 76 {
			b.WriteByte(alpha[r.IntN(64)])
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// appendSync appends msg with a synchronizing literal and returns the
// tagged response.
func appendSync(t *testing.T, c *imaptest.Conn, tag string, msg []byte) string {
	t.Helper()
	c.SendLine(fmt.Sprintf("%s APPEND INBOX {%d}", tag, len(msg)))
	if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	c.Send(string(msg) + "\r\n")
	lines := c.ReadUntilTagged(tag)
	return lines[len(lines)-1]
}

// fetchBody fetches BODY.PEEK[] of UID uid and returns the literal.
func fetchBody(t *testing.T, c *imaptest.Conn, tag string, uid int) []byte {
	t.Helper()
	c.SendLine(fmt.Sprintf("%s UID FETCH %d BODY.PEEK[]", tag, uid))
	l := c.ReadLine()
	var n int
	i := strings.LastIndexByte(l, '{')
	if i < 0 || !strings.HasSuffix(l, "}") {
		t.Fatalf("FETCH: %q", l)
	}
	fmt.Sscanf(l[i:], "{%d}", &n)
	body := make([]byte, n)
	c.NC.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c.R, body); err != nil {
		t.Fatalf("FETCH literal: %v", err)
	}
	rest := c.ReadUntilTagged(tag)
	if rest[0] != ")" || !strings.HasPrefix(rest[len(rest)-1], tag+" OK") {
		t.Fatalf("FETCH end: %q", rest)
	}
	return body
}

// RFC 4978 §3: COMPRESS DEFLATE, then everything compressed both ways;
// a second COMPRESS gets NO [COMPRESSIONACTIVE]; an unknown mechanism is
// BAD; before login it is not allowed.
func TestCompressSession(t *testing.T) {
	env := imaptest.Start(t, nil)
	pre := env.Dial(t)
	pre.ExpectTagged("a", "COMPRESS DEFLATE", "a BAD")
	c := env.DialLogin(t)
	caps := c.Cmd("c", "CAPABILITY")
	if !strings.Contains(caps[0], " COMPRESS=DEFLATE") {
		t.Fatalf("CAPABILITY: %q", caps)
	}
	c.ExpectTagged("b", "COMPRESS LZW", "b BAD")
	c.Compress("z")
	c.Expect("n", "NOOP", "n OK NOOP completed")
	c.ExpectTagged("y", "COMPRESS DEFLATE", "y NO [COMPRESSIONACTIVE]")

	// A multi-megabyte message each way, with a synchronizing literal
	// and with LITERAL+.
	msg := bigMessage(3<<20, 1)
	if got := appendSync(t, c, "a1", msg); !strings.HasPrefix(got, "a1 OK") {
		t.Fatalf("APPEND: %q", got)
	}
	c.SendLine(fmt.Sprintf("a2 APPEND INBOX {%d+}", len(msg)))
	c.Send(string(msg) + "\r\n")
	if got := c.ReadUntilTagged("a2"); !strings.HasPrefix(got[len(got)-1], "a2 OK") {
		t.Fatalf("APPEND LITERAL+: %q", got)
	}
	c.ExpectTagged("s", "SELECT INBOX", "s OK [READ-WRITE]")
	for uid := 1; uid <= 2; uid++ {
		if got := fetchBody(t, c, "f", uid); !bytes.Equal(got, msg) {
			t.Fatalf("FETCH %d: %d bytes, want %d", uid, len(got), len(msg))
		}
	}
	c.Expect("l", "LOGOUT", "* BYE Logging out", "l OK LOGOUT completed")
}

// An IDLE on a compressed connection gets an update while the client
// sends nothing: the server flushes its compressor with each response
// (and starts a fresh one after releasing it on entering IDLE).
func TestCompressIdle(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	c.Compress("z")
	c.ExpectTagged("s", "SELECT INBOX", "s OK")
	c.SendLine("i IDLE")
	if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	w := env.DialLogin(t)
	if got := appendSync(t, w, "a", []byte("Subject: hi\r\n\r\nhello\r\n")); !strings.HasPrefix(got, "a OK") {
		t.Fatal(got)
	}
	if l := c.ReadLine(); l != "* 1 EXISTS" {
		t.Fatalf("update during IDLE: %q", l)
	}
	for range 2 { // a second update, after another release
		if got := appendSync(t, w, "b", []byte("Subject: hi\r\n\r\nhello\r\n")); !strings.HasPrefix(got, "b OK") {
			t.Fatal(got)
		}
		l := c.ReadLine()
		for strings.HasPrefix(l, "* OK [HIGHESTMODSEQ") || strings.Contains(l, "RECENT") {
			l = c.ReadLine()
		}
		if !strings.HasSuffix(l, " EXISTS") {
			t.Fatalf("second update during IDLE: %q", l)
		}
	}
	c.SendLine("DONE")
	if got := c.ReadUntilTagged("i"); !strings.HasPrefix(got[len(got)-1], "i OK") {
		t.Fatalf("DONE: %q", got)
	}
}

// The cap on compressed connections: beyond it COMPRESS answers NO
// [LIMIT] and the connection goes on uncompressed; a slot comes back when
// a compressed connection ends.
func TestCompressLimit(t *testing.T) {
	env := imaptest.Start(t, func(o *server.Options) { o.MaxCompressed = 1 })
	a := env.DialLogin(t)
	a.Compress("z")
	b := env.DialLogin(t)
	b.ExpectTagged("z", "COMPRESS DEFLATE", "z NO [LIMIT]")
	b.Expect("n", "NOOP", "n OK NOOP completed")
	a.Expect("l", "LOGOUT", "* BYE Logging out", "l OK LOGOUT completed")
	for i := 0; ; i++ {
		got := b.Cmd("y", "COMPRESS DEFLATE")
		if strings.HasPrefix(got[len(got)-1], "y OK") {
			break
		}
		if i > 200 {
			t.Fatalf("the slot did not come back: %q", got)
		}
		time.Sleep(10 * time.Millisecond) // the ended connection's goroutine gives it back
	}
}

// Compression bombs: a small compressed input that inflates to a line or
// a literal beyond the limits gets the usual answer (BAD or NO [TOOBIG],
// then BYE), and the server's memory stays bounded.
func TestCompressBomb(t *testing.T) {
	env := imaptest.Start(t, nil)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// A literal announced at 1 GB (LITERAL+): fatal, BYE.
	c := env.DialLogin(t)
	c.Compress("z")
	var zeros bytes.Buffer
	zw, _ := flate.NewWriter(&zeros, 9)
	zw.Write([]byte("a APPEND INBOX {1000000000+}\r\n"))
	chunk := make([]byte, 1<<20)
	for range 200 { // 200 MB of zeros: about 200 KB compressed
		zw.Write(chunk)
	}
	zw.Flush()
	nc := rawConn(c)
	nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
	go nc.Write(zeros.Bytes()) // the server may stop reading
	got := c.ReadUntilTagged("a")
	if !strings.HasPrefix(got[len(got)-1], "a NO [TOOBIG]") {
		t.Fatalf("bomb literal: %q", got)
	}
	c.ExpectEOF(10 * time.Second)

	// A line of 200 MB without CRLF: BAD, then BYE.
	d := env.DialLogin(t)
	d.Compress("z")
	var line bytes.Buffer
	zw.Reset(&line)
	zw.Write([]byte("b NOOP "))
	aa := bytes.Repeat([]byte("a"), 1<<20)
	for range 200 {
		zw.Write(aa)
	}
	zw.Flush()
	nd := rawConn(d)
	nd.SetWriteDeadline(time.Now().Add(20 * time.Second))
	go nd.Write(line.Bytes())
	d.ExpectEOF(10 * time.Second)

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 64<<20 {
		t.Errorf("heap grew by %d MB after the bombs", grow>>20)
	}
	// The server is still there.
	e := env.DialLogin(t)
	e.Expect("n", "NOOP", "n OK NOOP completed")
}

// rawConn is the socket under a compressed test connection.
func rawConn(c *imaptest.Conn) interface {
	Write([]byte) (int, error)
	SetWriteDeadline(time.Time) error
} {
	return c.RawConn()
}

// The compressor is released when the connection idles and on entering
// IDLE: a compressed connection in IDLE holds none.
func TestCompressIdleMemory(t *testing.T) {
	const n = 200
	env := imaptest.Start(t, nil)
	var conns []*imaptest.Conn
	for range n {
		c := env.DialLogin(t)
		c.Compress("z")
		c.ExpectTagged("s", "SELECT INBOX", "s OK")
		c.SendLine("i IDLE")
		if l := c.ReadLine(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("IDLE: %q", l)
		}
		conns = append(conns, c)
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	runtime.GC() // twice: pooled compressors survive one collection
	runtime.GC()
	metrics.Read(s)
	per := int64(s[0].Value.Uint64()) / n
	t.Logf("heap per idle compressed connection (upper bound: the whole heap / %d): %d bytes", n, per)
	if per > 256<<10 {
		t.Errorf("%d bytes of heap per idle compressed connection: compressors are held", per)
	}
	for _, c := range conns {
		c.SendLine("DONE")
		c.ReadUntilTagged("i")
	}
}
