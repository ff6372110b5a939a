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
	Index              int               `json:"index"`
	UUID               *string           `json:"uuid"`
	Name               *string           `json:"name"`
	PCIBusID           *string           `json:"pci_bus_id"`
	MemoryTotalMiB     *uint64           `json:"memory_total_mib"`
	MemoryUsedMiB      *uint64           `json:"memory_used_mib"`
	UtilizationPercent *int              `json:"utilization_percent"`
	TemperatureC       *int              `json:"temperature_c"`
	PowerW             *int              `json:"power_w"`
	MIGEnabled         *bool             `json:"mig_enabled"`
	NUMANode           *int              `json:"numa_node"`
	NVLinkPeers        []int             `json:"nvlink_peers"`
	Processes          []processJSON     `json:"processes"`
	State              string            `json:"state"`
	Holders            []holderJSON      `json:"holders"`
	Claim              *claimJSON        `json:"claim"`
	HeldSince          *time.Time        `json:"held_since"`
	Accounting         *bool             `json:"accounting"`
	IdleSince          *time.Time        `json:"idle_since"`
	Errors             map[string]string `json:"errors,omitempty"`
}

// claimJSON is a pending claim: another docker perceptron creating its
// container on the GPU.
type claimJSON struct {
	PID     int       `json:"pid"`
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
}

type processJSON struct {
	PID           int    `json:"pid"`
	UsedMemoryMiB uint64 `json:"used_memory_mib"`
}

type holderJSON struct {
	ContainerID   string     `json:"container_id"`
	ContainerName string     `json:"container_name"`
	User          string     `json:"user"`
	PIDs          []int      `json:"pids"`
	ByProcess     bool       `json:"by_process"`
	ByReservation bool       `json:"by_reservation"`
	Since         *time.Time `json:"since"`
	Stale         bool       `json:"stale"`
	OtherDaemon   bool       `json:"other_daemon"`
	State         string     `json:"state"`
	SeesAll       bool       `json:"sees_all"`
	Unclaimed     bool       `json:"unclaimed"`
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
	for _, h := range s.Holders {
		j.Holders = append(j.Holders, holderJSON{
			ContainerID: h.ContainerID, ContainerName: h.ContainerName, User: h.User,
			PIDs: append([]int{}, h.PIDs...), ByProcess: h.ByProcess, ByReservation: h.ByReservation,
			Since: ifSet(h.Since), Stale: h.Stale, OtherDaemon: h.OtherDaemon,
			State: string(h.State), SeesAll: h.SeesAll, Unclaimed: h.Unclaimed(),
		})
	}
	if l := s.Lease; l != nil {
		j.Claim = &claimJSON{PID: l.PID, User: holders.UserName(strconv.Itoa(l.UID)), Expires: l.Expires}
	}
	return j
}

// ifSet returns &t, or nil for the zero time.
func ifSet(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
