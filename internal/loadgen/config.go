// Package loadgen is an IMAP load generator that works against any IMAP
// server. A setup phase fills the INBOX of every test account with
// realistic messages; a run phase has concurrent clients log in and run a
// weighted mix of the commands a phone sends, checks every response, and
// measures the throughput and latency of each kind of command and, when
// given the server's process ids, the server's CPU time.
//
// Clients speak raw protocol lines in lock step (one command, then its
// responses up to the tagged one) over buffered connections, parsing only
// what they need, so that the generator's own CPU time stays small next
// to the server's and each command's latency is its round trip.
package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is a kind of command the generator sends and measures.
type Kind int

// The kinds of the mix, in the order of the reports.
const (
	KindSelect             Kind = iota // SELECT INBOX
	KindFetchFlags                     // FETCH (UID FLAGS) of the newest 200 messages
	KindFetchEnvelope                  // FETCH (UID ENVELOPE) of the newest 20
	KindFetchBodystructure             // FETCH (UID BODYSTRUCTURE) of one message
	KindFetchBody                      // FETCH (UID BODY.PEEK[]) of one message
	KindStore                          // STORE +FLAGS/-FLAGS (\Seen or \Flagged)
	KindAppend                         // APPEND of a new message
	KindSearch                         // UID SEARCH (UNSEEN, FLAGGED, FROM, SUBJECT)
	KindExpunge                        // UID EXPUNGE of the client's own appended messages
	KindIdle                           // IDLE for a moment, then DONE
	numMixKinds
)

// The kinds outside the mix.
const (
	KindConnect Kind = numMixKinds + iota // TCP connect and greeting (and TLS); not a command
	KindLogin                             // LOGIN or AUTHENTICATE PLAIN
	KindLogout                            // LOGOUT
	numKinds
)

var kindNames = [numKinds]string{
	KindSelect:             "select",
	KindFetchFlags:         "fetch_flags",
	KindFetchEnvelope:      "fetch_envelope",
	KindFetchBodystructure: "fetch_bodystructure",
	KindFetchBody:          "fetch_body",
	KindStore:              "store",
	KindAppend:             "append",
	KindSearch:             "search",
	KindExpunge:            "expunge",
	KindIdle:               "idle",
	KindConnect:            "connect",
	KindLogin:              "login",
	KindLogout:             "logout",
}

func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// isCommand reports whether a kind is an IMAP command (counted in the
// command totals); connect is not.
func (k Kind) isCommand() bool { return k != KindConnect }

// needsMessages reports whether a kind addresses existing messages.
func (k Kind) needsMessages() bool {
	switch k {
	case KindFetchFlags, KindFetchEnvelope, KindFetchBodystructure, KindFetchBody, KindStore:
		return true
	}
	return false
}

// Mix is how many commands of each kind a client sends per cycle; a
// client deals them in a shuffled order, so over a cycle the proportions
// are exact. The number of commands of a cycle is [Mix.Total].
type Mix [numMixKinds]int

// DefaultMix is a phone's: it opens the app, resyncs flags, lists the
// newest messages, opens a few, marks them, sends one, searches, cleans
// up and waits for news. 20 commands per cycle.
func DefaultMix() Mix {
	return Mix{
		KindSelect:             1,
		KindFetchFlags:         3,
		KindFetchEnvelope:      3,
		KindFetchBodystructure: 2,
		KindFetchBody:          3,
		KindStore:              3,
		KindAppend:             1,
		KindSearch:             2,
		KindExpunge:            1,
		KindIdle:               1,
	}
}

// Total is the number of commands of a cycle.
func (m Mix) Total() int {
	n := 0
	for _, w := range m {
		n += w
	}
	return n
}

// String formats m as ParseMix reads it, kinds of weight 0 left out.
func (m Mix) String() string {
	var parts []string
	for k, w := range m {
		if w > 0 {
			parts = append(parts, Kind(k).String()+"="+strconv.Itoa(w))
		}
	}
	return strings.Join(parts, ",")
}

// MixKindNames lists the kind names ParseMix accepts.
func MixKindNames() []string {
	names := make([]string, 0, numMixKinds+1)
	for k := range numMixKinds {
		names = append(names, Kind(k).String())
	}
	return append(names, "fetch")
}

// ParseMix reads "select=1,fetch=12,store=3,...": kinds not named have
// weight 0. "fetch=N" shares N among the four fetch kinds (flags first
// for the remainder).
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("%q: want KIND=WEIGHT", part)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > 1_000_000 {
			return m, fmt.Errorf("%q: the weight must be a whole number from 0 to 1000000", part)
		}
		if name == "fetch" {
			fetches := []Kind{KindFetchFlags, KindFetchEnvelope, KindFetchBodystructure, KindFetchBody}
			for i, k := range fetches {
				m[k] = w / 4
				if i < w%4 {
					m[k]++
				}
			}
			continue
		}
		if name == "logout" || name == "login" {
			return m, fmt.Errorf("%q: logins and LOGOUT are set by --logout-every and --no-logout, not by the mix", part)
		}
		i := slices.Index(kindNames[:numMixKinds], name)
		if i < 0 {
			return m, fmt.Errorf("unknown kind %q (kinds: %s)", name, strings.Join(MixKindNames(), ", "))
		}
		m[i] = w
	}
	if m.Total() == 0 {
		return m, errors.New("the mix has no command")
	}
	return m, nil
}

// AuthMethod is how clients log in.
type AuthMethod int

const (
	AuthLogin AuthMethod = iota // LOGIN
	AuthPlain                   // AUTHENTICATE PLAIN, with SASL-IR when offered
)

func (a AuthMethod) String() string {
	if a == AuthPlain {
		return "plain"
	}
	return "login"
}

// StartTLSMode says whether connections run STARTTLS.
type StartTLSMode int

const (
	StartTLSNever    StartTLSMode = iota
	StartTLSOptional              // when the server offers it
	StartTLSRequired              // fail when the server does not offer it
)

// Pick is how a client chooses the account of its next login.
type Pick int

const (
	PickRoundRobin Pick = iota // accounts in turn, shared by all clients
	PickRandom                 // uniformly at random
)

func (p Pick) String() string {
	if p == PickRandom {
		return "random"
	}
	return "roundrobin"
}

// Config describes a load. Zero durations take the defaults given.
type Config struct {
	// Addr is the server's host:port, or several separated by commas:
	// the nodes of one server sharing a store, as a load balancer
	// without stickiness would spread the clients over them. Client i
	// makes its first connection to the i-th address and each later one
	// to the next address in turn (setup spreads its accounts the same
	// way), so logins land on every node.
	Addr string
	// TLS connects with implicit TLS; StartTLS runs STARTTLS on a plain
	// connection. TLSConfig is used for either (default: verify the
	// certificate for Addr's host).
	TLS       bool
	StartTLS  StartTLSMode
	TLSConfig *tls.Config // without a ServerName: that of each address

	// UserTemplate makes the account names: fmt.Sprintf(UserTemplate, i)
	// for i from 1 to Users, e.g. "user%d". Every account has Password.
	UserTemplate string
	Users        int
	Password     string
	Auth         AuthMethod
	Pick         Pick

	// Clients is the number of concurrent connections; Duration the
	// length of the run phase.
	Clients  int
	Duration time.Duration
	// LogoutEvery: a client sends LOGOUT and logs in again (as the next
	// account) after this many commands of the mix; 0 means once per
	// cycle (Mix.Total() commands). NoLogout keeps every client logged
	// in for the whole run.
	LogoutEvery int
	NoLogout    bool
	// Mix weighs the kinds of command; the zero Mix means DefaultMix().
	Mix Mix

	// Fill is the number of messages setup puts into each INBOX that has
	// fewer. Force uses an INBOX holding messages the generator did not
	// append (it flips their flags).
	Fill  int
	Force bool

	// ServerPIDs are processes whose CPU time, with that of all their
	// descendants, is measured over the run phase. Linux only.
	ServerPIDs []int

	// IdleMin and IdleMax bound how long an IDLE lasts before DONE
	// (default 100 ms and 500 ms).
	IdleMin, IdleMax time.Duration
	// CommandTimeout bounds every connect and command (default 60 s).
	CommandTimeout time.Duration
	// Seed makes the messages and choices reproducible.
	Seed uint64
}

// withDefaults returns cfg with the defaults filled in.
func (cfg Config) withDefaults() Config {
	if cfg.Mix.Total() == 0 {
		cfg.Mix = DefaultMix()
	}
	if cfg.IdleMin == 0 && cfg.IdleMax == 0 {
		cfg.IdleMin, cfg.IdleMax = 100*time.Millisecond, 500*time.Millisecond
	}
	if cfg.IdleMax < cfg.IdleMin {
		cfg.IdleMax = cfg.IdleMin
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 60 * time.Second
	}
	if cfg.LogoutEvery == 0 {
		cfg.LogoutEvery = cfg.Mix.Total()
	}
	return cfg
}

// Check reports the first problem of the configuration.
func (cfg *Config) Check() error {
	if cfg.Addr == "" {
		return errors.New("no server address")
	}
	for _, a := range cfg.addrs() {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("address %q: %v", a, err)
		}
	}
	if cfg.TLS && cfg.StartTLS != StartTLSNever {
		return errors.New("implicit TLS and STARTTLS exclude each other")
	}
	if cfg.Users < 1 {
		return errors.New("at least one account is needed")
	}
	if err := checkTemplate(cfg.UserTemplate); err != nil {
		return err
	}
	for _, i := range []int{1, cfg.Users} {
		if u := cfg.userName(i - 1); !quotable(u) || u == "" {
			return fmt.Errorf("account name %q cannot be sent as a quoted string", u)
		}
	}
	if cfg.Password == "" || !quotable(cfg.Password) {
		return errors.New("the password must be non-empty, without CR, LF, NUL or 8-bit characters")
	}
	if cfg.Clients < 1 {
		return errors.New("at least one client is needed")
	}
	if cfg.Duration < 0 || cfg.LogoutEvery < 0 || cfg.Fill < 0 || cfg.IdleMin < 0 || cfg.CommandTimeout < 0 {
		return errors.New("negative duration or count")
	}
	if cfg.Fill > 1_000_000 {
		return errors.New("fill at most 1000000 messages")
	}
	for _, w := range cfg.Mix {
		if w < 0 {
			return errors.New("negative weight in the mix")
		}
	}
	for _, p := range cfg.ServerPIDs {
		if p <= 0 {
			return fmt.Errorf("bad process id %d", p)
		}
	}
	return nil
}

// checkTemplate wants exactly one %d and no other verb.
func checkTemplate(t string) error {
	verbs := 0
	for i := 0; i < len(t); i++ {
		if t[i] != '%' {
			continue
		}
		if i+1 < len(t) && t[i+1] == '%' {
			i++
			continue
		}
		if i+1 < len(t) && t[i+1] == 'd' {
			verbs++
			i++
			continue
		}
		return fmt.Errorf("user template %q: only %%d (and %%%%) may appear", t)
	}
	if verbs != 1 {
		return fmt.Errorf("user template %q needs exactly one %%d, for the account number", t)
	}
	return nil
}

// userName is the name of account i (from 0).
func (cfg *Config) userName(i int) string { return fmt.Sprintf(cfg.UserTemplate, i+1) }

// addrs returns the addresses of Addr.
func (cfg *Config) addrs() []string {
	var out []string
	for _, a := range strings.Split(cfg.Addr, ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// addr returns the address of connection k of client (or account) i.
func (cfg *Config) addr(i, k int) string {
	a := cfg.addrs()
	return a[(i+k)%len(a)]
}

// tlsConfig is TLSConfig (by default, one that verifies the
// certificate), with addr's host as the ServerName when it names none.
func (cfg *Config) tlsConfig(addr string) *tls.Config {
	if cfg.TLSConfig != nil && cfg.TLSConfig.ServerName != "" {
		return cfg.TLSConfig
	}
	c := &tls.Config{}
	if cfg.TLSConfig != nil {
		c = cfg.TLSConfig.Clone()
	}
	c.ServerName, _, _ = net.SplitHostPort(addr)
	return c
}

// ParsePIDs reads a comma-separated list of process ids.
func ParsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("%q is not a process id", f)
		}
		pids = append(pids, p)
	}
	if len(pids) == 0 {
		return nil, errors.New("no process id")
	}
	return pids, nil
}
