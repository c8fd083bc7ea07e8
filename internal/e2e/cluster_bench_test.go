//go:build linux

package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/cluster"
)

// BenchmarkClusterSIDResume: a resumable session on a 10,000-message
// INBOX resumes on another node than the one that holds it, after a few
// changes made on a third node (two flag changes, an APPEND and an
// EXPUNGE), while the previous connection is still open (the takeover
// of an active session, which that connection learns as DELETEDSID).
// Each iteration moves the session between node1 and node2, and gives
// the HIGHESTMODSEQ of the previous resume, as a client that kept its
// state does.
//
// ns/op, p50-ms and p99-ms time the SID command alone (written to
// tagged OK read, SELECTED and the delta included); login-sid-ms is the
// mean of TCP connect, greeting, LOGIN and SID. Run it with:
//
//	go test ./internal/e2e -run '^$' -bench ClusterSIDResume -benchtime 200x
//
// The sub-benchmark same-node resumes on node1 every time, for
// comparison: the takeover is then within one process.
func BenchmarkClusterSIDResume(b *testing.B) {
	b.Run("other-node", func(b *testing.B) { benchClusterSIDResume(b, true) })
	b.Run("same-node", func(b *testing.B) { benchClusterSIDResume(b, false) })
}

func benchClusterSIDResume(b *testing.B, hop bool) {
	const messages = 10_000
	c := cluster.Start(b, cluster.Options{})
	cluster.Fill(b, c.DSN, "alice", "INBOX", messages)

	w := c.Env(2, "").DialLogin(b)
	w.ExpectTagged("w0", "SELECT INBOX", "w0 OK")
	first := c.Env(0, "").DialLogin(b)
	s := newSession(b, first)
	held := first

	uidRE := regexp.MustCompile(`\[APPENDUID \d+ (\d+)\]`)
	var durs []time.Duration
	var withLogin time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		n++
		// A few changes on node3.
		w.ExpectTagged("w1", fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Seen)`, 1+n%messages), "w1 OK")
		w.ExpectTagged("w2", fmt.Sprintf(`UID STORE %d -FLAGS.SILENT (\Seen)`, 1+(n+5000)%messages), "w2 OK")
		body := fmt.Sprintf("Subject: new %d\r\n\r\nbody\r\n", n)
		l := w.ExpectTagged("w3", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body), "w3 OK")
		m := uidRE.FindStringSubmatch(l[len(l)-1])
		if m == nil {
			b.Fatalf("APPEND: %q", l)
		}
		w.ExpectTagged("w4", fmt.Sprintf(`UID STORE %s +FLAGS.SILENT (\Deleted)`, m[1]), "w4 OK")
		w.ExpectTagged("w5", "UID EXPUNGE "+m[1], "w5 OK")

		// The session moves to the other node of node1 and node2.
		node := 0
		if hop {
			node = n % 2
		}
		env := c.Env(node, "")
		t0 := time.Now()
		r := env.DialLogin(b)
		b.StartTimer()
		t1 := time.Now()
		got := r.Cmd("r", fmt.Sprintf("SID %s %s %s", s.id, s.uidValidity, s.modSeq))
		d := time.Since(t1)
		b.StopTimer()
		withLogin += time.Since(t0)
		durs = append(durs, d)
		if got[0] != "* SELECTED INBOX" || !strings.HasPrefix(got[len(got)-1], "r OK [READ-WRITE]") {
			b.Fatalf("resume %d on %s: %q", n, c.Node(node).Name, got)
		}
		for _, line := range got {
			if m := highestRE.FindStringSubmatch(line); m != nil {
				s.modSeq = m[1]
			}
		}
		if len(got) > 40 {
			b.Fatalf("resume %d: %d lines, more than a few changes' delta: %q", n, len(got), got[:40])
		}
		held.NC.Close()
		held = r
		b.StartTimer()
	}
	slices.Sort(durs)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(durs[len(durs)/2]), "p50-ms")
	b.ReportMetric(ms(durs[len(durs)*99/100]), "p99-ms")
	b.ReportMetric(ms(withLogin)/float64(len(durs)), "login-sid-ms")
}
