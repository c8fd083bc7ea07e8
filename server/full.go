package server

import (
	"log/slog"
	"sync"
	"time"
)

// fullLogInterval is the least time between two "mail store is full"
// lines: on a full disk every refused APPEND would log one, and the log
// is often on the same disk.
const fullLogInterval = 10 * time.Second

// fullLog writes the operator's "mail store is full" error line, at most
// once per fullLogInterval, counting the failures it left out.
type fullLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (f *fullLog) log(l *slog.Logger, err error) {
	f.mu.Lock()
	now := time.Now()
	if !f.last.IsZero() && now.Sub(f.last) < fullLogInterval {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	n := f.suppressed
	f.last, f.suppressed = now, 0
	f.mu.Unlock()
	l.Error("mail store is full", "err", err, "unlogged_since_last", n)
}
