// Package importer copies mail from mbox files and Maildir trees into an
// account of the store: `quickimap import`.
//
// It writes through the store.Store interface only, as APPEND does, so a
// running server and the import can share an SQLite store: each append
// batch is one short transaction, and the server's writes wait for it at
// most that long (the store's busy timeout covers it).
//
// # What is imported
//
// mbox (mbox.go): every message of the file, From-escaping undone by the
// chosen dialect; the internal date from the From_ line (the Date header
// when the line has none, the file's time when neither parses); flags
// from the Status and X-Status headers.
//
// Maildir (maildir.go): the messages of cur/ and new/ of the folder and
// of its Maildir++ subfolders, each subfolder into a mailbox of its own;
// flags from the file names; the internal date from the file's
// modification time.
//
// Line endings: IMAP and RFC 5322 §2.3 want CRLF, and mbox files and
// most Maildirs hold LF. Bare LFs become CRLF unless
// Options.KeepLineEndings (a message already in CRLF is stored
// unchanged). Messages with NUL bytes, which IMAP cannot send without
// BINARY, and empty ones are refused with a warning, as APPEND refuses
// them.
//
// # Running it again
//
// A message is skipped when its target mailbox already holds the same
// bytes (as they would be stored: after the line-ending conversion);
// flags and date are not compared, so a re-run after a mail reader
// changed a Maildir's flags adds nothing and changes no flags. Each
// stored message matches one imported message at most, so a file that
// holds the same message twice yields two copies on the first run and
// none on the next. The check compares sizes first (MessageInfos) and
// hashes (SHA-256) only the stored messages of an equal size, once each.
package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
)

// Options tunes an import. The zero value imports into INBOX, reads mbox
// files as mboxrd and converts line endings.
type Options struct {
	// Mailbox is the mailbox that mbox files and a Maildir's top folder
	// go to (created if missing); default INBOX. A Maildir++ subfolder
	// .A.B goes to A/B below it, or to A/B at the top when Mailbox is
	// INBOX (as Dovecot presents such a tree).
	Mailbox string
	// MboxFormat is the dialect mbox files are read in.
	MboxFormat MboxFormat
	// KeepLineEndings stores messages with their line endings as they
	// are in the files.
	KeepLineEndings bool
	// Location is the zone of From_ line dates that carry none (they are
	// the writer's local time). Default time.Local.
	Location *time.Location
	// Progress, when set, is called after every message.
	Progress func(Stats)
	// Warn, when set, is called for every message that is not imported
	// because of what it holds, and for files skipped.
	Warn func(string)
	// BatchMessages and BatchBytes bound one append transaction. Default
	// 100 messages and 4 MiB: short enough not to hold a running
	// server's writes back for long.
	BatchMessages int
	BatchBytes    int
}

// Stats counts what an import did.
type Stats struct {
	Read    int   // messages read from the sources
	Added   int   // appended to the store
	Skipped int   // already in their mailbox
	Refused int   // not importable (empty, NUL bytes)
	Bytes   int64 // bytes read from mbox files and Maildir files
	// Mailboxes lists the mailboxes messages were added to, in order.
	Mailboxes []string
}

// Importer imports into one account.
type Importer struct {
	st     store.Store
	userID int64
	opts   Options
	stats  Stats
	boxes  map[string]*target
}

// New returns an Importer into the account userID of st.
func New(st store.Store, userID int64, opts Options) *Importer {
	if opts.Mailbox == "" {
		opts.Mailbox = "INBOX"
	}
	if strings.EqualFold(opts.Mailbox, "INBOX") {
		opts.Mailbox = "INBOX"
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.BatchMessages <= 0 {
		opts.BatchMessages = 100
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 4 << 20
	}
	return &Importer{st: st, userID: userID, opts: opts, boxes: map[string]*target{}}
}

// Stats returns what the import has done so far.
func (im *Importer) Stats() Stats { return im.stats }

// Import imports path: an mbox file, or a Maildir directory with its
// Maildir++ subfolders.
func (im *Importer) Import(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if !isMaildir(path) {
			return fmt.Errorf("%s: a directory without cur/ or new/ is not a Maildir", path)
		}
		err = im.importMaildir(ctx, path)
	} else {
		err = im.importMbox(ctx, path, fi.ModTime())
	}
	if ferr := im.flush(ctx); err == nil {
		err = ferr
	}
	return err
}

func (im *Importer) importMbox(ctx context.Context, path string, mtime time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := newMboxReader(f, im.opts.MboxFormat)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	t, err := im.target(ctx, im.opts.Mailbox)
	if err != nil {
		return err
	}
	var done int64
	for n := 1; ; n++ {
		m, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		im.stats.Bytes += r.read - done
		done = r.read
		hdrEnd := headerEnd(m.body)
		date, ok := fromLineDate(m.fromLine, im.opts.Location)
		if !ok {
			if date, ok = headerDate(m.body[:hdrEnd]); !ok {
				date = mtime
			}
		}
		src := fmt.Sprintf("%s: message %d", path, n)
		if err := im.add(ctx, t, src, m.body, mboxFlags(m.body[:hdrEnd]), date); err != nil {
			return err
		}
	}
}

func (im *Importer) importMaildir(ctx context.Context, root string) error {
	folders, err := maildirFolders(root)
	if err != nil {
		return err
	}
	for _, fo := range folders {
		name := im.opts.Mailbox
		if len(fo.name) > 0 {
			sub := strings.Join(fo.name, "/")
			if name == "INBOX" {
				name = sub
			} else {
				name += "/" + sub
			}
		}
		files, err := maildirFiles(fo.dir)
		if err != nil {
			return err
		}
		if len(files) == 0 && len(fo.name) > 0 {
			// An empty subfolder still becomes a mailbox.
			if _, err := im.target(ctx, name); err != nil {
				return err
			}
			continue
		}
		kw := maildirKeywords(fo.dir)
		for _, file := range files {
			body, err := os.ReadFile(file.path)
			if errors.Is(err, os.ErrNotExist) {
				im.warn(fmt.Sprintf("%s: gone while importing, skipped", file.path))
				continue
			}
			if err != nil {
				return err
			}
			im.stats.Bytes += int64(len(body))
			t, err := im.target(ctx, name)
			if err != nil {
				return err
			}
			if err := im.add(ctx, t, file.path, body, maildirFlags(file.info, kw), file.mtime); err != nil {
				return err
			}
		}
		if err := im.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// target is a mailbox being imported into.
type target struct {
	mb    store.Mailbox
	name  string
	bySz  map[int64][]uint32  // stored messages by size, not yet matched
	sums  map[uint32][32]byte // hashes of stored messages, as computed
	batch []store.NewMessage  // waiting to be appended
	bytes int                 // in batch
	added bool                // something was appended
}

// target returns the mailbox name, created if missing, with the index of
// what it holds for the duplicate check.
func (im *Importer) target(ctx context.Context, name string) (*target, error) {
	if t, ok := im.boxes[name]; ok {
		return t, nil
	}
	mb, err := im.st.MailboxByName(ctx, im.userID, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && mb.NoSelect {
		mb, err = im.st.CreateMailbox(ctx, im.userID, name, "")
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", name, err)
	}
	metas, _, err := im.st.MessageIndex(ctx, im.userID, mb.ID)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", name, err)
	}
	t := &target{mb: mb, name: name, bySz: map[int64][]uint32{}, sums: map[uint32][32]byte{}}
	uids := make([]uint32, len(metas))
	for i, m := range metas {
		uids[i] = m.UID
	}
	for len(uids) > 0 {
		n := min(len(uids), 10_000)
		infos, err := im.st.MessageInfos(ctx, im.userID, mb.ID, uids[:n])
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", name, err)
		}
		for _, in := range infos {
			t.bySz[in.Size] = append(t.bySz[in.Size], in.UID)
		}
		uids = uids[n:]
	}
	im.boxes[name] = t
	return t, nil
}

// add imports one message into t, or skips it.
func (im *Importer) add(ctx context.Context, t *target, src string, body []byte, flags []string, date time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	im.stats.Read++
	defer im.progress()
	if !im.opts.KeepLineEndings {
		body = toCRLF(body)
	}
	switch {
	case len(body) == 0:
		im.stats.Refused++
		im.warn(src + ": empty message, not imported")
		return nil
	case bytes.IndexByte(body, 0) >= 0:
		im.stats.Refused++
		im.warn(src + ": message contains NUL bytes, which IMAP cannot send without BINARY (RFC 3516); not imported")
		return nil
	}
	dup, err := im.present(ctx, t, body)
	if err != nil {
		return err
	}
	if dup {
		im.stats.Skipped++
		return nil
	}
	m := store.NewMessage{Flags: validFlags(flags), InternalDate: date, Body: body}
	if p, err := message.Parse(body); err == nil {
		m.Structure = p.Marshal()
		m.HeaderLen = p.BodyStart
	}
	t.batch = append(t.batch, m)
	t.bytes += len(body)
	if len(t.batch) >= im.opts.BatchMessages || t.bytes >= im.opts.BatchBytes {
		return im.flushTarget(ctx, t)
	}
	return nil
}

// present reports whether t holds body already, and if so takes the
// stored copy out of the candidates for the messages that follow.
func (im *Importer) present(ctx context.Context, t *target, body []byte) (bool, error) {
	cands := t.bySz[int64(len(body))]
	if len(cands) == 0 {
		return false, nil
	}
	sum := sha256.Sum256(body)
	for i, uid := range cands {
		s, ok := t.sums[uid]
		if !ok {
			stored, err := im.st.MessageBody(ctx, im.userID, t.mb.ID, uid)
			if errors.Is(err, store.ErrNotFound) {
				continue // expunged meanwhile
			}
			if err != nil {
				return false, fmt.Errorf("mailbox %s: %w", t.name, err)
			}
			s = sha256.Sum256(stored)
			t.sums[uid] = s
		}
		if s == sum {
			t.bySz[int64(len(body))] = append(cands[:i:i], cands[i+1:]...)
			delete(t.sums, uid)
			return true, nil
		}
	}
	return false, nil
}

// flush appends what every target holds.
func (im *Importer) flush(ctx context.Context) error {
	for _, t := range im.boxes {
		if err := im.flushTarget(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (im *Importer) flushTarget(ctx context.Context, t *target) error {
	if len(t.batch) == 0 {
		return nil
	}
	if _, _, err := im.st.AppendMessages(ctx, im.userID, t.mb.ID, t.batch); err != nil {
		return fmt.Errorf("mailbox %s: %w", t.name, err)
	}
	im.stats.Added += len(t.batch)
	if !t.added {
		t.added = true
		im.stats.Mailboxes = append(im.stats.Mailboxes, t.name)
	}
	clear(t.batch)
	t.batch, t.bytes = t.batch[:0], 0
	im.progress()
	return nil
}

func (im *Importer) progress() {
	if im.opts.Progress != nil {
		im.opts.Progress(im.stats)
	}
}

func (im *Importer) warn(s string) {
	if im.opts.Warn != nil {
		im.opts.Warn(s)
	}
}

// toCRLF turns every LF not preceded by CR into CRLF; b itself when there
// is none.
func toCRLF(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// headerEnd returns the length of the header of raw, up to and with the
// empty line that ends it (all of raw when there is none).
func headerEnd(raw []byte) int {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		if line := raw[i : i+j]; len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i + j + 1
		}
		i += j + 1
	}
	return len(raw)
}

// headerDate reads the Date header field of a header block.
func headerDate(header []byte) (time.Time, bool) {
	lines := bytes.Split(header, []byte("\n"))
	for i, line := range lines {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Date")) {
			continue
		}
		v := string(bytes.TrimSpace(value))
		for _, cont := range lines[i+1:] {
			if len(cont) == 0 || (cont[0] != ' ' && cont[0] != '\t') {
				break
			}
			v += " " + string(bytes.TrimSpace(cont))
		}
		if t, err := parseDate(v); err == nil {
			return t, true
		}
		return time.Time{}, false
	}
	return time.Time{}, false
}

// parseDate parses an RFC 5322 date-time, with the obsolete forms mail
// in the wild has (day name missing, zone names, comments).
func parseDate(v string) (time.Time, error) {
	if i := strings.IndexByte(v, '('); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	v = strings.Join(strings.Fields(v), " ")
	for _, l := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700",
		"2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 MST",
		"2 Jan 2006 15:04:05 MST",
		"Mon, 2 Jan 2006 15:04 -0700",
		"2 Jan 2006 15:04 -0700",
		"Mon, 2 Jan 06 15:04:05 -0700",
		"Mon, 2 Jan 06 15:04:05 MST",
	} {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unparsable date %q", v)
}

// validFlags keeps the system flags and the keywords the store accepts
// (IMAP atoms, RFC 3501 §9 flag-keyword); a keyword from a Maildir's
// dovecot-keywords that is not one is dropped.
func validFlags(flags []string) []string {
	out := flags[:0:0]
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) || isAtom(f) {
			out = append(out, f)
		}
	}
	return out
}

func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}
