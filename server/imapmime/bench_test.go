package imapmime

import (
	"bufio"
	"io"
	"testing"

	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/wire"
)

// What FETCH BODYSTRUCTURE and ENVELOPE cost per message: decode the
// stored tree and write it.

func benchTree(b *testing.B) ([]byte, *wire.Encoder) {
	p := mustParse(b, readFixture(b, "encodings.eml"))
	return p.Marshal(), wire.NewEncoder(bufio.NewWriterSize(io.Discard, 64<<10))
}

func BenchmarkUnmarshalBodyStructure(b *testing.B) {
	data, enc := benchTree(b)
	for b.Loop() {
		q, err := message.Unmarshal(data)
		if err != nil {
			b.Fatal(err)
		}
		WriteBodyStructure(enc, q, true)
	}
	if err := enc.Flush(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkUnmarshalEnvelope(b *testing.B) {
	data, enc := benchTree(b)
	for b.Loop() {
		q, err := message.Unmarshal(data)
		if err != nil {
			b.Fatal(err)
		}
		WriteEnvelope(enc, q)
	}
	if err := enc.Flush(); err != nil {
		b.Fatal(err)
	}
}
