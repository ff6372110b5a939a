package preflight

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gotest.tools/v3/assert"
)

func TestStatusLacksSysResource(t *testing.T) {
	const head = "Name:\tcat\nUmask:\t0022\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
	testCases := []struct {
		name      string
		status    string
		wantLacks bool
		wantOK    bool
	}{
		{name: "full set", status: head + "CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n", wantOK: true},
		// What this sandbox has: every capability but CAP_SYS_RESOURCE (bit 24).
		{name: "without CAP_SYS_RESOURCE", status: head + "CapBnd:\t000001fffeffffff\n", wantLacks: true, wantOK: true},
		// Docker's default set for containers.
		{name: "docker default", status: "CapBnd:\t00000000a80425fb\n", wantLacks: true, wantOK: true},
		{name: "only CAP_SYS_RESOURCE", status: "CapBnd:\t0000000001000000", wantOK: true},
		{name: "no line", status: head},
		{name: "garbage", status: "CapBnd:\tzz\n"},
		{name: "empty", status: ""},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			lacks, ok := StatusLacksSysResource(tc.status)
			assert.Equal(t, lacks, tc.wantLacks)
			assert.Equal(t, ok, tc.wantOK)
		})
	}
}

func TestProcessPATH(t *testing.T) {
	root := t.TempDir()
	proc := func(pid int, comm, environ string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		assert.NilError(t, os.Mkdir(dir, 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644))
		if environ != "" {
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "environ"), []byte(environ), 0o400))
		}
	}
	proc(10, "dockerd", "HOME=/root\x00PATH=/opt/hook:/usr/bin\x00LANG=C\x00")
	proc(11, "dockerd", "HOME=/root\x00")
	proc(1, "systemd", "PATH=/usr/bin\x00") // socket activation: systemd listens
	proc(12, "dockerd", "")                 // environ unreadable

	testCases := []struct {
		pid      int
		wantPath string
		wantOK   bool
	}{
		{pid: 10, wantPath: "/opt/hook:/usr/bin", wantOK: true},
		{pid: 11, wantPath: "", wantOK: true},
		{pid: 1},
		{pid: 12},
		{pid: 99},
	}
	for _, tc := range testCases {
		path, ok := processPATH(root, tc.pid)
		assert.Equal(t, path, tc.wantPath, "pid %d", tc.pid)
		assert.Equal(t, ok, tc.wantOK, "pid %d", tc.pid)
	}
}
