package metrics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/metrics"
	"github.com/quickimap/quickimap/server"
)

// benchBurst runs cmd (b.N times in all) as bursts of 100 pipelined
// commands on one connection, so that the server's CPU per command rather
// than the loopback round trip dominates, without and with metrics:
//
//	go test ./metrics -run '^$' -bench . -benchtime 20000x -count 5
func benchBurst(b *testing.B, setup []string, cmd string) {
	for _, on := range []bool{false, true} {
		name := "metrics=off"
		if on {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			env := imaptest.Start(b, func(o *server.Options) {
				if on {
					o.Metrics = metrics.New(metrics.Options{})
				}
			})
			c := env.DialLogin(b)
			for i, s := range setup {
				c.ExpectTagged(fmt.Sprintf("s%d", i), s, fmt.Sprintf("s%d OK", i))
			}
			const burst = 100
			var sb strings.Builder
			for i := range burst {
				fmt.Fprintf(&sb, "t%d %s\r\n", i, cmd)
			}
			batch := sb.String()
			last := fmt.Sprintf("t%d ", burst-1)
			b.ResetTimer()
			for n := 0; n < b.N; n += burst {
				c.Send(batch)
				for {
					if line := c.ReadLine(); strings.HasPrefix(line, last) {
						break
					}
				}
			}
		})
	}
}

func BenchmarkNoopBurst(b *testing.B) { benchBurst(b, nil, "NOOP") }

func BenchmarkFetchBurst(b *testing.B) {
	msg := "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
	benchBurst(b, []string{
		fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg),
		"SELECT INBOX",
	}, "FETCH 1 (FLAGS UID BODY.PEEK[])")
}

// BenchmarkPerCommand is what metrics add to each command: two clock
// reads, a command's counter and histogram, and the bytes.
func BenchmarkPerCommand(b *testing.B) {
	m := metrics.New(metrics.Options{})
	cm := m.Command("NOOP")
	for b.Loop() {
		start := time.Now()
		cm.Done(server.ResultOK, time.Since(start))
		m.Bytes(12, 30)
	}
}
