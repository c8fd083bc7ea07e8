package loadgen

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports (the kernel converts to it for
// userspace whatever its internal HZ).
const clockTicks = 100

// procStat is what the generator reads of one /proc/PID/stat.
type procStat struct {
	pid, ppid int
	// cpu is utime+stime+cutime+cstime in clock ticks: the process's own
	// CPU time and that of its children it has waited for.
	cpu int64
}

// readProcStat parses /proc/PID/stat (proc(5)).
func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (procStat, bool) {
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parens,
	// so fields are counted from the last ')'.
	open := bytes.IndexByte(b, '(')
	j := bytes.LastIndexByte(b, ')')
	if open < 1 || j < open {
		return procStat{}, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, false
	}
	f := bytes.Fields(b[j+1:])
	// f[0] is field 3 (state); field n is f[n-3]: ppid 4, utime 14,
	// stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return procStat{}, false
	}
	num := func(n int) int64 {
		v, _ := strconv.ParseInt(string(f[n-3]), 10, 64)
		return v
	}
	return procStat{pid: pid, ppid: int(num(4)), cpu: num(14) + num(15) + num(16) + num(17)}, true
}

// treeCPU returns the CPU seconds used so far by the processes roots and
// all their descendants, and how many processes that is. Each live
// process counts its own time and that of the children it has reaped, so
// a process that has exited counts once, in its parent's; a process that
// exited before the tree was first measured makes no difference to a
// difference of two measurements.
func treeCPU(roots []int) (seconds float64, procs int, err error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	stats := make(map[int]procStat, len(ents))
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readProcStat(pid)
		if !ok {
			continue
		}
		stats[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	seen := map[int]bool{}
	var ticks int64
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		ticks += stats[pid].cpu
		for _, ch := range children[pid] {
			walk(ch)
		}
	}
	for _, r := range roots {
		if _, ok := stats[r]; !ok {
			return 0, 0, &os.PathError{Op: "read", Path: "/proc/" + strconv.Itoa(r) + "/stat", Err: os.ErrNotExist}
		}
		walk(r)
	}
	return float64(ticks) / clockTicks, len(seen), nil
}

// selfCPU returns the CPU seconds this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
