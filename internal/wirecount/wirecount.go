// Package wirecount wraps a net.Conn to count the bytes a client sends
// and receives and the round trips it makes, for protocol cost
// measurements.
//
// A round trip is counted each time the client writes after it has read
// (or writes for the first time since Reset): a client that sends a batch
// of pipelined commands and then waits for their answers makes one round
// trip however many Write calls the batch takes.
package wirecount

import (
	"net"
	"sync"
)

// Counts are the totals since the last Reset.
type Counts struct {
	Sent       int64 // bytes client → server
	Received   int64 // bytes server → client
	RoundTrips int
}

// Total is the bytes in both directions.
func (c Counts) Total() int64 { return c.Sent + c.Received }

// Conn is a net.Conn that counts.
type Conn struct {
	net.Conn

	mu       sync.Mutex
	c        Counts
	readLast bool // the last operation was a read (or nothing yet)
}

// New wraps nc.
func New(nc net.Conn) *Conn { return &Conn{Conn: nc, readLast: true} }

func (w *Conn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.mu.Lock()
	w.c.Received += int64(n)
	if n > 0 {
		w.readLast = true
	}
	w.mu.Unlock()
	return n, err
}

func (w *Conn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	w.mu.Lock()
	w.c.Sent += int64(n)
	if n > 0 && w.readLast {
		w.c.RoundTrips++
		w.readLast = false
	}
	w.mu.Unlock()
	return n, err
}

// Counts returns the totals since the last Reset.
func (w *Conn) Counts() Counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c
}

// Reset zeroes the totals; the next write starts a round trip.
func (w *Conn) Reset() {
	w.mu.Lock()
	w.c = Counts{}
	w.readLast = true
	w.mu.Unlock()
}
