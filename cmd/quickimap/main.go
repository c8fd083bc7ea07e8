// Command quickimap runs the quickimap IMAP server and manages its
// accounts.
//
//	quickimap serve [flags]            run the server
//	quickimap user add|passwd|del|list manage accounts
//	quickimap check                    verify the store
//	quickimap import                   copy mbox files and Maildirs into an account
//	quickimap backup                   copy the live store consistently
//	quickimap migrate                  copy the embedded store into PostgreSQL
//	quickimap bench reconnect          measure reconnection strategies
//	quickimap bench load               load any IMAP server and measure it
//	quickimap sync                     mirror a mailbox into a Maildir
//	quickimap version                  print the version (also --version)
//
// Run "quickimap help" for the details.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command failed, or check found problems
	exitUsage = 2 // the command line is wrong
)

const usageText = `quickimap is an IMAP server for phones on bad networks.

Usage:
  quickimap serve [STORE] [--listen ADDR] [--tls-listen ADDR --cert FILE --key FILE]
                  [--node-id NAME] [--config FILE] [--no-initial-user]
                  [--allow-insecure-auth] [more flags]
      Run the server. On first start it creates the account "user" and
      prints its password. "quickimap help serve" lists every flag.
  quickimap user add [STORE] NAME           create an account (password from stdin or prompt)
  quickimap user passwd [STORE] NAME        change an account's password
  quickimap user del [STORE] NAME           delete an account and all its mail
  quickimap user list [STORE]               list the accounts
  quickimap check [STORE]                   verify the store; exit 1 on problems
  quickimap import [STORE] --user NAME [--mailbox NAME] PATH...
      Copy mbox files and Maildir trees into an account, also while the
      server runs; messages already there are skipped.
  quickimap backup [--data DIR] OUT
      Copy the store, while the server runs, to the new directory OUT;
      "quickimap check --data OUT" verifies the copy. (A PostgreSQL store is
      backed up with PostgreSQL's tools: "quickimap help backup".)
  quickimap migrate [--data DIR] --postgres DSN
      Copy the embedded store into an empty PostgreSQL database, keeping
      UIDs, MODSEQs and resumable sessions; stop the server first.
  quickimap bench reconnect --addr HOST:PORT --user NAME [flags]
      Measure the bytes, round trips and time of reconnecting to a mailbox
      with SID, QRESYNC, CONDSTORE and a full resync, against any server.
  quickimap bench load --addr HOST:PORT --users N [--clients N] [--duration 30s] [flags]
      Load any IMAP server with a phone-like mix of commands from many
      clients and report commands per second, latencies, logins per
      second and the server's CPU time per command.
  quickimap sync --addr HOST:PORT --user NAME --maildir DIR [--watch] [flags]
      Mirror one mailbox of any IMAP server into a local Maildir.
  quickimap version                         print the version (also --version)
  quickimap help [COMMAND]                  show this text, or a command's flags

STORE is --data DIR, the embedded store's directory (default
./quickimap-data), or --postgres DSN, a PostgreSQL store that several
servers may share (docs/scale-out.md). bench and sync talk IMAP to any
server and open no store.
`

// run is the whole program: it takes the arguments after the program name
// and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run with a context whose end stops a running server like
// a signal does.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "user":
		return runUser(ctx, rest, stdin, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, stdout, stderr)
	case "import":
		return runImport(ctx, rest, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdin, stdout, stderr)
	case "sync":
		return runSync(ctx, rest, stdin, stdout, stderr)
	case "version", "--version", "-version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		return runHelp(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "quickimap: unknown command %q\n\n%s", cmd, usageText)
	return exitUsage
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	switch args[0] {
	case "serve":
		printServeUsage(stdout)
	case "user":
		fmt.Fprint(stdout, userUsage)
	case "check":
		fmt.Fprint(stdout, checkUsage)
	case "import":
		fmt.Fprint(stdout, importUsage)
	case "backup":
		fmt.Fprint(stdout, backupUsage)
	case "migrate":
		fmt.Fprint(stdout, migrateUsage)
	case "bench":
		io.WriteString(stdout, benchUsage+"\n"+benchLoadUsage)
	case "sync":
		fmt.Fprint(stdout, syncUsage)
	case "version":
		fmt.Fprint(stdout, versionUsage)
	default:
		fmt.Fprintf(stderr, "quickimap help: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
	return exitOK
}
