package alloc

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

func TestStateWhy(t *testing.T) {
	idle := gpus.Device{Index: 0, UUID: "GPU-0", MemoryTotalMiB: 81920, MemoryUsedMiB: 4, UtilizationPercent: 0}
	with := func(f func(*gpus.Device)) gpus.Device {
		d := idle
		f(&d)
		return d
	}
	th := DefaultThresholds()
	tests := []struct {
		name     string
		d        gpus.Device
		reserved bool
		t        Thresholds
		ok       bool
		why      string // substring
	}{
		{name: "idle", d: idle, t: th, ok: true, why: "free"},
		{name: "reserved", d: idle, reserved: true, t: th, why: "reserved"},
		{name: "process", d: with(func(d *gpus.Device) { d.Processes = []gpus.Process{{PID: 42, UsedMemoryMiB: 10}} }), t: th, why: "PID 42"},
		{name: "process with no memory is still busy", d: with(func(d *gpus.Device) { d.Processes = []gpus.Process{{PID: 7}} }), t: Thresholds{MaxMemoryUsedMiB: 1 << 40, MaxUtilizationPercent: 100}, why: "compute process"},
		{name: "memory at threshold", d: with(func(d *gpus.Device) { d.MemoryUsedMiB = 1024 }), t: th, ok: true, why: "free"},
		{name: "memory above threshold", d: with(func(d *gpus.Device) { d.MemoryUsedMiB = 1025 }), t: th, why: "1025 MiB"},
		{name: "utilisation at threshold", d: with(func(d *gpus.Device) { d.UtilizationPercent = 10 }), t: th, ok: true, why: "free"},
		{name: "utilisation above threshold", d: with(func(d *gpus.Device) { d.UtilizationPercent = 11 }), t: th, why: "11% utilised"},
		{name: "processes unknown", d: with(func(d *gpus.Device) { d.Errors = map[string]string{"processes": "Insufficient Permissions"} }), t: th, why: "processes unknown: Insufficient Permissions"},
		{name: "memory unknown", d: with(func(d *gpus.Device) { d.Errors = map[string]string{"memory": "GPU is lost"} }), t: th, why: "memory use unknown: GPU is lost"},
		{name: "utilisation unknown", d: with(func(d *gpus.Device) { d.Errors = map[string]string{"utilization": "Not Supported"} }), t: th, why: "utilisation unknown"},
		{name: "other query failed is fine", d: with(func(d *gpus.Device) { d.Errors = map[string]string{"temperature": "x", "nvlink": "x"} }), t: th, ok: true, why: "free"},
		{name: "MIG", d: with(func(d *gpus.Device) { d.MIGEnabled = true }), t: th, why: "MIG"},
		{name: "UUID unknown", d: with(func(d *gpus.Device) { d.UUID, d.Errors = "", map[string]string{"uuid": "ERROR_UNKNOWN"} }), t: th, why: "UUID unknown: ERROR_UNKNOWN"},
		{name: "zero thresholds", d: with(func(d *gpus.Device) { d.MemoryUsedMiB = 1 }), t: Thresholds{}, why: "1 MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, why := state(tc.d, tc.reserved, tc.t)
			if (st == StateFree) != tc.ok || !strings.Contains(why, tc.why) {
				t.Errorf("state() = %s, %q; want free %v, …%q…", st, why, tc.ok, tc.why)
			}
		})
	}
}

func TestState(t *testing.T) {
	def := DefaultThresholds()
	tests := []struct {
		name     string
		d        gpus.Device
		reserved bool
		t        Thresholds
		want     string
	}{
		{name: "idle", d: gpus.Device{MemoryUsedMiB: 4}, want: StateFree},
		{name: "memory at threshold", d: gpus.Device{MemoryUsedMiB: def.MaxMemoryUsedMiB}, want: StateFree},
		{name: "memory above threshold", d: gpus.Device{MemoryUsedMiB: def.MaxMemoryUsedMiB + 1}, want: StateBusy},
		{name: "memory above a lower threshold", d: gpus.Device{MemoryUsedMiB: 300}, t: Thresholds{MaxMemoryUsedMiB: 256, MaxUtilizationPercent: 10}, want: StateBusy},
		{name: "utilisation at threshold", d: gpus.Device{UtilizationPercent: def.MaxUtilizationPercent}, want: StateFree},
		{name: "utilisation above threshold", d: gpus.Device{UtilizationPercent: def.MaxUtilizationPercent + 1}, want: StateBusy},
		{name: "process", d: gpus.Device{Processes: []gpus.Process{{PID: 1}}}, want: StateBusy},
		{name: "reserved", d: gpus.Device{}, reserved: true, want: StateReserved},
		{name: "busy and reserved", d: gpus.Device{Processes: []gpus.Process{{PID: 1}}}, reserved: true, want: StateBusyReserved},
		{name: "processes unknown, memory idle", d: gpus.Device{Errors: map[string]string{"processes": "x"}}, want: StateUnknown},
		{name: "processes unknown, memory used", d: gpus.Device{MemoryUsedMiB: 9000, Errors: map[string]string{"processes": "x"}}, want: StateBusy},
		{name: "utilisation unknown", d: gpus.Device{Errors: map[string]string{"utilization": "x"}}, want: StateUnknown},
		{name: "utilisation unknown, process", d: gpus.Device{Processes: []gpus.Process{{PID: 1}}, Errors: map[string]string{"utilization": "x"}}, want: StateBusy},
		{name: "mig idle", d: gpus.Device{MIGEnabled: true}, want: StateUnknown},
		{name: "mig with process", d: gpus.Device{MIGEnabled: true, Processes: []gpus.Process{{PID: 1}}}, want: StateBusy},
		{name: "nothing known", d: gpus.Device{Errors: map[string]string{"processes": "x", "memory": "x", "utilization": "x"}}, want: StateUnknown},
		{name: "UUID unknown, idle", d: gpus.Device{Errors: map[string]string{"uuid": "x"}}, want: StateUnknown},
		{name: "UUID unknown, busy", d: gpus.Device{Processes: []gpus.Process{{PID: 1}}, Errors: map[string]string{"uuid": "x"}}, want: StateBusy},
		{name: "nothing known but reserved", d: gpus.Device{Errors: map[string]string{"processes": "x", "memory": "x"}}, reserved: true, want: StateReserved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := tc.t
			if th == (Thresholds{}) {
				th = def
			}
			if tc.d.UUID == "" && tc.d.Known("uuid") {
				tc.d.UUID = "GPU-0" // NVML read it; see the UUID cases
			}
			got, why := state(tc.d, tc.reserved, th)
			assert.Equal(t, got, tc.want, why)
			if got == StateFree {
				assert.Equal(t, why, "free")
			}
		})
	}
}

// loadFake reads the inventory of fake GPUs.
func loadFake(t *testing.T, spec gpustest.Spec) gpus.Inventory {
	t.Helper()
	inv, err := gpus.Load(gpustest.NewLibrary(spec))
	assert.NilError(t, err)
	return inv
}

func states(as []Assessment) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.State
	}
	return out
}

// The gpus view and the choice share the thresholds.
func TestAssessThresholds(t *testing.T) {
	spec := gpustest.FourH100()
	spec.GPUs[2].MemoryUsedMiB = 600     // an idle CUDA context
	spec.GPUs[3].UtilizationPercent = 30 // no process visible, but working
	inv := loadFake(t, spec)
	held, err := holders.Finder{ProcRoot: t.TempDir()}.Find(t.Context(), inv)
	assert.NilError(t, err)
	tests := []struct {
		name string
		t    Thresholds
		want []string
	}{
		{name: "default", t: DefaultThresholds(), want: []string{StateFree, StateBusy, StateFree, StateBusy}},
		{name: "strict", t: Thresholds{MaxMemoryUsedMiB: 256, MaxUtilizationPercent: 10}, want: []string{StateFree, StateBusy, StateBusy, StateBusy}},
		{name: "zero", t: Thresholds{}, want: []string{StateFree, StateBusy, StateBusy, StateBusy}},
		{name: "lenient", t: Thresholds{MaxMemoryUsedMiB: 1024, MaxUtilizationPercent: 50}, want: []string{StateFree, StateBusy, StateFree, StateFree}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, states(Assess(inv, held, nil, tc.t)), tc.want)
		})
	}
}

// A container's reservation and a pending claim's lease both reserve; a
// GPU whose handle is lost is unknown, never free.
func TestAssessReservedLeasedLost(t *testing.T) {
	spec := gpustest.FourH100()
	spec.GPUs[3].Errors = map[string]string{"handle": "ERROR_GPU_IS_LOST"}
	inv := loadFake(t, spec)
	held := holders.Holdings{
		ByGPU:    map[int][]holders.Holder{0: {{ContainerID: "c0ffee", ContainerName: "train", User: "alice", ByReservation: true}}},
		Reserved: map[int]bool{0: true},
	}
	lease := ledger.Lease{UUIDs: []string{strings.ToLower(inv.Devices[2].UUID)}, PID: 4343, UID: 0}
	got := Assess(inv, held, []ledger.Lease{lease}, DefaultThresholds())
	assert.DeepEqual(t, states(got), []string{StateReserved, StateBusy, StateReserved, StateUnknown})
	assert.Equal(t, got[0].Describe(), "GPU 0 held by container train (alice)")
	assert.Equal(t, got[1].Describe(), "GPU 1: 1 compute process(es) running (PID 4242)")
	assert.Equal(t, got[2].Describe(), "GPU 2 held by a docker perceptron of root creating its container (pid 4343)")
	assert.Equal(t, got[3].Describe(), "GPU 3: UUID unknown: ERROR_GPU_IS_LOST")
	assert.Check(t, got[2].Lease != nil && got[2].Lease.PID == 4343)
}
