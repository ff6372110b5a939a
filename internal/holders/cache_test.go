package holders

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/labels"
)

// filteringDaemon answers list calls with docker's "id" and "since" filters
// and counts how many containers each call returned.
type filteringDaemon struct {
	down    bool                // every call fails, as with the daemon down
	list    []container.Summary // oldest first
	calls   []string            // "all", "id", "since"
	entries int                 // containers returned, over all calls
}

func (d *filteringDaemon) ContainerList(_ context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	if d.down {
		return client.ContainerListResult{}, fmt.Errorf("cannot connect to the Docker daemon")
	}
	var out []container.Summary
	switch {
	case len(opts.Filters["id"]) > 0:
		d.calls = append(d.calls, "id")
		for _, c := range d.list {
			if opts.Filters["id"][c.ID] {
				out = append(out, c)
			}
		}
	case len(opts.Filters["since"]) > 0:
		d.calls = append(d.calls, "since")
		i := slices.IndexFunc(d.list, func(c container.Summary) bool { return opts.Filters["since"][c.ID] })
		if i < 0 {
			return client.ContainerListResult{}, fmt.Errorf("no such container")
		}
		out = slices.Clone(d.list[i+1:])
	default:
		d.calls = append(d.calls, "all")
		out = slices.Clone(d.list)
	}
	d.entries += len(out)
	return client.ContainerListResult{Items: out}, nil
}

// ContainerInspect answers for every container: the one called "holder"
// asks for GPU-0, none other for a GPU.
func (d *filteringDaemon) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if !slices.ContainsFunc(d.list, func(c container.Summary) bool { return c.ID == id }) {
		return client.ContainerInspectResult{}, fmt.Errorf("no such container: %s", id)
	}
	hc := &container.HostConfig{}
	if id == "holder" {
		hc.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"GPU-0"}}}
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{ID: id, Config: &container.Config{}, HostConfig: hc}}, nil
}

func (d *filteringDaemon) add(id string, state container.ContainerState) {
	d.list = append(d.list, container.Summary{ID: id, State: state, Created: int64(len(d.list) + 1)})
}

func (d *filteringDaemon) remove(id string) {
	d.list = slices.DeleteFunc(d.list, func(c container.Summary) bool { return c.ID == id })
}

func ids(s []container.Summary) []string {
	var out []string
	for _, c := range s {
		out = append(out, c.ID)
	}
	slices.Sort(out)
	return out
}

// lookUp does what Finder.Find does with the cache: live containers are
// looked up, and the unknown ones "inspected" (here: holders are named so).
func lookUp(c *FileCache, found []container.Summary) {
	for _, s := range found {
		if !Live(s.State) {
			continue
		}
		if _, ok := c.Get(s.ID); !ok {
			r := Reservation{}
			if s.ID[0] == 'h' {
				r.GPUs = []string{"0"}
			}
			c.Put(s.ID, r)
		}
	}
}

func TestFileCacheList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reservations.json")
	d := &filteringDaemon{}
	d.add("holder-old", container.StateRunning)
	for i := range 50 {
		d.add(fmt.Sprintf("plain-%02d", i), container.StateRunning)
	}
	d.add("exited-new", container.StateExited)

	// First use: one full listing.
	c := OpenFileCache(path)
	found, err := c.List(d)(t.Context())
	assert.NilError(t, err)
	assert.Check(t, is.Len(found, 52))
	assert.Check(t, is.DeepEqual(d.calls, []string{"all"}))
	lookUp(c, found)
	assert.NilError(t, c.Save())

	// Then: the holder, the one not inspected and the anchors by ID, and
	// what is new since the newest anchor; none of the 50 plain ones again.
	d.add("holder-new", container.StateCreated)
	d.calls, d.entries = nil, 0
	c = OpenFileCache(path)
	found, err = c.List(d)(t.Context())
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(d.calls, []string{"id", "since"}))
	assert.Check(t, is.Contains(ids(found), "holder-old"))
	assert.Check(t, is.Contains(ids(found), "holder-new"))
	assert.Check(t, is.Contains(ids(found), "exited-new"))
	assert.Check(t, d.entries < 15, "returned %d containers", d.entries)
	lookUp(c, found)
	assert.NilError(t, c.Save())

	// The pending container is started: it is looked at, and known.
	d.list[slices.IndexFunc(d.list, func(s container.Summary) bool { return s.ID == "exited-new" })].State = container.StateRunning
	c = OpenFileCache(path)
	found, err = c.List(d)(t.Context())
	assert.NilError(t, err)
	assert.Check(t, is.Contains(ids(found), "exited-new"))
	lookUp(c, found)
	_, known := c.Get("exited-new")
	assert.Check(t, known)
	assert.NilError(t, c.Save())

	// Every anchor removed: one full listing again.
	c = OpenFileCache(path)
	for _, a := range c.state.Anchors {
		d.remove(a.ID)
	}
	d.calls = nil
	found, err = c.List(d)(t.Context())
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(d.calls, []string{"id", "all"}))
	assert.Check(t, is.Contains(ids(found), "holder-old"))
}

// A GPU holder that stops is still watched: when it starts again, the
// incremental listing finds it, whoever used the cache in between.
func TestFileCacheKeepsStoppedHolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reservations.json")
	d := &filteringDaemon{}
	d.add("holder", container.StateRunning)
	d.list[0].Labels = map[string]string{labels.User: "alice", labels.GPUs: "GPU-0"}
	for i := range 20 {
		d.add(fmt.Sprintf("plain-%02d", i), container.StateRunning)
	}
	inv := gpus.Inventory{Devices: []gpus.Device{{Index: 0, UUID: "GPU-0", NUMANode: -1}}}
	reserved := func() bool {
		t.Helper()
		c := OpenFileCache(path)
		l := Finder{API: d, ProcRoot: t.TempDir(), Cache: c, List: c.List(d)}
		h, err := l.Find(t.Context(), inv)
		assert.NilError(t, err)
		assert.NilError(t, c.Save())
		return h.Reserved[0]
	}
	assert.Check(t, reserved())

	d.list[0].State = container.StateExited
	d.add("newer", container.StateRunning) // the anchors move on
	assert.Check(t, !reserved())

	d.list[0].State = container.StateRunning
	d.calls = nil
	assert.Check(t, reserved())
	assert.Check(t, !slices.Contains(d.calls, "all"), "listed everything: %v", d.calls)
}

func TestFileCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "reservations.json")
	c := OpenFileCache(path)
	c.Put("a", Reservation{User: "alice", GPUs: []string{"0"}})
	c.Put("b", Reservation{})
	assert.NilError(t, c.Save())

	c = OpenFileCache(path)
	r, ok := c.Get("a")
	assert.Check(t, ok)
	assert.Check(t, is.DeepEqual(r, Reservation{User: "alice", GPUs: []string{"0"}}))
	assert.NilError(t, c.Save()) // "b" was not looked up: gone

	c = OpenFileCache(path)
	_, ok = c.Get("b")
	assert.Check(t, !ok)
}

// A failed lookup never changes what the cache remembers: once the daemon
// answers again, the holder it knew is still watched (the cache was once
// saved empty but with its anchors, and the holder was forgotten).
func TestFileCacheFailedListing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reservations.json")
	d := &filteringDaemon{}
	d.add("holder", container.StateRunning)
	for i := range 9 { // the holder is not among the newest, the anchors
		d.add(fmt.Sprintf("newer-%d", i), container.StateRunning)
	}
	inv := gpus.Inventory{Devices: []gpus.Device{{Index: 0, UUID: "GPU-0", NUMANode: -1}}}
	find := func() (Holdings, error) {
		t.Helper()
		c := OpenFileCache(path)
		h, err := NewFinder(d, t.TempDir(), c, "runc").Find(t.Context(), inv)
		assert.NilError(t, c.Save())
		return h, err
	}
	h, err := find()
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	d.down = true
	_, err = find()
	assert.ErrorContains(t, err, "cannot connect")
	d.down = false
	h, err = find()
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0], "the holder was forgotten after a failed listing")
}
