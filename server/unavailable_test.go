package server_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/store"
)

// downStore fails CreateMailbox as a store does whose database
// cannot be reached, while down is set.
type downStore struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("dial tcp 10.0.0.9:5432: connect: connection refused")

func (s *downStore) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (store.Mailbox, error) {
	if s.down.Load() {
		return store.Mailbox{}, errors.Join(store.ErrUnavailable, errDown)
	}
	return s.Store.CreateMailbox(ctx, userID, name, specialUse)
}

// A store that cannot reach its database makes the command fail with NO
// [UNAVAILABLE] (RFC 5530: "temporary failure"), which clients retry,
// not [SERVERBUG]; the connection stays usable.
func TestStoreUnavailable(t *testing.T) {
	var ds *downStore
	env := imaptest.Start(t, func(o *server.Options) {
		ds = &downStore{Store: o.Store}
		o.Store = ds
	})
	c := env.DialLogin(t)
	ds.down.Store(true)
	lines := c.Cmd("c1", "CREATE Later")
	if got := lines[len(lines)-1]; !strings.HasPrefix(got, "c1 NO [UNAVAILABLE]") {
		t.Errorf("CREATE with the store unreachable: %q, want NO [UNAVAILABLE]", got)
	}
	ds.down.Store(false)
	lines = c.Cmd("c2", "CREATE Later")
	if got := lines[len(lines)-1]; !strings.HasPrefix(got, "c2 OK") {
		t.Errorf("CREATE once the store is back: %q", got)
	}
}
