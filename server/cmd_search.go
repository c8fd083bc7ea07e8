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
	if cmd.esearch {
		c.writeESearch(tag, isUID, cmd.ret, nums)
	} else {
		c.enc.Star().Atom("SEARCH")
		for _, n := range nums {
			c.enc.SP().Number(n)
		}
		c.enc.CRLF()
	}
	return ok(name + " completed"), nil
}

// writeESearch writes the ESEARCH response (RFC 4731 §3.1): MIN, MAX and
// ALL only when something matched, COUNT always when asked for.
func (c *conn) writeESearch(tag string, isUID bool, ret searchReturn, nums []uint32) {
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
	c.enc.CRLF()
}
