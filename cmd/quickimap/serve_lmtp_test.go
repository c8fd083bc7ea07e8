package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestServeLMTP runs "quickimap serve --lmtp-listen unix:PATH" and delivers
// a message over the socket, which the initial account then reads over
// IMAP.
func TestServeLMTP(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "lmtp.sock")
	s := startServer(t, bin, "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0",
		"--lmtp-listen", "unix:"+sock, "--lmtp-socket-mode", "0600", "--domains", "example.org",
		"--recipient-delimiter", "+")
	var password string
	for line := range s.stdout {
		if v, ok := strings.CutPrefix(line, "Password: "); ok {
			password = v
			break
		}
	}
	var imapAddr string
	for range 2 {
		l := s.waitListening()
		if l["protocol"] == "lmtp" {
			if l["addr"] != sock {
				t.Errorf("LMTP listening on %q, want %q", l["addr"], sock)
			}
		} else {
			imapAddr = l["addr"]
		}
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v", fi, err)
	}

	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(nc)
	defer c.Close()
	if err := c.Hello("test.client"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH advertised")
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("User+Nothing@Example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@example.org", nil); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("unknown recipient: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	const msg = "Subject: over LMTP\r\n\r\nhello\r\n"
	io.WriteString(w, msg)
	resp, err := w.CloseWithLMTPResponse()
	if err != nil || len(resp) != 1 || !strings.Contains(resp["User+Nothing@Example.org"].StatusText, "Delivered to INBOX as UID 1") {
		t.Fatalf("DATA: %+v %v", resp["User+Nothing@Example.org"], err)
	}
	c.Quit()

	ic, err := net.Dial("tcp", imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	r := bufio.NewReader(ic)
	readLine(t, ic, r)
	ic.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(ic, "a LOGIN user "+password+"\r\nb SELECT INBOX\r\nc FETCH 1 BODY[TEXT]\r\n")
	var lines []string
	for {
		l := readLine(t, ic, r)
		lines = append(lines, l)
		if strings.HasPrefix(l, "c ") {
			break
		}
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "* 1 EXISTS") || !strings.Contains(all, "BODY[TEXT] {7}\nhello") {
		t.Errorf("IMAP after delivery:\n%s", all)
	}
	s.stop()
	if !strings.Contains(s.log(), `msg="lmtp delivery"`) || !strings.Contains(s.log(), "result=delivered") {
		t.Errorf("no delivery log line; log:\n%s", s.log())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}
