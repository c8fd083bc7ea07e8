package main

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/quickimap/quickimap/config"
)

// sockopts reads the keepalive settings of an accepted connection.
func sockopts(t *testing.T, c net.Conn) (on, idle, intvl, cnt int) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	rc.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := syscall.GetsockoptInt(int(fd), level, opt)
			if err != nil {
				errs = append(errs, err)
			}
			return v
		}
		on = get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return
}

func accepted(t *testing.T, keepalive time.Duration) net.Conn {
	t.Helper()
	l, err := listen(context.Background(), "127.0.0.1:0", keepalive)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tcp-keepalive reaches the accepted connections' sockets: the default
// (an hour, not Go's 15 s), another duration, and 0 for none.
func TestTCPKeepalive(t *testing.T) {
	def := config.Default().TCPKeepalive
	if def != time.Hour {
		t.Errorf("default tcp-keepalive %v", def)
	}
	for _, tc := range []struct {
		d                    time.Duration
		on, idle, intvl, cnt int
	}{
		{def, 1, 3600, 75, 9},
		{37 * time.Minute, 1, 37 * 60, 75, 9},
	} {
		on, idle, intvl, cnt := sockopts(t, accepted(t, tc.d))
		if on != tc.on || idle != tc.idle || intvl != tc.intvl || cnt != tc.cnt {
			t.Errorf("tcp-keepalive %v: SO_KEEPALIVE %d, idle %d s, interval %d s, count %d; want %d, %d, %d, %d",
				tc.d, on, idle, intvl, cnt, tc.on, tc.idle, tc.intvl, tc.cnt)
		}
	}
	if on, _, _, _ := sockopts(t, accepted(t, 0)); on != 0 {
		t.Errorf("tcp-keepalive 0: SO_KEEPALIVE %d", on)
	}

	// The key, from the file syntax.
	c := config.Default()
	if err := c.Set("tcp-keepalive", "0"); err != nil || c.TCPKeepalive != 0 || c.Validate() != nil {
		t.Errorf("tcp-keepalive = 0: %v, %v, %v", err, c.TCPKeepalive, c.Validate())
	}
	if err := c.Set("tcp-keepalive", "2h"); err != nil || c.TCPKeepalive != 2*time.Hour {
		t.Errorf("tcp-keepalive = 2h: %v, %v", err, c.TCPKeepalive)
	}
	c.TCPKeepalive = -time.Second
	if c.Validate() == nil {
		t.Error("negative tcp-keepalive accepted")
	}
}
