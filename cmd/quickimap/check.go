package main

import (
	"context"
	"fmt"
	"io"

	"github.com/quickimap/quickimap/store/postgres"
)

const checkUsage = `Usage: quickimap check [--data DIR | --postgres DSN]

Verifies the integrity of the store and prints each problem found, one per
line. Exits 1 if there is any, and prints "ok" and exits 0 otherwise.

With --postgres it checks the PostgreSQL store: the schema version and
quickimap's invariants (counters, UIDs, MODSEQs, the mailbox hierarchy,
unreferenced bodies); it first prints the schema version and the number
of rows of the main tables. PostgreSQL's own structures are checked by
PostgreSQL's tools (amcheck).

Flags:
  --data DIR       data directory (default ./quickimap-data)
  --postgres DSN   PostgreSQL store to check instead of the data directory
  --config FILE    configuration file to take the data directory or DSN from
`

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", stderr)
	load := configFlags(fs, "data", "postgres")
	usage := func(w io.Writer) { fmt.Fprint(w, checkUsage) }
	pos, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "quickimap check: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "quickimap check: %v\n", err)
		return exitUsage
	}
	st, err := openConfigStore(ctx, &cfg, false, storeOptions(&cfg))
	if err != nil {
		fmt.Fprintf(stderr, "quickimap check: %v\n", err)
		return exitFail
	}
	if pg, ok := st.(*postgres.Store); ok {
		c, err := pg.Counts(ctx)
		if err != nil {
			st.Close()
			fmt.Fprintf(stderr, "quickimap check: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "schema version %d: %d accounts, %d mailboxes, %d messages, %d bodies (%d bytes), %d tombstones, %d sessions\n",
			c.SchemaVersion, c.Users, c.Mailboxes, c.Messages, c.Bodies, c.BodyBytes, c.Tombstones, c.Sessions)
	}
	problems, err := st.Check(ctx)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "quickimap check: %v\n", err)
		return exitFail
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "quickimap check: %d problem(s) found\n", len(problems))
		return exitFail
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}
