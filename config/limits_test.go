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
	if c.LoginThrottleFailures != 5 || c.LoginThrottleWindow != 15*time.Minute || c.LoginThrottleDelay != time.Second || c.LoginThrottleMaxDelay != 30*time.Second {
		t.Errorf("throttle defaults: %d, %v, %v, %v", c.LoginThrottleFailures, c.LoginThrottleWindow, c.LoginThrottleDelay, c.LoginThrottleMaxDelay)
	}
	const file = `
login-throttle-failures = 10
login-throttle-window = 1h
login-throttle-delay = 500ms
login-throttle-max-delay = 1m
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
	if c.LoginThrottleFailures != 10 || c.LoginThrottleWindow != time.Hour || c.LoginThrottleDelay != 500*time.Millisecond || c.LoginThrottleMaxDelay != time.Minute {
		t.Errorf("throttle parsed: %d, %v, %v, %v", c.LoginThrottleFailures, c.LoginThrottleWindow, c.LoginThrottleDelay, c.LoginThrottleMaxDelay)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if err := c.Set("login-throttle-failures", "0"); err != nil || c.Validate() != nil {
		t.Errorf("login-throttle-failures 0: %v, %v", err, c.Validate())
	}
	// min-rate 0 turns the minimum off; negative values are refused.
	if err := c.Set("min-rate", "0"); err != nil || c.Validate() != nil {
		t.Errorf("min-rate 0: %v, %v", err, c.Validate())
	}
	for key, v := range map[string]string{"min-rate": "-1", "login-throttle-failures": "-1", "login-throttle-max-delay": "0s", "max-connections-per-ip": "0", "min-rate-window": "0s"} {
		d := Default()
		if err := d.Set(key, v); err == nil && d.Validate() == nil {
			t.Errorf("%s = %s accepted", key, v)
		}
	}
}
