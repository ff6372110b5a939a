package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

// ngcCLI is a CLI on a host with spec's GPUs (nil: no driver).
func ngcCLI(t *testing.T, spec *gpustest.Spec) (*bytesCLI, Deps) {
	t.Helper()
	s := gpustest.FourH100()
	if spec != nil {
		s = *spec
	}
	dockerCLI, out, errOut, deps := gpusCLI(t, s, &fakeContainerAPI{defaultRuntime: "runc"}, t.TempDir())
	if spec == nil {
		deps.NVML = func() (nvml.Interface, error) {
			return gpustest.NewLibrary(gpustest.Spec{InitError: "ERROR_LIBRARY_NOT_FOUND"}), nil
		}
	}
	return &bytesCLI{Cli: dockerCLI, out: out, err: errOut}, deps
}

func TestNgcList(t *testing.T) {
	geforce := gpustest.FourH100()
	geforce.DriverVersion = "535.129.03"
	for i := range geforce.GPUs {
		five := 5
		geforce.GPUs[i].Brand = &five
	}
	dataCentre := geforce
	dataCentre.GPUs = gpustest.FourH100().GPUs
	for _, tc := range []struct {
		name string
		spec gpustest.Spec
		args []string
	}{
		{name: "geforce-535", spec: geforce, args: []string{"pytorch"}},
		{name: "datacentre-535", spec: dataCentre, args: []string{"pytorch", "--format", "{{.Release}} {{.CUDA}} {{.MinDriver}} {{.Here}}"}},
		{name: "json", spec: dataCentre, args: []string{"pytorch", "--format", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, deps := ngcCLI(t, &tc.spec)
			assert.NilError(t, execute(t, c.Cli, deps, append([]string{"ngc"}, tc.args...)...))
			assert.Equal(t, c.err.String(), "")
			golden.Assert(t, c.out.String(), "ngc-"+tc.name+".golden")
		})
	}

	c, deps := ngcCLI(t, nil)
	assert.NilError(t, execute(t, c.Cli, deps, "ngc", "pytorch", "--format", "{{.Here}}"))
	assert.Check(t, is.Contains(c.err.String(), "the HERE column is unknown (give --driver VERSION to judge for a GPU server)"))
	assert.Check(t, !strings.Contains(c.out.String(), "native"))
	c.out.Reset()
	assert.NilError(t, execute(t, c.Cli, deps, "ngc", "pytorch", "--driver", "999", "--format", "{{.Here}}"))
	assert.Check(t, !strings.Contains(c.out.String(), "no"), c.out.String())

	assert.Check(t, is.ErrorContains(execute(t, c.Cli, deps, "ngc", "caffe"), "unknown framework \"caffe\": use one of pytorch"))
	assert.Check(t, is.ErrorContains(execute(t, c.Cli, deps, "ngc", "--driver", "new"), `invalid --driver: invalid version "new"`))
}

func TestInit(t *testing.T) {
	c, deps := ngcCLI(t, nil)
	dir := filepath.Join(t.TempDir(), "My Project")

	// No driver here: say what to give.
	err := execute(t, c.Cli, deps, "init", dir)
	assert.Check(t, is.ErrorContains(err, "no NVIDIA driver on this host to choose the base image for: give --driver VERSION"))
	_, statErr := os.Stat(dir)
	assert.Check(t, os.IsNotExist(statErr), "nothing written")

	assert.NilError(t, execute(t, c.Cli, deps, "init", "--driver", "535.129.03", dir))
	for _, f := range []string{"Dockerfile", ".dockerignore", "requirements.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		assert.NilError(t, err)
		golden.Assert(t, string(b), "init-"+strings.TrimPrefix(f, ".")+".golden")
	}
	golden.Assert(t, strings.ReplaceAll(c.out.String(), dir, "DIR"), "init-out.golden")

	// Never overwrites without --force; requirements.txt is always kept.
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("numpy\n"), 0o644))
	err = execute(t, c.Cli, deps, "init", "--tag", "nvcr.io/nvidia/pytorch:25.12-py3", dir)
	assert.Check(t, is.ErrorContains(err, "already has Dockerfile and .dockerignore: nothing was written; use --force to overwrite"))
	assert.NilError(t, execute(t, c.Cli, deps, "init", "--force", "--tag", "nvcr.io/nvidia/pytorch:25.12-py3", dir))
	b, _ := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	assert.Check(t, is.Contains(string(b), "FROM nvcr.io/nvidia/pytorch:25.12-py3\n"))
	b, _ = os.ReadFile(filepath.Join(dir, "requirements.txt"))
	assert.Check(t, is.Equal(string(b), "numpy\n"))

	for args, want := range map[string]string{
		"--framework caffe":                           `invalid --framework "caffe": use pytorch, tensorflow or jax`,
		"--driver 470.57 " + t.TempDir():              "no pytorch release in docker perceptron's table runs natively on NVIDIA driver 470.57",
		"--framework jax --driver 999 " + t.TempDir(): "has no jax image yet: give --tag IMAGE",
	} {
		assert.Check(t, is.ErrorContains(execute(t, c.Cli, deps, append([]string{"init"}, strings.Fields(args)...)...), want))
	}
}

// bytesCLI is a CLI whose output and errors are buffers.
type bytesCLI struct {
	command.Cli
	out, err *bytes.Buffer
}
