package loadgen

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Marker is the header every message the generator appends carries: its
// value is "fill" for the messages of the setup phase and "run" for those
// appended under load. Setup refuses an INBOX holding messages without it
// (unless forced), so that a run never flips flags in somebody's real mail.
const Marker = "X-Quickimap-Load"

// Message sizes, inclusive: the whole message, headers included.
const (
	minMessageSize = 1 << 10
	maxMessageSize = 50 << 10
)

var (
	firstNames = []string{"Alice", "Bob", "Carmen", "Dmitri", "Emeka", "Fatima", "Günter", "Hana",
		"Ivan", "Jun", "Kofi", "Lena", "Mateo", "Nadia", "Olu", "Priya", "Quentin", "Rosa"}
	lastNames = []string{"Smith", "Okafor", "García", "Ivanova", "Tanaka", "Müller", "Haddad",
		"Kowalski", "Nguyen", "Rossi", "Dubois", "Jensen", "Silva", "Patel"}
	domains  = []string{"example.org", "example.com", "example.net", "mail.example.org", "corp.example.com"}
	subjects = []string{"Lunch on Thursday?", "Quarterly figures", "Your order has shipped",
		"Minutes of the weekly meeting", "Photos from the trip", "Build failed on main",
		"Invoice 2024-0117", "Re: contract draft, second round", "Weekend plans",
		"Security alert: new sign-in", "Team offsite agenda", "Your receipt",
		"Slides for tomorrow", "Question about the API", "Newsletter: what's new this month"}
	words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all we their has would when if
so no will more can said about what up out them some could into than other time only then new
like these two may first any my now such people over its also our after most made well way
work even because through back good where year how much project meeting budget release draft
review schedule invoice delivery customer support weekend report figures update please thanks
regards tomorrow morning afternoon attached version question answer change order team office`)
	attachmentTypes = [][2]string{
		{"application/pdf", "report.pdf"}, {"image/jpeg", "IMG_2041.jpg"},
		{"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "figures.xlsx"},
		{"image/png", "screenshot.png"}, {"application/zip", "logs.zip"},
	}
)

// messageGen builds realistic messages: plain text, multipart/alternative
// (text and HTML) and multipart/mixed with a base64 attachment, 1 to 50
// KB with most of them small (log-uniform sizes), with the headers a
// delivered message has (Received, DKIM-Signature, Authentication-Results,
// Message-ID, sometimes References or List-Id).
type messageGen struct {
	rnd *rand.Rand
	buf bytes.Buffer
}

func newMessageGen(seed1, seed2 uint64) *messageGen {
	return &messageGen{rnd: rand.New(rand.NewPCG(seed1, seed2))}
}

func (g *messageGen) pick(list []string) string { return list[g.rnd.IntN(len(list))] }

func (g *messageGen) person() (name, addr string) {
	f, l := g.pick(firstNames), g.pick(lastNames)
	return f + " " + l, strings.ToLower(asciiOnly(f)+"."+asciiOnly(l)) + "@" + g.pick(domains)
}

// asciiOnly drops the non-ASCII letters of a name for its address.
func asciiOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// size draws a message size, log-uniform between the bounds (median
// about 7 KB).
func (g *messageGen) size() int {
	lo, hi := math.Log(minMessageSize), math.Log(maxMessageSize)
	return int(math.Exp(lo + g.rnd.Float64()*(hi-lo)))
}

// headerQuote encodes a display name as an RFC 2047 word when it is not
// ASCII.
func headerQuote(name string) string {
	if asciiOnly(name) == name {
		return `"` + name + `"`
	}
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(name)) + "?="
}

// message returns a new message of about the drawn size, with n in its
// Message-ID and marker as the value of the Marker header. The result is
// valid until the next call.
func (g *messageGen) message(n int, marker string, date time.Time) []byte {
	target := g.size()
	b := &g.buf
	b.Reset()
	fromName, from := g.person()
	toName, to := g.person()
	host := g.pick(domains)
	fmt.Fprintf(b, "Return-Path: <%s>\r\n", from)
	fmt.Fprintf(b, "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby mail.example.com with ESMTPS id %08X\r\n\tfor <%s>; %s\r\n",
		g.rnd.IntN(9), host, g.rnd.IntN(9), host, 1+g.rnd.IntN(250), g.rnd.Uint32(), to, date.Format(time.RFC1123Z))
	fmt.Fprintf(b, "Received: from [10.0.%d.%d] by mx.%s with ESMTPSA; %s\r\n",
		g.rnd.IntN(255), g.rnd.IntN(255), host, date.Add(-2*time.Second).Format(time.RFC1123Z))
	b.WriteString("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + host + "; s=s2024;\r\n\th=from:to:subject:date:message-id; bh=")
	g.base64Line(b, 32)
	b.WriteString(";\r\n\tb=")
	for range 3 {
		g.base64Line(b, 48)
		b.WriteString("\r\n\t ")
	}
	g.base64Line(b, 24)
	b.WriteString("\r\n")
	fmt.Fprintf(b, "Authentication-Results: mail.example.com; dkim=pass header.d=%s; spf=pass smtp.mailfrom=%s\r\n", host, from)
	fmt.Fprintf(b, "From: %s <%s>\r\n", headerQuote(fromName), from)
	fmt.Fprintf(b, "To: %s <%s>\r\n", headerQuote(toName), to)
	if g.rnd.IntN(3) == 0 {
		ccName, cc := g.person()
		fmt.Fprintf(b, "Cc: %s <%s>\r\n", headerQuote(ccName), cc)
	}
	subj := g.pick(subjects)
	reply := g.rnd.IntN(3) == 0
	if reply {
		subj = "Re: " + subj
	}
	fmt.Fprintf(b, "Subject: %s\r\n", subj)
	fmt.Fprintf(b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(b, "Message-ID: <%d.%08x@%s>\r\n", n, g.rnd.Uint32(), host)
	if reply {
		ref := fmt.Sprintf("<%08x.%d@%s>", g.rnd.Uint32(), g.rnd.IntN(1e6), g.pick(domains))
		fmt.Fprintf(b, "In-Reply-To: %s\r\nReferences: %s\r\n", ref, ref)
	}
	if g.rnd.IntN(5) == 0 {
		fmt.Fprintf(b, "List-Id: News from %s <news.%s>\r\nList-Unsubscribe: <https://%s/unsubscribe?u=%x>\r\n", host, host, host, g.rnd.Uint64())
	}
	fmt.Fprintf(b, "%s: %s\r\nMIME-Version: 1.0\r\n", Marker, marker)

	switch k := g.rnd.IntN(10); {
	case k < 5:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		g.text(b, target-b.Len())
	case k < 8:
		boundary := fmt.Sprintf("=_alt_%016x", g.rnd.Uint64())
		fmt.Fprintf(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary)
		rest := max(target-b.Len()-300, 200)
		fmt.Fprintf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
		g.text(b, rest*2/5)
		fmt.Fprintf(b, "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
		g.html(b, rest*3/5)
		fmt.Fprintf(b, "\r\n--%s--\r\n", boundary)
	default:
		boundary := fmt.Sprintf("=_mix_%016x", g.rnd.Uint64())
		fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
		b.WriteString("This is a multi-part message in MIME format.\r\n\r\n")
		fmt.Fprintf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
		g.text(b, 200+g.rnd.IntN(600))
		at := attachmentTypes[g.rnd.IntN(len(attachmentTypes))]
		fmt.Fprintf(b, "\r\n--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, at[0], at[1], at[1])
		// 76-character lines: 57 bytes of data each.
		for room := target - b.Len() - 60; ; room -= 78 {
			g.base64Line(b, 57)
			b.WriteString("\r\n")
			if room < 78 {
				break
			}
		}
		fmt.Fprintf(b, "--%s--\r\n", boundary)
	}
	return b.Bytes()
}

// base64Line writes the base64 of n random bytes.
func (g *messageGen) base64Line(b *bytes.Buffer, n int) {
	var raw [64]byte
	for i := 0; i < n; i += 8 {
		v := g.rnd.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	var enc [88]byte
	base64.StdEncoding.Encode(enc[:], raw[:n])
	b.Write(enc[:base64.StdEncoding.EncodedLen(n)])
}

// text writes about n bytes of text in paragraphs of lines of at most 72
// characters.
func (g *messageGen) text(b *bytes.Buffer, n int) {
	n = max(n, 40)
	start := b.Len()
	fmt.Fprintf(b, "Hi %s,\r\n\r\n", g.pick(firstNames))
	line := 0
	for b.Len()-start < n {
		w := g.pick(words)
		if line+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
			if g.rnd.IntN(6) == 0 {
				b.WriteString("\r\n")
			}
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
}

// html writes about n bytes of HTML.
func (g *messageGen) html(b *bytes.Buffer, n int) {
	n = max(n, 80)
	start := b.Len()
	b.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head>\r\n<body style=\"font-family: sans-serif\">\r\n<p>")
	line := 0
	for b.Len()-start < n {
		w := g.pick(words)
		switch {
		case g.rnd.IntN(40) == 0:
			b.WriteString("</p>\r\n<p>")
			line = 0
		case line+len(w) > 72:
			b.WriteString("\r\n")
			line = 0
		case line > 0:
			b.WriteByte(' ')
			line++
		}
		if g.rnd.IntN(30) == 0 {
			w = "<b>" + w + "</b>"
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("</p>\r\n</body></html>\r\n")
}

// RealisticMessages returns n messages of the kind the load fills
// mailboxes with (1 to 50 KB, multipart, text, HTML and base64
// attachments), the same for the same seed: for benchmarks that need
// mail like users have.
func RealisticMessages(seed uint64, n int) [][]byte {
	g := newMessageGen(seed, 0x6d61696c)
	date := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Clone(g.message(i, "realistic", date.Add(time.Duration(i)*time.Minute)))
	}
	return out
}
