package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/store"
)

const userUsage = `Usage:
  quickimap user add [--data DIR] NAME      create an account with the default mailboxes
  quickimap user passwd [--data DIR] NAME   change an account's password
  quickimap user del [--data DIR] NAME      delete an account and all its mail
  quickimap user list [--data DIR]          list the accounts, one per line

Names are case-insensitive. add and passwd read the password from standard
input (one line) when it is not a terminal, and otherwise prompt for it
twice without echo.

Flags:
  --data DIR       data directory (default ./quickimap-data)
  --postgres DSN   PostgreSQL store to use instead of the data directory
  --config FILE    configuration file to take the data directory or DSN from
`

// maxNameLength bounds account names.
const maxNameLength = 255

func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "quickimap user: missing subcommand\n\n%s", userUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add", "passwd", "del", "list":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, userUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "quickimap user: unknown subcommand %q\n\n%s", sub, userUsage)
		return exitUsage
	}
	fs := newFlagSet("user "+sub, stderr)
	load := configFlags(fs, "data", "postgres")
	usage := func(w io.Writer) { fmt.Fprint(w, userUsage) }
	pos, err := parseFlags(fs, args, usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "quickimap user %s: %v\n", sub, err)
		return exitUsage
	}

	var name string
	switch {
	case sub == "list" && len(pos) > 0:
		fmt.Fprintf(stderr, "quickimap user list: unexpected argument %q\n", pos[0])
		return exitUsage
	case sub == "list":
	case len(pos) == 0:
		fmt.Fprintf(stderr, "quickimap user %s: missing account name\n\n%s", sub, userUsage)
		return exitUsage
	case len(pos) > 1:
		fmt.Fprintf(stderr, "quickimap user %s: one account name expected, got %d\n", sub, len(pos))
		return exitUsage
	default:
		name = strings.ToLower(pos[0])
		if err := checkName(name); err != nil {
			fmt.Fprintf(stderr, "quickimap user %s: %v\n", sub, err)
			return exitUsage
		}
	}

	st, err := openConfigStore(ctx, &cfg, sub == "add", storeOptions(&cfg))
	if err != nil {
		fmt.Fprintf(stderr, "quickimap user %s: %v\n", sub, err)
		return exitFail
	}
	switch sub {
	case "add":
		err = userAdd(ctx, st, name, stdin, stdout, stderr)
	case "passwd":
		err = userPasswd(ctx, st, name, stdin, stdout, stderr)
	case "del":
		err = userDel(ctx, st, name, stdout)
	case "list":
		err = userList(ctx, st, stdout)
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing store: %w", cerr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "quickimap user %s: %v\n", sub, err)
		return exitFail
	}
	return exitOK
}

// checkName rejects names that IMAP clients could not send as an atom or
// quoted string, or that would be confusing.
func checkName(name string) error {
	if !utf8.ValidString(name) {
		return errors.New("account name is not valid UTF-8")
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("account name longer than %d bytes", maxNameLength)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\\' {
			return fmt.Errorf("account name %q has a blank, control character, quote or backslash", name)
		}
	}
	return nil
}

func userAdd(ctx context.Context, st store.Store, name string, stdin io.Reader, stdout, stderr io.Writer) error {
	if _, err := st.UserByName(ctx, name); err == nil {
		return fmt.Errorf("user %s already exists", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	hash, err := newPasswordHash(stdin, stderr)
	if err != nil {
		return err
	}
	if _, err := st.CreateUser(ctx, name, hash, store.DefaultMailboxes()); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("user %s already exists", name)
		}
		return err
	}
	fmt.Fprintf(stdout, "Created user %s\n", name)
	return nil
}

func userPasswd(ctx context.Context, st store.Store, name string, stdin io.Reader, stdout, stderr io.Writer) error {
	u, err := findUser(ctx, st, name)
	if err != nil {
		return err
	}
	hash, err := newPasswordHash(stdin, stderr)
	if err != nil {
		return err
	}
	if err := st.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return notFound(err, name)
	}
	fmt.Fprintf(stdout, "Changed the password of %s\n", u.Name)
	return nil
}

func userDel(ctx context.Context, st store.Store, name string, stdout io.Writer) error {
	u, err := findUser(ctx, st, name)
	if err != nil {
		return err
	}
	if err := st.DeleteUser(ctx, u.ID); err != nil {
		return notFound(err, name)
	}
	fmt.Fprintf(stdout, "Deleted user %s\n", u.Name)
	return nil
}

func userList(ctx context.Context, st store.Store, stdout io.Writer) error {
	users, err := st.Users(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		fmt.Fprintln(stdout, u.Name)
	}
	return nil
}

func findUser(ctx context.Context, st store.Store, name string) (store.User, error) {
	u, err := st.UserByName(ctx, name)
	return u, notFound(err, name)
}

func notFound(err error, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %s", name)
	}
	return err
}

// newPasswordHash reads a new password and hashes it.
func newPasswordHash(stdin io.Reader, stderr io.Writer) (string, error) {
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	if len(pw) > auth.MaxPasswordLength {
		return "", fmt.Errorf("password longer than %d bytes", auth.MaxPasswordLength)
	}
	return auth.HashPassword(pw)
}

// readPassword prompts twice without echo on a terminal, and otherwise
// reads one line, without its line ending, from stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(stderr, "New password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Repeat password: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords do not match")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password: %w", err)
	}
	if err != nil && line == "" {
		return "", errors.New("empty password (no line on standard input)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
