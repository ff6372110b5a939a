package gpustest_test

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

func TestLoadFakeSpec(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{name: "example", json: `{"driver_version": "580.95.05", "cuda_version": "13.0",
 "gpus": [{"uuid": "GPU-a", "name": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:18:00.0",
           "memory_total_mib": 81559, "memory_used_mib": 0, "utilization_percent": 0,
           "temperature_c": 31, "power_w": 70, "numa_node": 0, "nvlink_peers": [1],
           "processes": [{"pid": 4242, "used_memory_mib": 1024}]},
          {"uuid": "GPU-b", "name": "NVIDIA H100 80GB HBM3", "nvlink_peers": [0], "errors": {"temperature": "ERROR_UNKNOWN"}}]}`},
		{name: "minimal", json: `{"gpus": [{"uuid": "GPU-a", "name": "T4"}]}`},
		{name: "not json", json: `{`, wantErr: "invalid spec"},
		{name: "unknown field", json: `{"gpus": [{"uuid": "GPU-a", "name": "T4", "temp": 3}]}`, wantErr: `unknown field "temp"`},
		{name: "no uuid", json: `{"gpus": [{"name": "T4"}]}`, wantErr: "gpus[0]: uuid and name are required"},
		{name: "bad peer", json: `{"gpus": [{"uuid": "GPU-a", "name": "T4", "nvlink_peers": [1]}]}`, wantErr: "nvlink peer 1"},
		{name: "bad error name", json: `{"gpus": [{"uuid": "GPU-a", "name": "T4", "errors": {"power": "OOPS"}}]}`, wantErr: `unknown NVML return "OOPS"`},
		{name: "bad cuda", json: `{"cuda_version": "thirteen", "gpus": []}`, wantErr: "want MAJOR.MINOR"},
		{name: "bad init error", json: `{"init_error": "NOPE", "gpus": []}`, wantErr: "init_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nvml.json")
			assert.NilError(t, os.WriteFile(path, []byte(tc.json), 0o600))
			spec, err := gpustest.LoadSpec(path)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.ErrorContains(t, err, "fake NVML")
				return
			}
			assert.NilError(t, err)
			inv, err := gpus.Load(gpustest.NewLibrary(spec))
			assert.NilError(t, err)
			assert.Equal(t, len(inv.Devices), len(spec.GPUs))
		})
	}
	_, err := gpustest.LoadSpec(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorContains(t, err, "fake NVML: cannot read spec")
}

func TestFakeInitError(t *testing.T) {
	_, err := gpus.Load(gpustest.NewLibrary(gpustest.Spec{InitError: "ERROR_LIBRARY_NOT_FOUND"}))
	assert.ErrorContains(t, err, "cannot load libnvidia-ml.so.1")
}

func TestFakeLookups(t *testing.T) {
	lib := gpustest.NewLibrary(gpustest.FourH100())
	d, ret := lib.DeviceGetHandleByUUID("GPU-cccccccc-1111-2222-3333-444455556666")
	assert.Equal(t, ret.Error(), "SUCCESS")
	i, _ := d.GetIndex()
	assert.Equal(t, i, 2)
	d, _ = lib.DeviceGetHandleByPciBusId("0000:5d:00.0")
	i, _ = d.GetIndex()
	assert.Equal(t, i, 3)
	_, ret = lib.DeviceGetHandleByUUID("GPU-nope")
	assert.Equal(t, ret.Error(), "ERROR_NOT_FOUND")
}

func TestFakeMIGValidation(t *testing.T) {
	good := gpustest.MIGA100s()
	assert.NilError(t, good.Validate())
	tests := []struct {
		name   string
		change func(s *gpustest.Spec)
		err    string
	}{
		{name: "MIG devices without MIG mode", change: func(s *gpustest.Spec) { s.GPUs[1].MIGEnabled = false }, err: "mig_devices need mig_enabled"},
		{name: "no profile", change: func(s *gpustest.Spec) { s.GPUs[1].MIGDevices[0].Profile = "" }, err: "uuid and profile are required"},
		{name: "not a profile", change: func(s *gpustest.Spec) { s.GPUs[1].MIGDevices[0].Profile = "small" }, err: `profile "small"`},
		{name: "memory that names another profile", change: func(s *gpustest.Spec) { s.GPUs[1].MIGDevices[0].MemoryTotalMiB = 19968 },
			err: "memory_total_mib 19968 on a 81920 MiB GPU makes profile 1g.20gb, not 1g.10gb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := gpustest.MIGA100s()
			tc.change(&s)
			assert.ErrorContains(t, s.Validate(), tc.err)
		})
	}
}
