package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/quickimap/quickimap/internal/imaptest"
)

func TestFitConnections(t *testing.T) {
	for _, tc := range []struct {
		max     int
		soft    uint64
		want    int
		lowered bool
	}{
		{20000, 1 << 20, 20000, false},
		{20000, 20000 + fdHeadroom, 20000, false},
		// The default of 20,000 under a limit of 20,000: the case where
		// new clients got no greeting at all.
		{20000, 20000, 20000 - fdHeadroom, true},
		{20000, 1024, 1024 - fdHeadroom, true},
		// A limit too small for the headroom: half of it.
		{100, 256, 128, true},
		{100, 1, 1, true},
	} {
		got, lowered := fitConnections(tc.max, tc.soft)
		if got != tc.want || lowered != tc.lowered {
			t.Errorf("fitConnections(%d, %d) = %d, %v; want %d, %v", tc.max, tc.soft, got, lowered, tc.want, tc.lowered)
		}
	}
}

// checkFDLimit against the process's real limit: raised to the hard one,
// and a max-connections above it lowered with a warning.
func TestCheckFDLimit(t *testing.T) {
	lim, err := raiseFDLimit()
	if err != nil {
		t.Skipf("no limit on open files here: %v", err)
	}
	if lim.soft != lim.hard {
		t.Errorf("soft limit %d not raised to the hard one %d", lim.soft, lim.hard)
	}
	if lim.soft > 1<<30 {
		t.Skipf("no practical limit on open files (%d)", lim.soft)
	}
	var buf imaptest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if n := checkFDLimit(10, log); n != 10 || buf.String() != "" {
		t.Errorf("10 connections: %d, log %q", n, buf.String())
	}
	huge := int(lim.soft) + 1000
	n := checkFDLimit(huge, log)
	if want, _ := fitConnections(huge, lim.soft); n != want || n >= huge {
		t.Errorf("%d connections with a limit of %d open files: %d, want %d", huge, lim.soft, n, want)
	}
	if !strings.Contains(buf.String(), "level=WARN msg=\"max-connections lowered") {
		t.Errorf("no warning: %q", buf.String())
	}
}
