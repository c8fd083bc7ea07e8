package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is the result of a run.
type Report struct {
	Addr        string  `json:"addr"`
	Greeting    string  `json:"greeting"`
	Users       int     `json:"users"`
	Clients     int     `json:"clients"`
	Mix         string  `json:"mix"`
	Auth        string  `json:"auth"`
	Pick        string  `json:"pick"`
	LogoutEvery int     `json:"logout_every,omitempty"` // commands per login; 0 with NoLogout
	NoLogout    bool    `json:"no_logout,omitempty"`
	Seconds     float64 `json:"seconds"` // the measured run, from start to the last command's end

	Commands       int64   `json:"commands"` // every IMAP command sent, errors included
	CommandsPerSec float64 `json:"commands_per_s"`
	Logins         int64   `json:"logins"` // successful logins
	LoginsPerSec   float64 `json:"logins_per_s"`
	Errors         int64   `json:"errors"`
	Disconnects    int64   `json:"disconnects"` // connections lost under a command (also errors)

	Kinds []KindReport `json:"kinds"`
	// Warmup is the connect, login and SELECT of every client before
	// the clock started; its errors count in Errors.
	Warmup WarmupReport   `json:"warmup"`
	Errs   []ErrorExample `json:"error_examples,omitempty"`
	Setup  *SetupReport   `json:"setup"`

	// ServerCPUSec is the CPU time (user and system) of the server's
	// processes and their descendants over the run, when process ids
	// were given; ServerProcesses how many processes that was at the
	// end; CommandsPerCPUSec = Commands / ServerCPUSec.
	ServerCPUSec      *float64 `json:"server_cpu_s,omitempty"`
	ServerProcesses   int      `json:"server_processes,omitempty"`
	CommandsPerCPUSec float64  `json:"commands_per_cpu_s,omitempty"`
	CPUError          string   `json:"server_cpu_error,omitempty"`
	// ClientCPUSec is the CPU time of the generator's whole process
	// over the run.
	ClientCPUSec float64 `json:"client_cpu_s"`
}

// KindReport is the figures of one kind of command. Latencies are of the
// commands answered OK, in milliseconds.
type KindReport struct {
	Kind   string  `json:"kind"`
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	PerSec float64 `json:"per_s"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// WarmupReport is what happened before the run: each client's first
// connect, login and SELECT.
type WarmupReport struct {
	Seconds    float64 `json:"seconds"`
	Logins     int64   `json:"logins"` // successful
	Errors     int64   `json:"errors"`
	LoginP50Ms float64 `json:"login_p50_ms"`
	LoginP99Ms float64 `json:"login_p99_ms"`
}

// ErrorExample is the text of one error.
type ErrorExample struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

// Kind returns the figures of the kind named name, or a zero report.
func (r *Report) Kind(name string) KindReport {
	for _, k := range r.Kinds {
		if k.Kind == name {
			return k
		}
	}
	return KindReport{Kind: name}
}

func (r *Report) fill(cfg *Config, setup *SetupReport, clients []*client, warmup, elapsed time.Duration, selfCPU float64) {
	r.Addr = cfg.Addr
	r.Greeting = setup.Greeting
	r.Users, r.Clients = cfg.Users, cfg.Clients
	r.Mix = cfg.Mix.String()
	r.Auth = cfg.Auth.String()
	r.Pick = cfg.Pick.String()
	r.NoLogout = cfg.NoLogout
	if !cfg.NoLogout {
		r.LogoutEvery = cfg.LogoutEvery
	}
	r.Seconds = elapsed.Seconds()
	r.Setup = setup
	r.ClientCPUSec = selfCPU
	warm := kindReports(clients, func(cl *client) *[numKinds]kindStats { return &cl.warm }, warmup.Seconds(), &r.Errs, "warm-up ")
	r.Warmup.Seconds = warmup.Seconds()
	for _, kr := range warm {
		r.Warmup.Errors += kr.Errors
	}
	login := warm[KindLogin]
	r.Warmup.Logins = login.Count - login.Errors
	r.Warmup.LoginP50Ms, r.Warmup.LoginP99Ms = login.P50Ms, login.P99Ms
	r.Errors += r.Warmup.Errors

	r.Kinds = kindReports(clients, func(cl *client) *[numKinds]kindStats { return &cl.stats }, r.Seconds, &r.Errs, "")
	for k, kr := range r.Kinds {
		if Kind(k).isCommand() {
			r.Commands += kr.Count
		}
		if Kind(k) == KindLogin {
			r.Logins = kr.Count - kr.Errors
		}
		r.Errors += kr.Errors
	}
	for _, cl := range clients {
		r.Disconnects += cl.disconnects
	}
	if r.Seconds > 0 {
		r.CommandsPerSec = float64(r.Commands) / r.Seconds
		r.LoginsPerSec = float64(r.Logins) / r.Seconds
	}
	if r.ServerCPUSec != nil && *r.ServerCPUSec > 0 {
		r.CommandsPerCPUSec = float64(r.Commands) / *r.ServerCPUSec
	}
}

// kindReports merges the clients' figures of each kind, those stats
// returns, and adds their error examples to errs, their kinds prefixed.
func kindReports(clients []*client, stats func(*client) *[numKinds]kindStats, seconds float64, errs *[]ErrorExample, prefix string) []KindReport {
	reports := make([]KindReport, numKinds)
	var lat []time.Duration
	for k := range numKinds {
		kr := KindReport{Kind: Kind(k).String()}
		lat = lat[:0]
		var examples []string
		for _, cl := range clients {
			s := &stats(cl)[k]
			kr.Count += s.count
			kr.Errors += s.errors
			lat = append(lat, s.lat...)
			for _, e := range s.examples {
				if len(examples) < maxExamples && !slices.Contains(examples, e) {
					examples = append(examples, e)
				}
			}
		}
		for _, e := range examples {
			*errs = append(*errs, ErrorExample{Kind: prefix + kr.Kind, Text: e})
		}
		if len(lat) > 0 {
			slices.Sort(lat)
			kr.P50Ms = ms(percentile(lat, 0.50))
			kr.P99Ms = ms(percentile(lat, 0.99))
			kr.MaxMs = ms(lat[len(lat)-1])
		}
		if seconds > 0 {
			kr.PerSec = float64(kr.Count) / seconds
		}
		reports[k] = kr
	}
	return reports
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Print writes the report as text.
func (r *Report) Print(w io.Writer) {
	mode := "no LOGOUT (each client stays logged in)"
	if !r.NoLogout {
		mode = fmt.Sprintf("LOGOUT and a new login every %d commands", r.LogoutEvery)
	}
	fmt.Fprintf(w, "server %s: %s\n", r.Addr, r.Greeting)
	fmt.Fprintf(w, "%d clients, %d accounts (%s, %s), %.1f s, %s\n", r.Clients, r.Users, r.Auth, r.Pick, r.Seconds, mode)
	fmt.Fprintf(w, "mix per cycle: %s\n", r.Mix)
	if s := r.Setup; s != nil {
		fmt.Fprintf(w, "setup: %d INBOXes of %d to %d messages; appended %d, expunged %d leftovers in %.1f s\n\n",
			s.Users, s.MinMessages, s.MaxMessages, s.Appended, s.Expunged, s.Seconds)
	}
	rows := [][]string{{"kind", "count", "errors", "per s", "p50 ms", "p99 ms", "max ms"}}
	for _, k := range r.Kinds {
		if k.Count == 0 {
			continue
		}
		rows = append(rows, []string{k.Kind, GroupDigits(k.Count), GroupDigits(k.Errors), FormatFloat(k.PerSec),
			FormatFloat(k.P50Ms), FormatFloat(k.P99Ms), FormatFloat(k.MaxMs)})
	}
	rows = append(rows, []string{"commands", GroupDigits(r.Commands), GroupDigits(r.Errors), FormatFloat(r.CommandsPerSec), "", "", ""})
	PrintTable(w, rows)
	fmt.Fprintf(w, "\nbefore the run: %d clients logged in within %.2f s (login p50 %s ms, p99 %s ms), %d errors\n",
		r.Warmup.Logins, r.Warmup.Seconds, FormatFloat(r.Warmup.LoginP50Ms), FormatFloat(r.Warmup.LoginP99Ms), r.Warmup.Errors)
	fmt.Fprintf(w, "logins during the run: %s, %s per second\n", GroupDigits(r.Logins), FormatFloat(r.LoginsPerSec))
	switch {
	case r.ServerCPUSec != nil:
		pct := 0.0
		if r.Seconds > 0 {
			pct = *r.ServerCPUSec / r.Seconds * 100
		}
		fmt.Fprintf(w, "server CPU: %.2f s (%.0f%% of one core, %d processes): %s commands per CPU-second\n",
			*r.ServerCPUSec, pct, r.ServerProcesses, FormatFloat(r.CommandsPerCPUSec))
	case r.CPUError != "":
		fmt.Fprintf(w, "server CPU: not measured: %s\n", r.CPUError)
	}
	fmt.Fprintf(w, "generator CPU: %.2f s\n", r.ClientCPUSec)
	if r.Errors == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprintf(w, "errors: %s (%s disconnects); examples:\n", GroupDigits(r.Errors), GroupDigits(r.Disconnects))
	for _, e := range r.Errs {
		fmt.Fprintf(w, "  %s: %s\n", e.Kind, e.Text)
	}
}

// PrintTable writes rows in aligned columns, the first left-aligned and
// the others right-aligned.
func PrintTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// FormatFloat formats a figure with three significant digits or as a
// whole number when it is large.
func FormatFloat(v float64) string {
	switch {
	case v >= 1000:
		return GroupDigits(int64(v + 0.5))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v == 0:
		return "0"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// GroupDigits formats n with thousands separators.
func GroupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
