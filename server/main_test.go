package server_test

import (
	"os"
	"testing"

	"github.com/quickimap/quickimap/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster the tests that need one started
// (pgtest.DB); a run that needs none starts nothing.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
