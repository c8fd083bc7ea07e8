package wire

// COMPRESS=DEFLATE (RFC 4978) moves raw DEFLATE streams (RFC 1951) both
// ways. This file has the two halves a connection needs, both built to
// hold no compressor or decompressor state while the connection idles.
//
// Inflater never blocks: the caller feeds it the bytes that arrived and
// asks for what they decode to. A peer may end a burst with any zlib
// flush (sync, partial or full): after a partial flush the last block's
// end is not byte-aligned, and a decompressor that reads from the socket
// would wait for bytes the peer will not send until it gets an answer.
// klauspost's decompressor with WithPartialBlock returns the data of each
// block as soon as the block ends, and calls back with a checkpoint (bit
// position and window) at every block end. When the input runs out inside
// a block, the decompressor is dropped, and a new one resumes from the
// last checkpoint once more input is there, skipping what was already
// returned. Socket timeouts and wake-ups therefore never reach it.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// ErrNeedInput is returned by Inflater.Read when the input fed so far
// decodes to nothing more.
var ErrNeedInput = errors.New("deflate: more input needed")

// errShort is what the Inflater's source returns at the end of the input
// fed; the decompressor that sees it is not used again.
var errShort = errors.New("deflate: end of input fed")

// DefaultMaxDeflateBlock bounds the compressed bytes an Inflater holds
// since the last block end. zlib ends a block every 16K symbols or so
// (and every stored block is under 64 KiB), so a real peer's blocks are
// far smaller.
const DefaultMaxDeflateBlock = 256 << 10

// Inflater decompresses a raw DEFLATE stream fed by the caller (Feed),
// returning (Read) whatever the bytes fed so far decode to. Its memory
// between reads is the last block end's window (up to 32 KiB) and the
// compressed bytes since it; Release drops the decompressor itself.
type Inflater struct {
	// MaxBlock bounds the compressed bytes held since the last block
	// end (default DefaultMaxDeflateBlock); beyond it Feed fails.
	MaxBlock int

	f    io.ReadCloser // the decompressor, nil when released
	dead bool          // f saw the end of the input: restart before reading
	src  inflateSource

	cp    flate.InflateCheckpoint // the last block end, Window in win
	hasCP bool
	win   []byte
	// parked is win compressed while released (see Release); win is
	// nil then.
	parked []byte

	next int64 // stream offset of f's next output byte
	out  int64 // stream bytes returned by Read
	// since counts the bytes fed since f died; a restart waits for it
	// to reach an eighth of the input held (see Deferred) unless forced.
	since int64
	force bool
	// Decoded counts every byte decompressed, including those decoded
	// again after a restart: the work done.
	Decoded int64
	skew    int64 // f's count of input bytes read minus the true one (see checkpoint)
	fed     bool  // input was fed since f died
	err     error // sticky: corrupt stream, or the peer's final block
}

// Feed appends compressed bytes that arrived.
func (z *Inflater) Feed(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := z.checkBlock(len(p)); err != nil {
		return err
	}
	z.src.buf = append(z.src.buf, p...)
	z.fed = true
	z.since += int64(len(p))
	return nil
}

// FeedBuffer returns a slice of at least n free bytes at the end of the
// input, for a read straight into it; Fed then takes what was read.
func (z *Inflater) FeedBuffer(n int) []byte {
	b := z.src.buf
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(2*len(b), len(b)+n))
		copy(nb, b)
		z.src.buf = nb
		b = nb
	}
	return b[len(b) : len(b)+n]
}

// Fed takes the n bytes read into the slice FeedBuffer returned.
func (z *Inflater) Fed(n int) error {
	if err := z.checkBlock(n); err != nil {
		return err
	}
	if n > 0 {
		z.src.buf = z.src.buf[:len(z.src.buf)+n]
		z.fed = true
		z.since += int64(n)
	}
	return nil
}

// checkBlock refuses n more bytes when the input held since the last
// block end would exceed MaxBlock.
func (z *Inflater) checkBlock(n int) error {
	max := z.MaxBlock
	if max <= 0 {
		max = DefaultMaxDeflateBlock
	}
	if len(z.src.buf)+n > max {
		return fmt.Errorf("deflate: a block of more than %d compressed bytes", max)
	}
	return nil
}

// Read returns decompressed bytes. With no more to return from the input
// fed, it returns 0, ErrNeedInput. io.EOF means the peer ended the
// stream (a final block); any other error is a corrupt stream. Errors
// other than ErrNeedInput are sticky.
func (z *Inflater) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if z.err != nil {
			return 0, z.err
		}
		if z.f == nil || z.dead {
			if z.dead && (!z.fed || z.Deferred() && !z.force) {
				return 0, ErrNeedInput
			}
			if !z.restart() {
				return 0, ErrNeedInput
			}
		}
		n, err := z.f.Read(p)
		z.Decoded += int64(n)
		start := z.next
		z.next += int64(n)
		if start < z.out { // returned before a restart
			d := int(min(z.out-start, int64(n)))
			copy(p, p[d:n])
			n -= d
		}
		z.out += int64(n)
		switch {
		case err == nil:
		case errors.Is(err, errShort):
			z.dead, z.fed = true, false
		case err == io.EOF:
			z.err = io.EOF
		default:
			z.err = fmt.Errorf("deflate: %w", err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Deferred reports whether input was fed that Read does not decode yet.
// Input that runs out inside a block is decoded again from the block's
// start once more comes: to keep that work within a few times the input
// when a large block arrives in pieces, a restart waits until the bytes
// fed since the last attempt are half of those held since the block
// began, unless they end with a sync or full flush's empty stored block
// (00 00 ff ff: the peer has sent all it means to for now). The caller
// forces it (Force) when the peer pauses, since after a partial flush
// nothing marks the end of a burst and the peer may be waiting for an
// answer.
func (z *Inflater) Deferred() bool {
	if !z.dead || !z.fed {
		return false
	}
	from := int64(0)
	if z.hasCP {
		from = z.cp.CompressedOffset
	}
	if b := z.src.buf; len(b) >= 4 && string(b[len(b)-4:]) == "\x00\x00\xff\xff" {
		return false
	}
	return z.since*2 < z.src.end()-from
}

// Force makes the next Read decode what was fed even if Deferred.
func (z *Inflater) Force() { z.force = true }

// restart makes a decompressor that goes on from the last block end; it
// reports false when there is no input past it.
func (z *Inflater) restart() bool {
	from := int64(0)
	if z.hasCP {
		from = z.cp.CompressedOffset
	}
	if z.src.end() <= from {
		return false
	}
	z.src.pos = from
	opts := []flate.ReaderOpt{flate.WithPartialBlock(), flate.WithEobCallback(z.checkpoint)}
	z.next = 0
	if z.hasCP {
		if z.parked != nil {
			win, err := io.ReadAll(flate.NewReader(bytes.NewReader(z.parked)))
			if err != nil { // cannot happen: we wrote it
				z.err = fmt.Errorf("deflate: unparking the window: %w", err)
				return false
			}
			z.win, z.parked = win, nil
			z.cp.Window = z.win
		}
		opts = append(opts, flate.WithResumeFrom(z.cp))
		z.next = z.cp.UncompressedOffset
	}
	z.f = flate.NewReaderOpts(&z.src, opts...)
	z.dead, z.fed, z.skew, z.since, z.force = false, false, 0, 0, false
	return true
}

// checkpoint keeps a block end to restart from, and drops the input
// before it.
func (z *Inflater) checkpoint(cp flate.InflateCheckpoint) {
	if cp.Final {
		return
	}
	// The decompressor counts its input offset one to four bytes too
	// far each time a stored block starts with input bytes it had
	// already taken into its bit buffer (klauspost/compress v1.20.4,
	// dataBlock adds them again). The source knows the true offset of the
	// bytes read; the bit buffer holds under 32 bits, and right after a
	// stored block it is empty, so the reported position is the true one
	// plus a skew that only a stored block's end can raise, in whole
	// bytes: x above the known skew is that new skew.
	bitPos := cp.CompressedOffset*8 + int64(cp.BitOffset)
	if x := bitPos - z.src.pos*8; x > z.skew*8 {
		z.skew = x / 8
	}
	bitPos -= z.skew * 8
	cp.CompressedOffset, cp.BitOffset = bitPos/8, uint8(bitPos%8)
	z.win = append(z.win[:0], cp.Window...)
	cp.Window = z.win
	z.parked = nil
	z.cp, z.hasCP = cp, true
	z.src.trim(cp.CompressedOffset)
}

// Idle reports whether the input fed so far has been decoded as far as
// it goes, so that Release loses nothing.
func (z *Inflater) Idle() bool { return z.f == nil || (z.dead && !z.fed) }

// Release drops the decompressor (about 45 KB) when Idle; the next Read
// makes a new one from the last block end. It also trims the input
// buffer to what is still needed, and keeps the window (the last 32 KiB
// the peer sent, which its next bytes may refer back to) compressed: an
// IMAP client's commands shrink several times, so an idle connection
// holds a few KiB instead of 32.
func (z *Inflater) Release() {
	if !z.Idle() {
		return
	}
	z.f = nil
	z.src.shrink()
	if z.hasCP && z.parked == nil && len(z.win) > 0 {
		var b bytes.Buffer
		if err := flate.StatelessDeflate(&b, z.win, true, nil); err == nil {
			z.parked = append([]byte(nil), b.Bytes()...)
			z.win, z.cp.Window = nil, nil
		}
	}
}

// inflateSource is the decompressor's input: the bytes fed, from stream
// offset base on. At their end it returns errShort.
type inflateSource struct {
	buf  []byte
	base int64 // stream offset of buf[0]
	pos  int64 // stream offset of the next byte to read
}

func (s *inflateSource) end() int64 { return s.base + int64(len(s.buf)) }

func (s *inflateSource) Read(p []byte) (int, error) {
	if s.pos >= s.end() {
		return 0, errShort
	}
	n := copy(p, s.buf[s.pos-s.base:])
	s.pos += int64(n)
	return n, nil
}

func (s *inflateSource) ReadByte() (byte, error) {
	if s.pos >= s.end() {
		return 0, errShort
	}
	c := s.buf[s.pos-s.base]
	s.pos++
	return c, nil
}

// trim drops the bytes before stream offset off.
func (s *inflateSource) trim(off int64) {
	if k := off - s.base; k > 0 {
		s.buf = s.buf[k:]
		s.base = off
	}
}

// shrink gives back the array when little of it is in use.
func (s *inflateSource) shrink() {
	switch {
	case len(s.buf) == 0:
		s.buf = nil
	case cap(s.buf) > 2*len(s.buf)+64:
		s.buf = append([]byte(nil), s.buf...)
	}
}

// DeflatePool lends compressors of one level to Deflaters. It is safe
// for concurrent use.
type DeflatePool struct {
	level int
	p     sync.Pool
}

// NewDeflatePool returns a pool of compressors at level (1 fastest to 9
// best, as zlib's; 0 or out of range: 5).
func NewDeflatePool(level int) *DeflatePool {
	if level < 1 || level > 9 {
		level = 5
	}
	return &DeflatePool{level: level}
}

// Level returns the pool's compression level.
func (p *DeflatePool) Level() int { return p.level }

// Deflater compresses to dst as a raw DEFLATE stream, with a compressor
// borrowed from a pool at the first write and given back by Release.
// Every Flush is a sync flush (an empty stored block): the peer can
// decode everything written so far, and the stream is byte-aligned with
// no final block, so the next compressor, which starts without a window,
// continues the same stream validly.
type Deflater struct {
	dst   io.Writer
	pool  *DeflatePool
	w     *flate.Writer
	dirty bool // written since the last Flush
	err   error
}

// NewDeflater returns a Deflater writing to dst.
func NewDeflater(dst io.Writer, pool *DeflatePool) *Deflater {
	return &Deflater{dst: dst, pool: pool}
}

func (d *Deflater) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if d.w == nil {
		if w, _ := d.pool.p.Get().(*flate.Writer); w != nil {
			w.Reset(d.dst)
			d.w = w
		} else if d.w, d.err = flate.NewWriter(d.dst, d.pool.level); d.err != nil {
			return 0, d.err
		}
	}
	d.dirty = true
	n, err := d.w.Write(p)
	if err != nil {
		d.err = err
	}
	return n, err
}

// Flush sends everything written so far (a sync flush), if anything.
func (d *Deflater) Flush() error {
	if d.err != nil || !d.dirty {
		return d.err
	}
	d.dirty = false
	d.err = d.w.Flush()
	return d.err
}

// Release flushes and gives the compressor back to the pool.
func (d *Deflater) Release() error {
	if err := d.Flush(); err != nil {
		return err
	}
	if d.w != nil {
		d.w.Reset(io.Discard) // keeps no reference to the connection
		d.pool.p.Put(d.w)
		d.w = nil
	}
	return nil
}

// Drop gives the compressor back without writing what it holds, for a
// connection that is ending.
func (d *Deflater) Drop() {
	if d.w != nil {
		d.w.Reset(io.Discard)
		d.pool.p.Put(d.w)
		d.w = nil
	}
	d.dirty = false
}

// Holding reports whether a compressor is borrowed.
func (d *Deflater) Holding() bool { return d.w != nil }
