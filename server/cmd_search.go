package server

import "github.com/quickimap/quickimap/imap"

// SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8) with ESEARCH results
// (RFC 4731). Parsing is in search_parse.go, matching in search_eval.go.

func (c *conn) cmdSearch(tag string) (*status, error)    { return c.search(tag, false) }
func (c *conn) cmdUIDSearch(tag string) (*status, error) { return c.search(tag, true) }

func (c *conn) search(tag string, isUID bool) (*status, error) {
	cmd, err := parseSearch(c.dec)
	if err != nil {
		return nil, err
	}
	name := "SEARCH"
	if isUID {
		name = "UID SEARCH"
	}
	if cmd.charset != "" && !knownCharset(cmd.charset) {
		return no("BADCHARSET (UTF-8 US-ASCII)", "Charset "+printable(cmd.charset)+" not supported"), nil
	}
	if cmd.invalid != "" {
		// The string cannot mean anything in its charset: a client
		// error, as Dovecot answers it, rather than an empty result.
		return bad(cmd.invalid), nil
	}
	modseq := usesOp(cmd.key, opModSeq)
	if modseq {
		c.enableCondstore() // RFC 7162 §3.1
	}
	if isUID && usesOp(cmd.key, opSeq) {
		// RFC 7162 §3.2.10.2: no VANISHED (nor EXPUNGE) during a UID
		// SEARCH that uses sequence numbers.
		c.holdExpunge = true
	}
	refs, st := c.searchMessages(cmd.key)
	if st != nil {
		return st, nil
	}
	nums := make([]uint32, len(refs))
	for i, r := range refs {
		if isUID {
			nums[i] = r.UID
		} else {
			nums[i] = r.Seq
		}
	}
	// RFC 7162 §3.1.5, §3.1.6: with the MODSEQ key, a non-empty result
	// carries the highest MODSEQ of the messages returned; RFC 4731 §3.2
	// says which ones ESEARCH's MODSEQ covers.
	var high uint64
	if modseq && len(refs) > 0 {
		of := refs
		if cmd.esearch && cmd.ret&(retAll|retCount) == 0 {
			of = nil
			if cmd.ret&retMin != 0 {
				of = append(of, refs[0])
			}
			if cmd.ret&retMax != 0 {
				of = append(of, refs[len(refs)-1])
			}
		}
		for _, r := range of {
			if m, ok := c.messageMeta(r.UID); ok && m.ModSeq > high {
				high = m.ModSeq
			}
		}
	}
	if cmd.esearch {
		c.writeESearch(tag, isUID, cmd.ret, nums, high)
	} else {
		c.enc.Star().Atom("SEARCH")
		for _, n := range nums {
			c.enc.SP().Number(n)
		}
		if high > 0 {
			c.enc.Atom(" (MODSEQ ").Number64(high).Special(')')
			c.sentModSeq = true
		}
		c.enc.CRLF()
	}
	return ok(name + " completed"), nil
}

// writeESearch writes the ESEARCH response (RFC 4731 §3.1): MIN, MAX and
// ALL only when something matched, COUNT always when asked for, MODSEQ
// when modseq is not 0 (RFC 4731 §3.2).
func (c *conn) writeESearch(tag string, isUID bool, ret searchReturn, nums []uint32, modseq uint64) {
	c.enc.Star().Atom("ESEARCH (TAG ").String(tag).Special(')')
	if isUID {
		c.enc.Atom(" UID")
	}
	if len(nums) > 0 {
		if ret&retMin != 0 {
			c.enc.Atom(" MIN ").Number(nums[0])
		}
		if ret&retMax != 0 {
			c.enc.Atom(" MAX ").Number(nums[len(nums)-1])
		}
	}
	if ret&retCount != 0 {
		c.enc.Atom(" COUNT ").Number(uint32(len(nums)))
	}
	if ret&retAll != 0 && len(nums) > 0 {
		c.enc.Atom(" ALL ").SeqSet(imap.UIDSetFromSorted(nums))
	}
	if modseq > 0 {
		c.enc.Atom(" MODSEQ ").Number64(modseq)
		c.sentModSeq = true
	}
	c.enc.CRLF()
}
