package alloc

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
)

// MarshalJSON is the GPU as `docker perceptron gpus --format json` prints
// it, a stable format documented in docs/gpus-json.md: numbers as numbers,
// and null for what NVML could not tell.
func (a Assessment) MarshalJSON() ([]byte, error) {
	return json.Marshal(newAssessmentJSON(a))
}

type assessmentJSON struct {
	Index              int
	UUID               *string
	Name               *string
	PCIBusID           *string
	MemoryTotalMiB     *uint64
	MemoryUsedMiB      *uint64
	UtilizationPercent *int
	TemperatureC       *int
	PowerW             *int
	MIGEnabled         *bool
	NUMANode           *int
	NVLinkPeers        []int
	Processes          []processJSON
	State              string
	Holders            []holderJSON
	Claim              *claimJSON
	HeldSince          *time.Time
	Accounting         *bool
	IdleSince          *time.Time
	Errors             map[string]string `json:",omitempty"`
	// MIG are the MIG devices of a GPU in MIG mode.
	MIG []sliceJSON `json:",omitempty"`
}

// sliceJSON is a MIG device: Index is its MIG index on the GPU.
type sliceJSON struct {
	Index          int
	UUID           *string
	Profile        *string
	MemoryTotalMiB *uint64
	MemoryUsedMiB  *uint64
	Processes      []processJSON
	State          string
	Holders        []holderJSON
}

// claimJSON is a pending claim: another docker perceptron creating its
// container on the GPU.
type claimJSON struct {
	PID     int
	User    string
	Expires time.Time
}

type processJSON struct {
	PID           int
	UsedMemoryMiB uint64
}

type holderJSON struct {
	ContainerID   string
	ContainerName string
	User          string
	PIDs          []int
	ByProcess     bool
	ByReservation bool
	Since         *time.Time
	Stale         bool
	OtherDaemon   bool
	State         string
	SeesAll       bool
	Unclaimed     bool
}

// ifKnown returns &v, or nil when the query q failed.
func ifKnown[T any](d gpus.Device, q string, v T) *T {
	if !d.Known(q) {
		return nil
	}
	return &v
}

func newAssessmentJSON(s Assessment) assessmentJSON {
	d := s.Device
	j := assessmentJSON{
		Index:              d.Index,
		UUID:               ifKnown(d, "uuid", d.UUID),
		Name:               ifKnown(d, "name", d.Name),
		PCIBusID:           ifKnown(d, "pci", d.PCIBusID),
		MemoryTotalMiB:     ifKnown(d, "memory", d.MemoryTotalMiB),
		MemoryUsedMiB:      ifKnown(d, "memory", d.MemoryUsedMiB),
		UtilizationPercent: ifKnown(d, "utilization", d.UtilizationPercent),
		TemperatureC:       ifKnown(d, "temperature", d.TemperatureC),
		PowerW:             ifKnown(d, "power", d.PowerW),
		MIGEnabled:         ifKnown(d, "mig", d.MIGEnabled),
		State:              s.State,
		Holders:            []holderJSON{},
		HeldSince:          ifSet(HeldSince(s)),
		Accounting:         ifKnown(d, "accounting", d.Accounting),
		IdleSince:          ifSet(s.IdleSince),
		Errors:             d.Errors,
	}
	if d.NUMANode >= 0 {
		j.NUMANode = &d.NUMANode
	}
	if d.Known("nvlink") {
		j.NVLinkPeers = append([]int{}, d.NVLinkPeers...)
	}
	if d.Known("processes") {
		j.Processes = []processJSON{}
		for _, p := range d.Processes {
			j.Processes = append(j.Processes, processJSON{PID: p.PID, UsedMemoryMiB: p.UsedMemoryMiB})
		}
	}
	j.Holders = holdersJSON(s.Holders)
	for _, sl := range s.Slices {
		r := sl.Row().Device
		sj := sliceJSON{
			Index: sl.Index, UUID: ifKnown(r, "uuid", sl.UUID), MemoryTotalMiB: ifKnown(r, "memory", sl.MemoryTotalMiB),
			MemoryUsedMiB: ifKnown(r, "memory", sl.MemoryUsedMiB), State: sl.State, Holders: holdersJSON(sl.Holders),
		}
		if sl.Profile != "" {
			sj.Profile = &sl.Profile
		}
		if r.Known("processes") {
			sj.Processes = []processJSON{}
			for _, p := range sl.Processes {
				sj.Processes = append(sj.Processes, processJSON{PID: p.PID, UsedMemoryMiB: p.UsedMemoryMiB})
			}
		}
		j.MIG = append(j.MIG, sj)
	}
	if l := s.Lease; l != nil {
		j.Claim = &claimJSON{PID: l.PID, User: holders.UserName(strconv.Itoa(l.UID)), Expires: l.Expires}
	}
	return j
}

func holdersJSON(hs []holders.Holder) []holderJSON {
	out := []holderJSON{}
	for _, h := range hs {
		out = append(out, holderJSON{
			ContainerID: h.ContainerID, ContainerName: h.ContainerName, User: h.User,
			PIDs: append([]int{}, h.PIDs...), ByProcess: h.ByProcess, ByReservation: h.ByReservation,
			Since: ifSet(h.Since), Stale: h.Stale, OtherDaemon: h.OtherDaemon,
			State: string(h.State), SeesAll: h.SeesAll, Unclaimed: h.Unclaimed(),
		})
	}
	return out
}

// ifSet returns &t, or nil for the zero time.
func ifSet(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
