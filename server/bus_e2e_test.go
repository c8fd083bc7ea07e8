package server_test

import (
	"context"
	"testing"

	"github.com/quickimap/quickimap/bus"
	"github.com/quickimap/quickimap/internal/bustest"
	"github.com/quickimap/quickimap/store/sqlite"
)

// Two servers on one SQLite store in one process, joined by the
// in-process broker: IDLE on one hears the other's writes.
func TestCrossNodeLocalBus(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the nodes' cleanups
	bustest.CreateUser(t, st)
	br := bus.NewBroker()
	a := bustest.StartNode(t, "a", st, br.Node("a"), nil)
	b := bustest.StartNode(t, "b", st, br.Node("b"), nil)
	bustest.RunCrossNode(t, a, b)
}
