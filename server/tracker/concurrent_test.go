package tracker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/quickimap/quickimap/store"
)

// clientModel is what a client knows of a mailbox from the updates of
// its view alone: the sequence-number → UID map and each message's flags.
type clientModel struct {
	uids  []uint32
	flags map[uint32][]string
}

func newClientModel(v *View) *clientModel {
	m := &clientModel{flags: map[uint32][]string{}}
	m.learnNew(v)
	return m
}

// learnNew adds the view's messages beyond the model's, as a client
// fetches the flags of new messages after EXISTS.
func (m *clientModel) learnNew(v *View) {
	for _, u := range v.UIDs()[len(m.uids):] {
		m.uids = append(m.uids, u)
		if meta, ok, _ := v.Meta(u); ok {
			m.flags[u] = meta.Flags
		}
	}
}

// apply applies an update as a client would, checking that it makes
// sense against what the client knew.
func (m *clientModel) apply(v *View, u Update) error {
	if len(u.Expunged) != len(u.ExpungedSeqs) {
		return fmt.Errorf("%d expunged UIDs, %d sequence numbers", len(u.Expunged), len(u.ExpungedSeqs))
	}
	for j, s := range u.ExpungedSeqs {
		if j > 0 && s >= u.ExpungedSeqs[j-1] {
			return fmt.Errorf("expunge sequence numbers not descending: %v", u.ExpungedSeqs)
		}
		if s == 0 || int(s) > len(m.uids) || m.uids[s-1] != u.Expunged[len(u.Expunged)-1-j] {
			return fmt.Errorf("EXPUNGE %d of %v does not match the client's UIDs", s, u.Expunged)
		}
		delete(m.flags, m.uids[s-1])
		m.uids = slices.Delete(m.uids, int(s-1), int(s))
	}
	if u.NewMessages {
		if int(u.Count) != len(v.UIDs()) || int(u.Count) < len(m.uids) {
			return fmt.Errorf("EXISTS %d: view has %d, client %d", u.Count, len(v.UIDs()), len(m.uids))
		}
		m.learnNew(v)
	}
	if !slices.Equal(m.uids, v.UIDs()) {
		return fmt.Errorf("client UIDs %v, view %v", m.uids, v.UIDs())
	}
	for _, f := range u.Flags {
		if f.Seq == 0 || int(f.Seq) > len(m.uids) || m.uids[f.Seq-1] != f.Meta.UID {
			return fmt.Errorf("FETCH %d for UID %d does not match the client's UIDs", f.Seq, f.Meta.UID)
		}
		m.flags[f.Meta.UID] = f.Meta.Flags
	}
	return nil
}

// TestConcurrentWritersAndReaders runs writers (flag changes, appends,
// expunges, each through the store and Changed) against reader views that
// follow only their updates, as clients do. At the end every reader's
// picture equals the store, and no view's HIGHESTMODSEQ ever went back.
// Run it with -race.
func TestConcurrentWritersAndReaders(t *testing.T) {
	const (
		writers = 4
		readers = 4
		ops     = 150
	)
	f := newFixture(t, 40, Options{LogLimit: 64})
	ctx := context.Background()
	keywords := []string{`\Seen`, `\Flagged`, "$Work", "$Later", "$Junk"}

	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	done := make(chan struct{})
	writerViews := make([]*View, writers)
	for w := range writers {
		writerViews[w] = f.open(false)
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := writerViews[w]
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				uids := v.UIDs()
				switch r := rng.IntN(10); {
				case r < 6 && len(uids) > 0:
					u := uids[rng.IntN(len(uids))]
					op := store.FlagOp(rng.IntN(3))
					kw := keywords[rng.IntN(len(keywords))]
					if _, _, err := v.UpdateFlags(ctx, []uint32{u}, op, []string{kw}, 0); err != nil {
						errs <- err
						return
					}
				case r < 8:
					if _, _, err := f.st.AppendMessages(ctx, testUser, testBox, make([]store.NewMessage, 1+rng.IntN(3))); err != nil {
						errs <- err
						return
					}
					f.hub.Changed(ctx, testBox)
				case len(uids) > 0:
					u := uids[rng.IntN(len(uids))]
					if _, err := f.st.Expunge(ctx, testUser, testBox, []uint32{u}); err != nil {
						errs <- err
						return
					}
					f.hub.Changed(ctx, testBox)
				}
				if u := v.Updates(ctx, rng.IntN(2) == 0); u.Gone != 0 {
					errs <- fmt.Errorf("writer %d: mailbox gone", w)
					return
				}
			}
		}()
	}
	readerViews := make([]*View, readers)
	models := make([]*clientModel, readers)
	for r := range readers {
		readerViews[r] = f.open(r%2 == 1)
		models[r] = newClientModel(readerViews[r])
	}
	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			v, m := readerViews[r], models[r]
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			last := v.HighestModSeq()
			changed := notifyChan(v)
			for {
				select {
				case <-done:
					return
				case <-changed:
				}
				// Reads as FETCH FLAGS and SEARCH do, then the update
				// at the command's end (expunges held back during
				// FETCH, STORE and SEARCH).
				for _, u := range v.UIDs() {
					v.Meta(u)
				}
				v.Scan(func(uint32, *store.MessageMeta) (bool, bool) { return true, false })
				if err := m.apply(v, v.Updates(ctx, rng.IntN(3) != 0)); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				if h := v.HighestModSeq(); h < last {
					errs <- fmt.Errorf("reader %d: HIGHESTMODSEQ went from %d to %d", r, last, h)
					return
				} else {
					last = h
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	msgs, modseq := f.st.snapshot(testBox)
	want := make([]uint32, len(msgs))
	for i, m := range msgs {
		want[i] = m.UID
	}
	f.hub.Changed(ctx, testBox)
	for r, v := range readerViews {
		if err := models[r].apply(v, v.Updates(ctx, true)); err != nil {
			t.Fatalf("reader %d, last update: %v", r, err)
		}
		if !slices.Equal(models[r].uids, want) {
			t.Fatalf("reader %d has UIDs %v, store %v", r, models[r].uids, want)
		}
		for _, m := range msgs {
			if !slices.Equal(models[r].flags[m.UID], m.Flags) {
				t.Fatalf("reader %d: UID %d has flags %v, store %v", r, m.UID, models[r].flags[m.UID], m.Flags)
			}
		}
		if v.HighestModSeq() != modseq {
			t.Fatalf("reader %d: HIGHESTMODSEQ %d, store %d", r, v.HighestModSeq(), modseq)
		}
	}
	for w, v := range writerViews {
		v.Updates(ctx, true)
		if !slices.Equal(v.UIDs(), want) || v.HighestModSeq() != modseq {
			t.Fatalf("writer %d: UIDs %v HIGHESTMODSEQ %d; store %v %d", w, v.UIDs(), v.HighestModSeq(), want, modseq)
		}
		for _, m := range msgs {
			if got, ok, _ := v.Meta(m.UID); !ok || !slices.Equal(got.Flags, m.Flags) || got.ModSeq != m.ModSeq {
				t.Fatalf("writer %d: UID %d meta %+v, store %+v", w, m.UID, got, m)
			}
		}
	}
}
