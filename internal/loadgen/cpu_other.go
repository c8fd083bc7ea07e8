//go:build !linux

package loadgen

import "errors"

// treeCPU needs /proc.
func treeCPU(roots []int) (float64, int, error) {
	return 0, 0, errors.New("measuring a server's CPU time needs Linux's /proc")
}

// selfCPU is not measured here.
func selfCPU() float64 { return 0 }
