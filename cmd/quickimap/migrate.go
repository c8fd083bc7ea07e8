package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quickimap/quickimap/store/postgres"
	"github.com/quickimap/quickimap/store/sqlite"
	"github.com/quickimap/quickimap/store/transfer"
)

const migrateUsage = `Usage: quickimap migrate [--data DIR] --postgres DSN

Copies the embedded store of the data directory into an empty PostgreSQL
database, for "quickimap serve --postgres DSN" to serve. Everything a
client has cached stays valid: accounts and their password hashes,
mailboxes with their UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ, special use
and subscriptions, messages with their UIDs, MODSEQs, flags, INTERNALDATE
and bodies byte for byte, the expunge tombstones that QRESYNC's VANISHED
(EARLIER) reports, and the resumable sessions, which clients resume
against the new store as if nothing had happened.

Stop the server first: the copy is the store as it was when migrate
began, and what a running server changes afterwards is not copied; a
change committed during the copy makes migrate fail.

The database must be empty (a schema without rows, as a previous
"quickimap check --postgres" may have made, is empty); migrate refuses
any other. Rows are copied in batches as they are read, so memory does
not grow with the store. At the end migrate compares the copy with the
original (rows per table; per mailbox the counters a client sees) and
runs the checks of "quickimap check --postgres"; it exits 1 if anything
differs. If it fails part-way, the database holds a partial copy: drop
and create the database before running it again.

Flags:
  --data DIR       data directory (default ./quickimap-data)
  --postgres DSN   PostgreSQL database to copy into (required)
  --config FILE    configuration file to take the data directory and DSN from
`

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("migrate", stderr)
	load := configFlags(fs, "data", "postgres")
	usage := func(w io.Writer) { fmt.Fprint(w, migrateUsage) }
	pos, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "quickimap migrate: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "quickimap migrate: %v\n", err)
		return exitUsage
	}
	if cfg.Postgres == "" {
		fmt.Fprintf(stderr, "quickimap migrate: --postgres DSN is required: the database to copy into\n\n%s", migrateUsage)
		return exitUsage
	}
	if err := migrate(ctx, cfg.DataDir, cfg.Postgres, storeOptions(&cfg), postgresOptions(&cfg), stdout, nil); err != nil {
		fmt.Fprintf(stderr, "quickimap migrate: %v\n", err)
		return exitFail
	}
	return exitOK
}

// migrate copies the embedded store in dir into the PostgreSQL database
// dsn and verifies the copy. onBatch, when not nil, runs after each
// batch written (tests change the store there).
func migrate(ctx context.Context, dir, dsn string, so sqlite.Options, po postgres.Options, out io.Writer, onBatch func()) (err error) {
	start := time.Now()
	st, err := openStore(ctx, dir, false, so)
	if err != nil {
		return err
	}
	defer st.Close()
	src := st.(*sqlite.Store)
	pg, err := postgres.Open(ctx, dsn, po)
	if err != nil {
		// The DSN may hold a password: it is not repeated here.
		return fmt.Errorf("opening the PostgreSQL store: %w", err)
	}
	defer pg.Close()

	exp, err := src.Export(ctx)
	if err != nil {
		return err
	}
	defer exp.Close()
	// Another process's commit from here on (a server still running)
	// would be missing from the copy: the first call records where the
	// database stands, the one after the copy tells.
	if _, err := src.ExternalChanges(ctx); err != nil {
		return err
	}
	want, err := exp.Totals(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "copying %d account(s), %d mailbox(es), %d message(s) (%d bodies, %d bytes), %d tombstone(s), %d session(s)\n",
		want.Users, want.Mailboxes, want.Messages, want.Bodies, want.BodyBytes, want.Tombstones, want.Sessions)

	last := time.Now()
	progress := func(table string, n int64) {
		if onBatch != nil {
			onBatch()
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(out, "  %s: %d rows (%s)\n", table, n, time.Since(start).Round(time.Second))
		}
	}
	got, err := pg.Import(ctx, exp, progress)
	if errors.Is(err, postgres.ErrNotEmpty) {
		return fmt.Errorf("%w; migrate copies into an empty database only", err)
	}
	if err != nil {
		return fmt.Errorf("%w (the database now holds a partial copy: drop and create it before trying again)", err)
	}
	copied := time.Since(start)
	fmt.Fprintf(out, "copied in %s; verifying\n", copied.Round(time.Millisecond))
	exp.Close()

	if changed, err := src.ExternalChanges(ctx); err != nil {
		return err
	} else if changed {
		return errors.New("the store changed while it was copied (is a server running on it?): " +
			"the copy misses those changes; stop the server, drop and create the database, and run migrate again")
	}
	problems := verifyMigration(ctx, want, got, src, pg)
	for _, p := range problems {
		fmt.Fprintln(out, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the copy differs from the original or fails its checks: %d problem(s)", len(problems))
	}
	secs := max(copied.Seconds(), 1e-3)
	fmt.Fprintf(out, "ok: %d message(s) in %s (%.0f messages/s, %.1f MB/s), verified in %s\n",
		got.Messages, copied.Round(time.Millisecond), float64(got.Messages)/secs, float64(got.BodyBytes)/secs/1e6,
		(time.Since(start) - copied).Round(time.Millisecond))
	return nil
}

// verifyMigration compares the rows the source had with those written
// and those the database now counts, then the two stores as clients see
// them, then runs the PostgreSQL store's checks.
func verifyMigration(ctx context.Context, want, got transfer.Totals, src *sqlite.Store, pg *postgres.Store) []string {
	var problems []string
	if got != want {
		problems = append(problems, fmt.Sprintf("rows written %+v, the original has %+v", got, want))
	}
	c, err := pg.Counts(ctx)
	if err != nil {
		return append(problems, fmt.Sprintf("counting the copy: %v", err))
	}
	have := transfer.Totals{Users: c.Users, Mailboxes: c.Mailboxes, Subscriptions: want.Subscriptions, Bodies: c.Bodies,
		Messages: c.Messages, Tombstones: c.Tombstones, Sessions: c.Sessions, BodyBytes: c.BodyBytes}
	if have != want {
		problems = append(problems, fmt.Sprintf("the copy holds %+v, the original %+v", have, want))
	}
	diffs, err := transfer.Compare(ctx, src, pg)
	if err != nil {
		return append(problems, fmt.Sprintf("comparing: %v", err))
	}
	problems = append(problems, diffs...)
	checks, err := pg.Check(ctx)
	if err != nil {
		return append(problems, fmt.Sprintf("checking the copy: %v", err))
	}
	return append(problems, checks...)
}
