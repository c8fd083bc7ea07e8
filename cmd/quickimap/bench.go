package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/term"

	"github.com/quickimap/quickimap/client"
	"github.com/quickimap/quickimap/internal/loadgen"
)

const benchUsage = `Usage:
  quickimap bench reconnect --addr HOST:PORT --user NAME [flags]

Measures what a client that lost its connection pays to get back in sync
with one mailbox, for each strategy the server supports: sid (the quick
reconnect draft; only when the server advertises X-DRAFT-W07-RECONNECT or RECONNECT),
qresync, condstore and full. It works against any IMAP server.

For each strategy the test mailbox is created afresh with --messages
messages plus --holes more that are then expunged, so that the UIDs have
gaps. A fresh client synchronizes it, drops the connection without LOGOUT,
a second connection makes the --changes, and the client reconnects with
that strategy and synchronizes again. The table gives the bytes each way,
the round trips, the time measured, the time modelled on a mobile link,
(round trips + TLS round trips + 1 for the TCP connect and greeting) x rtt
+ bytes x 8 / bandwidth, and its ratio to the best. The round trips are
those of the IMAP commands from the greeting on, the same over TLS; what
TLS adds to opening the connection (the handshake, and STARTTLS) is shown
apart as "+ N TLS". Bytes are counted below TLS, its overhead included. A strategy the client had to fall
back from is reported as such. Then the client's UIDs and flags are
compared with the server's (UID FETCH 1:* (FLAGS), \Recent ignored):
"ok" or "MISMATCH". Exit status 1 on any mismatch or error.

The test mailbox is deleted and recreated. INBOX is always refused, and so
is an existing mailbox holding messages the bench did not append, unless
--force is given.

The password is the first line of --password-file, else the environment
variable QUICKIMAP_PASSWORD, else it is prompted for on a terminal or read
as one line from standard input.

Flags:
  --addr HOST:PORT         server address (required)
  --user NAME              account name (required)
  --password-file FILE     file whose first line is the password
  --tls                    implicit TLS (port 993 style)
  --starttls               plain connection upgraded with STARTTLS
  --ca-file FILE           PEM certificates to trust (such as the server's
                           self-signed one) instead of the system's
  --insecure-skip-verify   do not verify the server's certificate
  --mailbox NAME           test mailbox (default quickimap-bench)
  --force                  use the mailbox even if the bench did not fill it
  --messages N             messages in the mailbox (default 464)
  --holes N                messages expunged before the first sync, scattered
                           (default 85 per 464 messages, as in the draft's example)
  --changes LIST           changes made while the client is away
                           (default flags=5,expunges=5,new=0)
  --rtt DURATION           round-trip time of the modelled link (default 300ms)
  --bandwidth RATE         bandwidth of the modelled link: 1Mbit, 512kbit,
                           10Mbit/s, 2MB/s (default 1Mbit)
  --strategies LIST        strategies to measure (default sid,qresync,condstore,full)
  --seed N                 seed of the random holes and changes (default 1)
  --compress               also measure each strategy with COMPRESS=DEFLATE
                           (RFC 4978; rows named STRATEGY+compress), which costs
                           one more round trip after login
  --json                   print the results as JSON
  --verbose                log the measured client's protocol to standard error
`

type benchStrategy struct {
	name string
	s    client.Strategy
}

// benchStrategies are the strategy names of --strategies, best first.
var benchStrategies = []benchStrategy{
	{"sid", client.StrategySID},
	{"qresync", client.StrategyQRESYNC},
	{"condstore", client.StrategyCONDSTORE},
	{"full", client.StrategyFull},
}

// benchMarker is the header every message the bench appends carries, so
// that it recognises its own mailbox.
const benchMarker = "X-Quickimap-Bench"

// serverFlags are the connection flags of bench and sync.
type serverFlags struct {
	addr, user, passwordFile string
	tls, starttls, insecure  bool
	// caFile holds the certificates to trust, rootCAs them once
	// loaded (by check); nil: the system's.
	caFile  string
	rootCAs *x509.CertPool
	// sessions lets a reconnection resume the TLS session of an
	// earlier connection, as a phone's TLS stack does (made by check).
	sessions tls.ClientSessionCache
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.addr, "addr", "", "server `HOST:PORT`")
	fs.StringVar(&s.user, "user", "", "account `NAME`")
	fs.StringVar(&s.passwordFile, "password-file", "", "`FILE` whose first line is the password")
	fs.BoolVar(&s.tls, "tls", false, "implicit TLS")
	fs.BoolVar(&s.starttls, "starttls", false, "upgrade a plain connection with STARTTLS")
	fs.StringVar(&s.caFile, "ca-file", "", "PEM `FILE` of the certificates to trust")
	fs.BoolVar(&s.insecure, "insecure-skip-verify", false, "do not verify the server's certificate")
}

func (s *serverFlags) check() error {
	if s.addr == "" {
		return errors.New("--addr is required")
	}
	if _, _, err := net.SplitHostPort(s.addr); err != nil {
		return fmt.Errorf("--addr %q: %v", s.addr, err)
	}
	if s.user == "" {
		return errors.New("--user is required")
	}
	if s.tls && s.starttls {
		return errors.New("--tls and --starttls exclude each other")
	}
	s.sessions = tls.NewLRUClientSessionCache(16)
	if s.caFile != "" {
		if !s.tls && !s.starttls {
			return errors.New("--ca-file needs --tls or --starttls")
		}
		pool, err := loadCAFile(s.caFile)
		if err != nil {
			return err
		}
		s.rootCAs = pool
	}
	return nil
}

// loadCAFile reads the PEM certificates of path into a pool, such as the
// server's own self-signed certificate.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

func (s *serverFlags) tlsConfig() *tls.Config {
	if !s.tls && !s.starttls {
		return nil
	}
	host, _, _ := net.SplitHostPort(s.addr)
	return &tls.Config{ServerName: host, InsecureSkipVerify: s.insecure, RootCAs: s.rootCAs, ClientSessionCache: s.sessions}
}

// password returns the login password: the first line of the password
// file, else $QUICKIMAP_PASSWORD, else a prompt on a terminal or one line
// of stdin.
func (s *serverFlags) password(stdin io.Reader, stderr io.Writer) (string, error) {
	if s.passwordFile != "" {
		b, err := os.ReadFile(s.passwordFile)
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return "", fmt.Errorf("%s: empty password", s.passwordFile)
		}
		return line, nil
	}
	if pw := os.Getenv("QUICKIMAP_PASSWORD"); pw != "" {
		return pw, nil
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Password for %s at %s: ", s.user, s.addr)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		return string(pw), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password (give --password-file, set QUICKIMAP_PASSWORD or type it on standard input)")
	}
	return line, nil
}

// dialHelper opens an imapclient connection and logs in.
func (s *serverFlags) dialHelper(pw string) (*imapclient.Client, error) {
	opts := &imapclient.Options{TLSConfig: s.tlsConfig()}
	var c *imapclient.Client
	var err error
	switch {
	case s.tls:
		c, err = imapclient.DialTLS(s.addr, opts)
	case s.starttls:
		c, err = imapclient.DialStartTLS(s.addr, opts)
	default:
		c, err = imapclient.DialInsecure(s.addr, opts)
	}
	if err != nil {
		return nil, err
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Login(s.user, pw).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}

// clientOptions are the reconnect client's options for these flags.
func (s *serverFlags) clientOptions(pw string) client.Options {
	return client.Options{Addr: s.addr, TLSConfig: s.tlsConfig(), StartTLS: s.starttls, Username: s.user, Password: pw}
}

// changeSpec is what the second connection changes while the client is
// away.
type changeSpec struct {
	Flags    int `json:"flags"`
	Expunges int `json:"expunges"`
	New      int `json:"new"`
}

func parseChanges(s string) (changeSpec, error) {
	var c changeSpec
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return c, fmt.Errorf("%q: want KEY=N", part)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("%q: not a count", part)
		}
		if seen[k] {
			return c, fmt.Errorf("%q given twice", k)
		}
		seen[k] = true
		switch k {
		case "flags":
			c.Flags = n
		case "expunges":
			c.Expunges = n
		case "new":
			c.New = n
		default:
			return c, fmt.Errorf("unknown change %q (flags, expunges, new)", k)
		}
	}
	return c, nil
}

// parseBandwidth parses a rate into bits per second: a number and a unit,
// bits ("bit", "b", "bps") or bytes ("B"), with an optional decimal (k,
// M, G) or binary (Ki, Mi, Gi) prefix and an optional "/s": 1Mbit,
// 512kbit, 10Mbit/s, 2MB/s, 64KiB/s.
func parseBandwidth(s string) (float64, error) {
	orig := s
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, "/s")
	if strings.HasSuffix(s, "ps") { // bps, kbps, Mbps
		s = strings.TrimSuffix(s, "ps")
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("bad bandwidth %q: want a positive number and a unit, like 1Mbit or 2MB/s", orig)
	}
	var perUnit float64
	switch {
	case strings.HasSuffix(unit, "bit"):
		perUnit, unit = 1, strings.TrimSuffix(unit, "bit")
	case strings.HasSuffix(unit, "byte"):
		perUnit, unit = 8, strings.TrimSuffix(unit, "byte")
	case strings.HasSuffix(unit, "b"):
		perUnit, unit = 1, strings.TrimSuffix(unit, "b")
	case strings.HasSuffix(unit, "B"):
		perUnit, unit = 8, strings.TrimSuffix(unit, "B")
	default:
		return 0, fmt.Errorf("bad bandwidth %q: no unit (bit or B)", orig)
	}
	prefixes := map[string]float64{
		"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "m": 1e6, "G": 1e9, "g": 1e9,
		"Ki": 1 << 10, "ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
	}
	p, ok := prefixes[unit]
	if !ok {
		return 0, fmt.Errorf("bad bandwidth %q: unknown prefix %q", orig, unit)
	}
	return v * p * perUnit, nil
}

// formatBandwidth is the inverse of parseBandwidth for the report.
func formatBandwidth(bps float64) string {
	switch {
	case bps >= 1e9:
		return strconv.FormatFloat(bps/1e9, 'f', -1, 64) + " Gbit/s"
	case bps >= 1e6:
		return strconv.FormatFloat(bps/1e6, 'f', -1, 64) + " Mbit/s"
	case bps >= 1e3:
		return strconv.FormatFloat(bps/1e3, 'f', -1, 64) + " kbit/s"
	}
	return strconv.FormatFloat(bps, 'f', -1, 64) + " bit/s"
}

// benchConfig is a parsed bench reconnect command line.
type benchConfig struct {
	server     serverFlags
	password   string
	mailbox    string
	force      bool
	messages   int
	holes      int
	changes    changeSpec
	rtt        time.Duration
	bandwidth  float64 // bits per second
	strategies []string
	seed       uint64
	verbose    bool
	compress   bool
}

// benchReport is the output of bench reconnect (also its JSON form).
type benchReport struct {
	Server       string        `json:"server"`
	Mailbox      string        `json:"mailbox"`
	Messages     int           `json:"messages"`
	Holes        int           `json:"holes"`
	Changes      changeSpec    `json:"changes"`
	RTTMs        float64       `json:"rtt_ms"`
	Bandwidth    float64       `json:"bandwidth_bits_per_second"`
	Capabilities []string      `json:"capabilities"`
	Results      []benchResult `json:"results"`
}

// benchResult is one strategy's row.
type benchResult struct {
	// Strategy is the strategy asked for (sid, qresync, condstore,
	// full); Used is the one that completed the reconnection, after the
	// Fallbacks that failed.
	Strategy   string   `json:"strategy"`
	Used       string   `json:"used,omitempty"`
	Fallbacks  []string `json:"fallbacks,omitempty"`
	BytesIn    int64    `json:"bytes_server_to_client"`
	BytesOut   int64    `json:"bytes_client_to_server"`
	RoundTrips int      `json:"round_trips"`
	// TLSRoundTrips are those TLS added to opening the connection
	// (client.SyncResult.TLSRoundTrips), not in RoundTrips.
	TLSRoundTrips int     `json:"tls_round_trips"`
	MeasuredMs    float64 `json:"measured_ms"`
	ModelledMs    float64 `json:"modelled_ms"`
	Ratio         float64 `json:"ratio_vs_best"`
	// Check is "ok", "MISMATCH", "error" or "unsupported"; Detail says
	// why when it is not ok.
	Check  string `json:"check"`
	Detail string `json:"detail,omitempty"`
}

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "quickimap bench: missing subcommand\n\n%s\n%s", benchUsage, benchLoadUsage)
		return exitUsage
	}
	switch args[0] {
	case "reconnect":
	case "load":
		return runBenchLoad(ctx, args[1:], stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		io.WriteString(stdout, benchUsage+"\n"+benchLoadUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "quickimap bench: unknown subcommand %q (reconnect or load)\n\n%s", args[0], benchUsage)
		return exitUsage
	}
	fs := newFlagSet("bench reconnect", stderr)
	var cfg benchConfig
	cfg.server.register(fs)
	fs.StringVar(&cfg.mailbox, "mailbox", "quickimap-bench", "test mailbox")
	fs.BoolVar(&cfg.force, "force", false, "use the mailbox even if the bench did not fill it")
	fs.IntVar(&cfg.messages, "messages", 464, "messages")
	holes := fs.Int("holes", -1, "holes")
	changes := fs.String("changes", "flags=5,expunges=5,new=0", "changes")
	fs.DurationVar(&cfg.rtt, "rtt", 300*time.Millisecond, "round-trip time")
	bandwidth := fs.String("bandwidth", "1Mbit", "bandwidth")
	strategies := fs.String("strategies", "sid,qresync,condstore,full", "strategies")
	fs.Uint64Var(&cfg.seed, "seed", 1, "random seed")
	asJSON := fs.Bool("json", false, "JSON output")
	fs.BoolVar(&cfg.verbose, "verbose", false, "log the protocol")
	fs.BoolVar(&cfg.compress, "compress", false, "also measure each strategy with COMPRESS=DEFLATE")
	usage := func(w io.Writer) { fmt.Fprint(w, benchUsage) }
	pos, err := parseFlags(fs, args[1:], usage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "quickimap bench reconnect: "+format+"\n", a...)
		return exitUsage
	}
	if len(pos) > 0 {
		return bad("unexpected argument %q", pos[0])
	}
	if err := cfg.server.check(); err != nil {
		return bad("%v", err)
	}
	if cfg.mailbox == "" || strings.EqualFold(cfg.mailbox, "INBOX") {
		return bad("refusing to use %q as the test mailbox: it is deleted and recreated", cfg.mailbox)
	}
	if strings.ContainsAny(cfg.mailbox, "*%") {
		return bad("--mailbox %q: wildcards are not allowed", cfg.mailbox)
	}
	if cfg.messages < 1 || cfg.messages > 10_000_000 {
		return bad("--messages must be between 1 and 10000000")
	}
	cfg.holes = *holes
	if cfg.holes < 0 {
		cfg.holes = int(math.Round(float64(cfg.messages) * 85 / 464))
	}
	if cfg.holes > 10_000_000 {
		return bad("--holes too large")
	}
	if cfg.changes, err = parseChanges(*changes); err != nil {
		return bad("--changes: %v", err)
	}
	if cfg.changes.Flags+cfg.changes.Expunges > cfg.messages {
		return bad("--changes: %d flag changes and %d expunges need at least as many messages", cfg.changes.Flags, cfg.changes.Expunges)
	}
	if cfg.rtt < 0 {
		return bad("--rtt must not be negative")
	}
	if cfg.bandwidth, err = parseBandwidth(*bandwidth); err != nil {
		return bad("--bandwidth: %v", err)
	}
	for _, s := range strings.Split(*strategies, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if !slices.ContainsFunc(benchStrategies, func(b benchStrategy) bool { return b.name == s }) {
			return bad("--strategies: unknown strategy %q (sid, qresync, condstore, full)", s)
		}
		if !slices.Contains(cfg.strategies, s) {
			cfg.strategies = append(cfg.strategies, s)
		}
	}
	if cfg.password, err = cfg.server.password(stdin, stderr); err != nil {
		fmt.Fprintf(stderr, "quickimap bench reconnect: %v\n", err)
		return exitFail
	}

	rep, err := benchReconnect(ctx, &cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "quickimap bench reconnect: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printBench(stdout, rep)
	}
	for _, r := range rep.Results {
		if r.Check != "ok" && r.Check != "unsupported" {
			return exitFail
		}
	}
	return exitOK
}

// bench is one run of bench reconnect.
type bench struct {
	cfg   *benchConfig
	h     *imapclient.Client // the helper connection
	rnd   *rand.Rand
	runID string
	next  int // number of the next message appended
	// uidValidity is the test mailbox's, as the helper's SELECT said.
	uidValidity uint32
	stderr      io.Writer
}

func benchReconnect(ctx context.Context, cfg *benchConfig, stderr io.Writer) (*benchReport, error) {
	b := &bench{
		cfg:    cfg,
		rnd:    rand.New(rand.NewPCG(cfg.seed, 0x71756963)),
		runID:  strconv.FormatInt(time.Now().UnixNano(), 36),
		stderr: stderr,
	}
	h, err := cfg.server.dialHelper(cfg.password)
	if err != nil {
		return nil, err
	}
	b.h = h
	defer func() {
		b.h.Logout().Wait()
		b.h.Close()
	}()
	caps, err := h.Capability().Wait()
	if err != nil {
		return nil, fmt.Errorf("CAPABILITY: %w", err)
	}
	rep := &benchReport{
		Server: cfg.server.addr, Mailbox: cfg.mailbox, Messages: cfg.messages, Holes: cfg.holes,
		Changes: cfg.changes, RTTMs: float64(cfg.rtt) / float64(time.Millisecond), Bandwidth: cfg.bandwidth,
	}
	for c := range caps {
		rep.Capabilities = append(rep.Capabilities, string(c))
	}
	slices.Sort(rep.Capabilities)
	if err := b.checkMailbox(); err != nil {
		return nil, err
	}
	supported := map[string]bool{
		"sid":       caps.Has("X-DRAFT-W07-RECONNECT") || caps.Has("RECONNECT"),
		"qresync":   caps.Has(imap.CapQResync),
		"condstore": caps.Has(imap.CapCondStore),
		"full":      true,
	}
	for _, bs := range benchStrategies {
		if !slices.Contains(cfg.strategies, bs.name) {
			continue
		}
		if !supported[bs.name] {
			rep.Results = append(rep.Results, benchResult{Strategy: bs.name, Check: "unsupported",
				Detail: "the server does not advertise " + map[string]string{
					"sid": "X-DRAFT-W07-RECONNECT", "qresync": "QRESYNC", "condstore": "CONDSTORE"}[bs.name]})
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Results = append(rep.Results, b.runOne(ctx, bs.name, bs.s, false))
		if !cfg.compress {
			continue
		}
		name := bs.name + "+compress"
		if !caps.Has("COMPRESS=DEFLATE") {
			rep.Results = append(rep.Results, benchResult{Strategy: name, Check: "unsupported",
				Detail: "the server does not advertise COMPRESS=DEFLATE"})
			continue
		}
		rep.Results = append(rep.Results, b.runOne(ctx, name, bs.s, true))
	}
	best := math.Inf(1)
	for _, r := range rep.Results {
		if r.Check == "ok" || r.Check == "MISMATCH" {
			best = min(best, r.ModelledMs)
		}
	}
	for i, r := range rep.Results {
		if (r.Check == "ok" || r.Check == "MISMATCH") && best > 0 {
			rep.Results[i].Ratio = math.Round(r.ModelledMs/best*1000) / 1000
		}
	}
	return rep, nil
}

// logf reports progress on standard error.
func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.stderr, format+"\n", a...)
}

// exists reports whether the test mailbox exists.
func (b *bench) exists() (bool, error) {
	list, err := b.h.List("", b.cfg.mailbox, nil).Collect()
	if err != nil {
		return false, fmt.Errorf("LIST: %w", err)
	}
	for _, l := range list {
		if l.Mailbox == b.cfg.mailbox && !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) &&
			!slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			return true, nil
		}
	}
	return false, nil
}

// checkMailbox refuses an existing test mailbox holding messages the bench
// did not append (its first message lacks the marker header), unless
// --force.
func (b *bench) checkMailbox() error {
	ok, err := b.exists()
	if err != nil || !ok || b.cfg.force {
		return err
	}
	data, err := b.h.Select(b.cfg.mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return fmt.Errorf("EXAMINE %s: %w", b.cfg.mailbox, err)
	}
	defer b.unselect()
	if data.NumMessages == 0 {
		return nil
	}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{benchMarker}, Peek: true}
	msgs, err := b.h.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return fmt.Errorf("FETCH: %w", err)
	}
	for _, m := range msgs {
		for _, s := range m.BodySection {
			if strings.Contains(strings.ToLower(string(s.Bytes)), strings.ToLower(benchMarker)+":") {
				return nil
			}
		}
	}
	return fmt.Errorf("mailbox %q exists and holds messages the bench did not append; it would be deleted: choose another --mailbox, or give --force", b.cfg.mailbox)
}

func (b *bench) unselect() {
	if b.h.Mailbox() == nil {
		return
	}
	if b.h.Caps().Has(imap.CapUnselect) {
		b.h.Unselect().Wait()
	} else {
		b.h.UnselectAndExpunge().Wait()
	}
}

// message returns a small, realistic message with a unique Message-ID.
func (b *bench) message() []byte {
	n := b.next
	b.next++
	subjects := []string{"Lunch on Thursday?", "Re: quarterly figures", "Your order has shipped",
		"Minutes of the weekly meeting", "Fwd: photos from the trip", "Build failed on main"}
	date := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(n) * 7 * time.Minute)
	var s strings.Builder
	fmt.Fprintf(&s, "From: Sender %d <sender%d@example.org>\r\n", n%37, n%37)
	fmt.Fprintf(&s, "To: Bench <bench@example.com>\r\n")
	fmt.Fprintf(&s, "Subject: %s (%d)\r\n", subjects[n%len(subjects)], n)
	fmt.Fprintf(&s, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&s, "Message-ID: <%d.%s@bench.quickimap.invalid>\r\n", n, b.runID)
	fmt.Fprintf(&s, "%s: %s\r\n", benchMarker, b.runID)
	fmt.Fprintf(&s, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	fmt.Fprintf(&s, "Hello,\r\n\r\nthis is message %d of the quickimap reconnect benchmark.\r\n", n)
	fmt.Fprintf(&s, "It has a few lines of text, like most short mails do.\r\n\r\nRegards,\r\nSender %d\r\n", n%37)
	return []byte(s.String())
}

// appendMessages appends n messages to the test mailbox: with
// MULTIAPPEND when the server offers it, else pipelined APPENDs.
func (b *bench) appendMessages(n int) error {
	caps := b.h.Caps()
	if caps.Has(imap.CapMultiAppend) && caps.Has(imap.CapLiteralMinus) &&
		quotable(b.cfg.server.user) && quotable(b.cfg.password) && quotable(b.cfg.mailbox) {
		return b.multiAppend(n)
	}
	return b.pipelinedAppend(n)
}

// quotable reports whether s can be sent as a quoted string as is:
// printable ASCII (mailbox names then need no modified UTF-7).
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// multiAppend appends n messages with MULTIAPPEND (RFC 3502), batches of
// 500 messages per command with non-synchronizing literals (RFC 7888;
// the messages are far below LITERAL-'s 4096 bytes), on a connection of
// its own: the helper's client library has no MULTIAPPEND.
func (b *bench) multiAppend(n int) error {
	sf := &b.cfg.server
	var nc net.Conn
	var err error
	if sf.tls {
		nc, err = tls.Dial("tcp", sf.addr, sf.tlsConfig())
	} else {
		nc, err = net.Dial("tcp", sf.addr)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	nc.SetDeadline(time.Now().Add(5 * time.Minute))
	if _, err := br.ReadString('\n'); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	cmd := func(tag, text string) error {
		if _, err := io.WriteString(nc, tag+" "+text+"\r\n"); err != nil {
			return err
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if rest, ok := strings.CutPrefix(line, tag+" "); ok {
				if !strings.HasPrefix(strings.ToUpper(rest), "OK") {
					return fmt.Errorf("%s", strings.TrimSpace(rest))
				}
				return nil
			}
		}
	}
	if sf.starttls {
		if err := cmd("s0", "STARTTLS"); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		tc := tls.Client(nc, sf.tlsConfig())
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		defer tc.Close()
		nc = tc
		br.Reset(tc)
	}
	if err := cmd("m0", "LOGIN "+quote(sf.user)+" "+quote(b.cfg.password)); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	for i := 0; n > 0; i++ {
		k := min(n, 500)
		n -= k
		var c strings.Builder
		c.WriteString("APPEND " + quote(b.cfg.mailbox))
		for range k {
			m := b.message()
			fmt.Fprintf(&c, " {%d+}\r\n", len(m))
			c.Write(m)
		}
		if err := cmd(fmt.Sprintf("m%d", i+1), c.String()); err != nil {
			return fmt.Errorf("MULTIAPPEND: %w", err)
		}
	}
	cmd("mz", "LOGOUT")
	return nil
}

// pipelinedAppend appends n messages, pipelined: up to a window of
// APPENDs is in flight (each is a single write when the server has
// LITERAL+ or LITERAL-).
func (b *bench) pipelinedAppend(n int) error {
	const window = 256
	var pending []*imapclient.AppendCommand
	wait := func(cmds []*imapclient.AppendCommand) error {
		for _, c := range cmds {
			if _, err := c.Wait(); err != nil {
				return fmt.Errorf("APPEND: %w", err)
			}
		}
		return nil
	}
	for i := 0; i < n; i++ {
		msg := b.message()
		c := b.h.Append(b.cfg.mailbox, int64(len(msg)), nil)
		if _, err := c.Write(msg); err != nil {
			c.Close()
			return fmt.Errorf("APPEND: %w", err)
		}
		if err := c.Close(); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		pending = append(pending, c)
		if len(pending) >= 2*window {
			if err := wait(pending[:window]); err != nil {
				return err
			}
			pending = slices.Delete(pending, 0, window)
		}
	}
	return wait(pending)
}

// fill recreates the test mailbox with messages+holes messages, expunges
// the holes and leaves the mailbox selected on the helper connection.
func (b *bench) fill() error {
	cfg := b.cfg
	b.unselect()
	ok, err := b.exists()
	if err != nil {
		return err
	}
	if ok {
		if err := b.h.Delete(cfg.mailbox).Wait(); err != nil {
			return fmt.Errorf("DELETE %s: %w", cfg.mailbox, err)
		}
	}
	if err := b.h.Create(cfg.mailbox, nil).Wait(); err != nil {
		return fmt.Errorf("CREATE %s: %w", cfg.mailbox, err)
	}
	total := cfg.messages + cfg.holes
	start := time.Now()
	if err := b.appendMessages(total); err != nil {
		return err
	}
	data, err := b.h.Select(cfg.mailbox, nil).Wait()
	if err != nil {
		return fmt.Errorf("SELECT %s: %w", cfg.mailbox, err)
	}
	b.uidValidity = data.UIDValidity
	if int(data.NumMessages) != total {
		return fmt.Errorf("mailbox %s has %d messages after appending %d", cfg.mailbox, data.NumMessages, total)
	}
	if cfg.holes > 0 {
		// Scattered holes: cfg.holes distinct sequence numbers.
		perm := b.rnd.Perm(total)[:cfg.holes]
		var set imap.SeqSet
		for _, p := range perm {
			set.AddNum(uint32(p + 1))
		}
		if err := b.h.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return fmt.Errorf("STORE: %w", err)
		}
		if err := b.h.Expunge().Close(); err != nil {
			return fmt.Errorf("EXPUNGE: %w", err)
		}
	}
	b.logf("filled %s: %d messages appended, %d expunged, in %v", cfg.mailbox, total, cfg.holes, time.Since(start).Round(time.Millisecond))
	return nil
}

// serverMessages returns the mailbox's messages as the helper sees them.
func (b *bench) serverMessages() ([]client.Message, error) {
	mb := b.h.Mailbox()
	if mb == nil {
		return nil, errors.New("no mailbox selected")
	}
	if mb.NumMessages == 0 {
		return nil, nil
	}
	msgs, err := b.h.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("UID FETCH 1:* (FLAGS): %w", err)
	}
	out := make([]client.Message, 0, len(msgs))
	for _, m := range msgs {
		var fl []string
		for _, f := range m.Flags {
			fl = append(fl, string(f))
		}
		out = append(out, client.Message{UID: uint32(m.UID), Flags: fl})
	}
	slices.SortFunc(out, func(a, b client.Message) int { return int(int64(a.UID) - int64(b.UID)) })
	return out, nil
}

// change makes the configured changes from the helper connection: flag
// changes (\Flagged toggled, one STORE each) on random messages,
// expunges of other random messages, and new messages.
func (b *bench) change() error {
	ch := b.cfg.changes
	msgs, err := b.serverMessages()
	if err != nil {
		return err
	}
	perm := b.rnd.Perm(len(msgs))
	nf := min(ch.Flags, len(perm))
	for _, i := range perm[:nf] {
		m := msgs[i]
		op := imap.StoreFlagsAdd
		if slices.ContainsFunc(m.Flags, func(f string) bool { return strings.EqualFold(f, `\Flagged`) }) {
			op = imap.StoreFlagsDel
		}
		if err := b.h.Store(imap.UIDSetNum(imap.UID(m.UID)), &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			return fmt.Errorf("UID STORE: %w", err)
		}
	}
	ne := min(ch.Expunges, len(perm)-nf)
	if ne > 0 {
		var set imap.UIDSet
		for _, i := range perm[nf : nf+ne] {
			set.AddNum(imap.UID(msgs[i].UID))
		}
		if err := b.h.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return fmt.Errorf("UID STORE: %w", err)
		}
		var err error
		if b.h.Caps().Has(imap.CapUIDPlus) {
			err = b.h.UIDExpunge(set).Close()
		} else {
			err = b.h.Expunge().Close()
		}
		if err != nil {
			return fmt.Errorf("EXPUNGE: %w", err)
		}
	}
	if ch.New > 0 {
		if err := b.appendMessages(ch.New); err != nil {
			return err
		}
	}
	// A NOOP so that the helper's view (EXISTS) includes the new
	// messages before it is used to verify.
	return b.h.Noop().Wait()
}

// normFlags returns the flags lower-cased and sorted, without \Recent.
func normFlags(fl []string) []string {
	var out []string
	for _, f := range fl {
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		out = append(out, strings.ToLower(f))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// compareState compares the client's messages with the server's and
// describes the first differences.
func compareState(got, want []client.Message) string {
	var diffs []string
	i, j := 0, 0
	for (i < len(got) || j < len(want)) && len(diffs) < 5 {
		switch {
		case j == len(want) || (i < len(got) && got[i].UID < want[j].UID):
			diffs = append(diffs, fmt.Sprintf("client has UID %d, the server does not", got[i].UID))
			i++
		case i == len(got) || want[j].UID < got[i].UID:
			diffs = append(diffs, fmt.Sprintf("server has UID %d, the client does not", want[j].UID))
			j++
		default:
			g, w := normFlags(got[i].Flags), normFlags(want[j].Flags)
			if !slices.Equal(g, w) {
				diffs = append(diffs, fmt.Sprintf("UID %d: client flags %v, server %v", got[i].UID, g, w))
			}
			i++
			j++
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprintf("%d messages on the client, %d on the server: %s", len(got), len(want), strings.Join(diffs, "; "))
}

func strategyName(s client.Strategy) string { return strings.ToLower(s.String()) }

// runOne measures one strategy.
func (b *bench) runOne(ctx context.Context, name string, s client.Strategy, compress bool) benchResult {
	res := benchResult{Strategy: name}
	fail := func(format string, a ...any) benchResult {
		res.Check = "error"
		res.Detail = fmt.Sprintf(format, a...)
		b.logf("%s: %s", name, res.Detail)
		return res
	}
	if err := b.fill(); err != nil {
		return fail("filling the mailbox: %v", err)
	}
	opts := b.cfg.server.clientOptions(b.cfg.password)
	opts.Mailbox = b.cfg.mailbox
	opts.Store = &client.MemoryStore{}
	opts.ForceStrategy = s
	opts.Compress = compress
	if b.cfg.verbose {
		opts.Logger = slog.New(slog.NewTextHandler(b.stderr, &slog.HandlerOptions{Level: slog.Level(-8)}))
	}
	c := client.New(opts)
	defer c.Drop()
	r0, err := c.Sync(ctx)
	if err != nil {
		return fail("initial sync: %v", err)
	}
	b.logf("%s: initial sync (%s): %d messages, %d bytes in, %d out, %d round trips",
		name, strategyName(r0.Strategy), len(c.State().Messages), r0.BytesIn, r0.BytesOut, r0.RoundTrips)
	c.Drop()
	if err := b.change(); err != nil {
		return fail("making the changes: %v", err)
	}
	r, err := c.Sync(ctx)
	res.Used = strategyName(r.Strategy)
	for _, f := range r.Fallbacks {
		res.Fallbacks = append(res.Fallbacks, strategyName(f))
	}
	res.BytesIn, res.BytesOut, res.RoundTrips, res.TLSRoundTrips = r.BytesIn, r.BytesOut, r.RoundTrips, r.TLSRoundTrips
	res.MeasuredMs = float64(r.Duration.Microseconds()) / 1000
	model := time.Duration(res.RoundTrips+res.TLSRoundTrips+1)*b.cfg.rtt +
		time.Duration(float64(res.BytesIn+res.BytesOut)*8/b.cfg.bandwidth*float64(time.Second))
	res.ModelledMs = float64(model.Microseconds()) / 1000
	if err != nil {
		return fail("reconnection: %v", err)
	}
	want, err := b.serverMessages()
	if err != nil {
		return fail("reading the server's state: %v", err)
	}
	st := c.State()
	res.Check = "ok"
	if d := compareState(st.Messages, want); d != "" {
		res.Check, res.Detail = "MISMATCH", d
	} else if st.UIDValidity != b.uidValidity {
		res.Check, res.Detail = "MISMATCH", fmt.Sprintf("UIDVALIDITY %d on the client, %d on the server", st.UIDValidity, b.uidValidity)
	}
	if compress && !r.Compressed && res.Check == "ok" {
		res.Check, res.Detail = "error", "the server refused COMPRESS"
	}
	if base := strings.TrimSuffix(name, "+compress"); res.Used != base {
		note := fmt.Sprintf("asked for %s, the client used %s", base, res.Used)
		if res.Detail != "" {
			note += "; " + res.Detail
		}
		res.Detail = note
	}
	b.logf("%s: reconnected with %s: %d bytes in, %d out, %d round trips: %s %s",
		name, res.Used, res.BytesIn, res.BytesOut, res.RoundTrips, res.Check, res.Detail)
	return res
}

// printBench prints the report as a table.
func printBench(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "server %s, mailbox %q: %d messages, %d holes before the first sync\n", rep.Server, rep.Mailbox, rep.Messages, rep.Holes)
	fmt.Fprintf(w, "changes while away: %d flag changes, %d expunges, %d new messages\n", rep.Changes.Flags, rep.Changes.Expunges, rep.Changes.New)
	fmt.Fprintf(w, "modelled link: rtt %v, %s; modelled = (round trips + TLS round trips + 1) x rtt + bytes x 8 / bandwidth\n\n",
		time.Duration(rep.RTTMs*float64(time.Millisecond)), formatBandwidth(rep.Bandwidth))
	header := []string{"strategy", "used", "S→C bytes", "C→S bytes", "round trips", "measured", "modelled", "× best", "check"}
	rows := [][]string{header}
	for _, r := range rep.Results {
		if r.Check == "unsupported" {
			rows = append(rows, []string{r.Strategy, "-", "-", "-", "-", "-", "-", "-", "unsupported"})
			continue
		}
		used := r.Used
		if len(r.Fallbacks) > 0 {
			used += " (after " + strings.Join(r.Fallbacks, ", ") + ")"
		}
		ratio := "-"
		if r.Ratio > 0 {
			ratio = strconv.FormatFloat(r.Ratio, 'f', 2, 64)
		}
		rts := strconv.Itoa(r.RoundTrips)
		if r.TLSRoundTrips > 0 {
			rts += " + " + strconv.Itoa(r.TLSRoundTrips) + " TLS"
		}
		rows = append(rows, []string{r.Strategy, used, loadgen.GroupDigits(r.BytesIn), loadgen.GroupDigits(r.BytesOut),
			rts, formatMs(r.MeasuredMs), formatMs(r.ModelledMs), ratio, r.Check})
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var line strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if i <= 1 || i == len(row)-1 { // text columns left-aligned
				line.WriteString(c + pad)
			} else {
				line.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line.String(), " "))
	}
	for _, r := range rep.Results {
		if r.Detail != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Strategy, r.Detail)
		}
	}
}

// formatMs formats milliseconds for the table.
func formatMs(ms float64) string {
	switch {
	case ms >= 10_000:
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + " s"
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}
