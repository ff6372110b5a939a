package holders

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/labels"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// loadFake reads the inventory of fake GPUs.
func loadFake(t *testing.T, spec gpustest.Spec) gpus.Inventory {
	t.Helper()
	inv, err := gpus.Load(gpustest.NewLibrary(spec))
	assert.NilError(t, err)
	return inv
}

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
		planned = id64('b') // created, --gpus device=GPU 3's UUID; its labels say GPU 0, and are not believed
		stopped = id64('c') // exited: holds nothing
		envAll  = id64('d') // paused, NVIDIA_VISIBLE_DEVICES=0
		gone    = id64('e') // removed between list and inspect
	)
	inv := loadFake(t, gpustest.FourH100())
	inv.Devices[1].Processes = append(inv.Devices[1].Processes, gpus.Process{PID: 4343}, gpus.Process{PID: 99})
	inv.Devices[0].Processes = []gpus.Process{{PID: 555}}

	proc := t.TempDir()
	writeProc(t, proc, 4242, train, 1000)
	writeProc(t, proc, 4343, train, 1000)
	writeProc(t, proc, 555, "", 0)
	// PID 99 is in no /proc we can see.

	docker := &fakeDocker{}
	docker.add(train, "train", container.StateRunning, nil, inspectWith(nil, map[string]string{labels.User: "alice"}, "",
		container.DeviceRequest{DeviceIDs: []string{"1", "GPU-cccccccc-1111-2222-3333-444455556666"}, Capabilities: [][]string{{"gpu"}}}))
	docker.add(planned, "planned", container.StateCreated, nil, inspectWith(nil, map[string]string{labels.User: "bob", labels.GPUs: "GPU-aaaaaaaa-1111-2222-3333-444455556666"}, "",
		container.DeviceRequest{Driver: "nvidia", DeviceIDs: []string{"GPU-dddddddd-1111-2222-3333-444455556666"}}))
	docker.add(stopped, "old", container.StateExited, nil, inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, ""))
	docker.add(envAll, "notebook", container.StatePaused, nil, inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=0"}, nil, "jovyan"))
	docker.list = append(docker.list, container.Summary{ID: gone, Names: []string{"/gone"}, State: container.StateRunning})

	cache := MemoryCache{}
	l := Finder{API: docker, ProcRoot: proc, Cache: cache, Parallel: 2}
	got, err := l.Find(t.Context(), inv)
	assert.NilError(t, err)

	assert.DeepEqual(t, got.Reserved, map[int]bool{0: true, 1: true, 2: true, 3: true})
	assert.DeepEqual(t, got.ByGPU[0], []Holder{
		{User: "root", PIDs: []int{555}, ByProcess: true},
		{ContainerID: envAll, ContainerName: "notebook", User: "jovyan", ByReservation: true, State: container.StatePaused},
	})
	assert.DeepEqual(t, got.ByGPU[1], []Holder{
		{PIDs: []int{99}, ByProcess: true},
		{ContainerID: train, ContainerName: "train", User: "alice", PIDs: []int{4242, 4343}, ByProcess: true, ByReservation: true, Named: true, State: container.StateRunning},
	})
	assert.DeepEqual(t, got.ByGPU[2], []Holder{{ContainerID: train, ContainerName: "train", User: "alice", ByReservation: true, Named: true, State: container.StateRunning}})
	assert.DeepEqual(t, got.ByGPU[3], []Holder{{ContainerID: planned, ContainerName: "planned", User: "bob", ByReservation: true, Named: true, State: container.StateCreated}})

	// Every live container is inspected, labels or not; exited ones are
	// not; then all is cached.
	assert.DeepEqual(t, slices.Sorted(slices.Values(docker.inspects)), []string{train, planned, envAll, gone})
	assert.Equal(t, len(cache), 3)
	docker.inspects = nil
	_, err = l.Find(t.Context(), inv)
	assert.NilError(t, err)
	assert.DeepEqual(t, docker.inspects, []string{gone})
}

func TestStatusWithoutDocker(t *testing.T) {
	inv := loadFake(t, gpustest.FourH100())
	got, err := Finder{ProcRoot: t.TempDir()}.Find(t.Context(), inv)
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Reserved, map[int]bool{0: false, 1: false, 2: false, 3: false})
	assert.Check(t, len(got.ByGPU[0]) == 0)
	assert.DeepEqual(t, got.ByGPU[1], []Holder{{PIDs: []int{4242}, ByProcess: true}})
}

func TestStatusErrors(t *testing.T) {
	inv := loadFake(t, gpustest.FourH100())
	_, err := Finder{API: &fakeDocker{listErr: fmt.Errorf("daemon down")}, ProcRoot: t.TempDir()}.Find(t.Context(), inv)
	assert.ErrorContains(t, err, "cannot list containers: daemon down")
}

// An NGC image's NVIDIA_VISIBLE_DEVICES=all reserves the GPUs only when
// NVIDIA's runtime runs the container; --gpus does whatever the runtime.
func TestStatusRuntime(t *testing.T) {
	ngcEnv := []string{"PATH=/usr/bin", "NVIDIA_VISIBLE_DEVICES=all"}
	tests := []struct {
		name           string
		ctr            container.InspectResponse
		defaultRuntime string
		want           []bool // whether each of the four GPUs is reserved
	}{
		{
			name: "tensorboard on runc", ctr: onRuntime("runc", inspectWith(ngcEnv, nil, "")), defaultRuntime: "runc",
			want: []bool{false, false, false, false},
		},
		{
			name: "runtime not recorded, default runc", ctr: inspectWith(ngcEnv, nil, ""), defaultRuntime: "runc",
			want: []bool{false, false, false, false},
		},
		{
			name: "runtime not recorded, default nvidia", ctr: inspectWith(ngcEnv, nil, ""), defaultRuntime: "nvidia",
			want: []bool{true, true, true, true},
		},
		{
			name: "runtime not recorded, default unknown", ctr: inspectWith(ngcEnv, nil, ""),
			want: []bool{true, true, true, true},
		},
		{
			name: "--runtime nvidia", ctr: onRuntime("nvidia", inspectWith(ngcEnv, nil, "")), defaultRuntime: "runc",
			want: []bool{true, true, true, true},
		},
		{
			name: "--gpus device=2 on runc", defaultRuntime: "runc",
			ctr:  onRuntime("runc", inspectWith(ngcEnv, nil, "", container.DeviceRequest{DeviceIDs: []string{"2"}, Capabilities: [][]string{{"gpu"}}})),
			want: []bool{false, false, true, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := loadFake(t, gpustest.FourH100())
			docker := &fakeDocker{}
			docker.add(id64('a'), "tf", container.StateRunning, nil, tc.ctr)
			cache := MemoryCache{}
			for range 2 { // the cached reservation decides the same
				got, err := Finder{API: docker, ProcRoot: t.TempDir(), Cache: cache, DefaultRuntime: tc.defaultRuntime}.Find(t.Context(), inv)
				assert.NilError(t, err)
				reserved := make([]bool, len(inv.Devices))
				for i := range reserved {
					reserved[i] = got.Reserved[i]
				}
				assert.DeepEqual(t, reserved, tc.want)
			}
			assert.DeepEqual(t, docker.inspects, []string{id64('a')})
		})
	}
}

// A container holder without labels.User or Config.User is named by the
// owner of its GPU process.
func TestStatusUserFromProcess(t *testing.T) {
	plain := id64('a')
	inv := loadFake(t, gpustest.FourH100())
	proc := t.TempDir()
	writeProc(t, proc, 4242, plain, 0)
	docker := &fakeDocker{}
	docker.add(plain, "sleepy", container.StateRunning, nil, inspectWith(nil, nil, ""))
	// Inspected, then known from the cache: a container that holds no GPU
	// is still named when a GPU process runs in it.
	f := Finder{API: docker, ProcRoot: proc, Cache: MemoryCache{}}
	for range 2 {
		got, err := f.Find(t.Context(), inv)
		assert.NilError(t, err)
		assert.DeepEqual(t, got.ByGPU[1], []Holder{{ContainerID: plain, ContainerName: "sleepy", User: "root", PIDs: []int{4242}, ByProcess: true, State: container.StateRunning}})
	}
	assert.Check(t, is.Len(docker.inspects, 1))
}

// Reservations cached by an older version, which merged
// NVIDIA_VISIBLE_DEVICES into GPUs, are read again.
func TestStatusOldCache(t *testing.T) {
	ngc := id64('a')
	inv := loadFake(t, gpustest.FourH100())
	docker := &fakeDocker{}
	docker.add(ngc, "tensorboard", container.StateRunning, nil, onRuntime("runc", inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, "")))
	cache := MemoryCache{ngc: {All: true}}
	got, err := Finder{API: docker, ProcRoot: t.TempDir(), Cache: cache, DefaultRuntime: "runc"}.Find(t.Context(), inv)
	assert.NilError(t, err)
	assert.Check(t, !got.Reserved[0])
	assert.DeepEqual(t, docker.inspects, []string{ngc})
	assert.DeepEqual(t, cache[ngc], Reservation{EnvAll: true, Runtime: "runc", Format: reservationFormat})
}

// A container holds its GPUs in every state but exited, dead and being
// removed: a restarting one is about to run again on them.
func TestFindByState(t *testing.T) {
	inv := loadFake(t, gpustest.FourH100())
	for state, want := range map[container.ContainerState]bool{
		container.StateRunning: true, container.StateCreated: true, container.StatePaused: true, container.StateRestarting: true,
		container.StateExited: false, container.StateDead: false, container.StateRemoving: false,
	} {
		t.Run(string(state), func(t *testing.T) {
			docker := &fakeDocker{}
			docker.add(id64('a'), "job", state, nil, inspectWith(nil, nil, "",
				container.DeviceRequest{DeviceIDs: []string{"3"}, Capabilities: [][]string{{"gpu"}}}))
			got, err := Finder{API: docker, ProcRoot: t.TempDir()}.Find(t.Context(), inv)
			assert.NilError(t, err)
			assert.Check(t, got.Reserved[3] == want, "reserved: %v", got.Reserved[3])
			assert.Check(t, Live(state) == want)
		})
	}
}

// A container that `run` created with a claim and never started holds its
// GPUs for a lease time; then it is stale and holds nothing, but is shown.
// One from `create` keeps them.
func TestFindStale(t *testing.T) {
	inv := loadFake(t, gpustest.FourH100())
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	req := container.DeviceRequest{Driver: "nvidia", DeviceIDs: []string{"3"}}
	for _, tc := range []struct {
		name    string
		command string
		age     time.Duration
		state   container.ContainerState
		stale   bool
	}{
		{name: "run, young", command: "run", age: 30 * time.Second, state: container.StateCreated},
		{name: "run, past the lease", command: "run", age: 2 * time.Minute, state: container.StateCreated, stale: true},
		{name: "run, running", command: "run", age: time.Hour, state: container.StateRunning},
		{name: "create, past the lease", command: "create", age: time.Hour, state: container.StateCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docker := &fakeDocker{}
			lbl := map[string]string{labels.Claim: "TOKEN", labels.Command: tc.command}
			docker.add(id64('a'), "job", tc.state, lbl, inspectWith(nil, nil, "", req))
			docker.list[0].Created = now.Add(-tc.age).Unix()
			f := Finder{API: docker, ProcRoot: t.TempDir(), Now: func() time.Time { return now }, StaleAfter: time.Minute}
			got, err := f.Find(t.Context(), inv)
			assert.NilError(t, err)
			assert.Check(t, got.Reserved[3] == !tc.stale)
			assert.Assert(t, len(got.ByGPU[3]) == 1)
			h := got.ByGPU[3][0]
			assert.Check(t, h.Stale == tc.stale)
			assert.Check(t, h.Since.Equal(time.Unix(now.Add(-tc.age).Unix(), 0)), "%v", h.Since)
		})
	}
}

// Grants of another daemon hold GPUs its listing cannot show: while their
// run lives, while their container has a process here, and for `create`
// until their owner removes them. This daemon's own grants are pruned by
// their owner once their container no longer holds.
func TestFindGrants(t *testing.T) {
	inv := loadFake(t, gpustest.FourH100())
	gpu := func(i int) []string { return []string{inv.Devices[i].UUID} }
	other, gone := strings.Repeat("a", 64), strings.Repeat("b", 64)
	proc := t.TempDir()
	writeProc(t, proc, 4000, other, 0) // a process of the other daemon's container
	state := filepath.Join(t.TempDir(), "state")
	write := func(token string, uuids []string, daemon, ctr, command string, alive bool) {
		g := ledger.NewGrant(token, uuids, daemon, command)
		g.ContainerID = ctr
		if !alive {
			g.Start++ // not this process: its run is over
		}
		assert.NilError(t, ledger.WriteGrant(state, g))
	}
	write("CREATING", gpu(0), "other", "", "run", true)
	write("RUNNING", gpu(1), "other", other, "run", false)
	write("EXITED", gpu(2), "other", gone, "run", false)
	write("CREATED", gpu(3), "other", gone, "create", false)
	write("MINEGONE", gpu(2), "this", gone, "run", false)

	f := Finder{API: &fakeDocker{}, ProcRoot: proc, StateDir: state, DaemonID: "this"}
	got, err := f.Find(t.Context(), inv)
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Reserved, map[int]bool{0: true, 1: true, 2: false, 3: true})
	assert.Check(t, slices.ContainsFunc(got.ByGPU[1], func(h Holder) bool { return h.OtherDaemon && h.ContainerID == other }), "%+v", got.ByGPU[1])
	assert.Check(t, is.Equal(got.ByGPU[0][0].ContainerName, "a container being created"))
	grants, err := ledger.Grants(state)
	assert.NilError(t, err)
	assert.Check(t, is.Len(grants, 4), "this daemon's grant of a container gone was not pruned")
}

// A GPU used by a process whose container does not name it is unclaimed:
// a host process, --gpus all, --privileged, NVIDIA_VISIBLE_DEVICES=all
// under NVIDIA's runtime; the last three see every GPU.
func TestUnclaimed(t *testing.T) {
	var (
		named      = id64('a')
		all        = id64('b')
		privileged = id64('c')
		envAll     = id64('d')
	)
	inv := loadFake(t, gpustest.FourH100())
	for i := range inv.Devices {
		inv.Devices[i].Processes = []gpus.Process{{PID: 100 + i}}
	}
	proc := t.TempDir()
	writeProc(t, proc, 100, named, 0)
	writeProc(t, proc, 101, all, 0)
	writeProc(t, proc, 102, privileged, 0)
	writeProc(t, proc, 103, "", 1000) // a host process
	docker := &fakeDocker{}
	docker.add(named, "named", container.StateRunning, nil, inspectWith(nil, nil, "",
		container.DeviceRequest{DeviceIDs: []string{inv.Devices[0].UUID}, Capabilities: [][]string{{"gpu"}}}))
	docker.add(all, "all", container.StateRunning, nil, inspectWith(nil, nil, "",
		container.DeviceRequest{Count: -1, Capabilities: [][]string{{"gpu"}}}))
	priv := inspectWith(nil, nil, "")
	priv.HostConfig.Privileged = true
	docker.add(privileged, "priv", container.StateRunning, nil, priv)
	docker.add(envAll, "ngc", container.StateRunning, nil, inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, ""))
	got, err := Finder{API: docker, ProcRoot: proc, DefaultRuntime: "nvidia"}.Find(t.Context(), inv)
	assert.NilError(t, err)
	find := func(gpu int, pid int) Holder {
		for _, h := range got.ByGPU[gpu] {
			if slices.Contains(h.PIDs, pid) {
				return h
			}
		}
		t.Fatalf("GPU %d: no holder with pid %d in %+v", gpu, pid, got.ByGPU[gpu])
		return Holder{}
	}
	tests := []struct {
		gpu, pid           int
		unclaimed, seesAll bool
	}{
		{gpu: 0, pid: 100, unclaimed: false},
		{gpu: 1, pid: 101, unclaimed: true, seesAll: true},
		{gpu: 2, pid: 102, unclaimed: true, seesAll: true},
		{gpu: 3, pid: 103, unclaimed: true},
	}
	for _, tc := range tests {
		h := find(tc.gpu, tc.pid)
		assert.Check(t, is.Equal(h.Unclaimed(), tc.unclaimed), "GPU %d: %+v", tc.gpu, h)
		assert.Check(t, is.Equal(h.SeesAll, tc.seesAll), "GPU %d: %+v", tc.gpu, h)
	}
	// The NGC container holds every GPU by its environment and sees them all.
	ngc := slices.IndexFunc(got.ByGPU[3], func(h Holder) bool { return h.ContainerID == envAll })
	assert.Assert(t, ngc >= 0)
	assert.Check(t, got.ByGPU[3][ngc].SeesAll)
}

// A MIG device's holders: the containers that name it or hold its GPU
// whole, and the processes on it.
func TestAttributeMIG(t *testing.T) {
	inv := gpus.Inventory{Devices: []gpus.Device{
		{Index: 0, UUID: "GPU-p", MIGEnabled: true, Processes: []gpus.Process{{PID: 42}}, MIG: []gpus.MIGDevice{
			{Index: 0, UUID: "MIG-0", Processes: []gpus.Process{{PID: 42}}},
			{Index: 1, UUID: "MIG-1"},
			{Index: 2, UUID: "MIG-2"},
		}},
	}}
	live := map[string]Container{
		"c1": {Name: "one", Reservation: Reservation{GPUs: []string{"MIG-1"}, User: "alice"}},
		"c2": {Name: "stale", Reservation: Reservation{GPUs: []string{"MIG-2"}}, Stale: true},
		"c3": {Name: "proc"},
	}
	procs := map[int]Proc{42: {ContainerID: "c3", Owner: "bob"}}
	h := Attribute(inv, live, procs, "runc")
	assert.DeepEqual(t, h.ReservedMIG, map[string]bool{"MIG-0": false, "MIG-1": true, "MIG-2": false})
	assert.Equal(t, len(h.ByMIG["MIG-0"]), 1)
	assert.Check(t, h.ByMIG["MIG-0"][0].ByProcess && h.ByMIG["MIG-0"][0].ContainerName == "proc")
	assert.Equal(t, h.ByMIG["MIG-1"][0].ContainerName, "one")
	assert.Check(t, h.ByMIG["MIG-1"][0].Named && h.ByMIG["MIG-1"][0].ByReservation)
	assert.Check(t, h.ByMIG["MIG-2"][0].Stale)
	// The parent shows its slices' holders too.
	assert.Check(t, h.Reserved[0])
}
