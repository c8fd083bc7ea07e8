package server

import (
	"container/list"
	"sync"
	"time"
)

// loginThrottle slows down password guessing from one client address
// (clientAddr.key): once an address has failed Failures logins, each of
// its further attempts is answered only after a delay that doubles with
// every failure, from Delay up to MaxDelay, and its attempts are spaced
// by that delay even when they come on parallel connections (each one
// waits for the one before it). Other addresses are not slowed. An
// address's count is forgotten after Window without a failure; a
// successful login does not reset it, or an attacker with one account of
// its own could reset its count at will.
//
// The table is bounded: past maxAddrs addresses, the one whose last
// failure is oldest is forgotten.
type loginThrottle struct {
	failures        int
	window          time.Duration
	delay, maxDelay time.Duration
	maxAddrs        int
	mu              sync.Mutex
	byKey           map[string]*list.Element // of *throttled
	lru             list.List                // least recently failed first
}

// throttled is one address's record.
type throttled struct {
	key      string
	failures int
	last     time.Time // last failure
	next     time.Time // when the last attempt admitted is answered
}

func newLoginThrottle(o Options) *loginThrottle {
	return &loginThrottle{
		failures: o.LoginThrottleFailures,
		window:   o.LoginThrottleWindow,
		delay:    o.LoginThrottleDelay,
		maxDelay: o.LoginThrottleMaxDelay,
		maxAddrs: o.loginThrottleMaxAddrs,
		byKey:    make(map[string]*list.Element),
	}
}

// entry returns key's live record, nil when none (forgetting an expired
// one). Called with mu held.
func (t *loginThrottle) entry(key string, now time.Time) *throttled {
	el, ok := t.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*throttled)
	if now.Sub(e.last) > t.window && !now.Before(e.next) {
		t.lru.Remove(el)
		delete(t.byKey, key)
		return nil
	}
	return e
}

// admit returns how long an attempt from key that begins at now must
// wait before it is checked (0: not throttled), and the failures the
// address has to its name. An attempt that could not be answered by
// (its connection's time to log in) is refused (ok false) and reserves
// nothing: otherwise attempts that are cut off before their turn, in any
// number, would push the address's next turn ever further away, locking
// out everyone behind that address for as long as an attacker likes.
func (t *loginThrottle) admit(key string, now, by time.Time) (wait time.Duration, failures int, ok bool) {
	if t == nil {
		return 0, 0, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key, now)
	if e == nil || e.failures < t.failures {
		return 0, 0, true
	}
	d := t.delay << min(e.failures-t.failures, 30)
	if d > t.maxDelay || d <= 0 {
		d = t.maxDelay
	}
	start := now
	if e.next.After(start) {
		start = e.next
	}
	if start.Add(d).After(by) {
		return start.Add(d).Sub(now), e.failures, false
	}
	e.next = start.Add(d)
	return e.next.Sub(now), e.failures, true
}

// fail records a failed login from key at now.
func (t *loginThrottle) fail(key string, now time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key, now)
	if e == nil {
		if t.lru.Len() >= t.maxAddrs {
			old := t.lru.Front()
			t.lru.Remove(old)
			delete(t.byKey, old.Value.(*throttled).key)
		}
		e = &throttled{key: key}
		t.byKey[key] = t.lru.PushBack(e)
	} else {
		t.lru.MoveToBack(t.byKey[key])
	}
	e.failures++
	e.last = now
}

// size returns the number of addresses remembered.
func (t *loginThrottle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
