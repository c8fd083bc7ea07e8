//go:build !linux

package dovecottest

import "syscall"

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// childrenAlive cannot tell elsewhere; Stop then waits for the master.
func childrenAlive(int) bool { return true }

func groupProcs(int) string { return "(unknown)" }
