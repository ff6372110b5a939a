package preflight

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ngc"
)

// ngcEnv is an NGC framework image's environment as its release sets it:
// NVIDIA_REQUIRE_CUDA says nothing, CUDA_DRIVER_VERSION is the real need.
func ngcEnv(minDriver string, compat bool) []string {
	env := []string{"NVIDIA_REQUIRE_CUDA=cuda>=9.0", "CUDA_VERSION=12.8.0.038", "CUDA_DRIVER_VERSION=" + minDriver}
	if compat {
		env = append(env, "_CUDA_COMPAT_PATH=/usr/local/cuda/compat")
	}
	return env
}

func TestCheckImageDriver(t *testing.T) {
	table, err := ngc.Default()
	assert.NilError(t, err)
	pt, _ := table.Image("pytorch")
	newest := table.ReleasesOf(pt)[len(table.ReleasesOf(pt))-1]
	ref := pt.Ref(newest)
	need := newest.MinDriver.String()
	// A driver one branch older than the newest release needs.
	older := "535.129.03"
	tests := []struct {
		name       string
		ref        string
		env        []string
		driver     string
		dataCenter ngc.Tri
		envOver    []string
		level      Level
		contains   []string
	}{
		{name: "native", ref: ref, env: ngcEnv(need, true), driver: "999.1", dataCenter: ngc.TriNo, level: OK},
		{name: "GeForce below the minimum", ref: ref, env: ngcEnv(need, true), driver: older, dataCenter: ngc.TriNo, level: Fail,
			contains: []string{"image " + ref + " needs NVIDIA driver " + need + " or newer (CUDA_DRIVER_VERSION), and this host has " + older, "cannot run it through CUDA forward compatibility", "use nvcr.io/nvidia/pytorch:", "the newest pytorch release that driver " + older + " runs natively, or install NVIDIA driver " + need}},
		{name: "data centre with compat libraries", ref: ref, env: ngcEnv(need, true), driver: older, dataCenter: ngc.TriYes, level: Warn,
			contains: []string{"runs in CUDA forward-compatibility mode", "to run natively: use nvcr.io/nvidia/pytorch:"}},
		{name: "data centre without compat libraries", ref: ref, env: ngcEnv(need, false), driver: older, dataCenter: ngc.TriYes, level: Fail,
			contains: []string{"ships no CUDA forward-compatibility libraries"}},
		{name: "mixed GPUs: a warning, never a refusal", ref: ref, env: ngcEnv(need, true), driver: older, dataCenter: ngc.TriUnknown, level: Warn,
			contains: []string{"this host's GPUs are not all known to be"}},
		{name: "an image built FROM it", ref: "myproject", env: ngcEnv(need, true), driver: older, dataCenter: ngc.TriNo, level: Fail,
			contains: []string{"build FROM an NGC release that driver " + older + " runs natively ('docker perceptron ngc' lists them)"}},
		{name: "NVIDIA_DISABLE_REQUIRE", ref: ref, env: ngcEnv(need, true), driver: older, dataCenter: ngc.TriNo, envOver: []string{"NVIDIA_DISABLE_REQUIRE=1"}},
		{name: "not an NGC image", ref: "nvidia/cuda:12.8.1-base", env: []string{"CUDA_VERSION=12.8.1"}, driver: older, dataCenter: ngc.TriNo},
		{name: "driver unknown", ref: ref, env: ngcEnv(need, true), dataCenter: ngc.TriNo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{GPURequested: true, GPUChoice: true, HostDriver: tc.driver, HostDataCenter: tc.dataCenter,
				Image: &ImageInfo{Ref: tc.ref, Env: tc.env}, Env: tc.envOver}
			got := checkImageDriver(in)
			if tc.level == OK && len(tc.contains) == 0 && (tc.driver == "" || len(tc.envOver) > 0 || tc.ref == "nvidia/cuda:12.8.1-base") {
				assert.Check(t, is.Len(got, 0))
				return
			}
			assert.Assert(t, is.Len(got, 1))
			assert.Check(t, is.Equal(got[0].Level, tc.level), got[0].Line())
			for _, want := range tc.contains {
				assert.Check(t, is.Contains(got[0].Line(), want))
			}
		})
	}
}

func TestNgcFinding(t *testing.T) {
	for driver, want := range map[string]string{
		"550.54.15": "newest NGC releases driver 550.54.15 runs natively: nvcr.io/nvidia/pytorch:24.05-py3",
		"470.57.02": "no NGC framework release in docker perceptron's table runs natively on driver 470.57.02",
	} {
		f, ok := ngcFinding(gpus.Inventory{DriverVersion: driver})
		assert.Check(t, ok)
		assert.Check(t, is.Contains(f.Detail, want))
	}
	f, _ := ngcFinding(gpus.Inventory{DriverVersion: "550.54.15"})
	assert.Check(t, is.Equal(f.Message, "newest native NGC releases: pytorch 24.05, tritonserver 24.05"))
	_, ok := ngcFinding(gpus.Inventory{})
	assert.Check(t, !ok, "no driver version: nothing to say")
}
