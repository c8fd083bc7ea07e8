package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// syncBuffer is a bytes.Buffer for a logger used by many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// duplicateKeys returns the keys that occur twice in one object of the
// JSON value read from d, at any depth.
func duplicateKeys(d *json.Decoder) ([]string, error) {
	var dups []string
	var walk func() error
	walk = func() error {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					dups = append(dups, key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = d.Token() // }
			return err
		case json.Delim('['):
			for d.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = d.Token() // ]
			return err
		}
		return nil
	}
	err := walk()
	return dups, err
}

func TestDuplicateKeysDetected(t *testing.T) {
	dups, err := duplicateKeys(json.NewDecoder(strings.NewReader(`{"a":1,"b":{"c":2,"c":3},"a":[{"d":1}]}`)))
	if err != nil || fmt.Sprint(dups) != "[c a]" {
		t.Fatalf("duplicateKeys: %v, %v", dups, err)
	}
}

// The JSON log of sessions that go through the paths that log (failed
// and successful logins, ID with fields named like the line's own keys,
// a deleted selected mailbox, the pre-authentication timeout, LOGOUT)
// has no line with a key twice, and every connection ends with one
// "connection closed" line with its user, duration, bytes and reason.
func TestLogLinesHaveUniqueKeys(t *testing.T) {
	var buf syncBuffer
	env := imaptest.Start(t, func(o *server.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.PreAuthTimeout = 300 * time.Millisecond
	})

	// A failed login, a login, ID with hostile field names, LOGOUT.
	c := env.Dial(t)
	c.ExpectTagged("a0", `ID ("name" "x" "user" "mallory" "remote" "1.2.3.4" "msg" "m" "name" "again")`, "a0 OK")
	c.ExpectTagged("a1", "LOGIN alice wrong", "a1 NO")
	c.ExpectTagged("a2", "LOGIN alice secret", "a2 OK")
	c.ExpectTagged("a3", `ID ("user" "mallory" "level" "x")`, "a3 OK")
	// Names alike once made printable, a name "omitted" that the count
	// of pairs past the log's bound also takes.
	id := "ID ({2+}\r\na\x01 \"1\" {2+}\r\na\x02 \"2\" \"omitted\" \"3\""
	for i := range 10 {
		id += fmt.Sprintf(` "k%d" "%s"`, i, strings.Repeat("v", 200))
	}
	c.ExpectTagged("a3b", id+")", "a3b OK")
	c.ExpectTagged("a4", "CREATE Doomed", "a4 OK")
	c.ExpectTagged("a5", "SELECT Doomed", "a5 OK")

	// Another session deletes the selected mailbox: the first gets BYE.
	d := env.DialLogin(t)
	d.ExpectTagged("b1", "DELETE Doomed", "b1 OK")
	c.SendLine("a6 NOOP")
	c.ExpectEOF(5 * time.Second)
	d.ExpectTagged("b2", "LOGOUT", "b2 OK")
	d.ExpectEOF(5 * time.Second)

	// A connection that never logs in: the pre-authentication timeout.
	e := env.Dial(t)
	e.ExpectEOF(5 * time.Second)

	// Wait for the three "connection closed" lines (written as each
	// connection's goroutine ends, after the client saw the close).
	var closed []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for {
		closed = closed[:0]
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			if m["msg"] == "connection closed" {
				closed = append(closed, m)
			}
		}
		if len(closed) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling for the log lines
	}
	log := buf.String()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		dups, err := duplicateKeys(json.NewDecoder(strings.NewReader(line)))
		if err != nil {
			t.Fatalf("reading %q: %v", line, err)
		}
		if len(dups) > 0 {
			t.Errorf("keys %v repeated in %s", dups, line)
		}
	}
	if !strings.Contains(log, `"id":{"name":"x","user":"mallory","remote":"1.2.3.4","msg":"m"}`) {
		t.Errorf("client ID fields not logged as a group; log:\n%s", log)
	}

	reasons := map[string]map[string]any{}
	for _, m := range closed {
		reasons[fmt.Sprint(m["reason"])] = m
		for _, k := range []string{"duration", "bytes_in", "bytes_out", "remote"} {
			if _, ok := m[k]; !ok {
				t.Errorf("connection closed line without %s: %v", k, m)
			}
		}
	}
	if len(closed) != 3 {
		t.Fatalf("%d connection closed lines, want 3; log:\n%s", len(closed), log)
	}
	gone, logout, auto := reasons["selected mailbox gone"], reasons["logout"], reasons["preauth-timeout"]
	if gone == nil || logout == nil || auto == nil {
		t.Fatalf("reasons %v; log:\n%s", reasons, log)
	}
	if gone["user"] != "alice" || logout["user"] != "alice" {
		t.Errorf("user of the logged-in connections: %v, %v", gone["user"], logout["user"])
	}
	if _, ok := auto["user"]; ok {
		t.Errorf("user on a connection that never logged in: %v", auto)
	}
	// The connection that timed out received nothing and was sent the
	// greeting and the BYE.
	if auto["bytes_in"] != 0.0 || auto["bytes_out"].(float64) < 20 {
		t.Errorf("bytes of the connection that timed out: %v in, %v out", auto["bytes_in"], auto["bytes_out"])
	}
	if b, want := logout["bytes_in"], len("L0 LOGIN alice secret\r\nb1 DELETE Doomed\r\nb2 LOGOUT\r\n"); b != float64(want) {
		t.Errorf("bytes_in of the LOGOUT connection: %v, want %d", b, want)
	}
}
