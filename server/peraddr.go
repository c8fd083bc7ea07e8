package server

import (
	"net"
	"net/netip"
)

// clientAddr identifies a connection's client for the per-address limits
// (MaxConnectionsPerIP, login throttling).
type clientAddr struct {
	// ip is the client's address as logged ("addr" attribute).
	ip string
	// key groups addresses for the limits: an IPv4 address, or the /64
	// of an IPv6 address (one host or home network gets a whole /64,
	// and an address of it is as free to choose as a port).
	key string
	// exempt: a loopback client and not Options.LimitLoopback. A local
	// proxy or webmail brings every user from the same address.
	exempt bool
}

func newClientAddr(a net.Addr, limitLoopback bool) clientAddr {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		// Not TCP (a pipe in tests): one key for all, never limited.
		return clientAddr{ip: a.String(), key: a.String(), exempt: true}
	}
	ip := ap.Addr().Unmap()
	ca := clientAddr{ip: ip.String(), key: ip.String()}
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		ca.key = p.String()
	}
	ca.exempt = ip.IsLoopback() && !limitLoopback
	return ca
}
