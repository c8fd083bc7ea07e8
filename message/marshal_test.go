package message

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// v1Trees are trees serialised by Marshal before format version 2 (the
// build before the Envelope.Empty byte), which stores still hold.
var v1Trees = []struct {
	name, raw, hex string
}{
	{"rfc822.eml", "", "0106008501c2031a8004051701146166776402071c0b0100010217010d0e000941bf021148080917001c000000d0016f0980040517011460696e02061c0b0100010217010d0e00082c0601000102170215676e6f7465732e7478740d0e007c5468752c2033204a756c20323032352030393a30303a3030202d303430306368656c6c6f0100634361726f6c00636361726f6c696578616d706c652e6f726700000100000061616e6e696578616d706c652e636f6d000000713c696e6e6572406578616d706c652e6f72673e00684677643a2068656c6c6f0100000061616e6e696578616d706c652e636f6d00000100000061626f62696578616d706c652e6e657400000000"},
	{"groups.eml", "", "010100c202070180010217010d0e007c5361742c2035204a756c20323032352030383a30303a3030202b303030306467726f757073010061416e6e0061616e6e696578616d706c652e636f6d01000000686c6973742d6f776e65726f6c697374732e6578616d706c652e636f6d01000000626c6973746f6c697374732e6578616d706c652e636f6d0201000074756e646973636c6f7365642d726563697069656e747300020000000005010000625465616d0000000061626f62696578616d706c652e6e657400664361726f6c20512e00636361726f6c696578616d706c652e6f7267020000000000006c40726f7574652e6578616d706c656264617665696578616d706c652e6f726701006b71756f7465642022206e616d65005f71696578616d706c652e636f6d0000"},
	// Subject present but empty: version 1 has no way to say so.
	{"", "Subject:\r\nFrom: a@b.c\r\n\r\nx\r\n", "01010019030180010217010d0e000000010000005f6161622e6300000000000000"},
}

func v1Bytes(t testing.TB, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnmarshalVersion1 checks that trees stored by earlier builds still
// decode, to what those builds wrote.
func TestUnmarshalVersion1(t *testing.T) {
	for _, c := range v1Trees {
		p, err := Unmarshal(v1Bytes(t, c.hex))
		if err != nil {
			t.Fatalf("%s%q: %v", c.name, c.raw, err)
		}
		if c.name != "" {
			// Nothing those fixtures hold changed meaning: the same tree
			// as a new parse.
			if q := mustParse(t, readFixture(t, c.name)); !reflect.DeepEqual(p, q) {
				t.Errorf("%s: version 1 tree differs from a new parse:\n%+v\n%+v", c.name, p, q)
			}
		} else {
			// The empty Subject reads as absent, as it was written; a new
			// parse keeps it present.
			if p.Envelope.Subject != "" || p.Envelope.Empty != 0 || len(p.Envelope.From) != 1 {
				t.Errorf("empty Subject, version 1: %+v", p.Envelope)
			}
			q := roundTrip(t, mustParse(t, []byte(c.raw)))
			if q.Envelope.Empty != EnvSubject {
				t.Errorf("empty Subject, new parse: Empty = %b", q.Envelope.Empty)
			}
		}
		// Marshal writes the current version.
		if b := p.Marshal(); b[0] != formatVersion {
			t.Errorf("Marshal wrote version %d", b[0])
		}
		roundTrip(t, p)
	}
}

func TestUnmarshalVersions(t *testing.T) {
	raw := []byte("Subject:\r\nFrom: a@b.c\r\n\r\nx\r\n")
	b := mustParse(t, raw).Marshal()
	if b[0] != 2 {
		t.Fatalf("version %d", b[0])
	}
	for _, v := range []byte{0, 3, 255} {
		c := append([]byte{v}, b[1:]...)
		if _, err := Unmarshal(c); err != ErrCorrupt {
			t.Errorf("version %d: %v", v, err)
		}
	}
	// An Empty byte with unknown bits is corrupt.
	p, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	p.Envelope.Empty = 0x10
	if _, err := Unmarshal(p.Marshal()); err != ErrCorrupt {
		t.Errorf("Empty 0x10: %v", err)
	}
}

func TestHeaderLen(t *testing.T) {
	for _, name := range []string{"simple.eml", "rfc2047.eml"} {
		raw := readFixture(t, name)
		p := mustParse(t, raw)
		n, ok := HeaderLen(p.Marshal())
		if !ok || n != p.BodyStart || n == 0 {
			t.Errorf("%s: HeaderLen = %d, %v; want %d", name, n, ok, p.BodyStart)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {formatVersion}, {formatVersion, 1}, {99, 1, 0, 5}} {
		if n, ok := HeaderLen(bad); ok {
			t.Errorf("HeaderLen(%v) = %d, true", bad, n)
		}
	}
}
