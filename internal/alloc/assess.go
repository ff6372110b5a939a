package alloc

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli/command/formatter"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// GPU states, as Assess reports them. A GPU is free exactly when the choice
// may give it out.
const (
	StateFree         = "free"
	StateBusy         = "busy"          // compute processes, or memory or utilisation above the thresholds
	StateReserved     = "reserved"      // a live container or a pending claim holds it
	StateBusyReserved = "busy+reserved" // both
	StateUnknown      = "unknown"       // not busy as far as known, but processes, memory or utilisation could not be read, or MIG is on
)

// Thresholds decide when a GPU with no compute process still counts as busy.
type Thresholds struct {
	MaxMemoryUsedMiB      uint64 // a GPU using more than this is busy
	MaxUtilizationPercent int    // a GPU busier than this is busy
}

// DefaultThresholds returns 1024 MiB and 10 %.
//
// An idle data-centre GPU reports a few MiB used; a display server or an idle
// CUDA context stays well under 1 GiB, while anything that has loaded a model
// is far above it. The memory check matters when NVML cannot see a process
// (another PID namespace, a vGPU guest), so the GPU is busy though Processes
// is empty. NVML's utilisation is sampled over the last 1/6–1 s, and
// monitoring or a context being torn down shows as a few per cent, hence 10.
// A GPU with any compute process is never free, whatever its numbers.
func DefaultThresholds() Thresholds {
	return Thresholds{MaxMemoryUsedMiB: 1024, MaxUtilizationPercent: 10}
}

// Assessment is one GPU as `docker perceptron gpus` shows it and as the
// choice sees it.
type Assessment struct {
	gpus.Device
	State   string
	Holders []holders.Holder
	// Lease is the pending claim that holds the GPU, if any.
	Lease *ledger.Lease
	// Why says why the GPU is not free; "free" when it is.
	Why string
	// IdleSince is since when the GPU has had no compute process (and its
	// latest holder held it), from IdleSource; zero when not known.
	IdleSince  time.Time
	IdleSource string
	// Slices are the GPU's MIG devices, assessed (see AssessSlices), when
	// it is in MIG mode.
	Slices []SliceAssessment
}

// Free reports whether the GPU may be given out.
func (a Assessment) Free() bool { return a.State == StateFree }

// Assess decides the state of each GPU of inv from who holds it (h), the
// pending claims (leases) and the thresholds. It is the one rule of "free":
// a GPU is free when nothing holds it, it is idle by t, and everything that
// tells so could be read.
func Assess(inv gpus.Inventory, h holders.Holdings, leases []ledger.Lease, t Thresholds) []Assessment {
	leased := map[string]*ledger.Lease{}
	for i, l := range leases {
		for _, u := range l.UUIDs {
			leased[strings.ToUpper(u)] = &leases[i]
		}
	}
	out := make([]Assessment, 0, len(inv.Devices))
	for _, d := range inv.Devices {
		a := Assessment{Device: d, Holders: h.ByGPU[d.Index]}
		if d.UUID != "" {
			a.Lease = leased[strings.ToUpper(d.UUID)]
		}
		a.State, a.Why = state(d, h.Reserved[d.Index] || a.Lease != nil, t)
		a.IdleSince, a.IdleSource = idleSince(d, latestSince(a))
		if h.Unknown != "" && (a.State == StateFree || a.State == StateUnknown) {
			// Never free when the containers could not be read.
			a.State, a.Why = StateUnknown, "who holds it is unknown: "+h.Unknown
		}
		out = append(out, a)
	}
	for _, s := range AssessSlices(inv, h, leases, t) {
		for i := range out {
			if out[i].Index == s.GPU {
				out[i].Slices = append(out[i].Slices, s)
			}
		}
	}
	return out
}

// state derives a GPU's state, and why it is not free, from its processes,
// memory use, utilisation and whether a container or claim reserves it.
// What keeps an idle GPU from being given out (a failed query, MIG mode)
// makes it unknown.
func state(d gpus.Device, reserved bool, t Thresholds) (state, why string) {
	var u usage
	u.common(d.UUID, d.Known, d.Errors, d.Processes, d.MemoryUsedMiB, t)
	switch {
	case !d.Known("utilization"):
		u.note(false, true, "utilisation unknown: "+d.Errors["utilization"])
	case d.UtilizationPercent > t.MaxUtilizationPercent:
		u.note(true, false, fmt.Sprintf("%d%% utilised (free means at most %d%%)", d.UtilizationPercent, t.MaxUtilizationPercent))
	}
	if d.MIGEnabled {
		// The whole GPU cannot be given out while it is split into MIG
		// instances, and NVML's utilisation does not cover them.
		u.note(false, true, "MIG mode is enabled")
	}
	return u.decide(reserved)
}

// usage gathers whether a GPU or a MIG device is busy by the thresholds,
// or cannot be told idle, and the first reason it is not free.
type usage struct {
	busy, unknown bool
	why           string
}

func (u *usage) note(isBusy, isUnknown bool, reason string) {
	if u.why == "" {
		u.why = reason
	}
	u.busy, u.unknown = u.busy || isBusy, u.unknown || isUnknown
}

// common notes what a GPU and a MIG device share: a UUID it can be given
// by (else it could be given by index only, and never recorded), its
// compute processes and its memory use.
func (u *usage) common(uuid string, known func(string) bool, errs map[string]string, procs []gpus.Process, usedMiB uint64, t Thresholds) {
	if !known("uuid") || uuid == "" {
		u.note(false, true, "UUID unknown: "+errs["uuid"])
	}
	switch {
	case !known("processes"):
		u.note(false, true, "compute processes unknown: "+errs["processes"])
	case len(procs) > 0:
		u.note(true, false, fmt.Sprintf("%d compute process(es) running (PID %s)", len(procs), joinPIDs(procs)))
	}
	switch {
	case !known("memory"):
		u.note(false, true, "memory use unknown: "+errs["memory"])
	case usedMiB > t.MaxMemoryUsedMiB:
		u.note(true, false, fmt.Sprintf("%d MiB of memory in use (free means at most %d MiB)", usedMiB, t.MaxMemoryUsedMiB))
	}
}

// decide is the state, and why: busy and reserved first, unknown only for
// what is neither, free otherwise.
func (u usage) decide(reserved bool) (state, why string) {
	why = u.why
	if reserved {
		why = "reserved by a container or a pending claim"
	}
	switch {
	case u.busy && reserved:
		return StateBusyReserved, why
	case u.busy:
		return StateBusy, why
	case reserved:
		return StateReserved, why
	case u.unknown:
		return StateUnknown, why
	}
	return StateFree, "free"
}

func joinPIDs(ps []gpus.Process) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p.PID)
	}
	return strings.Join(s, ", ")
}

// Describe says in a phrase why a GPU is not free, naming its holders:
// "GPU 2 held by container train (alice)".
func (a Assessment) Describe() string {
	var who []string
	for _, h := range a.Holders {
		who = append(who, describeHolder(h))
	}
	if l := a.Lease; l != nil {
		who = append(who, fmt.Sprintf("a docker perceptron of %s creating its container (pid %d)", holders.UserName(strconv.Itoa(l.UID)), l.PID))
	}
	if len(who) == 0 {
		return fmt.Sprintf("GPU %d: %s", a.Index, a.Why)
	}
	return fmt.Sprintf("GPU %d held by %s", a.Index, strings.Join(who, ", "))
}

// ClaimedUser names the pending claim's user; "" when there is none.
func (a Assessment) ClaimedUser() string {
	if a.Lease == nil {
		return ""
	}
	return holders.UserName(strconv.Itoa(a.Lease.UID))
}

// ClaimedBy names the pending claim's process and user, "dave (pid 812)";
// "" when there is none.
func (a Assessment) ClaimedBy() string {
	if a.Lease == nil {
		return ""
	}
	return fmt.Sprintf("%s (pid %d)", holders.UserName(strconv.Itoa(a.Lease.UID)), a.Lease.PID)
}

// HolderName names a holder: its container's name, else its ID (short when
// trunc), else "pid N" for a process outside containers.
func HolderName(h holders.Holder, trunc bool) string {
	switch {
	case h.ContainerName != "":
		return h.ContainerName
	case h.ContainerID != "" && trunc:
		return formatter.TruncateID(h.ContainerID)
	case h.ContainerID != "":
		return h.ContainerID
	}
	pids := make([]string, len(h.PIDs))
	for i, p := range h.PIDs {
		pids[i] = strconv.Itoa(p)
	}
	return "pid " + strings.Join(pids, ",")
}

// describeHolder is "container train (alice)", "container c0ffee (bob,
// another daemon)" or "host process 4242 (bob)".
func describeHolder(h holders.Holder) string {
	if h.ContainerID == "" {
		s := "host process"
		if len(h.PIDs) > 0 {
			s += " " + strconv.Itoa(h.PIDs[0])
		}
		return s + userSuffix(h.User)
	}
	return "container " + NameWithUser(h, true)
}

// NameWithUser is HolderName with the user: "train (alice)", and
// "train (alice, stale)" for a stale container, "c0ffee (bob, another
// daemon)" for one of another daemon on this host.
func NameWithUser(h holders.Holder, trunc bool) string {
	var notes []string
	if h.User != "" {
		notes = append(notes, h.User)
	}
	if h.Stale {
		notes = append(notes, "stale")
	}
	if h.OtherDaemon {
		notes = append(notes, "another daemon")
	}
	if len(notes) == 0 {
		return HolderName(h, trunc)
	}
	return HolderName(h, trunc) + " (" + strings.Join(notes, ", ") + ")"
}

func userSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}
