package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quickimap/quickimap/wire"
)

// The memory budget bounds what all connections together hold at once of
// what clients send and what FETCH writes to them, so that many clients,
// each within its own limits, cannot together exhaust the machine's
// memory:
//
//   - An APPEND literal larger than Options.SpoolLiteral, or any APPEND
//     literal when the budget is spent, is written to a temporary file as it
//     arrives (spool); a smaller one is held in memory and counted.
//     Once the command is read, each spooled message is loaded to be
//     parsed and stored: the load waits for its share of the budget
//     (alone, one message may exceed it), and a command that cannot get
//     it in time is answered NO [LIMIT].
//   - Other literals (strings) above 64 KiB are counted; one that does
//     not fit is refused with NO [LIMIT] before the client sends it.
//   - FETCH sends large bodies from the store in pieces through a buffer
//     counted against the budget (a smaller, uncounted one when it is
//     spent), and a body it must read whole (a header to filter, a
//     message without its stored structure) waits for its share.

// Defaults of the memory budget: DefaultMemoryBudget takes
// memoryBudgetShare of the memory the process may use, within
// [minMemoryBudget, maxMemoryBudget].
const (
	memoryBudgetShare = 8 // an eighth
	minMemoryBudget   = 64 << 20
	maxMemoryBudget   = 1 << 30
	fallbackBudget    = 256 << 20 // when the memory cannot be read
)

// DefaultSpoolLiteral is the default of Options.SpoolLiteral.
const DefaultSpoolLiteral = 1 << 20

// DefaultMemoryBudget returns the default of Options.MemoryBudget: an
// eighth of the memory the process may use — the smaller of the
// machine's memory (MemTotal in /proc/meminfo) and the limit of its
// cgroup (memory.max of cgroup v2, memory.limit_in_bytes of v1) — at
// least 64 MiB and at most 1 GiB. Where neither can be read it is
// 256 MiB.
func DefaultMemoryBudget() int64 {
	return memoryBudgetFrom(readSmall("/proc/meminfo"),
		readSmall("/sys/fs/cgroup/memory.max"),
		readSmall("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
}

func readSmall(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return b
}

// memoryBudgetFrom computes DefaultMemoryBudget from the contents of
// /proc/meminfo and of the cgroup limit files (nil when missing).
func memoryBudgetFrom(meminfo []byte, cgroupLimits ...[]byte) int64 {
	avail := processMemory(meminfo, cgroupLimits...)
	if avail == 0 {
		return fallbackBudget
	}
	return min(max(avail/memoryBudgetShare, minMemoryBudget), maxMemoryBudget)
}

// machineMemory is the memory the process may use (see
// DefaultMemoryBudget), 0 when it cannot be read.
func machineMemory() int64 {
	return processMemory(readSmall("/proc/meminfo"),
		readSmall("/sys/fs/cgroup/memory.max"),
		readSmall("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
}

// processMemory is the smaller of MemTotal in meminfo and the cgroup
// limits, 0 when none can be read.
func processMemory(meminfo []byte, cgroupLimits ...[]byte) int64 {
	var avail int64
	sc := bufio.NewScanner(strings.NewReader(string(meminfo)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 && kb < 1<<53 {
				avail = kb << 10
			}
		}
	}
	for _, b := range cgroupLimits {
		// "max" (v2) or a huge number (v1) means no limit.
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && n > 0 && n < 1<<60 && (avail == 0 || n < avail) {
			avail = n
		}
	}
	return avail
}

// memBudget is the server-wide memory budget: bytes taken by connections
// and given back when they are done with them.
type memBudget struct {
	limit int64

	mu   sync.Mutex
	used int64
	// waiting counts the take calls waiting for bytes.
	waiting int
	// freed is closed, and replaced, whenever bytes are given back, to
	// wake those that wait.
	freed chan struct{}

	// Spooled literals in flight: files open and bytes written to them.
	spoolFiles atomic.Int64
	spoolBytes atomic.Int64
}

func newMemBudget(limit int64) *memBudget {
	return &memBudget{limit: limit, freed: make(chan struct{})}
}

// tryTake takes n bytes if they fit the budget.
func (b *memBudget) tryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// take takes n bytes, waiting until they fit or ctx ends. More than the
// whole budget is granted when nothing else is taken, so that one
// message larger than the budget can still be handled, alone.
func (b *memBudget) take(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.used+n <= b.limit || b.used == 0 {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.waiting++
		b.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// give gives back n bytes taken.
func (b *memBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		panic(fmt.Sprintf("memory budget: %d bytes given back beyond those taken", -b.used))
	}
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

func (b *memBudget) inUse() (used int64, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.waiting
}

// MemoryStats is a snapshot of the memory budget (Options.MemoryBudget).
type MemoryStats struct {
	// Budget is the limit; InUse the bytes taken now by literals held
	// in memory and by FETCH buffers and bodies.
	Budget, InUse int64
	// Waiting is the number of commands waiting for their share.
	Waiting int
	// SpoolFiles is the number of literals being written to, or held in,
	// temporary files, and SpoolBytes the bytes written to them.
	SpoolFiles, SpoolBytes int64
}

// MemoryStats returns the current figures of the memory budget.
func (s *Server) MemoryStats() MemoryStats {
	used, waiting := s.mem.inUse()
	return MemoryStats{
		Budget:     s.mem.limit,
		InUse:      used,
		Waiting:    waiting,
		SpoolFiles: s.mem.spoolFiles.Load(),
		SpoolBytes: s.mem.spoolBytes.Load(),
	}
}

// errMemoryBusy refuses what does not fit the memory budget now.
func errMemoryBusy() error {
	return &wire.LimitError{Code: "LIMIT", Msg: "Server memory busy; try again later", NO: true}
}

// cmdMemory is what the current command holds of the budget and of
// temporary files; the connection releases it when the command ends.
type cmdMemory struct {
	taken  int64
	spools []*spoolFile
}

// tryTakeMemory takes n bytes of the budget for the current command, if
// they fit.
func (c *conn) tryTakeMemory(n int64) bool {
	if !c.s.mem.tryTake(n) {
		return false
	}
	c.cmem.taken += n
	return true
}

// takeMemory takes n bytes for the current command, waiting for them up
// to the literal timeout.
func (c *conn) takeMemory(ctx context.Context, n int64) error {
	if err := c.s.mem.takeWithin(ctx, n, c.s.opts.LiteralTimeout); err != nil {
		return err
	}
	c.cmem.taken += n
	return nil
}

// takeWithin is take, giving up after d with errMemoryBusy.
func (b *memBudget) takeWithin(ctx context.Context, n int64, d time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, d, errMemoryBusy())
	defer cancel()
	return b.take(ctx, n)
}

// admitLiteral is the decoder's SetAdmit function: a string literal
// larger than the scratch buffer is read only if it fits the budget.
func (c *conn) admitLiteral(n int64) error {
	if !c.tryTakeMemory(n) {
		return errMemoryBusy()
	}
	return nil
}

// releaseMemory gives back what the command held: its share of the
// budget, and its temporary files, removed.
func (c *conn) releaseMemory() {
	for _, f := range c.cmem.spools {
		f.close()
	}
	clear(c.cmem.spools)
	c.cmem.spools = c.cmem.spools[:0]
	c.s.mem.give(c.cmem.taken)
	c.cmem.taken = 0
}

// spoolFile is a literal written to a temporary file as it arrives. The
// file is removed from its directory as soon as it is made (where the
// system allows it, else when it is closed), so that nothing is left
// behind even if the process dies; it is readable with mode 0600 only
// meanwhile.
type spoolFile struct {
	b    *memBudget
	f    *os.File
	name string // "" once removed
	w    *bufio.Writer
	n    int64
	nul  bool  // a NUL byte was written
	err  error // the first write error; further writes are dropped
}

// spoolBufSize is the buffer between the connection and a spool file.
const spoolBufSize = 64 << 10

func newSpoolFile(b *memBudget, dir string) (*spoolFile, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "quickimap-literal-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, "quickimap-literal-*")
		}
	}
	if err != nil {
		return nil, err
	}
	// CreateTemp makes it 0600; said again against a future change.
	f.Chmod(0o600)
	s := &spoolFile{b: b, f: f, name: f.Name(), w: bufio.NewWriterSize(f, spoolBufSize)}
	if os.Remove(s.name) == nil {
		s.name = ""
	}
	b.spoolFiles.Add(1)
	return s, nil
}

// Write writes to the file. It never fails, so that the literal is read
// to its end whatever happens: the first error is kept for finish.
func (s *spoolFile) Write(p []byte) (int, error) {
	if s.err == nil {
		s.nul = s.nul || bytes.IndexByte(p, 0) >= 0
		_, s.err = s.w.Write(p)
		s.n += int64(len(p))
		s.b.spoolBytes.Add(int64(len(p)))
	}
	return len(p), nil
}

// load reads the whole file back (after the literal has been read).
func (s *spoolFile) load() ([]byte, error) {
	if s.err == nil {
		s.err = s.w.Flush()
	}
	if s.err != nil {
		return nil, s.err
	}
	buf := make([]byte, s.n)
	if _, err := s.f.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && s.n == 0) {
		return nil, err
	}
	return buf, nil
}

// close closes and removes the file.
func (s *spoolFile) close() {
	if s.f == nil {
		return
	}
	s.f.Close()
	if s.name != "" {
		os.Remove(s.name)
	}
	s.b.spoolFiles.Add(-1)
	s.b.spoolBytes.Add(-s.n)
	s.f, s.w = nil, nil
}
