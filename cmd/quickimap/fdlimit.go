package main

import "log/slog"

// fdHeadroom is the number of file descriptors kept for what is not a
// client connection: listeners, the store's database files (the writer and
// the read pool, each with its -wal and -shm), message files open for
// FETCH and APPEND, the log, and the server's spare descriptor (see
// server.Server's accept loop).
const fdHeadroom = 256

// fdLimit is the process's limit on open files, as getrlimit reports it.
type fdLimit struct {
	soft, hard uint64
}

// fitConnections returns the connection cap that fits in the file
// descriptor limit soft: maxConns if maxConns + fdHeadroom fit, else what
// does (at least half the limit when it is too small for the headroom),
// and whether it had to be lowered.
func fitConnections(maxConns int, soft uint64) (int, bool) {
	if uint64(maxConns)+fdHeadroom <= soft {
		return maxConns, false
	}
	fit := soft / 2
	if soft > 2*fdHeadroom {
		fit = soft - fdHeadroom
	}
	return int(max(fit, 1)), true
}

// checkFDLimit raises the soft limit on open files to the hard one where
// the system allows it (Go does so at start on most systems already) and
// returns the connection cap that fits in it, logging a warning when
// max-connections had to be lowered: at the limit, accept fails and new
// clients would get no greeting at all.
func checkFDLimit(maxConns int, log *slog.Logger) int {
	lim, err := raiseFDLimit()
	if err != nil {
		log.Warn("cannot read or raise the limit on open files", "err", err)
		return maxConns
	}
	n, lowered := fitConnections(maxConns, lim.soft)
	if lowered {
		log.Warn("max-connections lowered to fit the limit on open files; raise the limit (ulimit -n, systemd LimitNOFILE=) to allow more",
			"max_connections", maxConns, "effective", n, "open_files_limit", lim.soft, "hard_limit", lim.hard, "headroom", fdHeadroom)
	} else {
		log.Debug("limit on open files", "soft", lim.soft, "hard", lim.hard, "max_connections", maxConns)
	}
	return n
}
