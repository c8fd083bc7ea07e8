package lmtp_test

import (
	"bufio"
	"fmt"
	"io"
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
// transaction), waiting for each reply or pipelining.
//
//	go test ./lmtp/ -run '^$' -bench Deliver -benchtime 2000x
func BenchmarkDeliver(b *testing.B) {
	msg := benchMessage()
	for _, pipelined := range []bool{false, true} {
		for _, senders := range []int{1, 8} {
			name := fmt.Sprintf("senders=%d", senders)
			if pipelined {
				name = "pipelined/" + name
			}
			b.Run(name, func(b *testing.B) { benchDeliver(b, msg, senders, pipelined) })
		}
	}
}

// benchDeliver delivers b.N messages with senders clients at once. A
// pipelined client (RFC 2920, as Postfix sends) writes MAIL, RCPT and
// DATA together and the message after the 354: two round trips per
// message instead of four.
func benchDeliver(b *testing.B, msg string, senders int, pipelined bool) {
	e := start(b, nil)
	deliver := make([]func() error, senders)
	for i := range deliver {
		nc, err := net.Dial("tcp", e.LMTPAddr)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		if pipelined {
			deliver[i] = pipelinedSender(b, nc, msg)
			continue
		}
		c := smtp.NewClientLMTP(nc)
		if err := c.Hello("bench.client"); err != nil {
			b.Fatal(err)
		}
		deliver[i] = func() error { return deliverOne(c, msg) }
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for _, d := range deliver {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := d(); err != nil {
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
}

// pipelinedSender greets the server on nc and returns a function that
// delivers msg with MAIL, RCPT and DATA sent in one write.
func pipelinedSender(b *testing.B, nc net.Conn, msg string) func() error {
	r := bufio.NewReader(nc)
	reply := func() (string, error) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return l, err
			}
			if len(l) < 4 || l[3] != '-' {
				return l, nil
			}
		}
	}
	if _, err := reply(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(nc, "LHLO bench.client\r\n"); err != nil {
		b.Fatal(err)
	}
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "250") {
		b.Fatalf("LHLO: %q %v", l, err)
	}
	data := dotStuff(msg)
	head := fmt.Sprintf("MAIL FROM:<sender@example.net> SIZE=%d\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n", len(msg))
	return func() error {
		if _, err := io.WriteString(nc, head); err != nil {
			return err
		}
		for _, want := range []string{"250", "250", "354"} {
			if l, err := reply(); err != nil || !strings.HasPrefix(l, want) {
				return fmt.Errorf("pipelined command: %q, want %s (%v)", l, want, err)
			}
		}
		if _, err := io.WriteString(nc, data); err != nil {
			return err
		}
		if l, err := reply(); err != nil || !strings.HasPrefix(l, "250") {
			return fmt.Errorf("after the message: %q (%v)", l, err)
		}
		return nil
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
