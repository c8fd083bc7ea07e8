package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxExamples is how many error texts are kept per kind.
const maxExamples = 5

// Load runs Setup, then Run.
func Load(ctx context.Context, cfg Config) (*Report, error) {
	setup, err := Setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return Run(ctx, cfg, setup)
}

// Run is the run phase: cfg.Clients clients send the mix for
// cfg.Duration against the INBOXes setup prepared. Commands under way at
// the end finish and count. Errors of the server (a tagged NO or BAD, an
// unexpected BYE, a dropped connection, a response missing what the
// command asked for) are counted in the report, not returned: Run
// returns an error only when it cannot start. When ctx ends, Run stops
// early and reports what it measured.
func Run(ctx context.Context, cfg Config, setup *SetupReport) (*Report, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("the run needs a positive duration")
	}
	cfg = cfg.withDefaults()
	if setup == nil || len(setup.counts) != cfg.Users {
		return nil, errors.New("run without a setup of the same accounts")
	}
	for k, w := range cfg.Mix {
		if w == 0 {
			continue
		}
		kind := Kind(k)
		if kind.needsMessages() && setup.MinMessages == 0 {
			return nil, fmt.Errorf("the mix has %s but an INBOX is empty: fill it", kind)
		}
		if (kind == KindAppend || kind == KindExpunge) && !hasCap(setup.Capabilities, "UIDPLUS") {
			return nil, fmt.Errorf("the mix has %s, which needs UIDPLUS (RFC 4315), and the server lacks it", kind)
		}
		if kind == KindIdle && !hasCap(setup.Capabilities, "IDLE") {
			return nil, errors.New("the mix has idle and the server lacks IDLE (RFC 2177)")
		}
	}

	shared := &runShared{
		cfg:     &cfg,
		setup:   setup,
		pool:    appendPool(cfg.Seed),
		nonSync: hasCap(setup.Capabilities, "LITERAL+"),
		saslIR:  hasCap(setup.preCaps, "SASL-IR"),
		nonce:   uint32(rand.Uint64()),
	}

	if len(cfg.ServerPIDs) > 0 {
		if _, _, err := treeCPU(cfg.ServerPIDs); err != nil {
			return nil, fmt.Errorf("server CPU time: %w", err)
		}
	}

	// Warm-up: every client connects, logs in and selects INBOX before
	// the clock starts, so that a run without LOGOUT measures commands,
	// not the first logins. Its figures are reported apart.
	clients := make([]*client, cfg.Clients)
	var warm, measured, finished sync.WaitGroup
	begin := make(chan struct{})
	release := make(chan struct{})
	var runCtx context.Context // set before begin is closed
	warmStart := time.Now()
	for i := range clients {
		cl := newClient(i, shared)
		clients[i] = cl
		warm.Add(1)
		measured.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			cl.connect(ctx)
			warm.Done()
			<-begin
			cl.loop(ctx, runCtx)
			measured.Done()
			<-release
			cl.finish()
		}()
	}
	warm.Wait()
	warmup := time.Since(warmStart)
	for _, cl := range clients {
		cl.warm = cl.stats
		cl.stats = newStats()
	}

	var cpu0 float64
	if len(cfg.ServerPIDs) > 0 {
		cpu0, _, _ = treeCPU(cfg.ServerPIDs)
	}
	self0 := selfCPU()
	start := time.Now()
	runCtx, cancel := context.WithDeadline(ctx, start.Add(cfg.Duration))
	defer cancel()
	close(begin)

	measured.Wait()
	elapsed := time.Since(start)
	self1 := selfCPU()
	rep := &Report{}
	if len(cfg.ServerPIDs) > 0 {
		cpu1, procs, err := treeCPU(cfg.ServerPIDs)
		if err != nil {
			rep.CPUError = err.Error()
		} else {
			v := cpu1 - cpu0
			rep.ServerCPUSec = &v
			rep.ServerProcesses = procs
		}
	}
	close(release)
	finished.Wait()

	rep.fill(&cfg, setup, clients, warmup, elapsed, self1-self0)
	return rep, nil
}

// runShared is what the clients of a run share, read-only but for the
// round-robin counter.
type runShared struct {
	cfg     *Config
	setup   *SetupReport
	pool    []poolMessage
	nonSync bool
	saslIR  bool
	nonce   uint32
	next    atomic.Uint64 // round-robin account counter
}

// poolMessage is a message for APPEND under load, cut around its
// Message-ID so that every append gets a unique one of the same length.
type poolMessage struct {
	head, tail []byte
}

const msgIDLen = 24 // hex digits: nonce, client, counter

// appendPool makes the messages clients append: generating one costs
// more than sending it, so a run draws from a few.
func appendPool(seed uint64) []poolMessage {
	gen := newMessageGen(seed, 1<<62)
	pool := make([]poolMessage, 32)
	date := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range pool {
		m := gen.message(0, "run", date.Add(time.Duration(i)*time.Hour))
		j := bytes.Index(m, []byte("Message-ID: <"))
		at := j + bytes.IndexByte(m[j:], '@')
		j += len("Message-ID: <")
		pool[i] = poolMessage{head: bytes.Clone(m[:j]), tail: bytes.Clone(m[at:])}
	}
	return pool
}

// kindStats are one client's figures for one kind.
type kindStats struct {
	count, errors int64
	lat           []time.Duration // of the commands answered OK
	examples      []string
}

// client is one simulated client; only its own goroutine touches it.
type client struct {
	id  int
	sh  *runShared
	cfg *Config
	rnd *rand.Rand

	c           *conn // nil while disconnected
	user        int
	stable      int // messages 1..stable are setup's and stay
	sinceLogin  int
	deck        []Kind
	pos         int
	pending     []uint32 // UIDs appended and not yet expunged
	searchTurn  int
	appends     uint64
	idBuf       [msgIDLen]byte
	stats       [numKinds]kindStats
	warm        [numKinds]kindStats // of the warm-up
	disconnects int64
	conns       int // connections attempted, to choose the next address
}

func newStats() [numKinds]kindStats {
	var s [numKinds]kindStats
	for k := range s {
		s[k].lat = make([]time.Duration, 0, 256)
	}
	return s
}

func newClient(id int, sh *runShared) *client {
	return &client{
		id:    id,
		sh:    sh,
		cfg:   sh.cfg,
		rnd:   rand.New(rand.NewPCG(sh.cfg.Seed, uint64(id)+1)),
		stats: newStats(),
	}
}

// loop sends commands until runCtx ends; I/O runs under ctx, so that the
// command under way when the run ends completes.
func (cl *client) loop(ctx, runCtx context.Context) {
	for runCtx.Err() == nil {
		if cl.c == nil {
			if !cl.connect(ctx) {
				// Do not hammer a server that refuses us.
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-runCtx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			continue
		}
		cl.do(runCtx, cl.nextKind())
		if cl.c != nil && !cl.cfg.NoLogout && cl.sinceLogin >= cl.cfg.LogoutEvery {
			cl.logout()
		}
	}
}

// finish cleans up after the measured run, unmeasured: the client's
// appended messages are expunged and it logs out.
func (cl *client) finish() {
	if cl.c == nil {
		return
	}
	if len(cl.pending) > 0 {
		cl.uidStore()
		if _, err := cl.c.send(); err == nil {
			cl.uidExpunge()
			_, _ = cl.c.send()
		}
	}
	_ = cl.c.simple("LOGOUT")
	cl.c.close()
	cl.c = nil
}

// connect connects, logs in as the next account and selects its INBOX.
func (cl *client) connect(ctx context.Context) bool {
	cfg := cl.cfg
	if cfg.Pick == PickRandom {
		cl.user = cl.rnd.IntN(cfg.Users)
	} else {
		cl.user = int((cl.sh.next.Add(1) - 1) % uint64(cfg.Users))
	}
	cl.stable = cl.sh.setup.counts[cl.user]
	cl.pending = cl.pending[:0]
	t0 := time.Now()
	addr := cfg.addr(cl.id, cl.conns)
	cl.conns++
	c, _, err := dial(ctx, cfg, addr)
	if err != nil {
		cl.fail(KindConnect, err)
		return false
	}
	cl.ok(KindConnect, t0)
	cl.c = c

	t0 = time.Now()
	err = c.login(cfg.Auth, cfg.userName(cl.user), cfg.Password, cl.sh.saslIR)
	if !cl.result(KindLogin, t0, err) {
		cl.drop()
		return false
	}
	cl.sinceLogin = 0
	if !cl.selectInbox() {
		cl.drop()
		return false
	}
	return true
}

// drop closes the connection without LOGOUT.
func (cl *client) drop() {
	if cl.c != nil {
		cl.c.close()
		cl.c = nil
	}
}

func (cl *client) selectInbox() bool {
	t0 := time.Now()
	cl.c.exists = -1
	err := cl.c.simple("SELECT INBOX")
	if err == nil && cl.c.exists < 0 {
		err = errors.New("no EXISTS in the SELECT response")
	}
	return cl.result(KindSelect, t0, err)
}

// logout sends LOGOUT, after expunging what the client appended so that
// the INBOX keeps its size.
func (cl *client) logout() {
	if len(cl.pending) > 0 {
		cl.expunge()
		if cl.c == nil {
			return
		}
	}
	t0 := time.Now()
	c := cl.c
	err := c.simple("LOGOUT")
	if err == nil && c.bye == "" {
		err = errors.New("no BYE before the tagged OK (RFC 3501 §6.1.3)")
	}
	c.bye = "" // expected here
	cl.result(KindLogout, t0, err)
	cl.drop()
}

// nextKind deals the next kind of the cycle, shuffling a new cycle when
// one is done.
func (cl *client) nextKind() Kind {
	if cl.pos >= len(cl.deck) {
		cl.deck = cl.deck[:0]
		for k, w := range cl.cfg.Mix {
			for range w {
				cl.deck = append(cl.deck, Kind(k))
			}
		}
		cl.rnd.Shuffle(len(cl.deck), func(i, j int) { cl.deck[i], cl.deck[j] = cl.deck[j], cl.deck[i] })
		// An expunge should find a message appended before it: move
		// each expunge that has none behind the next append.
		avail := len(cl.pending)
		for i := 0; i < len(cl.deck); i++ {
			switch cl.deck[i] {
			case KindAppend:
				avail++
			case KindExpunge:
				if avail > 0 {
					avail = 0
					continue
				}
				for j := i + 1; j < len(cl.deck); j++ {
					if cl.deck[j] == KindAppend {
						cl.deck[i], cl.deck[j] = cl.deck[j], cl.deck[i]
						avail++
						break
					}
				}
			}
		}
		cl.pos = 0
	}
	k := cl.deck[cl.pos]
	cl.pos++
	return k
}

// bound is the highest sequence number the client addresses: setup's
// messages, which nobody expunges, and never past what the server says
// the mailbox holds.
func (cl *client) bound() int { return min(cl.stable, cl.c.exists) }

// do sends one command of kind k (two for an expunge: the STORE of
// \Deleted counts as a store).
func (cl *client) do(runCtx context.Context, k Kind) {
	cl.sinceLogin++
	c := cl.c
	switch k {
	case KindSelect:
		cl.selectInbox()
		return
	case KindAppend:
		cl.append()
		return
	case KindExpunge:
		cl.expunge()
		return
	case KindIdle:
		cl.idle(runCtx)
		return
	}
	if k.needsMessages() && cl.bound() < 1 {
		cl.fail(k, fmt.Errorf("the INBOX holds %d messages (%d after setup)", c.exists, cl.stable))
		return
	}
	t0 := time.Now()
	c.begin()
	want := 1
	switch k {
	case KindFetchFlags, KindFetchEnvelope:
		n := cl.bound()
		lo := max(1, n-199)
		item := " (UID FLAGS)"
		if k == KindFetchEnvelope {
			lo = max(1, n-19)
			item = " (UID ENVELOPE)"
		}
		want = n - lo + 1
		c.cmd = append(c.cmd, "FETCH "...)
		c.cmd = strconv.AppendInt(c.cmd, int64(lo), 10)
		c.cmd = append(c.cmd, ':')
		c.cmd = strconv.AppendInt(c.cmd, int64(n), 10)
		c.cmd = append(c.cmd, item...)
	case KindFetchBodystructure, KindFetchBody:
		c.cmd = append(c.cmd, "FETCH "...)
		c.cmd = strconv.AppendInt(c.cmd, int64(1+cl.rnd.IntN(cl.bound())), 10)
		if k == KindFetchBody {
			c.cmd = append(c.cmd, " (UID BODY.PEEK[])"...)
		} else {
			c.cmd = append(c.cmd, " (UID BODYSTRUCTURE)"...)
		}
	case KindStore:
		want = 0
		c.cmd = append(c.cmd, "STORE "...)
		c.cmd = strconv.AppendInt(c.cmd, int64(1+cl.rnd.IntN(cl.bound())), 10)
		switch cl.rnd.IntN(4) {
		case 0:
			c.cmd = append(c.cmd, ` +FLAGS (\Seen)`...)
		case 1:
			c.cmd = append(c.cmd, ` -FLAGS (\Seen)`...)
		case 2:
			c.cmd = append(c.cmd, ` +FLAGS (\Flagged)`...)
		default:
			c.cmd = append(c.cmd, ` -FLAGS (\Flagged)`...)
		}
	case KindSearch:
		want = 0
		c.cmd = append(c.cmd, "UID SEARCH "...)
		cl.searchTurn++
		switch cl.searchTurn % 4 {
		case 0:
			c.cmd = append(c.cmd, "UNSEEN"...)
		case 1:
			c.cmd = append(c.cmd, "FLAGGED"...)
		case 2:
			c.cmd = append(c.cmd, "FROM "...)
			c.cmd = appendAString(c.cmd, asciiOnly(firstNames[cl.rnd.IntN(len(firstNames))]))
		default:
			c.cmd = append(c.cmd, "SUBJECT "...)
			c.cmd = appendAString(c.cmd, subjects[cl.rnd.IntN(len(subjects))][:8])
		}
	}
	st, err := c.send()
	if err == nil && st == statusCont {
		err = errors.New("unexpected continuation request")
	}
	if err == nil && c.fetches < want {
		err = fmt.Errorf("%d FETCH responses, want %d", c.fetches, want)
	}
	cl.result(k, t0, err)
}

// append APPENDs a message from the pool with a unique Message-ID and
// remembers its UID (RFC 4315 APPENDUID) for a later expunge.
func (cl *client) append() {
	c := cl.c
	m := &cl.sh.pool[cl.rnd.IntN(len(cl.sh.pool))]
	cl.appends++
	id := cl.idBuf[:]
	const hexDigits = "0123456789abcdef"
	v := uint64(cl.sh.nonce)<<32 | uint64(cl.id)
	for i := 0; i < 12; i++ {
		id[11-i] = hexDigits[(v>>(4*i))&0xf]
		id[23-i] = hexDigits[(cl.appends>>(4*i))&0xf]
	}
	t0 := time.Now()
	c.begin()
	c.cmd = append(c.cmd, `APPEND INBOX (\Seen) `...)
	err := c.appendLiteral(cl.sh.nonSync, len(m.head)+len(id)+len(m.tail), m.head, id, m.tail)
	if err == nil {
		err = c.expectOK()
	}
	if err == nil && c.appendUID == 0 {
		err = errors.New("no APPENDUID in the tagged OK (RFC 4315)")
	}
	if cl.result(KindAppend, t0, err) {
		cl.pending = append(cl.pending, c.appendUID)
	}
}

// uidStore begins the command flagging the pending messages \Deleted.
func (cl *client) uidStore() {
	c := cl.c
	c.begin()
	c.cmd = append(c.cmd, "UID STORE "...)
	c.cmd = cl.appendUIDs(c.cmd)
	c.cmd = append(c.cmd, ` +FLAGS.SILENT (\Deleted)`...)
}

// uidExpunge begins the command expunging the pending messages.
func (cl *client) uidExpunge() {
	c := cl.c
	c.begin()
	c.cmd = append(c.cmd, "UID EXPUNGE "...)
	c.cmd = cl.appendUIDs(c.cmd)
}

func (cl *client) appendUIDs(b []byte) []byte {
	for i, u := range cl.pending {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(u), 10)
	}
	return b
}

// expunge removes the messages the client appended: UID STORE +FLAGS
// (\Deleted), counted as a store, then UID EXPUNGE (RFC 4315 §2.1), which
// leaves other clients' messages alone. With nothing appended it sends a
// plain EXPUNGE.
func (cl *client) expunge() {
	c := cl.c
	if len(cl.pending) == 0 {
		t0 := time.Now()
		cl.result(KindExpunge, t0, c.simple("EXPUNGE"))
		return
	}
	t0 := time.Now()
	cl.uidStore()
	st, err := c.send()
	if err == nil && st == statusCont {
		err = errors.New("unexpected continuation request")
	}
	if !cl.result(KindStore, t0, err) {
		return
	}
	t0 = time.Now()
	cl.uidExpunge()
	st, err = c.send()
	if err == nil && st == statusCont {
		err = errors.New("unexpected continuation request")
	}
	if cl.result(KindExpunge, t0, err) {
		cl.pending = cl.pending[:0]
	}
}

// idle runs IDLE (RFC 2177) for IdleMin to IdleMax, or until the run
// ends, then DONE. Its latency is the two round trips, IDLE to the
// continuation request and DONE to the tagged OK, without the wait.
func (cl *client) idle(runCtx context.Context) {
	c := cl.c
	t0 := time.Now()
	c.begin()
	c.cmd = append(c.cmd, "IDLE"...)
	st, err := c.send()
	if err == nil && st != statusCont {
		err = errors.New("IDLE ended without a continuation request")
	}
	if err != nil {
		cl.result(KindIdle, t0, err)
		return
	}
	rtt := time.Since(t0)
	d := cl.cfg.IdleMin
	if span := cl.cfg.IdleMax - cl.cfg.IdleMin; span > 0 {
		d += time.Duration(cl.rnd.Int64N(int64(span)))
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-runCtx.Done():
		t.Stop()
	}
	t1 := time.Now()
	err = c.write([]byte("DONE\r\n"))
	if err == nil {
		st, err = c.read()
		if err == nil && st == statusCont {
			err = errors.New("a continuation request after DONE")
		}
	}
	cl.result(KindIdle, t1.Add(-rtt), err)
}

// result records the outcome of a command of kind k begun at t0 and
// reports whether it succeeded. A failure that leaves the connection
// unusable drops it.
func (cl *client) result(k Kind, t0 time.Time, err error) bool {
	if err == nil && cl.c != nil && cl.c.bye != "" {
		err = fmt.Errorf("unexpected BYE: %s", cl.c.bye)
		cl.c.bye = ""
		cl.drop()
	}
	if err != nil {
		cl.fail(k, err)
		var se *serverError
		if !errors.As(err, &se) {
			cl.drop() // the connection's state is unknown
		}
		return false
	}
	cl.ok(k, t0)
	return true
}

func (cl *client) ok(k Kind, t0 time.Time) {
	s := &cl.stats[k]
	s.count++
	s.lat = append(s.lat, time.Since(t0))
}

func (cl *client) fail(k Kind, err error) {
	s := &cl.stats[k]
	s.count++
	s.errors++
	var de *disconnectError
	if errors.As(err, &de) {
		cl.disconnects++
	}
	if len(s.examples) < maxExamples {
		text := cl.cfg.userName(cl.user) + ": " + err.Error()
		if !slices.Contains(s.examples, text) {
			s.examples = append(s.examples, text)
		}
	}
}
