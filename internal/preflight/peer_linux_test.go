//go:build linux

package preflight

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"gotest.tools/v3/assert"
)

func TestSocketPeerPID(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	assert.NilError(t, err)
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()

	pid, ok := socketPeerPID("unix://" + sock)
	assert.Assert(t, ok)
	assert.Equal(t, pid, os.Getpid())

	// This test binary is no dockerd: its PATH is not taken for the daemon's.
	_, ok = DaemonPATH("unix://" + sock)
	assert.Assert(t, !ok)

	for _, host := range []string{"tcp://127.0.0.1:2375", "ssh://me@box", "unix://" + filepath.Join(t.TempDir(), "none.sock")} {
		_, ok := socketPeerPID(host)
		assert.Assert(t, !ok, host)
	}
}

// TestLacksSysResourceHere compares the reading of /proc/self/status with
// what the kernel answers for the bounding set directly (PR_CAPBSET_READ).
func TestLacksSysResourceHere(t *testing.T) {
	inSet, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(unix.CAP_SYS_RESOURCE), 0, 0, 0)
	assert.NilError(t, err)
	assert.Equal(t, LacksSysResource(), inSet == 0)
	t.Logf("CAP_SYS_RESOURCE missing from the bounding set: %v", inSet == 0)
}
