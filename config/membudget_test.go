package config

import (
	"strings"
	"testing"
)

func TestMemoryBudgetKeys(t *testing.T) {
	c := Default()
	if c.MemoryBudget != 0 || c.SpoolLiteral != 1<<20 || c.SpoolDir != "" {
		t.Errorf("defaults: memory-budget %d, spool-literal %d, spool-dir %q", c.MemoryBudget, c.SpoolLiteral, c.SpoolDir)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("memory-budget 0 (automatic) refused: %v", err)
	}
	in := "memory-budget = 512MiB\nspool-literal = 4 MiB\nspool-dir = /var/spool/quickimap\n"
	if err := c.Parse(strings.NewReader(in), "f.conf"); err != nil {
		t.Fatal(err)
	}
	if c.MemoryBudget != 512<<20 || c.SpoolLiteral != 4<<20 || c.SpoolDir != "/var/spool/quickimap" {
		t.Errorf("parsed: memory-budget %d, spool-literal %d, spool-dir %q", c.MemoryBudget, c.SpoolLiteral, c.SpoolDir)
	}
	for key, want := range map[string]string{"memory-budget": "512MiB", "spool-literal": "4MiB", "spool-dir": "/var/spool/quickimap"} {
		if got, err := c.Get(key); err != nil || got != want {
			t.Errorf("Get(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	c.MemoryBudget = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "memory-budget") {
		t.Errorf("negative memory-budget: %v", err)
	}
	c = Default()
	c.SpoolLiteral = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "spool-literal") {
		t.Errorf("spool-literal 0: %v", err)
	}
}
