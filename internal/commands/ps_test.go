package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/labels"
)

// psAPI lists containers as the daemon does: running ones unless All, with
// their image, command and docker's human status.
type psAPI struct {
	*fakeContainerAPI
	status map[string]string
}

func (f *psAPI) ContainerList(_ context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	var res client.ContainerListResult
	if f.listErr != nil {
		return res, f.listErr
	}
	for _, c := range f.containers {
		if !o.All && !slices.Contains([]container.ContainerState{container.StateRunning, container.StatePaused, container.StateRestarting}, c.State.Status) {
			continue
		}
		created, _ := time.Parse(time.RFC3339, c.Created)
		res.Items = append(res.Items, container.Summary{
			ID: c.ID, Names: []string{c.Name}, Image: c.Config.Image, Command: c.Path,
			Created: created.Unix(), State: c.State.Status, Status: f.status[c.ID], Labels: c.Config.Labels,
		})
	}
	return res, nil
}

const (
	notebookID = "d00dfeedd00dfeedd00dfeedd00dfeedd00dfeedd00dfeedd00dfeedd00dfeed"
	oldID      = "0123456789ab0123456789ab0123456789ab0123456789ab0123456789ab0123"
	remoteID   = "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"
)

// psHost is four H100s and six containers, as alice sees them: her running
// "train" (GPUs 1 and 2 by index and UUID, labelled by docker perceptron
// run) and "notebook" (every GPU, her Config.User), her exited "old" (the
// first two GPUs), bob's created "eval" (GPU 3 by NVIDIA_VISIBLE_DEVICES
// under the nvidia runtime) and his "remote" (a GPU this host does not
// have), and carol's "tensorboard" (NVIDIA_VISIBLE_DEVICES=all under runc:
// no GPU).
func psHost() (gpustest.Spec, *psAPI) {
	spec := gpustest.FourH100()
	ago := func(d time.Duration) string { return gpusNow.Add(-d).Format(time.RFC3339) }
	gpuRequest := func(ids ...string) *container.HostConfig {
		return &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{
			{DeviceIDs: ids, Capabilities: [][]string{{"gpu"}}},
		}}}
	}
	api := &psAPI{
		fakeContainerAPI: &fakeContainerAPI{defaultRuntime: "runc", containers: []container.InspectResponse{
			{
				ID: trainID, Name: "/train", Path: "python train.py --epochs 100", State: &container.State{Status: container.StateRunning}, Created: ago(3 * time.Hour),
				Config:     &container.Config{Image: "nvcr.io/nvidia/pytorch:25.01-py3", Labels: map[string]string{labels.User: "alice"}},
				HostConfig: gpuRequest("1", spec.GPUs[2].UUID),
			},
			{
				ID: notebookID, Name: "/notebook", Path: "jupyter", State: &container.State{Status: container.StateRunning}, Created: ago(5 * time.Minute),
				Config: &container.Config{Image: "jupyter/base-notebook@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", User: "alice"},
				HostConfig: &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{
					{Count: -1, Capabilities: [][]string{{"gpu"}}},
				}}},
			},
			{
				ID: oldID, Name: "/old", Path: "sh", State: &container.State{Status: container.StateExited}, Created: ago(50 * time.Hour),
				Config: &container.Config{Image: "sha256:4f2e1d0c9b8a4f2e1d0c9b8a4f2e1d0c9b8a4f2e1d0c9b8a4f2e1d0c9b8a", Labels: map[string]string{labels.User: "alice"}},
				HostConfig: &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{
					{Count: 2, Capabilities: [][]string{{"gpu"}}},
				}}},
			},
			{
				ID: evalID, Name: "/eval", Path: "python eval.py", State: &container.State{Status: container.StateCreated}, Created: ago(26 * time.Hour),
				Config:     &container.Config{Image: "eval:latest", User: "bob", Env: []string{"NVIDIA_VISIBLE_DEVICES=" + spec.GPUs[3].UUID}},
				HostConfig: &container.HostConfig{Runtime: "nvidia"},
			},
			{
				ID: remoteID, Name: "/remote", Path: "sleep", State: &container.State{Status: container.StateRunning}, Created: ago(40 * time.Second),
				Config:     &container.Config{Image: "busybox", Labels: map[string]string{labels.User: "bob"}},
				HostConfig: gpuRequest("GPU-deadbeef-0000-1111-2222-333344445555"),
			},
			{
				ID: boardID, Name: "/tensorboard", Path: "tensorboard", State: &container.State{Status: container.StateRunning}, Created: ago(49 * time.Hour),
				Config:     &container.Config{Image: "tensorflow/tensorflow", User: "carol", Env: []string{"NVIDIA_VISIBLE_DEVICES=all"}},
				HostConfig: &container.HostConfig{Runtime: "runc"},
			},
		}},
		status: map[string]string{
			trainID: "Up 3 hours", notebookID: "Up 5 minutes", oldID: "Exited (0) 2 hours ago",
			evalID: "Created", remoteID: "Up 40 seconds", boardID: "Up 2 days",
		},
	}
	return spec, api
}

// psDeps is alice's docker CLI on psHost.
func psDeps(t *testing.T) (*bytesCLI, Deps, *psAPI) {
	t.Helper()
	spec, api := psHost()
	dockerCLI, out, errOut, deps := gpusCLI(t, spec, api, t.TempDir())
	deps.Now = func() time.Time { return gpusNow }
	deps.User = func() string { return "alice" }
	return &bytesCLI{Cli: dockerCLI, out: out, err: errOut}, deps, api
}

func TestPsOutput(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "table", args: []string{}},
		{name: "all", args: []string{"-a"}},
		{name: "all-no-trunc", args: []string{"--all", "--no-trunc"}},
		{name: "json", args: []string{"-a", "--format", "json"}},
		{name: "quiet", args: []string{"-q"}},
		{name: "quiet-all-no-trunc", args: []string{"-aq", "--no-trunc"}},
		{name: "template", args: []string{"-a", "--format", "{{.Names}} {{.State}} {{.GPUs}} {{.User}} {{.CreatedAt}} {{.Command}} {{.Label \"com.perceptron.user\"}}"}},
		{name: "table-template", args: []string{"--format", "table {{.Names}}\t{{.GPUs}}\t{{.Labels}}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, deps, _ := psDeps(t)
			assert.NilError(t, execute(t, c.Cli, deps, append([]string{"ps"}, tc.args...)...))
			assert.Equal(t, c.err.String(), "")
			golden.Assert(t, c.out.String(), "ps-"+tc.name+".golden")
		})
	}
}

// Without a driver ps still lists, and GPUs show as the configuration
// writes them.
func TestPsNoDriver(t *testing.T) {
	for name, open := range map[string]func() (nvml.Interface, error){
		"library not found": func() (nvml.Interface, error) {
			return gpustest.NewLibrary(gpustest.Spec{InitError: "ERROR_LIBRARY_NOT_FOUND"}), nil
		},
		"no library in this build": func() (nvml.Interface, error) { return nil, errors.New("NVML is not available in this build") },
	} {
		t.Run(name, func(t *testing.T) {
			c, deps, _ := psDeps(t)
			deps.NVML = open
			assert.NilError(t, execute(t, c.Cli, deps, "ps", "-a", "--format", "{{.Names}}\t{{.GPUs}}"))
			assert.Equal(t, c.err.String(), "")
			golden.Assert(t, c.out.String(), "ps-no-driver.golden")
		})
	}
}

// Each container is inspected once, through the cache that gpus and
// --gpus auto share; the NVML library is opened only when a GPU is shown.
func TestPsCache(t *testing.T) {
	c, deps, api := psDeps(t)
	opened := 0
	open := deps.NVML
	deps.NVML = func() (nvml.Interface, error) { opened++; return open() }
	assert.NilError(t, execute(t, c.Cli, deps, "gpus", "-q"))
	assert.Equal(t, int(api.inspects.Load()), 5) // the live containers
	assert.NilError(t, execute(t, c.Cli, deps, "ps", "-a", "-q"))
	assert.Equal(t, int(api.inspects.Load()), 6) // and the exited one
	assert.NilError(t, execute(t, c.Cli, deps, "ps", "-a"))
	assert.Equal(t, int(api.inspects.Load()), 6)
	assert.Equal(t, opened, 2) // gpus, and ps -a; ps -q shows no GPU

	// Carol has no GPU container: nothing to name, no NVML.
	opened = 0
	deps.User = func() string { return "carol" }
	c.out.Reset()
	assert.NilError(t, execute(t, c.Cli, deps, "ps", "--format", "{{.Names}}"))
	assert.Equal(t, c.out.String(), "tensorboard\n")
	assert.Equal(t, opened, 0)
	assert.Equal(t, int(api.inspects.Load()), 6)
}

func TestPsErrors(t *testing.T) {
	t.Run("unknown user", func(t *testing.T) {
		c, deps, _ := psDeps(t)
		deps.User = func() string { return "" }
		err := execute(t, c.Cli, deps, "ps")
		assertStatus(t, err, 125, "cannot tell which containers are yours: the current user is unknown; use --all to list every user's")
		// --all needs no user.
		assert.NilError(t, execute(t, c.Cli, deps, "ps", "-aq"))
	})
	t.Run("daemon unavailable", func(t *testing.T) {
		c, deps, api := psDeps(t)
		api.listErr = errors.New("Cannot connect to the Docker daemon")
		err := execute(t, c.Cli, deps, "ps")
		assertStatus(t, err, 125, "cannot list containers: Cannot connect to the Docker daemon")
		assert.Equal(t, c.out.String(), "")
	})
	t.Run("arguments", func(t *testing.T) {
		c, deps, _ := psDeps(t)
		err := execute(t, c.Cli, deps, "ps", "train")
		assert.ErrorContains(t, err, "accepts no arguments")
	})
}

func TestGpuNames(t *testing.T) {
	inv := gpus.Inventory{Devices: []gpus.Device{
		{Index: 0, UUID: "GPU-aaaa"}, {Index: 1, UUID: "GPU-bbbb"}, {Index: 2, UUID: "GPU-cccc"},
	}}
	tests := []struct {
		name           string
		res            holders.Reservation
		inv            gpus.Inventory
		defaultRuntime string
		want           string
	}{
		{name: "none", res: holders.Reservation{}, inv: inv, want: ""},
		{name: "indexes and UUIDs in index order", res: holders.Reservation{GPUs: []string{"2", "GPU-aaaa"}}, inv: inv, want: "0,2"},
		{name: "all", res: holders.Reservation{All: true}, inv: inv, want: "all"},
		{name: "a count is the first GPUs", res: holders.Reservation{First: 2}, inv: inv, want: "0,1"},
		{name: "a GPU this host lacks as written", res: holders.Reservation{GPUs: []string{"1", "GPU-ffff"}}, inv: inv, want: "1,GPU-ffff"},
		{name: "env under nvidia", res: holders.Reservation{EnvGPUs: []string{"GPU-cccc"}, Runtime: "nvidia"}, inv: inv, want: "2"},
		{name: "env under runc holds nothing", res: holders.Reservation{EnvGPUs: []string{"GPU-cccc"}, Runtime: "runc"}, inv: inv, want: ""},
		{name: "env all under the nvidia default", res: holders.Reservation{EnvAll: true}, inv: inv, defaultRuntime: "nvidia", want: "all"},
		{name: "env all under the runc default", res: holders.Reservation{EnvAll: true}, inv: inv, defaultRuntime: "runc", want: ""},
		{name: "no driver: as written", res: holders.Reservation{GPUs: []string{"0", "GPU-bbbb"}}, want: "0,GPU-bbbb"},
		{name: "no driver: a count", res: holders.Reservation{First: 2}, want: "first 2"},
		{name: "no driver: all", res: holders.Reservation{All: true}, want: "all"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, strings.Join(gpuNames(tc.res, tc.inv, tc.defaultRuntime), ","), tc.want)
		})
	}
}
