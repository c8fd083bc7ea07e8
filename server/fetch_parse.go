package server

import (
	"strconv"
	"strings"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/wire"
)

// Parsing of the FETCH arguments (RFC 3501 §6.4.5 and §9, RFC 4466 §2.4
// fetch-modifiers):
//
//	fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" /
//	        fetch-att / "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
//	fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
//	fetch-modifier  = fetch-modifier-name [ SP fetch-modif-params ]

// Bounds on one FETCH command, well above what any client sends.
const (
	maxFetchAtts   = 100 // data items, after macro expansion
	maxFetchFields = 100 // field names in one HEADER.FIELDS list
	maxSectionPath = 100 // part numbers in one section (message.MaxDepth)
)

// fetchKind is what a fetch-att asks for.
type fetchKind uint8

const (
	fetchUID fetchKind = iota + 1
	fetchFlags
	fetchInternalDate
	fetchRFC822Size
	fetchEnvelope
	fetchBody          // BODY: BODYSTRUCTURE without extension data
	fetchBodyStructure // BODYSTRUCTURE
	// fetchSection is BODY[section]<partial>, BODY.PEEK[...] and the
	// RFC822, RFC822.HEADER and RFC822.TEXT forms of them.
	fetchSection
	fetchModSeq // MODSEQ (RFC 7162 §3.1.4.2)
)

// fetchAtt is one data item of a FETCH.
type fetchAtt struct {
	kind fetchKind
	// name is the item's name in the response, ready to write: "FLAGS",
	// "RFC822.HEADER", "BODY[1.HEADER.FIELDS (FROM TO)]<10>" (a
	// BODY.PEEK is answered as BODY, a partial with its origin only).
	name string

	// For fetchSection:
	section message.Section
	peek    bool // does not set \Seen
	partial bool
	origin  uint32
	count   uint32
}

// fetchRequest is a parsed FETCH command.
type fetchRequest struct {
	set  imap.SeqSet
	atts []fetchAtt
	// Modifiers (RFC 4466). hasChangedSince: CHANGEDSINCE changedSince
	// (RFC 7162 §3.1.4.1); vanished: VANISHED (§3.2.6); reportExpunges:
	// REPORTEXPUNGES (draft-melnikov-imap-expunged-01 §3.1). Whether the
	// command and the session allow them is checked when it runs.
	changedSince    uint64
	hasChangedSince bool
	vanished        bool
	reportExpunges  bool
}

// fetchModifiers reads the parameters of the FETCH modifier named by the
// key (upper case), after its name: a modifier with parameters reads its
// own SP.
var fetchModifiers = map[string]func(d *wire.Decoder, r *fetchRequest) error{
	"CHANGEDSINCE": func(d *wire.Decoder, r *fetchRequest) (err error) {
		if err = d.SP(); err == nil {
			r.changedSince, err = d.Number64()
			r.hasChangedSince = true
		}
		return err
	},
	"VANISHED":       func(d *wire.Decoder, r *fetchRequest) error { r.vanished = true; return nil },
	"REPORTEXPUNGES": func(d *wire.Decoder, r *fetchRequest) error { r.reportExpunges = true; return nil },
}

// The macros of RFC 3501 §6.4.5.
var (
	fetchFast = []fetchAtt{
		{kind: fetchFlags, name: "FLAGS"},
		{kind: fetchInternalDate, name: "INTERNALDATE"},
		{kind: fetchRFC822Size, name: "RFC822.SIZE"},
	}
	fetchAll  = append(fetchFast[:len(fetchFast):len(fetchFast)], fetchAtt{kind: fetchEnvelope, name: "ENVELOPE"})
	fetchFull = append(fetchAll[:len(fetchAll):len(fetchAll)], fetchAtt{kind: fetchBody, name: "BODY"})
)

// parseFetch reads the arguments of FETCH and UID FETCH, from the SP after
// the command name through the final CRLF.
func parseFetch(d *wire.Decoder) (*fetchRequest, error) {
	if err := d.SP(); err != nil {
		return nil, err
	}
	set, err := d.SeqSet()
	if err != nil {
		return nil, err
	}
	if err := d.SP(); err != nil {
		return nil, err
	}
	r := &fetchRequest{set: set}
	if d.Peek() == '(' {
		n := 0
		err = d.List(func() error {
			if n++; n > maxFetchAtts {
				return &wire.LimitError{Code: "LIMIT", Msg: "too many FETCH data items"}
			}
			a, err := readFetchAtt(d)
			if err != nil {
				return err
			}
			r.add(a)
			return nil
		})
		if err == nil && len(r.atts) == 0 {
			err = syntaxErr("empty FETCH data item list")
		}
	} else {
		err = r.readSingle(d)
	}
	if err != nil {
		return nil, err
	}
	if !d.AtEOL() {
		if err := d.SP(); err != nil {
			return nil, err
		}
		if err := r.readModifiers(d); err != nil {
			return nil, err
		}
	}
	if err := d.CRLF(); err != nil {
		return nil, err
	}
	return r, nil
}

// readSingle reads a macro or a single fetch-att without parentheses.
func (r *fetchRequest) readSingle(d *wire.Decoder) error {
	if d.Peek() == '[' {
		return syntaxErr("expected FETCH data item")
	}
	name, err := d.AtomUntil('[')
	if err != nil {
		return err
	}
	var macro []fetchAtt
	switch strings.ToUpper(name) {
	case "ALL":
		macro = fetchAll
	case "FAST":
		macro = fetchFast
	case "FULL":
		macro = fetchFull
	}
	if macro != nil {
		if d.Peek() == '[' {
			return syntaxErr("unknown FETCH data item " + printable(name))
		}
		r.atts = append(r.atts, macro...)
		return nil
	}
	a, err := fetchAttNamed(d, name)
	if err != nil {
		return err
	}
	r.add(a)
	return nil
}

// add appends a, merging it with an item asked for before under the same
// response name (BODY[] and BODY.PEEK[] are one item, which sets \Seen
// unless both are PEEK).
func (r *fetchRequest) add(a fetchAtt) {
	for i := range r.atts {
		if r.atts[i].name == a.name {
			r.atts[i].peek = r.atts[i].peek && a.peek
			return
		}
	}
	r.atts = append(r.atts, a)
}

// readModifiers reads "(" fetch-modifier *(SP fetch-modifier) ")".
func (r *fetchRequest) readModifiers(d *wire.Decoder) error {
	var seen []string
	err := d.List(func() error {
		name, err := d.Atom()
		if err != nil {
			return err
		}
		name = strings.ToUpper(name)
		parse, ok := fetchModifiers[name]
		if !ok {
			return syntaxErr("unknown FETCH modifier " + printable(name))
		}
		for _, s := range seen {
			if s == name {
				return syntaxErr("FETCH modifier " + name + " given twice")
			}
		}
		seen = append(seen, name)
		return parse(d, r)
	})
	if err == nil && len(seen) == 0 {
		err = syntaxErr("empty FETCH modifier list")
	}
	return err
}

// readFetchAtt reads one fetch-att.
func readFetchAtt(d *wire.Decoder) (fetchAtt, error) {
	if d.Peek() == '[' {
		return fetchAtt{}, syntaxErr("expected FETCH data item")
	}
	name, err := d.AtomUntil('[')
	if err != nil {
		return fetchAtt{}, err
	}
	return fetchAttNamed(d, name)
}

// fetchAttNamed parses the fetch-att whose name (up to any "[") has been
// read.
func fetchAttNamed(d *wire.Decoder, name string) (fetchAtt, error) {
	up := strings.ToUpper(name)
	var a fetchAtt
	switch up {
	case "UID":
		a = fetchAtt{kind: fetchUID}
	case "FLAGS":
		a = fetchAtt{kind: fetchFlags}
	case "INTERNALDATE":
		a = fetchAtt{kind: fetchInternalDate}
	case "RFC822.SIZE":
		a = fetchAtt{kind: fetchRFC822Size}
	case "ENVELOPE":
		a = fetchAtt{kind: fetchEnvelope}
	case "BODYSTRUCTURE":
		a = fetchAtt{kind: fetchBodyStructure}
	case "MODSEQ":
		a = fetchAtt{kind: fetchModSeq}
	case "RFC822":
		// RFC822 is BODY[], RFC822.HEADER BODY.PEEK[HEADER], RFC822.TEXT
		// BODY[TEXT], answered under their own names.
		a = fetchAtt{kind: fetchSection}
	case "RFC822.HEADER":
		a = fetchAtt{kind: fetchSection, peek: true, section: message.Section{Specifier: message.SpecHeader}}
	case "RFC822.TEXT":
		a = fetchAtt{kind: fetchSection, section: message.Section{Specifier: message.SpecText}}
	case "BODY", "BODY.PEEK":
		if d.Peek() != '[' {
			if up == "BODY" {
				return fetchAtt{kind: fetchBody, name: "BODY"}, nil
			}
			return fetchAtt{}, syntaxErr("expected '[' after BODY.PEEK")
		}
		return readSectionAtt(d, up == "BODY.PEEK")
	default:
		return fetchAtt{}, syntaxErr("unknown FETCH data item " + printable(name))
	}
	a.name = up
	return a, nil
}

// readSectionAtt reads "[" [section-spec] "]" ["<" number "." nz-number ">"]
// after BODY or BODY.PEEK.
func readSectionAtt(d *wire.Decoder, peek bool) (fetchAtt, error) {
	a := fetchAtt{kind: fetchSection, peek: peek}
	if err := d.Special('['); err != nil {
		return a, err
	}
	var name strings.Builder
	name.WriteString("BODY[")
	if d.Peek() != ']' {
		spec, err := d.Atom()
		if err != nil {
			return a, err
		}
		if a.section, err = parseSectionSpec(spec); err != nil {
			return a, err
		}
		writeSectionPath(&name, a.section)
		if s := a.section.Specifier; s == message.SpecHeaderFields || s == message.SpecHeaderFieldsNot {
			if err := d.SP(); err != nil {
				return a, err
			}
			if a.section.Fields, err = readHeaderList(d); err != nil {
				return a, err
			}
			name.WriteString(" (")
			for i, f := range a.section.Fields {
				if i > 0 {
					name.WriteByte(' ')
				}
				writeAstring(&name, strings.ToUpper(f))
			}
			name.WriteByte(')')
		}
	}
	if err := d.Special(']'); err != nil {
		return a, err
	}
	name.WriteByte(']')
	if d.Peek() == '<' {
		d.Special('<')
		var err error
		if a.origin, err = d.Number(); err != nil {
			return a, err
		}
		if err := d.Special('.'); err != nil {
			return a, err
		}
		if a.count, err = d.NzNumber(); err != nil {
			return a, err
		}
		if err := d.Special('>'); err != nil {
			return a, err
		}
		a.partial = true
		name.WriteByte('<')
		name.WriteString(strconv.FormatUint(uint64(a.origin), 10))
		name.WriteByte('>')
	}
	a.name = name.String()
	return a, nil
}

// parseSectionSpec parses the section-spec text before any header list:
//
//	section-spec    = section-msgtext / (section-part ["." section-text])
//	section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] / "TEXT"
//	section-part    = nz-number *("." nz-number)
//	section-text    = section-msgtext / "MIME"
func parseSectionSpec(spec string) (message.Section, error) {
	var s message.Section
	rest := spec
	for rest != "" && rest[0] >= '0' && rest[0] <= '9' {
		i := strings.IndexByte(rest, '.')
		num := rest
		if i >= 0 {
			num, rest = rest[:i], rest[i+1:]
			if rest == "" {
				return s, syntaxErr("invalid section " + printable(spec))
			}
		} else {
			rest = ""
		}
		if num[0] == '0' {
			return s, syntaxErr("invalid part number in section " + printable(spec))
		}
		n, err := strconv.ParseUint(num, 10, 31)
		if err != nil {
			return s, syntaxErr("invalid part number in section " + printable(spec))
		}
		if len(s.Path) >= maxSectionPath {
			return s, &wire.LimitError{Code: "LIMIT", Msg: "section nested too deeply"}
		}
		s.Path = append(s.Path, int(n))
	}
	switch up := strings.ToUpper(rest); up {
	case "":
		// A part number alone ("1.2"); rest is empty only then, since
		// spec is not empty.
	case message.SpecHeader, message.SpecHeaderFields, message.SpecHeaderFieldsNot, message.SpecText:
		s.Specifier = up
	case message.SpecMIME:
		if len(s.Path) == 0 {
			return s, syntaxErr("MIME needs a part number")
		}
		s.Specifier = up
	default:
		return s, syntaxErr("invalid section " + printable(spec))
	}
	return s, nil
}

// writeSectionPath writes the section-spec without its header list, as a
// response names it: "1.2.HEADER.FIELDS".
func writeSectionPath(b *strings.Builder, s message.Section) {
	for i, n := range s.Path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if s.Specifier != "" {
		if len(s.Path) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.Specifier)
	}
}

// readHeaderList reads header-list = "(" header-fld-name *(SP
// header-fld-name) ")", header-fld-name = astring.
func readHeaderList(d *wire.Decoder) ([]string, error) {
	var fields []string
	err := d.List(func() error {
		if len(fields) >= maxFetchFields {
			return &wire.LimitError{Code: "LIMIT", Msg: "too many header field names"}
		}
		f, err := d.Astring()
		if err != nil {
			return err
		}
		if f == "" {
			return syntaxErr("empty header field name")
		}
		for i := 0; i < len(f); i++ {
			// A field name is printable US-ASCII (RFC 5322 §2.2);
			// anything else could not be echoed as a quoted string.
			if f[i] < 0x21 || f[i] > 0x7e {
				return syntaxErr("invalid header field name")
			}
		}
		fields = append(fields, f)
		return nil
	})
	if err == nil && len(fields) == 0 {
		err = syntaxErr("empty header field list")
	}
	return fields, err
}

// writeAstring writes s (printable US-ASCII, not empty) as an atom when it
// can be one, else as a quoted string.
func writeAstring(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, `(){%*"\`) && s != "NIL" {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}
