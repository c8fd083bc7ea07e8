package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

var fuzzSeeds = []string{
	"a1 CAPABILITY\r\n",
	"a2 LOGIN fred \"s3cr\\\"et\"\r\n",
	"a3 LOGIN {4}\r\nfred {6+}\r\nsecret\r\n",
	"a4 SELECT \"INBOX\"\r\na5 NOOP\n",
	"a6 UID FETCH 1:*,4:2 (FLAGS UID BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100>)\r\n",
	"a7 STORE 2:4 +FLAGS.SILENT (\\Seen \\* $Junk)\r\n",
	"a8 APPEND Drafts (\\Draft) \" 1-Jan-2024 10:00:00 +0100\" {11+}\r\nhello world\r\n",
	"a9 APPEND Drafts ~{3}\r\na\x00b\r\n",
	"b1 SEARCH CHARSET UTF-8 SINCE 1-Feb-1994 NOT (FROM \"Smith\" OR UNSEEN 1,2) $\r\n",
	"b2 LIST \"\" %/*]\r\nb3 LIST {0}\r\n\r\n",
	"b4 FOO {5+}\r\nab\r\nc {99999999999+}\r\n",
	"b5 X ((((((a))))))\r\nb6 X \"unterminated\r\nb7 BAR {3}\r\n",
	"* bad tag\r\n+ x\r\n\r\n\n" + strings.Repeat("x", 100) + "\r\n",
	"b8 CREATE &ZeVnLIqe-\r\nb9 ID (\"name\" NIL)\r\n",
}

// FuzzDecoder feeds random bytes to a command loop shaped like the
// server's and checks that the decoder neither panics nor loops, that its
// errors are typed, that every command makes progress and that no command
// consumes more than MaxCommand bytes.
func FuzzDecoder(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(i))
	}
	refuse := errors.New("refused")
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		lim := Limits{MaxLine: 64, MaxLiteral: 40, MaxNonSyncLiteral: 30, MaxCommand: 300, MaxDepth: 4, MaxItems: 8}
		if mode&4 != 0 {
			lim.MaxNonSyncLiteral = 60 // larger than MaxLiteral
		}
		size := 4096
		if mode&1 != 0 {
			size = 16
		}
		cr := &countReader{r: bytes.NewReader(data)}
		br := bufio.NewReaderSize(cr, size)
		d := NewDecoder(br, lim)
		conts := 0
		d.SetContinuation(func() error {
			conts++
			if mode&2 != 0 && conts%2 == 0 {
				return refuse
			}
			return nil
		})
		consumed := func() int { return cr.n - br.Buffered() }
		for iter := 0; iter <= len(data); iter++ {
			before := consumed()
			d.Begin()
			_, err := d.Tag()
			if err == nil {
				_, err = parseCommand(d)
			}
			if err != nil {
				if isEOF(err) {
					return
				}
				var syn *SyntaxError
				var le *LimitError
				switch {
				case errors.As(err, &syn), errors.Is(err, refuse):
				case errors.As(err, &le):
					if le.Code != "TOOBIG" && le.Code != "LIMIT" {
						t.Fatalf("bad limit code %q", le.Code)
					}
					if le.Fatal {
						if derr := d.Discard(); derr != le {
							t.Fatalf("Discard after fatal %v: %v", le, derr)
						}
						return
					}
				default:
					t.Fatalf("untyped error %T %v", err, err)
				}
				if derr := d.Discard(); derr != nil {
					if isEOF(derr) {
						return
					}
					if !errors.As(derr, &le) || !le.Fatal {
						t.Fatalf("Discard: %T %v", derr, derr)
					}
					return
				}
			}
			n := consumed() - before
			if n == 0 {
				t.Fatalf("command %d made no progress (err %v)", iter, err)
			}
			if int64(n) > lim.MaxCommand {
				t.Fatalf("command %d consumed %d bytes > MaxCommand", iter, n)
			}
		}
		t.Fatalf("more commands than bytes")
	})
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// FuzzStringRoundTrip checks that whatever Encoder.String and Astring write,
// Decoder.String and Astring read back.
func FuzzStringRoundTrip(f *testing.F) {
	for _, s := range []string{"", "NIL", "a b", `"\`, "\r\n", "ü", "\x00", "{1}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		NewEncoder(w).String(s).SP().Astring(s).SP().Mailbox(s, true).CRLF().Flush()
		d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(buf.Bytes()), 16), Limits{})
		a, err1 := d.String()
		err2 := d.SP()
		b, err3 := d.Astring()
		err4 := d.SP()
		c, err5 := d.Astring()
		err6 := d.CRLF()
		if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil || a != s || b != s || c != s {
			t.Fatalf("%q: wrote %q, read %q %q %q, %v", s, buf.String(), a, b, c, err)
		}
	})
}

func BenchmarkDecodeFetchCommand(b *testing.B) {
	cmd := "a0042 UID FETCH 1:100,200:*,300 (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])\r\n"
	in := strings.Repeat(cmd, 1000)
	r := strings.NewReader(in)
	br := bufio.NewReader(r)
	d := NewDecoder(br, Limits{})
	b.SetBytes(int64(len(cmd)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			r.Reset(in)
			br.Reset(r)
		}
		d.Begin()
		if _, err := d.Tag(); err != nil {
			b.Fatal(err)
		}
		d.SP()
		d.Atom() // UID
		d.SP()
		d.Atom() // FETCH
		d.SP()
		if _, err := d.SeqSet(); err != nil {
			b.Fatal(err)
		}
		d.SP()
		var item func() error
		item = func() error {
			if _, err := d.AtomUntil('['); err != nil {
				return err
			}
			if !d.Maybe('[') {
				return nil
			}
			if _, err := d.Atom(); err != nil {
				return err
			}
			if d.Maybe(' ') {
				if err := d.List(func() error { _, err := d.Astring(); return err }); err != nil {
					return err
				}
			}
			return d.Special(']')
		}
		if err := d.List(item); err != nil {
			b.Fatal(err)
		}
		if err := d.CRLF(); err != nil {
			b.Fatal(err)
		}
	}
}
