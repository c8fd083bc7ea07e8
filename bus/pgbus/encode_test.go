package pgbus

import (
	"strings"
	"testing"

	"github.com/quickimap/quickimap/bus"
)

func TestEncodeRoundTrip(t *testing.T) {
	in := []bus.Hint{
		{Kind: bus.MailboxChanged, Mailbox: 42, ModSeq: 1 << 40},
		{Kind: bus.MailboxChanged, Mailbox: 7, ModSeq: 0},
		{Kind: bus.MailboxGone, Mailbox: 9, Gone: 2},
		{Kind: bus.SessionTaken, User: 3, Session: "a b.c%d+e", Generation: 12},
		{Kind: bus.UserChanged, User: 5},
	}
	out := encode("abc", "node one", in)
	if len(out) != 1 {
		t.Fatalf("encode gave %d payloads, want 1: %q", len(out), out)
	}
	want := "q1 abc node+one c42.1099511627776 c7.0 g9.2 s3.12.a+b.c%25d%2Be u5"
	if out[0] != want {
		t.Errorf("payload %q, want %q", out[0], want)
	}
	inst, got, ok := decode(out[0])
	if !ok || inst != "abc" || len(got) != len(in) {
		t.Fatalf("decode = %q, %+v, %v", inst, got, ok)
	}
	for i := range in {
		w := in[i]
		w.Node = "node one"
		if got[i] != w {
			t.Errorf("hint %d = %+v, want %+v", i, got[i], w)
		}
	}
}

func TestEncodePacksUnderLimit(t *testing.T) {
	var in []bus.Hint
	for i := range 3000 {
		in = append(in, bus.Hint{Kind: bus.MailboxChanged, Mailbox: int64(1_000_000 + i), ModSeq: uint64(5_000_000 + i)})
	}
	out := encode("0123456789abcdef", "n", in)
	if len(out) < 2 {
		t.Fatalf("3000 hints in %d payloads", len(out))
	}
	var got []bus.Hint
	for _, p := range out {
		if len(p) > maxPayload || len(p) >= 8000 {
			t.Errorf("payload of %d bytes", len(p))
		}
		// Packed: the next hint would not have fit.
		_, hs, ok := decode(p)
		if !ok {
			t.Fatalf("payload does not decode: %.40q", p)
		}
		got = append(got, hs...)
	}
	for i, p := range out[:len(out)-1] {
		if len(p)+len(" c1000000.5000000") <= maxPayload {
			t.Errorf("payload %d has room left: %d bytes", i, len(p))
		}
	}
	if len(got) != len(in) {
		t.Fatalf("decoded %d hints, want %d", len(got), len(in))
	}
	for i := range in {
		if got[i].Mailbox != in[i].Mailbox || got[i].ModSeq != in[i].ModSeq {
			t.Fatalf("hint %d = %+v, want %+v", i, got[i], in[i])
		}
	}
}

func TestDecodeSkipsGarbage(t *testing.T) {
	for _, p := range []string{"", "hello", "q2 a b c1.2", "q1 a %zz c1.2"} {
		if _, _, ok := decode(p); ok {
			t.Errorf("decode(%q) accepted", p)
		}
	}
	_, hs, ok := decode("q1 a b c1.2 cx.1 c1 z9 g1.300 s1.2 u u7 " + strings.Repeat("c", 3))
	if !ok || len(hs) != 2 || hs[0].Mailbox != 1 || hs[1].User != 7 {
		t.Errorf("decode kept %+v, want c1.2 and u7 only", hs)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("q1 abc n c1.2 g3.1 s1.2.x u4")
	f.Fuzz(func(t *testing.T, p string) {
		inst, hs, ok := decode(p)
		if !ok {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		node := hs0Node(hs)
		if node == "" || strings.ContainsAny(inst, " \t\n") || inst == "" {
			return
		}
		for _, q := range encode(inst, node, hs) {
			if _, again, ok := decode(q); !ok || len(again) > len(hs) {
				t.Fatalf("re-encoding %q gave %q", p, q)
			}
		}
	})
}

func hs0Node(hs []bus.Hint) string {
	if len(hs) == 0 {
		return ""
	}
	return hs[0].Node
}
