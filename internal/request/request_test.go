package request

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

func TestParseGPUs(t *testing.T) {
	tests := []struct {
		value    string
		want     GPUs
		specific bool
		err      string
	}{
		{value: "auto", want: GPUs{Auto: 1}, specific: true},
		{value: "auto:3", want: GPUs{Auto: 3}, specific: true},
		{value: "none", want: GPUs{None: true}},
		{value: "all", want: GPUs{Docker: "all"}},
		{value: "2", want: GPUs{Docker: "2"}},
		{value: `"device=1,2"`, want: GPUs{Docker: `"device=1,2"`}, specific: true},
		{value: "auto:0", err: `invalid --gpus "auto:0": use auto or auto:N with N a number of GPUs, 1 or more`},
		{value: "auto:two", err: `invalid --gpus "auto:two"`},
		{value: "auto:mig", want: GPUs{Auto: 1, MIG: &alloc.Slices{}}, specific: true},
		{value: "auto:mig:2", want: GPUs{Auto: 2, MIG: &alloc.Slices{}}, specific: true},
		{value: "auto:mig=1g.10gb", want: GPUs{Auto: 1, MIG: &alloc.Slices{Profile: "1g.10gb"}}, specific: true},
		{value: "auto:mig=3G.40GB:3", want: GPUs{Auto: 3, MIG: &alloc.Slices{Profile: "3g.40gb"}}, specific: true},
		{value: "auto:mig=1c.3g.40gb", want: GPUs{Auto: 1, MIG: &alloc.Slices{Profile: "1c.3g.40gb"}}, specific: true},
		{value: "auto:mig>=20g", want: GPUs{Auto: 1, MIG: &alloc.Slices{MinMemoryMiB: 20480}}, specific: true},
		{value: "auto:mig>=512m:2", want: GPUs{Auto: 2, MIG: &alloc.Slices{MinMemoryMiB: 512}}, specific: true},
		{value: "auto:mig=big", err: `invalid --gpus "auto:mig=big": use auto:mig (any free MIG slice), auto:mig=PROFILE`},
		{value: "auto:mig>=lots", err: `invalid --gpus "auto:mig>=lots"`},
		{value: "auto:mig>=0", err: `invalid --gpus "auto:mig>=0"`},
		{value: "auto:mig:0", err: `invalid --gpus "auto:mig:0"`},
		{value: "auto:mig1g", err: `invalid --gpus "auto:mig1g"`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			got, err := ParseGPUs(tc.value)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, got, tc.want)
			assert.Equal(t, got.Specific(), tc.specific)
			assert.Equal(t, got.Requested(), !tc.want.None)
		})
	}
}

func TestParseThresholds(t *testing.T) {
	for value, want := range map[string]uint64{"1g": 1024, "512m": 512, "512MiB": 512, "80g": 81920, "0": 0, "1048576": 1} {
		got, err := ParseMaxMemory(value)
		assert.NilError(t, err, value)
		assert.Check(t, is.Equal(got, want), value)
	}
	for _, bad := range []string{"lots", "-1g", ""} {
		_, err := ParseMaxMemory(bad)
		assert.Check(t, is.ErrorContains(err, "invalid --gpu-max-memory"), bad)
	}
	for value, want := range map[string]int{"10": 10, "10%": 10, "0": 0, "100": 100} {
		got, err := ParseMaxUtil(value)
		assert.NilError(t, err, value)
		assert.Check(t, is.Equal(got, want), value)
	}
	for _, bad := range []string{"101", "-1", "ten", "0.5"} {
		_, err := ParseMaxUtil(bad)
		assert.Check(t, is.ErrorContains(err, "invalid --gpu-max-util"), bad)
	}
}

func TestParseWait(t *testing.T) {
	for value, want := range map[string]Wait{"": {}, "0": {Enabled: true}, "30m": {Enabled: true, Limit: 30 * time.Minute}} {
		got, err := ParseWait(value)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(got, want), value)
	}
	_, err := ParseWait("soon")
	assert.ErrorContains(t, err, `invalid --wait "soon": use a duration such as 30m`)
	_, err = ParseWait("-1s")
	assert.ErrorContains(t, err, `invalid --wait "-1s"`)
}

func TestCheckSetting(t *testing.T) {
	tests := []struct {
		flag, value string
		handled     bool
		err         string
	}{
		{flag: "tty", value: "auto", handled: true},
		{flag: "tty", value: "true"},
		{flag: "gpus", value: "auto:2", handled: true},
		{flag: "gpus", value: "none", handled: true},
		{flag: "gpus", value: "all"},
		{flag: "gpus", value: "auto:0", handled: true, err: "invalid --gpus"},
		// A preset may ask for MIG slices as a run does.
		{flag: "gpus", value: "auto:mig=1g.10gb", handled: true},
		{flag: "gpus", value: "auto:mig>=20g", handled: true},
		{flag: "gpus", value: "auto:mig=huge", handled: true, err: "invalid --gpus"},
		{flag: OptGPUMaxMemory, value: "2g", handled: true},
		{flag: OptGPUMaxUtil, value: "200", handled: true, err: "invalid --gpu-max-util"},
		{flag: "shm-size", value: "1g"},
	}
	for _, tc := range tests {
		handled, err := CheckSetting(tc.flag, tc.value)
		assert.Check(t, is.Equal(handled, tc.handled), "%s=%s", tc.flag, tc.value)
		if tc.err != "" {
			assert.Check(t, is.ErrorContains(err, tc.err))
		} else {
			assert.Check(t, err, "%s=%s", tc.flag, tc.value)
		}
	}
}

func set(flag, value string) presets.Setting { return presets.Setting{Flag: flag, Value: value} }

// Build reads every setting once: docker perceptron's own options are taken
// out, the thresholds read in their units, and the pre-flight input filled.
func TestBuild(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	assert.NilError(t, os.WriteFile(envFile, []byte("A=file\nB=file\n"), 0o644))
	fromPresets := []presets.Setting{set("gpus", "auto"), set("shm-size", "1g"), set("ulimit", "memlock=-1")}
	user := []presets.Setting{set("gpus", "auto:2"), set(OptGPUMaxMemory, "256m"), set(OptGPUMaxUtil, "30"), set("shm-size", "2g"), set("env", "B=cli"), set("env-file", envFile), set("quiet", "true")}
	merged := presets.Merge(fromPresets, user)
	r, err := Build(Input{
		Command: "run", Presets: []string{"tf-train"}, Wait: "5m",
		Merged: merged, FromPresets: fromPresets, User: user,
		Positional: []string{"img", "python"}, Training: true,
	})
	assert.NilError(t, err)
	assert.Equal(t, r.GPUs, GPUs{Auto: 2})
	assert.Equal(t, r.Thresholds, alloc.Thresholds{MaxMemoryUsedMiB: 256, MaxUtilizationPercent: 30})
	assert.Equal(t, r.Wait, Wait{Enabled: true, Limit: 5 * time.Minute})
	assert.Check(t, r.Quiet)
	assert.DeepEqual(t, r.Docker, []presets.Setting{set("ulimit", "memlock=-1"), set("shm-size", "2g"), set("env", "B=cli"), set("env-file", envFile), set("quiet", "true")})
	p := r.Preflight
	assert.Check(t, p.GPURequested && p.GPUChoice && p.TrainingPreset)
	assert.Check(t, is.Equal(p.ShmSizeBytes, int64(2<<30)))
	assert.Check(t, is.Equal(p.PresetShmSizeBytes, int64(1<<30)))
	assert.Check(t, is.DeepEqual(p.Ulimits, []string{"memlock=-1"}))
	// The env file first: -e wins.
	assert.Check(t, is.DeepEqual(p.Env, []string{"A=file", "B=file", "B=cli"}))
	assert.Check(t, p.NeedsHost())
}

func TestBuildDefaultsAndErrors(t *testing.T) {
	r, err := Build(Input{Merged: []presets.Setting{set("gpus", "all")}, Positional: []string{"img"}})
	assert.NilError(t, err)
	assert.Equal(t, r.Thresholds, alloc.DefaultThresholds())
	assert.Equal(t, r.GPUs, GPUs{Docker: "all"})
	assert.DeepEqual(t, r.Docker, []presets.Setting{set("gpus", "all")})
	assert.Check(t, r.Preflight.GPURequested && !r.Preflight.GPUChoice)

	r, err = Build(Input{Merged: []presets.Setting{set("gpus", "none"), set("rm", "true")}})
	assert.NilError(t, err)
	assert.DeepEqual(t, r.Docker, []presets.Setting{set("rm", "true")})
	assert.Check(t, !r.Preflight.NeedsHost())

	_, err = Build(Input{Merged: []presets.Setting{set(OptGPUMaxUtil, "120")}})
	assert.ErrorContains(t, err, `invalid --gpu-max-util "120"`)
	_, err = Build(Input{Wait: "soon"})
	assert.ErrorContains(t, err, `invalid --wait "soon"`)
}

func TestArgs(t *testing.T) {
	r := Run{
		Command:    "run",
		Presets:    []string{"tf-train", "jupyter"},
		Docker:     []presets.Setting{set("rm", "true"), set("env", "NVIDIA_VISIBLE_DEVICES=0")},
		Positional: []string{"img", "sh"},
	}
	got := r.Args(Claimed{UUIDs: []string{"GPU-a", "GPU-b"}, Token: "TOKEN", User: "alice"})
	assert.DeepEqual(t, got, []string{
		"--label", "com.perceptron.user=alice",
		"--label", "com.perceptron.presets=tf-train,jupyter",
		"--gpus", `"device=GPU-a,GPU-b"`,
		"--label", "com.perceptron.gpus=GPU-a,GPU-b",
		"--label", "com.perceptron.claim=TOKEN",
		"--label", "com.perceptron.command=run",
		"--rm", "--env", "NVIDIA_VISIBLE_DEVICES=0",
		"img", "sh",
	})
	assert.DeepEqual(t, Run{Positional: []string{"img"}}.Args(Claimed{}), []string{"img"})

	// A daemon that takes GPUs through CDI only: one device each, by UUID,
	// and no NVIDIA_VISIBLE_DEVICES (the CDI spec sets what it needs).
	got = Run{Command: "create", Positional: []string{"img"}}.Args(Claimed{UUIDs: []string{"GPU-a", "MIG-b"}, CDI: true, Token: "TOKEN"})
	assert.DeepEqual(t, got, []string{
		"--device", "nvidia.com/gpu=GPU-a",
		"--device", "nvidia.com/gpu=MIG-b",
		"--label", "com.perceptron.gpus=GPU-a,MIG-b",
		"--label", "com.perceptron.claim=TOKEN",
		"--label", "com.perceptron.command=create",
		"img",
	})
}

// docker perceptron's labels and GPU choice cannot be overridden: a label
// the user sets would hide a claim, a second GPU request would give the
// container other GPUs than the claimed ones.
func TestBuildRefuses(t *testing.T) {
	labelFile := filepath.Join(t.TempDir(), "labels")
	assert.NilError(t, os.WriteFile(labelFile, []byte("team=ml\ncom.perceptron.gpus=\n"), 0o644))
	tests := []struct {
		name     string
		settings []presets.Setting
		want     string
	}{
		{"label", []presets.Setting{set("label", "com.perceptron.gpus=")}, `invalid --label "com.perceptron.gpus": the com.perceptron.* labels are docker perceptron's own`},
		{"label without a value", []presets.Setting{set("gpus", "all"), set("label", "com.perceptron.claim")}, `invalid --label "com.perceptron.claim"`},
		{"label file", []presets.Setting{set("label-file", labelFile)}, `invalid --label-file "com.perceptron.gpus"`},
		{"auto and device", []presets.Setting{set("gpus", "auto"), set("gpus", `"device=GPU-5"`)}, "--gpus auto cannot be combined with another --gpus"},
		{"auto and all", []presets.Setting{set("gpus", "all"), set("gpus", "auto:2")}, "--gpus auto cannot be combined with another --gpus"},
		{"auto and CDI", []presets.Setting{set("gpus", "auto"), set("device", "nvidia.com/gpu=1")}, "--gpus auto cannot be combined with --device nvidia.com/gpu=1"},
		{"auto and env", []presets.Setting{set("gpus", "auto"), set("env", "NVIDIA_VISIBLE_DEVICES=5")}, "--gpus auto cannot be combined with NVIDIA_VISIBLE_DEVICES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(Input{Merged: tc.settings, Positional: []string{"img"}})
			assert.ErrorContains(t, err, tc.want)
		})
	}
	// Other labels, and a GPU request of docker's own with them, are fine.
	_, err := Build(Input{Merged: []presets.Setting{set("label", "com.example.team=ml"), set("gpus", "all"), set("env", "NVIDIA_VISIBLE_DEVICES=1")}})
	assert.NilError(t, err)
}
