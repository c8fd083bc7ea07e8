package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/quickimap/quickimap/bus/pgbus"
	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/server"
)

// openBus gives a server on the PostgreSQL store its bus of change hints
// (LISTEN/NOTIFY on the same database), so that its sessions learn at once
// of the other nodes' writes, and theirs of its own. The embedded store
// has no other node: no bus. The returned function closes the bus, after
// the server's Shutdown and before the store's Close.
func openBus(ctx context.Context, cfg *config.Config, opts *server.Options, logger *slog.Logger) (func(), error) {
	if cfg.Postgres == "" {
		return func() {}, nil
	}
	if opts.NodeID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("naming the node: %w", err)
		}
		opts.NodeID = host
	}
	b, err := pgbus.New(ctx, cfg.Postgres, opts.NodeID, pgbus.Options{Logger: logger})
	if err != nil {
		// The DSN may hold a password: it is not repeated here.
		return nil, fmt.Errorf("opening the bus of change hints: %w", err)
	}
	opts.Bus = b
	return func() { b.Close() }, nil
}
