// Package holders finds who holds each GPU of the host: containers, by their
// configuration (device requests, and NVIDIA_VISIBLE_DEVICES under NVIDIA's
// runtime) or by running a process on it, and processes outside containers.
// Both `docker perceptron gpus` and `--gpus auto` ask it; whether a GPU is
// free is decided from its answer by internal/alloc.
//
// Finding them is gathering facts (the container list, inspections, /proc),
// then a pure function, Attribute.
package holders

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/labels"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// reservationFormat is Reservation.Format for reservations of this version:
// older cached ones did not keep NVIDIA_VISIBLE_DEVICES apart (0), or were
// taken from labels, which anyone can set (1).
const reservationFormat = 3

// Holder is a container (or a host process) that holds a GPU: by running a
// process on it, by a reservation in its configuration, or both.
type Holder struct {
	ContainerID   string // "" for a process outside containers
	ContainerName string // without docker's leading "/"; "" when unknown
	User          string // labels.User, else Config.User, else its GPU process's owner (a host process: its owner); "" when unknown
	PIDs          []int  // host PIDs of its compute processes on the GPU
	ByProcess     bool
	ByReservation bool
	// Since is when its container was created; zero for a host process.
	Since time.Time
	// Stale: a container that `run` created and never started, past the
	// lease time; it reserves nothing (see Container.Stale).
	Stale bool
	// OtherDaemon: a container of another Docker daemon on this host, known
	// by its grant (see ledger.Grant).
	OtherDaemon bool
	// State is its container's (running, created, paused, restarting…);
	// "" for a host process, or when unknown.
	State container.ContainerState
	// Named: its container's configuration names this GPU (--gpus
	// device=…, as --gpus auto gives it), rather than every GPU or the
	// first N.
	Named bool
	// SeesAll: its container sees every GPU (--gpus all, --privileged,
	// NVIDIA_VISIBLE_DEVICES=all under NVIDIA's runtime).
	SeesAll bool
}

// Unclaimed reports a holder that uses the GPU (a compute process) without
// a configuration that names it: a host process, or a container that asked
// for every GPU, the first N, or none.
func (h Holder) Unclaimed() bool { return h.ByProcess && !(h.ByReservation && h.Named) }

// Holdings is who holds each GPU of an inventory.
type Holdings struct {
	// ByGPU maps a GPU index to its holders, sorted by name, ID and PIDs.
	ByGPU map[int][]Holder
	// Reserved is the GPUs that a live container's configuration holds.
	Reserved map[int]bool
	// ByMIG and ReservedMIG are the same for MIG devices, by their UUID in
	// upper case: a container holds a MIG device it names (by UUID, or
	// GPU:INDEX), or all those of a GPU it holds whole.
	ByMIG       map[string][]Holder
	ReservedMIG map[string]bool
	// Unknown, when set, says why the containers' holdings could not be
	// read: ByGPU and Reserved then know processes only.
	Unknown string
}

// ContainerAPI is the part of the Docker API that Finder uses; the docker
// CLI's client satisfies it.
type ContainerAPI interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// ReservationCache remembers containers' reservations by container ID,
// which is safe because a container's configuration never changes. Find
// calls it from one goroutine only.
type ReservationCache interface {
	Get(containerID string) (Reservation, bool)
	Put(containerID string, r Reservation)
	// Incomplete says that the lookup failed part way: what it saw must
	// not replace what the cache knew.
	Incomplete()
}

// MemoryCache is the in-memory ReservationCache.
type MemoryCache map[string]Reservation

// Get returns the cached reservation of a container.
func (c MemoryCache) Get(id string) (Reservation, bool) { r, ok := c[id]; return r, ok }

// Put caches the reservation of a container.
func (c MemoryCache) Put(id string, r Reservation) { c[id] = r }

// Incomplete does nothing: a MemoryCache lives for one lookup.
func (c MemoryCache) Incomplete() {}

// Finder finds who holds the GPUs.
type Finder struct {
	// API lists and inspects containers. Nil: only processes are looked at,
	// reservations are not known.
	API ContainerAPI
	// ProcRoot is where host processes are found, normally "/proc".
	ProcRoot string
	// Cache keeps reservations between calls; nil: a new MemoryCache per call.
	Cache ReservationCache
	// Parallel is how many containers are inspected at once; 0 means 8.
	Parallel int
	// DefaultRuntime is the daemon's default runtime (docker info's
	// DefaultRuntime, see DefaultRuntime): NVIDIA_VISIBLE_DEVICES reserves
	// GPUs for a container without a runtime of its own only when it is
	// NVIDIA's. "" is unknown, and then the variable counts.
	DefaultRuntime string
	// List returns the containers to look at, at least every live one; nil
	// lists every container through API. (API still inspects.)
	List func(ctx context.Context) ([]container.Summary, error)
	// Now and StaleAfter tell a stale container (see Container.Stale): nil
	// Now never finds one.
	Now        func() time.Time
	StaleAfter time.Duration
	// StateDir holds the grants of every daemon on this host (see
	// ledger.Grant); "" reads none. DaemonID is the ID of the daemon API
	// talks to: grants of other daemons hold GPUs its listing cannot see.
	StateDir string
	DaemonID string
	// NoInspect: Find fails with ErrNotInspected rather than inspect a
	// container it has not seen before (it stays to be inspected next
	// time). A claim uses it under the host lock, and inspects outside it.
	NoInspect bool
}

// ErrNotInspected is Find's answer, with NoInspect, when containers it has
// not seen before must be inspected first.
var ErrNotInspected = errors.New("containers to inspect")

// NewFinder returns the Finder that both `docker perceptron gpus` and
// `--gpus auto` use: containers are listed with two small filtered calls
// and inspected once each, through the user's reservation cache (see
// FileCache.List), on a daemon whose default runtime is defaultRuntime.
func NewFinder(api ListerAPI, procRoot string, cache *FileCache, defaultRuntime string) Finder {
	return Finder{
		API: api, ProcRoot: procRoot, Cache: cache, List: cache.List(api), DefaultRuntime: defaultRuntime,
		Now: time.Now, StaleAfter: ledger.DefaultLeaseTTL,
	}
}

// InfoAPI is the part of the Docker API that DefaultRuntime uses; the
// docker CLI's client satisfies it.
type InfoAPI interface {
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
}

// DaemonOf returns the daemon's default runtime ("runc", "nvidia") and key
// (ledger.DaemonKey), for Finder.DefaultRuntime and Finder.DaemonID; ""
// when docker info fails.
func DaemonOf(ctx context.Context, api InfoAPI) (defaultRuntime, id string) {
	res, err := api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", ""
	}
	return res.Info.DefaultRuntime, ledger.DaemonKey(res.Info.ID, res.Info.DockerRootDir)
}

// liveStates are the container states that hold GPUs: a created container
// will get its GPUs when started, a paused one keeps its memory, and a
// restarting one is about to run again.
var liveStates = []container.ContainerState{
	container.StateRunning, container.StateCreated, container.StatePaused, container.StateRestarting,
}

// Live reports whether a container in state holds its GPUs.
func Live(state container.ContainerState) bool {
	return slices.Contains(liveStates, state)
}

// Container is a live container and what its configuration reserves.
type Container struct {
	Name        string
	Reservation Reservation
	Created     time.Time
	// Stale: `docker perceptron run` created it and never started it (the
	// run was killed or its daemon restarted) longer than a lease ago. It
	// holds nothing; it is shown, so that its owner removes it.
	Stale bool
	// OtherDaemon: a container of another daemon, known by its grant.
	OtherDaemon bool
	State       container.ContainerState
}

// Proc is a GPU process: the container it runs in ("" outside containers)
// and the user it runs as ("" when unknown).
type Proc struct {
	ContainerID string
	Owner       string
}

// Find returns who holds each GPU of inv: it gathers the live containers'
// reservations and the GPU processes' containers and owners, then
// attributes them (see Attribute).
func (f Finder) Find(ctx context.Context, inv gpus.Inventory) (Holdings, error) {
	procs := f.processes(inv)
	live := map[string]Container{}
	if f.API != nil {
		var err error
		if live, err = f.liveContainers(ctx, procs); err != nil {
			return Holdings{}, err
		}
	}
	if f.StateDir != "" {
		others, err := f.grantHolders(live)
		if err != nil {
			return Holdings{}, err
		}
		maps.Copy(live, others)
	}
	return Attribute(inv, live, procs, f.DefaultRuntime), nil
}

// ProcessesOnly is what is known of inv's holders when the containers could
// not be read (err): the GPU processes, and that the rest is unknown.
func (f Finder) ProcessesOnly(inv gpus.Inventory, err error) Holdings {
	h := Attribute(inv, nil, f.processes(inv), f.DefaultRuntime)
	h.Unknown = err.Error()
	return h
}

// processes looks up the container and owner of every GPU process of inv.
func (f Finder) processes(inv gpus.Inventory) map[int]Proc {
	procs := map[int]Proc{}
	for _, d := range inv.Devices {
		for _, p := range d.Processes {
			if _, seen := procs[p.PID]; !seen {
				procs[p.PID] = Proc{ContainerID: containerOfProcess(f.ProcRoot, p.PID), Owner: processOwner(f.ProcRoot, p.PID)}
			}
		}
	}
	return procs
}

// liveContainers lists the containers once and inspects the live ones whose
// reservation is not cached. Labels are never taken for a reservation: any
// user can set them; what a container holds is what it asked docker for.
// It returns the live containers that hold a GPU, or that one of procs (the
// GPU processes) runs in: on a busy daemon most hold none, and every look
// would carry them.
func (f Finder) liveContainers(ctx context.Context, procs map[int]Proc) (map[string]Container, error) {
	cache := f.Cache
	if cache == nil {
		cache = MemoryCache{}
	}
	items, err := f.containers(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]Container{}
	var toInspect []string
	for _, c := range items {
		if !Live(c.State) {
			continue
		}
		r, ok := cache.Get(c.ID)
		if ok && r.Format == reservationFormat && !f.matters(c.ID, r, procs) {
			continue
		}
		in := Container{Name: containerName(c.Names), Created: unixTime(c.Created), Stale: f.stale(c), Reservation: r, State: c.State}
		if !ok || r.Format != reservationFormat {
			toInspect = append(toInspect, c.ID)
		}
		live[c.ID] = in
	}
	if f.NoInspect && len(toInspect) > 0 {
		return nil, fmt.Errorf("%w: %d", ErrNotInspected, len(toInspect))
	}
	found, err := f.inspect(ctx, toInspect)
	if err != nil {
		cache.Incomplete()
		return nil, err
	}
	for _, id := range toInspect {
		r, ok := found[id]
		if !ok {
			delete(live, id) // removed since it was listed: holds nothing
			continue
		}
		r.Format = reservationFormat
		cache.Put(id, r)
		if !f.matters(id, r, procs) {
			delete(live, id)
			continue
		}
		in := live[id]
		in.Reservation = r
		live[id] = in
	}
	return live, nil
}

// matters tells a container the holdings depend on: it holds a GPU, or a
// GPU process runs in it.
func (f Finder) matters(id string, r Reservation, procs map[int]Proc) bool {
	if r.Holds(f.DefaultRuntime) {
		return true
	}
	for _, p := range procs {
		if p.ContainerID == id {
			return true
		}
	}
	return false
}

// stale tells a container that `docker perceptron run` created with a GPU
// claim and that never started, for longer than a lease lasts.
func (f Finder) stale(c container.Summary) bool {
	return f.Now != nil && c.State == container.StateCreated &&
		c.Labels[labels.Command] == "run" && c.Labels[labels.Claim] != "" &&
		f.Now().Sub(time.Unix(c.Created, 0)) > f.StaleAfter
}

func (f Finder) containers(ctx context.Context) ([]container.Summary, error) {
	if f.List != nil {
		return f.List(ctx)
	}
	list, err := f.API.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("cannot list containers: %w", err)
	}
	return list.Items, nil
}

// Attribute decides who holds each GPU of inv, from the live containers (by
// ID), the GPU processes (by PID) and the daemon's default runtime.
func Attribute(inv gpus.Inventory, live map[string]Container, procs map[int]Proc, defaultRuntime string) Holdings {
	h := Holdings{ByGPU: map[int][]Holder{}, Reserved: map[int]bool{}, ByMIG: map[string][]Holder{}, ReservedMIG: map[string]bool{}}
	reservedBy := map[int][]string{} // GPU index -> container IDs
	sliceBy := map[string][]string{} // MIG UUID (upper case) -> container IDs
	for id, c := range live {
		for _, i := range c.Reservation.Indexes(inv, defaultRuntime) {
			reservedBy[i] = append(reservedBy[i], id)
		}
		for _, u := range c.Reservation.Slices(inv, defaultRuntime) {
			sliceBy[u] = append(sliceBy[u], id)
		}
	}
	notStale := func(id string) bool { return !live[id].Stale }
	reserved := func(i int) bool { return slices.ContainsFunc(reservedBy[i], notStale) }
	for _, d := range inv.Devices {
		for _, m := range d.MIG {
			if m.UUID == "" {
				continue
			}
			key := strings.ToUpper(m.UUID)
			g := gpuHolders{byKey: map[string]*Holder{}}
			for _, p := range m.Processes {
				g.addProcess(p.PID, procs[p.PID], live, defaultRuntime)
			}
			for _, id := range sliceBy[key] {
				c := live[id]
				hd := g.holder(id, func() Holder { return holderOf(id, c, defaultRuntime) })
				hd.ByReservation, hd.Named = true, len(c.Reservation.GPUs) > 0
			}
			h.ReservedMIG[key] = slices.ContainsFunc(sliceBy[key], notStale)
			if list := g.sorted(); len(list) > 0 {
				h.ByMIG[key] = list
			}
		}
	}
	for _, d := range inv.Devices {
		g := gpuHolders{byKey: map[string]*Holder{}}
		for _, p := range d.Processes {
			g.addProcess(p.PID, procs[p.PID], live, defaultRuntime)
		}
		for _, id := range reservedBy[d.Index] {
			c := live[id]
			h := g.holder(id, func() Holder { return holderOf(id, c, defaultRuntime) })
			h.ByReservation, h.Named = true, len(c.Reservation.GPUs) > 0
		}
		h.Reserved[d.Index] = reserved(d.Index)
		if list := g.sorted(); len(list) > 0 {
			h.ByGPU[d.Index] = list
		}
	}
	return h
}

// gpuHolders collects one GPU's holders, one per container or host process.
type gpuHolders struct {
	byKey map[string]*Holder
	order []*Holder
}

func (g *gpuHolders) holder(key string, mk func() Holder) *Holder {
	if h, ok := g.byKey[key]; ok {
		return h
	}
	h := mk()
	g.byKey[key] = &h
	g.order = append(g.order, &h)
	return &h
}

// addProcess attributes a GPU process to its container, or to itself.
func (g *gpuHolders) addProcess(pid int, p Proc, live map[string]Container, defaultRuntime string) {
	key := p.ContainerID
	if key == "" {
		key = fmt.Sprintf("pid %d", pid) // each host process is its own holder
	}
	h := g.holder(key, func() Holder {
		h := Holder{ContainerID: p.ContainerID}
		if c, ok := live[p.ContainerID]; ok {
			h = holderOf(p.ContainerID, c, defaultRuntime)
		}
		if h.User == "" {
			// A host process, or a container with neither labels.User nor
			// Config.User: who runs it.
			h.User = p.Owner
		}
		return h
	})
	h.ByProcess = true
	h.PIDs = append(h.PIDs, pid)
}

// holderOf is the container c (with ID id) as a holder.
func holderOf(id string, c Container, defaultRuntime string) Holder {
	r := c.Reservation
	return Holder{
		ContainerID: id, ContainerName: c.Name, User: r.User, Since: c.Created,
		Stale: c.Stale, OtherDaemon: c.OtherDaemon, State: c.State,
		SeesAll: r.All || r.Privileged || r.EnvAll && r.EnvApplies(defaultRuntime),
	}
}

func (g *gpuHolders) sorted() []Holder {
	out := make([]Holder, 0, len(g.order))
	for _, h := range g.order {
		slices.Sort(h.PIDs)
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b Holder) int {
		return cmp.Or(
			strings.Compare(a.ContainerName, b.ContainerName),
			strings.Compare(a.ContainerID, b.ContainerID),
			slices.Compare(a.PIDs, b.PIDs),
		)
	})
	return out
}

// inspect reads the reservations of containers, a few at a time. A
// container removed since it was listed holds nothing and is left out.
func (f Finder) inspect(ctx context.Context, ids []string) (map[string]Reservation, error) {
	parallel := f.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	type result struct {
		id  string
		res Reservation
		err error
	}
	results := make([]result, len(ids))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctr, err := f.API.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			results[i] = result{id: id, res: ReservationOf(ctr.Container), err: err}
		})
	}
	wg.Wait()

	found := make(map[string]Reservation, len(ids))
	for _, r := range results {
		switch {
		case r.err == nil:
			found[r.id] = r.res
		case cerrdefs.IsNotFound(r.err):
		default:
			return nil, fmt.Errorf("cannot inspect container %s: %w", r.id, r.err)
		}
	}
	return found, nil
}

// unixTime is docker's Created (seconds), the zero time when unknown.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

func containerName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimPrefix(names[0], "/")
}
