package gpus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
)

// fakeDocker serves ContainerList and ContainerInspect from memory.
type fakeDocker struct {
	mu       sync.Mutex
	list     []container.Summary
	inspect  map[string]container.InspectResponse
	listErr  error
	inspects []string
}

func (f *fakeDocker) ContainerList(_ context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	if !opts.All {
		return client.ContainerListResult{}, fmt.Errorf("want All")
	}
	return client.ContainerListResult{Items: f.list}, f.listErr
}

func (f *fakeDocker) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects = append(f.inspects, id)
	c, ok := f.inspect[id]
	if !ok {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound.WithMessage("no such container: " + id)
	}
	return client.ContainerInspectResult{Container: c}, nil
}

// add adds a container to the fake daemon.
func (f *fakeDocker) add(id, name string, state container.ContainerState, labels map[string]string, ctr container.InspectResponse) {
	f.list = append(f.list, container.Summary{ID: id, Names: []string{"/" + name}, State: state, Labels: labels})
	if f.inspect == nil {
		f.inspect = map[string]container.InspectResponse{}
	}
	ctr.ID, ctr.Name = id, "/"+name
	f.inspect[id] = ctr
}

// writeProc makes procRoot/PID/{cgroup,status}.
func writeProc(t *testing.T, procRoot string, pid int, containerID string, uid int) {
	t.Helper()
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	cgroup := "0::/user.slice/user-1000.slice/session-1.scope\n"
	if containerID != "" {
		cgroup = "0::/system.slice/docker-" + containerID + ".scope\n"
	}
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644))
	status := fmt.Sprintf("Name:\tpython\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644))
}

func id64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestStatus(t *testing.T) {
	var (
		train   = id64('a') // runs on GPU 1, reserves GPUs 1 and 2 by --gpus
		planned = id64('b') // created by the plugin, label reservation of GPU 3
		stopped = id64('c') // exited: holds nothing
		envAll  = id64('d') // paused, NVIDIA_VISIBLE_DEVICES=0
		gone    = id64('e') // removed between list and inspect
	)
	inv := mustLoad(t, NewFakeLibrary(fourH100()))
	inv.Devices[1].Processes = append(inv.Devices[1].Processes, Process{PID: 4343}, Process{PID: 99})
	inv.Devices[0].Processes = []Process{{PID: 555}}

	proc := t.TempDir()
	writeProc(t, proc, 4242, train, 1000)
	writeProc(t, proc, 4343, train, 1000)
	writeProc(t, proc, 555, "", 0)
	// PID 99 is in no /proc we can see.

	docker := &fakeDocker{}
	docker.add(train, "train", container.StateRunning, nil, inspectWith(nil, map[string]string{LabelUser: "alice"}, "",
		container.DeviceRequest{DeviceIDs: []string{"1", "GPU-cccccccc-1111-2222-3333-444455556666"}, Capabilities: [][]string{{"gpu"}}}))
	docker.add(planned, "planned", container.StateCreated, map[string]string{LabelUser: "bob", LabelGPUs: "GPU-dddddddd-1111-2222-3333-444455556666"}, container.InspectResponse{})
	docker.add(stopped, "old", container.StateExited, nil, inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, ""))
	docker.add(envAll, "notebook", container.StatePaused, nil, inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=0"}, nil, "jovyan"))
	docker.list = append(docker.list, container.Summary{ID: gone, Names: []string{"/gone"}, State: container.StateRunning})

	cache := MemoryCache{}
	l := Lookup{API: docker, ProcRoot: proc, Cache: cache, Parallel: 2}
	got, err := l.Status(t.Context(), inv)
	assert.NilError(t, err)

	states := make([]string, len(got))
	for i, s := range got {
		states[i] = s.State
	}
	assert.DeepEqual(t, states, []string{StateBusyReserved, StateBusyReserved, StateReserved, StateReserved})
	assert.DeepEqual(t, got[0].Holders, []Holder{
		{User: "root", PIDs: []int{555}, ByProcess: true},
		{ContainerID: envAll, ContainerName: "notebook", User: "jovyan", ByReservation: true},
	})
	assert.DeepEqual(t, got[1].Holders, []Holder{
		{PIDs: []int{99}, ByProcess: true},
		{ContainerID: train, ContainerName: "train", User: "alice", PIDs: []int{4242, 4343}, ByProcess: true, ByReservation: true},
	})
	assert.DeepEqual(t, got[2].Holders, []Holder{{ContainerID: train, ContainerName: "train", User: "alice", ByReservation: true}})
	assert.DeepEqual(t, got[3].Holders, []Holder{{ContainerID: planned, ContainerName: "planned", User: "bob", ByReservation: true}})

	// Labelled and exited containers are not inspected; then all is cached.
	assert.DeepEqual(t, slices.Sorted(slices.Values(docker.inspects)), []string{train, envAll, gone})
	assert.Equal(t, len(cache), 3)
	docker.inspects = nil
	_, err = l.Status(t.Context(), inv)
	assert.NilError(t, err)
	assert.DeepEqual(t, docker.inspects, []string{gone})
}

func TestStatusWithoutDocker(t *testing.T) {
	inv := mustLoad(t, NewFakeLibrary(fourH100()))
	got, err := Status(t.Context(), inv, nil, t.TempDir())
	assert.NilError(t, err)
	assert.Equal(t, got[0].State, StateFree)
	assert.Equal(t, got[1].State, StateBusy)
	assert.DeepEqual(t, got[1].Holders, []Holder{{PIDs: []int{4242}, ByProcess: true}})
}

func TestStatusErrors(t *testing.T) {
	inv := mustLoad(t, NewFakeLibrary(fourH100()))
	_, err := Status(t.Context(), inv, &fakeDocker{listErr: fmt.Errorf("daemon down")}, t.TempDir())
	assert.ErrorContains(t, err, "cannot list containers: daemon down")
}

func TestState(t *testing.T) {
	tests := []struct {
		name     string
		d        Device
		reserved bool
		want     string
	}{
		{name: "idle", d: Device{MemoryUsedMiB: 4}, want: StateFree},
		{name: "memory at threshold", d: Device{MemoryUsedMiB: BusyMemoryMiB}, want: StateFree},
		{name: "memory above threshold", d: Device{MemoryUsedMiB: BusyMemoryMiB + 1}, want: StateBusy},
		{name: "process", d: Device{Processes: []Process{{PID: 1}}}, want: StateBusy},
		{name: "reserved", d: Device{}, reserved: true, want: StateReserved},
		{name: "busy and reserved", d: Device{Processes: []Process{{PID: 1}}}, reserved: true, want: StateBusyReserved},
		{name: "processes unknown, memory idle", d: Device{Errors: map[string]string{"processes": "x"}}, want: StateFree},
		{name: "processes unknown, memory used", d: Device{MemoryUsedMiB: 9000, Errors: map[string]string{"processes": "x"}}, want: StateBusy},
		{name: "nothing known", d: Device{Errors: map[string]string{"processes": "x", "memory": "x"}}, want: StateUnknown},
		{name: "nothing known but reserved", d: Device{Errors: map[string]string{"processes": "x", "memory": "x"}}, reserved: true, want: StateReserved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, state(tc.d, tc.reserved), tc.want)
		})
	}
}
