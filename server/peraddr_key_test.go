package server

import (
	"net"
	"testing"
	"time"
)

func TestClientAddrKey(t *testing.T) {
	for _, tc := range []struct {
		ip, key       string
		limitLoopback bool
		exempt        bool
	}{
		{"192.0.2.7", "192.0.2.7", false, false},
		{"::ffff:192.0.2.7", "192.0.2.7", false, false},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64", false, false},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64", false, false},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64", false, false},
		{"127.0.0.1", "127.0.0.1", false, true},
		{"127.0.0.1", "127.0.0.1", true, false},
		{"::1", "::/64", false, true},
	} {
		ca := newClientAddr(&net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 1234}, tc.limitLoopback)
		if ca.key != tc.key || ca.exempt != tc.exempt {
			t.Errorf("%s (limit loopback %v): key %q exempt %v, want %q %v", tc.ip, tc.limitLoopback, ca.key, ca.exempt, tc.key, tc.exempt)
		}
	}
}

func TestRateClock(t *testing.T) {
	r := rateClock{min: 1000, window: time.Second}
	r.begin()
	// 1,000 bytes/s for 10 s: the allowance stays full.
	for range 10 {
		r.account(1000, time.Second)
	}
	if r.allow != time.Second || r.exhausted() {
		t.Errorf("at the minimum rate: allowance %v", r.allow)
	}
	// A burst cannot buy more than the window.
	r.account(1<<20, 0)
	if r.allow != time.Second {
		t.Errorf("after a burst: allowance %v, want the window", r.allow)
	}
	// 100 bytes/s: 0.9 s lost per second.
	r.account(100, time.Second)
	if r.allow != 100*time.Millisecond || r.exhausted() {
		t.Errorf("after a slow second: allowance %v", r.allow)
	}
	r.account(10, 200*time.Millisecond)
	if !r.exhausted() {
		t.Errorf("allowance %v, want exhausted", r.allow)
	}
	r.stop()
	if r.exhausted() {
		t.Error("a stopped clock is exhausted")
	}
	// Off: begin does nothing.
	off := rateClock{window: time.Second}
	off.begin()
	if off.on {
		t.Error("a clock without a minimum started")
	}
}

func TestFloodLog(t *testing.T) {
	var f floodLog
	now := time.Unix(1000, 0)
	if ok, n := f.allow(now); !ok || n != 0 {
		t.Fatalf("first line: %v, %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := f.allow(now.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatalf("line %d within the second logged", i)
		}
	}
	if ok, n := f.allow(now.Add(time.Second)); !ok || n != 5 {
		t.Errorf("after a second: %v, %d left out; want true, 5", ok, n)
	}
}
