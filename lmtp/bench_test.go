package lmtp_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

// benchMessage is a plain-text message of about 10 KB.
func benchMessage() string {
	var b strings.Builder
	b.WriteString("From: sender@example.net\r\nTo: alice@example.org\r\nSubject: benchmark\r\n" +
		"Date: Wed, 02 Dec 2026 08:00:00 +0000\r\nMessage-ID: <bench@example.net>\r\n\r\n")
	for b.Len() < 10<<10 {
		b.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n")
	}
	return b.String()
}

// BenchmarkDeliver measures LMTP deliveries of 10 KB messages to one
// account, each acknowledged only once durable in the SQLite store, by 1
// and by 8 clients at once (each on its own connection, one recipient per
// transaction).
//
//	go test ./lmtp/ -run '^$' -bench Deliver -benchtime 2000x
func BenchmarkDeliver(b *testing.B) {
	msg := benchMessage()
	for _, senders := range []int{1, 8} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			e := start(b, nil)
			clients := make([]*smtp.Client, senders)
			for i := range clients {
				nc, err := net.Dial("tcp", e.LMTPAddr)
				if err != nil {
					b.Fatal(err)
				}
				c := smtp.NewClientLMTP(nc)
				if err := c.Hello("bench.client"); err != nil {
					b.Fatal(err)
				}
				clients[i] = c
				defer c.Close()
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, senders)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := deliverOne(c, msg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			if n := len(e.Results()); n != b.N {
				b.Fatalf("%d results for %d deliveries", n, b.N)
			}
		})
	}
}

func deliverOne(c *smtp.Client, msg string) error {
	if err := c.Mail("sender@example.net", &smtp.MailOptions{Size: int64(len(msg))}); err != nil {
		return err
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	_, err = w.CloseWithLMTPResponse()
	return err
}
