package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMemoryBudgetFrom(t *testing.T) {
	meminfo := func(kb string) []byte {
		return []byte("MemTotal:       " + kb + " kB\nMemFree:         1000 kB\n")
	}
	const gib = 1 << 30
	for _, c := range []struct {
		name    string
		meminfo []byte
		cgroups [][]byte
		want    int64
	}{
		{"4 GiB machine", meminfo("4194304"), nil, 512 << 20},
		{"24 GiB machine: the cap", meminfo("25165824"), [][]byte{[]byte("max\n")}, gib},
		{"256 MiB machine: the floor", meminfo("262144"), nil, 64 << 20},
		{"cgroup v2 limit below the machine", meminfo("25165824"), [][]byte{[]byte("2147483648\n")}, 256 << 20},
		{"cgroup v1 without a limit", meminfo("4194304"), [][]byte{nil, []byte("9223372036854771712\n")}, 512 << 20},
		{"cgroup limit alone", nil, [][]byte{[]byte("1073741824")}, 128 << 20},
		{"nothing readable", nil, [][]byte{nil, nil}, fallbackBudget},
		{"garbage", []byte("MemTotal: lots kB\n"), [][]byte{[]byte("-1")}, fallbackBudget},
	} {
		if got := memoryBudgetFrom(c.meminfo, c.cgroups...); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if d := DefaultMemoryBudget(); d < minMemoryBudget || d > maxMemoryBudget {
		t.Errorf("DefaultMemoryBudget() = %d, outside [%d, %d]", d, minMemoryBudget, maxMemoryBudget)
	}
}

func TestMemBudgetTake(t *testing.T) {
	b := newMemBudget(100)
	if !b.tryTake(60) || b.tryTake(50) || !b.tryTake(40) {
		t.Fatal("tryTake does not follow the limit")
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), 20*time.Millisecond, errMemoryBusy())
	defer cancel()
	if err := b.take(ctx, 1); err == nil || !errors.Is(err, context.Cause(ctx)) {
		t.Fatalf("take beyond the limit: %v, want the context's cause", err)
	}
	done := make(chan error)
	go func() { done <- b.take(context.Background(), 150) }()
	for {
		if _, w := b.inUse(); w == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.give(60)
	select {
	case err := <-done:
		t.Fatalf("take of 150 returned %v with 40 still taken", err)
	default:
	}
	b.give(40)
	// Alone, more than the whole budget is granted.
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if used, _ := b.inUse(); used != 150 {
		t.Fatalf("in use %d, want 150", used)
	}
	b.give(150)
}
