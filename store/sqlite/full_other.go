//go:build !unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

func isNoSpaceErrno(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// freeSpace is unknown here: the reserve is simply written back to see.
func freeSpace(dir string) (uint64, bool) { return 0, false }

func allocate(f *os.File, size int64) (bool, error) { return false, nil }
