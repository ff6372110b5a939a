//go:build linux

package preflight

import (
	"net"
	"os"
	"path/filepath"
	"testing"

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

// TestLacksSysResourceHere checks the reading of this process's own status.
func TestLacksSysResourceHere(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	assert.NilError(t, err)
	want, ok := StatusLacksSysResource(string(status))
	assert.Assert(t, ok, "no CapBnd in /proc/self/status")
	assert.Equal(t, LacksSysResource(), want)
	t.Logf("CAP_SYS_RESOURCE missing from the bounding set: %v", want)
}
