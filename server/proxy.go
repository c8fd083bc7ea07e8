package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pires/go-proxyproto"
)

// The PROXY protocol (HAProxy's, versions 1 and 2) lets a TCP load
// balancer in front of several quickimap nodes pass on each client's
// address, which the per-address limits, the login throttle, resumable
// sessions' address caps and the logs all need: without it every client
// would be the balancer. A connection from an address in
// Options.ProxyProtocolFrom must begin with a header; one from anywhere
// else is taken as it comes, so that a client cannot claim another's
// address.

// proxyHeaderTimeout bounds the wait for the header of a proxied
// connection (a balancer sends it at once).
const proxyHeaderTimeout = 5 * time.Second

// maxProxyV2 bounds the addresses and TLVs of a version 2 header (the
// format allows 65,535 bytes; HAProxy sends a few dozen).
const maxProxyV2 = 4096

// maxProxyV1 is version 1's longest header, CRLF included (its spec, §2.1).
const maxProxyV1 = 107

var errProxyHeader = errors.New("bad PROXY protocol header")

// proxiedConn is a connection whose client address came in a PROXY
// header.
type proxiedConn struct {
	net.Conn
	remote net.Addr
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// fromProxy reports whether the peer of nc is a trusted proxy.
func (s *Server) fromProxy(nc net.Conn) bool {
	if len(s.opts.ProxyProtocolFrom) == 0 {
		return false
	}
	tcp, ok := nc.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := tcp.AddrPort().Addr().Unmap()
	for _, p := range s.opts.ProxyProtocolFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// readProxyHeader reads the PROXY header that starts nc, and not a byte
// more, and returns nc with the client's address as its RemoteAddr. A
// LOCAL header (a balancer's health check) or one without addresses
// leaves the proxy's own.
func readProxyHeader(nc net.Conn, timeout time.Duration) (net.Conn, error) {
	if err := nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	hdr, err := readProxyBytes(nc)
	if err != nil {
		return nil, err
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(hdr), len(hdr)+16))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errProxyHeader, err)
	}
	if h.Command.IsLocal() || h.SourceAddr == nil {
		return nc, nil
	}
	if _, ok := h.SourceAddr.(*net.TCPAddr); !ok {
		return nc, nil
	}
	return &proxiedConn{Conn: nc, remote: h.SourceAddr}, nil
}

// readProxyBytes reads exactly one header: version 2's by its length
// field, version 1's up to its CRLF, a byte at a time (the rest of the
// stream is the client's and must stay in the socket).
func readProxyBytes(r io.Reader) ([]byte, error) {
	buf := make([]byte, 16, 64)
	if _, err := io.ReadFull(r, buf[:5]); err != nil {
		return nil, err
	}
	switch {
	case bytes.Equal(buf[:5], proxyproto.SIGV1):
		buf = buf[:5]
		var b [1]byte
		for len(buf) < maxProxyV1 {
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, err
			}
			buf = append(buf, b[0])
			if b[0] == '\n' {
				return buf, nil
			}
		}
		return nil, fmt.Errorf("%w: version 1 header longer than %d bytes", errProxyHeader, maxProxyV1)
	case bytes.Equal(buf[:5], proxyproto.SIGV2[:5]):
		if _, err := io.ReadFull(r, buf[5:16]); err != nil {
			return nil, err
		}
		if !bytes.Equal(buf[:12], proxyproto.SIGV2) {
			return nil, fmt.Errorf("%w: bad version 2 signature", errProxyHeader)
		}
		n := int(binary.BigEndian.Uint16(buf[14:16]))
		if n > maxProxyV2 {
			return nil, fmt.Errorf("%w: version 2 header of %d bytes", errProxyHeader, n)
		}
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[16:]); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return nil, fmt.Errorf("%w: the connection does not start with one", errProxyHeader)
}
