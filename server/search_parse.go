package server

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/wire"
)

// SEARCH parsing (RFC 3501 §6.4.4 and §9 "search", RFC 4466 §2.6 search
// return options, RFC 4731 ESEARCH).
//
// The parse yields a tree of searchKeys with the many RFC 3501 keys reduced
// to a few operations: UNSEEN is NOT(flag \Seen), NEW is RECENT AND NOT
// SEEN, FROM x is HEADER From x, and so on. The evaluator (search_eval.go)
// only knows the reduced operations.

// searchOp is the operation of a search key.
type searchOp uint8

const (
	opAll    searchOp = iota
	opAnd             // every kid matches (a parenthesized list, the top level)
	opOr              // kids[0] or kids[1]
	opNot             // kids[0] does not match
	opSeq             // sequence number in set
	opUID             // UID in set
	opFlag            // the message has flag (system flag or keyword)
	opRecent          // \Recent in this session
	// Internal date keys (RFC 3501: date in the internal date's own zone,
	// time disregarded); num is the civil date.
	opBefore
	opOn
	opSince
	// Date: header keys, same comparison; num is the civil date.
	opSentBefore
	opSentOn
	opSentSince
	opLarger  // RFC822.SIZE > num
	opSmaller // RFC822.SIZE < num
	opHeader  // a field called field contains value ("" value: has the field)
	opBody    // the decoded text parts contain value
	opText    // the header or the decoded text parts contain value
	opModSeq  // MODSEQ >= num (RFC 7162 §3.1.5), from the in-memory index
)

// searchKey is one node of a parsed search.
type searchKey struct {
	op   searchOp
	kids []*searchKey
	// set is the sequence set of opSeq and opUID; ranges is the set
	// resolved against the view when the search runs.
	set    imap.SeqSet
	ranges []imap.NumRange
	flag   string // opFlag
	field  string // opHeader: field name as sent
	value  string // opHeader, opBody, opText: the needle, case-folded
	num    int64  // size or civil date (yyyymmdd)
}

// searchReturn is what a SEARCH with RETURN asks for (RFC 4731).
type searchReturn uint8

const (
	retMin searchReturn = 1 << iota
	retMax
	retAll
	retCount
)

// searchCmd is a parsed SEARCH command.
type searchCmd struct {
	// esearch: a RETURN option list was given (even empty): the answer
	// is an ESEARCH response, never SEARCH (RFC 4731 §3.1).
	esearch bool
	ret     searchReturn
	charset string // as sent, "" when absent
	key     *searchKey
	// invalid, when not "", says why a search string is not text in the
	// charset given (UTF-8 when none was): the answer is BAD.
	invalid string
}

// Limits of one SEARCH beyond what the decoder bounds.
const (
	// maxSearchDepth bounds the nesting of NOT, OR and parenthesized
	// lists, which recurse in the parser and the evaluator.
	maxSearchDepth = 64
	// maxSearchKeys bounds the keys of one SEARCH: evaluation costs keys
	// times messages.
	maxSearchKeys = 1000
)

// searchCharsets are the charsets BADCHARSET lists: the ones a client
// should fall back to. SEARCH accepts every charset the message package
// converts (message.KnownCharset): the IANA and WHATWG names of
// golang.org/x/text and UTF-7.
var searchCharsets = []string{"UTF-8", "US-ASCII"}

func knownCharset(cs string) bool {
	for _, s := range searchCharsets {
		if strings.EqualFold(cs, s) {
			return true
		}
	}
	return message.KnownCharset(cs)
}

type searchParser struct {
	dec     *wire.Decoder
	keys    int
	charset string
	invalid string // the first invalid search string's problem
}

// parseSearch reads the arguments of SEARCH, from the space after the
// command name through the final CRLF.
func parseSearch(dec *wire.Decoder) (*searchCmd, error) {
	p := &searchParser{dec: dec}
	cmd := &searchCmd{}
	if err := dec.SP(); err != nil {
		return nil, err
	}
	// RETURN and CHARSET are atoms where a key could be: read the first
	// atom and see.
	name, err := p.maybeAtom()
	if err != nil {
		return nil, err
	}
	if name == "RETURN" {
		if err := p.readReturn(cmd); err != nil {
			return nil, err
		}
		if err := dec.SP(); err != nil {
			return nil, err
		}
		if name, err = p.maybeAtom(); err != nil {
			return nil, err
		}
	}
	if name == "CHARSET" {
		if err := dec.SP(); err != nil {
			return nil, err
		}
		if cmd.charset, err = dec.Astring(); err != nil {
			return nil, err
		}
		p.charset = cmd.charset
		if err := dec.SP(); err != nil {
			return nil, err
		}
		if name, err = p.maybeAtom(); err != nil {
			return nil, err
		}
	}
	top := &searchKey{op: opAnd}
	for {
		var k *searchKey
		if name != "" {
			k, err = p.readNamedKey(name, 0)
			name = ""
		} else {
			k, err = p.readKey(0)
		}
		if err != nil {
			return nil, err
		}
		top.kids = append(top.kids, k)
		if dec.AtEOL() {
			break
		}
		if err := dec.SP(); err != nil {
			return nil, err
		}
	}
	if err := dec.CRLF(); err != nil {
		return nil, err
	}
	cmd.key = top
	cmd.invalid = p.invalid
	if len(top.kids) == 1 {
		cmd.key = top.kids[0]
	}
	return cmd, nil
}

// maybeAtom reads an atom, upper-cased, when one is next (not a sequence
// set or a parenthesized list), else returns "".
func (p *searchParser) maybeAtom() (string, error) {
	switch c := p.dec.Peek(); {
	case c == '(' || c == '*' || c == '$' || (c >= '0' && c <= '9'):
		return "", nil
	}
	name, err := p.dec.Atom()
	return strings.ToUpper(name), err
}

// readReturn reads " (" [option *(SP option)] ")" after RETURN (RFC 4466
// search-return-opts with RFC 4731's options).
func (p *searchParser) readReturn(cmd *searchCmd) error {
	if err := p.dec.SP(); err != nil {
		return err
	}
	cmd.esearch = true
	err := p.dec.List(func() error {
		opt, err := p.dec.Atom()
		if err != nil {
			return err
		}
		switch strings.ToUpper(opt) {
		case "MIN":
			cmd.ret |= retMin
		case "MAX":
			cmd.ret |= retMax
		case "ALL":
			cmd.ret |= retAll
		case "COUNT":
			cmd.ret |= retCount
		default:
			return syntaxErr("unknown SEARCH return option " + printable(opt))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if cmd.ret == 0 {
		// RFC 4731 §3.1: RETURN () is RETURN (ALL).
		cmd.ret = retAll
	}
	return nil
}

// readKey reads one search-key.
func (p *searchParser) readKey(depth int) (*searchKey, error) {
	if depth >= maxSearchDepth {
		return nil, &wire.LimitError{Code: "LIMIT", Msg: "search keys nested too deeply"}
	}
	switch c := p.dec.Peek(); {
	case c == '(':
		if err := p.count(); err != nil {
			return nil, err
		}
		k := &searchKey{op: opAnd}
		err := p.dec.List(func() error {
			kid, err := p.readKey(depth + 1)
			if err == nil {
				k.kids = append(k.kids, kid)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(k.kids) == 0 {
			return nil, syntaxErr("empty search key list")
		}
		if len(k.kids) == 1 {
			return k.kids[0], nil
		}
		return k, nil
	case c == '*' || c == '$' || (c >= '0' && c <= '9'):
		if err := p.count(); err != nil {
			return nil, err
		}
		set, err := p.dec.SeqSet()
		if err != nil {
			return nil, err
		}
		return &searchKey{op: opSeq, set: set}, nil
	}
	name, err := p.dec.Atom()
	if err != nil {
		return nil, err
	}
	return p.readNamedKey(strings.ToUpper(name), depth)
}

func (p *searchParser) count() error {
	p.keys++
	if p.keys > maxSearchKeys {
		return &wire.LimitError{Code: "LIMIT", Msg: "too many search keys"}
	}
	return nil
}

func flagKey(f string) *searchKey    { return &searchKey{op: opFlag, flag: f} }
func notKey(k *searchKey) *searchKey { return &searchKey{op: opNot, kids: []*searchKey{k}} }
func headerKey(field, v string) *searchKey {
	return &searchKey{op: opHeader, field: field, value: foldString(v)}
}

// readNamedKey reads the arguments of the key called name (upper case).
func (p *searchParser) readNamedKey(name string, depth int) (*searchKey, error) {
	if depth >= maxSearchDepth {
		return nil, &wire.LimitError{Code: "LIMIT", Msg: "search keys nested too deeply"}
	}
	if err := p.count(); err != nil {
		return nil, err
	}
	switch name {
	case "ALL":
		return &searchKey{op: opAll}, nil
	case "ANSWERED":
		return flagKey(imap.FlagAnswered), nil
	case "DELETED":
		return flagKey(imap.FlagDeleted), nil
	case "DRAFT":
		return flagKey(imap.FlagDraft), nil
	case "FLAGGED":
		return flagKey(imap.FlagFlagged), nil
	case "SEEN":
		return flagKey(imap.FlagSeen), nil
	case "UNANSWERED":
		return notKey(flagKey(imap.FlagAnswered)), nil
	case "UNDELETED":
		return notKey(flagKey(imap.FlagDeleted)), nil
	case "UNDRAFT":
		return notKey(flagKey(imap.FlagDraft)), nil
	case "UNFLAGGED":
		return notKey(flagKey(imap.FlagFlagged)), nil
	case "UNSEEN":
		return notKey(flagKey(imap.FlagSeen)), nil
	case "RECENT":
		return &searchKey{op: opRecent}, nil
	case "NEW":
		// RFC 3501: equivalent to (RECENT UNSEEN).
		return &searchKey{op: opAnd, kids: []*searchKey{{op: opRecent}, notKey(flagKey(imap.FlagSeen))}}, nil
	case "OLD":
		return notKey(&searchKey{op: opRecent}), nil
	case "KEYWORD", "UNKEYWORD":
		if err := p.dec.SP(); err != nil {
			return nil, err
		}
		// "KEYWORD" SP flag-keyword, flag-keyword = atom (RFC 3501 §9,
		// RFC 9051 §9 too), and "\" is not an ATOM-CHAR: a system flag
		// is refused, not searched for as if it were a keyword. Flag
		// reads both, so that the answer can say what is wrong.
		f, err := p.dec.Flag()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(f, `\`) {
			return nil, syntaxErr(name + " takes a keyword (an atom), not " + printable(f))
		}
		k := flagKey(f)
		if name == "UNKEYWORD" {
			return notKey(k), nil
		}
		return k, nil
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		v, err := p.arg()
		if err != nil {
			return nil, err
		}
		return headerKey(headerNames[name], v), nil
	case "BODY", "TEXT":
		v, err := p.arg()
		if err != nil {
			return nil, err
		}
		op := opBody
		if name == "TEXT" {
			op = opText
		}
		return &searchKey{op: op, value: foldString(v)}, nil
	case "HEADER":
		field, err := p.arg()
		if err != nil {
			return nil, err
		}
		v, err := p.arg()
		if err != nil {
			return nil, err
		}
		return headerKey(field, v), nil
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		if err := p.dec.SP(); err != nil {
			return nil, err
		}
		d, err := p.dec.Date()
		if err != nil {
			return nil, err
		}
		return &searchKey{op: dateOps[name], num: civilDate(d)}, nil
	case "LARGER", "SMALLER":
		if err := p.dec.SP(); err != nil {
			return nil, err
		}
		n, err := p.dec.Number()
		if err != nil {
			return nil, err
		}
		op := opLarger
		if name == "SMALLER" {
			op = opSmaller
		}
		return &searchKey{op: op, num: int64(n)}, nil
	case "UID":
		if err := p.dec.SP(); err != nil {
			return nil, err
		}
		set, err := p.dec.SeqSet()
		if err != nil {
			return nil, err
		}
		return &searchKey{op: opUID, set: set}, nil
	case "MODSEQ":
		// MODSEQ [entry-name entry-type-req] mod-sequence-valzer. We keep
		// one mod-sequence per message, so the entry is checked and
		// ignored (RFC 7162 §3.1.5).
		if err := p.dec.SP(); err != nil {
			return nil, err
		}
		if c := p.dec.Peek(); c == '"' || c == '{' {
			entry, err := p.dec.String()
			if err != nil {
				return nil, err
			}
			if len(entry) <= len("/flags/") || !strings.EqualFold(entry[:len("/flags/")], "/flags/") {
				return nil, syntaxErr("MODSEQ entry name must be /flags/<flag>")
			}
			if err := p.dec.SP(); err != nil {
				return nil, err
			}
			typ, err := p.dec.Atom()
			if err != nil {
				return nil, err
			}
			switch strings.ToLower(typ) {
			case "priv", "shared", "all":
			default:
				return nil, syntaxErr("MODSEQ entry type must be priv, shared or all")
			}
			if err := p.dec.SP(); err != nil {
				return nil, err
			}
		}
		n, err := p.dec.Number64()
		if err != nil {
			return nil, err
		}
		return &searchKey{op: opModSeq, num: int64(n)}, nil
	case "NOT":
		if err := p.dec.SP(); err != nil {
			return nil, err
		}
		k, err := p.readKey(depth + 1)
		if err != nil {
			return nil, err
		}
		return notKey(k), nil
	case "OR":
		k := &searchKey{op: opOr, kids: make([]*searchKey, 2)}
		for i := range k.kids {
			if err := p.dec.SP(); err != nil {
				return nil, err
			}
			kid, err := p.readKey(depth + 1)
			if err != nil {
				return nil, err
			}
			k.kids[i] = kid
		}
		return k, nil
	}
	return nil, syntaxErr("unknown search key " + printable(name))
}

// arg reads " " astring, a search string, checks that it is text in the
// search's charset and returns it in UTF-8.
func (p *searchParser) arg() (string, error) {
	if err := p.dec.SP(); err != nil {
		return "", err
	}
	s, err := p.dec.Astring()
	if err != nil {
		return s, err
	}
	u, problem := searchString(p.charset, s)
	if problem != "" && p.invalid == "" {
		p.invalid = problem
	}
	return u, nil
}

// searchString converts the search string s from charset to UTF-8 and
// returns why it is not text in charset, or "". Without CHARSET, UTF-8 is
// accepted (RFC 9051 §6.4.4; RFC 3501's default, US-ASCII, is a subset).
// A charset SEARCH does not know is left alone: the answer to it is NO
// [BADCHARSET].
func searchString(charset, s string) (string, string) {
	switch {
	case charset == "" || strings.EqualFold(charset, "UTF-8"):
		if !utf8.ValidString(s) {
			return s, "Search string is not valid UTF-8"
		}
	case strings.EqualFold(charset, "US-ASCII"):
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return s, "Search string is not US-ASCII, the charset given"
			}
		}
	case message.KnownCharset(charset):
		u, ok := message.DecodeCharset(charset, []byte(s))
		if !ok {
			return s, "Search string is not text in " + printable(charset) + ", the charset given"
		}
		return u, ""
	}
	return s, ""
}

var headerNames = map[string]string{
	"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To",
}

var dateOps = map[string]searchOp{
	"BEFORE": opBefore, "ON": opOn, "SINCE": opSince,
	"SENTBEFORE": opSentBefore, "SENTON": opSentOn, "SENTSINCE": opSentSince,
}

// civilDate is the date of t in t's own zone as yyyymmdd, which orders
// like the dates.
func civilDate(t time.Time) int64 {
	y, m, d := t.Date()
	return int64(y)*10000 + int64(m)*100 + int64(d)
}
