package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The data directory is 0700, the database and its -wal and -shm files
// (which hold password hashes) 0600, whatever the umask and even in a
// directory made 0755 beforehand; a store left with looser modes is
// tightened when opened.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	check := func(when string) {
		t.Helper()
		want := map[string]os.FileMode{
			dir:                                 0o700,
			filepath.Join(dir, FileName):        0o600,
			filepath.Join(dir, FileName+"-wal"): 0o600,
			filepath.Join(dir, FileName+"-shm"): 0o600,
			filepath.Join(dir, ReserveName):     0o600,
			filepath.Join(dir, bodyDir):         0o700,
		}
		for name, mode := range want {
			fi, err := os.Stat(name)
			if err != nil {
				t.Errorf("%s: %v", when, err)
				continue
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s: %s has mode %v, want %v", when, filepath.Base(name), fi.Mode().Perm(), mode)
			}
		}
	}
	s := openTest(t, dir)
	if _, err := s.CreateUser(context.Background(), "alice", "hash", nil); err != nil {
		t.Fatal(err)
	}
	check("new store")
	// Loosen everything while it is open (as an older version left it),
	// then open it again beside the first (as "quickimap user" does).
	for _, name := range []string{FileName, FileName + "-wal", FileName + "-shm"} {
		os.Chmod(filepath.Join(dir, name), 0o644)
	}
	os.Chmod(dir, 0o755)
	s2 := openTest(t, dir)
	check("reopened")
	s2.Close()
	s.Close()
}
