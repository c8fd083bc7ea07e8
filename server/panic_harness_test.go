package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quickimap/quickimap/internal/imaptest"
	"github.com/quickimap/quickimap/server"
)

// recordingTB is a testing.TB whose errors and cleanups are kept, so
// that a test can check what the harness reports.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recordingTB) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// cleanup runs the cleanups, last registered first, as testing does.
func (r *recordingTB) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func (r *recordingTB) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// panickyLog panics when asked to log the message on: a panic inside a
// connection's goroutine that needs no hook in the server.
type panickyLog struct{ on string }

func (p panickyLog) Enabled(context.Context, slog.Level) bool { return true }
func (p panickyLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == p.on {
		panic("deliberate panic for the harness test")
	}
	return nil
}
func (p panickyLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p panickyLog) WithGroup(string) slog.Handler      { return p }

// A panic in a connection goroutine, which the server recovers from and
// survives, fails the test that started the server: the harness's
// cleanup reports it with its stack.
func TestHarnessFailsOnRecoveredPanic(t *testing.T) {
	rt := &recordingTB{TB: t}
	env := imaptest.Start(rt, func(o *server.Options) {
		o.Logger = slog.New(panickyLog{on: "client ID"})
	})
	c := env.Dial(t)
	c.SendLine(`i1 ID ("name" "x")`)
	c.ExpectEOF(5 * time.Second) // the panic ended that connection
	// The server goes on serving others.
	env.DialLogin(t).Expect("n", "NOOP", "n OK NOOP completed")
	if errs := rt.errors(); len(errs) != 0 {
		t.Fatalf("errors before cleanup: %q", errs)
	}
	rt.cleanup()
	errs := rt.errors()
	if len(errs) != 1 || !strings.Contains(errs[0], "a server connection panicked") ||
		!strings.Contains(errs[0], "deliberate panic for the harness test") || !strings.Contains(errs[0], "cmdID") {
		t.Errorf("harness reported %q, want one error with the panic and its stack", errs)
	}
}

// TakePanics hands the panics to the test (the fuzz target attributes
// them to its input) and the cleanup then has nothing to report.
func TestHarnessTakePanics(t *testing.T) {
	rt := &recordingTB{TB: t}
	env := imaptest.Start(rt, func(o *server.Options) {
		o.Logger = slog.New(panickyLog{on: "client ID"})
	})
	c := env.Dial(t)
	c.SendLine(`i1 ID ("name" "x")`)
	c.ExpectEOF(5 * time.Second)
	if p := env.TakePanics(); len(p) != 1 {
		t.Errorf("TakePanics: %d panics, want 1", len(p))
	}
	rt.cleanup()
	if errs := rt.errors(); len(errs) != 0 {
		t.Errorf("harness reported %q after the panics were taken", errs)
	}
}
