package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/bus"
)

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	hints   []bus.Hint
	resyncs int
	changed chan struct{} // a token per call
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Hint(h bus.Hint) {
	r.mu.Lock()
	r.hints = append(r.hints, h)
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
	r.poke()
}

func (r *recorder) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) got() []bus.Hint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Hint(nil), r.hints...)
}

// waitFor waits until cond holds of the hints received, or fails.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]bus.Hint) bool) []bus.Hint {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if hs := r.got(); cond(hs) {
			return hs
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("waiting for %s: got %+v", what, r.got())
		}
	}
}

// run starts b.Run with h and returns a channel closed when it returns.
func run(t *testing.T, ctx context.Context, b bus.Bus, h bus.Handler) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Run(ctx, h); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	return done
}

func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

func TestLocalDelivers(t *testing.T) {
	br := bus.NewBroker()
	a, b, c := br.Node("a"), br.Node("b"), br.Node("c")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	ra, rb, rc := newRecorder(), newRecorder(), newRecorder()
	ctx := t.Context()
	run(t, ctx, a, ra)
	run(t, ctx, b, rb)
	run(t, ctx, c, rc)

	b.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 7, ModSeq: 12})
	want := bus.Hint{Kind: bus.MailboxChanged, Mailbox: 7, ModSeq: 12, Node: "b"}
	for name, r := range map[string]*recorder{"a": ra, "c": rc} {
		hs := r.waitFor(t, "the hint on "+name, func(hs []bus.Hint) bool { return len(hs) > 0 })
		if len(hs) != 1 || hs[0] != want {
			t.Errorf("node %s got %+v, want [%+v]", name, hs, want)
		}
	}
	// Its own node gets nothing: a hint from a to b arrives after
	// anything b could have sent itself, since b's inbox is in order.
	a.Publish(bus.Hint{Kind: bus.UserChanged, User: 3})
	rb.waitFor(t, "a's hint on b", func(hs []bus.Hint) bool { return len(hs) > 0 })
	if hs := rb.got(); len(hs) != 1 || hs[0].Node != "a" || hs[0].Kind != bus.UserChanged || hs[0].User != 3 {
		t.Errorf("b got %+v, want only a's UserChanged", hs)
	}
	if ra.resyncs+rb.resyncs+rc.resyncs != 0 {
		t.Error("a local bus called Resync")
	}
}

func TestLocalMerges(t *testing.T) {
	br := bus.NewBroker()
	a, b := br.Node("a"), br.Node("b")
	defer a.Close()
	defer b.Close()
	// Published before b runs: they wait in b's inbox, merged.
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 5})
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 2, ModSeq: 9})
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 8})
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 6})
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 2, ModSeq: 0}) // unknown wins
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 2, ModSeq: 11})
	a.Publish(bus.Hint{Kind: bus.SessionTaken, User: 4, Session: "s", Generation: 3})
	a.Publish(bus.Hint{Kind: bus.SessionTaken, User: 4, Session: "s", Generation: 2})
	a.Publish(bus.Hint{Kind: bus.UserChanged, User: 4})
	a.Publish(bus.Hint{Kind: bus.UserChanged, User: 4})
	a.Publish(bus.Hint{Kind: bus.MailboxGone, Mailbox: 1, Gone: 1})
	rb := newRecorder()
	run(t, t.Context(), b, rb)
	want := []bus.Hint{
		{Kind: bus.MailboxChanged, Mailbox: 1, ModSeq: 8, Node: "a"},
		{Kind: bus.MailboxChanged, Mailbox: 2, ModSeq: 0, Node: "a"},
		{Kind: bus.SessionTaken, User: 4, Session: "s", Generation: 3, Node: "a"},
		{Kind: bus.UserChanged, User: 4, Node: "a"},
		{Kind: bus.MailboxGone, Mailbox: 1, Gone: 1, Node: "a"},
	}
	hs := rb.waitFor(t, "the merged hints", func(hs []bus.Hint) bool { return len(hs) >= len(want) })
	if len(hs) != len(want) {
		t.Fatalf("got %d hints %+v, want %+v", len(hs), hs, want)
	}
	for i := range want {
		if hs[i] != want[i] {
			t.Errorf("hint %d = %+v, want %+v", i, hs[i], want[i])
		}
	}
}

func TestLocalCloseStopsRun(t *testing.T) {
	br := bus.NewBroker()
	a, b := br.Node("a"), br.Node("b")
	defer b.Close()
	ra := newRecorder()
	done := run(t, context.Background(), a, ra)
	a.Close()
	waitDone(t, done, "Run after Close")
	// Publishing on a closed node does nothing, and a closed node
	// receives nothing; neither blocks.
	a.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 1})
	b.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 2})
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// b still works with another node, and gets nothing from a.
	c := br.Node("c")
	defer c.Close()
	rb := newRecorder()
	run(t, t.Context(), b, rb)
	c.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: 3, ModSeq: 1})
	hs := rb.waitFor(t, "c's hint", func(hs []bus.Hint) bool { return len(hs) > 0 })
	if len(hs) != 1 || hs[0].Mailbox != 3 {
		t.Errorf("b got %+v, want only c's hint", hs)
	}
	if len(ra.got()) != 0 {
		t.Errorf("closed node got %+v", ra.got())
	}
}

func TestLocalContextStopsRun(t *testing.T) {
	br := bus.NewBroker()
	a := br.Node("a")
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, ctx, a, newRecorder())
	cancel()
	waitDone(t, done, "Run after its context ended")
}

// Concurrent publishers and a busy receiver, for the race detector; every
// mailbox's last MODSEQ arrives.
func TestLocalConcurrent(t *testing.T) {
	br := bus.NewBroker()
	recv := br.Node("recv")
	defer recv.Close()
	r := newRecorder()
	run(t, t.Context(), recv, r)
	const pubs, per = 4, 200
	var wg sync.WaitGroup
	for p := range pubs {
		n := br.Node("p")
		defer n.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= per; i++ {
				n.Publish(bus.Hint{Kind: bus.MailboxChanged, Mailbox: int64(p), ModSeq: uint64(i)})
			}
		}()
	}
	wg.Wait()
	r.waitFor(t, "every publisher's last MODSEQ", func(hs []bus.Hint) bool {
		last := map[int64]uint64{}
		for _, h := range hs {
			last[h.Mailbox] = max(last[h.Mailbox], h.ModSeq)
		}
		for p := range pubs {
			if last[int64(p)] != per {
				return false
			}
		}
		return true
	})
}
