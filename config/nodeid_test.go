package config

import (
	"strings"
	"testing"
)

// node-id takes a printable name without blanks of bounded length; empty
// keeps the default (derived by serve), and the key survives String/Parse.
func TestNodeIDKey(t *testing.T) {
	c := Default()
	if c.NodeID != "" {
		t.Fatalf("default node-id %q, want empty", c.NodeID)
	}
	for _, ok := range []string{"mail1:143", "node-a", "mail1.example.org:993", "nœud-1", strings.Repeat("a", MaxNodeIDLen)} {
		c := Default()
		if err := c.Set("node-id", "  "+ok+" "); err != nil {
			t.Errorf("Set(%q): %v", ok, err)
			continue
		}
		if c.NodeID != ok {
			t.Errorf("NodeID = %q, want %q", c.NodeID, ok)
		}
		var back Config = Default()
		if err := back.Parse(strings.NewReader(c.String()), "t"); err != nil || back.NodeID != ok {
			t.Errorf("round trip of %q: %q, %v", ok, back.NodeID, err)
		}
	}
	for _, bad := range []string{"two words", "tab\there", "nul\x00", "bell\a", "\xff\xfe", strings.Repeat("a", MaxNodeIDLen+1)} {
		c := Default()
		err := c.Set("node-id", bad)
		if err == nil {
			t.Errorf("Set(%q) accepted, NodeID %q", bad, c.NodeID)
		} else if !strings.HasPrefix(err.Error(), "node-id: ") {
			t.Errorf("Set(%q) error %q does not name the key", bad, err)
		}
	}
	if err := c.Set("node-id", ""); err != nil || c.NodeID != "" {
		t.Errorf("empty node-id: %q, %v", c.NodeID, err)
	}
	if err := ValidNodeID(""); err == nil {
		t.Error("ValidNodeID accepts an empty name")
	}
}
