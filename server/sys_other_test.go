//go:build !unix

package server_test

import "time"

func raiseFDLimit(need uint64) error { return nil }

func processCPU() (time.Duration, bool) { return 0, false }
