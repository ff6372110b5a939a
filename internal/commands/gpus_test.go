package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/labels"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// fakeContainerAPI is a Docker API that knows a few containers; the
// methods it does not override panic.
type fakeContainerAPI struct {
	client.APIClient
	containers     []container.InspectResponse
	listErr        error
	defaultRuntime string
	inspects       atomic.Int64 // Lookup inspects in parallel
}

func (f *fakeContainerAPI) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	if f.listErr != nil {
		return client.SystemInfoResult{}, f.listErr
	}
	return client.SystemInfoResult{Info: system.Info{DefaultRuntime: f.defaultRuntime}}, nil
}

func (f *fakeContainerAPI) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{APIVersion: "1.52", OSType: "linux"}, nil
}

func (f *fakeContainerAPI) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	var res client.ContainerListResult
	for _, c := range f.containers {
		created, _ := time.Parse(time.RFC3339, c.Created)
		res.Items = append(res.Items, container.Summary{ID: c.ID, Names: []string{c.Name}, State: c.State.Status, Labels: c.Config.Labels, Created: created.Unix()})
	}
	return res, f.listErr
}

func (f *fakeContainerAPI) Events(context.Context, client.EventsListOptions) client.EventsResult {
	return noEvents()
}

func (f *fakeContainerAPI) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.inspects.Add(1)
	for _, c := range f.containers {
		if c.ID == id {
			return client.ContainerInspectResult{Container: c}, nil
		}
	}
	return client.ContainerInspectResult{}, fmt.Errorf("no such container: %s", id)
}

const (
	trainID = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"
	evalID  = "b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2"
	boardID = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
)

func intPtr(n int) *int { return &n }

// gpusNow is the clock of the gpus tests.
var gpusNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// gpusHost is four H100s: GPU 1 runs alice's "train" container (which
// reserved GPUs 1 and 2), GPU 3 is reserved by bob's created "eval" (by
// NVIDIA_VISIBLE_DEVICES under the nvidia runtime) and has an idle CUDA
// context's 600 MiB in use, GPU 0 has a host process of root's and its
// temperature cannot be read. "tensorboard", from an NGC image whose env says
// NVIDIA_VISIBLE_DEVICES=all, runs under runc, the daemon's default: it
// holds no GPU.
func gpusHost(t *testing.T) (gpustest.Spec, *fakeContainerAPI, string) {
	spec := gpustest.Spec{DriverVersion: "580.95.05", CUDAVersion: "13.0"}
	for i, bus := range []string{"00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0"} {
		spec.GPUs = append(spec.GPUs, gpustest.GPU{
			UUID:     fmt.Sprintf("GPU-%d%d%d%d%d%d%d%d-5f6a-7b8c-9d0e-1f2a3b4c5d6e", i, i, i, i, i, i, i, i),
			Name:     "NVIDIA H100 80GB HBM3",
			PCIBusID: bus, MemoryTotalMiB: 81559, TemperatureC: uint32(31 + i), PowerW: 70,
			NUMANode: intPtr(i / 2), NVLinkPeers: []int{(i + 1) % 4, (i + 3) % 4},
		})
	}
	spec.GPUs[0].Errors = map[string]string{"temperature": "ERROR_UNKNOWN"}
	spec.GPUs[0].MemoryUsedMiB = 512
	spec.GPUs[0].Processes = []gpustest.Process{{PID: 555, UsedMemoryMiB: 500}}
	spec.GPUs[1].MemoryUsedMiB, spec.GPUs[1].UtilizationPercent, spec.GPUs[1].PowerW = 40960, 98, 650
	spec.GPUs[1].Processes = []gpustest.Process{{PID: 4242, UsedMemoryMiB: 40000}}
	spec.GPUs[3].MemoryUsedMiB = 600
	// NVML's accounting is on for GPUs 2 and 3: GPU 2's last process ended
	// 2 hours ago, GPU 3's before eval was created (26 hours ago).
	ended := func(ago time.Duration) *gpustest.Accounting {
		return &gpustest.Accounting{Processes: []gpustest.AccountedProcess{{PID: 7, Start: gpusNow.Add(-ago - time.Hour), Seconds: 3600}}}
	}
	spec.GPUs[2].Accounting, spec.GPUs[3].Accounting = ended(2*time.Hour), ended(30*time.Hour)

	proc := t.TempDir()
	for pid, cgroup := range map[string]string{
		"4242": "0::/system.slice/docker-" + trainID + ".scope\n",
		"555":  "0::/user.slice/user-0.slice/session-1.scope\n",
	} {
		assert.NilError(t, os.MkdirAll(filepath.Join(proc, pid), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(cgroup), 0o644))
		assert.NilError(t, os.WriteFile(filepath.Join(proc, pid, "status"), []byte("Uid:\t0\t0\t0\t0\n"), 0o644))
	}

	api := &fakeContainerAPI{defaultRuntime: "runc", containers: []container.InspectResponse{
		{
			ID: trainID, Name: "/train", State: &container.State{Status: container.StateRunning}, Created: gpusNow.Add(-3 * time.Hour).Format(time.RFC3339),
			Config: &container.Config{Labels: map[string]string{labels.User: "alice"}},
			HostConfig: &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{
				{DeviceIDs: []string{"1", "2"}, Capabilities: [][]string{{"gpu"}}},
			}}},
		},
		{
			ID: evalID, Name: "/eval", State: &container.State{Status: container.StateCreated}, Created: gpusNow.Add(-26 * time.Hour).Format(time.RFC3339),
			Config:     &container.Config{User: "bob", Env: []string{"NVIDIA_VISIBLE_DEVICES=" + spec.GPUs[3].UUID}},
			HostConfig: &container.HostConfig{Runtime: "nvidia"},
		},
		{
			ID: boardID, Name: "/tensorboard", State: &container.State{Status: container.StateRunning},
			Config:     &container.Config{User: "carol", Env: []string{"PATH=/usr/local/bin", "NVIDIA_VISIBLE_DEVICES=all"}},
			HostConfig: &container.HostConfig{Runtime: "runc"},
		},
	}}
	return spec, api, proc
}

func gpusCLI(t *testing.T, spec gpustest.Spec, api client.APIClient, proc string) (command.Cli, *bytes.Buffer, *bytes.Buffer, Deps) {
	t.Helper()
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	dockerCLI, err := command.NewDockerCli(
		command.WithOutputStream(out),
		command.WithErrorStream(errOut),
		command.WithAPIClient(api),
	)
	assert.NilError(t, err)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") // the fake API answers, not a daemon
	assert.NilError(t, dockerCLI.Initialize(flags.NewClientOptions()))
	deps := DefaultDeps()
	deps.NVML = func() (nvml.Interface, error) { return gpustest.NewLibrary(spec), nil }
	deps.ProcRoot = proc
	deps.CachePath = filepath.Join(t.TempDir(), "cache", "reservations.json")
	deps.StateDir = filepath.Join(t.TempDir(), "state")
	deps.PolicyPath = ""
	return dockerCLI, out, errOut, deps
}

// A GPU that another docker perceptron has claimed, and whose container it
// is still creating, is reserved in the view as in the choice, and says by
// whom.
func TestGpusShowsPendingClaim(t *testing.T) {
	spec := gpustest.FourH100()
	dockerCLI, out, errOut, deps := gpusCLI(t, spec, &fakeContainerAPI{defaultRuntime: "runc"}, t.TempDir())
	l := ledger.NewLease([]string{spec.GPUs[2].UUID}, time.Now(), time.Minute)
	assert.NilError(t, ledger.WriteLease(deps.StateDir, l))
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "--format", "{{.Index}} {{.State}} {{.UsedBy}}"))
	me := holders.UserName(strconv.Itoa(os.Geteuid()))
	assert.Equal(t, out.String(), fmt.Sprintf("0 free \n1 busy pid 4242 (no claim)\n2 reserved claim of %s (pid %d)\n3 free \n", me, os.Getpid()))
	assert.Equal(t, errOut.String(), "")
}

func runGpusCmd(t *testing.T, dockerCLI command.Cli, deps Deps, args ...string) error {
	t.Helper()
	return execute(t, dockerCLI, deps, append([]string{"gpus"}, args...)...)
}

func TestGpusOutput(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "table", args: []string{}},
		{name: "table-no-trunc", args: []string{"--no-trunc"}},
		{name: "json", args: []string{"--format", "json"}},
		{name: "quiet", args: []string{"-q"}},
		{name: "quiet-no-trunc", args: []string{"-q", "--no-trunc"}},
		{name: "template", args: []string{"--format", "{{.Index}} {{.UUID}} {{.PCIBusID}} {{.Power}} {{.MIG}} {{.NUMA}} {{.NVLink}} {{.PIDs}} {{.State}}"}},
		{name: "table-template", args: []string{"--format", "table {{.Index}}\t{{.MemoryUsed}}\t{{.MemoryTotal}}\t{{.UsedBy}}"}},
		{name: "bars", args: []string{"--format", "table {{.Index}}\t{{.MemoryBar}}\t{{.UtilBar}}\t{{.Held}}\t{{.Idle}}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, api, proc := gpusHost(t)
			dockerCLI, out, errOut, deps := gpusCLI(t, spec, api, proc)
			deps.Now = func() time.Time { return gpusNow }
			assert.NilError(t, runGpusCmd(t, dockerCLI, deps, tc.args...))
			assert.Equal(t, errOut.String(), "")
			golden.Assert(t, out.String(), "gpus-"+tc.name+".golden")
		})
	}
}

func TestGpusNoDriver(t *testing.T) {
	tests := []struct {
		name string
		nvml func() (nvml.Interface, error)
		want string
	}{
		{
			name: "library not found",
			nvml: func() (nvml.Interface, error) {
				return gpustest.NewLibrary(gpustest.Spec{InitError: "ERROR_LIBRARY_NOT_FOUND"}), nil
			},
			want: "NVIDIA driver not available: cannot load libnvidia-ml.so.1 (ERROR_LIBRARY_NOT_FOUND); check that the NVIDIA driver is installed and that nvidia-smi works",
		},
		{
			name: "no library in this build",
			nvml: func() (nvml.Interface, error) { return nil, errors.New("NVML is not available in this build") },
			want: "NVML is not available in this build",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, api, proc := gpusHost(t)
			dockerCLI, out, _, deps := gpusCLI(t, gpustest.Spec{}, api, proc)
			deps.NVML = tc.nvml
			err := runGpusCmd(t, dockerCLI, deps)
			var status cli.StatusError
			assert.Assert(t, errors.As(err, &status))
			assert.Equal(t, status.StatusCode, 1)
			assert.Equal(t, err.Error(), tc.want)
			assert.Equal(t, out.String(), "")
		})
	}
}

func TestGpusDockerUnavailable(t *testing.T) {
	spec, api, proc := gpusHost(t)
	api.listErr = errors.New("Cannot connect to the Docker daemon")
	dockerCLI, out, errOut, deps := gpusCLI(t, spec, api, proc)
	// Fail closed: the GPUs that are not busy may be held by containers no
	// one could see; they are unknown, and the listing exits 1.
	err := runGpusCmd(t, dockerCLI, deps, "--format", "{{.Index}} {{.State}}")
	assertStatus(t, err, 1, "who holds the GPUs is unknown: cannot list containers: Cannot connect to the Docker daemon; the GPUs shown unknown may be in use")
	assert.Check(t, !strings.Contains(errOut.String(), "WARNING"), errOut.String())
	assert.Equal(t, out.String(), "0 busy\n1 busy\n2 unknown\n3 unknown\n")
}

func TestGpusArgs(t *testing.T) {
	spec, api, proc := gpusHost(t)
	dockerCLI, _, _, deps := gpusCLI(t, spec, api, proc)
	err := runGpusCmd(t, dockerCLI, deps, "extra")
	assert.Check(t, err != nil && strings.Contains(err.Error(), "accepts no arguments"), "%v", err)
}

// The daemon's default runtime decides for a container whose runtime is
// not recorded (created, not yet started, on older daemons).
func TestGpusDefaultRuntime(t *testing.T) {
	tests := []struct {
		defaultRuntime string
		want           string
	}{
		{defaultRuntime: "runc", want: "0 busy\n1 busy+reserved\n2 reserved\n3 reserved\n"},
		{defaultRuntime: "nvidia", want: "0 busy+reserved\n1 busy+reserved\n2 reserved\n3 reserved\n"},
	}
	for _, tc := range tests {
		t.Run(tc.defaultRuntime, func(t *testing.T) {
			spec, api, proc := gpusHost(t)
			api.defaultRuntime = tc.defaultRuntime
			api.containers[2].HostConfig.Runtime = ""
			api.containers[2].State.Status = container.StateCreated
			dockerCLI, out, _, deps := gpusCLI(t, spec, api, proc)
			assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "--format", "{{.Index}} {{.State}}"))
			assert.Equal(t, out.String(), tc.want)
		})
	}
}

// Repeated gpus commands inspect each container once, through the cache
// that --gpus auto uses too.
func TestGpusCache(t *testing.T) {
	spec, api, proc := gpusHost(t)
	dockerCLI, out, _, deps := gpusCLI(t, spec, api, proc)
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "-q"))
	assert.Equal(t, int(api.inspects.Load()), len(api.containers))
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "-q"))
	assert.Equal(t, int(api.inspects.Load()), len(api.containers))
	files, err := filepath.Glob(filepath.Join(filepath.Dir(deps.CachePath), "containers-*.gob"))
	assert.NilError(t, err)
	assert.Check(t, len(files) == 1, "cache files: %v", files)

	// Without a cache path (no home directory) nothing is written.
	out.Reset()
	deps.CachePath = ""
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "-q"))
	assert.Equal(t, int(api.inspects.Load()), 2*len(api.containers))
	assert.Equal(t, out.String(), "0\n1\n2\n3\n")
}

// --filter as docker ps: values of one key match any, keys all.
func TestGpusFilter(t *testing.T) {
	tests := []struct {
		filters []string
		want    string
	}{
		{filters: []string{"state=reserved"}, want: "1\n2\n3\n"},
		{filters: []string{"state=busy"}, want: "0\n1\n"},
		{filters: []string{"state=idle"}, want: "2\n3\n"},
		{filters: []string{"state=free"}, want: ""},
		{filters: []string{"user=alice"}, want: "1\n2\n"},
		{filters: []string{"user=alice", "user=bob"}, want: "1\n2\n3\n"},
		{filters: []string{"holder=eval"}, want: "3\n"},
		{filters: []string{"holder=" + trainID[:6]}, want: "1\n2\n"},
		{filters: []string{"state=busy", "user=alice"}, want: "1\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.filters, ","), func(t *testing.T) {
			spec, api, proc := gpusHost(t)
			dockerCLI, out, _, deps := gpusCLI(t, spec, api, proc)
			args := []string{"-q"}
			for _, f := range tc.filters {
				args = append(args, "--filter", f)
			}
			assert.NilError(t, runGpusCmd(t, dockerCLI, deps, args...))
			assert.Equal(t, out.String(), tc.want)
		})
	}
	for arg, want := range map[string]string{
		"state=gone": "invalid filter 'state=gone': use one of busy, expired, free, idle, reserved, unknown",
		"colour=red": "invalid filter 'colour': use state, user or holder",
		"nonsense":   "bad format of filter (expected name=value)",
	} {
		spec, api, proc := gpusHost(t)
		dockerCLI, _, _, deps := gpusCLI(t, spec, api, proc)
		assert.Check(t, is.ErrorContains(runGpusCmd(t, dockerCLI, deps, "--filter", arg), want))
	}
}

// With the site's max-idle, a reservation idle for longer shows expired,
// and its holder stays named.
func TestGpusPolicyExpired(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the policy file must be root's")
	}
	spec, api, proc := gpusHost(t)
	dockerCLI, out, errOut, deps := gpusCLI(t, spec, api, proc)
	deps.Now = func() time.Time { return gpusNow }
	deps.PolicyPath = filepath.Join(t.TempDir(), "policy.yaml")
	assert.NilError(t, os.WriteFile(deps.PolicyPath, []byte("max-idle: 24h\n"), 0o644))
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "--format", "{{.Index}} {{.State}} {{.Idle}} {{.UsedBy}}"))
	assert.Equal(t, errOut.String(), "")
	assert.Equal(t, out.String(), "0 busy in use pid 555 (root, no claim)\n1 busy+reserved in use train (alice, running)\n2 reserved 2h train (alice, running)\n3 expired 26h eval (bob, created)\n")

	// A policy others can write is ignored, and said so.
	assert.NilError(t, os.Chmod(deps.PolicyPath, 0o666))
	out.Reset()
	assert.NilError(t, runGpusCmd(t, dockerCLI, deps, "-q", "--filter", "state=expired"))
	assert.Equal(t, out.String(), "")
	assert.Check(t, is.Contains(errOut.String(), "WARNING: site policy ignored: "+deps.PolicyPath+" is writable by others (mode 0666)"))
}

// --watch redraws until interrupted; on a pipe, one list after another.
func TestGpusWatch(t *testing.T) {
	spec, api, proc := gpusHost(t)
	dockerCLI, out, _, deps := gpusCLI(t, spec, api, proc)
	cmd := NewRootCommand(dockerCLI, deps)
	cmd.PersistentPreRunE = nil
	cmd.SetArgs([]string{"gpus", "--watch=100ms", "-q"})
	ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond)
	defer cancel()
	assert.NilError(t, cmd.ExecuteContext(ctx))
	draws := strings.Count(out.String(), "Every 100ms: docker perceptron gpus")
	assert.Check(t, draws >= 2, "%d draws:\n%s", draws, out.String())
	assert.Check(t, is.Equal(strings.Count(out.String(), "0\n1\n2\n3\n"), draws))

	for _, bad := range []string{"soon", "1ms"} {
		err := runGpusCmd(t, dockerCLI, deps, "--watch="+bad)
		assert.Check(t, is.ErrorContains(err, `invalid --watch "`+bad+`": use an interval such as 2s or 500ms`))
	}
}

// policy shows the site's policy and the asking user's own limit.
func TestPolicyCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the policy file must be root's")
	}
	spec, api, proc := gpusHost(t)
	dockerCLI, out, _, deps := gpusCLI(t, spec, api, proc)
	deps.User = func() string { return "alice" }
	deps.PolicyPath = filepath.Join(t.TempDir(), "policy.yaml")
	assert.NilError(t, runPolicyCmd(t, dockerCLI, deps))
	assert.Equal(t, out.String(), "Site policy: none (no file at "+deps.PolicyPath+")\nYour limit (alice): none\n"+
		"A GPU is free with at most 1024 MiB of memory used and 10% utilisation, and no process\n")

	assert.NilError(t, os.WriteFile(deps.PolicyPath, []byte("max-gpus: {default: 1, users: {alice: 3}}\nmax-idle: 4h\nfree: {max-util: 5}\n"), 0o644))
	out.Reset()
	assert.NilError(t, runPolicyCmd(t, dockerCLI, deps))
	assert.Equal(t, out.String(), "Site policy: "+deps.PolicyPath+"\n at most 1 GPU(s) per user through --gpus auto (alice 3); max-idle 4h; free GPU: at most 5% utilised\n"+
		"Your limit (alice): at most 3 GPU(s) through --gpus auto (user alice)\n"+
		"Idle limit: a reservation whose GPUs had no process for 4h may be given to others\n"+
		"A GPU is free with at most 1024 MiB of memory used and 5% utilisation, and no process\n")

	out.Reset()
	assert.NilError(t, runPolicyCmd(t, dockerCLI, deps, "--format", "json"))
	assert.Equal(t, out.String(), `{"Path":"`+deps.PolicyPath+`","InForce":true,"Summary":"at most 1 GPU(s) per user through --gpus auto (alice 3); max-idle 4h; free GPU: at most 5% utilised","YourLimit":3,"LimitRule":"user alice","MaxIdle":"4h","FreeMaxMemoryMiB":1024,"FreeMaxUtilPercent":5}`+"\n")
	assert.Check(t, is.ErrorContains(runPolicyCmd(t, dockerCLI, deps, "--format", "yaml"), `invalid --format "yaml": use json`))
}

func runPolicyCmd(t *testing.T, dockerCLI command.Cli, deps Deps, args ...string) error {
	t.Helper()
	return execute(t, dockerCLI, deps, append([]string{"policy"}, args...)...)
}

// A GPU in MIG mode shows its slices under it: profile, memory, state and
// holder, here a plain docker run --gpus "device=MIG-…" and a process; the
// whole GPU is never free.
func TestGpusMIG(t *testing.T) {
	spec := gpustest.MIGA100s()
	api := &fakeContainerAPI{defaultRuntime: "runc", containers: []container.InspectResponse{{
		ID: strings.Repeat("c", 64), Name: "/notebook", State: &container.State{Status: container.StateRunning}, Created: gpusNow.Add(-2 * time.Hour).Format(time.RFC3339),
		Config: &container.Config{Labels: map[string]string{labels.User: "dave"}},
		HostConfig: &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{
			{DeviceIDs: []string{spec.GPUs[2].MIGDevices[1].UUID}, Capabilities: [][]string{{"gpu"}}},
		}}},
	}}}
	for _, tc := range []struct{ name, format string }{
		{name: "table"},
		{name: "json", format: "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, errOut, deps := gpusCLI(t, spec, api, t.TempDir())
			deps.Now = func() time.Time { return gpusNow }
			args := []string{}
			if tc.format != "" {
				args = append(args, "--format", tc.format)
			}
			assert.NilError(t, runGpusCmd(t, dockerCLI, deps, args...))
			assert.Equal(t, errOut.String(), "")
			golden.Assert(t, out.String(), "gpus-mig-"+tc.name+".golden")
		})
	}
}
