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

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
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
	inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
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
	inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
	got, err := Status(t.Context(), inv, nil, t.TempDir())
	assert.NilError(t, err)
	assert.Equal(t, got[0].State, StateFree)
	assert.Equal(t, got[1].State, StateBusy)
	assert.DeepEqual(t, got[1].Holders, []Holder{{PIDs: []int{4242}, ByProcess: true}})
}

func TestStatusErrors(t *testing.T) {
	inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
	_, err := Status(t.Context(), inv, &fakeDocker{listErr: fmt.Errorf("daemon down")}, t.TempDir())
	assert.ErrorContains(t, err, "cannot list containers: daemon down")
}

func TestState(t *testing.T) {
	def := DefaultThresholds()
	tests := []struct {
		name     string
		d        Device
		reserved bool
		t        Thresholds
		want     string
	}{
		{name: "idle", d: Device{MemoryUsedMiB: 4}, want: StateFree},
		{name: "memory at threshold", d: Device{MemoryUsedMiB: def.MaxMemoryUsedMiB}, want: StateFree},
		{name: "memory above threshold", d: Device{MemoryUsedMiB: def.MaxMemoryUsedMiB + 1}, want: StateBusy},
		{name: "memory above a lower threshold", d: Device{MemoryUsedMiB: 300}, t: Thresholds{MaxMemoryUsedMiB: 256, MaxUtilizationPercent: 10}, want: StateBusy},
		{name: "utilisation at threshold", d: Device{UtilizationPercent: def.MaxUtilizationPercent}, want: StateFree},
		{name: "utilisation above threshold", d: Device{UtilizationPercent: def.MaxUtilizationPercent + 1}, want: StateBusy},
		{name: "process", d: Device{Processes: []Process{{PID: 1}}}, want: StateBusy},
		{name: "reserved", d: Device{}, reserved: true, want: StateReserved},
		{name: "busy and reserved", d: Device{Processes: []Process{{PID: 1}}}, reserved: true, want: StateBusyReserved},
		{name: "processes unknown, memory idle", d: Device{Errors: map[string]string{"processes": "x"}}, want: StateUnknown},
		{name: "processes unknown, memory used", d: Device{MemoryUsedMiB: 9000, Errors: map[string]string{"processes": "x"}}, want: StateBusy},
		{name: "utilisation unknown", d: Device{Errors: map[string]string{"utilization": "x"}}, want: StateUnknown},
		{name: "utilisation unknown, process", d: Device{Processes: []Process{{PID: 1}}, Errors: map[string]string{"utilization": "x"}}, want: StateBusy},
		{name: "mig idle", d: Device{MIGEnabled: true}, want: StateUnknown},
		{name: "mig with process", d: Device{MIGEnabled: true, Processes: []Process{{PID: 1}}}, want: StateBusy},
		{name: "nothing known", d: Device{Errors: map[string]string{"processes": "x", "memory": "x", "utilization": "x"}}, want: StateUnknown},
		{name: "nothing known but reserved", d: Device{Errors: map[string]string{"processes": "x", "memory": "x"}}, reserved: true, want: StateReserved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := tc.t
			if th == (Thresholds{}) {
				th = def
			}
			got := State(tc.d, tc.reserved, th)
			assert.Equal(t, got, tc.want)
			// Free exactly when the selection would give it out.
			ok, why := Candidate(tc.d, tc.reserved, th)
			assert.Equal(t, got == StateFree, ok, why)
		})
	}
}

// An NGC image's NVIDIA_VISIBLE_DEVICES=all reserves the GPUs only when
// NVIDIA's runtime runs the container; --gpus does whatever the runtime.
func TestStatusRuntime(t *testing.T) {
	ngcEnv := []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all"}
	tests := []struct {
		name           string
		ctr            container.InspectResponse
		defaultRuntime string
		want           []string // states of the four GPUs
	}{
		{
			name: "tensorboard on runc", ctr: onRuntime("runc", inspectWith(ngcEnv, nil, "")), defaultRuntime: "runc",
			want: []string{StateFree, StateBusy, StateFree, StateFree},
		},
		{
			name: "runtime not recorded, default runc", ctr: inspectWith(ngcEnv, nil, ""), defaultRuntime: "runc",
			want: []string{StateFree, StateBusy, StateFree, StateFree},
		},
		{
			name: "runtime not recorded, default nvidia", ctr: inspectWith(ngcEnv, nil, ""), defaultRuntime: "nvidia",
			want: []string{StateReserved, StateBusyReserved, StateReserved, StateReserved},
		},
		{
			name: "runtime not recorded, default unknown", ctr: inspectWith(ngcEnv, nil, ""),
			want: []string{StateReserved, StateBusyReserved, StateReserved, StateReserved},
		},
		{
			name: "--runtime nvidia", ctr: onRuntime("nvidia", inspectWith(ngcEnv, nil, "")), defaultRuntime: "runc",
			want: []string{StateReserved, StateBusyReserved, StateReserved, StateReserved},
		},
		{
			name: "--gpus device=2 on runc", defaultRuntime: "runc",
			ctr:  onRuntime("runc", inspectWith(ngcEnv, nil, "", container.DeviceRequest{DeviceIDs: []string{"2"}, Capabilities: [][]string{{"gpu"}}})),
			want: []string{StateFree, StateBusy, StateReserved, StateFree},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
			docker := &fakeDocker{}
			docker.add(id64('a'), "tf", container.StateRunning, nil, tc.ctr)
			cache := MemoryCache{}
			for range 2 { // the cached reservation decides the same
				got, err := Lookup{API: docker, ProcRoot: t.TempDir(), Cache: cache, DefaultRuntime: tc.defaultRuntime}.Status(t.Context(), inv)
				assert.NilError(t, err)
				states := make([]string, len(got))
				for i, s := range got {
					states[i] = s.State
				}
				assert.DeepEqual(t, states, tc.want)
			}
			assert.DeepEqual(t, docker.inspects, []string{id64('a')})
		})
	}
}

// A container holder without LabelUser or Config.User is named by the
// owner of its GPU process.
func TestStatusUserFromProcess(t *testing.T) {
	plain := id64('a')
	inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
	proc := t.TempDir()
	writeProc(t, proc, 4242, plain, 0)
	docker := &fakeDocker{}
	docker.add(plain, "sleepy", container.StateRunning, nil, inspectWith(nil, nil, ""))
	got, err := Lookup{API: docker, ProcRoot: proc}.Status(t.Context(), inv)
	assert.NilError(t, err)
	assert.DeepEqual(t, got[1].Holders, []Holder{{ContainerID: plain, ContainerName: "sleepy", User: "root", PIDs: []int{4242}, ByProcess: true}})
}

// Reservations cached by an older version, which merged
// NVIDIA_VISIBLE_DEVICES into GPUs, are read again.
func TestStatusOldCache(t *testing.T) {
	ngc := id64('a')
	inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
	docker := &fakeDocker{}
	docker.add(ngc, "tensorboard", container.StateRunning, nil, onRuntime("runc", inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, "")))
	cache := MemoryCache{ngc: {All: true}}
	got, err := Lookup{API: docker, ProcRoot: t.TempDir(), Cache: cache, DefaultRuntime: "runc"}.Status(t.Context(), inv)
	assert.NilError(t, err)
	assert.Equal(t, got[0].State, StateFree)
	assert.DeepEqual(t, docker.inspects, []string{ngc})
	assert.DeepEqual(t, cache[ngc], Reservation{EnvAll: true, Runtime: "runc", Format: reservationFormat})
}

// Status and the selection share the thresholds.
func TestStatusThresholds(t *testing.T) {
	spec := gpustest.FourH100()
	spec.GPUs[2].MemoryUsedMiB = 600     // an idle CUDA context
	spec.GPUs[3].UtilizationPercent = 30 // no process visible, but working
	inv := mustLoad(t, gpustest.NewLibrary(spec))
	tests := []struct {
		name string
		t    *Thresholds
		want []string
	}{
		{name: "default", want: []string{StateFree, StateBusy, StateFree, StateBusy}},
		{name: "strict", t: &Thresholds{MaxMemoryUsedMiB: 256, MaxUtilizationPercent: 10}, want: []string{StateFree, StateBusy, StateBusy, StateBusy}},
		{name: "zero", t: &Thresholds{}, want: []string{StateFree, StateBusy, StateBusy, StateBusy}},
		{name: "lenient", t: &Thresholds{MaxMemoryUsedMiB: 1024, MaxUtilizationPercent: 50}, want: []string{StateFree, StateBusy, StateFree, StateFree}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Lookup{ProcRoot: t.TempDir(), Thresholds: tc.t}.Status(t.Context(), inv)
			assert.NilError(t, err)
			th := DefaultThresholds()
			if tc.t != nil {
				th = *tc.t
			}
			for i, s := range got {
				assert.Check(t, s.State == tc.want[i], "GPU %d: %s, want %s", i, s.State, tc.want[i])
				ok, _ := Candidate(s.Device, false, th)
				assert.Check(t, ok == (s.State == StateFree), "GPU %d", i)
			}
		})
	}
}
