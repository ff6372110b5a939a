package alloc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/labels"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// daemon is a fake Docker daemon whose containers hold GPUs by device
// request, as docker perceptron creates them.
type daemon struct {
	mu   sync.Mutex
	list []container.Summary
	gpus map[string][]string // container ID -> the UUIDs it asked for
}

func (d *daemon) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return client.ContainerListResult{Items: slices.Clone(d.list)}, nil
}

func (d *daemon) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	uuids, ok := d.gpus[id]
	i := slices.IndexFunc(d.list, func(c container.Summary) bool { return c.ID == id })
	if !ok || i < 0 {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound.WithMessage("no such container: " + id)
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{
		ID: id, Config: &container.Config{Labels: d.list[i].Labels},
		HostConfig: &container.HostConfig{Resources: container.Resources{DeviceRequests: []container.DeviceRequest{
			{Driver: "nvidia", DeviceIDs: uuids, Capabilities: [][]string{{"gpu"}}},
		}}},
	}}, nil
}

// create adds a running container holding uuids, labelled as docker
// perceptron labels it.
func (d *daemon) create(name, user string, uuids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := fmt.Sprintf("%064d", len(d.list)+1)
	d.list = append(d.list, container.Summary{
		ID: id, Names: []string{"/" + name}, State: container.StateRunning,
		Labels: map[string]string{labels.User: user, labels.GPUs: strings.Join(uuids, ",")},
	})
	if d.gpus == nil {
		d.gpus = map[string][]string{}
	}
	d.gpus[id] = uuids
}

func (d *daemon) removeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = nil
}

func fakeHost(n int, busy ...int) gpustest.Spec {
	spec := gpustest.Spec{DriverVersion: "580.95.05", CUDAVersion: "13.0"}
	for i := range n {
		g := gpustest.GPU{UUID: fmt.Sprintf("GPU-%08d-0000-0000-0000-000000000000", i), Name: "NVIDIA H100 80GB HBM3",
			PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x18+i), MemoryTotalMiB: 81559}
		if slices.Contains(busy, i) {
			g.MemoryUsedMiB = 30000
			g.Processes = []gpustest.Process{{PID: 4242, UsedMemoryMiB: 30000}}
		}
		spec.GPUs = append(spec.GPUs, g)
	}
	return spec
}

func newAllocator(t *testing.T, spec gpustest.Spec, d *daemon) *Allocator {
	t.Helper()
	return &Allocator{
		NVML:     func() (nvml.Interface, error) { return gpustest.NewLibrary(spec), nil },
		Holders:  holders.Finder{API: d, ProcRoot: t.TempDir()},
		StateDir: filepath.Join(t.TempDir(), "state"),
		Now:      time.Now,
		Poll:     10 * time.Millisecond,
	}
}

func TestClaimSkipsHeldGPUs(t *testing.T) {
	d := &daemon{}
	a := newAllocator(t, fakeHost(4, 1), d)
	d.create("train-bob", "bob", []string{"GPU-00000000-0000-0000-0000-000000000000"})

	c, err := a.Claim(t.Context(), Request{Count: 2, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer c.Release()
	assert.DeepEqual(t, c.UUIDs(), []string{"GPU-00000002-0000-0000-0000-000000000000", "GPU-00000003-0000-0000-0000-000000000000"})

	// The lease counts until the container exists: nothing is left.
	_, err = a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	var notEnough *NotEnoughError
	assert.Assert(t, errors.As(err, &notEnough), "%v", err)
	assert.Check(t, is.Equal(notEnough.Free, 0))
	assert.Check(t, is.ErrorContains(err, "not enough free GPUs: 1 asked for, 0 free; GPU 0 held by container train-bob (bob); GPU 1 held by host process 4242"))
	assert.Check(t, is.ErrorContains(err, "GPU 2 held by a docker perceptron of "+holders.UserName(strconv.Itoa(os.Geteuid()))+" creating its container (pid "))

	// Released: free again.
	assert.NilError(t, c.Release())
	c2, err := a.Claim(t.Context(), Request{Count: 2, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	assert.NilError(t, c2.Release())
}

func TestClaimMoreThanTheHostHas(t *testing.T) {
	a := newAllocator(t, fakeHost(2), &daemon{})
	_, err := a.Claim(t.Context(), Request{Count: 3, Thresholds: DefaultThresholds()})
	assert.Error(t, err, "not enough free GPUs: 3 asked for, 2 free (this host has 2)")
}

func TestPreviewClaimsNothing(t *testing.T) {
	a := newAllocator(t, fakeHost(1), &daemon{})
	for range 2 {
		c, err := a.Preview(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
		assert.NilError(t, err)
		assert.Check(t, is.Len(c.Devices, 1))
		assert.Check(t, is.Equal(c.Token, ""))
	}
	leases, err := ledger.ActiveLeases(a.StateDir, time.Now())
	assert.NilError(t, err)
	assert.Check(t, is.Len(leases, 0))
}

// Concurrent claims never share a GPU: 12 claims of one GPU on 8.
func TestClaimConcurrent(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			a := newAllocator(t, fakeHost(8), &daemon{})
			var mu sync.Mutex
			var got []string
			failed := 0
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					c, err := a.Claim(context.Background(), Request{Count: 1, Thresholds: DefaultThresholds()})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						var notEnough *NotEnoughError
						assert.Check(t, errors.As(err, &notEnough), "%v", err)
						failed++
						return
					}
					got = append(got, c.UUIDs()...)
				})
			}
			wg.Wait()
			slices.Sort(got)
			assert.Check(t, is.Len(slices.Compact(got), 8))
			assert.Check(t, is.Equal(failed, 4))
		})
	}
}

// waitForOne claims one GPU with --wait in the background, and releases it
// at once; the channel says how that ended.
func waitForOne(t *testing.T, a *Allocator) <-chan error {
	got := make(chan error, 1)
	go func() {
		c, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds(), Wait: true})
		if err == nil {
			err = c.Release()
		}
		got <- err
	}()
	return got
}

func TestClaimWaitsForRelease(t *testing.T) {
	d := &daemon{}
	a := newAllocator(t, fakeHost(1), d)
	var notes []string
	var mu sync.Mutex
	a.Waiting = func(s string) { mu.Lock(); notes = append(notes, s); mu.Unlock() }

	first, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	// The first container now exists and carries the claim.
	d.create("first", "alice", first.UUIDs())
	assert.NilError(t, first.Release())

	got := waitForOne(t, a)
	select {
	case err := <-got:
		t.Fatalf("the waiter did not wait: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	d.removeAll() // the first container stops and is removed
	select {
	case err := <-got:
		assert.NilError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the GPU")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Assert(t, len(notes) > 0)
	assert.Check(t, is.Contains(notes[0], "waiting for GPUs: not enough free GPUs: 1 asked for, 0 free; GPU 0 held by container first (alice)"))
}

func TestClaimWaitHonoursCancel(t *testing.T) {
	d := &daemon{}
	a := newAllocator(t, fakeHost(1), d)
	d.create("holder", "alice", []string{"GPU-00000000-0000-0000-0000-000000000000"})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := a.Claim(ctx, Request{Count: 1, Thresholds: DefaultThresholds(), Wait: true})
	var stopped *StoppedError
	assert.Check(t, errors.As(err, &stopped), "%v", err)
	assert.Check(t, is.Error(err, "stopped waiting for GPUs after "+Round(stopped.Waited)+": the time limit passed"))
	assert.Check(t, stopped.Waited >= 100*time.Millisecond)
}

// A lease whose invocation is gone does not hold its GPU.
func TestDeadLeaseIgnored(t *testing.T) {
	a := newAllocator(t, fakeHost(1), &daemon{})
	l := ledger.NewLease([]string{"GPU-00000000-0000-0000-0000-000000000000"}, time.Now(), time.Hour)
	l.PID = 1 << 22 // above pid_max: no such process
	assert.NilError(t, ledger.WriteLease(a.StateDir, l))
	c, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	assert.NilError(t, c.Release())
}

// The claim's lease is renewed while it is held.
func TestLeaseRenewed(t *testing.T) {
	a := newAllocator(t, fakeHost(1), &daemon{})
	// Renewed every third of the TTL: after 2.5 TTLs it still counts only
	// if it was renewed. The margins are wide for a loaded machine.
	a.LeaseTTL = time.Second
	c, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	time.Sleep(2500 * time.Millisecond)
	leases, err := ledger.ActiveLeases(a.StateDir, time.Now())
	assert.NilError(t, err)
	assert.Check(t, is.Len(leases, 1))
	assert.NilError(t, c.Release())
	leases, err = ledger.ActiveLeases(a.StateDir, time.Now())
	assert.NilError(t, err)
	assert.Check(t, is.Len(leases, 0))
}

// Whatever step the deadline or Ctrl-C interrupts (here: taking the lock
// that another invocation holds), the claim ends with the same words.
func TestClaimStopsTheSameWayAtEveryStep(t *testing.T) {
	for _, wait := range []bool{true, false} {
		t.Run(fmt.Sprint("wait=", wait), func(t *testing.T) {
			a := newAllocator(t, fakeHost(1), &daemon{})
			unlock, err := ledger.Lock(t.Context(), a.StateDir)
			assert.NilError(t, err)
			defer unlock()
			ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
			defer cancel()
			_, err = a.Claim(ctx, Request{Count: 1, Thresholds: DefaultThresholds(), Wait: wait})
			assert.Check(t, is.ErrorContains(err, "stopped waiting for GPUs after "))
			assert.Check(t, is.ErrorContains(err, ": the time limit passed"))

			ctx, cancel = context.WithCancel(t.Context())
			time.AfterFunc(100*time.Millisecond, cancel)
			_, err = a.Claim(ctx, Request{Count: 1, Thresholds: DefaultThresholds(), Wait: wait})
			assert.Check(t, is.ErrorContains(err, ": interrupted"))
		})
	}
}

// Waiters are served in the order they came: a later waiter does not take
// a free GPU while an earlier one is in line, and gets it once that one
// has left.
func TestClaimWaitIsFIFO(t *testing.T) {
	a := newAllocator(t, fakeHost(1), &daemon{})
	var notes []string
	var mu sync.Mutex
	a.Waiting = func(s string) { mu.Lock(); notes = append(notes, s); mu.Unlock() }
	earlier, err := ledger.Enqueue(a.StateDir, 1) // this process: alive
	assert.NilError(t, err)

	got := waitForOne(t, a)
	select {
	case err := <-got:
		t.Fatalf("a later waiter was served before an earlier one: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	assert.NilError(t, earlier.Leave())
	select {
	case err := <-got:
		assert.NilError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not served once the line was empty")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Assert(t, len(notes) > 0)
	assert.Check(t, is.Equal(notes[0], "waiting for GPUs: 1 earlier request(s) in line on this host"))
}

// The lease is renewed under the host lock: while another invocation holds
// the lock, the renewal waits and the lease runs out. A lease that ran out is
// never brought back (its GPUs may have gone to someone else): the claim is
// lost, and Check says so before the container is created.
func TestLeaseRenewedUnderLock(t *testing.T) {
	a := newAllocator(t, fakeHost(1), &daemon{})
	a.LeaseTTL = 300 * time.Millisecond // renewed every 100 ms
	c, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer c.Release()
	assert.NilError(t, c.Check())

	unlock, err := ledger.Lock(t.Context(), a.StateDir)
	assert.NilError(t, err)
	// Look twice, between renewal ticks: a renewal replaces the lease file,
	// and a look at that very moment could miss it.
	for _, wait := range []time.Duration{930 * time.Millisecond, 40 * time.Millisecond} {
		time.Sleep(wait)
		leases, err := ledger.ActiveLeases(a.StateDir, time.Now())
		assert.NilError(t, err)
		assert.Check(t, is.Len(leases, 0), "the lease was renewed while another invocation held the lock")
	}
	unlock()

	time.Sleep(300 * time.Millisecond) // renewal ticks come and go
	leases, err := ledger.ActiveLeases(a.StateDir, time.Now())
	assert.NilError(t, err)
	assert.Check(t, is.Len(leases, 0), "a lease that ran out was brought back")
	err = c.Check()
	assert.Check(t, errors.Is(err, ErrClaimExpired), "%v", err)
	assert.ErrorContains(t, err, "the run was stopped for longer than the claim lasts (300ms)")
}

// A run asking for more GPUs than the host has does not wait for ever.
func TestClaimWaitForTheImpossible(t *testing.T) {
	a := newAllocator(t, fakeHost(2), &daemon{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Claim(t.Context(), Request{Count: 3, Thresholds: DefaultThresholds(), Wait: true})
		done <- err
	}()
	select {
	case err := <-done:
		assert.Error(t, err, "not enough free GPUs: 3 asked for, 2 free (this host has 2)")
	case <-time.After(5 * time.Second):
		t.Fatal("--wait for more GPUs than the host has is still waiting")
	}
}

// The claim reads the topology through NVML and takes the best connected
// set, which only the search over every combination finds (see greedyTrap):
// four GPUs, and which ones.
func TestClaimTopology(t *testing.T) {
	spec := fakeHost(6)
	for i, d := range greedyTrap() {
		numa := d.NUMANode
		spec.GPUs[i].NUMANode = &numa
		spec.GPUs[i].NVLinkPeers = d.NVLinkPeers
	}
	a := newAllocator(t, spec, &daemon{})
	c, err := a.Claim(t.Context(), Request{Count: 4, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer c.Release()
	var got []int
	for _, d := range c.Devices {
		got = append(got, d.Index)
	}
	assert.DeepEqual(t, got, []int{0, 1, 2, 5})
	assert.Check(t, is.Len(c.UUIDs(), 4))
}
