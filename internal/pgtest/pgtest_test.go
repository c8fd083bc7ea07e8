package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Two databases of one test are distinct, empty and writable, and a
// database is gone after its test.
func TestDB(t *testing.T) {
	ctx := context.Background()
	var first string
	t.Run("a", func(t *testing.T) {
		first = DB(t)
		conn, err := pgx.Connect(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE x (v int); INSERT INTO x VALUES (42)`); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := conn.QueryRow(ctx, `SELECT v FROM x`).Scan(&v); err != nil || v != 42 {
			t.Fatalf("read back %d, %v", v, err)
		}
		var fsync string
		if err := conn.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil || fsync != "off" {
			t.Errorf("fsync = %q, %v; want off", fsync, err)
		}
	})
	second := DB(t)
	if second == first {
		t.Fatalf("same DSN twice: %s", first)
	}
	conn, err := pgx.Connect(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("fresh database has table x: %d, %v", n, err)
	}
	if _, err := pgx.Connect(ctx, first); err == nil {
		t.Errorf("database of a finished test still exists: %s", first)
	}
}

// A directory left by a killed test process is removed once it is old
// enough; a young one, and one whose server still runs, stay.
func TestRemoveStale(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	mk := func(age time.Duration, pid string) string {
		d, err := os.MkdirTemp("", "pgtest-")
		if err != nil {
			t.Fatal(err)
		}
		if pid != "" {
			os.MkdirAll(filepath.Join(d, "data"), 0o700)
			if err := os.WriteFile(filepath.Join(d, "data", "postmaster.pid"), []byte(pid+"\n/x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk(2*time.Hour, "")
	deadPID := mk(2*time.Hour, "2147483646")
	young := mk(time.Minute, "")
	live := mk(2*time.Hour, strconv.Itoa(os.Getpid()))
	removeStale()
	for d, want := range map[string]bool{stale: false, deadPID: false, young: true, live: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", d, err == nil, want)
		}
	}
}
