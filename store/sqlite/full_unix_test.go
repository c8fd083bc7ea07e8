//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestIsFullErrno(t *testing.T) {
	if !isFull(&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}) || !isFull(fmt.Errorf("a: %w", syscall.EDQUOT)) ||
		isFull(errors.New("database or disk is full")) || isFull(syscall.EIO) {
		t.Error("isFull misjudges errno errors")
	}
}
