package postgres

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/quickimap/quickimap/internal/pgtest"
	"github.com/quickimap/quickimap/store"
	"github.com/quickimap/quickimap/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.DB(t)) })
}

// The suite's "directory" is a database here: the first open of a
// directory creates one, later opens reuse it.
func TestReopen(t *testing.T) {
	var mu sync.Mutex
	dbs := map[string]string{}
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		mu.Lock()
		defer mu.Unlock()
		dsn, ok := dbs[dir]
		if !ok {
			dsn = pgtest.DB(t)
			dbs[dir] = dsn
		}
		return open(t, dsn)
	})
}
