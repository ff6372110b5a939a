package preflight

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

func TestGPUsByCDI(t *testing.T) {
	cdi := []string{"nvidia.com/gpu=0"}
	tests := []struct {
		name string
		d    DaemonInfo
		want bool
	}{
		{name: "CDI only", d: DaemonInfo{Local: true, CDIDevices: cdi}, want: true},
		{name: "CDI spec files only", d: DaemonInfo{Local: true, NvidiaCDISpecs: []string{"/etc/cdi/nvidia.yaml"}}, want: true},
		{name: "CDI and the nvidia runtime", d: DaemonInfo{Local: true, CDIDevices: cdi, Runtimes: []string{"nvidia", "runc"}}},
		{name: "CDI and the hook on dockerd's PATH", d: DaemonInfo{Local: true, CDIDevices: cdi, HookOnPath: true}},
		{name: "CDI and the hook on the user's PATH only: a guess", d: DaemonInfo{Local: true, CDIDevices: cdi, HookOnPath: true, HookPathUnread: true}, want: true},
		{name: "hook only", d: DaemonInfo{Local: true, HookOnPath: true}},
		{name: "nothing", d: DaemonInfo{Local: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.d.GPUsByCDI(), tc.want)
		})
	}
}

func TestCDISpecDevices(t *testing.T) {
	dir := t.TempDir()
	yamlSpec := filepath.Join(dir, "nvidia.yaml")
	assert.NilError(t, os.WriteFile(yamlSpec, []byte(`cdiVersion: 0.5.0
containerEdits:
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: GPU-aaaa
- name: all
kind: nvidia.com/gpu
`), 0o644))
	jsonSpec := filepath.Join(dir, "nvidia.json")
	assert.NilError(t, os.WriteFile(jsonSpec, []byte(`{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[{"name":"MIG-bbbb","containerEdits":{}}]}`), 0o644))
	broken := filepath.Join(dir, "broken.yaml")
	assert.NilError(t, os.WriteFile(broken, []byte("devices: [\n"), 0o644))

	got := CDISpecDevices([]string{yamlSpec, jsonSpec, broken, filepath.Join(dir, "missing.yaml")})
	assert.DeepEqual(t, got, []string{"0", "GPU-aaaa", "all", "MIG-bbbb"})
}

func TestCDICoverage(t *testing.T) {
	inv := gpus.Inventory{Devices: []gpus.Device{
		{Index: 0, UUID: "GPU-aaaa"},
		{Index: 1, UUID: "GPU-cccc", MIGEnabled: true, MIG: []gpus.MIGDevice{
			{Index: 0, UUID: "MIG-bbbb", Profile: "1g.10gb"},
			{Index: 1, UUID: "MIG-dddd", Profile: "3g.40gb"},
		}},
	}}
	all := []string{"nvidia.com/gpu=GPU-aaaa", "nvidia.com/gpu=gpu-cccc", "nvidia.com/gpu=MIG-bbbb"}
	tests := []struct {
		name    string
		d       DaemonInfo
		skipped bool
		level   Level
		msg     string
	}{
		{name: "no CDI: nothing to check", d: DaemonInfo{Local: true}, skipped: true},
		{name: "remote daemon", d: DaemonInfo{CDIDevices: all}, skipped: true},
		{name: "every device listed, from docker info and the spec files", d: DaemonInfo{Local: true, CDIDevices: all, NvidiaCDINames: []string{"MIG-dddd"}},
			level: OK, msg: "the CDI spec lists all 4 GPU devices by UUID"},
		{name: "by index only, and a MIG device made after the spec", d: DaemonInfo{Local: true, CDIDevices: []string{"nvidia.com/gpu=0", "nvidia.com/gpu=1", "nvidia.com/gpu=GPU-cccc", "nvidia.com/gpu=MIG-bbbb"}},
			level: Warn, msg: "the CDI spec does not list GPU 0, MIG 1:1 3g.40gb, which NVML sees"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := CDICoverage(tc.d, inv)
			assert.Equal(t, ok, !tc.skipped)
			if tc.skipped {
				return
			}
			assert.Equal(t, f.Level, tc.level)
			assert.Equal(t, f.Message, tc.msg)
			if f.Level == Warn {
				assert.Equal(t, f.Fix, "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml")
				assert.Check(t, is.Contains(f.Detail, "GPU 0 (GPU-aaaa)"))
				assert.Check(t, is.Contains(f.Detail, cdiGuide))
			}
		})
	}
}
