package alloc

import (
	"errors"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

func slice(gpu, index int, profile string, gb int) SliceAssessment {
	return SliceAssessment{
		MIGDevice: gpus.MIGDevice{Index: index, UUID: "MIG-" + string(rune('0'+gpu)) + "-" + string(rune('0'+index)), Profile: profile, ProfileGB: gb, MemoryTotalMiB: uint64(gb) * 1024 * 95 / 100},
		GPU:       gpu, State: StateFree, Why: "free",
	}
}

func held(s SliceAssessment) SliceAssessment {
	s.State, s.Why = StateReserved, "reserved by a container or a pending claim"
	return s
}

func TestSlicesMatches(t *testing.T) {
	m10 := slice(0, 0, "1g.10gb", 10).MIGDevice
	m20 := slice(0, 1, "2g.20gb", 20).MIGDevice
	unknown := gpus.MIGDevice{UUID: "MIG-x", MemoryTotalMiB: 40000}
	tests := []struct {
		name string
		want Slices
		m    gpus.MIGDevice
		ok   bool
	}{
		{name: "any", m: m10, ok: true},
		{name: "any, profile unknown", m: unknown, ok: true},
		{name: "profile", want: Slices{Profile: "1g.10gb"}, m: m10, ok: true},
		{name: "profile, in capitals", want: Slices{Profile: "1G.10GB"}, m: m10, ok: true},
		{name: "other profile", want: Slices{Profile: "1g.10gb"}, m: m20},
		{name: "profile unknown never matches a profile", want: Slices{Profile: "1g.10gb"}, m: unknown},
		// 2g.20gb holds 19.5 GiB but is named 20gb: >=20g takes it.
		{name: "memory as the profile names it", want: Slices{MinMemoryMiB: 20 * 1024}, m: m20, ok: true},
		{name: "too small", want: Slices{MinMemoryMiB: 20 * 1024}, m: m10},
		{name: "memory, profile unknown", want: Slices{MinMemoryMiB: 1024}, m: unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want.Matches(tc.m), tc.ok)
		})
	}
}

func TestChooseSlices(t *testing.T) {
	// GPU 0: 1g.10gb ×2 (one held), 2g.20gb, 3g.40gb; GPU 1: 1g.10gb ×2,
	// 3g.40gb, all free; GPU 2: 7g.80gb, free.
	host := []SliceAssessment{
		held(slice(0, 0, "1g.10gb", 10)), slice(0, 1, "1g.10gb", 10), slice(0, 2, "2g.20gb", 20), slice(0, 3, "3g.40gb", 40),
		slice(1, 0, "1g.10gb", 10), slice(1, 1, "1g.10gb", 10), slice(1, 2, "3g.40gb", 40),
		slice(2, 0, "7g.80gb", 80),
	}
	tests := []struct {
		name string
		in   []SliceAssessment
		want Slices
		n    int
		got  []string // "GPU:INDEX"
		err  string
	}{
		{name: "profile: on the GPU already partly used", in: host, want: Slices{Profile: "1g.10gb"}, n: 1, got: []string{"MIG 0:1"}},
		{name: "any: the smallest, on the GPU partly used", in: host, n: 1, got: []string{"MIG 0:1"}},
		{name: "at least 20g: the smallest that has it", in: host, want: Slices{MinMemoryMiB: 20 * 1024}, n: 1, got: []string{"MIG 0:2"}},
		{name: "at least 50g: the whole-GPU slice", in: host, want: Slices{MinMemoryMiB: 50 * 1024}, n: 1, got: []string{"MIG 2:0"}},
		{name: "3g.40gb: the partly used GPU's", in: host, want: Slices{Profile: "3g.40gb"}, n: 1, got: []string{"MIG 0:3"}},
		{name: "three 1g.10gb: the partly used GPU first", in: host, want: Slices{Profile: "1g.10gb"}, n: 3, got: []string{"MIG 0:1", "MIG 1:0", "MIG 1:1"}},
		{name: "with GPU 0 fuller, GPU 0 still first", in: append(host[:0:0], held(host[0]), held(host[1]), host[2], host[3], host[4], host[5], host[6], host[7]),
			want: Slices{Profile: "3g.40gb"}, n: 1, got: []string{"MIG 0:3"}},
		{name: "order of the input does not matter", in: []SliceAssessment{host[7], host[6], host[5], host[4], host[3], host[2], host[1], host[0]},
			want: Slices{Profile: "1g.10gb"}, n: 1, got: []string{"MIG 0:1"}},
		{name: "too few", in: host, want: Slices{Profile: "1g.10gb"}, n: 4,
			err: "not enough free MIG 1g.10gb slices: 4 asked for, 3 free; MIG 0:0 (1g.10gb): reserved by a container or a pending claim"},
		{name: "none of that profile", in: host, want: Slices{Profile: "2g.40gb"}, n: 1,
			err: "not enough free MIG 2g.40gb slices: 1 asked for, 0 free (this host has 0)"},
		{name: "no MIG at all", n: 1, err: "not enough free MIG slices: 1 asked for, 0 free (this host has 0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseSlices(tc.in, tc.want, tc.n)
			if tc.err != "" {
				assert.Error(t, err, tc.err)
				assert.Check(t, errors.Is(err, ErrNotEnough))
				return
			}
			assert.NilError(t, err)
			var names []string
			for _, s := range got {
				names = append(names, s.Name())
			}
			assert.DeepEqual(t, names, tc.got)
		})
	}
}

func TestAssessSlices(t *testing.T) {
	mig := func(uuid string, change func(*gpus.MIGDevice)) gpus.MIGDevice {
		m := gpus.MIGDevice{UUID: uuid, Profile: "1g.10gb", ProfileGB: 10, MemoryTotalMiB: 9728, MemoryUsedMiB: 13}
		if change != nil {
			change(&m)
		}
		return m
	}
	inv := gpus.Inventory{Devices: []gpus.Device{
		{Index: 0, UUID: "GPU-whole"}, // no MIG: no slice
		{Index: 1, UUID: "GPU-parent", MIGEnabled: true, MIG: []gpus.MIGDevice{
			mig("MIG-free", nil),
			mig("MIG-process", func(m *gpus.MIGDevice) { m.Processes = []gpus.Process{{PID: 7, UsedMemoryMiB: 500}} }),
			mig("MIG-memory", func(m *gpus.MIGDevice) { m.MemoryUsedMiB = 4096 }),
			mig("MIG-held", nil),
			mig("MIG-leased", nil),
			mig("MIG-unread", func(m *gpus.MIGDevice) { m.Errors = map[string]string{"processes": "ERROR_NO_PERMISSION"} }),
			mig("", func(m *gpus.MIGDevice) { m.Errors = map[string]string{"uuid": "ERROR_UNKNOWN"} }),
		}},
	}}
	h := holders.Holdings{
		ByMIG:       map[string][]holders.Holder{"MIG-HELD": {{ContainerID: "c1", ContainerName: "train", ByReservation: true}}},
		ReservedMIG: map[string]bool{"MIG-HELD": true},
	}
	leases := []ledger.Lease{{UUIDs: []string{"mig-leased"}}}
	got := AssessSlices(inv, h, leases, DefaultThresholds())
	states := map[string]string{}
	for _, s := range got {
		assert.Equal(t, s.GPU, 1)
		states[s.UUID] = s.State
	}
	assert.DeepEqual(t, states, map[string]string{
		"MIG-free": StateFree, "MIG-process": StateBusy, "MIG-memory": StateBusy, "MIG-held": StateReserved,
		"MIG-leased": StateReserved, "MIG-unread": StateUnknown, "": StateUnknown,
	})
	assert.Check(t, is.Equal(got[3].Describe(), "MIG 1:0 (1g.10gb) held by container train"))

	// A lease on the parent GPU holds its slices; containers that could
	// not be read make every slice unknown.
	got = AssessSlices(inv, holders.Holdings{Unknown: "cannot list containers"}, []ledger.Lease{{UUIDs: []string{"GPU-parent"}}}, DefaultThresholds())
	for _, s := range got {
		assert.Check(t, !s.Free(), s.UUID)
	}
	assert.Equal(t, got[0].State, StateReserved)
}
