package message

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"strings"
	"testing"
)

// benchMessage is a ~10 KB message: multipart/mixed with a multipart/
// alternative (text and HTML), a base64 attachment and a forwarded
// message.
func benchMessage() []byte {
	var b strings.Builder
	b.WriteString("Return-Path: <ann@example.com>\r\nReceived: from mx.example.com by mail.example.net; Tue, 1 Jul 2025 10:00:00 +0000\r\n" +
		"From: \"Ann Example\" <ann@example.com>\r\nTo: bob@example.net, \"Carol, C.\" <carol@example.org>\r\n" +
		"Cc: Team: dave@example.org, erin@example.org;\r\nSubject: =?utf-8?q?Quarterly_r=C3=A9port?=\r\n" +
		"Date: Tue, 1 Jul 2025 10:00:00 +0000\r\nMessage-ID: <bench-1@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_outer\"\r\n\r\nThis is a MIME message.\r\n\r\n" +
		"--=_outer\r\nContent-Type: multipart/alternative; boundary=\"=_alt\"\r\n\r\n" +
		"--=_alt\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	for i := 0; i < 30; i++ {
		b.WriteString("The quarterly numbers are in and they look good, caf=C3=A9 for everyone.\r\n")
	}
	b.WriteString("--=_alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n")
	for i := 0; i < 30; i++ {
		b.WriteString("<p>The quarterly numbers are in and they look good.</p>\r\n")
	}
	b.WriteString("</body></html>\r\n--=_alt--\r\n\r\n--=_outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n")
	for i := 0; i < 60; i++ {
		b.WriteString("JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURlY29k\r\n")
	}
	b.WriteString("--=_outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: Carol <carol@example.org>\r\nTo: ann@example.com\r\n" +
		"Subject: numbers\r\nDate: Mon, 30 Jun 2025 09:00:00 -0400\r\nMessage-ID: <inner@example.org>\r\n\r\nHere are the numbers.\r\n" +
		"--=_outer--\r\n")
	return []byte(b.String())
}

func BenchmarkParse10K(b *testing.B) {
	raw := benchMessage()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	p, _ := Parse(benchMessage())
	data := p.Marshal()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "stored-bytes")
}

func BenchmarkMarshal(b *testing.B) {
	p, _ := Parse(benchMessage())
	for b.Loop() {
		p.Marshal()
	}
}

// The alternatives measured for the format choice.

func BenchmarkUnmarshalJSON(b *testing.B) {
	p, _ := Parse(benchMessage())
	data, _ := json.Marshal(p)
	for b.Loop() {
		var q Part
		if err := json.Unmarshal(data, &q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "stored-bytes")
}

func BenchmarkUnmarshalGob(b *testing.B) {
	p, _ := Parse(benchMessage())
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(p); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	for b.Loop() {
		var q Part
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "stored-bytes")
}

func TestBenchMessage(t *testing.T) {
	raw := benchMessage()
	if len(raw) < 9000 || len(raw) > 11000 {
		t.Errorf("bench message is %d bytes", len(raw))
	}
	checkTree(t, raw, mustParse(t, raw))
}
