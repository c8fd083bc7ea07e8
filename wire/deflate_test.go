package wire

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// segments returns n IMAP-like command bursts of varied sizes.
func segments(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]byte, n)
	for i := range out {
		var b bytes.Buffer
		fmt.Fprintf(&b, "a%d UID FETCH 1:%d (FLAGS)\r\n", i, r.IntN(1000))
		if i%3 == 0 { // a literal, partly random (hardly compressible)
			lit := make([]byte, r.IntN(70000))
			for j := range lit {
				if j%5 == 0 {
					lit[j] = byte(r.IntN(256))
				} else {
					lit[j] = "abc \r\n"[r.IntN(6)]
				}
			}
			fmt.Fprintf(&b, "b%d APPEND INBOX {%d+}\r\n", i, len(lit))
			b.Write(lit)
			b.WriteString("\r\n")
		}
		out[i] = b.Bytes()
	}
	return out
}

// readAll reads z until ErrNeedInput.
func readAll(t *testing.T, z *Inflater, bufSize int) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, bufSize)
	for {
		n, err := z.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, ErrNeedInput) {
			return got
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
}

// checkStream feeds the compressed bursts in chunks of the sizes chunk
// picks, and checks that once a burst is fed, everything in it (and
// nothing more) reads back without more input: the property a server
// needs to answer a client that waits.
func checkStream(t *testing.T, bursts [][]byte, plain [][]byte, chunk func() int, bufSize int) {
	t.Helper()
	var z Inflater
	var total int64
	for i, c := range bursts {
		var got []byte
		for len(c) > 0 {
			k := min(chunk(), len(c))
			if err := z.Feed(c[:k]); err != nil {
				t.Fatal(err)
			}
			c = c[k:]
			got = append(got, readAll(t, &z, bufSize)...)
			if len(c) == 0 && z.Deferred() {
				// The peer pauses after its burst.
				z.Force()
				got = append(got, readAll(t, &z, bufSize)...)
			}
			if i%2 == 0 && z.Idle() {
				z.Release() // as an idling connection does
			}
		}
		if !bytes.Equal(got, plain[i]) {
			t.Fatalf("burst %d: got %d bytes, want %d (first difference at %d)", i, len(got), len(plain[i]), firstDiff(got, plain[i]))
		}
		total += int64(len(plain[i]))
	}
	// Blocks that arrive a byte at a time are decoded again from their
	// start only as the input grows by an eighth: the work stays a small
	// multiple of the data.
	if z.Decoded > 4*total+(64<<10) {
		t.Errorf("decoded %d bytes for %d", z.Decoded, total)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// compressSync compresses each burst with Go's compress/flate and a sync
// flush after it.
func compressSync(t *testing.T, plain [][]byte) [][]byte {
	t.Helper()
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, 6)
	if err != nil {
		t.Fatal(err)
	}
	var bursts [][]byte
	for _, p := range plain {
		w.Write(p)
		w.Flush()
		bursts = append(bursts, bytes.Clone(out.Bytes()))
		out.Reset()
	}
	return bursts
}

func TestInflaterSyncFlush(t *testing.T) {
	plain := segments(20, 1)
	bursts := compressSync(t, plain)
	r := rand.New(rand.NewPCG(2, 2))
	for _, tc := range []struct {
		name  string
		chunk func() int
		buf   int
	}{
		{"whole", func() int { return 1 << 30 }, 4096},
		{"1 byte", func() int { return 1 }, 4096},
		{"random", func() int { return 1 + r.IntN(3000) }, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkStream(t, bursts, plain, tc.chunk, tc.buf)
		})
	}
}

// zlibBursts runs Python's zlib (raw deflate, wbits=-15) over the bursts
// with the given flush mode after each; it skips the test without
// python3.
func zlibBursts(t *testing.T, plain [][]byte, mode string, level int) [][]byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("INTEROP_REQUIRE") == "1" {
			t.Fatal("python3 not found")
		}
		t.Skip("python3 not found: the zlib flush modes are tested against Python's zlib")
	}
	// Input: 4-byte big-endian length + burst, repeated; output the
	// same framing around each compressed burst.
	script := `
import sys, zlib, struct
mode = getattr(zlib, sys.argv[1])
c = zlib.compressobj(int(sys.argv[2]), zlib.DEFLATED, -15)
data = sys.stdin.buffer.read()
out = sys.stdout.buffer
i = 0
while i < len(data):
    n = struct.unpack(">I", data[i:i+4])[0]
    b = c.compress(data[i+4:i+4+n]) + c.flush(mode)
    out.write(struct.pack(">I", len(b)) + b)
    i += 4 + n
`
	var in bytes.Buffer
	for _, p := range plain {
		in.Write([]byte{byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))})
		in.Write(p)
	}
	cmd := exec.Command(py, "-c", script, mode, strconv.Itoa(level))
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 zlib: %v", err)
	}
	var bursts [][]byte
	for len(out) > 0 {
		n := int(out[0])<<24 | int(out[1])<<16 | int(out[2])<<8 | int(out[3])
		bursts = append(bursts, out[4:4+n])
		out = out[4+n:]
	}
	return bursts
}

// Every zlib flush mode a client uses: Z_SYNC_FLUSH (Thunderbird
// desktop, JavaMail), Z_PARTIAL_FLUSH (Thunderbird for Android, neomutt,
// Mail::IMAPClient: the block end is not byte-aligned), Z_FULL_FLUSH.
func TestInflaterZlibFlushModes(t *testing.T) {
	plain := segments(12, 3)
	for _, mode := range []string{"Z_SYNC_FLUSH", "Z_PARTIAL_FLUSH", "Z_FULL_FLUSH", "Z_PARTIAL_FLUSH 1", "Z_SYNC_FLUSH 9"} {
		t.Run(mode, func(t *testing.T) {
			level := 6
			if m, l, ok := strings.Cut(mode, " "); ok {
				mode, level = m, int(l[0]-'0')
			}
			bursts := zlibBursts(t, plain, mode, level)
			r := rand.New(rand.NewPCG(4, 4))
			checkStream(t, bursts, plain, func() int { return 1 << 30 }, 4096)
			checkStream(t, bursts, plain, func() int { return 1 + r.IntN(500) }, 100)
		})
	}
}

func TestInflaterErrors(t *testing.T) {
	var z Inflater
	if n, err := z.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ErrNeedInput) {
		t.Fatalf("empty: %d, %v", n, err)
	}
	// A stored block header that says 5 bytes but its complement is
	// wrong: corrupt, and it stays so.
	z.Feed([]byte{0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'})
	if _, err := z.Read(make([]byte, 10)); err == nil || errors.Is(err, ErrNeedInput) {
		t.Fatalf("corrupt stream: %v", err)
	}
	if _, err := z.Read(make([]byte, 10)); err == nil || errors.Is(err, ErrNeedInput) {
		t.Fatalf("corrupt stream, again: %v", err)
	}
	// A final block ends the stream: io.EOF after its data.
	var f bytes.Buffer
	w, _ := flate.NewWriter(&f, 1)
	w.Write([]byte("bye\r\n"))
	w.Close()
	z = Inflater{}
	z.Feed(f.Bytes())
	got, err := io.ReadAll(readerFunc(func(p []byte) (int, error) {
		n, err := z.Read(p)
		if errors.Is(err, ErrNeedInput) {
			t.Fatal("final block: need input")
		}
		return n, err
	}))
	if err != nil || string(got) != "bye\r\n" {
		t.Fatalf("final block: %q, %v", got, err)
	}
	// A block that never ends is bounded.
	z = Inflater{MaxBlock: 1000}
	stored := append([]byte{0x00, 0xff, 0xff, 0x00, 0x00}, make([]byte, 900)...)
	if err := z.Feed(stored); err != nil {
		t.Fatal(err)
	}
	readAll(t, &z, 4096)
	if err := z.Feed(make([]byte, 200)); err == nil {
		t.Fatal("a block over MaxBlock was accepted")
	}
	if b := z.FeedBuffer(200); len(b) != 200 {
		t.Fatalf("FeedBuffer: %d", len(b))
	}
	if err := z.Fed(200); err == nil {
		t.Fatal("a block over MaxBlock was accepted through Fed")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// A Deflater releases its compressor between bursts and takes a fresh
// one: the stream stays one valid raw DEFLATE stream, for Go's inflater
// and for zlib's.
func TestDeflaterRelease(t *testing.T) {
	pool := NewDeflatePool(5)
	var out bytes.Buffer
	d := NewDeflater(&out, pool)
	plain := segments(10, 5)
	var want []byte
	for i, p := range plain {
		if _, err := d.Write(p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := d.Release(); err != nil || d.Holding() {
				t.Fatalf("Release: %v, holding %v", err, d.Holding())
			}
		}
	}
	if err := d.Flush(); err != nil { // nothing written: no bytes
		t.Fatal(err)
	}
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(out.Bytes())))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) { // no final block
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Go inflate: %d bytes, want %d", len(got), len(want))
	}
	if py, err := exec.LookPath("python3"); err == nil {
		cmd := exec.Command(py, "-c", `import sys, zlib
d = zlib.decompressobj(-15)
sys.stdout.buffer.write(d.decompress(sys.stdin.buffer.read()))`)
		cmd.Stdin = bytes.NewReader(out.Bytes())
		zout, err := cmd.Output()
		if err != nil || !bytes.Equal(zout, want) {
			t.Fatalf("zlib inflate: %d bytes, %v; want %d", len(zout), err, len(want))
		}
	} else if os.Getenv("INTEROP_REQUIRE") == "1" {
		t.Fatal("python3 not found")
	}
	if !strings.HasPrefix(string(want), "a0 ") {
		t.Fatal("test data")
	}
}

// mailLike is about n bytes of what a server sends when a client
// downloads mail: FETCH responses around messages of headers, English-like
// text and a base64 attachment.
func mailLike(n int) []byte {
	r := rand.New(rand.NewPCG(11, 11))
	words := strings.Fields("the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part")
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		var m bytes.Buffer
		fmt.Fprintf(&m, "Return-Path: <user%d@example.org>\r\nReceived: from mx%d.example.net by mail.example.org with ESMTPS id %x\r\nFrom: User %d <user%d@example.org>\r\nTo: reader@example.org\r\nSubject: Re: meeting notes %d\r\nDate: Mon, 1 Dec 2026 10:%02d:00 +0000\r\nMessage-ID: <%x@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
			i%50, i%7, r.Uint64(), i%50, i%50, i, i%60, r.Uint64(), i, i)
		for l := 0; l < 20+r.IntN(60); l++ {
			for w := 0; w < 12; w++ {
				m.WriteString(words[r.IntN(len(words))])
				m.WriteByte(' ')
			}
			m.WriteString("\r\n")
		}
		if i%3 == 0 {
			fmt.Fprintf(&m, "--b%d\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n", i)
			for l := 0; l < 50+r.IntN(400); l++ {
				for range 76 {
					m.WriteByte(b64[r.IntN(64)])
				}
				m.WriteString("\r\n")
			}
		}
		fmt.Fprintf(&m, "--b%d--\r\n", i)
		fmt.Fprintf(&b, "* %d FETCH (UID %d FLAGS (\\Seen) BODY[] {%d}\r\n", i+1, i+1, m.Len())
		b.Write(m.Bytes())
		b.WriteString(")\r\n")
	}
	return b.Bytes()
}

// BenchmarkDeflate is the CPU a compressed connection spends per byte
// sent, at each level, in bursts of 64 KiB each ending with a sync flush
// (b.SetBytes: MB/s is of uncompressed bytes).
func BenchmarkDeflate(b *testing.B) {
	data := mailLike(4 << 20)
	for _, level := range []int{1, 5, 9} {
		b.Run(fmt.Sprintf("level%d", level), func(b *testing.B) {
			var out countWriter
			d := NewDeflater(&out, NewDeflatePool(level))
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				for p := data; len(p) > 0; {
					k := min(len(p), 64<<10)
					d.Write(p[:k])
					d.Flush()
					p = p[k:]
				}
			}
			b.ReportMetric(float64(out.n)/float64(b.N)/float64(len(data)), "ratio")
		})
	}
}

// BenchmarkInflate is the CPU of reading what a client compressed, in
// 4 KiB reads as they come off a socket.
func BenchmarkInflate(b *testing.B) {
	data := mailLike(4 << 20)
	var comp bytes.Buffer
	w, _ := flate.NewWriter(&comp, 6)
	for p := data; len(p) > 0; {
		k := min(len(p), 64<<10)
		w.Write(p[:k])
		w.Flush()
		p = p[k:]
	}
	in := comp.Bytes()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var z Inflater
		for p := in; len(p) > 0; {
			k := min(len(p), 4096)
			z.Feed(p[:k])
			p = p[k:]
			for {
				if _, err := z.Read(buf); err != nil {
					break
				}
			}
		}
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
