package server

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// spareFD is a file descriptor held in reserve for when the process runs
// out of them. Accept then fails (EMFILE) while the client waits in the
// listen queue for a greeting that never comes, and would go on failing
// for every waiting client: closing the spare makes room to accept one,
// tell it BYE and close it, and the spare is opened again.
type spareFD struct {
	mu     sync.Mutex
	f      *os.File
	closed bool // the server is shutting down: no more spare
}

// reserve opens the spare if it is not open.
func (s *spareFD) reserve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil && !s.closed {
		s.f, _ = os.Open(os.DevNull)
	}
}

func (s *spareFD) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// outOfFDs reports whether err is an accept that failed for want of file
// descriptors (the process's limit or the system's).
func outOfFDs(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// shed accepts one waiting client of l with the spare descriptor's room,
// sends it bye (unless the listener is TLS: nothing is said before the
// handshake) and closes it. It returns false when there was no spare or
// no client could be accepted.
func (s *spareFD) shed(l net.Listener, bye string) bool {
	s.mu.Lock()
	f := s.f
	s.f = nil
	s.mu.Unlock()
	if f == nil {
		return false
	}
	f.Close()
	defer s.reserve()
	nc, err := l.Accept()
	if err != nil {
		return false
	}
	if bye != "" {
		// A fresh socket's send buffer is empty: this does not block.
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write([]byte(bye))
	}
	nc.Close()
	return true
}

// floodLog keeps a log line that a flood of connections would repeat (one
// per refused connection) to one per second, with the count of those it
// left out, so that the flood does not fill the disk through the log.
type floodLog struct {
	mu      sync.Mutex
	next    time.Time
	skipped int
}

// allow reports whether the line may be logged at now, and how many were
// left out since the last one.
func (f *floodLog) allow(now time.Time) (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Before(f.next) {
		f.skipped++
		return false, 0
	}
	n := f.skipped
	f.next, f.skipped = now.Add(time.Second), 0
	return true, n
}
