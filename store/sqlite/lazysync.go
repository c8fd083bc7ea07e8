package sqlite

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// lazySync fsyncs the WAL a bounded time after a commit made without one
// (FsyncOptimized), so that a power failure loses at most that long of
// flag changes and expunges. A commit made with an fsync cancels the
// pending sync: SQLite appends to the WAL in commit order and syncs it as
// one file, so that commit made every earlier one durable too.
type lazySync struct {
	wal   string // path of the WAL file
	delay time.Duration

	mu     sync.Mutex
	timer  *time.Timer // the pending sync; nil when none
	closed bool

	syncs atomic.Int64 // fsyncs run, for tests
}

// committed is told of every commit, on the writer; lazy: it was not
// fsynced.
func (l *lazySync) committed(lazy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !lazy {
		if l.timer != nil && l.timer.Stop() {
			l.timer = nil
		}
		return
	}
	if l.timer == nil && !l.closed {
		l.timer = time.AfterFunc(l.delay, l.fire)
	}
}

func (l *lazySync) fire() {
	l.mu.Lock()
	l.timer = nil
	l.mu.Unlock()
	l.sync()
}

// sync fsyncs the WAL file. fsync flushes the file's dirty pages whatever
// descriptor asks, so a descriptor of our own serves while SQLite keeps
// writing through its own. No WAL file: it was checkpointed and removed,
// which synced it first.
func (l *lazySync) sync() {
	f, err := os.Open(l.wal)
	if err != nil {
		return
	}
	// An error here is the disk's: the next fsynced commit meets it too
	// and reports it to its caller.
	_ = f.Sync()
	f.Close()
	l.syncs.Add(1)
}

// close stops the timer and syncs once more if a sync was pending.
func (l *lazySync) close() {
	l.mu.Lock()
	pending := l.timer != nil && l.timer.Stop()
	l.timer = nil
	l.closed = true
	l.mu.Unlock()
	if pending {
		l.sync()
	}
}
