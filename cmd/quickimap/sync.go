package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/client"
)

const syncUsage = `Usage:
  quickimap sync --addr HOST:PORT --user NAME --maildir DIR [flags]

Mirrors one mailbox of an IMAP server (any server) into a local Maildir,
DIR/cur, DIR/new and DIR/tmp, one way: the server is the reference, and
local changes to the mirrored files are undone. New messages are
downloaded into DIR/cur as <time>.<uid>_<uidvalidity>.<host>:2,<flags>,
with the Maildir flag letters D (\Draft), F (\Flagged), R (\Answered),
S (\Seen) and T (\Deleted); flag changes rename the files, expunged
messages delete them, and a new UIDVALIDITY replaces them all. Files with
other names are left alone. The synchronization state (UIDs, flags,
HIGHESTMODSEQ, the resumable session) is kept in the --state file, so a
second run costs one quick resynchronization and downloads nothing new.

With --watch it stays connected (IDLE) and applies changes as they come,
reconnecting when the connection drops, until interrupted (Ctrl-C or
SIGTERM).

The password is the first line of --password-file, else the environment
variable QUICKIMAP_PASSWORD, else it is prompted for on a terminal or read
as one line from standard input.

Flags:
  --addr HOST:PORT         server address (required)
  --user NAME              account name (required)
  --password-file FILE     file whose first line is the password
  --tls                    implicit TLS (port 993 style)
  --starttls               plain connection upgraded with STARTTLS
  --ca-file FILE           PEM certificates to trust (such as the server's
                           self-signed one) instead of the system's
  --insecure-skip-verify   do not verify the server's certificate
  --mailbox NAME           mailbox to mirror (default INBOX)
  --maildir DIR            the Maildir (required; created if missing)
  --state FILE             synchronization state (default DIR/.quickimap-sync-state)
  --watch                  keep running and apply changes as they happen
  --no-compress            do not use COMPRESS=DEFLATE, which is used when the
                           server offers it
  --verbose                log the client's protocol to standard error
`

func runSync(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("sync", stderr)
	var sf serverFlags
	sf.register(fs)
	mailbox := fs.String("mailbox", "INBOX", "mailbox to mirror")
	dir := fs.String("maildir", "", "the Maildir")
	statePath := fs.String("state", "", "state file")
	watch := fs.Bool("watch", false, "keep running")
	verbose := fs.Bool("verbose", false, "log the protocol")
	noCompress := fs.Bool("no-compress", false, "do not use COMPRESS=DEFLATE")
	usage := func(w io.Writer) { fmt.Fprint(w, syncUsage) }
	pos, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "quickimap sync: "+format+"\n", a...)
		return exitUsage
	}
	if len(pos) > 0 {
		return bad("unexpected argument %q", pos[0])
	}
	if err := sf.check(); err != nil {
		return bad("%v", err)
	}
	if *dir == "" {
		return bad("--maildir is required")
	}
	if *mailbox == "" {
		return bad("--mailbox must not be empty")
	}
	if *statePath == "" {
		*statePath = filepath.Join(*dir, ".quickimap-sync-state")
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "quickimap sync: %v\n", err)
		return exitFail
	}
	pw, err := sf.password(stdin, stderr)
	if err != nil {
		return fail(err)
	}
	m, err := newMirror(*dir, &sf, pw, *mailbox)
	if err != nil {
		return fail(err)
	}

	opts := sf.clientOptions(pw)
	opts.Mailbox = *mailbox
	opts.Store = &client.FileStore{Path: *statePath}
	// RFC 4978: fewer bytes for one more round trip at login.
	opts.Compress = !*noCompress
	level := slog.LevelWarn
	if *verbose {
		level = slog.Level(-8)
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	c := client.New(opts)
	closeClient := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.Close(cctx)
	}

	res, err := c.Sync(ctx)
	if err != nil {
		closeClient()
		return fail(err)
	}
	st := c.State()
	stats, err := m.apply(ctx, &st)
	m.report(stdout, &st, stats, &res)
	if err != nil {
		closeClient()
		return fail(err)
	}
	if !*watch {
		closeClient()
		return exitOK
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(client.Event) { poke() }) }()
	var retry *time.Timer
	for {
		select {
		case <-trigger:
			st := c.State()
			stats, err := m.apply(ctx, &st)
			if stats != (mirrorStats{}) || err != nil {
				m.report(stdout, &st, stats, nil)
			}
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "quickimap sync: %v (retrying in 10s)\n", err)
				if retry != nil {
					retry.Stop()
				}
				retry = time.AfterFunc(10*time.Second, poke)
			}
		case err := <-done:
			if retry != nil {
				retry.Stop()
			}
			closeClient()
			if err != nil && !errors.Is(err, context.Canceled) {
				return fail(err)
			}
			return exitOK
		}
	}
}

// maildirFlags maps IMAP system flags to Maildir info letters (in the
// ASCII order the Maildir convention wants).
var maildirFlags = []struct {
	letter byte
	flag   string
}{
	{'D', `\Draft`}, {'F', `\Flagged`}, {'R', `\Answered`}, {'S', `\Seen`}, {'T', `\Deleted`},
}

// flagLetters returns the Maildir info letters of an IMAP flag list;
// keywords have none.
func flagLetters(flags []string) string {
	var b []byte
	for _, mf := range maildirFlags {
		if slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, mf.flag) }) {
			b = append(b, mf.letter)
		}
	}
	return string(b)
}

// mirror is the local Maildir of one mailbox.
type mirror struct {
	dir     string
	host    string
	sf      *serverFlags
	pw      string
	mailbox string
	seq     atomic.Int64
}

// mirrorStats counts what one apply did.
type mirrorStats struct {
	downloaded, renamed, deleted, missing int
}

// localFile is a message file of the mirror.
type localFile struct {
	sub   string // "cur" or "new"
	name  string
	uid   uint32
	uv    uint32
	flags string // the Maildir info letters
}

func newMirror(dir string, sf *serverFlags, pw, mailbox string) (*mirror, error) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// The Maildir convention for the characters that would break the
	// name.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &mirror{dir: dir, host: host, sf: sf, pw: pw, mailbox: mailbox}, nil
}

// parseMaildirName parses a file name written by sync:
// <time>.<uid>_<uidvalidity>.<host>[:2,<flags>].
func parseMaildirName(name string) (uid, uv uint32, flags string, ok bool) {
	base, info, hasInfo := strings.Cut(name, ":")
	if hasInfo {
		rest, found := strings.CutPrefix(info, "2,")
		if !found {
			return 0, 0, "", false
		}
		flags = rest
	}
	parts := strings.SplitN(base, ".", 3)
	if len(parts) != 3 || parts[2] == "" {
		return 0, 0, "", false
	}
	if _, err := strconv.ParseUint(parts[0], 10, 64); err != nil {
		return 0, 0, "", false
	}
	us, vs, found := strings.Cut(parts[1], "_")
	if !found {
		return 0, 0, "", false
	}
	u, err1 := strconv.ParseUint(us, 10, 32)
	v, err2 := strconv.ParseUint(vs, 10, 32)
	if err1 != nil || err2 != nil || u == 0 || v == 0 {
		return 0, 0, "", false
	}
	return uint32(u), uint32(v), flags, true
}

// scan lists the mirror's message files by UID.
func (m *mirror) scan() (map[uint32][]localFile, error) {
	files := map[uint32][]localFile{}
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(m.dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			uid, uv, flags, ok := parseMaildirName(e.Name())
			if !ok {
				continue
			}
			files[uid] = append(files[uid], localFile{sub: sub, name: e.Name(), uid: uid, uv: uv, flags: flags})
		}
	}
	return files, nil
}

func (m *mirror) fileName(uid, uv uint32, letters string) string {
	return fmt.Sprintf("%d.%d_%d.%s:2,%s", time.Now().Unix(), uid, uv, m.host, letters)
}

// apply makes the Maildir match st: deletes the files of messages that
// are gone (or of another UIDVALIDITY), renames those whose flags
// changed, and downloads the messages that have no file.
func (m *mirror) apply(ctx context.Context, st *client.MailboxState) (mirrorStats, error) {
	var stats mirrorStats
	files, err := m.scan()
	if err != nil {
		return stats, err
	}
	remove := func(f localFile) error {
		if err := os.Remove(filepath.Join(m.dir, f.sub, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		stats.deleted++
		return nil
	}
	want := make(map[uint32]bool, len(st.Messages))
	for _, msg := range st.Messages {
		want[msg.UID] = true
	}
	for uid, fs := range files {
		kept := fs[:0]
		for _, f := range fs {
			if f.uv != st.UIDValidity || !want[uid] {
				if err := remove(f); err != nil {
					return stats, err
				}
				continue
			}
			kept = append(kept, f)
		}
		files[uid] = kept
	}
	var fetch []uint32
	letters := make(map[uint32]string, len(st.Messages))
	for _, msg := range st.Messages {
		l := flagLetters(msg.Flags)
		letters[msg.UID] = l
		fs := files[msg.UID]
		if len(fs) == 0 {
			fetch = append(fetch, msg.UID)
			continue
		}
		// One file per message: prefer one in cur.
		slices.SortStableFunc(fs, func(a, b localFile) int { return strings.Compare(a.sub, b.sub) })
		for _, extra := range fs[1:] {
			if err := remove(extra); err != nil {
				return stats, err
			}
		}
		f := fs[0]
		if f.sub == "cur" && f.flags == l {
			continue
		}
		base, _, _ := strings.Cut(f.name, ":")
		if err := os.Rename(filepath.Join(m.dir, f.sub, f.name), filepath.Join(m.dir, "cur", base+":2,"+l)); err != nil {
			return stats, err
		}
		stats.renamed++
	}
	if len(fetch) > 0 {
		n, err := m.download(ctx, st.UIDValidity, fetch, letters)
		stats.downloaded = n
		stats.missing = len(fetch) - n
		if err != nil {
			return stats, err
		}
	}
	if stats != (mirrorStats{}) {
		syncDir(filepath.Join(m.dir, "cur"))
	}
	return stats, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// download fetches the messages uids (UID FETCH BODY.PEEK[]) on a
// connection of its own and writes each into tmp, then cur. It returns how
// many it wrote; a message expunged meanwhile is simply not returned.
func (m *mirror) download(ctx context.Context, uv uint32, uids []uint32, letters map[uint32]string) (int, error) {
	h, err := m.sf.dialHelper(m.pw)
	if err != nil {
		return 0, fmt.Errorf("connecting to download: %w", err)
	}
	defer func() {
		h.Logout().Wait()
		h.Close()
	}()
	stop := context.AfterFunc(ctx, func() { h.Close() })
	defer stop()
	data, err := h.Select(m.mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return 0, fmt.Errorf("EXAMINE %s: %w", m.mailbox, err)
	}
	if data.UIDValidity != uv {
		return 0, fmt.Errorf("UIDVALIDITY of %s changed during the synchronization (%d, now %d); run again", m.mailbox, uv, data.UIDValidity)
	}
	written := map[uint32]bool{}
	const chunk = 500
	for len(uids) > 0 {
		part := uids[:min(chunk, len(uids))]
		uids = uids[len(part):]
		set := make([]imap.UID, len(part))
		for i, u := range part {
			set[i] = imap.UID(u)
		}
		cmd := h.Fetch(imap.UIDSetNum(set...), &imap.FetchOptions{
			UID: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		var werr error
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			if werr != nil {
				continue // drain; Next discards the items
			}
			werr = m.writeMessage(msg, uv, letters, written)
		}
		if err := cmd.Close(); err != nil {
			return len(written), fmt.Errorf("UID FETCH: %w", err)
		}
		if werr != nil {
			return len(written), werr
		}
	}
	return len(written), nil
}

// writeMessage writes one FETCH answer: into tmp while it arrives (the
// UID may come after the body), then renamed into cur.
func (m *mirror) writeMessage(msg *imapclient.FetchMessageData, uv uint32, letters map[uint32]string, written map[uint32]bool) error {
	tmp := filepath.Join(m.dir, "tmp", fmt.Sprintf("%d.%d_%d.%s", time.Now().Unix(), os.Getpid(), m.seq.Add(1), m.host))
	var f *os.File
	var uid uint32
	var date time.Time
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(it.UID)
		case imapclient.FetchItemDataInternalDate:
			date = it.Time
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil || f != nil {
				continue
			}
			var err error
			if f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
				return err
			}
			if _, err := io.Copy(f, it.Literal); err != nil {
				return err
			}
		}
	}
	l, wanted := letters[uid]
	if f == nil || !wanted || written[uid] {
		return nil // a flag update, or a message not asked for
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	f = nil
	if !date.IsZero() {
		os.Chtimes(tmp, date, date)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "cur", m.fileName(uid, uv, l))); err != nil {
		os.Remove(tmp)
		return err
	}
	written[uid] = true
	return nil
}

// report prints one line about a synchronization.
func (m *mirror) report(w io.Writer, st *client.MailboxState, s mirrorStats, res *client.SyncResult) {
	fmt.Fprintf(w, "%s: %d messages (UIDVALIDITY %d); downloaded %d, renamed %d, deleted %d",
		m.mailbox, len(st.Messages), st.UIDValidity, s.downloaded, s.renamed, s.deleted)
	if s.missing > 0 {
		fmt.Fprintf(w, ", %d no longer on the server", s.missing)
	}
	if res != nil {
		fmt.Fprintf(w, "; %s sync, %d bytes in, %d out, %d round trips",
			strategyName(res.Strategy), res.BytesIn, res.BytesOut, res.RoundTrips)
		if res.TLSRoundTrips > 0 {
			fmt.Fprintf(w, " (+%d for TLS)", res.TLSRoundTrips)
		}
	}
	fmt.Fprintln(w)
}
