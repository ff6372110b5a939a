package preflight

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

func fakeNVML(spec gpustest.Spec) func() (nvml.Interface, error) {
	return func() (nvml.Interface, error) { return gpustest.NewLibrary(spec), nil }
}

func levels(findings []Finding) []string {
	var out []string
	for _, f := range findings {
		out = append(out, f.Check+":"+f.Level.String())
	}
	return out
}

func TestLoadFrom(t *testing.T) {
	t.Run("eight GPUs", func(t *testing.T) {
		inv, err := gpus.LoadFrom(fakeNVML(gpustest.EightH100()))
		assert.NilError(t, err)
		assert.Equal(t, inv.DriverVersion, "550.54.15")
		assert.Equal(t, inv.CUDAVersion, "12.4")
		assert.Assert(t, is.Len(inv.Devices, 8))
		assert.Equal(t, inv.Devices[3].UUID, "GPU-00000003-h100")
	})
	t.Run("no NVML", func(t *testing.T) {
		_, err := gpus.LoadFrom(func() (nvml.Interface, error) { return nil, nil })
		assert.Assert(t, errors.Is(err, gpus.ErrNoDriver), "%v", err)
	})
	t.Run("library unavailable", func(t *testing.T) {
		_, err := gpus.LoadFrom(func() (nvml.Interface, error) { return nil, errors.New("NVML is not available in this build") })
		assert.Error(t, err, "NVML is not available in this build")
		assert.Check(t, errors.Is(err, gpus.ErrNoDriver))
	})
	t.Run("init fails", func(t *testing.T) {
		spec := gpustest.EightH100()
		spec.InitError = "ERROR_DRIVER_NOT_LOADED"
		_, err := gpus.LoadFrom(fakeNVML(spec))
		assert.Assert(t, errors.Is(err, gpus.ErrNoDriver))
		assert.ErrorContains(t, err, "ERROR_DRIVER_NOT_LOADED")
	})
	t.Run("count fails", func(t *testing.T) {
		lib := &mock.Interface{
			InitFunc:                       func() nvml.Return { return nvml.SUCCESS },
			ShutdownFunc:                   func() nvml.Return { return nvml.SUCCESS },
			SystemGetDriverVersionFunc:     func() (string, nvml.Return) { return "580.95.05", nvml.SUCCESS },
			SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) { return 13000, nvml.SUCCESS },
			DeviceGetCountFunc:             func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN },
		}
		inv, err := gpus.LoadFrom(func() (nvml.Interface, error) { return lib, nil })
		assert.ErrorContains(t, err, "ERROR_UNKNOWN")
		got := nvmlFindings(DoctorFacts{Host: Host{Daemon: DaemonInfo{Local: true}, Inventory: inv, NVMLErr: err}})
		assert.DeepEqual(t, levels(got), []string{"nvidia-driver:ok", "gpus:fail"})
		assert.Assert(t, is.Contains(got[0].Message, "driver 580.95.05, CUDA 13.0"))
	})
}

func TestFailedQueries(t *testing.T) {
	got := failedQueries(map[string]string{"uuid": "ERROR_GPU_IS_LOST", "power": "ERROR_UNKNOWN", "name": "ERROR_GPU_IS_LOST"})
	assert.Equal(t, got, "name, uuid: ERROR_GPU_IS_LOST; power: ERROR_UNKNOWN")
	got = failedQueries(map[string]string{"handle": "ERROR_GPU_IS_LOST", "uuid": "ERROR_GPU_IS_LOST", "name": "ERROR_GPU_IS_LOST"})
	assert.Equal(t, got, "handle: ERROR_GPU_IS_LOST")
}

func TestStateDir(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, mode fs.FileMode) string {
		p := filepath.Join(root, name)
		assert.NilError(t, os.Mkdir(p, 0o700))
		assert.NilError(t, os.Chmod(p, mode)) // not subject to umask
		return p
	}
	file := filepath.Join(root, "file")
	assert.NilError(t, os.WriteFile(file, nil, 0o644))
	readOnly := mk("ro", 0o555)
	shared := mk("shared", 0o777|fs.ModeSticky)
	link := filepath.Join(root, "link")
	assert.NilError(t, os.Symlink(shared, link))
	testCases := []struct {
		name      string
		path      string
		wantLevel Level
		wantIn    string
	}{
		{name: "shared", path: shared, wantIn: "(1777)"},
		// internal/ledger refuses these two outright.
		{name: "not sticky", path: mk("nosticky", 0o777), wantLevel: Fail, wantIn: "0777, not sticky: GPU claims refuse it"},
		{name: "symlink", path: link, wantLevel: Fail, wantIn: "is a symlink"},
		// Safe, and this user's: fine for this user's runs, but other
		// users' runs cannot see its claims.
		{name: "private", path: mk("private", 0o755), wantLevel: Warn, wantIn: "(0755): only your own runs see your GPU claims"},
		{name: "absent, creatable", path: filepath.Join(root, "new"), wantIn: "the first GPU claim makes it (1777)"},
		{name: "absent, parent missing", path: filepath.Join(root, "no", "new"), wantLevel: Fail, wantIn: "this user cannot create it"},
		{name: "not a directory", path: file, wantLevel: Fail, wantIn: "not a directory"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		testCases = append(testCases, struct {
			name      string
			path      string
			wantLevel Level
			wantIn    string
		}{name: "absent, parent read-only", path: filepath.Join(readOnly, "new"), wantLevel: Fail, wantIn: "this user cannot create it"},
			struct {
				name      string
				path      string
				wantLevel Level
				wantIn    string
			}{name: "not writable", path: readOnly, wantLevel: Fail, wantIn: "0555: this user cannot take the GPU lock there"})
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			f := stateDirFinding(ledger.StatDir(tc.path))
			assert.Equal(t, f.Level, tc.wantLevel)
			assert.Assert(t, is.Contains(f.Message, tc.wantIn))
			switch tc.wantLevel {
			case Fail:
				assert.Assert(t, is.Contains(f.Fix, "1777 "+tc.path))
			case Warn:
				assert.Assert(t, is.Contains(f.Fix, "chmod 1777"))
				assert.Assert(t, is.Contains(f.Detail, "claims are coordinated only among your own runs"))
			}
		})
	}
	entries, err := os.ReadDir(root)
	assert.NilError(t, err)
	for _, e := range entries {
		assert.Assert(t, !strings.HasPrefix(e.Name(), ".perceptron-doctor-"), "probe dir left behind")
	}
}
