package alloc

import (
	"errors"
	"os"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/policy"
)

func TestIdleAndExpire(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	held := holders.Holder{ContainerID: "c1", ContainerName: "idle", User: "bob", ByReservation: true, Since: now.Add(-10 * time.Hour)}
	tests := []struct {
		name      string
		dev       gpus.Device
		holders   []holders.Holder
		lease     bool
		state     string // after Assess
		idleSince time.Time
		expired   bool
	}{
		{name: "accounting: idle since the last process ended", dev: gpus.Device{Accounting: true, LastUsed: now.Add(-5 * time.Hour)},
			holders: []holders.Holder{held}, state: StateReserved, idleSince: now.Add(-5 * time.Hour), expired: true},
		{name: "idle from the reservation's start when it is later", dev: gpus.Device{Accounting: true, LastUsed: now.Add(-20 * time.Hour)},
			holders: []holders.Holder{{ContainerID: "c2", ByReservation: true, Since: now.Add(-3 * time.Hour)}}, state: StateReserved, idleSince: now.Add(-3 * time.Hour)},
		{name: "not idle long enough", dev: gpus.Device{Accounting: true, LastUsed: now.Add(-time.Hour)},
			holders: []holders.Holder{held}, state: StateReserved, idleSince: now.Add(-time.Hour)},
		{name: "a process now: never expired", dev: gpus.Device{Accounting: true, LastUsed: now.Add(-5 * time.Hour), Processes: []gpus.Process{{PID: 7}}},
			holders: []holders.Holder{held}, state: StateBusyReserved},
		{name: "no accounting: idleness unknown, never expired", dev: gpus.Device{},
			holders: []holders.Holder{held}, state: StateReserved},
		{name: "accounting with no record: unknown", dev: gpus.Device{Accounting: true},
			holders: []holders.Holder{held}, state: StateReserved},
		{name: "a pending claim: never expired", dev: gpus.Device{Accounting: true, LastUsed: now.Add(-5 * time.Hour)},
			lease: true, state: StateReserved, idleSince: now.Add(-5 * time.Hour)},
		{name: "free and idle: free", dev: gpus.Device{Accounting: true, LastUsed: now.Add(-5 * time.Hour)},
			state: StateFree, idleSince: now.Add(-5 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.dev.UUID, tc.dev.NUMANode = "GPU-0", -1
			inv := gpus.Inventory{Devices: []gpus.Device{tc.dev}}
			h := holders.Holdings{ByGPU: map[int][]holders.Holder{}, Reserved: map[int]bool{}}
			if len(tc.holders) > 0 {
				h.ByGPU[0], h.Reserved[0] = tc.holders, true
			}
			var leases []ledger.Lease
			if tc.lease {
				leases = []ledger.Lease{{UUIDs: []string{"GPU-0"}, UID: 0}}
			}
			a := Assess(inv, h, leases, DefaultThresholds())
			assert.Check(t, is.Equal(a[0].State, tc.state))
			assert.Check(t, a[0].IdleSince.Equal(tc.idleSince), "idle since %v, want %v", a[0].IdleSince, tc.idleSince)
			e := Expire(a, 4*time.Hour, now)
			assert.Check(t, is.Equal(e[0].State == StateExpired, tc.expired), e[0].Why)
			assert.Check(t, is.Equal(Expire(a, 0, now)[0].State, tc.state), "no max-idle, nothing expires")
		})
	}
}

func TestRound(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 40 * time.Second: "40s", 35*time.Minute + 20*time.Second: "35m20s",
		4 * time.Hour: "4h", 4*time.Hour + 12*time.Minute + 30*time.Second: "4h13m",
	} {
		assert.Check(t, is.Equal(Round(d), want), "%s", d)
	}
}

// An expired reservation is taken only when no free GPU is left, the
// longest idle first, and the claim says whose it took.
func TestClaimTakesExpired(t *testing.T) {
	now := time.Now()
	spec := fakeHost(3)
	for i := range spec.GPUs {
		spec.GPUs[i].Accounting = &gpustest.Accounting{Processes: []gpustest.AccountedProcess{{PID: 9, Start: now.Add(-time.Duration(5+i) * time.Hour), Seconds: 60}}}
	}
	d := &daemon{}
	d.create("idle-a", "bob", []string{spec.GPUs[0].UUID})
	d.create("idle-b", "bob", []string{spec.GPUs[1].UUID})
	a := newAllocator(t, spec, d)
	a.Policy = policy.Policy{Path: "policy.yaml", MaxIdle: 4 * time.Hour}

	first, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer first.Release()
	assert.Check(t, is.DeepEqual(first.UUIDs(), []string{spec.GPUs[2].UUID}), "a free GPU first")
	assert.Check(t, is.Len(first.Expired, 0))

	second, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer second.Release()
	assert.Check(t, is.DeepEqual(second.UUIDs(), []string{spec.GPUs[1].UUID}), "the longest idle")
	assert.Assert(t, is.Len(second.Expired, 1))
	assert.Check(t, is.Contains(second.Expired[0], "GPU 1 held by container idle-b (bob), idle for 5h59m (max-idle 4h)"))

	// Without the policy, reserved GPUs stay reserved.
	a.Policy = policy.Policy{}
	_, err = a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.Check(t, errors.Is(err, ErrNotEnough), "%v", err)
}

// A user at quota is refused, with the policy, the limit and what they
// hold; the pending claims and the grants of live containers count.
func TestClaimQuota(t *testing.T) {
	d := &daemon{}
	spec := fakeHost(4)
	a := newAllocator(t, spec, d)
	one := 1
	a.Policy = policy.Policy{Path: "/etc/docker/perceptron/policy.yaml", MaxGPUs: policy.Limits{Default: &one, Users: map[string]int{"alice": 2}}}
	a.Who = Who{UID: os.Geteuid(), Name: "alice"}

	c, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer c.Release()
	_, err = a.Claim(t.Context(), Request{Count: 2, Thresholds: DefaultThresholds()})
	var over *QuotaError
	assert.Assert(t, errors.As(err, &over), "%v", err)
	assert.Check(t, is.Error(err, "the site policy /etc/docker/perceptron/policy.yaml allows alice at most 2 GPU(s) through --gpus auto (user alice); alice holds 1 now (GPU 0) and asks for 2"))
	assert.Check(t, !over.Never())

	// The claim's container exists and its grant names it: still counted.
	assert.NilError(t, c.Grant("daemon", "run"))
	d.create("mine", "alice", c.UUIDs())
	assert.NilError(t, c.Settle(d.list[0].ID, true))
	assert.NilError(t, c.Release())
	_, err = a.Claim(t.Context(), Request{Count: 2, Thresholds: DefaultThresholds()})
	assert.Check(t, errors.Is(err, ErrOverQuota), "%v", err)
	two, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer two.Release()

	// More than the limit at all: waiting cannot help.
	_, err = a.Claim(t.Context(), Request{Count: 3, Thresholds: DefaultThresholds(), Wait: true})
	assert.Assert(t, errors.As(err, &over), "%v", err)
	assert.Check(t, over.Never())

	// Another user's limit is the default.
	a.Who = Who{UID: os.Geteuid() + 1, Name: "bob"}
	b, err := a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	assert.NilError(t, b.Release())
}

// MIG slices count against the quota as GPUs do, those held as those asked.
func TestClaimQuotaSlices(t *testing.T) {
	a := newAllocator(t, gpustest.MIGA100s(), &daemon{})
	one := 1
	a.Policy = policy.Policy{Path: "policy.yaml", MaxGPUs: policy.Limits{Default: &one}}
	a.Who = Who{UID: os.Geteuid(), Name: "alice"}
	c, err := a.Claim(t.Context(), Request{Count: 1, MIG: &Slices{}, Thresholds: DefaultThresholds()})
	assert.NilError(t, err)
	defer c.Release()
	_, err = a.Claim(t.Context(), Request{Count: 1, MIG: &Slices{}, Thresholds: DefaultThresholds()})
	var over *QuotaError
	assert.Assert(t, errors.As(err, &over), "%v", err)
	assert.Check(t, is.Len(over.Held, 1))
	assert.Check(t, is.Contains(over.Held[0], "MIG "), over.Held[0])
	_, err = a.Claim(t.Context(), Request{Count: 1, Thresholds: DefaultThresholds()})
	assert.Check(t, errors.Is(err, ErrOverQuota), "a whole GPU counts too: %v", err)
}
