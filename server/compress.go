package server

// COMPRESS=DEFLATE (RFC 4978). After the tagged OK the connection's bytes
// go through zlayer both ways, under TLS when TLS is on (§3: compress,
// then encrypt). The inflater never reads the socket itself (see
// wire.Inflater): deadlineConn reads compressed bytes as it reads plain
// ones, with the same deadlines, wake-ups and hand-offs, and feeds them
// to it. While the connection waits, neither the compressor (returned to
// the server's pool at the hand-off and on entering IDLE) nor the
// decompressor (dropped once it has decoded all it was fed) is held:
// what stays is the client's last 32 KiB window and the few compressed
// bytes since the last block end.

import (
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/quickimap/quickimap/wire"
)

const (
	// zReadSize is how much compressed input one read asks for.
	zReadSize = 4096
	// zOutSize is the inflate buffer, borrowed while it holds bytes.
	zOutSize = 4096
	// zQuiet is how long a trickling block waits for more input before
	// what came is decoded anyway (wire.Inflater.Deferred): the client
	// may be waiting for an answer.
	zQuiet = 50 * time.Millisecond
)

// errInflateBudget ends a connection whose compressed input for one
// command inflates beyond the command size limit: a compression bomb.
var errInflateBudget = errors.New("compressed input inflates beyond the command size limit")

// zlayer is a connection's compression state.
type zlayer struct {
	in  wire.Inflater
	out *wire.Deflater
	// buf holds inflated bytes not yet read, in arr, borrowed from
	// outPool while it holds any.
	buf     []byte
	arr     *[]byte
	outPool *sync.Pool
	err     error // sticky: corrupt input, budget, the client's final block
	// budget is what the current command may still inflate to.
	budget int64
}

// take copies inflated bytes to p, within the command's budget.
func (z *zlayer) take(p []byte) int {
	if z.budget <= 0 {
		if len(z.buf) > 0 {
			z.err = errInflateBudget
		}
		return 0
	}
	n := copy(p[:min(int64(len(p)), z.budget)], z.buf)
	z.budget -= int64(n)
	z.buf = z.buf[n:]
	if len(z.buf) == 0 && z.arr != nil {
		z.outPool.Put(z.arr)
		z.arr, z.buf = nil, nil
	}
	return n
}

// inflate decodes what was fed into buf; false when that is nothing
// (more input needed).
func (z *zlayer) inflate() bool {
	if z.err != nil {
		return true
	}
	if z.arr == nil {
		z.arr, _ = z.outPool.Get().(*[]byte)
		if z.arr == nil {
			b := make([]byte, zOutSize)
			z.arr = &b
		}
	}
	n, err := z.in.Read(*z.arr)
	if n > 0 {
		z.buf = (*z.arr)[:n]
		return true
	}
	z.outPool.Put(z.arr)
	z.arr = nil
	switch {
	case errors.Is(err, wire.ErrNeedInput):
		return false
	case err == io.EOF:
		// The client ended its stream with a final block: nothing it
		// sends after can be read.
		z.err = io.EOF
	default:
		z.err = err
	}
	return true
}

// ready reports whether a read would return at once.
func (z *zlayer) ready() bool {
	return len(z.buf) > 0 || z.err != nil || z.inflate()
}

// release gives back the compressor and, when it has decoded all it was
// fed, the decompressor.
func (z *zlayer) release() error {
	z.in.Release()
	return z.out.Release()
}

// zread is deadlineConn.Read with compression on.
func (d *deadlineConn) zread(p []byte) (int, error) {
	z := d.z
	for {
		if n := z.take(p); n > 0 {
			return n, nil
		}
		if z.err != nil {
			return 0, z.err
		}
		if z.inflate() {
			continue
		}
		now := time.Now()
		deadline := d.readDeadline(now) // with the deadlines on total time
		short := z.in.Deferred()
		if short {
			d.Conn.SetReadDeadline(earliest(deadline, now.Add(zQuiet)))
		} else {
			d.Conn.SetReadDeadline(deadline)
		}
		if d.closing.Load() || d.halt.Load() {
			d.Conn.SetReadDeadline(time.Now())
		}
		n, err := d.Conn.Read(z.in.FeedBuffer(zReadSize))
		d.in.Add(int64(n))
		if d.rate.on {
			// The bytes on the wire count, as they take the time.
			d.rate.account(n, time.Since(now))
		}
		if ferr := z.in.Fed(n); ferr != nil {
			z.err = ferr
			return 0, ferr
		}
		if n > 0 {
			continue
		}
		if short && isTimeout(err) && !d.closing.Load() && !d.halt.Load() && time.Now().Before(deadline) {
			z.in.Force()
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		if isTimeout(err) && !d.closing.Load() && !d.halt.Load() {
			err = d.limitErr(err)
		}
		return 0, err
	}
}

// zawait is deadlineConn.await with compression on: it returns when the
// bytes the client sent decode to something.
func (d *deadlineConn) zawait(until time.Time, w *waker) error {
	z := d.z
	for {
		if z.ready() {
			return nil
		}
		rd := until
		short := z.in.Deferred()
		if short {
			rd = earliest(until, time.Now().Add(zQuiet))
		}
		if w == nil {
			d.Conn.SetReadDeadline(rd)
		} else if !w.arm(d.Conn, rd) {
			return errKicked
		}
		if d.closing.Load() {
			d.Conn.SetReadDeadline(time.Now())
		}
		// Into the small array first: a wait that ends with a few bytes
		// grows the input by those only.
		n, err := d.Conn.Read(d.pending[:])
		d.in.Add(int64(n))
		if n > 0 {
			if w != nil {
				w.disarm(false)
			}
			if ferr := z.in.Feed(d.pending[:n]); ferr != nil {
				z.err = ferr
				return nil // the read reports it
			}
			continue
		}
		if w != nil && w.disarm(true) && isTimeout(err) && !d.closing.Load() {
			return errKicked
		}
		if short && isTimeout(err) && !d.closing.Load() && time.Now().Before(until) {
			z.in.Force()
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		if isTimeout(err) && !d.closing.Load() {
			err = d.limitErr(err)
		}
		return err
	}
}

// zwriter writes compressed bytes to the connection, with the write
// deadline.
type zwriter struct{ d *deadlineConn }

func (w zwriter) Write(p []byte) (int, error) {
	w.d.Conn.SetWriteDeadline(time.Now().Add(w.d.writeTimeout))
	n, err := w.d.Conn.Write(p)
	w.d.out.Add(int64(n))
	return n, err
}

// Flush sends what the compressor holds (wire.Encoder.Flush calls it).
func (d *deadlineConn) Flush() error {
	if d.z == nil {
		return nil
	}
	return d.z.out.Flush()
}

// compressState is what a server shares among compressed connections.
type compressState struct {
	deflaters *wire.DeflatePool
	outBufs   sync.Pool // *[]byte of zOutSize
	slots     chan struct{}
}

func newCompressState(opts Options) *compressState {
	if opts.MaxCompressed < 0 {
		return nil
	}
	return &compressState{
		deflaters: wire.NewDeflatePool(opts.CompressLevel),
		slots:     make(chan struct{}, opts.MaxCompressed),
	}
}

func (c *conn) cmdCompress(tag string) (*status, error) {
	if err := c.dec.SP(); err != nil {
		return nil, err
	}
	mech, err := c.dec.Atom()
	if err != nil {
		return nil, err
	}
	if err := c.dec.CRLF(); err != nil {
		return nil, err
	}
	cs := c.s.compress
	switch {
	case cs == nil:
		return bad("COMPRESS is not offered here"), nil
	case !strings.EqualFold(mech, "DEFLATE"):
		return bad("Unknown compression mechanism " + printable(mech)), nil
	case c.nc.z != nil:
		// RFC 4978 §3 lists BAD for "COMPRESS already active"; NO
		// [COMPRESSIONACTIVE] says why, and is what Dovecot sends
		// (docs/compress.md).
		return no("COMPRESSIONACTIVE", "DEFLATE is already active"), nil
	}
	select {
	case cs.slots <- struct{}{}:
	default:
		return no("LIMIT", "Too many compressed connections; go on uncompressed"), nil
	}
	// §3: compression starts right after the CRLF of the tagged OK.
	c.noteLostSession()
	c.writeStatus(tag, ok("DEFLATE active"))
	if err := c.enc.Flush(); err != nil {
		<-cs.slots
		return nil, err
	}
	z := &zlayer{outPool: &cs.outBufs}
	z.out = wire.NewDeflater(zwriter{c.nc}, cs.deflaters)
	// The client must wait for the OK before it compresses (§3); bytes
	// it sent after it anyway are already compressed.
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		if err := z.in.Feed(b); err != nil {
			z.err = err
		}
		c.br.Discard(n)
	}
	if c.nc.npending > 0 {
		if err := z.in.Feed(c.nc.pending[c.nc.poff : c.nc.poff+c.nc.npending]); err != nil {
			z.err = err
		}
		c.nc.npending = 0
	}
	c.nc.z = z
	c.resetInflateBudget()
	c.log.Debug("compression on", "level", cs.deflaters.Level())
	return nil, nil
}

// compressEnd gives back the connection's compression slot.
func (c *conn) compressEnd() {
	if z := c.nc.z; z != nil {
		z.out.Drop()
		if z.arr != nil {
			z.outPool.Put(z.arr)
		}
		c.nc.z = nil
		<-c.s.compress.slots
	}
}

// compressRelease gives back what the compression of an idle connection
// holds.
func (c *conn) compressRelease() {
	if c.nc.z != nil {
		c.nc.z.release()
	}
}

// resetInflateBudget gives the next command its inflate budget: the most a
// command may be (wire.Limits.MaxCommand), with room for the line.
func (c *conn) resetInflateBudget() {
	if c.nc.z != nil {
		l := &c.s.opts.Limits // defaults applied by New
		c.nc.z.budget = l.MaxCommand + int64(l.MaxLine) + zOutSize
	}
}
