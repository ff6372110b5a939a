// Package alloc answers "why was GPU 2 (not) given to me?": the one rule of
// a free GPU (Assess), the choice among free GPUs (Choose: topology,
// fragmentation, load) and the claim. Under the host-wide lock of
// internal/ledger a claim reads the GPU inventory, who holds each GPU
// (internal/holders) and the other invocations' leases, chooses the best free
// set and records a lease on it, renewed until the container exists and
// carries the claim itself.
package alloc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/policy"
)

// Request is what a --gpus auto[:N] asks for.
type Request struct {
	Count int
	// MIG, when set, asks for Count MIG slices of this kind instead of
	// whole GPUs (see Slices, ChooseSlices).
	MIG        *Slices
	Thresholds Thresholds
	// Wait: when too few GPUs are free, wait in line (FIFO among the host's
	// waiters) until they are, or until ctx is done.
	Wait bool
}

// Allocator claims GPUs. Its fields are its dependencies.
type Allocator struct {
	// NVML returns the NVML library; the Allocator initialises it once.
	NVML func() (nvml.Interface, error)
	// Holders finds who holds the GPUs (processes and containers).
	Holders holders.Finder
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
	// Policy is the site's (see internal/policy): the quota of Who, the
	// max-idle after which a reservation no longer blocks others.
	Policy policy.Policy
	Who    Who
	// BeforeLock, when set, runs between the look before the lock and the
	// lock (tests widen that window); LockHeld is told how long each claim
	// held the lock (the benchmark reports it).
	BeforeLock func()
	LockHeld   func(time.Duration)
}

// Claim is GPUs chosen for one container, held by a lease until Release.
type Claim struct {
	Devices []gpus.Device
	// Slices are the claimed MIG devices, for a request of MIG slices
	// (Devices is then empty).
	Slices []SliceAssessment
	Token  string
	// Expired says, one phrase per GPU, whose expired reservations (see
	// StateExpired) the claim took.
	Expired []string

	a     *Allocator
	lease ledger.Lease
	ttl   time.Duration
	lost  atomic.Bool  // the lease ran out (the run was stopped): never renewed again
	valid atomic.Int64 // until when (unix ns) the lease last written counts
	grant *ledger.Grant
	stop  chan struct{}
	done  sync.WaitGroup
	once  sync.Once
}

// ErrClaimExpired is returned by Check for a claim whose lease ran out
// before its container was created: its GPUs may have gone to someone else.
var ErrClaimExpired = errors.New("the GPU claim expired before the container was created")

// UUIDs returns the claimed GPUs' UUIDs, in index order.
func (c *Claim) UUIDs() []string {
	if len(c.Slices) > 0 {
		out := make([]string, len(c.Slices))
		for i, s := range c.Slices {
			out[i] = s.UUID
		}
		return out
	}
	return UUIDs(c.Devices)
}

// UUIDs returns the devices' UUIDs, in order.
func UUIDs(devices []gpus.Device) []string {
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.UUID
	}
	return out
}

// Describe is the line that tells the user which GPUs they got:
// "using GPU 2 (GPU-…, NVIDIA H100 80GB HBM3)".
func (c *Claim) Describe() string {
	if len(c.Slices) > 0 {
		parts := make([]string, len(c.Slices))
		for i, s := range c.Slices {
			parts[i] = fmt.Sprintf("MIG %s slice %s on GPU %d (%s)", s.Profile, s.UUID, s.GPU, s.GPUName)
		}
		return "using " + strings.Join(parts, ", ")
	}
	parts := make([]string, len(c.Devices))
	for i, d := range c.Devices {
		parts[i] = fmt.Sprintf("GPU %d (%s, %s)", d.Index, d.UUID, d.Name)
	}
	return "using " + strings.Join(parts, ", ")
}

// Release ends the claim (none for a nil claim): call it once the container
// exists (its labels then carry the claim) or when it will not be created.
//
// It needs no lock. A claim under the lock reads the leases first, then
// what changed among the containers up to a moment after that: a lease gone
// by then was released after its container existed, so the container is
// seen; a lease still there is seen itself.
func (c *Claim) Release() error {
	if c == nil {
		return nil
	}
	var err error
	c.once.Do(func() {
		if c.stop != nil {
			close(c.stop)
			c.done.Wait()
		}
		if c.Token != "" {
			err = ledger.Release(c.a.StateDir, c.Token)
		}
	})
	return err
}

// Check (a nil claim holds nothing) makes sure, right before the container
// is created, that the claim still holds. A lease well within its time
// counts for every other claim, so nothing more is needed; otherwise, under
// the host lock, its lease must still count, and it is renewed. A run
// stopped (Ctrl-Z) past the lease time gets ErrClaimExpired, and its GPUs
// are never used.
func (c *Claim) Check() error {
	if c == nil || c.Token == "" {
		return nil
	}
	if !c.lost.Load() && c.a.Now().Before(time.Unix(0, c.valid.Load()).Add(-c.ttl/4)) {
		return nil
	}
	if err := c.a.renew(c); err != nil {
		return err
	}
	if c.lost.Load() {
		return fmt.Errorf("%w: the run was stopped for longer than the claim lasts (%s), and its GPUs may have gone to someone else; run it again", ErrClaimExpired, c.ttl)
	}
	return nil
}

// Grant records the claim for every docker perceptron on this host,
// whatever daemon it talks to (see ledger.Grant), before the container that
// command ("run", "create") makes on the daemon with ID daemonID exists.
func (c *Claim) Grant(daemonID, command string) error {
	if c == nil || c.Token == "" || daemonID == "" {
		return nil
	}
	g := ledger.NewGrant(c.Token, c.UUIDs(), daemonID, command)
	if err := ledger.WriteGrant(c.a.StateDir, g); err != nil {
		return fmt.Errorf("cannot record the GPU claim for the host's other daemons: %w", err)
	}
	c.grant = &g
	return nil
}

// Settle ends the creation: the grant names the container that now holds
// the GPUs (containerID, when holds), or is removed when none does.
func (c *Claim) Settle(containerID string, holds bool) error {
	if c == nil || c.grant == nil {
		return nil
	}
	if !holds {
		return ledger.RemoveGrant(c.a.StateDir, c.Token)
	}
	g := *c.grant
	g.ContainerID = containerID
	return ledger.WriteGrant(c.a.StateDir, g)
}

// ErrNotEnough is matched (errors.Is) by every NotEnoughError.
var ErrNotEnough = errors.New("not enough free GPUs")

// NotEnoughError says how many GPUs were asked for, how many are free, and
// who holds the others.
type NotEnoughError struct {
	Asked, Free, Total int
	Held               []string // one phrase per GPU that is not free
	// Unit is what was asked for, "MIG 1g.10gb slices"; "" is GPUs.
	Unit string
}

func (e *NotEnoughError) Error() string {
	unit := cmp.Or(e.Unit, "GPUs")
	msg := fmt.Sprintf("not enough free %s: %d asked for, %d free", unit, e.Asked, e.Free)
	if e.Asked > e.Total {
		msg += fmt.Sprintf(" (this host has %d)", e.Total)
	}
	if len(e.Held) > 0 {
		msg += "; " + strings.Join(e.Held, "; ")
	}
	return msg
}

// Is makes errors.Is(err, ErrNotEnough) true.
func (e *NotEnoughError) Is(target error) bool { return target == ErrNotEnough }

// StoppedError ends a claim whose context was done (Ctrl-C, the --wait
// limit), whatever step it was at.
type StoppedError struct {
	Cause  error
	Waited time.Duration // since the claim began
}

func (e *StoppedError) Error() string {
	why := e.Cause.Error()
	switch {
	case errors.Is(e.Cause, context.DeadlineExceeded):
		why = "the time limit passed"
	case errors.Is(e.Cause, context.Canceled):
		why = "interrupted"
	}
	return "stopped waiting for GPUs after " + Round(e.Waited) + ": " + why
}

func (e *StoppedError) Unwrap() error { return e.Cause }

// Claim chooses req.Count free GPUs and leases them. Without req.Wait it
// fails with a *NotEnoughError when too few are free.
func (a *Allocator) Claim(ctx context.Context, req Request) (*Claim, error) {
	return a.claim(ctx, req, true)
}

// Preview chooses as Claim does, without claiming: for --dry-run. The
// claim it returns holds nothing (Release is not needed).
func (a *Allocator) Preview(ctx context.Context, req Request) (*Claim, error) {
	req.Wait = false
	return a.claim(ctx, req, false)
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

	start := time.Now()
	var ticket *ledger.Ticket
	if req.Wait {
		if ticket, err = ledger.Enqueue(a.StateDir, req.Count); err != nil {
			return nil, fmt.Errorf("cannot wait in line for GPUs: %w", err)
		}
		defer func() { _ = ticket.Leave() }()
	}
	lastNote := ""
	for {
		c, err := a.attempt(ctx, lib, req, ticket, lease)
		var inLine *waitingInLine
		var notEnough *NotEnoughError
		var overQuota *QuotaError
		switch {
		case err == nil:
			return c, nil
		case ctx.Err() != nil:
			// The lock, a container list or the daemon was interrupted:
			// the same words whatever the step.
			return nil, &StoppedError{Cause: context.Cause(ctx), Waited: time.Since(start)}
		case errors.As(err, &notEnough) && notEnough.Asked > notEnough.Total,
			errors.As(err, &overQuota) && overQuota.Never():
			return nil, err // more than the host has or the policy allows: waiting would be forever
		case !req.Wait, !errors.Is(err, ErrNotEnough) && !errors.Is(err, ErrOverQuota) && !errors.As(err, &inLine):
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
			return nil, &StoppedError{Cause: context.Cause(ctx), Waited: time.Since(start)}
		case <-time.After(poll):
		}
	}
}

type waitingInLine struct{ ahead int }

func (e *waitingInLine) Error() string {
	return fmt.Sprintf("%d earlier request(s) in line on this host", e.ahead)
}

// quickTries is how many times a claim that finds new containers under the
// lock lets the lock go, inspects them outside it, and tries again, before
// it inspects under the lock.
const quickTries = 10

// attempt looks, then chooses and leases under the lock. The slow look
// (NVML, the containers) comes before the lock; under it, only the leases
// and what changed since that look are read again (see holders.FileCache).
// Containers never seen before are inspected outside the lock, and the
// lock taken again, so the lock is held for milliseconds however many
// containers the daemon has and however busy it is.
func (a *Allocator) attempt(ctx context.Context, lib nvml.Interface, req Request, ticket *ledger.Ticket, lease bool) (*Claim, error) {
	inv, err := gpus.ReadInventory(lib)
	if err != nil {
		return nil, err
	}
	if _, err := a.Holders.Find(ctx, inv); err != nil {
		return nil, err
	}
	if a.BeforeLock != nil {
		a.BeforeLock()
	}
	if !lease {
		return a.chooseAndLease(ctx, inv, req, a.Holders, false)
	}
	for try := 1; ; try++ {
		quick := a.Holders
		quick.NoInspect = try <= quickTries
		c, err := a.underLock(ctx, inv, req, ticket, quick)
		if !errors.Is(err, holders.ErrNotInspected) {
			return c, err
		}
		if _, err := a.Holders.Find(ctx, inv); err != nil {
			return nil, err
		}
	}
}

// underLock takes the lock, checks the line, then chooses and leases.
func (a *Allocator) underLock(ctx context.Context, inv gpus.Inventory, req Request, ticket *ledger.Ticket, finder holders.Finder) (*Claim, error) {
	unlock, err := ledger.Lock(ctx, a.StateDir)
	if err != nil {
		return nil, fmt.Errorf("cannot take the GPU lock in %s: %w", a.StateDir, err)
	}
	locked := time.Now()
	defer func() {
		unlock()
		if a.LockHeld != nil {
			a.LockHeld(time.Since(locked))
		}
	}()
	if ticket != nil {
		ahead, err := ticket.Ahead()
		if err != nil {
			return nil, fmt.Errorf("waiting in line for GPUs: %w", err)
		}
		if ahead > 0 {
			return nil, &waitingInLine{ahead: ahead}
		}
	}
	return a.chooseAndLease(ctx, inv, req, finder, true)
}

// chooseAndLease reads the leases, then the containers (a claim whose lease
// is gone released it, under the lock, only once its container existed, so
// the look that follows sees the container), chooses, and leases.
func (a *Allocator) chooseAndLease(ctx context.Context, inv gpus.Inventory, req Request, finder holders.Finder, lease bool) (*Claim, error) {
	now := a.Now()
	leases, err := ledger.ActiveLeases(a.StateDir, now)
	if err != nil {
		return nil, err
	}
	held, err := finder.Find(ctx, inv)
	if err != nil {
		return nil, err
	}
	assessed := Expire(Assess(inv, held, leases, req.Thresholds), a.Policy.MaxIdle, now)
	sliced := AssessSlices(inv, held, leases, req.Thresholds)
	if err := a.checkQuota(quotaUnits(assessed, sliced), leases, req.Count); err != nil {
		return nil, err
	}
	c := &Claim{a: a}
	var chosen []int
	if req.MIG != nil {
		// A slice never expires: MIG devices are not under max-idle.
		if c.Slices, err = ChooseSlices(sliced, *req.MIG, req.Count); err != nil {
			return nil, err
		}
	} else if chosen, err = choose(inv, assessed, req.Count); err != nil {
		return nil, err
	}
	for _, i := range chosen {
		c.Devices = append(c.Devices, deviceByIndex(inv.Devices, i))
		if g := assessed[slices.IndexFunc(assessed, func(g Assessment) bool { return g.Index == i })]; g.State == StateExpired {
			c.Expired = append(c.Expired, g.Why)
		}
	}
	if !lease {
		return c, nil
	}
	ttl := a.LeaseTTL
	if ttl == 0 {
		ttl = ledger.DefaultLeaseTTL
	}
	c.lease, c.ttl = ledger.NewLease(c.UUIDs(), now, ttl), ttl
	if err := ledger.WriteLease(a.StateDir, c.lease); err != nil {
		return nil, fmt.Errorf("cannot record the GPU claim: %w", err)
	}
	c.Token = c.lease.Token
	c.valid.Store(c.lease.Expires.UnixNano())
	a.keepAlive(c)
	return c, nil
}

// choose picks count of the free GPUs, or says who holds the others. When
// too few are free, the expired reservations idle the longest make up the
// rest.
func choose(inv gpus.Inventory, assessed []Assessment, count int) ([]int, error) {
	var free []int
	var expired []Assessment
	var held []string
	for _, g := range assessed {
		switch {
		case g.Free():
			free = append(free, g.Index)
		case g.State == StateExpired:
			expired = append(expired, g)
			held = append(held, g.Describe())
		default:
			held = append(held, g.Describe())
		}
	}
	slices.SortStableFunc(expired, func(x, y Assessment) int { return x.IdleSince.Compare(y.IdleSince) })
	for _, g := range expired {
		if len(free) >= count {
			break
		}
		free = append(free, g.Index)
	}
	if len(free) < count {
		return nil, &NotEnoughError{Asked: count, Free: len(free), Total: len(inv.Devices), Held: held}
	}
	return Choose(inv.Devices, free, count)
}

// checkQuota refuses a claim that would take a.Who past the policy's limit.
func (a *Allocator) checkQuota(units []unit, leases []ledger.Lease, count int) error {
	if _, limited := a.Policy.LimitFor(a.Who.Name, a.Who.Groups); !limited {
		return nil
	}
	grants, err := ledger.Grants(a.StateDir)
	if err != nil {
		return err
	}
	return checkQuota(a.Policy, a.Who, units, leases, grants, count)
}

// keepAlive renews the lease every third of its TTL until the claim is
// released, so that a slow container creation (an image pull) keeps its GPUs.
func (a *Allocator) keepAlive(c *Claim) {
	c.stop = make(chan struct{})
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		t := time.NewTicker(c.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				_ = a.renew(c)
			}
		}
	}()
}

// renew replaces the claim's lease with one that expires a TTL from now,
// under the lock so that no other invocation sees the GPUs unclaimed in
// between. A lease that no longer counts (the run was stopped past it) is
// never brought back: the claim is lost.
func (a *Allocator) renew(c *Claim) error {
	if c.lost.Load() {
		return nil
	}
	unlock, err := ledger.Lock(context.Background(), a.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	now := a.Now()
	leases, err := ledger.ActiveLeases(a.StateDir, now)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(leases, func(l ledger.Lease) bool { return l.Token == c.Token }) {
		c.lost.Store(true)
		return nil
	}
	if err := ledger.Renew(a.StateDir, c.lease, now.Add(c.ttl)); err != nil {
		return err
	}
	c.valid.Store(now.Add(c.ttl).UnixNano())
	return nil
}

func deviceByIndex(devices []gpus.Device, i int) gpus.Device {
	for _, d := range devices {
		if d.Index == i {
			return d
		}
	}
	return gpus.Device{Index: i}
}
