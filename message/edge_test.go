package message

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// checkTree checks the invariants of a parsed tree against its message:
// offsets in order and within the parent, multiparts with children, a
// lossless serialisation, and every section of every part extractable.
func checkTree(t testing.TB, raw []byte, p *Part) {
	t.Helper()
	if p.Start != 0 || p.End != len(raw) {
		t.Fatalf("root spans %d-%d of %d", p.Start, p.End, len(raw))
	}
	var check func(q *Part, lo, hi int)
	check = func(q *Part, lo, hi int) {
		if !(lo <= q.Start && q.Start <= q.BodyStart && q.BodyStart <= q.End && q.End <= hi) {
			t.Fatalf("part %d/%d/%d outside %d-%d", q.Start, q.BodyStart, q.End, lo, hi)
		}
		if want := countLines(raw[q.BodyStart:q.End]); q.Lines != want {
			t.Fatalf("lines %d, want %d", q.Lines, want)
		}
		if (q.Type == "MULTIPART") != q.IsMultipart() {
			t.Fatalf("type %s with %d children", q.Type, len(q.Children))
		}
		prev := q.BodyStart
		for _, c := range q.Children {
			check(c, prev, q.End)
			prev = c.End
		}
		if q.Message != nil {
			if q.Message.Start != q.BodyStart || q.Message.End != q.End {
				t.Fatalf("encapsulated message %d-%d, body %d-%d", q.Message.Start, q.Message.End, q.BodyStart, q.End)
			}
			check(q.Message, q.BodyStart, q.End)
		}
	}
	check(p, 0, len(raw))

	// The serialisation is lossless: what it decodes to serialises the
	// same. (What the server writes of it is checked in
	// server/imapmime.)
	b := p.Marshal()
	q, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !bytes.Equal(q.Marshal(), b) {
		t.Fatal("Marshal after Unmarshal differs")
	}

	// Every section of every part.
	var paths [][]int
	var walk func(container *Part, msgLevel bool, path []int)
	walk = func(container *Part, msgLevel bool, path []int) {
		n := len(container.Children)
		if n == 0 && msgLevel {
			n = 1
		}
		for i := 1; i <= n; i++ {
			pp := append(append([]int(nil), path...), i)
			paths = append(paths, pp)
			c := Resolve(p, pp)
			if c == nil {
				t.Fatalf("Resolve(%v) = nil", pp)
			}
			if len(paths) > 2000 {
				return
			}
			switch {
			case c.Message != nil:
				walk(c.Message, true, pp)
			case c.IsMultipart():
				walk(c, false, pp)
			}
		}
	}
	walk(p, true, nil)
	specs := []string{"", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME"}
	for _, pp := range append([][]int{nil}, paths...) {
		for _, spec := range specs {
			if spec == "MIME" && len(pp) == 0 {
				continue
			}
			b, err := Extract(raw, p, Section{Path: pp, Specifier: spec, Fields: []string{"Subject", "content-type"}})
			if err != nil {
				t.Fatalf("BODY[%v %s]: %v", pp, spec, err)
			}
			if spec == "" && len(pp) == 0 && len(b) != len(raw) {
				t.Fatalf("BODY[] has %d bytes of %d", len(b), len(raw))
			}
		}
	}
	// SEARCH text: valid UTF-8 whatever the input.
	for _, v := range append(HeaderValues(raw, p, "subject"), TextContent(raw, p)...) {
		if !utf8.ValidString(v) {
			t.Fatalf("invalid UTF-8 %q", v)
		}
	}
}

const mimeEdgeDir = "../../shared/data/mime-edge"

func TestMimeEdge(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(mimeEdgeDir, "*"))
	if len(files) == 0 {
		t.Skipf("no messages in %s (the shared MIME edge-case corpus is not checked out)", mimeEdgeDir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkTree(t, raw, mustParse(t, raw))
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{mimeEdgeDir, "../testdata/messages"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, file := range files {
			if raw, err := os.ReadFile(file); err == nil {
				f.Add(raw)
			}
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\n\n--x\n\n--x--"))
	f.Add([]byte("Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n"))
	f.Add([]byte("SuBjeCt:\x00"))
	f.Add([]byte("Subject: s\nno colon\nContent-Type: multipart/mixed\n\n--x\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Parse(raw)
		if len(raw) == 0 {
			if err == nil {
				t.Fatal("no error for empty input")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, raw, p)
	})
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{formatVersion})
	for _, c := range v1Trees {
		f.Add(v1Bytes(f, c.hex))
	}
	for _, name := range []string{"rfc822.eml", "groups.eml", "mixed-attachment.eml"} {
		raw, _ := os.ReadFile(filepath.Join("..", "testdata", "messages", name))
		if p, err := Parse(raw); err == nil {
			f.Add(p.Marshal())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Unmarshal(data)
		if err != nil {
			return
		}
		// Whatever decodes must be usable without panicking.
		_ = p.Marshal()
		_, _ = Extract(make([]byte, 64), p, Section{Path: []int{1, 2}, Specifier: "HEADER"})
	})
}
