package alloc

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// Slices is what --gpus auto:mig… asks for: MIG devices ("slices") of
// GPUs in MIG mode, never a whole GPU. The zero value is any slice.
type Slices struct {
	// Profile, when set, is the only profile that will do ("1g.10gb").
	Profile string
	// MinMemoryMiB, when set, is the least memory a slice must have, as
	// its profile names it (see SliceMemoryMiB).
	MinMemoryMiB uint64
}

// String says what is asked, for messages: "MIG slice", "MIG 1g.10gb
// slice", "MIG slice of at least 20 GiB".
func (s Slices) String() string {
	switch {
	case s.Profile != "":
		return "MIG " + s.Profile + " slice"
	case s.MinMemoryMiB > 0:
		return fmt.Sprintf("MIG slice of at least %s", mibString(s.MinMemoryMiB))
	}
	return "MIG slice"
}

func mibString(m uint64) string {
	if m%1024 == 0 {
		return fmt.Sprintf("%d GiB", m/1024)
	}
	return fmt.Sprintf("%d MiB", m)
}

// Matches reports whether the MIG device m is of the kind asked for. A
// device whose profile is unknown matches only a request for any slice.
func (s Slices) Matches(m gpus.MIGDevice) bool {
	if s.Profile != "" && !strings.EqualFold(s.Profile, m.Profile) {
		return false
	}
	if s.MinMemoryMiB > 0 && (m.Profile == "" || SliceMemoryMiB(m) < s.MinMemoryMiB) {
		return false
	}
	return true
}

// SliceMemoryMiB is a slice's memory as its profile names it (2g.20gb is
// 20 GiB, though NVML reports 19.5 GiB of it), or what NVML reports when
// that is more: auto:mig>=20g takes a 2g.20gb.
func SliceMemoryMiB(m gpus.MIGDevice) uint64 {
	return max(uint64(m.ProfileGB)*1024, m.MemoryTotalMiB)
}

// SliceAssessment is one MIG device as `gpus` shows it and as the choice
// sees it.
type SliceAssessment struct {
	gpus.MIGDevice
	// GPU is its parent GPU's index; GPUName its name.
	GPU     int
	GPUName string
	State   string
	Why     string // why it is not free; "free" when it is
	Holders []holders.Holder
	Lease   *ledger.Lease
}

// Free reports whether the slice may be given out.
func (s SliceAssessment) Free() bool { return s.State == StateFree }

// Name is "MIG 1:0" (GPU 1, MIG device 0).
func (s SliceAssessment) Name() string { return fmt.Sprintf("MIG %d:%d", s.GPU, s.Index) }

// Describe says in a phrase why a slice is not free, naming its holders.
func (s SliceAssessment) Describe() string {
	var who []string
	for _, h := range s.Holders {
		who = append(who, describeHolder(h))
	}
	if s.Lease != nil {
		who = append(who, "a docker perceptron creating its container")
	}
	label := s.Name()
	if s.Profile != "" {
		label += " (" + s.Profile + ")"
	}
	if len(who) == 0 {
		return label + ": " + s.Why
	}
	return label + " held by " + strings.Join(who, ", ")
}

// AssessSlices decides the state of every MIG device of inv, by the rule
// of Assess for a whole GPU, less what NVML does not give per MIG device
// (utilisation): a slice is free when no process runs on it, its memory
// use is within t, no container or pending claim holds it (or its whole
// GPU), and all of that could be read.
func AssessSlices(inv gpus.Inventory, h holders.Holdings, leases []ledger.Lease, t Thresholds) []SliceAssessment {
	leased := map[string]*ledger.Lease{}
	for i, l := range leases {
		for _, u := range l.UUIDs {
			leased[strings.ToUpper(u)] = &leases[i]
		}
	}
	var out []SliceAssessment
	for _, d := range inv.Devices {
		if !d.MIGEnabled {
			continue
		}
		for _, m := range d.MIG {
			key := strings.ToUpper(m.UUID)
			s := SliceAssessment{MIGDevice: m, GPU: d.Index, GPUName: d.Name, Holders: h.ByMIG[key]}
			if m.UUID != "" {
				s.Lease = leased[key]
			}
			if s.Lease == nil && d.UUID != "" {
				s.Lease = leased[strings.ToUpper(d.UUID)]
			}
			s.State, s.Why = sliceState(m, h.ReservedMIG[key] || s.Lease != nil, t)
			if h.Unknown != "" && (s.State == StateFree || s.State == StateUnknown) {
				s.State, s.Why = StateUnknown, "who holds it is unknown: "+h.Unknown
			}
			out = append(out, s)
		}
	}
	return out
}

// sliceState is state for a MIG device: a GPU's rule less utilisation,
// which NVML does not give per MIG device.
func sliceState(m gpus.MIGDevice, reserved bool, t Thresholds) (state, why string) {
	var u usage
	u.common(m.UUID, m.Known, m.Errors, m.Processes, m.MemoryUsedMiB, t)
	return u.decide(reserved)
}

// ChooseSlices picks n free slices of the kind want asks for, in this
// order of preference:
//
//  1. the smallest (by SliceMemoryMiB): large slices stay free for the
//     jobs that need them;
//  2. on the GPU with the most slices in use, then the fewest free: GPUs
//     already partly used fill up first, and whole free GPUs stay whole;
//  3. the lowest GPU index, then MIG index, so the answer depends only on
//     the input.
//
// Too few free gives a *NotEnoughError that names the others' holders.
func ChooseSlices(assessed []SliceAssessment, want Slices, n int) ([]SliceAssessment, error) {
	if n < 1 {
		return nil, fmt.Errorf("cannot choose %d MIG slices", n)
	}
	used, free := map[int]int{}, map[int]int{}
	var candidates []SliceAssessment
	var held []string
	total := 0
	for _, s := range assessed {
		if s.Free() {
			free[s.GPU]++
		} else {
			used[s.GPU]++
		}
		if !want.Matches(s.MIGDevice) {
			continue
		}
		total++
		if s.Free() {
			candidates = append(candidates, s)
		} else {
			held = append(held, s.Describe())
		}
	}
	if len(candidates) < n {
		return nil, &NotEnoughError{Asked: n, Free: len(candidates), Total: total, Held: held, Unit: want.String() + "s"}
	}
	slices.SortFunc(candidates, func(a, b SliceAssessment) int {
		return cmp.Or(
			cmp.Compare(SliceMemoryMiB(a.MIGDevice), SliceMemoryMiB(b.MIGDevice)),
			-cmp.Compare(used[a.GPU], used[b.GPU]),
			cmp.Compare(free[a.GPU], free[b.GPU]),
			cmp.Compare(a.GPU, b.GPU),
			cmp.Compare(a.Index, b.Index),
		)
	})
	return candidates[:n], nil
}

// Row is the slice as a row of the GPU list, under its GPU: what NVML does
// not give per MIG device (utilisation, temperature, power) is unknown.
func (s SliceAssessment) Row() Assessment {
	errs := map[string]string{"utilization": notPerSlice, "temperature": notPerSlice, "power": notPerSlice, "pci": notPerSlice, "nvlink": notPerSlice}
	for q, e := range s.Errors {
		errs[q] = e
	}
	name := "MIG"
	if s.Profile != "" {
		name += " " + s.Profile
	}
	d := gpus.Device{
		Index: s.GPU, UUID: s.UUID, Name: name, MemoryTotalMiB: s.MemoryTotalMiB, MemoryUsedMiB: s.MemoryUsedMiB,
		Processes: s.Processes, MIGEnabled: true, NUMANode: -1, Brand: -1, Errors: errs,
	}
	return Assessment{Device: d, State: s.State, Why: s.Why, Holders: s.Holders, Lease: s.Lease}
}

// notPerSlice stands for what NVML does not report per MIG device.
const notPerSlice = "not reported per MIG device"
