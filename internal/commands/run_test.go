package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/docker/cli/cli/streams"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

// testCLI returns a real docker CLI writing to buffers, and test deps whose
// preset files are under a temp dir.
func testCLI(t *testing.T) (*command.DockerCli, *bytes.Buffer, *bytes.Buffer, Deps) {
	t.Helper()
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	dockerCLI, err := command.NewDockerCli(
		command.WithOutputStream(out),
		command.WithErrorStream(errOut),
		command.WithInputStream(streams.NewIn(os.Stdin)),
	)
	assert.NilError(t, err)
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	// Never a real daemon: a socket no one serves.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "no-daemon.sock"))
	t.Setenv("DOCKER_CONTEXT", "")
	assert.NilError(t, dockerCLI.Initialize(flags.NewClientOptions()))
	deps := DefaultDeps()
	deps.SystemPresets = filepath.Join(dir, "system-presets.yaml")
	deps.UserPresets = filepath.Join(dir, "user-presets.yaml")
	deps.User = func() string { return "alice" }
	deps.Now = func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }
	deps.StateDir = filepath.Join(dir, "state")
	deps.CachePath = filepath.Join(dir, "cache", "reservations.json")
	deps.NVML = func() (nvml.Interface, error) { return gpustest.NewLibrary(testGPUs), nil }
	deps.API = func(command.Cli) DockerAPI { return noContainers{} }
	return dockerCLI, out, errOut, deps
}

// testGPUs are four idle GPUs in two NVLink pairs, and one busy one.
var testGPUs = gpustest.Spec{
	DriverVersion: "580.95.05", CUDAVersion: "13.0",
	GPUs: []gpustest.GPU{
		{UUID: "GPU-00000000-0000-0000-0000-000000000000", Name: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:18:00.0", MemoryTotalMiB: 81559, NVLinkPeers: []int{1}},
		{UUID: "GPU-11111111-1111-1111-1111-111111111111", Name: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:2A:00.0", MemoryTotalMiB: 81559, NVLinkPeers: []int{0}},
		{UUID: "GPU-22222222-2222-2222-2222-222222222222", Name: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:3A:00.0", MemoryTotalMiB: 81559, MemoryUsedMiB: 40000, Processes: []gpustest.Process{{PID: 999999, UsedMemoryMiB: 40000}}, NVLinkPeers: []int{3}},
		{UUID: "GPU-33333333-3333-3333-3333-333333333333", Name: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:5D:00.0", MemoryTotalMiB: 81559, NVLinkPeers: []int{2}},
	},
}

// noContainers is a Docker daemon without containers, which does not answer
// the pre-flight checks' questions.
type noContainers struct{}

func (noContainers) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{}, errors.New("no daemon in unit tests")
}

func (noContainers) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{}, errors.New("no daemon in unit tests")
}

func (noContainers) ImageInspect(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	return client.ImageInspectResult{}, errors.New("no daemon in unit tests")
}

func (noContainers) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{}, nil
}

func (noContainers) Events(context.Context, client.EventsListOptions) client.EventsResult {
	return noEvents()
}

// noEvents is a daemon's answer when nothing happened.
func noEvents() client.EventsResult {
	errs := make(chan error, 1)
	errs <- io.EOF
	return client.EventsResult{Messages: make(chan events.Message), Err: errs}
}

func (noContainers) ContainerLogs(context.Context, string, client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	return nil, errors.New("no daemon in unit tests")
}

func (noContainers) ContainerRemove(context.Context, string, client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	return client.ContainerRemoveResult{}, errors.New("no daemon in unit tests")
}

func (noContainers) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	return client.ContainerInspectResult{}, fmt.Errorf("no such container: %s", id)
}

func execute(t *testing.T, dockerCLI command.Cli, deps Deps, args ...string) error {
	t.Helper()
	cmd := NewRootCommand(dockerCLI, deps)
	cmd.PersistentPreRunE = nil // the plugin framework is not running in tests
	cmd.SetArgs(args)
	cmd.SetOut(dockerCLI.Out())
	cmd.SetErr(dockerCLI.Err())
	return cmd.ExecuteContext(t.Context())
}

func TestRunDryRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"tf-train", []string{"run", "--preset", "tf-train", "--dry-run", "img"}},
		{"user-wins", []string{"run", "--preset", "tf-train", "--shm-size", "2g", "-e", "A=x y", "--ulimit", "memlock=8388608", "-p", "127.0.0.1:18000:8000", "--dry-run", "img", "sh", "-c", "echo $A"}},
		{"stacked", []string{"create", "--preset", "tf-train", "--preset", "jupyter", "--dry-run", "img"}},
		{"args-after-image", []string{"run", "--dry-run", "--preset", "tensorboard", "img", "python", "train.py", "--preset", "x"}},
		{"ipc-host", []string{"run", "--dry-run", "--preset", "pytorch-train", "--ipc=host", "-it", "img"}},
		{"no-preset", []string{"run", "--dry-run", "--rm", "img"}},
		{"gpus-auto-2", []string{"run", "--dry-run", "--gpus", "auto:2", "img"}},
		{"gpus-none", []string{"run", "--dry-run", "--preset", "tf-train", "--gpus", "none", "img"}},
		{"gpus-docker-own", []string{"run", "--dry-run", "--preset", "tf-train", "--gpus", "device=1", "img"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			assert.NilError(t, execute(t, dockerCLI, deps, tc.args...))
			golden.Assert(t, out.String(), "dry-run-"+tc.name+".golden")
		})
	}
}

func TestRunEnvFileBeatsPreset(t *testing.T) {
	dockerCLI, out, _, deps := testCLI(t)
	assert.NilError(t, os.WriteFile(deps.UserPresets, []byte("p:\n  env: {A: preset, B: preset}\n"), 0o644))
	envFile := filepath.Join(t.TempDir(), "env")
	assert.NilError(t, os.WriteFile(envFile, []byte("A=file\n"), 0o644))
	assert.NilError(t, execute(t, dockerCLI, deps, "run", "--dry-run", "--preset", "p", "--env-file", envFile, "img"))
	assert.Check(t, !strings.Contains(out.String(), "A=preset"), out.String())
	assert.Check(t, is.Contains(out.String(), "B=preset"))
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		presets string
		args    []string
		want    string
	}{
		{"unknown preset", "", []string{"run", "--preset", "nope", "img"}, `unknown preset "nope": known presets are jax-train, jupyter, pytorch-train, tensorboard, tf-train`},
		{"invalid docker value", "", []string{"run", "--shm-size", "lots", "img"}, `invalid argument "lots" for "--shm-size" flag: invalid size: 'lots'`},
		{"unknown option", "", []string{"run", "--frob", "img"}, `unknown flag: --frob`},
		{"no image", "", []string{"create", "--preset", "tf-train"}, `"docker perceptron create" requires at least 1 argument.`},
		{"gpus auto:0", "", []string{"run", "--gpus", "auto:0", "img"}, `invalid --gpus "auto:0": use auto or auto:N with N a number of GPUs, 1 or more`},
		{"daemon down", "", []string{"run", "--gpus", "auto:4", "img"}, `cannot reach the docker daemon at unix://`},
		{"bad threshold", "", []string{"run", "--gpus", "auto", "--gpu-max-util", "120", "img"}, `invalid --gpu-max-util "120": use a percentage from 0 to 100`},
		{"bad wait", "", []string{"run", "--gpus", "auto", "--wait=soon", "img"}, `invalid --wait "soon"`},
		{"bad preset file", "x:\n  shm_size: 1g\n", []string{"run", "--preset", "x", "img"}, `user-presets.yaml:2: preset "x": unknown docker run option "shm_size": did you mean "shm-size"?`},
		{"plugin option in a preset", "x:\n  dry-run: true\n", []string{"run", "--dry-run", "--preset", "x", "img"}, `user-presets.yaml:2: preset "x": unknown docker run option "dry-run"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			if tc.presets != "" {
				assert.NilError(t, os.WriteFile(deps.UserPresets, []byte(tc.presets), 0o644))
			}
			err := execute(t, dockerCLI, deps, tc.args...)
			assert.ErrorContains(t, err, tc.want)
			var st cli.StatusError
			assert.Assert(t, errorsAs(err, &st), "%T", err)
			assert.Check(t, is.Equal(st.StatusCode, 125))
			assert.Check(t, is.Equal(out.String(), ""))
		})
	}
}

func TestPresetsCommands(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"presets-ls", []string{"presets", "ls"}},
		{"presets-ls-json", []string{"presets", "ls", "--format", "json"}},
		{"presets-show-tf-train", []string{"presets", "show", "tf-train"}},
		{"presets-show-pytorch-train", []string{"presets", "show", "pytorch-train"}},
		{"presets-show-user-json", []string{"presets", "show", "--format", "json", "mine"}},
		{"presets-show-template", []string{"presets", "show", "--format", "{{.Name}}: {{len .Options}} options", "tf-train"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			assert.NilError(t, os.WriteFile(deps.UserPresets, []byte("mine:\n  description: my training\n  extends: tf-train\n  shm-size: 16g\n  gpus: all\n"), 0o644))
			assert.NilError(t, execute(t, dockerCLI, deps, tc.args...))
			got := strings.ReplaceAll(out.String(), deps.UserPresets, "USER_PRESETS")
			golden.Assert(t, got, tc.name+".golden")
		})
	}
}

func errorsAs(err error, target *cli.StatusError) bool {
	return errors.As(err, target)
}

// A remote daemon's GPUs are not this host's: --gpus auto refuses, before
// asking that daemon anything.
func TestRunGPUAutoRemoteDaemon(t *testing.T) {
	dockerCLI, out, _, deps := testCLI(t)
	t.Setenv("DOCKER_HOST", "tcp://192.0.2.10:2376") // TEST-NET-1: never reached
	assert.NilError(t, dockerCLI.Initialize(flags.NewClientOptions()))
	nvmlUsed := false
	deps.NVML = func() (nvml.Interface, error) { nvmlUsed = true; return gpustest.NewLibrary(testGPUs), nil }
	err := execute(t, dockerCLI, deps, "run", "--gpus", "auto", "img")
	assert.ErrorContains(t, err, "--gpus auto chooses among this host's GPUs, but the Docker daemon is at tcp://192.0.2.10:2376")
	assert.Check(t, !nvmlUsed, "NVML was read for a remote daemon")
	assert.Check(t, is.Equal(out.String(), ""))
}

// A dry run prints the line, then says what the run would refuse (exit
// 125): here, too few free GPUs, shown as docker's nearest --gpus N.
func TestDryRunRefusal(t *testing.T) {
	dockerCLI, out, _, deps := testCLI(t)
	err := execute(t, dockerCLI, deps, "run", "--dry-run", "--gpus", "auto:4", "img")
	assert.ErrorContains(t, err, "not enough free GPUs: 4 asked for, 3 free; GPU 2 held by host process 999999")
	var st cli.StatusError
	assert.Assert(t, errorsAs(err, &st), "%T", err)
	assert.Check(t, is.Equal(st.StatusCode, 125))
	assert.Check(t, is.Contains(out.String(), " --gpus 4 img"))
}

// Without a driver, a dry run still prints the whole line, with --gpus N
// for the GPUs a GPU host would choose, and says so on stderr.
func TestDryRunWithoutDriver(t *testing.T) {
	dockerCLI, out, errOut, deps := testCLI(t)
	deps.NVML = func() (nvml.Interface, error) {
		return gpustest.NewLibrary(gpustest.Spec{InitError: "ERROR_LIBRARY_NOT_FOUND"}), nil
	}
	assert.NilError(t, execute(t, dockerCLI, deps, "run", "--dry-run", "--preset", "tf-train", "img"))
	assert.Check(t, is.Contains(out.String(), " --gpus 1 --shm-size 1g"))
	assert.Check(t, is.Contains(errOut.String(), "no NVIDIA driver here, so no GPU was chosen: shown as --gpus 1"))
}

// run --help: docker perceptron's options first, in a section of their own,
// then docker's (without --gpus and -q, described in the first).
func TestRunHelp(t *testing.T) {
	for _, name := range []string{"run", "create"} {
		dockerCLI, out, _, deps := testCLI(t)
		assert.NilError(t, execute(t, dockerCLI, deps, name, "--help"))
		help := out.String()
		golden.Assert(t, help[:strings.Index(help, "Options of docker "+name)], "help-"+name+".golden")
		assert.Check(t, is.Contains(help, "Options of docker "+name+" (as 'docker "+name+" --help' shows them):\n"))
		assert.Check(t, is.Contains(help, "--shm-size bytes"))
		assert.Check(t, !strings.Contains(help, "Suppress the pull output\n"), "docker's -q is replaced")
		assert.Check(t, is.Equal(strings.Count(help, "--gpus "), 1+strings.Count(help, "--gpus auto")+strings.Count(help, "--gpus device")), "one --gpus option")
	}
}

// Completion, as the docker CLI asks a plugin for it (docker __complete
// perceptron run …).
func TestRunCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
		not  []string
	}{
		{args: []string{"run", "--preset", ""}, want: []string{"tf-train", "pytorch-train", "jupyter"}},
		{args: []string{"run", "--preset=t"}, want: []string{"--preset=tf-train", "--preset=tensorboard"}},
		{args: []string{"run", "--gpus", ""}, want: []string{"auto\t", "auto:2\t", "none\t", "all\t", "device=0\t", "device=GPU-"}},
		{args: []string{"create", "--sh"}, want: []string{"--shm-size\t", "--preset\t", "--dry-run\t"}},
		{args: []string{"run", "--rm", "--preset", "tf-train", "img", "--"}, not: []string{"--shm-size"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			assert.NilError(t, execute(t, dockerCLI, deps, append([]string{"__complete"}, tc.args...)...))
			for _, w := range tc.want {
				assert.Check(t, is.Contains(out.String(), w))
			}
			for _, n := range tc.not {
				assert.Check(t, !strings.Contains(out.String(), n), out.String())
			}
		})
	}
}
