//go:build !linux

package preflight

import "errors"

// MemlockHardLimit is only known on linux.
func MemlockHardLimit() (int64, error) {
	return 0, errors.New("memlock limit: not supported on this platform")
}
