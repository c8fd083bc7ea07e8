//go:build linux

package e2e

import (
	"os"
	"testing"

	"github.com/quickimap/quickimap/internal/pgtest"
)

// The multi-node tests share one PostgreSQL cluster per test process,
// stopped here after the tests.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
