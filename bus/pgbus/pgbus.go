// Package pgbus is a bus.Bus on PostgreSQL's LISTEN/NOTIFY, for the
// nodes that share one PostgreSQL store.
//
// Each Bus has two connections of its own, outside any pool: a publisher
// and, while Run runs, a listener. The publisher is one goroutine that
// takes every hint queued since its last send, merged (bus.Queue: per
// mailbox only the highest MODSEQ), packs them into as few notifications
// as fit PostgreSQL's 8000-byte payload limit and sends them in one
// statement, one transaction. Every notifying transaction takes a
// database-wide lock at commit, so hints are sent in few, large batches:
// under load a batch holds what queued while the previous one was sent.
//
// The listener LISTENs on one channel. When its connection fails (the
// server restarted or failed over, the backend was terminated, the
// network cut) it reconnects with backoff and, once listening again,
// calls Handler.Resync: notifications sent while it was away are lost,
// and the receiver catches up from the store. It calls Resync after its
// first LISTEN too: what was published before it listened is unknown to
// it, and a node's sessions may have opened mailboxes before that. A
// connection that goes silent without failing is found by a ping every
// PingInterval.
//
// A command-line process that writes the store uses New, Publish and
// Close, and never Run: Close sends what is pending within CloseTimeout.
//
// LISTEN needs a session of its own on the server: PgBouncer in
// transaction pooling mode cannot carry it; point the bus at PostgreSQL
// or at a session-mode pool.
package pgbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/quickimap/quickimap/bus"
)

// DefaultChannel is the channel the nodes notify on by default. Nodes
// share hints only with nodes of the same channel and database.
const DefaultChannel = "quickimap"

// Options tune a Bus; the zero value gives the defaults.
type Options struct {
	// Channel is the LISTEN/NOTIFY channel. Default DefaultChannel.
	Channel string
	// Logger receives connection failures. Default slog.Default().
	Logger *slog.Logger
	// CloseTimeout bounds how long Close waits to send pending hints.
	// Default 2 seconds.
	CloseTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts to
	// reconnect: it starts at MinBackoff and doubles up to MaxBackoff.
	// Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how long the listener waits for a notification
	// before it checks that its connection is alive. Default 30 s.
	PingInterval time.Duration

	// hold, when not nil, keeps the publisher from taking the queue
	// until it is closed (tests of merging).
	hold chan struct{}
}

func (o Options) withDefaults() Options {
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CloseTimeout, 2*time.Second)
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
	def(&o.PingInterval, 30*time.Second)
	return o
}

// Bus is one node's end of the PostgreSQL hint channel. It implements
// bus.Bus.
type Bus struct {
	cfg      *pgx.ConnConfig // parsed once; copied per connection
	node     string
	instance string // random: tells this Bus's notifications from others'
	opts     Options
	log      *slog.Logger

	// ctx ends when Close gives up on pending hints, or after they
	// are sent; it stops the publisher and Run.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	queue   bus.Queue
	closing bool
	wake    chan struct{} // a token when hints were queued
	closed  chan struct{} // closed when Close begins

	pubDone   chan struct{} // closed when the publisher has ended
	closeOnce sync.Once
	runMu     sync.Mutex // held by Run
	sent      uint64     // notifications sent, for tests (mu)
}

var _ bus.Bus = (*Bus)(nil)

// New returns the Bus of node on the PostgreSQL database at dsn, with its
// publisher connected. ctx bounds the connection only.
func New(ctx context.Context, dsn, node string, opts Options) (*Bus, error) {
	opts = opts.withDefaults()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgbus: %w", err)
	}
	var id [8]byte
	rand.Read(id[:])
	b := &Bus{
		cfg:      cfg,
		node:     node,
		instance: hex.EncodeToString(id[:]),
		opts:     opts,
		log:      opts.Logger.With("bus", "postgres", "node", node),
		wake:     make(chan struct{}, 1),
		closed:   make(chan struct{}),
		pubDone:  make(chan struct{}),
	}
	conn, err := b.connect(ctx, "publish")
	if err != nil {
		return nil, err
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.publish(conn)
	return b, nil
}

// connect opens a connection of the bus, named in pg_stat_activity as
// "quickimap-bus <role> <node>" so that an operator can tell them apart.
func (b *Bus) connect(ctx context.Context, role string) (*pgx.Conn, error) {
	cfg := b.cfg.Copy()
	cfg.RuntimeParams["application_name"] = ApplicationName(role, b.node)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgbus: connecting the %s connection: %w", role, err)
	}
	return conn, nil
}

// ApplicationName is the application_name of a node's bus connection of
// role "publish" or "listen", as pg_stat_activity shows it.
func ApplicationName(role, node string) string {
	name := "quickimap-bus " + role + " " + node
	if len(name) > 63 { // NAMEDATALEN - 1
		name = name[:63]
	}
	return name
}

// Publish queues h for the other nodes, merged with what is pending, and
// returns at once. After Close it does nothing.
func (b *Bus) Publish(h bus.Hint) {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return
	}
	b.queue.Add(h)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// notifySQL sends each element of $2 as one notification on channel $1,
// in one statement and so in one transaction: one commit, one lock.
const notifySQL = `SELECT count(pg_notify($1, p)) FROM unnest($2::text[]) AS p`

// publish is the publisher goroutine: it sends what is queued, as soon as
// it is queued, until Close; then it sends what is left and ends.
func (b *Bus) publish(conn *pgx.Conn) {
	defer close(b.pubDone)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	backoff := time.Duration(0)
	retry := false // hints failed to go and were put back
	for {
		closing := false
		if retry {
			select {
			case <-b.closed:
				closing = true
			default:
			}
		} else {
			select {
			case <-b.wake:
			case <-b.closed:
				closing = true
			case <-b.ctx.Done():
				return
			}
		}
		retry = false
		if b.opts.hold != nil {
			select {
			case <-b.opts.hold:
			case <-b.ctx.Done():
				return
			}
		}
		b.mu.Lock()
		hints := b.queue.Take()
		b.mu.Unlock()
		if len(hints) > 0 {
			err := b.send(&conn, hints)
			if err != nil {
				if b.ctx.Err() != nil {
					return
				}
				b.requeue(hints)
				retry = true
				backoff = b.nextBackoff(backoff)
				b.log.Warn("sending change hints failed; retrying", "err", err, "hints", len(hints), "delay", backoff)
				select {
				case <-time.After(backoff):
				case <-b.ctx.Done():
					return
				}
				continue
			}
			backoff = 0
		}
		if closing {
			b.mu.Lock()
			empty := b.queue.Len() == 0
			b.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// send sends hints on *conn, connecting first if it is nil; on failure
// the connection is closed and *conn set to nil. A connection that has
// gone stale since its last use (the server restarted, the backend was
// terminated) is replaced at once, without backoff.
func (b *Bus) send(conn **pgx.Conn, hints []bus.Hint) error {
	payloads := encode(b.instance, b.node, hints)
	if len(payloads) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		fresh := *conn == nil
		if fresh {
			c, err := b.connect(b.ctx, "publish")
			if err != nil {
				return err
			}
			*conn = c
		}
		sctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		_, err := (*conn).Exec(sctx, notifySQL, b.opts.Channel, payloads)
		cancel()
		if err == nil {
			break
		}
		(*conn).Close(context.Background())
		*conn = nil
		if fresh || attempt > 0 || b.ctx.Err() != nil {
			return err
		}
	}
	b.mu.Lock()
	b.sent += uint64(len(payloads))
	b.mu.Unlock()
	return nil
}

// requeue puts back hints that could not be sent, before those queued
// since, so that merging keeps the later values.
func (b *Bus) requeue(hints []bus.Hint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	newer := b.queue.Take()
	for _, h := range hints {
		b.queue.Add(h)
	}
	for _, h := range newer {
		b.queue.Add(h)
	}
}

func (b *Bus) nextBackoff(d time.Duration) time.Duration {
	if d < b.opts.MinBackoff {
		return b.opts.MinBackoff
	}
	return min(2*d, b.opts.MaxBackoff)
}

// Run LISTENs and delivers the other nodes' hints to h until ctx ends or
// Close is called; it returns nil then. It calls h.Resync each time it
// has begun to LISTEN: first when it starts (hints published before are
// not delivered), then after each reconnection of a failed listening
// connection (hints sent meanwhile are lost). It returns an error only
// when called twice at once.
func (b *Bus) Run(ctx context.Context, h bus.Handler) error {
	if !b.runMu.TryLock() {
		return errors.New("pgbus: Run called twice")
	}
	defer b.runMu.Unlock()
	select {
	case <-b.closed:
		return nil
	default:
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-b.closed:
			stop()
		case <-ctx.Done():
		}
	}()
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		conn, err := b.listen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			backoff = b.nextBackoff(backoff)
			b.log.Warn("listening for change hints failed; retrying", "err", err, "delay", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		h.Resync()
		err = b.receive(ctx, conn, h)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			break
		}
		b.log.Warn("the connection listening for change hints was lost; reconnecting", "err", err)
	}
	return nil
}

// listen opens the listening connection and LISTENs.
func (b *Bus) listen(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := b.connect(cctx, "listen")
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{b.opts.Channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("pgbus: LISTEN: %w", err)
	}
	return conn, nil
}

// receive delivers notifications until the connection fails or ctx ends.
func (b *Bus) receive(ctx context.Context, conn *pgx.Conn, h bus.Handler) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, b.opts.PingInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return err
			}
			// Silence: check that the server is still there.
			pctx, cancel := context.WithTimeout(ctx, b.opts.PingInterval)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		instance, hints, ok := decode(n.Payload)
		if !ok {
			b.log.Debug("skipped a notification of another format", "payload_bytes", len(n.Payload))
			continue
		}
		if instance == b.instance {
			continue
		}
		for _, x := range hints {
			h.Hint(x)
		}
	}
}

// Close stops the bus: it sends the hints still pending, waiting at most
// CloseTimeout, closes its connections and makes Run return.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		close(b.closed)
		t := time.NewTimer(b.opts.CloseTimeout)
		defer t.Stop()
		select {
		case <-b.pubDone:
		case <-t.C:
			b.mu.Lock()
			lost := b.queue.Len()
			b.mu.Unlock()
			b.log.Warn("closing the bus before its pending change hints could be sent", "hints", lost)
		}
		b.cancel()
		<-b.pubDone
	})
	return nil
}
