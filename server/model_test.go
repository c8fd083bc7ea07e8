package server_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
)

// TestQResyncModel is a randomized model test of CONDSTORE and QRESYNC
// (RFC 7162). Three writer connections (one with QRESYNC enabled, one
// with CONDSTORE, one with neither) send random APPEND, UID STORE, UID
// EXPUNGE and UID MOVE commands, pipelined in batches, to INBOX and a
// second mailbox; a reference model in the test follows the same
// sequence, taking the values the server picks (APPENDUID, COPYUID) from
// its answers. Batches run one connection at a time, so the model knows
// the server's state after every command and checks every FLAGS, MODSEQ,
// EXISTS, EXPUNGE and VANISHED the writers see.
//
// At random points a resync client saves a mailbox's state (UIDVALIDITY,
// HIGHESTMODSEQ, UID → flags) over a new connection, and later reconnects
// and resynchronizes a saved state with SELECT (QRESYNC (v m [known-uids]))
// or with SELECT (CONDSTORE) + UID FETCH 1:* (FLAGS) (CHANGEDSINCE m
// VANISHED); applying the VANISHED (EARLIER) and FETCH responses to the
// saved map must give exactly the model's mailbox.
//
// The seed is printed on failure; QUICKIMAP_MODEL_SEED=n replays it and
// QUICKIMAP_MODEL_OPS=n changes the number of operations.
func TestQResyncModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QUICKIMAP_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("QUICKIMAP_MODEL_SEED: %v", err)
		}
		seed = v
	}
	ops := 10_000
	if testing.Short() {
		ops = 1_000
	}
	if s := os.Getenv("QUICKIMAP_MODEL_OPS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("QUICKIMAP_MODEL_OPS: %v", err)
		}
		ops = v
	}
	env := imaptest.Start(t, nil)
	m := &mtModel{
		t:     t,
		env:   env,
		seed:  seed,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		boxes: map[string]*mtBox{},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last commands:\n%s", strings.Join(m.history, "\n"))
			t.Logf("seed %d: rerun with QUICKIMAP_MODEL_SEED=%d go test ./server -run TestQResyncModel", seed, seed)
		}
	})
	// Every resync is a new connection and a LOGIN: a cheap bcrypt cost
	// keeps hundreds of them fast.
	m.cheapPassword()
	if !m.requireQResync() {
		return
	}
	start := time.Now()
	m.run(ops)
	t.Logf("seed %d: %d operations, %d resyncs, %d snapshots, INBOX %d / %s %d messages, in %v",
		seed, m.ops, m.resyncs, m.snapshots, len(m.boxes["INBOX"].msgs), mtOther, len(m.boxes[mtOther].msgs),
		time.Since(start).Round(time.Millisecond))
}

const mtOther = "Box2"

// mtFlags is a set of flags from mtFlagNames, one bit each.
type mtFlags uint8

var mtFlagNames = [...]string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `$Forwarded`, `$Label1`, `Work`}

const mtDeleted mtFlags = 1 << 3

func (f mtFlags) String() string {
	var names []string
	for i, n := range mtFlagNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return "(" + strings.Join(names, " ") + ")"
}

// mtParseFlags reads a flag list's contents (without parentheses),
// ignoring \Recent.
func mtParseFlags(s string) (mtFlags, error) {
	var f mtFlags
	for _, name := range strings.Fields(s) {
		if strings.EqualFold(name, `\Recent`) {
			continue
		}
		i := slices.IndexFunc(mtFlagNames[:], func(n string) bool { return strings.EqualFold(n, name) })
		if i < 0 {
			return 0, fmt.Errorf("unexpected flag %q", name)
		}
		f |= 1 << i
	}
	return f, nil
}

type mtMsg struct {
	flags mtFlags
	// modseq is the message's MODSEQ when the model knows it exactly (it
	// saw it after the last change), else 0.
	modseq uint64
}

type mtBox struct {
	name     string
	validity uint32
	msgs     map[uint32]*mtMsg
	maxUID   uint32
	// highest is the highest MODSEQ the server has shown for the mailbox
	// (HIGHESTMODSEQ or a message's MODSEQ).
	highest uint64
	snaps   []mtSnap
}

func (b *mtBox) sortedUIDs() []uint32 {
	uids := make([]uint32, 0, len(b.msgs))
	for u := range b.msgs {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	return uids
}

func (b *mtBox) observe(modseq uint64) {
	if modseq > b.highest {
		b.highest = modseq
	}
}

// mtSnap is what a disconnected client keeps of a mailbox.
type mtSnap struct {
	validity uint32
	modseq   uint64
	msgs     map[uint32]mtFlags
}

type mtWriter struct {
	id int
	c  *imaptest.Conn
	// mode: 0 nothing enabled, 1 CONDSTORE, 2 QRESYNC.
	mode   int
	sel    string
	exists int
	tagN   int
}

type mtModel struct {
	t     *testing.T
	env   *imaptest.Env
	seed  uint64
	rng   *rand.Rand
	boxes map[string]*mtBox
	ws    []*mtWriter

	ops, resyncs, snapshots int
	errs                    int
	bodyN                   int
	history                 []string
}

func (m *mtModel) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Errorf(format, args...)
	m.errs++
	if m.errs >= 10 {
		m.t.FailNow()
	}
}

func (m *mtModel) note(s string) {
	if i := strings.Index(s, "\r\n"); i >= 0 {
		s = s[:i] // an APPEND's first line
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	m.history = append(m.history, s)
	if len(m.history) > 40 {
		m.history = m.history[len(m.history)-40:]
	}
}

func (m *mtModel) cheapPassword() {
}

// requireQResync checks that the server advertises what the test needs.
func (m *mtModel) requireQResync() bool {
	c := m.env.DialLogin(m.t)
	lines := c.Cmd("c1", "CAPABILITY")
	caps := strings.Fields(strings.ToUpper(lines[0]))
	for _, want := range []string{"QRESYNC", "CONDSTORE", "ENABLE", "UIDPLUS", "MOVE", "LITERAL+"} {
		if !slices.Contains(caps, want) {
			m.t.Errorf("CAPABILITY lacks %s: %q", want, lines[0])
		}
	}
	c.Cmd("c2", "LOGOUT")
	return !m.t.Failed()
}

// Response parsing.

var (
	mtFetchRE       = regexp.MustCompile(`^\* (\d+) FETCH \((.*)\)$`)
	mtVanishedRE    = regexp.MustCompile(`^\* VANISHED (\(EARLIER\) )?([0-9:,]+)$`)
	mtExistsRE      = regexp.MustCompile(`^\* (\d+) EXISTS$`)
	mtExpungeRE     = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	mtHighestRE     = regexp.MustCompile(`(?i)\[HIGHESTMODSEQ (\d+)\]`)
	mtValidityRE    = regexp.MustCompile(`(?i)\[UIDVALIDITY (\d+)\]`)
	mtAppendUIDRE   = regexp.MustCompile(`(?i)\[APPENDUID (\d+) (\d+)\]`)
	mtCopyUIDRE     = regexp.MustCompile(`(?i)\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]`)
	mtEnabledRE     = regexp.MustCompile(`(?i)^\* ENABLED(.*)$`)
	mtNoModSeqRE    = regexp.MustCompile(`(?i)\[NOMODSEQ\]`)
	mtUntaggedOKRE  = regexp.MustCompile(`^\* OK `)
	mtUntaggedRecRE = regexp.MustCompile(`^\* \d+ RECENT$`)
)

type mtFetch struct {
	seq       uint32
	uid       uint32
	hasUID    bool
	flags     mtFlags
	hasFlags  bool
	modseq    uint64
	hasModSeq bool
}

// mtParseFetch parses "* n FETCH (UID u FLAGS (...) MODSEQ (m))" with the
// items in any order.
func mtParseFetch(line string) (mtFetch, bool, error) {
	mm := mtFetchRE.FindStringSubmatch(line)
	if mm == nil {
		return mtFetch{}, false, nil
	}
	var f mtFetch
	seq, _ := strconv.ParseUint(mm[1], 10, 32)
	f.seq = uint32(seq)
	rest := mm[2]
	next := func() (string, error) {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			return "", fmt.Errorf("FETCH ended early")
		}
		if rest[0] == '(' {
			depth := 0
			for i := 0; i < len(rest); i++ {
				switch rest[i] {
				case '(':
					depth++
				case ')':
					depth--
					if depth == 0 {
						tok := rest[1:i]
						rest = rest[i+1:]
						return tok, nil
					}
				}
			}
			return "", fmt.Errorf("unbalanced parentheses")
		}
		i := strings.IndexAny(rest, " ()")
		if i < 0 {
			i = len(rest)
		}
		tok := rest[:i]
		rest = rest[i:]
		return tok, nil
	}
	for strings.TrimSpace(rest) != "" {
		name, err := next()
		if err != nil {
			return f, true, err
		}
		val, err := next()
		if err != nil {
			return f, true, err
		}
		switch strings.ToUpper(name) {
		case "UID":
			u, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return f, true, fmt.Errorf("UID %q", val)
			}
			f.uid, f.hasUID = uint32(u), true
		case "FLAGS":
			fl, err := mtParseFlags(val)
			if err != nil {
				return f, true, err
			}
			f.flags, f.hasFlags = fl, true
		case "MODSEQ":
			v, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
			if err != nil {
				return f, true, fmt.Errorf("MODSEQ %q", val)
			}
			f.modseq, f.hasModSeq = v, true
		default:
			return f, true, fmt.Errorf("unexpected FETCH item %s", name)
		}
	}
	return f, true, nil
}

// mtParseSet expands a UID set without "*".
func mtParseSet(s string) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad set %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, fmt.Errorf("bad set %q", s)
			}
		}
		if a > b {
			a, b = b, a
		}
		if b-a > 1_000_000 {
			return nil, fmt.Errorf("set too large %q", s)
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// mtFormatSet writes ascending UIDs as a compact set.
func mtFormatSet(uids []uint32) string {
	var b strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(uids[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(uids[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}

func mtSortedUnique(u []uint32) []uint32 {
	u = slices.Clone(u)
	slices.Sort(u)
	return slices.Compact(u)
}

// Commands.

type mtKind int

const (
	mtNoop mtKind = iota
	mtSelect
	mtAppend
	mtStore
	mtExpunge
	mtMove
)

type mtCmd struct {
	kind   mtKind
	tag    string
	text   string
	box    string // SELECT target, APPEND target, MOVE destination
	flags  mtFlags
	op     byte // '+', '-' or '=' for STORE
	silent bool
	uids   []uint32 // UIDs named by the set (ascending)
}

func (m *mtModel) run(ops int) {
	// Writers: QRESYNC, CONDSTORE, nothing enabled.
	for i, mode := range []int{2, 1, 0} {
		w := &mtWriter{id: i, c: m.env.DialLogin(m.t), mode: mode}
		switch mode {
		case 1:
			m.enable(w, "CONDSTORE")
		case 2:
			m.enable(w, "QRESYNC")
		}
		m.ws = append(m.ws, w)
	}
	m.ws[0].c.ExpectTagged("cr", "CREATE "+mtOther, "cr OK")
	m.boxes["INBOX"] = &mtBox{name: "INBOX", msgs: map[uint32]*mtMsg{}}
	m.boxes[mtOther] = &mtBox{name: mtOther, msgs: map[uint32]*mtMsg{}}
	for i, w := range m.ws {
		name := "INBOX"
		if i == 1 {
			name = mtOther
		}
		m.execBatch(w, []*mtCmd{{kind: mtSelect, box: name}})
	}
	for _, b := range m.boxes {
		m.snapshot(b)
	}

	for m.ops < ops {
		w := m.ws[m.rng.IntN(len(m.ws))]
		n := 1 + m.rng.IntN(20)
		cmds := []*mtCmd{{kind: mtNoop}}
		sel := w.sel
		for range n {
			cmd := m.genCmd(sel)
			if cmd.kind == mtSelect {
				sel = cmd.box
			}
			cmds = append(cmds, cmd)
		}
		m.execBatch(w, cmds)
		m.ops += n
		switch r := m.rng.Float64(); {
		case r < 0.03:
			m.snapshot(m.randomBox())
		case r < 0.09:
			b := m.randomBox()
			if len(b.snaps) > 0 {
				m.resync(b, m.rng.IntN(len(b.snaps)), m.rng.IntN(4))
			}
		}
	}

	// Finally every saved state, however old, must resynchronize with
	// every method.
	for _, name := range []string{"INBOX", mtOther} {
		b := m.boxes[name]
		for i := range b.snaps {
			for method := range 4 {
				m.resync(b, i, method)
			}
		}
		m.snapshot(b)
	}
	for _, w := range m.ws {
		w.c.Cmd("z", "LOGOUT")
	}
}

func (m *mtModel) randomBox() *mtBox {
	if m.rng.IntN(2) == 0 {
		return m.boxes["INBOX"]
	}
	return m.boxes[mtOther]
}

func (m *mtModel) enable(w *mtWriter, ext string) {
	lines := w.c.Cmd("e", "ENABLE "+ext)
	ok := false
	for _, l := range lines {
		if mm := mtEnabledRE.FindStringSubmatch(l); mm != nil && slices.Contains(strings.Fields(strings.ToUpper(mm[1])), ext) {
			ok = true
		}
	}
	if !ok || !strings.HasPrefix(lines[len(lines)-1], "e OK") {
		m.t.Fatalf("ENABLE %s: got %q, want * ENABLED %s and e OK", ext, lines, ext)
	}
}

// pickUIDs chooses UIDs of a mailbox: existing ones mostly, sometimes a
// range, sometimes UIDs that do not exist (any more).
func (m *mtModel) pickUIDs(b *mtBox, max int, preferDeleted bool) ([]uint32, string) {
	uids := b.sortedUIDs()
	if len(uids) == 0 || m.rng.IntN(20) == 0 {
		u := b.maxUID + 1 + uint32(m.rng.IntN(5))
		return []uint32{u}, strconv.FormatUint(uint64(u), 10)
	}
	if m.rng.IntN(4) == 0 {
		// A range a:b over existing and expunged UIDs.
		i := m.rng.IntN(len(uids))
		j := min(len(uids)-1, i+m.rng.IntN(max))
		lo, hi := uids[i], uids[j]
		if m.rng.IntN(2) == 0 && lo > 1 {
			lo--
		}
		var named []uint32
		for u := lo; u <= hi; u++ {
			named = append(named, u)
		}
		set := fmt.Sprintf("%d:%d", lo, hi)
		if m.rng.IntN(2) == 0 {
			set = fmt.Sprintf("%d:%d", hi, lo)
		}
		return named, set
	}
	var named []uint32
	k := 1 + m.rng.IntN(max)
	if preferDeleted {
		for _, u := range uids {
			if b.msgs[u].flags&mtDeleted != 0 && m.rng.IntN(2) == 0 {
				named = append(named, u)
			}
		}
	}
	for range k {
		named = append(named, uids[m.rng.IntN(len(uids))])
	}
	if m.rng.IntN(8) == 0 {
		named = append(named, b.maxUID+1+uint32(m.rng.IntN(3)))
	}
	named = mtSortedUnique(named)
	// Not always compressed, not always in order: "5,3,4" is valid.
	parts := make([]string, len(named))
	for i, u := range named {
		parts[i] = strconv.FormatUint(uint64(u), 10)
	}
	set := mtFormatSet(named)
	if m.rng.IntN(3) == 0 {
		m.rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		set = strings.Join(parts, ",")
	}
	return named, set
}

func (m *mtModel) randomFlags(deletedWeight int) mtFlags {
	var f mtFlags
	for i := range mtFlagNames {
		p := 4
		if mtFlags(1<<i) == mtDeleted {
			p = deletedWeight
		}
		if m.rng.IntN(p) == 0 {
			f |= 1 << i
		}
	}
	return f
}

// genCmd makes a random command for a writer that will have sel
// selected when it runs.
func (m *mtModel) genCmd(sel string) *mtCmd {
	b := m.boxes[sel]
	r := m.rng.IntN(100)
	switch {
	case r < 5:
		name := "INBOX"
		if sel == "INBOX" {
			name = mtOther
		}
		return &mtCmd{kind: mtSelect, box: name}
	case r < 30:
		return &mtCmd{kind: mtAppend, box: m.randomBox().name, flags: m.randomFlags(8)}
	case r < 72:
		cmd := &mtCmd{kind: mtStore, flags: m.randomFlags(6)}
		cmd.op = "+-="[m.rng.IntN(3)]
		if cmd.op == '=' && m.rng.IntN(2) == 0 {
			cmd.op = '+'
		}
		if cmd.flags == 0 && cmd.op != '=' {
			cmd.flags = mtDeleted
		}
		cmd.silent = m.rng.IntN(5) == 0
		var set string
		cmd.uids, set = m.pickUIDs(b, 6, false)
		item := "FLAGS"
		if cmd.op != '=' {
			item = string(cmd.op) + item
		}
		if cmd.silent {
			item += ".SILENT"
		}
		cmd.text = fmt.Sprintf("UID STORE %s %s %s", set, item, cmd.flags)
		return cmd
	case r < 85:
		cmd := &mtCmd{kind: mtExpunge}
		var set string
		cmd.uids, set = m.pickUIDs(b, 10, true)
		cmd.text = "UID EXPUNGE " + set
		return cmd
	default:
		dst := "INBOX"
		if sel == "INBOX" {
			dst = mtOther
		}
		cmd := &mtCmd{kind: mtMove, box: dst}
		var set string
		cmd.uids, set = m.pickUIDs(b, 4, false)
		cmd.text = fmt.Sprintf("UID MOVE %s %s", set, dst)
		return cmd
	}
}

func (m *mtModel) appendText(cmd *mtCmd) string {
	m.bodyN++
	body := fmt.Sprintf("From: model@example.com\r\nTo: alice@example.com\r\nSubject: model %d\r\n"+
		"Message-ID: <model-%d-%d@example.com>\r\n\r\nBody of message %d.\r\n", m.bodyN, m.seed, m.bodyN, m.bodyN)
	return fmt.Sprintf("APPEND %s %s {%d+}\r\n%s", cmd.box, cmd.flags, len(body), body)
}

// execBatch sends a batch of commands in one write and checks each answer
// against the model in order.
func (m *mtModel) execBatch(w *mtWriter, cmds []*mtCmd) {
	m.t.Helper()
	var out strings.Builder
	for _, cmd := range cmds {
		w.tagN++
		cmd.tag = fmt.Sprintf("w%d.%d", w.id, w.tagN)
		switch cmd.kind {
		case mtNoop:
			cmd.text = "NOOP"
		case mtSelect:
			cmd.text = "SELECT " + cmd.box
		case mtAppend:
			cmd.text = m.appendText(cmd)
		}
		out.WriteString(cmd.tag + " " + cmd.text + "\r\n")
		m.note(fmt.Sprintf("writer %d (mode %d, %s): %s %s", w.id, w.mode, w.sel, cmd.tag, cmd.text))
	}
	w.c.Send(out.String())
	for _, cmd := range cmds {
		lines := w.c.ReadUntilTagged(cmd.tag)
		m.check(w, cmd, lines)
	}
	if want := len(m.boxes[w.sel].msgs); w.exists != want {
		m.fail("writer %d after batch: client counts %d messages in %s (EXISTS, EXPUNGE, VANISHED), model has %d",
			w.id, w.exists, w.sel, want)
		w.exists = want
	}
}

// check applies one command to the model and checks its answer.
func (m *mtModel) check(w *mtWriter, cmd *mtCmd, lines []string) {
	m.t.Helper()
	tagged := lines[len(lines)-1]
	if !strings.HasPrefix(tagged, cmd.tag+" OK") {
		m.fail("writer %d: %s %.200s: got %q, want OK", w.id, cmd.tag, cmd.text, lines)
		return
	}
	where := fmt.Sprintf("writer %d (mode %d): %s %.120s", w.id, w.mode, cmd.tag, cmd.text)
	b := m.boxes[w.sel] // nil before the first SELECT
	var before uint64
	if b != nil {
		before = b.highest
	}

	// What the command changes, applied to the model first.
	changed := map[uint32]bool{}
	var expunged []uint32
	switch cmd.kind {
	case mtSelect:
		w.sel = cmd.box
		b = m.boxes[w.sel]
		before = b.highest
		w.exists = -1
		sawValidity := false
		for _, l := range lines {
			if mm := mtValidityRE.FindStringSubmatch(l); mm != nil && strings.HasPrefix(l, "* OK") {
				v, _ := strconv.ParseUint(mm[1], 10, 32)
				sawValidity = true
				if b.validity == 0 {
					b.validity = uint32(v)
				} else if uint32(v) != b.validity {
					m.fail("%s: UIDVALIDITY %d, was %d", where, v, b.validity)
				}
			}
			if mm := mtHighestRE.FindStringSubmatch(l); mm != nil {
				if w.mode == 0 {
					m.fail("%s: HIGHESTMODSEQ without CONDSTORE enabled: %q", where, l)
				}
				h, _ := strconv.ParseUint(mm[1], 10, 64)
				if h < b.highest {
					m.fail("%s: HIGHESTMODSEQ %d below MODSEQ %d seen before", where, h, b.highest)
				}
				b.observe(h)
			}
		}
		if !sawValidity {
			m.fail("%s: no UIDVALIDITY in %q", where, lines)
		}
		if w.mode > 0 && !slices.ContainsFunc(lines, func(l string) bool { return mtHighestRE.MatchString(l) }) {
			m.fail("%s: CONDSTORE enabled but SELECT sent no HIGHESTMODSEQ: %q", where, lines)
		}
	case mtAppend:
		dst := m.boxes[cmd.box]
		mm := mtAppendUIDRE.FindStringSubmatch(tagged)
		if mm == nil {
			m.fail("%s: no APPENDUID in %q", where, tagged)
			return
		}
		v, _ := strconv.ParseUint(mm[1], 10, 32)
		u, _ := strconv.ParseUint(mm[2], 10, 32)
		if uint32(v) != dst.validity {
			m.fail("%s: APPENDUID validity %d, want %d", where, v, dst.validity)
		}
		if uint32(u) <= dst.maxUID {
			m.fail("%s: APPENDUID %d not above the highest UID so far %d", where, u, dst.maxUID)
		}
		dst.maxUID = max(dst.maxUID, uint32(u))
		dst.msgs[uint32(u)] = &mtMsg{flags: cmd.flags}
	case mtStore:
		for _, u := range cmd.uids {
			msg := b.msgs[u]
			if msg == nil {
				continue
			}
			nf := msg.flags
			switch cmd.op {
			case '+':
				nf |= cmd.flags
			case '-':
				nf &^= cmd.flags
			default:
				nf = cmd.flags
			}
			if nf != msg.flags {
				msg.flags = nf
				msg.modseq = 0
				changed[u] = true
			}
		}
	case mtExpunge:
		for _, u := range cmd.uids {
			if msg := b.msgs[u]; msg != nil && msg.flags&mtDeleted != 0 {
				expunged = append(expunged, u)
				delete(b.msgs, u)
			}
		}
	case mtMove:
		var src []uint32
		for _, u := range cmd.uids {
			if b.msgs[u] != nil {
				src = append(src, u)
			}
		}
		dst := m.boxes[cmd.box]
		var code []string
		for _, l := range lines {
			if mm := mtCopyUIDRE.FindStringSubmatch(l); mm != nil {
				code = mm
			}
		}
		if len(src) == 0 {
			if code != nil {
				m.fail("%s: COPYUID %q though no message was moved", where, code[0])
			}
			break
		}
		if code == nil {
			m.fail("%s: no COPYUID in %q (moving %v)", where, lines, src)
			return
		}
		v, _ := strconv.ParseUint(code[1], 10, 32)
		gotSrc, err1 := mtParseSet(code[2])
		gotDst, err2 := mtParseSet(code[3])
		if err1 != nil || err2 != nil || uint32(v) != dst.validity || !slices.Equal(gotSrc, src) || len(gotDst) != len(src) {
			m.fail("%s: %s, want COPYUID %d %s and %d destination UIDs", where, code[0], dst.validity, mtFormatSet(src), len(src))
			return
		}
		for i, su := range src {
			du := gotDst[i]
			if du <= dst.maxUID {
				m.fail("%s: COPYUID destination UID %d not above %d", where, du, dst.maxUID)
			}
			dst.maxUID = max(dst.maxUID, du)
			dst.msgs[du] = &mtMsg{flags: b.msgs[su].flags}
			delete(b.msgs, su)
		}
		expunged = src
	}

	// Then every untagged response.
	var vanished []uint32
	expungeCount := 0
	for _, l := range lines[:len(lines)-1] {
		switch {
		case mtExistsRE.MatchString(l):
			n, _ := strconv.Atoi(mtExistsRE.FindStringSubmatch(l)[1])
			if w.exists >= 0 && n < w.exists {
				m.fail("%s: %q decreases the message count %d", where, l, w.exists)
			}
			w.exists = n
		case mtExpungeRE.MatchString(l):
			if w.mode == 2 {
				m.fail("%s: %q with QRESYNC enabled (RFC 7162 §3.2.10.2: VANISHED instead)", where, l)
			}
			expungeCount++
			w.exists--
		case mtVanishedRE.MatchString(l):
			mm := mtVanishedRE.FindStringSubmatch(l)
			if w.mode != 2 {
				m.fail("%s: %q without QRESYNC enabled", where, l)
			}
			if mm[1] != "" {
				m.fail("%s: %q: VANISHED (EARLIER) nobody asked for", where, l)
				continue
			}
			us, err := mtParseSet(mm[2])
			if err != nil {
				m.fail("%s: %q: %v", where, l, err)
				continue
			}
			vanished = append(vanished, us...)
			w.exists -= len(us)
			for _, u := range us {
				if b.msgs[u] != nil {
					m.fail("%s: %q: UID %d is still in the mailbox", where, l, u)
				}
			}
		case strings.Contains(l, " FETCH "):
			f, ok, err := mtParseFetch(l)
			if !ok || err != nil {
				m.fail("%s: %q: %v", where, l, err)
				continue
			}
			// A .SILENT STORE may report a change's MODSEQ without the
			// flags the client already knows (RFC 7162 §3.1.3).
			if !f.hasUID || !f.hasFlags && !(cmd.kind == mtStore && cmd.silent && f.hasModSeq) {
				m.fail("%s: %q lacks UID or FLAGS", where, l)
				continue
			}
			if w.mode > 0 && !f.hasModSeq {
				m.fail("%s: %q: no MODSEQ though CONDSTORE is enabled (RFC 7162 §3.2.4)", where, l)
			}
			if w.mode == 0 && f.hasModSeq {
				m.fail("%s: %q: MODSEQ without CONDSTORE enabled", where, l)
			}
			msg := b.msgs[f.uid]
			if msg == nil {
				m.fail("%s: %q: UID %d is not in %s", where, l, f.uid, b.name)
				continue
			}
			if f.hasFlags && f.flags != msg.flags {
				m.fail("%s: %q: flags %s, model %s", where, l, f.flags, msg.flags)
			}
			if f.hasModSeq {
				switch {
				case changed[f.uid] && f.modseq <= before:
					m.fail("%s: %q: a change got MODSEQ %d, not above %d seen before", where, l, f.modseq, before)
				case !changed[f.uid] && msg.modseq != 0 && f.modseq != msg.modseq:
					m.fail("%s: %q: MODSEQ %d of an unchanged message, was %d", where, l, f.modseq, msg.modseq)
				}
				msg.modseq = f.modseq
				b.observe(f.modseq)
			}
			if cmd.kind == mtStore && changed[f.uid] {
				delete(changed, f.uid) // reported
			}
		case mtUntaggedOKRE.MatchString(l), mtUntaggedRecRE.MatchString(l),
			strings.HasPrefix(l, "* FLAGS "):
		default:
			m.fail("%s: unexpected %q", where, l)
		}
	}
	switch cmd.kind {
	case mtStore:
		if !cmd.silent {
			for u := range changed {
				m.fail("%s: no FETCH for changed UID %d in %q", where, u, lines)
			}
		}
	case mtExpunge, mtMove:
		if w.mode == 2 {
			if !slices.Equal(mtSortedUnique(vanished), mtSortedUnique(expunged)) {
				m.fail("%s: VANISHED %v, want %v", where, mtSortedUnique(vanished), expunged)
			}
		} else if expungeCount != len(expunged) {
			m.fail("%s: %d EXPUNGE responses, want %d (%v)", where, expungeCount, len(expunged), expunged)
		}
	}
	if strings.Contains(tagged, "[HIGHESTMODSEQ ") {
		mm := mtHighestRE.FindStringSubmatch(tagged)
		h, _ := strconv.ParseUint(mm[1], 10, 64)
		if h < b.highest {
			m.fail("%s: %q below MODSEQ %d seen before", where, tagged, b.highest)
		}
		b.observe(h)
	}
}

// resyncConn opens a new connection with QRESYNC enabled.
func (m *mtModel) resyncConn() *imaptest.Conn {
	c := m.env.DialLogin(m.t)
	lines := c.Cmd("r0", "ENABLE QRESYNC")
	if !slices.ContainsFunc(lines, func(l string) bool {
		mm := mtEnabledRE.FindStringSubmatch(l)
		return mm != nil && slices.Contains(strings.Fields(strings.ToUpper(mm[1])), "QRESYNC")
	}) {
		m.t.Fatalf("ENABLE QRESYNC: got %q, want * ENABLED QRESYNC", lines)
	}
	return c
}

// snapshot saves a mailbox's full state as a client that synchronizes
// from scratch sees it, after checking it against the model.
func (m *mtModel) snapshot(b *mtBox) {
	m.t.Helper()
	m.snapshots++
	c := m.resyncConn()
	defer c.NC.Close()
	c.Send("r1 SELECT " + b.name + "\r\nr2 UID FETCH 1:* (FLAGS MODSEQ)\r\nr3 LOGOUT\r\n")
	m.note("resync client: snapshot of " + b.name)
	where := "snapshot of " + b.name
	sel := c.ReadUntilTagged("r1")
	validity, highest := m.selectInfo(where, b, sel)
	fetch := c.ReadUntilTagged("r2")
	c.ReadUntilTagged("r3")
	if !strings.HasPrefix(fetch[len(fetch)-1], "r2 OK") {
		m.fail("%s: UID FETCH 1:* (FLAGS MODSEQ): %q", where, fetch)
		return
	}
	snap := mtSnap{validity: validity, modseq: highest, msgs: map[uint32]mtFlags{}}
	for _, l := range fetch[:len(fetch)-1] {
		f, ok, err := mtParseFetch(l)
		if !ok {
			continue
		}
		if err != nil || !f.hasUID || !f.hasFlags || !f.hasModSeq {
			m.fail("%s: %q (%v): want UID, FLAGS and MODSEQ", where, l, err)
			continue
		}
		snap.msgs[f.uid] = f.flags
		if f.modseq > highest {
			m.fail("%s: %q: MODSEQ above HIGHESTMODSEQ %d", where, l, highest)
		}
		if msg := b.msgs[f.uid]; msg != nil {
			if msg.modseq != 0 && msg.modseq != f.modseq {
				m.fail("%s: %q: MODSEQ %d, the model saw %d after the last change", where, l, f.modseq, msg.modseq)
			}
			msg.modseq = f.modseq
		}
	}
	m.compare(where, b, snap.msgs)
	b.snaps = append(b.snaps, snap)
	if len(b.snaps) > 6 {
		// Keep the oldest (the most to catch up) and the newest.
		b.snaps = append(b.snaps[:1], b.snaps[len(b.snaps)-5:]...)
	}
}

// selectInfo checks a SELECT answer's UIDVALIDITY and HIGHESTMODSEQ.
func (m *mtModel) selectInfo(where string, b *mtBox, lines []string) (validity uint32, highest uint64) {
	m.t.Helper()
	if !strings.HasPrefix(lines[len(lines)-1], "r1 OK") {
		m.t.Fatalf("%s: SELECT: %q", where, lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "* OK") {
			continue
		}
		if mm := mtValidityRE.FindStringSubmatch(l); mm != nil {
			v, _ := strconv.ParseUint(mm[1], 10, 32)
			validity = uint32(v)
		}
		if mm := mtHighestRE.FindStringSubmatch(l); mm != nil {
			highest, _ = strconv.ParseUint(mm[1], 10, 64)
		}
		if mtNoModSeqRE.MatchString(l) {
			m.fail("%s: %q", where, l)
		}
	}
	if validity != b.validity {
		m.fail("%s: UIDVALIDITY %d, want %d", where, validity, b.validity)
	}
	if highest == 0 {
		m.fail("%s: no HIGHESTMODSEQ in %q", where, lines)
	}
	if highest < b.highest {
		m.fail("%s: HIGHESTMODSEQ %d below MODSEQ %d seen before", where, highest, b.highest)
	}
	b.observe(highest)
	return validity, highest
}

func (m *mtModel) compare(where string, b *mtBox, got map[uint32]mtFlags) {
	m.t.Helper()
	var diffs []string
	for _, u := range b.sortedUIDs() {
		g, ok := got[u]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("UID %d missing (model %s)", u, b.msgs[u].flags))
		case g != b.msgs[u].flags:
			diffs = append(diffs, fmt.Sprintf("UID %d flags %s, model %s", u, g, b.msgs[u].flags))
		}
	}
	var extra []uint32
	for u := range got {
		if b.msgs[u] == nil {
			extra = append(extra, u)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	for _, u := range extra {
		diffs = append(diffs, fmt.Sprintf("UID %d present, model has none", u))
	}
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
		}
		m.fail("%s: the client's state differs from the model:\n\t%s", where, strings.Join(diffs, "\n\t"))
	}
}

// resync resynchronizes a saved state of a mailbox:
//
//	method 0: SELECT (QRESYNC (v m)), all UIDs implied
//	method 1: SELECT (QRESYNC (v m known-uids)) + UID FETCH max+1:* (FLAGS)
//	method 2: SELECT (CONDSTORE) + UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)
//	method 3: SELECT (QRESYNC (wrong-v m)): nothing may be reported
func (m *mtModel) resync(b *mtBox, idx, method int) {
	m.t.Helper()
	m.resyncs++
	snap := b.snaps[idx]
	c := m.resyncConn()
	defer c.NC.Close()
	known := make([]uint32, 0, len(snap.msgs))
	for u := range snap.msgs {
		known = append(known, u)
	}
	slices.Sort(known)
	if method == 1 && len(known) == 0 {
		method = 0
	}
	var sel, fetch string
	switch method {
	case 0:
		sel = fmt.Sprintf("SELECT %s (QRESYNC (%d %d))", b.name, snap.validity, snap.modseq)
	case 1:
		sel = fmt.Sprintf("SELECT %s (QRESYNC (%d %d %s))", b.name, snap.validity, snap.modseq, mtFormatSet(known))
		fetch = fmt.Sprintf("UID FETCH %d:* (FLAGS)", known[len(known)-1]+1)
	case 2:
		sel = fmt.Sprintf("SELECT %s (CONDSTORE)", b.name)
		fetch = fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", snap.modseq)
	case 3:
		sel = fmt.Sprintf("SELECT %s (QRESYNC (%d %d))", b.name, snap.validity+1, snap.modseq)
	}
	where := fmt.Sprintf("resync of %s from (%d %d, %d messages): %s; %s", b.name, snap.validity, snap.modseq, len(snap.msgs), sel, fetch)
	m.note("resync client: " + sel + "; " + fetch)
	text := "r1 " + sel + "\r\n"
	if fetch != "" {
		text += "r2 " + fetch + "\r\n"
	}
	c.Send(text + "r3 LOGOUT\r\n")
	selLines := c.ReadUntilTagged("r1")
	_, highest := m.selectInfo(where, b, selLines)
	var fetchLines []string
	if fetch != "" {
		fetchLines = c.ReadUntilTagged("r2")
		if !strings.HasPrefix(fetchLines[len(fetchLines)-1], "r2 OK") {
			m.fail("%s: %q", where, fetchLines)
			return
		}
	}
	c.ReadUntilTagged("r3")

	state := make(map[uint32]mtFlags, len(snap.msgs))
	for u, f := range snap.msgs {
		state[u] = f
	}
	reported := map[uint32]bool{}
	// apply applies VANISHED (EARLIER) and FETCH responses; changes says
	// whether they answer a CHANGEDSINCE (QRESYNC or the UID FETCH
	// modifier) rather than a plain UID FETCH.
	apply := func(what string, lines []string, changes bool) {
		sawFetch := false
		for _, l := range lines[:len(lines)-1] {
			if mm := mtVanishedRE.FindStringSubmatch(l); mm != nil {
				if mm[1] == "" {
					m.fail("%s: %s: %q: VANISHED without (EARLIER)", where, what, l)
				}
				if !changes {
					m.fail("%s: %s: unexpected %q", where, what, l)
				}
				if sawFetch {
					m.fail("%s: %s: %q after a FETCH (RFC 7162 §3.2.6: VANISHED (EARLIER) first)", where, what, l)
				}
				us, err := mtParseSet(mm[2])
				if err != nil {
					m.fail("%s: %q: %v", where, l, err)
					continue
				}
				for _, u := range us {
					if b.msgs[u] != nil {
						m.fail("%s: %s: %q: UID %d still exists", where, what, l, u)
					}
					delete(state, u)
				}
				continue
			}
			f, ok, err := mtParseFetch(l)
			if !ok {
				continue
			}
			sawFetch = true
			// RFC 7162 §3.2.4: MODSEQ comes with every FETCH of a
			// CHANGEDSINCE answer, not with a plain UID FETCH (FLAGS).
			if err != nil || !f.hasUID || !f.hasFlags || changes && !f.hasModSeq {
				m.fail("%s: %s: %q (%v): want UID, FLAGS and MODSEQ", where, what, l, err)
				continue
			}
			if changes && f.modseq <= snap.modseq {
				m.fail("%s: %s: %q: MODSEQ not above CHANGEDSINCE %d", where, what, l, snap.modseq)
			}
			if f.modseq > highest {
				m.fail("%s: %s: %q: MODSEQ above HIGHESTMODSEQ %d", where, what, l, highest)
			}
			if msg := b.msgs[f.uid]; msg != nil && f.hasModSeq {
				if msg.modseq != 0 && msg.modseq != f.modseq {
					m.fail("%s: %s: %q: MODSEQ %d, the model saw %d after the last change", where, what, l, f.modseq, msg.modseq)
				}
				msg.modseq = f.modseq
			}
			state[f.uid] = f.flags
			reported[f.uid] = true
		}
	}
	if method == 3 {
		for _, l := range selLines {
			if mtVanishedRE.MatchString(l) || mtFetchRE.MatchString(l) {
				m.fail("%s: %q despite the UIDVALIDITY mismatch (RFC 7162 §3.2.5)", where, l)
			}
		}
		return
	}
	apply("SELECT", selLines, method != 2)
	if fetch != "" {
		apply("UID FETCH", fetchLines, method == 2)
	}
	// Every message the model knows changed after the saved MODSEQ must
	// have been reported (within known-uids for method 1).
	for _, u := range b.sortedUIDs() {
		msg := b.msgs[u]
		if method == 1 && !slices.Contains(known, u) && u <= known[len(known)-1] {
			continue
		}
		if msg.modseq > snap.modseq && !reported[u] {
			m.fail("%s: UID %d has MODSEQ %d > %d but was not reported", where, u, msg.modseq, snap.modseq)
		}
	}
	m.compare(where, b, state)
	if !m.t.Failed() && m.rng.IntN(2) == 0 {
		// The client carries on from its new state.
		b.snaps[idx] = mtSnap{validity: snap.validity, modseq: highest, msgs: state}
	}
}
