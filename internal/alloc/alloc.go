// Package alloc claims free GPUs for a container about to be created: under
// a host-wide lock it reads the GPU inventory, who holds each GPU (processes,
// containers, and other invocations' leases), chooses the best free set and
// records a lease on it that lasts until the container exists and carries
// the claim itself.
package alloc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli/command/formatter"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// Request is what a --gpus auto[:N] asks for.
type Request struct {
	Count      int
	Thresholds gpus.Thresholds
	// Wait: when too few GPUs are free, wait in line (FIFO among the host's
	// waiters) until they are, or until ctx is done.
	Wait bool
}

// Allocator claims GPUs. Its fields are its dependencies.
type Allocator struct {
	// NVML returns the NVML library; the Allocator initialises it once.
	NVML func() (nvml.Interface, error)
	// Holders finds who holds the GPUs (processes and containers).
	Holders gpus.Lookup
	// StateDir holds the lock, the leases and the queue.
	StateDir string
	Now      func() time.Time
	// LeaseTTL is how long a lease counts without renewal; 0 means
	// ledger.DefaultLeaseTTL. A claim renews its lease until released.
	LeaseTTL time.Duration
	// Poll is how often a waiter looks again; 0 means one second.
	Poll time.Duration
	// Waiting is told, in one line, what a waiter waits for, each time that
	// changes; nil tells nobody.
	Waiting func(string)
}

// Claim is GPUs chosen for one container, held by a lease until Release.
type Claim struct {
	Devices []gpus.Device
	Token   string

	dir  string
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// UUIDs returns the claimed GPUs' UUIDs, in index order.
func (c *Claim) UUIDs() []string { return UUIDs(c.Devices) }

// UUIDs returns the devices' UUIDs, in order.
func UUIDs(devices []gpus.Device) []string {
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.UUID
	}
	return out
}

// Release ends the claim: call it once the container exists (its labels then
// carry the claim) or when it will not be created.
func (c *Claim) Release() error {
	var err error
	c.once.Do(func() {
		if c.stop != nil {
			close(c.stop)
			c.done.Wait()
		}
		err = ledger.Release(c.dir, c.Token)
	})
	return err
}

// NotEnoughError says how many GPUs were asked for, how many are free, and
// who holds the others.
type NotEnoughError struct {
	Asked, Free, Total int
	Held               []string // one phrase per GPU that is not free
}

func (e *NotEnoughError) Error() string {
	msg := fmt.Sprintf("not enough free GPUs: %d asked for, %d free", e.Asked, e.Free)
	if e.Asked > e.Total {
		msg += fmt.Sprintf(" (this host has %d)", e.Total)
	}
	if len(e.Held) > 0 {
		msg += "; " + strings.Join(e.Held, "; ")
	}
	return msg
}

// Claim chooses req.Count free GPUs and leases them. Without req.Wait it
// fails with a *NotEnoughError when too few are free.
func (a *Allocator) Claim(ctx context.Context, req Request) (*Claim, error) {
	return a.claim(ctx, req, true)
}

// Peek chooses as Claim does, without claiming: for --dry-run.
func (a *Allocator) Peek(ctx context.Context, req Request) ([]gpus.Device, error) {
	req.Wait = false
	c, err := a.claim(ctx, req, false)
	if err != nil {
		return nil, err
	}
	return c.Devices, nil
}

func (a *Allocator) claim(ctx context.Context, req Request, lease bool) (*Claim, error) {
	if req.Count < 1 {
		return nil, fmt.Errorf("invalid GPU count %d: ask for 1 or more", req.Count)
	}
	lib, err := a.NVML()
	if err != nil {
		return nil, err
	}
	shutdown, err := gpus.Init(lib)
	if err != nil {
		return nil, err
	}
	defer shutdown()

	var ticket *ledger.Ticket
	if req.Wait {
		if ticket, err = ledger.Enqueue(a.StateDir); err != nil {
			return nil, fmt.Errorf("cannot wait in line for GPUs: %w", err)
		}
		defer func() { _ = ticket.Leave() }()
	}
	lastNote := ""
	for {
		c, err := a.attempt(ctx, lib, req, ticket, lease)
		var notEnough *NotEnoughError
		var inLine *waitingInLine
		switch {
		case err == nil:
			return c, nil
		case !req.Wait, !errors.As(err, &notEnough) && !errors.As(err, &inLine):
			return nil, err
		}
		if note := "waiting for GPUs: " + err.Error(); note != lastNote && a.Waiting != nil {
			a.Waiting(note)
			lastNote = note
		}
		poll := a.Poll
		if poll == 0 {
			poll = time.Second
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped waiting for GPUs: %w", context.Cause(ctx))
		case <-time.After(poll):
		}
	}
}

type waitingInLine struct{ ahead int }

func (e *waitingInLine) Error() string {
	return fmt.Sprintf("%d earlier request(s) in line on this host", e.ahead)
}

// attempt is one look under the lock: choose, and lease when asked to.
func (a *Allocator) attempt(ctx context.Context, lib nvml.Interface, req Request, ticket *ledger.Ticket, lease bool) (*Claim, error) {
	var unlock func()
	if lease {
		var err error
		if unlock, err = ledger.Lock(ctx, a.StateDir); err != nil {
			return nil, fmt.Errorf("cannot take the GPU lock in %s: %w", a.StateDir, err)
		}
		defer unlock()
	}
	if ticket != nil {
		ahead, err := ticket.Ahead()
		if err != nil {
			return nil, fmt.Errorf("waiting in line for GPUs: %w", err)
		}
		if ahead > 0 {
			return nil, &waitingInLine{ahead: ahead}
		}
	}

	inv, err := gpus.ReadInventory(lib)
	if err != nil {
		return nil, err
	}
	status, err := a.Holders.Status(ctx, inv)
	if err != nil {
		return nil, err
	}
	now := a.Now()
	leases, err := ledger.ActiveLeases(a.StateDir, now)
	if err != nil {
		return nil, err
	}
	leased := map[string]ledger.Lease{}
	for _, l := range leases {
		for _, u := range l.UUIDs {
			leased[strings.ToUpper(u)] = l
		}
	}

	var candidates []int
	var held []string
	for _, st := range status {
		l, isLeased := leased[strings.ToUpper(st.UUID)]
		reserved := isLeased || st.State == gpus.StateReserved || st.State == gpus.StateBusyReserved
		ok, why := gpus.Candidate(st.Device, reserved, req.Thresholds)
		if ok {
			candidates = append(candidates, st.Index)
			continue
		}
		held = append(held, describeHeld(st, isLeased, l, why))
	}
	if len(candidates) < req.Count {
		return nil, &NotEnoughError{Asked: req.Count, Free: len(candidates), Total: len(inv.Devices), Held: held}
	}
	chosen, err := gpus.Choose(inv.Devices, candidates, req.Count)
	if err != nil {
		return nil, err
	}
	c := &Claim{dir: a.StateDir}
	for _, i := range chosen {
		c.Devices = append(c.Devices, deviceByIndex(inv.Devices, i))
	}
	if !lease {
		return c, nil
	}
	ttl := a.LeaseTTL
	if ttl == 0 {
		ttl = ledger.DefaultLeaseTTL
	}
	l := ledger.NewLease(c.UUIDs(), now, ttl)
	if err := ledger.WriteLease(a.StateDir, l); err != nil {
		return nil, fmt.Errorf("cannot record the GPU claim: %w", err)
	}
	c.Token = l.Token
	a.keepAlive(c, l, ttl)
	return c, nil
}

// keepAlive renews the lease every third of its TTL until the claim is
// released, so that a slow container creation (an image pull) keeps its GPUs.
func (a *Allocator) keepAlive(c *Claim, l ledger.Lease, ttl time.Duration) {
	c.stop = make(chan struct{})
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				_ = a.renew(l, ttl)
			}
		}
	}()
}

// renew replaces the lease with one that expires a TTL from now, under the
// lock so that no other invocation sees the GPUs unclaimed in between.
func (a *Allocator) renew(l ledger.Lease, ttl time.Duration) error {
	unlock, err := ledger.Lock(context.Background(), a.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := ledger.Release(a.StateDir, l.Token); err != nil {
		return err
	}
	l.Expires = a.Now().Add(ttl)
	return ledger.WriteLease(a.StateDir, l)
}

func deviceByIndex(devices []gpus.Device, i int) gpus.Device {
	for _, d := range devices {
		if d.Index == i {
			return d
		}
	}
	return gpus.Device{Index: i}
}

// describeHeld says in a phrase why a GPU is not free, naming its holders.
func describeHeld(st gpus.GPUStatus, leased bool, l ledger.Lease, why string) string {
	var who []string
	for _, h := range st.Holders {
		who = append(who, describeHolder(h))
	}
	if leased {
		who = append(who, fmt.Sprintf("a docker perceptron of %s creating its container (pid %d)", gpus.UserName(strconv.Itoa(l.UID)), l.PID))
	}
	if len(who) == 0 {
		return fmt.Sprintf("GPU %d: %s", st.Index, why)
	}
	return fmt.Sprintf("GPU %d held by %s", st.Index, strings.Join(who, ", "))
}

func describeHolder(h gpus.Holder) string {
	var s string
	switch {
	case h.ContainerName != "":
		s = "container " + h.ContainerName
	case h.ContainerID != "":
		s = "container " + formatter.TruncateID(h.ContainerID)
	default:
		s = "host process"
		if len(h.PIDs) > 0 {
			s += fmt.Sprintf(" %d", h.PIDs[0])
		}
	}
	if h.User != "" {
		s += " (" + h.User + ")"
	}
	return s
}
