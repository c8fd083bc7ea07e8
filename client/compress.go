package client

import (
	"bufio"
	"context"
	"errors"
	"io"

	"github.com/klauspost/compress/flate"

	"github.com/quickimap/quickimap/wire"
)

// capCompress is the COMPRESS=DEFLATE capability (RFC 4978).
const capCompress = "COMPRESS=DEFLATE"

// compressLevel is the DEFLATE level of what the client sends: commands
// are short and repetitive, and APPEND literals are the only bulk.
const compressLevel = 6

// compressed reads the answer to the COMPRESS command tag and, on OK,
// compresses the connection both ways from the next byte on (RFC 4978
// §3). A NO or BAD leaves it uncompressed.
func (c *Client) compressed(ctx context.Context, tag string) error {
	r, err := c.wait(ctx, tag)
	if err != nil {
		return err
	}
	if r.name != "OK" {
		c.opts.Logger.Info("COMPRESS refused; going on uncompressed", "answer", r.name, "text", r.text)
		return nil
	}
	cn := c.cn
	w, err := flate.NewWriter(cn.nc, compressLevel)
	if err != nil {
		return err
	}
	cn.zw = w
	cn.bw = bufio.NewWriterSize(w, 16<<10)
	// Whatever is buffered after the OK is compressed already.
	cn.br = bufio.NewReaderSize(&inflateReader{src: cn.br}, 32<<10)
	cn.r = newReader(cn.br, c.opts.Limits)
	cn.compressed = true
	return nil
}

// inflateReader inflates what src delivers. wire.Inflater, not a
// decompressor reading src: a read deadline that expires (IDLE's refresh,
// a cancelled context) must leave the stream readable, and a server may
// end a burst with a partial flush, whose data Go's own inflater holds
// back.
type inflateReader struct {
	src io.Reader
	z   wire.Inflater
}

func (r *inflateReader) Read(p []byte) (int, error) {
	for {
		// The client has no one to wait for: decode whatever came.
		r.z.Force()
		n, err := r.z.Read(p)
		if n > 0 || err != nil && !errors.Is(err, wire.ErrNeedInput) {
			return n, err
		}
		k, err := r.src.Read(r.z.FeedBuffer(16 << 10))
		if ferr := r.z.Fed(k); ferr != nil {
			return 0, ferr
		}
		if k == 0 && err != nil {
			return 0, err
		}
	}
}
