package keylock

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestExclusion(t *testing.T) {
	var l Locks
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside := map[int64]int{}
	for g := range 16 {
		wg.Go(func() {
			key := int64(g % 3)
			for range 100 {
				unlock, err := l.Lock(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside[key]++
				if inside[key] != 1 {
					t.Errorf("%d holders of key %d", inside[key], key)
				}
				mu.Unlock()
				mu.Lock()
				inside[key]--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

func TestContext(t *testing.T) {
	var l Locks
	unlock, err := l.Lock(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, 1); err != context.DeadlineExceeded {
		t.Errorf("Lock of a held key: %v, want the deadline", err)
	}
	// Another key is free.
	u2, err := l.Lock(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	u2()
	unlock()
	unlock() // twice is harmless
	if n := l.Len(); n != 0 {
		t.Errorf("%d entries left", n)
	}
	u3, err := l.Lock(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	u3()
}
