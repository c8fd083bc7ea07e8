package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/store"
)

// commits records ObserveTransaction's durable flags in order.
type commits struct {
	mu      sync.Mutex
	durable []bool
}

func (c *commits) observe(_ time.Duration, durable bool) {
	c.mu.Lock()
	c.durable = append(c.durable, durable)
	c.mu.Unlock()
}

func (c *commits) last() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.durable[len(c.durable)-1]
}

func TestFsyncPolicy(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		fsync            Fsync
		flagsAndExpunges bool // durable?
	}{
		{FsyncAlways, true},
		{FsyncOptimized, false},
	} {
		t.Run(tc.fsync.String(), func(t *testing.T) {
			var c commits
			s := openOpts(t, Options{Fsync: tc.fsync, LazySyncDelay: time.Hour, ObserveTransaction: c.observe})
			u, inbox := setup(t, s)
			uids := appendN(t, s, u, inbox.ID, 3)
			if !c.last() {
				t.Error("APPEND committed without fsync")
			}
			if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids[:1], store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
				t.Fatal(err)
			}
			if got := c.last(); got != tc.flagsAndExpunges {
				t.Errorf("STORE durable = %v, want %v", got, tc.flagsAndExpunges)
			}
			if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids[1:2]); err != nil {
				t.Fatal(err)
			}
			if got := c.last(); got != tc.flagsAndExpunges {
				t.Errorf("EXPUNGE durable = %v, want %v", got, tc.flagsAndExpunges)
			}
			if _, _, _, err := s.CopyMessages(ctx, u.ID, inbox.ID, inbox.ID, uids[:1]); err != nil {
				t.Fatal(err)
			}
			if !c.last() {
				t.Error("COPY committed without fsync")
			}

			// Whatever the policy, another opener of the database (a
			// process started after this one crashed) sees every change.
			other, err := Open(ctx, filepath.Dir(s.Path()), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			infos, err := other.MessageInfos(ctx, u.ID, inbox.ID, uids)
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 2 || len(infos[0].Flags) != 1 || infos[0].Flags[0] != `\Seen` {
				t.Errorf("other opener sees %+v", infos)
			}
		})
	}
}

// waitFor polls cond until it holds or the test's patience ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLazySyncRuns(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{Fsync: FsyncOptimized, LazySyncDelay: 20 * time.Millisecond})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 1)
	before := s.lazy.syncs.Load()
	if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsAdd, []string{`\Flagged`}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the periodic WAL sync", func() bool { return s.lazy.syncs.Load() > before })
}

func TestDurableCommitCancelsLazySync(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{Fsync: FsyncOptimized, LazySyncDelay: time.Hour})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 1)
	if _, _, err := s.UpdateFlags(ctx, u.ID, inbox.ID, uids, store.FlagsAdd, []string{`\Flagged`}, 0); err != nil {
		t.Fatal(err)
	}
	pending := func() bool {
		s.lazy.mu.Lock()
		defer s.lazy.mu.Unlock()
		return s.lazy.timer != nil
	}
	if !pending() {
		t.Fatal("no sync pending after a lazy commit")
	}
	appendN(t, s, u, inbox.ID, 1)
	if pending() {
		t.Error("a sync is still pending after an fsynced commit")
	}
}

// An expunge that frees a body file fsyncs the WAL before removing the
// file, even when the expunge itself is lazy: a power failure must not
// bring back a message row whose file is gone.
func TestLazyExpungeSyncsBeforeRemovingFiles(t *testing.T) {
	ctx := context.Background()
	s := openOpts(t, Options{Fsync: FsyncOptimized, LazySyncDelay: time.Hour, LargeBody: 1})
	u, inbox := setup(t, s)
	uids := appendN(t, s, u, inbox.ID, 1)
	dir := filepath.Join(filepath.Dir(s.Path()), bodyDir)
	countFiles := func() int {
		n := 0
		filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	if countFiles() != 1 {
		t.Fatalf("%d body files, want 1", countFiles())
	}
	before := s.lazy.syncs.Load()
	if _, err := s.Expunge(ctx, u.ID, inbox.ID, uids); err != nil {
		t.Fatal(err)
	}
	if got := s.lazy.syncs.Load(); got != before+1 {
		t.Errorf("WAL syncs %d → %d, want one before the file is removed", before, got)
	}
	if countFiles() != 0 {
		t.Errorf("%d body files left after the expunge", countFiles())
	}
}
