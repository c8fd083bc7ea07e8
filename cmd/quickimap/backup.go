package main

import (
	"context"
	"fmt"
	"io"

	"github.com/quickimap/quickimap/store/sqlite"
)

const backupUsage = `Usage: quickimap backup [--data DIR] OUT

Copies the store to OUT, a new (or empty) directory, while the server
keeps running: the copy is the store as it was at one instant, the
database with every message body file it refers to. OUT is a data
directory of its own: "quickimap check --data OUT" verifies it, and
"quickimap serve --data OUT" serves it. To restore, stop the server and
put OUT in the place of the data directory.

It backs up the embedded store only. A PostgreSQL store (--postgres, or
postgres in the configuration file) is a database like any other, with
every message body inside it: back it up with PostgreSQL's own tools,
which do it consistently while the servers run, for example
    pg_dump --format=custom --file=quickimap.dump DSN
restored into an empty database with pg_restore, or pg_basebackup with
WAL archiving for point-in-time recovery. backup says so and exits 2
when given --postgres.

Flags:
  --data DIR      data directory (default ./quickimap-data)
  --config FILE   configuration file to take the data directory from
`

// postgresBackupNote is backup's answer for a PostgreSQL store.
const postgresBackupNote = `the store is in PostgreSQL: back it up with PostgreSQL's tools while the servers run,
for example "pg_dump --format=custom --file=quickimap.dump DSN" (restore with pg_restore into an
empty database), or pg_basebackup with WAL archiving for point-in-time recovery
`

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backup", stderr)
	load := configFlags(fs, "data", "postgres")
	usage := func(w io.Writer) { fmt.Fprint(w, backupUsage) }
	pos, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "quickimap backup: one OUT directory expected, got %d\n\n%s", len(pos), backupUsage)
		return exitUsage
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "quickimap backup: %v\n", err)
		return exitUsage
	}
	if cfg.Postgres != "" {
		fmt.Fprint(stderr, "quickimap backup: "+postgresBackupNote)
		return exitUsage
	}
	st, err := sqlite.Backup(ctx, cfg.DataDir, pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "quickimap backup: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "backed up %s to %s: database %d bytes, %d body file(s)\n",
		cfg.DataDir, pos[0], st.DatabaseBytes, st.Files)
	return exitOK
}
