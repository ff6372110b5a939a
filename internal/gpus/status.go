package gpus

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// GPU states, as Status reports them. A GPU is free exactly when Candidate
// would give it out (with the same Thresholds), leases aside.
const (
	StateFree         = "free"
	StateBusy         = "busy"          // compute processes, or memory or utilisation above the thresholds
	StateReserved     = "reserved"      // a running or created container holds it
	StateBusyReserved = "busy+reserved" // both
	StateUnknown      = "unknown"       // not busy as far as known, but processes, memory or utilisation could not be read, or MIG is on
)

// reservationFormat is Reservation.Format for reservations of this version:
// older cached ones did not keep NVIDIA_VISIBLE_DEVICES apart.
const reservationFormat = 1

// Holder is a container (or a host process) that holds a GPU: by running a
// process on it, by a reservation in its configuration, or both.
type Holder struct {
	ContainerID   string // "" for a process outside containers
	ContainerName string // without docker's leading "/"; "" when unknown
	User          string // LabelUser, else Config.User, else its GPU process's owner (a host process: its owner); "" when unknown
	PIDs          []int  // host PIDs of its compute processes on the GPU
	ByProcess     bool
	ByReservation bool
}

// GPUStatus is a device with its state and holders.
type GPUStatus struct {
	Device
	State   string
	Holders []Holder
}

// ContainerAPI is the part of the Docker API that Status uses; the docker
// CLI's client satisfies it.
type ContainerAPI interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// ReservationCache remembers containers' reservations by container ID,
// which is safe because a container's configuration never changes. Status
// calls it from one goroutine only.
type ReservationCache interface {
	Get(containerID string) (Reservation, bool)
	Put(containerID string, r Reservation)
}

// MemoryCache is the in-memory ReservationCache.
type MemoryCache map[string]Reservation

// Get returns the cached reservation of a container.
func (c MemoryCache) Get(id string) (Reservation, bool) { r, ok := c[id]; return r, ok }

// Put caches the reservation of a container.
func (c MemoryCache) Put(id string, r Reservation) { c[id] = r }

// Status returns the state and holders of each GPU of inv, looking up
// containers through api and processes under procRoot ("/proc"), with the
// default thresholds and the daemon's default runtime unknown.
func Status(ctx context.Context, inv Inventory, api ContainerAPI, procRoot string) ([]GPUStatus, error) {
	return Lookup{API: api, ProcRoot: procRoot}.Status(ctx, inv)
}

// Lookup finds who holds the GPUs.
type Lookup struct {
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
	// Thresholds decide when a GPU is busy; nil means DefaultThresholds().
	// They are Candidate's, so that "free" means free to be given out.
	Thresholds *Thresholds
}

// InfoAPI is the part of the Docker API that DefaultRuntime uses; the
// docker CLI's client satisfies it.
type InfoAPI interface {
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
}

// DefaultRuntime returns the daemon's default runtime ("runc", "nvidia"),
// for Lookup.DefaultRuntime; "" when docker info fails.
func DefaultRuntime(ctx context.Context, api InfoAPI) string {
	res, err := api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return ""
	}
	return res.Info.DefaultRuntime
}

// liveStates are the container states that hold GPUs: a created container
// will get its GPUs when started, a paused one keeps its memory.
var liveStates = []container.ContainerState{
	container.StateRunning, container.StateCreated, container.StatePaused, container.StateRestarting,
}

// Live reports whether a container in state holds its GPUs.
func Live(state container.ContainerState) bool {
	return slices.Contains(liveStates, state)
}

func (l Lookup) containers(ctx context.Context) ([]container.Summary, error) {
	if l.List != nil {
		return l.List(ctx)
	}
	list, err := l.API.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("cannot list containers: %w", err)
	}
	return list.Items, nil
}

// Status returns the state and holders of each GPU of inv. It lists the
// containers once and inspects only those whose reservation is not cached
// and not told by docker perceptron's labels.
func (l Lookup) Status(ctx context.Context, inv Inventory) ([]GPUStatus, error) {
	type info struct {
		name string
		res  Reservation
	}
	live := map[string]*info{}
	if l.API != nil {
		cache := l.Cache
		if cache == nil {
			cache = MemoryCache{}
		}
		items, err := l.containers(ctx)
		if err != nil {
			return nil, err
		}
		var toInspect []string
		for _, c := range items {
			if !Live(c.State) {
				continue
			}
			in := &info{name: containerName(c.Names)}
			live[c.ID] = in
			if r, ok := cache.Get(c.ID); ok && r.Format == reservationFormat {
				in.res = r
			} else if r, ok := reservationFromLabels(c.Labels); ok {
				in.res = r
				cache.Put(c.ID, r)
			} else {
				toInspect = append(toInspect, c.ID)
			}
		}
		found, err := l.inspect(ctx, toInspect)
		if err != nil {
			return nil, err
		}
		for id, r := range found {
			r.Format = reservationFormat
			live[id].res = r
			cache.Put(id, r)
		}
	}

	// Which container (or none) each GPU process belongs to.
	owners := map[int]string{}
	for _, d := range inv.Devices {
		for _, p := range d.Processes {
			if _, seen := owners[p.PID]; !seen {
				owners[p.PID] = containerOfProcess(l.ProcRoot, p.PID)
			}
		}
	}

	reservedBy := map[int][]string{} // GPU index -> container IDs
	for id, in := range live {
		for _, i := range in.res.Indexes(inv, l.DefaultRuntime) {
			reservedBy[i] = append(reservedBy[i], id)
		}
	}

	thresholds := DefaultThresholds()
	if l.Thresholds != nil {
		thresholds = *l.Thresholds
	}
	out := make([]GPUStatus, 0, len(inv.Devices))
	for _, d := range inv.Devices {
		byKey := map[string]*Holder{}
		var holders []*Holder
		holder := func(key string, mk func() Holder) *Holder {
			if h, ok := byKey[key]; ok {
				return h
			}
			h := mk()
			byKey[key] = &h
			holders = append(holders, &h)
			return &h
		}
		for _, p := range d.Processes {
			id := owners[p.PID]
			key := id
			if id == "" {
				key = fmt.Sprintf("pid %d", p.PID) // each host process is its own holder
			}
			h := holder(key, func() Holder {
				if id == "" {
					return Holder{User: processOwner(l.ProcRoot, p.PID)}
				}
				h := Holder{ContainerID: id}
				if in := live[id]; in != nil {
					h.ContainerName, h.User = in.name, in.res.User
				}
				if h.User == "" {
					// Neither LabelUser nor Config.User: who runs it.
					h.User = processOwner(l.ProcRoot, p.PID)
				}
				return h
			})
			h.ByProcess = true
			h.PIDs = append(h.PIDs, p.PID)
		}
		for _, id := range reservedBy[d.Index] {
			h := holder(id, func() Holder {
				return Holder{ContainerID: id, ContainerName: live[id].name, User: live[id].res.User}
			})
			h.ByReservation = true
		}

		s := GPUStatus{Device: d, State: State(d, len(reservedBy[d.Index]) > 0, thresholds)}
		for _, h := range holders {
			slices.Sort(h.PIDs)
			s.Holders = append(s.Holders, *h)
		}
		slices.SortFunc(s.Holders, func(a, b Holder) int {
			return cmp.Or(
				strings.Compare(a.ContainerName, b.ContainerName),
				strings.Compare(a.ContainerID, b.ContainerID),
				slices.Compare(a.PIDs, b.PIDs),
			)
		})
		out = append(out, s)
	}
	return out, nil
}

// inspect reads the reservations of containers, a few at a time. A
// container removed since it was listed holds nothing and is left out.
func (l Lookup) inspect(ctx context.Context, ids []string) (map[string]Reservation, error) {
	parallel := l.Parallel
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
			ctr, err := l.API.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
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

// reservationFromLabels reads the labels docker perceptron sets on the
// containers it creates; they describe its GPUs and user completely.
func reservationFromLabels(labels map[string]string) (Reservation, bool) {
	gpus, ok1 := labels[LabelGPUs]
	u, ok2 := labels[LabelUser]
	if !ok1 || !ok2 {
		return Reservation{}, false
	}
	r := Reservation{User: u, Format: reservationFormat}
	r.GPUs, r.All = addList(nil, false, gpus)
	return r, true
}

func containerName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimPrefix(names[0], "/")
}

// State derives a GPU's state from its processes, memory use, utilisation
// and whether a container reserves it. It is free exactly when Candidate(d,
// reserved, t) is ok; what keeps Candidate from giving out an idle GPU
// (a failed query, MIG mode) makes it unknown.
func State(d Device, reserved bool, t Thresholds) string {
	busy, unsure := false, d.MIGEnabled
	if d.Known("processes") {
		busy = len(d.Processes) > 0
	} else {
		unsure = true
	}
	if d.Known("memory") {
		busy = busy || d.MemoryUsedMiB > t.MaxMemoryUsedMiB
	} else {
		unsure = true
	}
	if d.Known("utilization") {
		busy = busy || d.UtilizationPercent > t.MaxUtilizationPercent
	} else {
		unsure = true
	}
	switch {
	case busy && reserved:
		return StateBusyReserved
	case busy:
		return StateBusy
	case reserved:
		return StateReserved
	case unsure:
		return StateUnknown
	}
	return StateFree
}

// state is State with the default thresholds.
func state(d Device, reserved bool) string {
	return State(d, reserved, DefaultThresholds())
}
