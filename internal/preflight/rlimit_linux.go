//go:build linux

package preflight

import "golang.org/x/sys/unix"

// MemlockHardLimit returns this process's hard RLIMIT_MEMLOCK in bytes, -1
// when unlimited: for a rootless daemon started by the same user, the most
// it can grant a container.
func MemlockHardLimit() (int64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		return 0, err
	}
	if rl.Max == unix.RLIM_INFINITY {
		return -1, nil
	}
	return int64(rl.Max), nil
}
