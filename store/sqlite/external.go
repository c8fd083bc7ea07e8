package sqlite

import (
	"context"
	"fmt"
)

// ExternalChanges reports whether another process sharing the database
// (quickimap import or user beside a running server) has committed since
// the previous call. The first call, and the first after the writer
// connection was replaced, only record where things stand and report
// false.
//
// It reads PRAGMA data_version on the writer connection, which changes
// when any other connection commits and never for the connection's own
// commits; the store's read connections never commit, so only other
// processes move it. It takes the writer slot for that one statement.
func (s *Store) ExternalChanges(ctx context.Context) (bool, error) {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.wsem }()
	if s.closed {
		return false, errStoreClosed
	}
	c, err := s.w.get(ctx)
	if err != nil {
		return false, fmt.Errorf("sqlite store: %w", err)
	}
	var v int64
	if err := c.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		s.w.check(err)
		return false, fmt.Errorf("sqlite store: data_version: %w", err)
	}
	changed := s.dataVersionConn == c && s.dataVersion != v
	s.dataVersionConn, s.dataVersion = c, v
	return changed, nil
}
