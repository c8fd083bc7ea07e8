// Package metrics exports quickimap's measurements in the Prometheus text
// format (github.com/prometheus/client_golang) and answers health checks.
// Handler serves:
//
//	/metrics  the metrics below, and the Go runtime's and the process's
//	/healthz  200 while the process runs
//	/readyz   200 when the store answers (Options.Ready), 503 otherwise
//
// Metrics implements server.Metrics; its other methods are for the other
// parts of the server (store transactions, LMTP deliveries). Everything
// lives in the Metrics value's own registry: several can coexist (tests),
// and nothing is registered globally.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quickimap/quickimap/imap"
	"github.com/quickimap/quickimap/server"
)

// Options configure Metrics.
type Options struct {
	// Ready reports whether the store is reachable (for /readyz); nil:
	// always ready.
	Ready func(ctx context.Context) error
	// SessionsStored counts the resumable sessions in the store, read at
	// each scrape; nil: the metric is left out.
	SessionsStored func(ctx context.Context) (int, error)
	// ScrapeTimeout bounds Ready and SessionsStored. Default 5 seconds.
	ScrapeTimeout time.Duration
	// Version and Revision label quickimap_build_info (the binary's
	// module version and VCS revision); the metric is left out when
	// both are empty.
	Version, Revision string
}

// Metrics holds quickimap's Prometheus metrics.
type Metrics struct {
	opts Options
	reg  *prometheus.Registry

	connsTotal    prometheus.Counter
	connsRejected *prometheus.CounterVec
	connsOpen     *prometheus.GaugeVec
	// byState is connsOpen's child of each imap.State.
	byState [imap.StateLogout + 1]prometheus.Gauge

	commands   *prometheus.CounterVec
	commandDur *prometheus.HistogramVec
	logins     *prometheus.CounterVec
	resumes    *prometheus.CounterVec
	bytesIn    prometheus.Counter
	bytesOut   prometheus.Counter
	storeTx    *prometheus.HistogramVec
	lmtp       *prometheus.CounterVec
}

// commandBuckets span a NOOP served from memory (tens of µs) to a large
// FETCH or a failed LOGIN's delay (seconds).
func commandBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// txBuckets span a lazy commit (no fsync) to a slow disk's fsync.
func txBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
}

// New returns the metrics, registered in a registry of their own with the
// Go runtime and process collectors.
func New(opts Options) *Metrics {
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = 5 * time.Second
	}
	m := &Metrics{
		opts: opts,
		reg:  prometheus.NewRegistry(),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quickimap_connections_total",
			Help: "IMAP connections accepted.",
		}),
		connsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quickimap_connections_rejected_total",
			Help: "IMAP connections refused, by reason: max_connections, max_connections_per_ip, out_of_file_descriptors.",
		}, []string{"reason"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quickimap_connections",
			Help: "IMAP connections open, by state (RFC 3501 §3).",
		}, []string{"state"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quickimap_commands_total",
			Help: "IMAP commands completed, by command and tagged result (OK, NO, BAD).",
		}, []string{"command", "result"}),
		commandDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quickimap_command_duration_seconds",
			Help:    "Time from reading an IMAP command to its tagged response (IDLE: the whole idle time), by command and result.",
			Buckets: commandBuckets(),
		}, []string{"command", "result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quickimap_logins_total",
			Help: "LOGIN and AUTHENTICATE attempts by result: ok, failed, refused (no TLS), throttled (the address failed too often), unavailable (store or shutdown).",
		}, []string{"result"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quickimap_sid_resumes_total",
			Help: "SID commands naming a session, by outcome: resumed, newsid (resync required), no_session, error.",
		}, []string{"outcome"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quickimap_received_bytes_total",
			Help: "Bytes received from clients on IMAP connections (inside TLS; compressed ones after COMPRESS).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quickimap_sent_bytes_total",
			Help: "Bytes sent to clients on IMAP connections (inside TLS; compressed ones after COMPRESS).",
		}),
		storeTx: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quickimap_store_transaction_duration_seconds",
			Help:    "Duration of the store's write transactions (one group commit, begin to commit), by mode: durable (fsync) or lazy.",
			Buckets: txBuckets(),
		}, []string{"mode"}),
		lmtp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quickimap_lmtp_deliveries_total",
			Help: "LMTP deliveries, one per recipient, by result.",
		}, []string{"result"}),
	}
	for st := range m.byState {
		m.byState[st] = m.connsOpen.WithLabelValues(stateLabel(imap.State(st)))
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connsTotal, m.connsRejected, m.connsOpen, m.commands, m.commandDur, m.logins,
		m.resumes, m.bytesIn, m.bytesOut, m.storeTx, m.lmtp,
	)
	if opts.Version != "" || opts.Revision != "" {
		info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quickimap_build_info",
			Help: "Always 1; the labels say which build runs.",
		}, []string{"version", "revision"})
		info.WithLabelValues(opts.Version, opts.Revision).Set(1)
		m.reg.MustRegister(info)
	}
	if opts.SessionsStored != nil {
		m.reg.MustRegister(&sessionsCollector{m: m, desc: prometheus.NewDesc(
			"quickimap_sessions_stored",
			"Resumable sessions (draft-ietf-lemonade-reconnect-07) kept in the store, active or not.",
			nil, nil)})
	}
	return m
}

// Registry is the registry the metrics are in, for adding others.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func stateLabel(s imap.State) string {
	switch s {
	case imap.StateNotAuthenticated:
		return "not_authenticated"
	case imap.StateAuthenticated:
		return "authenticated"
	case imap.StateSelected:
		return "selected"
	}
	return "logout"
}

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if m.opts.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), m.opts.ScrapeTimeout)
			err := m.opts.Ready(ctx)
			cancel()
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("store unreachable: " + err.Error() + "\n"))
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}

// sessionsCollector reads the number of stored sessions at each scrape.
type sessionsCollector struct {
	m    *Metrics
	desc *prometheus.Desc
}

func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.m.opts.ScrapeTimeout)
	defer cancel()
	n, err := c.m.opts.SessionsStored(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}

// StoreTransaction records a write transaction of the store that took d;
// durable: committed with an fsync.
func (m *Metrics) StoreTransaction(d time.Duration, durable bool) {
	mode := "lazy"
	if durable {
		mode = "durable"
	}
	m.storeTx.WithLabelValues(mode).Observe(d.Seconds())
}

// LMTPDelivery counts one recipient's delivery by its result, the value
// of the result label of quickimap_lmtp_deliveries_total: a short word
// from a fixed set (delivered, unknown_user, too_large,
// temporary_failure, ...), never client input.
func (m *Metrics) LMTPDelivery(result string) {
	m.lmtp.WithLabelValues(result).Inc()
}

// The server.Metrics implementation.

var _ server.Metrics = (*Metrics)(nil)

// commandMetrics are one command's children, resolved once.
type commandMetrics struct {
	total [server.ResultBAD + 1]prometheus.Counter
	dur   [server.ResultBAD + 1]prometheus.Observer
}

func (c *commandMetrics) Done(r server.Result, d time.Duration) {
	if int(r) >= len(c.total) || c.total[r] == nil {
		return
	}
	c.total[r].Inc()
	c.dur[r].Observe(d.Seconds())
}

// Command implements server.Metrics.
func (m *Metrics) Command(name string) server.CommandMetrics {
	c := &commandMetrics{}
	for _, r := range []server.Result{server.ResultOK, server.ResultNO, server.ResultBAD} {
		c.total[r] = m.commands.WithLabelValues(name, r.String())
		c.dur[r] = m.commandDur.WithLabelValues(name, r.String())
	}
	return c
}

// ConnOpened implements server.Metrics.
func (m *Metrics) ConnOpened() {
	m.connsTotal.Inc()
	m.byState[imap.StateNotAuthenticated].Inc()
}

// ConnRejected implements server.Metrics.
func (m *Metrics) ConnRejected(reason string) { m.connsRejected.WithLabelValues(reason).Inc() }

// ConnState implements server.Metrics.
func (m *Metrics) ConnState(from, to imap.State) {
	m.state(from).Dec()
	m.state(to).Inc()
}

// ConnClosed implements server.Metrics.
func (m *Metrics) ConnClosed(last imap.State) { m.state(last).Dec() }

func (m *Metrics) state(s imap.State) prometheus.Gauge {
	if s < 0 || int(s) >= len(m.byState) {
		s = imap.StateLogout
	}
	return m.byState[s]
}

// Login implements server.Metrics.
func (m *Metrics) Login(r server.LoginResult) { m.logins.WithLabelValues(string(r)).Inc() }

// Resume implements server.Metrics.
func (m *Metrics) Resume(o server.ResumeOutcome) { m.resumes.WithLabelValues(string(o)).Inc() }

// Bytes implements server.Metrics.
func (m *Metrics) Bytes(in, out int64) {
	if in > 0 {
		m.bytesIn.Add(float64(in))
	}
	if out > 0 {
		m.bytesOut.Add(float64(out))
	}
}
