package bus

import "testing"

func TestQueueTakeEmpties(t *testing.T) {
	var q Queue
	q.Add(Hint{Kind: MailboxChanged, Mailbox: 1, ModSeq: 4})
	q.Add(Hint{Kind: MailboxChanged, Mailbox: 1, ModSeq: 3})
	q.Add(Hint{Kind: MailboxGone, Mailbox: 1, Gone: 2})
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (a change and a removal of one mailbox)", q.Len())
	}
	hs := q.Take()
	if len(hs) != 2 || hs[0].ModSeq != 4 || hs[1].Kind != MailboxGone {
		t.Fatalf("Take = %+v", hs)
	}
	if q.Len() != 0 {
		t.Fatalf("Len after Take = %d", q.Len())
	}
	// The taken slice is the caller's: later adds do not touch it.
	q.Add(Hint{Kind: MailboxChanged, Mailbox: 1, ModSeq: 9})
	if hs[0].ModSeq != 4 {
		t.Errorf("Add after Take changed a taken hint: %+v", hs[0])
	}
	if hs := q.Take(); len(hs) != 1 || hs[0].ModSeq != 9 {
		t.Errorf("second Take = %+v", hs)
	}
}
