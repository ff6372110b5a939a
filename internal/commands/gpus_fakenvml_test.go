//go:build fakenvml

package commands

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/cli/cli"
	"gotest.tools/v3/assert"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

// TestGpusFakeNVML runs the command on the fakenvml build's OpenLibrary,
// which rereads $PERCEPTRON_FAKE_NVML at each command.
func TestGpusFakeNVML(t *testing.T) {
	_, api, proc := gpusHost(t)
	dockerCLI, out, _, deps := gpusCLI(t, gpustest.Spec{}, api, proc)
	deps.NVML = openNVML

	t.Setenv(gpustest.FakeNVMLEnv, "")
	err := runGpusCmd(t, dockerCLI, deps)
	var status cli.StatusError
	assert.Assert(t, errors.As(err, &status))
	assert.ErrorContains(t, err, "PERCEPTRON_FAKE_NVML is not set")

	path := filepath.Join(t.TempDir(), "nvml.json")
	t.Setenv(gpustest.FakeNVMLEnv, path)
	err = runGpusCmd(t, dockerCLI, deps)
	assert.ErrorContains(t, err, "fake NVML: cannot read spec")

	assert.NilError(t, os.WriteFile(path, []byte(`{"gpus": [{"uuid": "GPU-a", "name": "T4"}]}`), 0o644))
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "-q", "--no-trunc"))
	assert.Equal(t, out.String(), "GPU-a\n")

	out.Reset()
	assert.NilError(t, os.WriteFile(path, []byte(`{"gpus": [{"uuid": "GPU-a", "name": "T4"}, {"uuid": "GPU-b", "name": "T4"}]}`), 0o644))
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "-q", "--no-trunc"))
	assert.Equal(t, out.String(), "GPU-a\nGPU-b\n")

	assert.NilError(t, os.WriteFile(path, []byte(`{"init_error": "ERROR_LIBRARY_NOT_FOUND", "gpus": []}`), 0o644))
	err = runGpusCmd(t, dockerCLI, deps)
	assert.ErrorContains(t, err, "cannot load libnvidia-ml.so.1")
}
