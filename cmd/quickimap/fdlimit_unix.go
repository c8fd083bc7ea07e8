//go:build unix

package main

import "syscall"

// raiseFDLimit raises the soft limit on open files to the hard one, if it
// is lower, and returns the limits in force.
func raiseFDLimit() (fdLimit, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fdLimit{}, err
	}
	if l.Cur < l.Max {
		want := l
		want.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			l = want
		} else if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return fdLimit{}, err
		}
	}
	return fdLimit{soft: uint64(l.Cur), hard: uint64(l.Max)}, nil
}
