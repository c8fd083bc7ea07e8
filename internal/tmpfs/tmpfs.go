// Package tmpfs mounts a size-limited tmpfs for tests that fill a disk.
package tmpfs

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory and
// returns it; the test's cleanup unmounts it. It skips the test, saying
// why, when it is not running as root on Linux or the mount fails.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("needs a size-limited tmpfs: Linux only (this is %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs a size-limited tmpfs: run as root to mount one")
	}
	dir, err := os.MkdirTemp("", "quickimap-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		os.Remove(dir)
		t.Skipf("needs a size-limited tmpfs: mount failed: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			return
		}
		os.Remove(dir)
	})
	return dir
}
