package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseClientLimits(t *testing.T) {
	c := Default()
	if c.MaxConnectionsPerIP != 100 || c.LimitLoopback || c.MinRate != 256 || c.MinRateWindow != time.Minute {
		t.Errorf("defaults: per-ip %d, limit-loopback %v, min-rate %d, window %v",
			c.MaxConnectionsPerIP, c.LimitLoopback, c.MinRate, c.MinRateWindow)
	}
	const file = `
max-connections-per-ip = 20
limit-loopback = yes
min-rate = 1KiB
min-rate-window = 45s
`
	if err := c.Parse(strings.NewReader(file), "f"); err != nil {
		t.Fatal(err)
	}
	if c.MaxConnectionsPerIP != 20 || !c.LimitLoopback || c.MinRate != 1024 || c.MinRateWindow != 45*time.Second {
		t.Errorf("parsed: per-ip %d, limit-loopback %v, min-rate %d, window %v",
			c.MaxConnectionsPerIP, c.LimitLoopback, c.MinRate, c.MinRateWindow)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// min-rate 0 turns the minimum off; negative values are refused.
	if err := c.Set("min-rate", "0"); err != nil || c.Validate() != nil {
		t.Errorf("min-rate 0: %v, %v", err, c.Validate())
	}
	for key, v := range map[string]string{"min-rate": "-1", "max-connections-per-ip": "0", "min-rate-window": "0s"} {
		d := Default()
		if err := d.Set(key, v); err == nil && d.Validate() == nil {
			t.Errorf("%s = %s accepted", key, v)
		}
	}
}
