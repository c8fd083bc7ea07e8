package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/quickimap/quickimap/auth"
	"github.com/quickimap/quickimap/config"
	"github.com/quickimap/quickimap/lmtp"
	"github.com/quickimap/quickimap/metrics"
	"github.com/quickimap/quickimap/server"
	"github.com/quickimap/quickimap/session"
	"github.com/quickimap/quickimap/store"
)

// shutdownTimeout bounds the wait for connections to end after a signal.
const shutdownTimeout = 10 * time.Second

// initialUser is the account serve creates in a store that has none.
const initialUser = "user"

// stringArg names the argument of the flag of a string setting in usage.
func stringArg(key string) string {
	switch key {
	case "data":
		return "DIR"
	case "listen", "tls-listen", "lmtp-listen", "metrics-listen":
		return "ADDR"
	case "lmtp-socket-mode":
		return "MODE"
	case "domains":
		return "LIST"
	case "recipient-delimiter":
		return "CHARS"
	case "cert", "key":
		return "FILE"
	case "log-level":
		return "LEVEL"
	case "log-format":
		return "FORMAT"
	case "postgres":
		return "DSN"
	case "node-id":
		return "NAME"
	}
	return "STRING"
}

func printServeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: quickimap serve [flags]

Runs the IMAP server until SIGINT or SIGTERM. When the store has no account
(and --no-initial-user is not given) it creates the account "user" with a
random password and prints both to standard output. Logs go to standard
error. Flags override the configuration file; each flag is also a key of
the file ("key = value" lines).

Flags:
  --config FILE
        configuration file
  --cpuprofile FILE
        debugging aid: write a Go CPU profile of the whole run, from start
        to shutdown, to FILE (read it with go tool pprof)
`)
	def := config.Default()
	for _, k := range config.Keys() {
		v, _ := def.Get(k.Name)
		arg := ""
		switch k.Kind {
		case config.KindString, config.KindLevel:
			arg = " " + stringArg(k.Name)
		case config.KindInt:
			arg = " N"
		case config.KindSize:
			arg = " SIZE"
		case config.KindDuration:
			arg = " DURATION"
		}
		fmt.Fprintf(w, "  --%s%s\n        %s", k.Name, arg, k.Help)
		if v != "" && v != "false" {
			fmt.Fprintf(w, " (default %s)", v)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, `
Durations are in Go syntax (90s, 29m, 1h30m); sizes are a number with an
optional unit (64KiB, 64MiB, 1GiB).
`)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	load := configFlags(fs)
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `FILE`")
	pos, err := parseFlags(fs, args, printServeUsage, stdout, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "quickimap serve: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, err := load()
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "quickimap serve: %v\n", err)
		return exitUsage
	}
	logger := cfg.NewLogger(stderr)
	if *cpuprofile != "" {
		stopProfile, err := startCPUProfile(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "quickimap serve: %v\n", err)
			return exitFail
		}
		defer func() {
			if err := stopProfile(); err != nil {
				logger.Error("writing the CPU profile", "err", err)
			}
		}()
	}
	if err := serve(ctx, &cfg, logger, stdout); err != nil {
		logger.Error("quickimap serve failed", "err", err)
		return exitFail
	}
	return exitOK
}

// serve runs the server of cfg until ctx ends or a signal comes.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer) (err error) {
	// SIGHUP reloads the certificate; its default action would end the
	// process. Caught from the start, before anything is worth keeping.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	opts, err := serverOptions(cfg, nil, logger)
	if err != nil {
		return err
	}
	var certs *certReloader
	if opts.TLSConfig != nil {
		certs = newCertReloader(opts.TLSConfig, cfg.CertFile, cfg.KeyFile)
	}
	var st store.Store
	m, so := newMetrics(cfg, func() store.Store { return st })
	st, err = openConfigStore(ctx, cfg, true, so)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing store: %w", cerr)
		}
	}()
	opts.Store = st
	if m != nil {
		opts.Metrics = m
	}
	if f, ok := st.(interface{ Full() bool }); ok && f.Full() {
		logger.Error("mail store is full", "data", cfg.DataDir, "note", "no room for the space reserve: new mail is refused until space is freed")
	}

	type listener struct {
		net.Listener
		implicitTLS bool
	}
	var ls []listener
	defer func() {
		// Listeners Serve never took (an error came first) are closed
		// here; closing one twice is harmless.
		for _, l := range ls {
			l.Close()
		}
	}()
	// The listeners are bound before the initial account is made: a
	// port in use must not cost the only copy of its password.
	if cfg.Listen != "" {
		l, err := listen(ctx, cfg.Listen, cfg.TCPKeepalive)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		ls = append(ls, listener{l, false})
	}
	if cfg.TLSListen != "" {
		l, err := listen(ctx, cfg.TLSListen, cfg.TCPKeepalive)
		if err != nil {
			return fmt.Errorf("tls-listen: %w", err)
		}
		ls = append(ls, listener{l, true})
	}
	// The node's name, from the first listener's port when not set
	// (the bound port: "listen = :0" picks one), is on every log line
	// from here on.
	var first net.Addr
	if len(ls) > 0 {
		first = ls[0].Addr()
	}
	host, _ := os.Hostname()
	opts.NodeID = nodeID(cfg, host, first)
	logger = logger.With("node", opts.NodeID)
	opts.Logger = logger
	// The bus names the node as the server does.
	closeBus, err := openBus(ctx, cfg, &opts, logger)
	if err != nil {
		return err
	}
	defer closeBus()
	var metricsListener net.Listener
	if m != nil {
		l, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics-listen: %w", err)
		}
		defer l.Close() // when serving never began
		metricsListener = l
	}
	if !cfg.NoInitialUser {
		if err := ensureInitialUser(ctx, st, stdout); err != nil {
			return err
		}
	}

	var lmtpListener net.Listener
	if cfg.LMTPListen != "" {
		l, err := lmtp.Listen(ctx, cfg.LMTPListen, cfg.LMTPSocketMode)
		if err != nil {
			return fmt.Errorf("lmtp-listen: %w", err)
		}
		lmtpListener = l
		defer l.Close()
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Resumable sessions (draft-ietf-lemonade-reconnect-07): expired
	// ones are swept every few minutes until shutdown. The same sweep
	// applies the tombstone window (tombstone-max-age) to mailboxes that
	// nobody writes to; writes purge the mailboxes they touch themselves.
	// The registry owns sessions in the store under the node's name and
	// tells the other nodes, on the node's bus, which ones it took over.
	ro := sessionOptions(cfg)
	ro.NodeID, ro.Bus, ro.Logger = opts.NodeID, opts.Bus, logger
	reg := session.New(st, ro)
	opts.Sessions = reg
	sweepDone := make(chan struct{})
	sweepStopped := make(chan struct{})
	// A sweep in progress is interrupted when serve returns.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	go func() {
		defer close(sweepStopped)
		t := time.NewTicker(5 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-sweepDone:
				return
			case <-t.C:
				if n, err := reg.Expire(sweepCtx); err != nil {
					logger.Warn("expiring sessions", "err", err)
				} else if n > 0 {
					logger.Debug("expired sessions", "count", n)
				}
				if p, ok := st.(tombstonePurger); ok {
					if err := p.PurgeTombstones(sweepCtx, time.Time{}); err != nil {
						logger.Warn("purging expired tombstones", "err", err)
					}
				}
			}
		}
	}()
	defer func() { stopSweep(); close(sweepDone); <-sweepStopped }()

	opts.MaxConnections = checkFDLimit(cfg.MaxConnections, logger)
	srv := server.New(opts)
	// The budget in effect, derived from the machine's memory unless set.
	logger.Info("memory budget", "bytes", srv.MemoryStats().Budget, "spool-literal", opts.SpoolLiteral, "spool-dir", opts.SpoolDir)
	errc := make(chan error, len(ls)+1)
	pending := len(ls)
	for _, l := range ls {
		go func() {
			var err error
			if l.implicitTLS {
				err = srv.ServeTLS(l)
			} else {
				err = srv.Serve(l)
			}
			if err != nil {
				err = fmt.Errorf("serving on %s: %w", l.Addr(), err)
			}
			errc <- err
		}()
		logger.Info("listening", "addr", l.Addr().String(), "tls", l.implicitTLS, "starttls", opts.TLSConfig != nil && !l.implicitTLS)
		if !l.implicitTLS && opts.TLSConfig == nil && !cfg.AllowInsecureAuth && !isLoopback(l.Addr()) {
			logger.Warn("clients that are not on loopback cannot log in on a plain listener without TLS: give --cert and --key, or --allow-insecure-auth", "addr", l.Addr().String())
		}
	}
	// LMTP delivers through srv, so that IDLE clients see new mail at
	// once; it stops first at shutdown, letting deliveries under way end.
	// Its "listening" line comes after the IMAP ones, which tools read
	// first.
	var lsrv *lmtp.Server
	if lmtpListener != nil {
		lo := lmtpOptions(cfg, st, srv, logger)
		if m != nil {
			lo.OnResult = func(r lmtp.Result) { m.LMTPDelivery(string(r.Outcome)) }
		}
		lsrv = lmtp.New(lo)
		pending++
		go func() {
			err := lsrv.Serve(lmtpListener)
			if err != nil {
				err = fmt.Errorf("serving LMTP on %s: %w", lmtpListener.Addr(), err)
			}
			errc <- err
		}()
		logger.Info("listening", "addr", lmtpListener.Addr().String(), "protocol", "lmtp")
	}
	// The metrics' line comes last, as LMTP's does.
	if metricsListener != nil {
		defer serveMetrics(metricsListener, m, logger)()
	}

	var serveErr error
run:
	for {
		select {
		case <-hup:
			reloadCert(certs, logger)
		case <-ctx.Done():
			logger.Info("shutting down", "timeout", shutdownTimeout.String())
			break run
		case serveErr = <-errc:
			pending--
			if serveErr == nil {
				serveErr = errors.New("server stopped before shutdown")
			}
			logger.Error("shutting down", "err", serveErr)
			break run
		}
	}
	stop() // a second signal kills the process at once

	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var shutErr error
	if lsrv != nil {
		if err := lsrv.Shutdown(sctx); err != nil {
			shutErr = fmt.Errorf("LMTP shutdown: %w", err)
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		shutErr = errors.Join(shutErr, fmt.Errorf("shutdown: %w", err))
	}
wait:
	for ; pending > 0; pending-- {
		select {
		case err := <-errc:
			if err != nil && serveErr == nil {
				serveErr = err
			}
		case <-sctx.Done():
			if shutErr == nil {
				shutErr = errors.New("shutdown: listeners did not stop in time")
			}
			break wait
		}
	}
	if err := errors.Join(serveErr, shutErr); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// reloadCert is the answer to SIGHUP: the certificate and key are read
// again for new connections; if they do not load, the old ones stay.
func reloadCert(certs *certReloader, logger *slog.Logger) {
	if certs == nil {
		logger.Info("SIGHUP: no TLS certificate configured, nothing to reload")
		return
	}
	if err := certs.reload(); err != nil {
		logger.Error("SIGHUP: TLS certificate not reloaded, the previous one stays in use", "err", err)
		return
	}
	logger.Info("SIGHUP: TLS certificate reloaded", "cert", certs.certFile)
}

// listen binds a TCP listener whose accepted connections use TCP
// keepalive probes after keepalive of silence (Linux's default interval
// and count), or none when keepalive is 0.
func listen(ctx context.Context, addr string, keepalive time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	if keepalive > 0 {
		lc.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: keepalive, Interval: 75 * time.Second, Count: 9}
	}
	return lc.Listen(ctx, "tcp", addr)
}

// ensureInitialUser creates the account "user" with a random password and
// the default mailboxes when the store has no account, and prints the
// name and password to w.
func ensureInitialUser(ctx context.Context, st store.Store, w io.Writer) error {
	users, err := st.Users(ctx)
	if err != nil {
		return fmt.Errorf("listing users: %w", err)
	}
	if len(users) > 0 {
		return nil
	}
	password, err := randomPassword(16)
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	if _, err := st.CreateUser(ctx, initialUser, hash, store.DefaultMailboxes()); err != nil {
		return fmt.Errorf("creating the initial account: %w", err)
	}
	_, err = fmt.Fprintf(w, "Created account: %s\nPassword: %s\n", initialUser, password)
	return err
}

// passwordAlphabet has no characters that are easily confused (0O, 1lI).
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func randomPassword(n int) (string, error) {
	var b strings.Builder
	max := big.NewInt(int64(len(passwordAlphabet)))
	for range n {
		i, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b.WriteByte(passwordAlphabet[i.Int64()])
	}
	return b.String(), nil
}

// startCPUProfile starts writing a CPU profile to the file path; the
// function it returns stops the profile and closes the file.
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// serveMetrics serves the metrics and health checks over HTTP on l until
// the function it returns is called.
func serveMetrics(l net.Listener, m *metrics.Metrics, logger *slog.Logger) (stop func()) {
	hs := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener failed", "err", err)
		}
	}()
	logger.Info("listening", "addr", l.Addr().String(), "protocol", "metrics")
	if !isLoopback(l.Addr()) {
		logger.Warn("the metrics listener is not on loopback: /metrics is unauthenticated, keep it reachable from your monitoring only", "addr", l.Addr().String())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// tombstonePurger is a store that can apply its tombstone window to every
// mailbox at once (the embedded SQLite store can); serve runs it with the
// periodic session sweep.
type tombstonePurger interface {
	PurgeTombstones(ctx context.Context, now time.Time) error
}
