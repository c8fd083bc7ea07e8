package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// writeRecorder records each Write it receives.
type writeRecorder struct {
	writes []string
	err    error
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestPooledEncoder(t *testing.T) {
	pool := NewWriterPool(16)
	var dst writeRecorder
	e := NewPooledEncoder(&dst, pool)
	if e.Buffered() != 0 || e.w != nil {
		t.Fatalf("a new pooled Encoder holds a buffer")
	}
	e.Star().Atom("OK").SP().Text("one").CRLF()
	if e.w == nil || e.Buffered() != len("* OK one\r\n") {
		t.Fatalf("after a write: buffer %v, %d bytes buffered", e.w != nil, e.Buffered())
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if e.w != nil || e.Buffered() != 0 {
		t.Fatalf("Flush kept the buffer")
	}
	// Longer than the buffer: written through in pieces, then flushed.
	e.Tag("a1").Atom("OK").SP().Text(strings.Repeat("x", 40)).CRLF()
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(dst.writes, ""), "* OK one\r\na1 OK "+strings.Repeat("x", 40)+"\r\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	// Flushing with nothing written writes nothing.
	n := len(dst.writes)
	if err := e.Flush(); err != nil || len(dst.writes) != n {
		t.Errorf("empty Flush: %v, %d writes", err, len(dst.writes)-n)
	}
	// A buffer given back does not point at its last destination.
	w := pool.get(nil)
	if w.Buffered() != 0 || w.Available() != 16 {
		t.Errorf("pooled buffer: %d buffered, %d available", w.Buffered(), w.Available())
	}
}

func TestPooledEncoderError(t *testing.T) {
	pool := NewWriterPool(16)
	boom := errors.New("boom")
	dst := writeRecorder{err: boom}
	e := NewPooledEncoder(&dst, pool)
	e.Star().Atom("OK").CRLF()
	if err := e.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want %v", err, boom)
	}
	if e.w != nil {
		t.Errorf("Flush kept the buffer after an error")
	}
	// The error sticks; nothing more is written.
	dst.err = nil
	e.Star().Atom("OK").CRLF()
	if err := e.Flush(); !errors.Is(err, boom) || len(dst.writes) != 0 {
		t.Errorf("after the error: %v, writes %q", err, dst.writes)
	}
}

func TestDecoderReset(t *testing.T) {
	// One stream read through two buffers in turn, as a connection that
	// gives its buffer back between commands does.
	src := &chunkReader{chunks: []string{"a1 NOOP\r\n", "a2 " + strings.Repeat("x", 2000) + "\r\n"}}
	r1 := bufio.NewReaderSize(src, 16)
	d := NewDecoder(r1, Limits{})
	d.Begin()
	if tag, err := d.Tag(); err != nil || tag != "a1" {
		t.Fatalf("Tag: %q, %v", tag, err)
	}
	if line, err := d.Line(); err != nil || line != " NOOP" {
		t.Fatalf("Line: %q, %v", line, err)
	}
	if r1.Buffered() != 0 {
		t.Fatalf("%d bytes left in the first buffer", r1.Buffered())
	}
	r2 := bufio.NewReaderSize(src, 16)
	d.Reset(r2)
	d.Begin()
	if tag, err := d.Tag(); err != nil || tag != "a2" {
		t.Fatalf("Tag after Reset: %q, %v", tag, err)
	}
	line, err := d.Line()
	if err != nil || line != " "+strings.Repeat("x", 2000) {
		t.Fatalf("Line after Reset: %d bytes, %v", len(line), err)
	}
	if cap(d.buf) <= maxKeptScratch {
		t.Fatalf("the scratch buffer did not grow (%d): the test reads no long token", cap(d.buf))
	}
	d.Reset(nil)
	if cap(d.buf) > maxKeptScratch {
		t.Errorf("Reset kept a %d-byte scratch buffer", cap(d.buf))
	}
}

// chunkReader returns at most one chunk per Read, as a socket returns
// what the peer has sent so far.
type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// A quoted string or a literal from a reader as the first write after a
// Flush borrows a buffer like any other write.
func TestPooledEncoderStrings(t *testing.T) {
	pool := NewWriterPool(16)
	var dst writeRecorder
	e := NewPooledEncoder(&dst, pool)
	e.String("short")
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	e.String(`a "quoted" one`)
	e.Flush()
	e.LiteralFrom(strings.NewReader("0123456789abcdefghij0123456789"), 5, 20, make([]byte, 7))
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(dst.writes, ""), `"short""a \"quoted\" one"{20}`+"\r\n56789abcdefghij01234"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}
