package dovecottest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,            // so that Stop reaches every child
		Pdeathsig:  syscall.SIGTERM, // a dying test binary takes dovecot along
		Credential: cred,
	}
}

// groupProcs describes the processes of group pgid, for diagnostics.
func groupProcs(pgid int) string {
	var b strings.Builder
	scanGroup(pgid, func(pid int, state, comm string) bool {
		b.WriteString(" " + strconv.Itoa(pid) + comm + ":" + state)
		return true
	})
	return b.String()
}

// childrenAlive reports whether a process other than pgid itself in
// process group pgid is alive (not a zombie).
func childrenAlive(pgid int) bool {
	alive := false
	scanGroup(pgid, func(pid int, state, _ string) bool {
		if pid != pgid && state != "Z" && state != "X" {
			alive = true
			return false
		}
		return true
	})
	return alive
}

// scanGroup calls fn for each process of group pgid while fn returns true.
func scanGroup(pgid int, fn func(pid int, state, comm string) bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		st := string(b)
		i, j := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(st[j+1:])
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid && !fn(pid, f[0], st[i:j+1]) {
			return
		}
	}
}
