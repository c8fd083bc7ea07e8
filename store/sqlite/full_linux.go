package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// freeSpace returns the bytes of the file system of dir that an
// unprivileged process may use.
func freeSpace(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}

// allocate gives f size bytes of real blocks without writing them; false
// when the file system cannot (the caller writes zeros instead).
func allocate(f *os.File, size int64) (bool, error) {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return false, nil
	}
	return err == nil, err
}
