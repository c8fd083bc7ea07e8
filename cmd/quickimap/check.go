package main

import (
	"context"
	"fmt"
	"io"
)

const checkUsage = `Usage: quickimap check [--data DIR]

Verifies the integrity of the store and prints each problem found, one per
line. Exits 1 if there is any, and prints "ok" and exits 0 otherwise.

Flags:
  --data DIR      data directory (default ./quickimap-data)
  --config FILE   configuration file to take the data directory from
`

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", stderr)
	load := configFlags(fs, "data")
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
	st, err := openStore(ctx, cfg.DataDir, false, storeOptions(&cfg))
	if err != nil {
		fmt.Fprintf(stderr, "quickimap check: %v\n", err)
		return exitFail
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
