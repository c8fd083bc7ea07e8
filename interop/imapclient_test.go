// Package interop checks quickimap against third-party IMAP clients: the
// Go client github.com/emersion/go-imap/v2/imapclient and Python's imaplib.
// The server runs in-process (internal/imaptest) on a loopback port.
package interop

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// wireLog records the raw bytes exchanged by imapclient (its DebugWriter),
// so that tests can check what the client's API does not expose, such as
// the [READ-ONLY] code of EXAMINE.
type wireLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *wireLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// lines returns the recorded lines so far, without their line ends.
func (w *wireLog) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Split(strings.ReplaceAll(w.buf.String(), "\r\n", "\n"), "\n")
}

// dialClient connects imapclient to env and waits for the greeting.
func dialClient(t *testing.T, env *imaptest.Env) (*imapclient.Client, *wireLog) {
	t.Helper()
	wl := &wireLog{}
	c, err := imapclient.DialInsecure(env.Addr, &imapclient.Options{DebugWriter: wl})
	if err != nil {
		t.Fatalf("dial %s: %v", env.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c, wl
}

func login(t *testing.T, env *imaptest.Env) (*imapclient.Client, *wireLog) {
	t.Helper()
	c, wl := dialClient(t, env)
	if err := c.Login(env.User, env.Password).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", env.User, err)
	}
	return c, wl
}

// imapCode returns the response code of an *imap.Error, or "".
func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

// listMap runs LIST and returns name → sorted attributes, failing on a
// delimiter other than '/'.
func listMap(t *testing.T, c *imapclient.Client, ref, pattern string, opts *imap.ListOptions) map[string][]string {
	t.Helper()
	data, err := c.List(ref, pattern, opts).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q %+v: %v", ref, pattern, opts, err)
	}
	m := make(map[string][]string, len(data))
	for _, d := range data {
		if d.Delim != '/' {
			t.Errorf("LIST %q: delimiter %q, want '/'", d.Mailbox, d.Delim)
		}
		if _, dup := m[d.Mailbox]; dup {
			t.Errorf("LIST %q %q: %q returned twice", ref, pattern, d.Mailbox)
		}
		attrs := make([]string, 0, len(d.Attrs))
		for _, a := range d.Attrs {
			attrs = append(attrs, strings.ToLower(string(a)))
		}
		sort.Strings(attrs)
		m[d.Mailbox] = attrs
	}
	return m
}

func names(m map[string][]string) []string {
	n := make([]string, 0, len(m))
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func hasAttr(attrs []string, a imap.MailboxAttr) bool {
	return slices.Contains(attrs, strings.ToLower(string(a)))
}

func checkNames(t *testing.T, what string, got map[string][]string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if g := names(got); !slices.Equal(g, want) {
		t.Errorf("%s: mailboxes %q, want %q", what, g, want)
	}
}

var defaultMailboxes = []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}

var specialUse = map[string]imap.MailboxAttr{
	"Archive": imap.MailboxAttrArchive,
	"Drafts":  imap.MailboxAttrDrafts,
	"Junk":    imap.MailboxAttrJunk,
	"Sent":    imap.MailboxAttrSent,
	"Trash":   imap.MailboxAttrTrash,
}

func TestImapclientLoginAndCapabilities(t *testing.T) {
	env := imaptest.Start(t, nil)
	c, _ := dialClient(t, env)
	if st := c.State(); st != imap.ConnStateNotAuthenticated {
		t.Errorf("state after greeting: %v, want not authenticated", st)
	}
	caps := c.Caps()
	for _, cp := range []imap.Cap{imap.CapIMAP4rev1, imap.CapLiteralPlus, imap.CapSASLIR, imap.CapID, imap.Cap("AUTH=PLAIN")} {
		if !caps.Has(cp) {
			t.Errorf("greeting capabilities lack %s: %v", cp, caps)
		}
	}

	err := c.Login(env.User, "wrong").Wait()
	if err == nil {
		t.Fatal("LOGIN with a wrong password succeeded")
	}
	if code := imapCode(err); code != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("LOGIN wrong password: code %q, want AUTHENTICATIONFAILED (err %v)", code, err)
	}
	if st := c.State(); st != imap.ConnStateNotAuthenticated {
		t.Errorf("state after failed LOGIN: %v", st)
	}

	// Names are case-insensitive.
	if err := c.Login("ALICE", env.Password).Wait(); err != nil {
		t.Fatalf("LOGIN ALICE: %v", err)
	}
	if st := settledState(c, imap.ConnStateAuthenticated); st != imap.ConnStateAuthenticated {
		t.Errorf("state after LOGIN: %v, want authenticated", st)
	}
	caps = c.Caps()
	for _, cp := range []imap.Cap{imap.CapIMAP4rev1, imap.CapNamespace, imap.CapUnselect, imap.CapSpecialUse,
		imap.CapListExtended, imap.CapListStatus, imap.CapChildren, imap.CapStatusSize, imap.CapEnable} {
		if !caps.Has(cp) {
			t.Errorf("capabilities after LOGIN lack %s: %v", cp, caps)
		}
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Error("connection not closed 5 s after LOGOUT")
	}
}

func TestImapclientListDefaults(t *testing.T) {
	env := imaptest.Start(t, nil)
	c, _ := login(t, env)

	all := listMap(t, c, "", "*", nil)
	checkNames(t, `LIST "" *`, all, defaultMailboxes...)
	for name, attrs := range all {
		if !hasAttr(attrs, imap.MailboxAttrHasNoChildren) {
			t.Errorf("%s: attributes %q lack \\HasNoChildren", name, attrs)
		}
		if hasAttr(attrs, imap.MailboxAttrNoSelect) {
			t.Errorf("%s: attributes %q have \\Noselect", name, attrs)
		}
		want, special := specialUse[name]
		for _, a := range specialUse {
			if hasAttr(attrs, a) != (special && a == want) {
				t.Errorf("%s: attributes %q; want special-use %q only", name, attrs, want)
			}
		}
	}

	// "%" matches one level; the case of INBOX does not matter.
	checkNames(t, `LIST "" %`, listMap(t, c, "", "%", nil), defaultMailboxes...)
	checkNames(t, `LIST "" inbox`, listMap(t, c, "", "inbox", nil), "INBOX")
	checkNames(t, `LIST "" Nothing*`, listMap(t, c, "", "Nothing*", nil))

	// LIST (SPECIAL-USE) selects exactly the special-use mailboxes.
	su := listMap(t, c, "", "*", &imap.ListOptions{SelectSpecialUse: true})
	checkNames(t, `LIST (SPECIAL-USE) "" *`, su, "Archive", "Drafts", "Junk", "Sent", "Trash")
	for name, attrs := range su {
		if !hasAttr(attrs, specialUse[name]) {
			t.Errorf("LIST (SPECIAL-USE): %s has %q, want %s", name, attrs, specialUse[name])
		}
	}

	// RETURN (SUBSCRIBED): every default mailbox is subscribed.
	for name, attrs := range listMap(t, c, "", "*", &imap.ListOptions{ReturnSubscribed: true}) {
		if !hasAttr(attrs, imap.MailboxAttrSubscribed) {
			t.Errorf("LIST RETURN (SUBSCRIBED): %s has %q, want \\Subscribed", name, attrs)
		}
	}

	// LIST-STATUS.
	data, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}}).Collect()
	if err != nil {
		t.Fatalf("LIST RETURN (STATUS): %v", err)
	}
	if len(data) != len(defaultMailboxes) {
		t.Errorf("LIST RETURN (STATUS): %d entries, want %d", len(data), len(defaultMailboxes))
	}
	for _, d := range data {
		if d.Status == nil {
			t.Errorf("LIST RETURN (STATUS): %s without STATUS", d.Mailbox)
			continue
		}
		if d.Status.NumMessages == nil || *d.Status.NumMessages != 0 || d.Status.UIDValidity == 0 || d.Status.UIDNext == 0 {
			t.Errorf("LIST RETURN (STATUS): %s: messages %v, uidvalidity %d, uidnext %d; want 0, non-zero, non-zero",
				d.Mailbox, d.Status.NumMessages, d.Status.UIDValidity, d.Status.UIDNext)
		}
	}
}

func TestImapclientCreateRenameDelete(t *testing.T) {
	env := imaptest.Start(t, nil)
	c, _ := login(t, env)

	// Nested CREATE makes the missing parents.
	if err := c.Create("Projects/2024/Q1", nil).Wait(); err != nil {
		t.Fatalf("CREATE Projects/2024/Q1: %v", err)
	}
	got := listMap(t, c, "", "Projects*", nil)
	checkNames(t, "after CREATE Projects/2024/Q1", got, "Projects", "Projects/2024", "Projects/2024/Q1")
	for name, hasKids := range map[string]bool{"Projects": true, "Projects/2024": true, "Projects/2024/Q1": false} {
		attrs := got[name]
		if hasAttr(attrs, imap.MailboxAttrHasChildren) != hasKids || hasAttr(attrs, imap.MailboxAttrHasNoChildren) == hasKids {
			t.Errorf("%s: attributes %q, want children=%v", name, attrs, hasKids)
		}
		if hasAttr(attrs, imap.MailboxAttrNoSelect) {
			t.Errorf("%s: attributes %q: parents made by CREATE must be selectable", name, attrs)
		}
	}
	// "%" stops at the delimiter.
	checkNames(t, `LIST "Projects/" %`, listMap(t, c, "Projects/", "%", nil), "Projects/2024")

	// A trailing delimiter is accepted and dropped (RFC 3501 §6.3.3).
	if err := c.Create("Lists/", nil).Wait(); err != nil {
		t.Errorf("CREATE Lists/: %v", err)
	}
	checkNames(t, `LIST "" Lists*`, listMap(t, c, "", "Lists*", nil), "Lists")

	// Non-ASCII names go through modified UTF-7 both ways.
	if err := c.Create("Entwürfe/Büro", nil).Wait(); err != nil {
		t.Fatalf("CREATE Entwürfe/Büro: %v", err)
	}
	checkNames(t, `LIST "" Entw*`, listMap(t, c, "", "Entw*", nil), "Entwürfe", "Entwürfe/Büro")

	for _, tc := range []struct {
		name string
		code imap.ResponseCode
	}{
		{"Projects/2024", imap.ResponseCodeAlreadyExists},
		{"INBOX", imap.ResponseCodeAlreadyExists},
		{"Sent", imap.ResponseCodeAlreadyExists},
	} {
		err := c.Create(tc.name, nil).Wait()
		if err == nil {
			t.Errorf("CREATE %s (exists) succeeded", tc.name)
		} else if code := imapCode(err); code != tc.code {
			t.Errorf("CREATE %s: code %q, want %q (err %v)", tc.name, code, tc.code, err)
		}
	}

	// RENAME moves the children along.
	if err := c.Rename("Projects/2024", "Archive/2024", nil).Wait(); err != nil {
		t.Fatalf("RENAME Projects/2024 Archive/2024: %v", err)
	}
	checkNames(t, "after RENAME", listMap(t, c, "", "*", nil), append([]string{
		"Archive/2024", "Archive/2024/Q1", "Projects", "Lists", "Entwürfe", "Entwürfe/Büro"}, defaultMailboxes...)...)
	arch := listMap(t, c, "", "Archive", nil)["Archive"]
	if !hasAttr(arch, imap.MailboxAttrHasChildren) || !hasAttr(arch, imap.MailboxAttrArchive) {
		t.Errorf("Archive after RENAME: attributes %q, want \\HasChildren and \\Archive", arch)
	}
	if attrs := listMap(t, c, "", "Projects", nil)["Projects"]; !hasAttr(attrs, imap.MailboxAttrHasNoChildren) {
		t.Errorf("Projects after RENAME: attributes %q, want \\HasNoChildren", attrs)
	}
	if err := c.Rename("NoSuchBox", "Other", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("RENAME NoSuchBox: err %v, want NO [NONEXISTENT]", err)
	}
	if err := c.Rename("Lists", "Projects", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("RENAME Lists Projects (exists): err %v, want NO [ALREADYEXISTS]", err)
	}

	// DELETE of a leaf removes it; of a parent leaves a \Noselect
	// placeholder while children remain.
	if err := c.Delete("Entwürfe/Büro").Wait(); err != nil {
		t.Errorf("DELETE Entwürfe/Büro: %v", err)
	}
	if err := c.Delete("Archive/2024").Wait(); err != nil {
		t.Errorf("DELETE Archive/2024: %v", err)
	}
	got = listMap(t, c, "", "Archive/*", nil)
	checkNames(t, "after DELETE Archive/2024", got, "Archive/2024", "Archive/2024/Q1")
	if attrs := got["Archive/2024"]; !hasAttr(attrs, imap.MailboxAttrNoSelect) {
		t.Errorf("Archive/2024 after DELETE: attributes %q, want \\Noselect", attrs)
	}
	if _, err := c.Select("Archive/2024", nil).Wait(); err == nil {
		t.Error("SELECT of a \\Noselect placeholder succeeded")
	}
	if err := c.Delete("Archive/2024/Q1").Wait(); err != nil {
		t.Errorf("DELETE Archive/2024/Q1: %v", err)
	}
	for _, n := range []string{"Projects", "Lists", "Entwürfe"} {
		if err := c.Delete(n).Wait(); err != nil {
			t.Errorf("DELETE %s: %v", n, err)
		}
	}
	checkNames(t, "after deleting everything created", listMap(t, c, "", "*", nil), defaultMailboxes...)
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Error("DELETE INBOX succeeded")
	}
	if err := c.Delete("Gone").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("DELETE Gone: err %v, want NO [NONEXISTENT]", err)
	}
}

func TestImapclientSubscriptions(t *testing.T) {
	env := imaptest.Start(t, nil)
	c, _ := login(t, env)
	subscribed := &imap.ListOptions{SelectSubscribed: true}

	got := listMap(t, c, "", "*", subscribed)
	checkNames(t, `LIST (SUBSCRIBED) "" * (initial)`, got, defaultMailboxes...)
	for name, attrs := range got {
		if !hasAttr(attrs, imap.MailboxAttrSubscribed) {
			t.Errorf("LIST (SUBSCRIBED): %s has %q, want \\Subscribed", name, attrs)
		}
	}

	if err := c.Create("Lists/Go", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// New mailboxes are not subscribed.
	checkNames(t, `LIST (SUBSCRIBED) "" Lists*`, listMap(t, c, "", "Lists*", subscribed))
	for _, n := range []string{"Lists/Go", "NotYetCreated"} {
		if err := c.Subscribe(n).Wait(); err != nil {
			t.Fatalf("SUBSCRIBE %s: %v", n, err)
		}
	}
	// Subscribing twice is fine.
	if err := c.Subscribe("Lists/Go").Wait(); err != nil {
		t.Errorf("SUBSCRIBE Lists/Go again: %v", err)
	}
	got = listMap(t, c, "", "*", subscribed)
	checkNames(t, `LIST (SUBSCRIBED) "" *`, got, append([]string{"Lists/Go", "NotYetCreated"}, defaultMailboxes...)...)
	if attrs := got["NotYetCreated"]; !hasAttr(attrs, imap.MailboxAttrNonExistent) || !hasAttr(attrs, imap.MailboxAttrSubscribed) {
		t.Errorf("NotYetCreated: attributes %q, want \\NonExistent and \\Subscribed", attrs)
	}
	// Plain LIST does not show a subscription without a mailbox.
	if _, ok := listMap(t, c, "", "*", nil)["NotYetCreated"]; ok {
		t.Error(`LIST "" * shows NotYetCreated, which is only subscribed`)
	}

	// LSUB, which imapclient does not speak: raw lines.
	raw := env.DialLogin(t)
	lines := raw.Cmd("l1", `LSUB "" *`)
	// "Lists" is not subscribed, only its child: RFC 3501 §6.3.9 returns
	// it as \Noselect for "%" only; "*" reaches the child itself.
	wantLsub := []string{
		`* LSUB () "/" Archive`, `* LSUB () "/" Drafts`, `* LSUB () "/" INBOX`, `* LSUB () "/" Junk`,
		`* LSUB () "/" Lists/Go`, `* LSUB () "/" NotYetCreated`,
		`* LSUB () "/" Sent`, `* LSUB () "/" Trash`, `l1 OK LSUB completed`,
	}
	if !slices.Equal(lines, wantLsub) {
		t.Errorf("LSUB \"\" *:\n got %q\nwant %q", lines, wantLsub)
	}
	lines = raw.Cmd("l2", `LSUB "" %`)
	wantLsub = []string{
		`* LSUB () "/" Archive`, `* LSUB () "/" Drafts`, `* LSUB () "/" INBOX`, `* LSUB () "/" Junk`,
		`* LSUB (\Noselect) "/" Lists`, `* LSUB () "/" NotYetCreated`,
		`* LSUB () "/" Sent`, `* LSUB () "/" Trash`, `l2 OK LSUB completed`,
	}
	if !slices.Equal(lines, wantLsub) {
		t.Errorf("LSUB \"\" %%:\n got %q\nwant %q", lines, wantLsub)
	}

	for _, n := range []string{"Lists/Go", "NotYetCreated", "Junk"} {
		if err := c.Unsubscribe(n).Wait(); err != nil {
			t.Errorf("UNSUBSCRIBE %s: %v", n, err)
		}
	}
	// Unsubscribing what is not subscribed is not an error (RFC 9051).
	if err := c.Unsubscribe("NeverSubscribed").Wait(); err != nil {
		t.Errorf("UNSUBSCRIBE NeverSubscribed: %v", err)
	}
	checkNames(t, `LIST (SUBSCRIBED) "" * (after UNSUBSCRIBE)`, listMap(t, c, "", "*", subscribed),
		"Archive", "Drafts", "INBOX", "Sent", "Trash")
	lines = raw.Cmd("l3", `LSUB "" *`)
	wantLsub = []string{
		`* LSUB () "/" Archive`, `* LSUB () "/" Drafts`, `* LSUB () "/" INBOX`,
		`* LSUB () "/" Sent`, `* LSUB () "/" Trash`, `l3 OK LSUB completed`,
	}
	if !slices.Equal(lines, wantLsub) {
		t.Errorf("LSUB \"\" * after UNSUBSCRIBE:\n got %q\nwant %q", lines, wantLsub)
	}
	// Junk still exists, just unsubscribed.
	if attrs, ok := listMap(t, c, "", "Junk", &imap.ListOptions{ReturnSubscribed: true})["Junk"]; !ok || hasAttr(attrs, imap.MailboxAttrSubscribed) {
		t.Errorf("Junk after UNSUBSCRIBE: listed %v, attributes %q; want listed without \\Subscribed", ok, attrs)
	}
}

func TestImapclientStatusSelectExamine(t *testing.T) {
	env := imaptest.Start(t, nil)
	c, wl := login(t, env)

	all := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, Size: true}
	st, err := c.Status("INBOX", all).Wait()
	if err != nil {
		t.Fatalf("STATUS INBOX: %v", err)
	}
	if st.Mailbox != "INBOX" || st.NumMessages == nil || *st.NumMessages != 0 || st.NumUnseen == nil || *st.NumUnseen != 0 ||
		st.Size == nil || *st.Size != 0 || st.UIDValidity == 0 || st.UIDNext != 1 {
		t.Errorf("STATUS INBOX: %s; want INBOX messages=0 unseen=0 size=0 uidnext=1 uidvalidity!=0", fmtStatus(st))
	}
	inboxValidity := st.UIDValidity

	if err := c.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	ws, err := c.Status("Work", all).Wait()
	if err != nil {
		t.Fatalf("STATUS Work: %v", err)
	}
	if ws.UIDValidity == 0 || ws.UIDNext != 1 || ws.NumMessages == nil || *ws.NumMessages != 0 {
		t.Errorf("STATUS Work: %s", fmtStatus(ws))
	}
	// RENAME keeps UIDVALIDITY (RFC 3501 §6.3.5 allows either, the store
	// promises to keep it).
	if err := c.Rename("Work", "Job", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if js, err := c.Status("Job", all).Wait(); err != nil || js.UIDValidity != ws.UIDValidity {
		t.Errorf("STATUS Job after RENAME: %v, err %v; want UIDVALIDITY %d", fmtStatus(js), err, ws.UIDValidity)
	}
	if _, err := c.Status("Nope", all).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("STATUS Nope: err %v, want NO [NONEXISTENT]", err)
	}

	// SELECT.
	sd, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	if sd.UIDValidity == 0 || sd.UIDValidity != inboxValidity || sd.NumMessages != 0 || sd.UIDNext != 1 {
		t.Errorf("SELECT INBOX: uidvalidity %d (STATUS said %d), messages %d, uidnext %d; want non-zero, equal, 0, 1",
			sd.UIDValidity, inboxValidity, sd.NumMessages, sd.UIDNext)
	}
	for _, f := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft} {
		if !slices.Contains(sd.Flags, f) || !slices.Contains(sd.PermanentFlags, f) {
			t.Errorf("SELECT INBOX: FLAGS %v / PERMANENTFLAGS %v lack %s", sd.Flags, sd.PermanentFlags, f)
		}
	}
	if !slices.Contains(sd.PermanentFlags, imap.FlagWildcard) {
		t.Errorf("SELECT INBOX: PERMANENTFLAGS %v lack \\*", sd.PermanentFlags)
	}
	if st := settledState(c, imap.ConnStateSelected); st != imap.ConnStateSelected {
		t.Errorf("state after SELECT: %v", st)
	}
	if mb := settledMailbox(c, "INBOX"); mb == nil || mb.Name != "INBOX" {
		t.Errorf("selected mailbox %+v, want INBOX", mb)
	}
	if !tagged(wl, "OK [READ-WRITE]") {
		t.Errorf("SELECT: no tagged OK [READ-WRITE] in %q", wl.lines())
	}

	// EXAMINE.
	ed, err := c.Select("Job", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE Job: %v", err)
	}
	if ed.UIDValidity != ws.UIDValidity || ed.NumMessages != 0 {
		t.Errorf("EXAMINE Job: uidvalidity %d, messages %d; want %d, 0", ed.UIDValidity, ed.NumMessages, ws.UIDValidity)
	}
	if len(ed.PermanentFlags) != 0 {
		t.Errorf("EXAMINE: PERMANENTFLAGS %v, want none (read-only)", ed.PermanentFlags)
	}
	if !tagged(wl, "OK [READ-ONLY]") {
		t.Errorf("EXAMINE: no tagged OK [READ-ONLY] in %q", wl.lines())
	}
	if mb := settledMailbox(c, "Job"); mb == nil || mb.Name != "Job" {
		t.Errorf("selected mailbox %+v, want Job", mb)
	}

	// UNSELECT returns to the authenticated state.
	if err := c.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT: %v", err)
	}
	if st := settledState(c, imap.ConnStateAuthenticated); st != imap.ConnStateAuthenticated {
		t.Errorf("state after UNSELECT: %v", st)
	}
	if err := c.Unselect().Wait(); err == nil {
		t.Error("UNSELECT without a selected mailbox succeeded")
	}
	if _, err := c.Select("Nope", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT Nope: err %v, want NO [NONEXISTENT]", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// tagged reports whether a tagged (not "*" or "+") line in the log has
// text after its tag that starts with prefix.
func tagged(wl *wireLog, prefix string) bool {
	for _, l := range wl.lines() {
		tag, rest, ok := strings.Cut(l, " ")
		if ok && tag != "*" && tag != "+" && strings.HasPrefix(rest, prefix) {
			return true
		}
	}
	return false
}

func fmtStatus(st *imap.StatusData) string {
	if st == nil {
		return "<nil>"
	}
	p := func(v *uint32) string {
		if v == nil {
			return "absent"
		}
		return fmt.Sprint(*v)
	}
	size := "absent"
	if st.Size != nil {
		size = fmt.Sprint(*st.Size)
	}
	return fmt.Sprintf("mailbox=%s messages=%s unseen=%s size=%s uidnext=%d uidvalidity=%d",
		st.Mailbox, p(st.NumMessages), p(st.NumUnseen), size, st.UIDNext, st.UIDValidity)
}

func TestImapclientNamespaceAndID(t *testing.T) {
	env := imaptest.Start(t, nil)
	c, _ := dialClient(t, env)

	// ID works before authentication.
	id, err := c.ID(&imap.IDData{Name: "interop-test", Version: "1"}).Wait()
	if err != nil {
		t.Fatalf("ID: %v", err)
	}
	if id == nil || id.Name != "quickimap" || id.Version != server.Version || id.Vendor != "quickimap" || id.SupportURL == "" {
		t.Errorf("ID: %+v; want name quickimap, version %s, vendor quickimap, a support-url", id, server.Version)
	}
	if _, err := c.Namespace().Wait(); err == nil {
		t.Error("NAMESPACE before LOGIN succeeded")
	}
	if err := c.Login(env.User, env.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatalf("NAMESPACE: %v", err)
	}
	want := []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}
	if !slices.Equal(ns.Personal, want) || len(ns.Other) != 0 || len(ns.Shared) != 0 {
		t.Errorf("NAMESPACE: %+v, want personal %+v and no other or shared", ns, want)
	}
	// ID NIL after authentication.
	if id, err := c.ID(nil).Wait(); err != nil || id == nil || id.Name != "quickimap" {
		t.Errorf("ID NIL: %+v, %v", id, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// settledState returns the client's connection state once it equals want, or
// whatever it is after a second. imapclient (v2.0.0-beta.8) wakes Wait()
// before it records the new state (completeCommand closes the done channel
// first), so reading State() straight after Wait() races with the client's
// reader goroutine; the server's answer is already on the wire by then.
func settledState(c *imapclient.Client, want imap.ConnState) imap.ConnState {
	deadline := time.Now().Add(time.Second)
	for c.State() != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return c.State()
}

// settledMailbox is settledState for the client's selected mailbox.
func settledMailbox(c *imapclient.Client, name string) *imapclient.SelectedMailbox {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if mb := c.Mailbox(); mb != nil && mb.Name == name {
			return mb
		}
		time.Sleep(time.Millisecond)
	}
	return c.Mailbox()
}
