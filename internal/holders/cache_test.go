package holders

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// eventDaemon is a fake daemon with an event log: it answers the full
// listing, inspections and the events of a time window, as dockerd does
// (at most its last 256 events), and counts its calls.
type eventDaemon struct {
	mu    sync.Mutex
	down  bool // every call fails, as with the daemon down
	list  []container.Summary
	log   []events.Message
	gpus  map[string]string // container ID -> the GPU it asks for
	calls []string          // "all", "events", "inspect"
}

func (d *eventDaemon) ContainerList(_ context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	if d.down {
		return client.ContainerListResult{}, fmt.Errorf("cannot connect to the Docker daemon")
	}
	d.calls = append(d.calls, "all")
	return client.ContainerListResult{Items: slices.Clone(d.list)}, nil
}

func (d *eventDaemon) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	d.mu.Lock() // inspections run in parallel
	defer d.mu.Unlock()
	d.calls = append(d.calls, "inspect")
	if !slices.ContainsFunc(d.list, func(c container.Summary) bool { return c.ID == id }) {
		return client.ContainerInspectResult{}, fmt.Errorf("no such container: %s", id)
	}
	hc := &container.HostConfig{}
	if g, ok := d.gpus[id]; ok {
		hc.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{g}}}
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{ID: id, Config: &container.Config{}, HostConfig: hc}}, nil
}

func (d *eventDaemon) Events(_ context.Context, opts client.EventsListOptions) client.EventsResult {
	msgs, errs := make(chan events.Message), make(chan error, 1)
	if d.down {
		errs <- fmt.Errorf("cannot connect to the Docker daemon")
		return client.EventsResult{Messages: msgs, Err: errs}
	}
	d.calls = append(d.calls, "events")
	since, until := parseNano(opts.Since), parseNano(opts.Until)
	log := d.log[max(0, len(d.log)-256):]
	go func() {
		for _, m := range log {
			if t := time.Unix(0, m.TimeNano); !t.Before(since) && !t.After(until) {
				msgs <- m
			}
		}
		errs <- io.EOF
	}()
	return client.EventsResult{Messages: msgs, Err: errs}
}

func parseNano(s string) time.Time {
	sec, nsec, _ := strings.Cut(s, ".")
	a, _ := strconv.ParseInt(sec, 10, 64)
	b, _ := strconv.ParseInt(nsec, 10, 64)
	return time.Unix(a, b)
}

// event records an event of container id now.
func (d *eventDaemon) event(id string, action events.Action) {
	now := time.Now()
	d.log = append(d.log, events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: map[string]string{"name": id}}, Time: now.Unix(), TimeNano: now.UnixNano()})
}

// create adds a container in state created, with its event; gpu "" asks
// for none.
func (d *eventDaemon) create(id, gpu string) {
	d.list = append(d.list, container.Summary{ID: id, Names: []string{"/" + id}, State: container.StateCreated, Created: time.Now().Unix()})
	if gpu != "" {
		if d.gpus == nil {
			d.gpus = map[string]string{}
		}
		d.gpus[id] = gpu
	}
	d.event(id, events.ActionCreate)
}

// setState changes a container's state, with the event that says so.
func (d *eventDaemon) setState(id string, state container.ContainerState, action events.Action) {
	d.list[slices.IndexFunc(d.list, func(c container.Summary) bool { return c.ID == id })].State = state
	d.event(id, action)
}

func (d *eventDaemon) destroy(id string) {
	d.list = slices.DeleteFunc(d.list, func(c container.Summary) bool { return c.ID == id })
	d.event(id, events.ActionDestroy)
}

func (d *eventDaemon) count(call string) int {
	n := 0
	for _, c := range d.calls {
		if c == call {
			n++
		}
	}
	return n
}

var oneGPU = gpus.Inventory{Devices: []gpus.Device{{Index: 0, UUID: "GPU-0", NUMANode: -1}}}

// lookFrom finds who holds GPU 0 through the cache file at path, as one
// invocation of the plugin does, and saves the cache.
func lookFrom(t *testing.T, d *eventDaemon, path string) (Holdings, error) {
	t.Helper()
	c := OpenFileCache(path, "daemon-1")
	h, err := NewFinder(d, t.TempDir(), c, "runc").Find(t.Context(), oneGPU)
	assert.NilError(t, c.Save())
	return h, err
}

// The first look lists every container and inspects the live ones; later
// looks read only the events since, whatever the number of containers, and
// inspect only containers never seen before.
func TestFileCacheEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.json")
	d := &eventDaemon{}
	for i := range 50 {
		d.create(fmt.Sprintf("plain-%02d", i), "")
	}
	d.create("holder", "GPU-0")
	d.setState("holder", container.StateRunning, events.ActionStart)

	h, err := lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	assert.Check(t, is.Equal(d.count("all"), 1))
	assert.Check(t, is.Equal(d.count("inspect"), 51))

	d.calls = nil
	d.create("new", "")
	h, err = lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	assert.Check(t, is.DeepEqual(d.calls, []string{"events", "inspect"}), "only the new container is looked at")

	// The holder stops: it holds nothing; it starts again: it holds.
	d.calls = nil
	d.setState("holder", container.StateExited, events.ActionDie)
	h, err = lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, !h.Reserved[0])
	d.setState("holder", container.StateRunning, events.ActionStart)
	h, err = lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	assert.Check(t, is.DeepEqual(d.calls, []string{"events", "events"}))

	// Short-lived containers come and go (--rm): nothing is listed again.
	d.calls = nil
	for i := range 20 {
		id := fmt.Sprintf("rm-%02d", i)
		d.create(id, "")
		d.setState(id, container.StateRunning, events.ActionStart)
		d.setState(id, container.StateExited, events.ActionDie)
		d.destroy(id)
	}
	h, err = lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	assert.Check(t, is.DeepEqual(d.calls, []string{"events"}))
}

// More happened than the daemon's events remember: one full listing, which
// inspects only the containers never seen before.
func TestFileCacheEventsOverflow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.json")
	d := &eventDaemon{}
	d.create("holder", "GPU-0")
	_, err := lookFrom(t, d, path)
	assert.NilError(t, err)
	d.calls = nil
	for i := range 300 {
		d.create(fmt.Sprintf("burst-%03d", i), "")
	}
	h, err := lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	assert.Check(t, is.Equal(d.count("all"), 1))
	assert.Check(t, is.Equal(d.count("inspect"), 300), "the holder is not inspected again")
}

// A failed look never changes what the cache remembers: once the daemon
// answers again, the holder it knew is still held.
func TestFileCacheFailedListing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.json")
	d := &eventDaemon{}
	d.create("holder", "GPU-0")
	for i := range 9 {
		d.create(fmt.Sprintf("newer-%d", i), "")
	}
	h, err := lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	d.down = true
	_, err = lookFrom(t, d, path)
	assert.ErrorContains(t, err, "cannot connect")
	d.down = false
	h, err = lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0], "the holder was forgotten after a failed look")
}

// Each daemon has a cache of its own: two contexts do not undo each other.
func TestFileCachePerDaemon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.json")
	c := OpenFileCache(path, "daemon-1")
	c.Put("a", Reservation{User: "alice", GPUs: []string{"0"}})
	assert.NilError(t, c.Save())

	c = OpenFileCache(path, "daemon-1")
	r, ok := c.Get("a")
	assert.Check(t, ok)
	assert.Check(t, is.DeepEqual(r, Reservation{User: "alice", GPUs: []string{"0"}}))
	_, ok = OpenFileCache(path, "daemon-2").Get("a")
	assert.Check(t, !ok)
}

// A damaged cache file (cut short, or not ours) is an empty cache: the next
// look lists and inspects everything again, and the file is rewritten.
func TestFileCacheDamaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.json")
	c := OpenFileCache(path, "daemon-1")
	c.Put("a", Reservation{User: "alice", GPUs: []string{"0"}})
	assert.NilError(t, c.Save())
	data, err := os.ReadFile(c.path)
	assert.NilError(t, err)
	for _, damaged := range [][]byte{data[:len(data)/2], []byte(`{"daemon":"daemon-1"}`), nil} {
		assert.NilError(t, os.WriteFile(c.path, damaged, 0o600))
		c := OpenFileCache(path, "daemon-1")
		_, ok := c.Get("a")
		assert.Check(t, !ok)
		assert.Check(t, c.state.Seen.IsZero(), "a damaged cache must list everything again")
	}
}

// The daemon keeps its last 256 events of every kind together: when
// network events have pushed a container's destroy out, the look lists
// everything, and a removed holder is not kept as one.
func TestFileCacheEventsPushedOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers.json")
	d := &eventDaemon{}
	d.create("holder", "GPU-0")
	d.setState("holder", container.StateRunning, events.ActionStart)
	h, err := lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, h.Reserved[0])
	d.calls = nil
	d.destroy("holder")
	for range 300 {
		now := time.Now()
		d.log = append(d.log, events.Message{Type: events.NetworkEventType, Action: events.ActionConnect, Time: now.Unix(), TimeNano: now.UnixNano()})
	}
	h, err = lookFrom(t, d, path)
	assert.NilError(t, err)
	assert.Check(t, !h.Reserved[0], "a removed container still holds GPU 0")
	assert.Check(t, is.Equal(d.count("all"), 1), "the look did not list everything: %v", d.calls)
}
