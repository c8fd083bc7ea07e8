package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/postgres"
	"github.com/quickimap/quickimap/store/sqlite"
)

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints no usage of its own: parseFlags does.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs, allowing flags after positional
// arguments ("user add NAME --data DIR"); everything after "--" is
// positional. It returns the positional arguments. On -h it prints usage
// to stdout and returns flag.ErrHelp; on an error it prints the error and
// usage to stderr.
func parseFlags(fs *flag.FlagSet, args []string, usage func(io.Writer), stdout, stderr io.Writer) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return nil, err
		}
		if err != nil {
			fmt.Fprintln(stderr)
			usage(stderr)
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagExit is the exit code for an error of parseFlags.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// settingFlag is a flag that stands for a configuration key. It checks its
// value at once and records it, so that the flags can be applied over the
// configuration file, which is read after the flags are parsed.
type settingFlag struct {
	key    config.Key
	def    string
	values *[][2]string
}

func (f *settingFlag) String() string {
	if f == nil {
		return ""
	}
	return f.def
}

func (f *settingFlag) Set(v string) error {
	scratch := config.Default()
	if err := scratch.Set(f.key.Name, v); err != nil {
		return err
	}
	*f.values = append(*f.values, [2]string{f.key.Name, v})
	return nil
}

func (f *settingFlag) IsBoolFlag() bool { return f.key.Kind == config.KindBool }

// configFlags adds --config and a flag for every key in names (all keys
// when names is empty) to fs. Its result loads the configuration:
// defaults, then the file, then the flags given.
func configFlags(fs *flag.FlagSet, names ...string) func() (config.Config, error) {
	var values [][2]string
	file := fs.String("config", "", "configuration `FILE` (flags override it)")
	def := config.Default()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for _, k := range config.Keys() {
		if len(names) > 0 && !want[k.Name] {
			continue
		}
		d, _ := def.Get(k.Name)
		fs.Var(&settingFlag{key: k, def: d, values: &values}, k.Name, k.Help)
	}
	return func() (config.Config, error) {
		c := config.Default()
		if *file != "" {
			if err := c.LoadFile(*file); err != nil {
				return c, err
			}
		}
		for _, kv := range values {
			if err := c.Set(kv[0], kv[1]); err != nil {
				return c, fmt.Errorf("--%v", err)
			}
		}
		return c, nil
	}
}

// openConfigStore opens the store cfg names: the PostgreSQL database of
// cfg.Postgres when it is set, else the embedded store in cfg.DataDir
// (see openStore for create).
func openConfigStore(ctx context.Context, cfg *config.Config, create bool, so sqlite.Options) (store.Store, error) {
	if cfg.Postgres == "" {
		return openStore(ctx, cfg.DataDir, create, so)
	}
	st, err := postgres.Open(ctx, cfg.Postgres, postgresOptions(cfg))
	if err != nil {
		// The DSN may hold a password: it is not repeated here.
		return nil, fmt.Errorf("opening the PostgreSQL store: %w", err)
	}
	return st, nil
}

// openStore opens the embedded store in dir. With create, it makes the
// directory if need be; without, a missing directory is an error rather
// than a new empty store.
func openStore(ctx context.Context, dir string, create bool, opts sqlite.Options) (store.Store, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	} else if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no data directory %s (\"quickimap serve\" or \"quickimap user add\" creates it; --data chooses another)", dir)
		}
		return nil, err
	} else if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); errors.Is(err, os.ErrNotExist) {
		// Not a store (such as an interrupted backup): opening it would
		// make an empty one, which check would pass.
		return nil, fmt.Errorf("no store in %s (no %s)", dir, sqlite.FileName)
	}
	st, err := sqlite.Open(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	return st, nil
}
