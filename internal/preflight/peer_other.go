//go:build !linux

package preflight

// socketPeerPID is only known on linux.
func socketPeerPID(string) (int, bool) { return 0, false }
