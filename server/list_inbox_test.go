package server_test

import (
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// LIST and LSUB match INBOX case-insensitively, also as the first level of
// its children's names (RFC 3501 §5.1), and every other name
// case-sensitively, also one that starts with "inbox" in some case.
func TestListInboxCase(t *testing.T) {
	env := imaptest.Start(t, nil)
	c := env.DialLogin(t)
	for _, name := range []string{"Inboxfoo", "inbox-old", "inbox/Sub"} {
		c.ExpectTagged("c", "CREATE "+name, "c OK")
	}
	const (
		inbox    = `* LIST (\HasChildren) "/" INBOX`
		inboxSub = `* LIST (\HasNoChildren) "/" INBOX/Sub`
		foo      = `* LIST (\HasNoChildren) "/" Inboxfoo`
		old      = `* LIST (\HasNoChildren) "/" inbox-old`
	)
	c.Expect("l1", `LIST "" i*`, inbox, inboxSub, old, "l1 OK LIST completed")
	c.Expect("l2", `LIST "" inb%`, inbox, old, "l2 OK LIST completed")
	c.Expect("l3", `LIST "" Inbox*`, inbox, inboxSub, foo, "l3 OK LIST completed")
	c.Expect("l4", `LIST "" inbox%`, inbox, old, "l4 OK LIST completed")
	c.Expect("l5", `LIST "" INBOX*`, inbox, inboxSub, "l5 OK LIST completed")
	c.Expect("l6", `LIST "" InBoX`, inbox, "l6 OK LIST completed")
	c.Expect("l7", `LIST "" inbox/%`, inboxSub, "l7 OK LIST completed")
	c.Expect("l8", `LIST "" inbox/sub`, "l8 OK LIST completed")
	c.Expect("l9", `LIST "" %x`, inbox, "l9 OK LIST completed")
	c.Expect("l10", `LIST inbox/ %`, inboxSub, "l10 OK LIST completed")
	c.Expect("l11", `LIST "" inboxfoo`, "l11 OK LIST completed")

	for _, name := range []string{"INBOX", "Inboxfoo", "inbox-old", "INBOX/Sub"} {
		c.ExpectTagged("s", "SUBSCRIBE "+name, "s OK")
	}
	c.Expect("m1", `LSUB "" i*`,
		`* LSUB () "/" INBOX`, `* LSUB () "/" INBOX/Sub`, `* LSUB () "/" inbox-old`,
		"m1 OK LSUB completed")
	c.Expect("m2", `LSUB "" Inbox%`,
		`* LSUB () "/" INBOX`, `* LSUB () "/" Inboxfoo`,
		"m2 OK LSUB completed")
	c.Expect("m3", `LIST (SUBSCRIBED) "" inbox%`,
		`* LIST (\HasChildren \Subscribed) "/" INBOX`, `* LIST (\HasNoChildren \Subscribed) "/" inbox-old`,
		"m3 OK LIST completed")
}
