package preflight

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

type fakeAPI struct {
	info    system.Info
	pingErr error
	infoErr error
}

func (f fakeAPI) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{APIVersion: "1.52"}, f.pingErr
}

func (f fakeAPI) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: f.info}, f.infoErr
}

// The real client must keep satisfying API.
var _ API = (client.APIClient)(nil)

const nvidiaSpecYAML = `---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
kind: nvidia.com/gpu
devices:
- name: "0"
`

func TestDaemonFacts(t *testing.T) {
	cdiDir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(cdiDir, "nvidia.yaml"), []byte(nvidiaSpecYAML), 0o644))
	info := system.Info{
		ServerVersion:   "29.0.1",
		OperatingSystem: "Ubuntu 24.04.3 LTS",
		CgroupDriver:    "systemd",
		CgroupVersion:   "2",
		DefaultRuntime:  "runc",
		Runtimes:        map[string]system.RuntimeWithStatus{"runc": {}, "nvidia": {}, "io.containerd.runc.v2": {}},
		SecurityOptions: []string{"name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"},
		CDISpecDirs:     []string{cdiDir, filepath.Join(cdiDir, "missing")},
		DiscoveredDevices: []system.DeviceInfo{
			{Source: "cdi", ID: "nvidia.com/gpu=0"},
			{Source: "cdi", ID: "vendor.com/fpga=0"},
		},
	}

	t.Run("local", func(t *testing.T) {
		d, err := DaemonFacts(t.Context(), fakeAPI{info: info}, "unix:///run/user/1000/docker.sock")
		assert.NilError(t, err)
		assert.DeepEqual(t, d, DaemonInfo{
			ServerVersion: "29.0.1", APIVersion: "1.52", OperatingSystem: "Ubuntu 24.04.3 LTS",
			Local: true, Rootless: true,
			Runtimes:       []string{"io.containerd.runc.v2", "nvidia", "runc"},
			DefaultRuntime: "runc",
			CDISpecDirs:    info.CDISpecDirs,
			CDIDevices:     []string{"nvidia.com/gpu=0"},
			NvidiaCDISpecs: []string{filepath.Join(cdiDir, "nvidia.yaml")},
			NvidiaCDINames: []string{"0"},
			CgroupDriver:   "systemd", CgroupVersion: "2",
		})
	})

	t.Run("remote: CDI dirs not read", func(t *testing.T) {
		d, err := DaemonFacts(t.Context(), fakeAPI{info: info}, "ssh://gpu-box")
		assert.NilError(t, err)
		assert.Assert(t, !d.Local)
		assert.Assert(t, is.Len(d.NvidiaCDISpecs, 0))
	})

	t.Run("docker desktop is not local", func(t *testing.T) {
		desktop := info
		desktop.OperatingSystem = "Docker Desktop"
		d, err := DaemonFacts(t.Context(), fakeAPI{info: desktop}, "unix:///var/run/docker.sock")
		assert.NilError(t, err)
		assert.Assert(t, !d.Local)
	})

	t.Run("unreachable", func(t *testing.T) {
		boom := errors.New("connection refused")
		_, err := DaemonFacts(t.Context(), fakeAPI{pingErr: boom}, "")
		assert.ErrorIs(t, err, boom)
		assert.ErrorContains(t, err, "the default socket")
		_, err = DaemonFacts(t.Context(), fakeAPI{infoErr: boom}, "tcp://192.0.2.1:2376")
		assert.ErrorIs(t, err, boom)
		assert.ErrorContains(t, err, "tcp://192.0.2.1:2376")
	})
}

func TestIsLocalHost(t *testing.T) {
	for host, want := range map[string]bool{
		"":                                 true,
		"unix:///var/run/docker.sock":      true,
		"npipe:////./pipe/docker_engine":   true,
		"fd://":                            true,
		"tcp://127.0.0.1:2375":             true,
		"tcp://localhost:2375":             true,
		"tcp://[::1]:2375":                 true,
		"tcp://198.51.100.3:2376":          false,
		"tcp://gpu-box.example.com:2376":   false,
		"ssh://me@gpu-box":                 false,
		"ssh://me@127.0.0.1":               false, // another sshd, maybe a VM's
		"::not a url":                      false,
		"https://127.0.0.1:2376":           true,
		"tcp://127.0.0.1.example.com:2376": false,
	} {
		assert.Equal(t, IsLocalHost(host), want, host)
	}
}

func TestLookupHook(t *testing.T) {
	empty, withHook, notExec := t.TempDir(), t.TempDir(), t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(withHook, HookName), []byte("#!/bin/sh\n"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(notExec, HookName), []byte("#!/bin/sh\n"), 0o644))
	assert.NilError(t, os.Mkdir(filepath.Join(empty, HookName), 0o755)) // a directory is no hook

	testCases := []struct {
		name string
		path string
		want bool
	}{
		{name: "empty PATH", path: ""},
		{name: "not found", path: empty},
		{name: "found second", path: empty + string(os.PathListSeparator) + withHook, want: true},
		{name: "not executable", path: notExec},
		{name: "empty entries", path: string(os.PathListSeparator) + withHook, want: true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, LookupHook(tc.path), tc.want)
		})
	}
}

func TestScanCDIDirs(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	write := func(dir, name, content string) string {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	yaml := write(dir, "nvidia.yaml", nvidiaSpecYAML)
	json := write(other, "gpu.json", `{"cdiVersion":"0.6.0","kind": "nvidia.com/gpu","devices":[{"name":"all"}]}`)
	write(dir, "intel.yaml", "cdiVersion: 0.6.0\nkind: intel.com/gpu\n")
	write(dir, "nvidia-mig.yml", "cdiVersion: 0.6.0\nkind: 'nvidia.com/mig'\n")
	write(dir, "notes.txt", "kind: nvidia.com/gpu\n")
	write(dir, "quoted.yml", "cdiVersion: 0.6.0\nkind: \"nvidia.com/gpu\"\n")
	assert.NilError(t, os.Symlink(yaml, filepath.Join(other, "link.yaml")))

	got := ScanCDIDirs([]string{dir, filepath.Join(dir, "missing"), other})
	assert.DeepEqual(t, got, []string{
		yaml,
		filepath.Join(dir, "quoted.yml"),
		json,
		filepath.Join(other, "link.yaml"),
	})
	assert.Assert(t, is.Len(ScanCDIDirs(nil), 0))
}

func TestNvidiaDevCharLinks(t *testing.T) {
	dev := t.TempDir()
	assert.Assert(t, !NvidiaDevCharLinks(dev)) // no char dir
	assert.NilError(t, os.Mkdir(filepath.Join(dev, "char"), 0o755))
	assert.NilError(t, os.Symlink("../sda", filepath.Join(dev, "char", "8:0")))
	assert.Assert(t, !NvidiaDevCharLinks(dev))
	assert.NilError(t, os.Symlink("../nvidia0", filepath.Join(dev, "char", "195:0")))
	assert.Assert(t, NvidiaDevCharLinks(dev))
}
