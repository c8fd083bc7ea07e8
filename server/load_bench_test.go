package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/message"
	"github.com/quickimap/quickimap/store"
)

// BenchmarkLoad drives the server over loopback TCP with the commands of
// a typical mail client on mailboxes of mixed sizes: multipart messages of
// 1–50 KB and a few of 300 KB–2 MB (loadMessages). Each sub-benchmark's
// op is one command and its answer; "mix-N" runs N clients, each on its
// own account, sending a weighted mix of the other commands (loadMix).
//
//	go test ./server -run '^$' -bench Load -benchtime 2s
//
// cpu-ns/op is the process's user+system CPU time per op (client and
// server together; the client only counts and discards bytes), the
// figure that bounds commands per CPU-second.
func BenchmarkLoad(b *testing.B) {
	const users = 10
	env := imaptest.Start(b, nil)
	accounts := loadAccounts(b, env, users)

	single := func(name string, op func(c *loadClient) error) {
		b.Run(name, func(b *testing.B) { loadRun(b, env, accounts[:1], op) })
	}
	single("fetch-body-peek", (*loadClient).fetchBody)
	single("fetch-body-peek-small", (*loadClient).fetchSmallBody)
	single("fetch-body-peek-large", (*loadClient).fetchLargeBody)
	single("fetch-envelope-bodystructure-50", (*loadClient).fetchStructure)
	single("fetch-flags-all", (*loadClient).fetchFlags)
	single("uid-search-unseen", (*loadClient).searchUnseen)
	single("uid-search-from", (*loadClient).searchFrom)
	single("store-flags", (*loadClient).storeFlags)
	single("append-20KB", (*loadClient).appendExpunge)
	for _, n := range []int{1, users} {
		b.Run(fmt.Sprintf("mix-%d", n), func(b *testing.B) {
			loadRun(b, env, accounts[:n], (*loadClient).mix)
		})
	}
}

// loadAccount is an account with a filled INBOX.
type loadAccount struct {
	user, pass string
	n          int      // messages in INBOX, UIDs 1..n
	large      []uint32 // UIDs of the messages over 300 KB
	small      []uint32
}

// loadPerUser is the size of each account's INBOX.
const loadPerUser = 150

func loadAccounts(b *testing.B, env *imaptest.Env, n int) []loadAccount {
	b.Helper()
	ctx := context.Background()
	h, err := bcrypt.GenerateFromPassword([]byte("load-pw"), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	var accs []loadAccount
	for i := range n {
		name := fmt.Sprintf("load%d", i)
		u, err := env.Store.CreateUser(ctx, name, string(h), store.DefaultMailboxes())
		if err != nil {
			b.Fatal(err)
		}
		mb, err := env.Store.MailboxByName(ctx, u.ID, "INBOX")
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		msgs := loadMessages(rng, loadPerUser)
		acc := loadAccount{user: name, pass: "load-pw", n: len(msgs)}
		batch := make([]store.NewMessage, len(msgs))
		for j, body := range msgs {
			p, err := message.Parse(body)
			if err != nil {
				b.Fatal(err)
			}
			var flags []string
			if j < len(msgs)*9/10 {
				flags = []string{`\Seen`}
			}
			batch[j] = store.NewMessage{Flags: flags, Body: body, Structure: p.Marshal(), HeaderLen: p.BodyStart,
				InternalDate: time.Date(2024, 1, 1, 0, 0, j, 0, time.UTC)}
			if len(body) > 300<<10 {
				acc.large = append(acc.large, uint32(j+1))
			} else {
				acc.small = append(acc.small, uint32(j+1))
			}
		}
		if _, _, err := env.Store.AppendMessages(ctx, u.ID, mb.ID, batch); err != nil {
			b.Fatal(err)
		}
		accs = append(accs, acc)
	}
	return accs
}

// loadMessages makes n messages: 2% of 300 KB–2 MB (a text part and a
// base64 attachment), the others of 1–50 KB: multipart/alternative text
// and HTML, a third of them multipart/mixed with a small attachment.
func loadMessages(rng *rand.Rand, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		size := 1<<10 + rng.IntN(49<<10)
		if i%50 == 25 {
			size = 300<<10 + rng.IntN(1700<<10)
		}
		out[i] = loadMessage(rng, i, size)
	}
	return out
}

const loadWords = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation"

func loadText(rng *rand.Rand, size int) string {
	words := strings.Fields(loadWords)
	var sb strings.Builder
	col := 0
	for sb.Len() < size {
		w := words[rng.IntN(len(words))]
		if col+len(w) > 72 {
			sb.WriteString("\r\n")
			col = 0
		}
		sb.WriteString(w)
		sb.WriteByte(' ')
		col += len(w) + 1
	}
	sb.WriteString("\r\n")
	return sb.String()
}

func loadBase64(rng *rand.Rand, size int) string {
	raw := make([]byte, size*3/4)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var sb strings.Builder
	for len(enc) > 76 {
		sb.WriteString(enc[:76])
		sb.WriteString("\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc)
	sb.WriteString("\r\n")
	return sb.String()
}

func loadMessage(rng *rand.Rand, i, size int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Return-Path: <sender%d@example.com>\r\n"+
		"Received: from mx.example.com (mx.example.com [192.0.2.1]) by mail.example.org with ESMTPS id %d; Mon, 1 Jan 2024 00:00:00 +0000\r\n"+
		"From: \"Sender %d\" <sender%d@example.com>\r\nTo: Alice <alice@example.org>, bob@example.org\r\n"+
		"Cc: \"Carol C.\" <carol@example.net>\r\n"+
		"Subject: =?UTF-8?Q?Message_number_%d_=E2=80=94_report?=\r\nDate: Mon, 1 Jan 2024 00:%02d:00 +0100\r\n"+
		"Message-ID: <%d.load@example.com>\r\nIn-Reply-To: <%d.load@example.com>\r\nMIME-Version: 1.0\r\n",
		i%23, i, i%23, i%23, i, i%60, i, i-1)
	const outer, inner = "outer-boundary-0123456789", "inner-boundary-9876543210"
	attach := 0
	switch {
	case size > 300<<10:
		attach = size - 4<<10
	case i%3 == 0:
		attach = size / 2
	}
	text := max(size-attach, 512) / 2
	alt := func() {
		fmt.Fprintf(&sb, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", inner)
		sb.WriteString(loadText(rng, text))
		fmt.Fprintf(&sb, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>", inner)
		sb.WriteString(loadText(rng, text))
		fmt.Fprintf(&sb, "</p></body></html>\r\n--%s--\r\n", inner)
	}
	if attach == 0 {
		fmt.Fprintf(&sb, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", inner)
		alt()
		return []byte(sb.String())
	}
	fmt.Fprintf(&sb, "Content-Type: multipart/mixed; boundary=%q\r\n\r\nThis is a multi-part message in MIME format.\r\n", outer)
	fmt.Fprintf(&sb, "--%s\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n", outer, inner)
	alt()
	fmt.Fprintf(&sb, "--%s\r\nContent-Type: application/pdf; name=\"report-%d.pdf\"\r\n"+
		"Content-Disposition: attachment; filename=\"report-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", outer, i, i)
	sb.WriteString(loadBase64(rng, attach))
	fmt.Fprintf(&sb, "--%s--\r\n", outer)
	return []byte(sb.String())
}

// loadClient is a raw client that skips literals without keeping them.
type loadClient struct {
	acc       *loadAccount
	nc        net.Conn
	r         *bufio.Reader
	w         *bufio.Writer
	seq       int
	rng       *rand.Rand
	appended  []uint32 // UIDs this client appended and has not expunged
	flagged   bool
	appendCmd string
	got       int64 // bytes of literals received
}

func dialLoad(addr string, acc *loadAccount, seed uint64) (*loadClient, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &loadClient{acc: acc, nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriter(nc),
		rng: rand.New(rand.NewPCG(seed, 11))}
	if _, err := c.r.ReadString('\n'); err != nil {
		nc.Close()
		return nil, err
	}
	body := loadMessage(c.rng, 1000, 20<<10)
	c.appendCmd = fmt.Sprintf("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(body), body)
	if _, err := c.cmd("LOGIN " + acc.user + " " + acc.pass); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// cmd sends a command and reads up to its tagged OK. It returns the
// untagged lines' count; literals are read and discarded.
func (c *loadClient) cmd(s string) (int, error) {
	c.seq++
	tag := "L" + strconv.Itoa(c.seq)
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	n := 0
	var line []byte
	for {
		part, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			line = append(line, part...)
			continue
		}
		if err != nil {
			return n, err
		}
		if len(line) > 0 {
			part = append(line, part...)
			line = line[:0]
		}
		// A literal: skip its bytes, the line goes on after it.
		if k := bytes.LastIndexByte(part, '{'); k >= 0 && bytes.HasSuffix(part, []byte("}\r\n")) {
			size, err := strconv.Atoi(string(part[k+1 : len(part)-3]))
			if err == nil {
				if _, err := c.r.Discard(size); err != nil {
					return n, err
				}
				c.got += int64(size)
				line = append(line[:0], "…"...)
				continue
			}
		}
		if bytes.HasPrefix(part, []byte(tag+" ")) {
			if !bytes.HasPrefix(part, []byte(tag+" OK")) {
				return n, fmt.Errorf("%.60s: %s", s, part)
			}
			return n, nil
		}
		n++
	}
}

func (c *loadClient) uid() uint32 { return uint32(1 + c.rng.IntN(c.acc.n)) }

func (c *loadClient) fetchBody() error {
	_, err := c.cmd(fmt.Sprintf("UID FETCH %d BODY.PEEK[]", c.uid()))
	return err
}

func (c *loadClient) fetchSmallBody() error {
	_, err := c.cmd(fmt.Sprintf("UID FETCH %d BODY.PEEK[]", c.acc.small[c.rng.IntN(len(c.acc.small))]))
	return err
}

func (c *loadClient) fetchLargeBody() error {
	_, err := c.cmd(fmt.Sprintf("UID FETCH %d BODY.PEEK[]", c.acc.large[c.rng.IntN(len(c.acc.large))]))
	return err
}

func (c *loadClient) fetchStructure() error {
	first := 1 + c.rng.IntN(c.acc.n-49)
	n, err := c.cmd(fmt.Sprintf("FETCH %d:%d (ENVELOPE BODYSTRUCTURE)", first, first+49))
	if err == nil && n < 50 {
		err = fmt.Errorf("FETCH of 50 messages: %d responses", n)
	}
	return err
}

func (c *loadClient) fetchFlags() error {
	n, err := c.cmd("FETCH 1:* (FLAGS)")
	if err == nil && n < c.acc.n {
		err = fmt.Errorf("FETCH 1:* (FLAGS): %d responses for %d messages", n, c.acc.n)
	}
	return err
}

func (c *loadClient) searchUnseen() error {
	_, err := c.cmd("UID SEARCH UNSEEN")
	return err
}

func (c *loadClient) searchFrom() error {
	_, err := c.cmd(fmt.Sprintf("UID SEARCH FROM sender%d", c.rng.IntN(23)))
	return err
}

func (c *loadClient) storeFlags() error {
	op := "+"
	if c.flagged {
		op = "-"
	}
	c.flagged = !c.flagged
	_, err := c.cmd(fmt.Sprintf("UID STORE %d %sFLAGS (\\Flagged)", c.uid(), op))
	return err
}

func (c *loadClient) append() error {
	_, err := c.cmd(c.appendCmd)
	if err == nil {
		// The UID is not needed exactly: expunge takes the highest ones.
		c.appended = append(c.appended, 0)
	}
	return err
}

// expunge removes the messages this client appended.
func (c *loadClient) expunge() error {
	if len(c.appended) == 0 {
		_, err := c.cmd("NOOP")
		return err
	}
	c.appended = c.appended[:0]
	set := fmt.Sprintf("%d:*", c.acc.n+1)
	if _, err := c.cmd("UID STORE " + set + " +FLAGS.SILENT (\\Deleted)"); err != nil {
		return err
	}
	_, err := c.cmd("UID EXPUNGE " + set)
	return err
}

// appendExpunge appends a 20 KB message and every 16 appends expunges
// them, so that the mailbox keeps its size.
func (c *loadClient) appendExpunge() error {
	if len(c.appended) >= 16 {
		if err := c.expunge(); err != nil {
			return err
		}
	}
	return c.append()
}

// loadMix is the command mix of a client session after login, by weight.
var loadMix = []struct {
	weight int
	op     func(c *loadClient) error
}{
	{25, (*loadClient).fetchBody},
	{15, (*loadClient).fetchStructure},
	{15, (*loadClient).fetchFlags},
	{15, (*loadClient).storeFlags},
	{8, (*loadClient).searchUnseen},
	{2, (*loadClient).searchFrom},
	{5, (*loadClient).append},
	{5, (*loadClient).expunge},
	{5, func(c *loadClient) error { _, err := c.cmd("SELECT INBOX"); return err }},
	{5, func(c *loadClient) error { _, err := c.cmd("NOOP"); return err }},
}

func (c *loadClient) mix() error {
	total := 0
	for _, m := range loadMix {
		total += m.weight
	}
	k := c.rng.IntN(total)
	for _, m := range loadMix {
		if k < m.weight {
			return m.op(c)
		}
		k -= m.weight
	}
	panic("unreachable")
}

// loadRun runs op b.N times spread over one client per account.
func loadRun(b *testing.B, env *imaptest.Env, accs []loadAccount, op func(c *loadClient) error) {
	cs := make([]*loadClient, len(accs))
	for i := range accs {
		c, err := dialLoad(env.Addr, &accs[i], uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		defer c.nc.Close()
		cs[i] = c
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, _ := processCPU()
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for i, c := range cs {
		share := b.N / len(cs)
		if i < b.N%len(cs) {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range share {
				if err := op(c); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	cpu1, _ := processCPU()
	cpu := cpu1 - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var got int64
	for _, c := range cs {
		got += c.got
		// Leave the mailbox as it was for the next sub-benchmark.
		if len(c.appended) > 0 {
			if err := c.expunge(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(got)/float64(b.N), "literal-B/op")
}
