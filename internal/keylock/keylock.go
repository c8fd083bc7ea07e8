// Package keylock is a set of mutexes keyed by an integer, made on demand
// and dropped when nobody holds or waits for them, whose Lock gives up
// when its context ends.
package keylock

import (
	"context"
	"sync"
)

// Locks is the set. The zero value is ready to use.
type Locks struct {
	mu sync.Mutex
	m  map[int64]*entry
}

type entry struct {
	ch   chan struct{} // holds a token while the key is locked
	refs int           // holders and waiters
}

// Lock locks key and returns its unlock, or ctx's error if ctx ends
// first.
func (l *Locks) Lock(ctx context.Context, key int64) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[int64]*entry{}
	}
	e := l.m[key]
	if e == nil {
		e = &entry{ch: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.ch <- struct{}{}:
	case <-ctx.Done():
		l.drop(key, e)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			l.drop(key, e)
		})
	}, nil
}

func (l *Locks) drop(key int64, e *entry) {
	l.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(l.m, key)
	}
	l.mu.Unlock()
}

// Len returns the number of keys held or waited for.
func (l *Locks) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
