package importer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// MboxFormat is the mbox dialect of a file, which decides how lines that
// begin with "From " inside a message were escaped when it was written.
//
// Both dialects separate messages with a "From " line (the From_ line:
// "From sender date") preceded by an empty line. A writer must therefore
// change a line of the message that begins with "From ":
//
//   - mboxo prefixes ">" to lines beginning "From " only. A reader removes
//     one ">" from lines beginning ">From " and leaves ">>From " alone;
//     a message line that was ">From " already cannot be told from an
//     escaped one, so it comes back as "From " (the format is lossy).
//   - mboxrd prefixes ">" to every line matching ">*From ", so a reader
//     removes exactly one ">" from every such line, and the round trip is
//     exact.
//
// The file does not say which dialect wrote it. The two readings differ
// only on lines beginning with two or more ">" before "From ", which are
// rare. mboxrd is the default: it is the dialect whose round trip is
// exact, so a file written by an mboxrd writer comes back byte for byte.
// Choose mboxo for files known to come from an mboxo writer.
type MboxFormat int

const (
	MboxRD MboxFormat = iota // default
	MboxO
)

// ParseMboxFormat parses "mboxrd" or "mboxo".
func ParseMboxFormat(s string) (MboxFormat, error) {
	switch strings.ToLower(s) {
	case "mboxrd", "":
		return MboxRD, nil
	case "mboxo":
		return MboxO, nil
	}
	return 0, fmt.Errorf("unknown mbox format %q (want mboxrd or mboxo)", s)
}

func (f MboxFormat) String() string {
	if f == MboxO {
		return "mboxo"
	}
	return "mboxrd"
}

// errNotMbox is a file that does not begin with a From_ line.
var errNotMbox = errors.New("not an mbox file: it does not begin with a \"From \" line")

// mboxReader splits an mbox file into messages.
type mboxReader struct {
	r      *bufio.Reader
	format MboxFormat
	line   []byte // the From_ line of the next message; nil at the end
	read   int64  // bytes consumed
	err    error
}

// mboxMessage is one message of an mbox file.
type mboxMessage struct {
	fromLine string // without "From " and the line ending
	body     []byte // unescaped, without the separating empty line
}

func newMboxReader(r io.Reader, format MboxFormat) (*mboxReader, error) {
	m := &mboxReader{r: bufio.NewReaderSize(r, 256<<10), format: format}
	for {
		line, err := m.readLine()
		if len(line) == 0 && err != nil {
			if err == io.EOF {
				return m, nil // empty file: no messages
			}
			return nil, err
		}
		if isBlank(line) {
			continue
		}
		if !bytes.HasPrefix(line, []byte("From ")) {
			return nil, errNotMbox
		}
		m.line = append([]byte(nil), line...) // line is in the reader's buffer
		return m, nil
	}
}

// readLine returns the next line with its line ending ("\n" or, for the
// last line of a file, none), or io.EOF after the last one.
func (m *mboxReader) readLine() ([]byte, error) {
	line, err := m.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A very long line: collect it.
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = m.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	m.read += int64(len(line))
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	return line, err
}

// next returns the next message, or io.EOF after the last.
func (m *mboxReader) next() (mboxMessage, error) {
	if m.err != nil {
		return mboxMessage{}, m.err
	}
	if m.line == nil {
		return mboxMessage{}, io.EOF
	}
	msg := mboxMessage{fromLine: strings.TrimRight(string(m.line[len("From "):]), "\r\n")}
	var body bytes.Buffer
	m.line = nil
	for {
		line, err := m.readLine()
		if err != nil {
			if err != io.EOF {
				m.err = err
				return mboxMessage{}, err
			}
			break
		}
		if bytes.HasPrefix(line, []byte("From ")) {
			m.line = append([]byte(nil), line...)
			break
		}
		body.Write(m.unescape(line))
	}
	msg.body = trimSeparator(body.Bytes())
	return msg, nil
}

// unescape undoes the From-escaping of one line (see MboxFormat).
func (m *mboxReader) unescape(line []byte) []byte {
	if len(line) < 6 || line[0] != '>' {
		return line
	}
	if m.format == MboxO {
		if bytes.HasPrefix(line, []byte(">From ")) {
			return line[1:]
		}
		return line
	}
	rest := bytes.TrimLeft(line, ">")
	if bytes.HasPrefix(rest, []byte("From ")) {
		return line[1:]
	}
	return line
}

// trimSeparator removes the empty line that ends every message of an
// mbox file but the last: it belongs to the file format, not to the
// message. A message that does not end with an empty line (a writer that
// forgot it, or the last message of a file) is kept whole.
func trimSeparator(b []byte) []byte {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n\r\n")):
		return b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n\n")):
		return b[:len(b)-1]
	case bytes.Equal(b, []byte("\r\n")), bytes.Equal(b, []byte("\n")):
		return b[:0]
	}
	return b
}

func isBlank(line []byte) bool { return len(bytes.TrimRight(line, "\r\n")) == 0 }

// fromLineDate reads the date of a From_ line ("sender date"). The
// traditional form is asctime's, in the local time of the machine that
// wrote it and without a zone ("Fri Apr  6 16:46:09 2001"); loc says
// which zone that was. Some writers add a numeric zone before or after
// the year (Gmail's Takeout: "Wed Jun 15 10:46:55 +0000 2022").
func fromLineDate(fromLine string, loc *time.Location) (time.Time, bool) {
	f := strings.Fields(fromLine)
	try := func(n int, layouts ...string) (time.Time, bool) {
		if len(f) < n {
			return time.Time{}, false
		}
		s := strings.Join(f[len(f)-n:], " ")
		for _, l := range layouts {
			if t, err := time.ParseInLocation(l, s, loc); err == nil {
				return t, true
			}
		}
		return time.Time{}, false
	}
	if t, ok := try(6, "Mon Jan 2 15:04:05 -0700 2006", "Mon Jan 2 15:04:05 2006 -0700"); ok {
		return t, true
	}
	return try(5, "Mon Jan 2 15:04:05 2006", "Mon Jan 2 15:04 2006")
}

// mboxFlags reads the flags mail readers keep in an mbox message's
// Status and X-Status headers (mutt, pine, Thunderbird's mbox export):
// Status R is \Seen; X-Status A, F, T and D are \Answered, \Flagged,
// \Draft and \Deleted. The headers stay in the message.
func mboxFlags(header []byte) []string {
	var flags []string
	for _, line := range bytes.Split(header, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Status")):
			if bytes.IndexByte(value, 'R') >= 0 {
				flags = append(flags, `\Seen`)
			}
		case bytes.EqualFold(name, []byte("X-Status")):
			for _, c := range value {
				switch c {
				case 'A':
					flags = append(flags, `\Answered`)
				case 'F':
					flags = append(flags, `\Flagged`)
				case 'T':
					flags = append(flags, `\Draft`)
				case 'D':
					flags = append(flags, `\Deleted`)
				}
			}
		}
	}
	return flags
}
