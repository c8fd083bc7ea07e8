package pgbus_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/bustest"
)

// BenchmarkCrossNodeLatency measures how long an APPEND takes to reach an
// IDLE client: from the APPEND command sent to node B to the untagged
// EXISTS read on a connection idling on node A (cross-node: B commits,
// publishes, PostgreSQL notifies A, A refreshes its index from the store
// and writes EXISTS), and, for comparison, on a connection idling on B
// itself (same-node: no bus). Each is reported as p50 and p99 in
// milliseconds; the difference between the two is what the bus costs.
//
//	go test -run '^$' -bench CrossNodeLatency -benchtime 2000x ./bus/pgbus/
func BenchmarkCrossNodeLatency(b *testing.B) {
	for _, mode := range []string{"cross-node", "same-node"} {
		b.Run(mode, func(b *testing.B) {
			na, nb, _ := newPGPair(b)
			idleOn := na
			if mode == "same-node" {
				idleOn = nb
			}
			idler := idleOn.Env.DialLogin(b)
			writer := nb.Env.DialLogin(b)
			idler.ExpectTagged("i1", "SELECT INBOX", "i1 OK")
			bustest.Idle(b, idler, "i2")
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				tag := "w" + strconv.Itoa(i)
				t0 := time.Now()
				writer.Send(fmt.Sprintf("%s APPEND INBOX {%d+}\r\n%s\r\n", tag, len(bustest.Msg), bustest.Msg))
				bustest.WaitFor(b, idler, "* "+strconv.Itoa(i+1)+" EXISTS")
				lat = append(lat, time.Since(t0))
				writer.ReadUntilTagged(tag)
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
			idler.SendLine("DONE")
			idler.ReadUntilTagged("i2")
		})
	}
}
