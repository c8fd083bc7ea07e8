package message

import (
	"encoding/binary"
	"errors"
)

// Serialisation: a compact binary format, version byte first.
//
//	tree     = version uvarint(number of parts) part
//	part     = uvarint(Start - base) uvarint(BodyStart-Start) uvarint(End-BodyStart)
//	           uvarint(Lines) flags str(Type) str(Subtype) str(Encoding)
//	           params [str(ID)] [str(Description)] [str(MD5)]
//	           [str(Disposition) params] [uvarint(n) n*str] [str(Location)]
//	           uvarint(n) n*part [part(Message)] [envelope]
//	params   = uvarint(n) n*(str str)
//	envelope = byte(Empty) str(Date) str(Subject) 6*addrs str(InReplyTo) str(MessageID)
//	addrs    = uvarint(n) n*(kind str str str str)
//	str      = uvarint(i) with i < len(dict): dict[i]
//	         / uvarint(len(dict)+len) bytes
//
// base is 0 for the root, the parent's BodyStart for the first child and
// the encapsulated message, the previous sibling's End for the others.
// Optional fields are present when their flag bit is set. The dictionary
// holds frequent strings; it is part of the format: any change to it,
// appending included (literal lengths count from len(dict)), needs a new
// version byte.
//
// Versions: Marshal writes formatVersion; Unmarshal also reads the
// earlier ones, which stores keep from earlier builds:
//
//	1: no Empty byte in the envelope (Empty decodes as 0: fields present
//	   but empty read as absent, as those builds had them).
//	2: the Empty byte.

const (
	formatVersion    = 2
	minFormatVersion = 1
)

const (
	flagID = 1 << iota
	flagDesc
	flagMD5
	flagDisp
	flagLang
	flagLoc
	flagMessage
	flagEnvelope
)

var dict = [...]string{
	"", "TEXT", "PLAIN", "HTML", "MULTIPART", "MIXED", "ALTERNATIVE", "RELATED",
	"MESSAGE", "RFC822", "APPLICATION", "OCTET-STREAM", "IMAGE", "CHARSET", "US-ASCII",
	"us-ascii", "UTF-8", "utf-8", "ISO-8859-1", "iso-8859-1", "BOUNDARY", "NAME", "FILENAME",
	"7BIT", "8BIT", "BASE64", "QUOTED-PRINTABLE", "BINARY", "ATTACHMENT", "INLINE",
	"REPORT", "SIGNED", "ENCRYPTED", "DIGEST", "DELIVERY-STATUS", "PDF", "JPEG", "PNG",
	"GIF", "FORMAT", "flowed", "DELSP", "yes", "TYPE", "PROTOCOL", "MICALG", "REPORT-TYPE",
	"windows-1252", "Windows-1252", "iso-8859-15", "ISO-8859-15", "CALENDAR", "METHOD",
	"PGP-SIGNATURE", "PKCS7-SIGNATURE", "PKCS7-MIME", "X-ZIP-COMPRESSED", "ZIP", "MSWORD",
	"RFC822-HEADERS", "DISPOSITION-NOTIFICATION", "AUDIO", "VIDEO", "text/html", "text/plain",
	"application/pgp-signature", "delivery-status", "application/pkcs7-signature", "sha1",
	"sha-256", "pgp-sha256", "pgp-sha1", "SIZE", "CREATION-DATE", "MODIFICATION-DATE",
	"en", "en-US", "GLOBAL", "PARTIAL", "EXTERNAL-BODY", "RTF", "ENRICHED", "CSV", "XML",
	"JSON", "JAVASCRIPT", "CSS", "VCARD", "X-VCARD", "ICS", "SMIME-TYPE", "signed-data",
	"enveloped-data", "localhost",
}

var dictIndex = func() map[string]uint64 {
	m := make(map[string]uint64, len(dict))
	for i, s := range dict {
		if _, dup := m[s]; !dup {
			m[s] = uint64(i)
		}
	}
	return m
}()

// Marshal serialises the tree for the store; Unmarshal restores it.
func (p *Part) Marshal() []byte {
	n := 0
	p.Walk(func(*Part) bool { n++; return true })
	b := make([]byte, 0, 64+32*n)
	b = append(b, formatVersion)
	b = binary.AppendUvarint(b, uint64(n))
	return appendPart(b, p, 0)
}

func appendStr(b []byte, s string) []byte {
	if i, ok := dictIndex[s]; ok {
		return binary.AppendUvarint(b, i)
	}
	b = binary.AppendUvarint(b, uint64(len(dict)+len(s)))
	return append(b, s...)
}

func appendParams(b []byte, ps []Param) []byte {
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, q := range ps {
		b = appendStr(appendStr(b, q.Name), q.Value)
	}
	return b
}

func uv(n int) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func appendPart(b []byte, p *Part, base int) []byte {
	b = binary.AppendUvarint(b, uv(p.Start-base))
	b = binary.AppendUvarint(b, uv(p.BodyStart-p.Start))
	b = binary.AppendUvarint(b, uv(p.End-p.BodyStart))
	b = binary.AppendUvarint(b, uv(p.Lines))
	var f byte
	if p.ID != "" {
		f |= flagID
	}
	if p.Description != "" {
		f |= flagDesc
	}
	if p.MD5 != "" {
		f |= flagMD5
	}
	if p.Disposition != "" {
		f |= flagDisp
	}
	if len(p.Language) > 0 {
		f |= flagLang
	}
	if p.Location != "" {
		f |= flagLoc
	}
	if p.Message != nil {
		f |= flagMessage
	}
	if p.Envelope != nil {
		f |= flagEnvelope
	}
	b = append(b, f)
	b = appendStr(b, p.Type)
	b = appendStr(b, p.Subtype)
	b = appendStr(b, p.Encoding)
	b = appendParams(b, p.Params)
	if f&flagID != 0 {
		b = appendStr(b, p.ID)
	}
	if f&flagDesc != 0 {
		b = appendStr(b, p.Description)
	}
	if f&flagMD5 != 0 {
		b = appendStr(b, p.MD5)
	}
	if f&flagDisp != 0 {
		b = appendParams(appendStr(b, p.Disposition), p.DispParams)
	}
	if f&flagLang != 0 {
		b = binary.AppendUvarint(b, uint64(len(p.Language)))
		for _, l := range p.Language {
			b = appendStr(b, l)
		}
	}
	if f&flagLoc != 0 {
		b = appendStr(b, p.Location)
	}
	b = binary.AppendUvarint(b, uint64(len(p.Children)))
	prev := p.BodyStart
	for _, c := range p.Children {
		b = appendPart(b, c, prev)
		prev = c.End
	}
	if p.Message != nil {
		b = appendPart(b, p.Message, p.BodyStart)
	}
	if e := p.Envelope; e != nil {
		b = append(b, e.Empty)
		b = appendStr(appendStr(b, e.Date), e.Subject)
		for _, as := range [...][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
			b = binary.AppendUvarint(b, uint64(len(as)))
			for _, a := range as {
				b = append(b, a.Kind)
				b = appendStr(appendStr(appendStr(appendStr(b, a.Name), a.ADL), a.Mailbox), a.Host)
			}
		}
		b = appendStr(appendStr(b, e.InReplyTo), e.MessageID)
	}
	return b
}

// HeaderLen returns the length of the message's header (its body's
// offset, Part.BodyStart of the root) from a serialised tree, without
// decoding the rest of it.
func HeaderLen(data []byte) (int, bool) {
	if len(data) == 0 || data[0] < minFormatVersion || data[0] > formatVersion {
		return 0, false
	}
	d := decoder{b: data[1:]}
	if n := d.uvarint(); n == 0 {
		return 0, false
	}
	start := d.offset()
	bodyStart := start + d.offset()
	return bodyStart, d.err == nil && start == 0
}

// ErrCorrupt is returned by Unmarshal for bytes Marshal did not make.
var ErrCorrupt = errors.New("message: corrupt structure")

// Unmarshal restores a tree serialised by Marshal.
func Unmarshal(data []byte) (*Part, error) {
	if len(data) == 0 || data[0] < minFormatVersion || data[0] > formatVersion {
		return nil, ErrCorrupt
	}
	// All strings are substrings of one copy of data, all parts share
	// one array: few allocations.
	d := decoder{b: data[1:], s: string(data[1:]), version: data[0]}
	n := d.uvarint()
	if n == 0 || n > uint64(len(data)) || n > MaxParts+1 {
		return nil, ErrCorrupt
	}
	d.pool = make([]Part, n)
	p := d.part(0, 0)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 || d.parts != len(d.pool) {
		return nil, ErrCorrupt
	}
	return p, nil
}

type decoder struct {
	b       []byte
	s       string // string(b) as it was at the start
	version byte
	pool    []Part
	err     error
	parts   int
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// offset reads an offset delta, bounded so sums cannot overflow.
func (d *decoder) offset() int {
	v := d.uvarint()
	if v > 1<<53 {
		d.fail()
		return 0
	}
	return int(v)
}

// count reads a count of items each taking at least one byte.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	v := d.uvarint()
	if v < uint64(len(dict)) {
		return dict[v]
	}
	n := v - uint64(len(dict))
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	off := len(d.s) - len(d.b)
	d.b = d.b[n:]
	return d.s[off : off+int(n)]
}

func (d *decoder) params() []Param {
	n := d.count()
	if n == 0 {
		return nil
	}
	ps := make([]Param, n)
	for i := range ps {
		ps[i] = Param{d.str(), d.str()}
	}
	return ps
}

func (d *decoder) part(base, depth int) *Part {
	if depth > MaxDepth+1 || d.parts >= len(d.pool) {
		d.fail()
		return nil
	}
	p := &d.pool[d.parts]
	d.parts++
	p.Start = base + d.offset()
	p.BodyStart = p.Start + d.offset()
	p.End = p.BodyStart + d.offset()
	p.Lines = d.offset()
	f := d.byte()
	p.Type, p.Subtype, p.Encoding = d.str(), d.str(), d.str()
	p.Params = d.params()
	if f&flagID != 0 {
		p.ID = d.str()
	}
	if f&flagDesc != 0 {
		p.Description = d.str()
	}
	if f&flagMD5 != 0 {
		p.MD5 = d.str()
	}
	if f&flagDisp != 0 {
		p.Disposition = d.str()
		p.DispParams = d.params()
	}
	if f&flagLang != 0 {
		n := d.count()
		p.Language = make([]string, n)
		for i := range p.Language {
			p.Language[i] = d.str()
		}
	}
	if f&flagLoc != 0 {
		p.Location = d.str()
	}
	if n := d.count(); n > 0 {
		p.Children = make([]*Part, 0, n)
		prev := p.BodyStart
		for range n {
			c := d.part(prev, depth+1)
			if d.err != nil {
				return nil
			}
			p.Children = append(p.Children, c)
			prev = c.End
		}
	}
	if f&flagMessage != 0 {
		p.Message = d.part(p.BodyStart, depth+1)
	}
	if f&flagEnvelope != 0 {
		e := &Envelope{}
		if d.version >= 2 {
			if e.Empty = d.byte(); e.Empty&^(EnvDate|EnvSubject|EnvInReplyTo|EnvMessageID) != 0 {
				d.fail()
			}
		}
		e.Date, e.Subject = d.str(), d.str()
		for _, dst := range [...]*[]Address{&e.From, &e.Sender, &e.ReplyTo, &e.To, &e.Cc, &e.Bcc} {
			n := d.count()
			if n == 0 {
				continue
			}
			as := make([]Address, n)
			for i := range as {
				as[i] = Address{Kind: d.byte(), Name: d.str(), ADL: d.str(), Mailbox: d.str(), Host: d.str()}
			}
			*dst = as
		}
		e.InReplyTo, e.MessageID = d.str(), d.str()
		p.Envelope = e
	}
	if d.err != nil {
		return nil
	}
	return p
}
