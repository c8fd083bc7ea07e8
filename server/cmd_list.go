package server

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/store"
)

// listOptions are the selection and return options of LIST (RFC 3501
// §6.3.8, LIST-EXTENDED RFC 5258, SPECIAL-USE RFC 6154, LIST-STATUS
// RFC 5819).
type listOptions struct {
	selSubscribed     bool
	selRemote         bool
	selRecursive      bool
	selSpecialUse     bool
	retSubscribed     bool
	retChildren       bool
	retSpecialUse     bool
	retStatus         []string
	extended          bool // any LIST-EXTENDED syntax used
	patterns          []string
	lsub              bool
	hasSelectionBase  bool
	selectionOptCount int
}

func (c *conn) cmdList(tag string) (*status, error) {
	var o listOptions
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	if c.dec.Peek() == '(' {
		o.extended = true
		err := c.dec.List(func() error {
			a, err := c.dec.Atom()
			if err != nil {
				return err
			}
			o.selectionOptCount++
			switch strings.ToUpper(a) {
			case "SUBSCRIBED":
				o.selSubscribed, o.hasSelectionBase = true, true
			case "REMOTE":
				o.selRemote = true
			case "RECURSIVEMATCH":
				o.selRecursive = true
			case "SPECIAL-USE":
				o.selSpecialUse, o.hasSelectionBase = true, true
			default:
				// RFC 5258 §3: unknown selection options are BAD.
				return syntaxErr("unknown LIST selection option " + printable(a))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := c.dec.SP(); err != nil {
			return nil, err
		}
	}
	ref, err := c.dec.ListMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	if c.dec.Peek() == '(' {
		o.extended = true
		err = c.dec.List(func() error {
			p, err := c.dec.ListMailbox()
			o.patterns = append(o.patterns, p)
			return err
		})
	} else {
		var p string
		p, err = c.dec.ListMailbox()
		o.patterns = append(o.patterns, p)
	}
	if err != nil {
		return nil, err
	}
	if !c.dec.AtEOL() {
		if err := c.readListReturn(&o); err != nil {
			return nil, err
		}
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if o.selRecursive && !o.hasSelectionBase {
		// RFC 5258 §3: RECURSIVEMATCH alone is BAD.
		return bad("RECURSIVEMATCH needs another selection option"), nil
	}
	if len(o.patterns) == 1 && o.patterns[0] == "" && !o.extended {
		// RFC 3501 §6.3.8: an empty pattern asks for the delimiter and
		// the root of the reference.
		c.enc.Star().Atom(`LIST (\Noselect) "/" `)
		root := ""
		if i := strings.IndexByte(ref, imap.Delimiter); i >= 0 {
			root = ref[:i+1]
		}
		c.enc.String(root).CRLF()
		return ok("LIST completed"), nil
	}
	return c.list(ref, &o, "LIST")
}

func (c *conn) readListReturn(o *listOptions) error {
	if err := c.dec.SP(); err != nil {
		return err
	}
	a, err := c.dec.Atom()
	if err != nil {
		return err
	}
	if !strings.EqualFold(a, "RETURN") {
		return syntaxErr("expected RETURN")
	}
	if err := c.dec.SP(); err != nil {
		return err
	}
	o.extended = true
	return c.dec.List(func() error {
		a, err := c.dec.Atom()
		if err != nil {
			return err
		}
		switch strings.ToUpper(a) {
		case "SUBSCRIBED":
			o.retSubscribed = true
		case "CHILDREN":
			o.retChildren = true
		case "SPECIAL-USE":
			o.retSpecialUse = true
		case "STATUS":
			if err := c.dec.SP(); err != nil {
				return err
			}
			items, err := c.readStatusItems()
			if err != nil {
				return err
			}
			o.retStatus = items
		default:
			return syntaxErr("unknown LIST return option " + printable(a))
		}
		return nil
	})
}

func (c *conn) cmdLsub(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	ref, err := c.dec.ListMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	p, err := c.dec.ListMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	o := listOptions{lsub: true, selSubscribed: true, patterns: []string{p}}
	return c.list(ref, &o, "LSUB")
}

// listEntry is one line of a LIST or LSUB answer.
type listEntry struct {
	name      string
	attrs     []string
	childInfo bool // RFC 5258 CHILDINFO ("SUBSCRIBED")
	mailbox   *store.Mailbox
}

func (c *conn) list(ref string, o *listOptions, verb string) (*status, error) {
	ctx := context.Background()
	mboxes, err := c.s.store.Mailboxes(ctx, c.sess.UserID)
	if err != nil {
		return c.storeFailure(err), nil
	}
	subs := map[string]bool{}
	if o.selSubscribed || o.retSubscribed {
		names, err := c.s.store.Subscriptions(ctx, c.sess.UserID)
		if err != nil {
			return c.storeFailure(err), nil
		}
		for _, n := range names {
			subs[n] = true
		}
	}
	byName := make(map[string]*store.Mailbox, len(mboxes))
	hasChildren := map[string]bool{}
	for i := range mboxes {
		m := &mboxes[i]
		byName[m.Name] = m
		for p := parentName(m.Name); p != ""; p = parentName(p) {
			hasChildren[p] = true
		}
	}

	refName, err := imap.DecodeMailboxName(ref)
	if err != nil {
		refName = ref
	}
	pats := make([]pattern, 0, len(o.patterns))
	for _, p := range o.patterns {
		dp, err := imap.DecodeMailboxName(p)
		if err != nil {
			dp = p
		}
		pats = append(pats, pattern(refName+dp))
	}
	matches := func(name string) bool {
		for _, p := range pats {
			if p.match(name) {
				return true
			}
		}
		return false
	}

	var out []listEntry
	seen := map[string]bool{}
	if o.selSubscribed {
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if matches(n) {
				e := listEntry{name: n, mailbox: byName[n]}
				if e.mailbox == nil && !o.lsub {
					e.attrs = append(e.attrs, imap.AttrNonExistent)
				}
				out = append(out, e)
				seen[n] = true
			}
		}
		if o.lsub {
			// A parent that matches the pattern while only its
			// subscribed children do not: LSUB returns it as
			// \Noselect (RFC 3501 §6.3.9).
			for _, n := range names {
				if matches(n) {
					// The subscribed name itself is listed: no
					// stand-in parent is needed (RFC 3501 §6.3.9
					// asks for it only when "%" stops above).
					continue
				}
				for p := parentName(n); p != ""; p = parentName(p) {
					if seen[p] || !matches(p) {
						continue
					}
					seen[p] = true
					out = append(out, listEntry{name: p, attrs: []string{imap.AttrNoselect}})
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		} else if o.selRecursive {
			out = recursiveMatch(out, names, seen, matches, byName)
		}
	} else {
		for i := range mboxes {
			m := &mboxes[i]
			if !matches(m.Name) {
				continue
			}
			if o.selSpecialUse && m.SpecialUse == "" {
				continue
			}
			out = append(out, listEntry{name: m.Name, mailbox: m})
		}
	}

	if slices.Contains(o.retStatus, "HIGHESTMODSEQ") {
		// LIST-STATUS asks for what STATUS (HIGHESTMODSEQ) asks for, one
		// of RFC 7162 §3.1's CONDSTORE enabling commands.
		c.enableCondstore()
	}
	for _, e := range out {
		attrs := e.attrs
		if m := e.mailbox; m != nil && !o.lsub {
			if m.NoSelect {
				attrs = append(attrs, imap.AttrNoselect)
			}
			if hasChildren[m.Name] {
				attrs = append(attrs, imap.AttrHasChildren)
			} else {
				attrs = append(attrs, imap.AttrHasNoChildren)
			}
			if m.SpecialUse != "" {
				attrs = append(attrs, m.SpecialUse)
			}
		} else if m := e.mailbox; m != nil && o.lsub && m.NoSelect {
			attrs = append(attrs, imap.AttrNoselect)
		}
		if (o.retSubscribed || (o.selSubscribed && !o.lsub)) && subs[e.name] {
			attrs = append(attrs, imap.AttrSubscribed)
		}
		c.enc.Star().Atom(verb).SP().Flags(attrs).SP().Atom(`"/"`).SP().Mailbox(e.name, false)
		if e.childInfo {
			c.enc.SP().Atom(`("CHILDINFO" ("SUBSCRIBED"))`)
		}
		c.enc.CRLF()
		if len(o.retStatus) > 0 && e.mailbox != nil && !e.mailbox.NoSelect {
			st, err := c.s.store.Status(ctx, c.sess.UserID, e.mailbox.ID)
			if err != nil {
				return c.storeFailure(err), nil
			}
			c.writeStatusResponse(e.name, &st, o.retStatus)
		}
	}
	return ok(verb + " completed"), nil
}

// recursiveMatch adds CHILDINFO ("SUBSCRIBED") to the LIST (SUBSCRIBED
// RECURSIVEMATCH) answer out, which holds the subscribed names subs that
// match (RFC 5258 §3.1, §3.5). A name that matches a pattern and has a
// subscribed descendant is a parent to report:
//   - when it is subscribed itself, it is listed already and gets
//     CHILDINFO (§5 examples 8 A1 and 9);
//   - when it is not, it is listed with CHILDINFO only if one of those
//     descendants does not match a pattern, so is not listed itself
//     (§3.3 rule 2B; §3.5: servers SHOULD suppress redundant CHILDINFO).
//     It is \NonExistent when no such mailbox exists.
func recursiveMatch(out []listEntry, subs []string, seen map[string]bool,
	matches func(string) bool, byName map[string]*store.Mailbox) []listEntry {
	hasSub := map[string]bool{}      // matching names with a subscribed descendant
	hasUnlisted := map[string]bool{} // ... with one that is not listed
	for _, n := range subs {
		listed := matches(n)
		for p := parentName(n); p != ""; p = parentName(p) {
			if matches(p) {
				hasSub[p] = true
				if !listed {
					hasUnlisted[p] = true
				}
			}
		}
	}
	for i := range out {
		out[i].childInfo = hasSub[out[i].name]
	}
	for p := range hasUnlisted {
		if seen[p] {
			continue
		}
		seen[p] = true
		e := listEntry{name: p, mailbox: byName[p], childInfo: true}
		if e.mailbox == nil {
			e.attrs = append(e.attrs, imap.AttrNonExistent)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// parentName returns the name one level up, or "".
func parentName(name string) string {
	i := strings.LastIndexByte(name, imap.Delimiter)
	if i <= 0 {
		return ""
	}
	return name[:i]
}

var statusItems = map[string]bool{
	"MESSAGES": true, "RECENT": true, "UIDNEXT": true, "UIDVALIDITY": true,
	"UNSEEN": true, "SIZE": true, "HIGHESTMODSEQ": true,
}

// readStatusItems reads "(" status-att *(SP status-att) ")".
func (c *conn) readStatusItems() ([]string, error) {
	var items []string
	err := c.dec.List(func() error {
		a, err := c.dec.Atom()
		if err != nil {
			return err
		}
		a = strings.ToUpper(a)
		if !statusItems[a] {
			return syntaxErr("unknown STATUS item " + printable(a))
		}
		items = append(items, a)
		return nil
	})
	if err == nil && len(items) == 0 {
		err = syntaxErr("STATUS needs at least one item")
	}
	return items, err
}

func (c *conn) cmdStatus(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	_, name, err := c.readMailbox()
	if err != nil {
		return nil, err
	}
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	items, err := c.readStatusItems()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	if slices.Contains(items, "HIGHESTMODSEQ") {
		c.enableCondstore() // RFC 7162 §3.1
	}
	ctx := context.Background()
	mb, err := c.s.store.MailboxByName(ctx, c.sess.UserID, name)
	if err != nil {
		return c.storeFailure(err), nil
	}
	if mb.NoSelect {
		// As SELECT answers it: the name exists (LIST shows it), it
		// just holds no messages (RFC 5530 CANNOT, not NONEXISTENT).
		return no("CANNOT", "Mailbox is not selectable"), nil
	}
	st, err := c.s.store.Status(ctx, c.sess.UserID, mb.ID)
	if err != nil {
		return c.storeFailure(err), nil
	}
	c.writeStatusResponse(name, &st, items)
	return ok("STATUS completed"), nil
}

func (c *conn) writeStatusResponse(name string, st *store.MailboxStatus, items []string) {
	c.enc.Star().Atom("STATUS").SP().Mailbox(name, false).SP().Special('(')
	for i, it := range items {
		if i > 0 {
			c.enc.SP()
		}
		c.enc.Atom(it).SP()
		switch it {
		case "MESSAGES":
			c.enc.Number(st.Messages)
		case "RECENT":
			c.enc.Number(c.statusRecent(st))
		case "UIDNEXT":
			c.enc.Number(st.UIDNext)
		case "UIDVALIDITY":
			c.enc.Number(st.UIDValidity)
		case "UNSEEN":
			c.enc.Number(st.Unseen)
		case "SIZE":
			c.enc.Number64(uint64(st.Size))
		case "HIGHESTMODSEQ":
			// RFC 7162 §3.1.7. For the selected mailbox, the value this
			// session may be told: not past an expunge it has not
			// been told of.
			m := st.HighestModSeq
			if c.view != nil && c.view.MailboxID() == st.ID {
				m = c.view.HighestModSeq()
			}
			c.enc.Number64(m)
		}
	}
	c.enc.Special(')').CRLF()
}

// statusRecent is STATUS RECENT: the messages with \Recent set (RFC 3501
// §6.3.10). The store counts those no session has claimed yet (UIDs from
// FirstRecentUID on). In the session's selected mailbox, the messages
// that are \Recent in this session count too, when they still exist and
// are not among those (a read-write session's are claimed, so below
// FirstRecentUID; a read-only session may show unclaimed ones as \Recent,
// which the store has counted already).
func (c *conn) statusRecent(st *store.MailboxStatus) uint32 {
	n := st.Recent
	if v := c.view; v != nil && v.MailboxID() == st.ID {
		n += v.RecentBelow(st.FirstRecentUID)
	}
	return n
}
