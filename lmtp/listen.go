package lmtp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"
)

// Listen opens the listener of an LMTP address: "host:port" for TCP, or
// "unix:/path" for a Unix socket, created with the given permission bits
// (who may connect is who may deliver mail, so keep it to the MTA's user
// or group). A socket left at the path by a process that is gone is
// replaced; one that still answers is not.
func Listen(ctx context.Context, addr string, mode fs.FileMode) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		var lc net.ListenConfig
		return lc.Listen(ctx, "tcp", addr)
	}
	if path == "" {
		return nil, errors.New("lmtp: unix: needs a path")
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("lmtp: %s exists and is not a socket", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("lmtp: %s: another server is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("lmtp: removing the stale socket: %w", err)
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	// The socket is created with the umask's bits; set the ones asked
	// for. (Between the two, the umask's narrower bits apply.)
	if err := os.Chmod(path, mode.Perm()); err != nil {
		l.Close()
		return nil, fmt.Errorf("lmtp: setting the socket's mode: %w", err)
	}
	return l, nil
}
