package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/bus/pgbus"
	"github.com/quickimap/quickimap/importer"
	"github.com/quickimap/quickimap/store"
)

const importUsage = `Usage: quickimap import [--data DIR | --postgres DSN] --user NAME [--mailbox NAME] [flags] PATH...

Copies mail into an account: each PATH is an mbox file or a Maildir
directory (cur/ and new/, with its Maildir++ subfolders .Sub.Folder as
mailboxes Sub/Folder). It can run while the server runs.

  mbox     internal date from the From_ line, flags from the Status and
           X-Status headers, From-escaping undone per --mbox-format
  Maildir  internal date from each file's modification time, flags from
           the ":2," suffix of the file names (P R S T D F, and Dovecot's
           keyword letters)

Messages already in their mailbox (the same bytes) are skipped, so running
the same import twice adds nothing. Bare LF line endings become CRLF
unless --keep-line-endings. A progress line is shown when standard error
is a terminal.

A running server polls the embedded store for other processes' writes
every 2 seconds: its sessions with a mailbox open, IDLE ones included, see
the imported messages within that time. With --postgres the messages go
into the PostgreSQL store, and import sends the servers sharing it a
change hint after each batch, as a node does after an APPEND: they see
the messages at once.

Flags:
  --data DIR             data directory (default ./quickimap-data)
  --postgres DSN         PostgreSQL store to import into instead of the data directory
  --config FILE          configuration file to take the data directory or DSN from
  --user NAME            the account to import into (required)
  --mailbox NAME         mailbox for mbox files and a Maildir's top folder
                         (default INBOX; created if missing)
  --mbox-format FORMAT   mboxrd (default) or mboxo: how lines beginning with
                         "From " were escaped in the mbox files
  --keep-line-endings    store messages with the line endings of the files
  --from-zone ZONE       zone of From_ line dates without one: "Local"
                         (default), "UTC" or a name like "Europe/Paris"
`

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("import", stderr)
	load := configFlags(fs, "data", "postgres")
	userName := fs.String("user", "", "")
	mailbox := fs.String("mailbox", "INBOX", "")
	format := fs.String("mbox-format", "mboxrd", "")
	keep := fs.Bool("keep-line-endings", false, "")
	zone := fs.String("from-zone", "Local", "")
	usage := func(w io.Writer) { fmt.Fprint(w, importUsage) }
	paths, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "quickimap import: "+format+"\n", a...)
		return code
	}
	if *userName == "" {
		return fail(exitUsage, "--user is required")
	}
	if len(paths) == 0 {
		return fail(exitUsage, "no PATH to import")
	}
	mf, err := importer.ParseMboxFormat(*format)
	if err != nil {
		return fail(exitUsage, "--mbox-format: %v", err)
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fail(exitUsage, "--from-zone: %v", err)
	}
	cfg, err := load()
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	st, err := openConfigStore(ctx, &cfg, false, storeOptions(&cfg))
	if err != nil {
		return fail(exitFail, "%v", err)
	}
	defer st.Close()
	if cfg.Postgres != "" {
		// The servers sharing the store hear of each batch as of
		// another node's APPEND.
		host, _ := os.Hostname()
		b, err := pgbus.New(ctx, cfg.Postgres, "import@"+host, pgbus.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil))})
		if err != nil {
			// The DSN may hold a password: it is not repeated here.
			return fail(exitFail, "opening the bus of change hints: %v", err)
		}
		defer b.Close() // sends the hints still queued
		st = hintingStore{Store: st, bus: b}
	}
	u, err := st.UserByName(ctx, strings.ToLower(*userName))
	if errors.Is(err, store.ErrNotFound) {
		return fail(exitFail, "no user %s", *userName)
	}
	if err != nil {
		return fail(exitFail, "%v", err)
	}

	pl := newProgressLine(stderr)
	opts := importer.Options{
		Mailbox:         *mailbox,
		MboxFormat:      mf,
		KeepLineEndings: *keep,
		Location:        loc,
		Warn: func(s string) {
			pl.clear()
			fmt.Fprintf(stderr, "quickimap import: %s\n", s)
		},
	}
	if pl != nil {
		opts.Progress = pl.show
	}
	im := importer.New(st, u.ID, opts)
	var ierr error
	for _, p := range paths {
		if ierr = im.Import(ctx, p); ierr != nil {
			break
		}
	}
	pl.clear()
	s := im.Stats()
	fmt.Fprintf(stdout, "%d message(s) read: %d imported, %d already present, %d refused\n",
		s.Read, s.Added, s.Skipped, s.Refused)
	if len(s.Mailboxes) > 0 {
		fmt.Fprintf(stdout, "mailboxes: %s\n", strings.Join(s.Mailboxes, ", "))
	}
	if ierr != nil {
		return fail(exitFail, "%v", ierr)
	}
	if err := st.Close(); err != nil {
		return fail(exitFail, "closing store: %v", err)
	}
	return exitOK
}

// hintingStore publishes a change hint after each append, so that the
// servers sharing a PostgreSQL store refresh the mailbox at once rather
// than at their safety poll.
type hintingStore struct {
	store.Store
	bus bus.Bus
}

func (s hintingStore) AppendMessages(ctx context.Context, userID, mailboxID int64, msgs []store.NewMessage) ([]uint32, store.Mailbox, error) {
	uids, mb, err := s.Store.AppendMessages(ctx, userID, mailboxID, msgs)
	if err == nil {
		s.bus.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: mailboxID, ModSeq: mb.HighestModSeq})
	}
	return uids, mb, err
}

// progressLine redraws one line on a terminal, at most ten times a
// second. It is nil when stderr is not a terminal.
type progressLine struct {
	w     io.Writer
	last  time.Time
	shown bool
	start time.Time
}

func newProgressLine(stderr io.Writer) *progressLine {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progressLine{w: stderr, start: time.Now()}
}

func (p *progressLine) show(s importer.Stats) {
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	rate := float64(s.Read) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r\x1b[Kimporting: %d read, %d imported, %d present, %d refused, %.1f MB, %.0f msg/s",
		s.Read, s.Added, s.Skipped, s.Refused, float64(s.Bytes)/1e6, rate)
	p.shown = true
}

func (p *progressLine) clear() {
	if p == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
	p.shown = false
}
