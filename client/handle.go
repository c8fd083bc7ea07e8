package client

import (
	"slices"
	"strconv"
	"strings"
)

// syncCtx collects what a synchronization learns from untagged responses
// before its commands complete.
type syncCtx struct {
	old        MailboxState
	fullReason string // the cache was thrown away, and why

	uidValidity uint32
	uidNext     uint32
	// modseq follows RFC 7162 §6 during the sync and is committed only
	// when the sync succeeds: a HIGHESTMODSEQ committed before the
	// changes it covers were applied would lose them after a drop.
	modseq   uint64
	nomodseq bool

	newSID      string
	sawNewSID   bool
	sawSelected bool
	selName     string
	selHasName  bool
	// inResume: responses belong to a SID resume, whose EXPUNGED lists
	// UIDs outside the view (no renumbering, docs/reconnect.md).
	inResume bool

	// fullSeen collects the UIDs of a UID FETCH 1:* (FLAGS) to find the
	// messages missing from it.
	fullSeen map[uint32]struct{}
	// viewSuspect: a sequence-number EXPUNGE came before the view was
	// known, so the sequence→UID map must be rebuilt.
	viewSuspect bool
}

// modseq bookkeeping for RFC 7162 §6: "If the HIGHESTMODSEQ response code
// is received, the client MUST use it even if it has seen higher
// mod-sequences. Otherwise, the client calculates the highest value among
// all MODSEQ FETCH data items received since the last tagged response."
type modseqTracker struct {
	code    uint64
	hasCode bool
	maxItem uint64
}

func (t *modseqTracker) apply(cur uint64) uint64 {
	defer func() { *t = modseqTracker{} }()
	if t.hasCode {
		return t.code
	}
	if t.maxItem > cur {
		return t.maxItem
	}
	return cur
}

// onTagged runs when a tagged response arrives, in stream order.
func (c *Client) onTagged(resp *response) {
	if resp.tag == c.cn.authTag {
		c.cn.authTag = ""
		if resp.name == "OK" {
			c.cn.authed = true
		}
	}
	if resp.hasCode {
		c.handleCode(resp)
	}
	if c.sync != nil {
		c.sync.modseq = c.ms.apply(c.sync.modseq)
	} else if !c.nomodseq {
		if m := c.ms.apply(c.st.HighestModSeq); m != c.st.HighestModSeq {
			c.st.HighestModSeq = m
			c.dirty = true
		}
	}
}

// handleCode handles a response code of an OK/NO/BAD/BYE/PREAUTH.
func (c *Client) handleCode(resp *response) {
	arg := resp.codeArg
	switch resp.code {
	case "CAPABILITY":
		c.setCaps(strings.Fields(arg))
	case "UIDVALIDITY":
		if n, err := strconv.ParseUint(arg, 10, 32); err == nil && resp.name == "OK" {
			c.sawUIDValidity(uint32(n))
		}
	case "UIDNEXT":
		if n, err := strconv.ParseUint(arg, 10, 32); err == nil && c.sync != nil && resp.name == "OK" {
			c.sync.uidNext = uint32(n)
		}
	case "HIGHESTMODSEQ":
		if n, err := strconv.ParseUint(arg, 10, 63); err == nil && resp.name == "OK" {
			c.ms.code, c.ms.hasCode = n, true
			c.nomodseq = false
			if c.sync != nil {
				c.sync.nomodseq = false
			}
		}
	case "NOMODSEQ":
		// RFC 7162 §3.1.2 / §6: the mailbox has no mod-sequences; forget
		// the cached HIGHESTMODSEQ.
		c.nomodseq = true
		if c.sync != nil {
			c.sync.nomodseq = true
		}
	case "CLOSED":
		// RFC 7162 §3.2.11: responses before this were for the
		// previous mailbox; the new one's follow.
		c.cn.exists = 0
	case "ALERT":
		c.opts.Logger.Warn("server alert", "text", resp.text)
	}
}

// sawUIDValidity compares the mailbox's UIDVALIDITY with the cache's
// (RFC 7162 §6 step 1a): when it differs, the cache is emptied.
func (c *Client) sawUIDValidity(uv uint32) {
	s := c.sync
	if s == nil {
		return
	}
	s.uidValidity = uv
	if c.st.UIDValidity != 0 && c.st.UIDValidity != uv && s.fullReason == "" {
		s.fullReason = "UIDVALIDITY changed from " + strconv.FormatUint(uint64(c.st.UIDValidity), 10) + " to " + strconv.FormatUint(uint64(uv), 10)
		c.st.reset()
		s.modseq = 0
	}
	c.st.UIDValidity = uv
}

func (c *Client) setCaps(list []string) {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[strings.ToUpper(s)] = true
	}
	if c.cn.authed || c.cn.authTag != "" {
		c.cn.caps = m
		caps := make([]string, 0, len(m))
		for k := range m {
			caps = append(caps, k)
		}
		slices.Sort(caps)
		if !slices.Equal(caps, c.st.Capabilities) {
			c.st.Capabilities = caps
			c.dirty = true
		}
	} else {
		c.cn.preCaps = m
	}
}

// handleUntagged applies one untagged response.
func (c *Client) handleUntagged(resp *response) error {
	cn := c.cn
	if resp.isStatus() && !resp.hasNum {
		if resp.hasCode {
			c.handleCode(resp)
		}
		if resp.name == "BYE" {
			cn.bye = resp.text
			if cn.bye == "" {
				cn.bye = "(no text)"
			}
		}
		return nil
	}
	switch resp.name {
	case "CAPABILITY":
		var list []string
		for _, a := range resp.args {
			if a.kind == vAtom {
				list = append(list, a.s)
			}
		}
		c.setCaps(list)
	case "ENABLED":
		for _, a := range resp.args {
			if a.isAtom("QRESYNC") {
				cn.qresync, cn.condstore = true, true
			}
			if a.isAtom("CONDSTORE") {
				cn.condstore = true
			}
		}
	case "EXISTS":
		if !resp.hasNum {
			return protoErr("EXISTS without a number")
		}
		cn.exists = resp.num
		if c.live != nil && int(resp.num) > len(c.st.Messages) {
			c.live.needFetch = true
		}
	case "EXPUNGE":
		if !resp.hasNum || resp.num == 0 {
			return protoErr("EXPUNGE without a number")
		}
		if cn.exists > 0 {
			cn.exists--
		}
		c.expunges++
		if c.sync != nil {
			c.sync.viewSuspect = true
			return nil
		}
		if n := int(resp.num); n <= len(c.st.Messages) {
			uid := c.st.Messages[n-1].UID
			c.st.Messages = slices.Delete(c.st.Messages, n-1, n)
			c.dirty = true
			c.emit(Vanished{UIDs: []uint32{uid}})
		}
	case "FETCH":
		return c.handleFetch(resp)
	case "VANISHED":
		args := resp.args
		earlier := false
		if len(args) == 2 && args[0].kind == vList && len(args[0].list) == 1 && args[0].list[0].isAtom("EARLIER") {
			earlier = true
			args = args[1:]
		}
		if len(args) != 1 || args[0].kind != vAtom {
			return protoErr("bad VANISHED response")
		}
		set, err := parseUIDSet(args[0].s)
		if err != nil {
			return err
		}
		c.removeUIDs(set, !earlier)
	case "EXPUNGED":
		// draft-melnikov-imap-expunged-01 §3.2: in a resume's answer the
		// UIDs are outside the view; live, each one leaves the view
		// (docs/reconnect.md, "two uses, kept apart").
		if len(resp.args) != 1 || resp.args[0].kind != vAtom {
			return protoErr("bad EXPUNGED response")
		}
		set, err := parseUIDSet(resp.args[0].s)
		if err != nil {
			return err
		}
		c.removeUIDs(set, c.sync == nil || !c.sync.inResume)
	case "SEARCH":
		var uids []uint32
		for _, a := range resp.args {
			if a.kind == vList { // (MODSEQ n), RFC 7162 §3.1.5
				continue
			}
			n, ok := a.number()
			if !ok || n == 0 {
				return protoErr("bad SEARCH response")
			}
			uids = append(uids, n)
		}
		slices.Sort(uids)
		uids = slices.Compact(uids)
		c.search = append(c.search, formatSet(uids)...)
		c.sawSearch = true
	case "ESEARCH":
		// RFC 4731: * ESEARCH (TAG "x") UID ALL 1:5
		args := resp.args
		if len(args) > 0 && args[0].kind == vList {
			args = args[1:]
		}
		c.sawSearch = true
		for i := 0; i < len(args); i++ {
			if args[i].isAtom("ALL") && i+1 < len(args) {
				set, err := parseUIDSet(args[i+1].s)
				if err != nil {
					return err
				}
				c.search = set
				i++
			}
		}
	case "NEWSID":
		id, ok := oneAstring(resp)
		if !ok {
			return protoErr("bad NEWSID response")
		}
		c.st.SessionID = id
		c.dirty = true
		if c.sync != nil {
			c.sync.newSID, c.sync.sawNewSID = id, true
		}
	case "SELECTED":
		if c.sync == nil {
			return protoErr("unexpected SELECTED response")
		}
		c.sync.sawSelected = true
		if len(resp.args) > 0 {
			name, ok := oneAstring(resp)
			if !ok {
				return protoErr("bad SELECTED response")
			}
			c.sync.selName, c.sync.selHasName = name, true
		}
	case "DELETEDSID":
		// Reconnect draft §5.3: the session moved to another connection;
		// this one keeps its connection but holds no session.
		id, _ := oneAstring(resp)
		if id == "" || id == c.st.SessionID {
			c.opts.Logger.Info("session taken over by another connection", "sid", id)
			c.st.SessionID = ""
			c.dirty = true
		}
	}
	return nil
}

// formatSet turns sorted distinct UIDs into a uidSet.
func formatSet(uids []uint32) uidSet {
	var s uidSet
	for _, u := range uids {
		if n := len(s); n > 0 && s[n-1].Stop+1 == u {
			s[n-1].Stop = u
			continue
		}
		s = append(s, rangeOf(u))
	}
	return s
}

func oneAstring(resp *response) (string, bool) {
	if len(resp.args) != 1 {
		return "", false
	}
	return resp.args[0].astring()
}

// removeUIDs removes the messages of set; live says they were in the
// view, so EXISTS goes down by the set's size.
func (c *Client) removeUIDs(set uidSet, live bool) {
	if live {
		n := set.size()
		if n >= uint64(c.cn.exists) {
			c.cn.exists = 0
		} else {
			c.cn.exists -= uint32(n)
		}
	}
	var gone []uint32
	kept := c.st.Messages[:0]
	for _, m := range c.st.Messages {
		if set.contains(m.UID) {
			gone = append(gone, m.UID)
			continue
		}
		kept = append(kept, m)
	}
	clear(c.st.Messages[len(kept):])
	c.st.Messages = kept
	if len(gone) > 0 {
		c.dirty = true
		c.emit(Vanished{UIDs: gone})
	}
}

// handleFetch applies "* n FETCH (UID u FLAGS (...) MODSEQ (m))".
func (c *Client) handleFetch(resp *response) error {
	if !resp.hasNum || resp.num == 0 || len(resp.args) != 1 || resp.args[0].kind != vList {
		return protoErr("bad FETCH response")
	}
	items := resp.args[0].list
	if len(items)%2 != 0 {
		return protoErr("bad FETCH response: odd item list")
	}
	var uid uint32
	var flags []string
	hasFlags := false
	for i := 0; i < len(items); i += 2 {
		name, v := items[i], items[i+1]
		switch {
		case name.isAtom("UID"):
			n, ok := v.number()
			if !ok || n == 0 {
				return protoErr("bad UID in FETCH")
			}
			uid = n
		case name.isAtom("FLAGS"):
			if v.kind != vList {
				return protoErr("bad FLAGS in FETCH")
			}
			hasFlags = true
			flags = make([]string, 0, len(v.list))
			for _, f := range v.list {
				if f.kind != vAtom {
					return protoErr("bad flag in FETCH")
				}
				if strings.EqualFold(f.s, `\Recent`) {
					continue // session flag, not synchronized
				}
				flags = append(flags, f.s)
			}
			slices.Sort(flags)
			flags = slices.Compact(flags)
		case name.isAtom("MODSEQ"):
			if v.kind != vList || len(v.list) != 1 {
				return protoErr("bad MODSEQ in FETCH")
			}
			m, ok := v.list[0].number64()
			if !ok {
				return protoErr("bad MODSEQ in FETCH")
			}
			c.ms.maxItem = max(c.ms.maxItem, m)
		}
	}
	st := &c.st
	if uid == 0 {
		// No UID: only a live update of a known sequence number means
		// something (a server without CONDSTORE enabled).
		if c.sync != nil || !hasFlags {
			return nil
		}
		n := int(resp.num)
		if n > len(st.Messages) {
			if c.live != nil {
				c.live.needFetch = true
			}
			return nil
		}
		uid = st.Messages[n-1].UID
	}
	if c.sync != nil && c.sync.fullSeen != nil {
		c.sync.fullSeen[uid] = struct{}{}
	}
	i, found := st.find(uid)
	if !found {
		if !hasFlags {
			return nil
		}
		st.Messages = slices.Insert(st.Messages, i, Message{UID: uid, Flags: flags})
		c.dirty = true
		c.emit(NewMessages{Messages: []Message{{UID: uid, Flags: slices.Clone(flags)}}})
		return nil
	}
	if hasFlags && !slices.Equal(st.Messages[i].Flags, flags) {
		st.Messages[i].Flags = flags
		c.dirty = true
		c.emit(FlagsChanged{UID: uid, Flags: slices.Clone(flags)})
	}
	return nil
}
