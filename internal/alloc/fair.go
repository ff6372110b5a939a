package alloc

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/policy"
)

// StateExpired is a GPU whose reservation has been idle for longer than the
// site's max-idle: it no longer blocks others, and --gpus auto may give it
// out when no free GPU is left (never one with a process).
const StateExpired = "expired"

// Idle sources: how long a GPU has had no compute process is known from
// NVML's accounting, or not at all (only that it has none now).
const (
	IdleAccounting = "accounting"
	IdleNone       = ""
)

// idleSince is when d last had a compute process, as far as NVML's
// accounting tells (and not before its latest holder took it: a
// reservation is idle from its start); zero and IdleNone when it has one
// now, or nothing tells.
func idleSince(d gpus.Device, heldSince time.Time) (time.Time, string) {
	if !d.Known("processes") || len(d.Processes) > 0 || !d.Accounting || d.LastUsed.IsZero() {
		return time.Time{}, IdleNone
	}
	if heldSince.After(d.LastUsed) {
		return heldSince, IdleAccounting
	}
	return d.LastUsed, IdleAccounting
}

// latestSince is when the most recent of a's holders took the GPU.
func latestSince(a Assessment) time.Time {
	var t time.Time
	for _, h := range a.Holders {
		if h.Since.After(t) {
			t = h.Since
		}
	}
	return t
}

// Expire applies the site's max-idle: a GPU reserved only by containers
// (no process, no memory or utilisation above the thresholds, no pending
// claim) and idle for longer than maxIdle, by NVML's accounting, is
// StateExpired. Without accounting nothing expires: idleness is not known.
func Expire(assessed []Assessment, maxIdle time.Duration, now time.Time) []Assessment {
	if maxIdle <= 0 {
		return assessed
	}
	out := slices.Clone(assessed)
	for i, a := range out {
		if a.State != StateReserved || a.Lease != nil || a.IdleSource == IdleNone {
			continue
		}
		if idle := now.Sub(a.IdleSince); idle > maxIdle {
			out[i].State = StateExpired
			out[i].Why = fmt.Sprintf("%s, idle for %s (max-idle %s)", a.Describe(), Round(idle), Round(maxIdle))
		}
	}
	return out
}

// Round shortens a duration for people: 4h12m, 4h, 35m20s, 40s.
func Round(d time.Duration) string {
	switch {
	case d >= time.Hour:
		m := int(d.Round(time.Minute) / time.Minute)
		if m%60 == 0 {
			return fmt.Sprintf("%dh", m/60)
		}
		return fmt.Sprintf("%dh%dm", m/60, m%60)
	case d >= time.Minute:
		s := int(d.Round(time.Second) / time.Second)
		if s%60 == 0 {
			return fmt.Sprintf("%dm", s/60)
		}
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}

// SiteThresholds are the default thresholds of a free GPU: the policy's
// where it sets them, else DefaultThresholds.
func SiteThresholds(p policy.Policy) Thresholds {
	t := DefaultThresholds()
	if p.MaxMemoryMiB != nil {
		t.MaxMemoryUsedMiB = *p.MaxMemoryMiB
	}
	if p.MaxUtilPercent != nil {
		t.MaxUtilizationPercent = *p.MaxUtilPercent
	}
	return t
}

// Who is the user a claim is for.
type Who struct {
	UID    int
	Name   string
	Groups []string
}

// ErrOverQuota is matched (errors.Is) by every QuotaError.
var ErrOverQuota = errors.New("over the site's GPU quota")

// QuotaError is a claim that would take its user past the site's limit.
type QuotaError struct {
	Policy string // the policy file
	User   string
	Limit  policy.Limit
	Asked  int
	Held   []string // what the user holds now: "GPU 0", "MIG 1:0"
}

func (e *QuotaError) Error() string {
	holds := "nothing"
	if len(e.Held) > 0 {
		holds = strings.Join(e.Held, ", ")
	}
	return fmt.Sprintf("the site policy %s allows %s at most %d GPU(s) through --gpus auto (%s); %s holds %d now (%s) and asks for %d",
		e.Policy, e.User, e.Limit.GPUs, e.Limit.Rule, e.User, len(e.Held), holds, e.Asked)
}

// Is makes errors.Is(err, ErrOverQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrOverQuota }

// Never reports whether no wait can help: more asked than the limit.
func (e *QuotaError) Never() bool { return e.Asked > e.Limit.GPUs }

// checkQuota refuses a claim of count GPUs that would take who past the
// policy's limit, counting the GPUs who holds through --gpus auto: the
// pending claims (leases) and the grants of who's runs whose container
// still holds the GPUs, or whose run is alive. Both are files owned by
// their user, which no other user can forge or remove.
func checkQuota(p policy.Policy, who Who, units []unit, leases []ledger.Lease, grants []ledger.Grant, count int) error {
	limit, ok := p.LimitFor(who.Name, who.Groups)
	if !ok {
		return nil
	}
	held := heldBy(who.UID, units, leases, grants)
	if len(held)+count <= limit.GPUs {
		return nil
	}
	return &QuotaError{Policy: p.Path, User: who.Name, Limit: limit, Asked: count, Held: held}
}

// unit is what a quota counts: a whole GPU ("GPU 0"), or a MIG slice
// ("MIG 1:0"), by UUID, with its holders.
type unit struct {
	name, uuid string
	holders    []holders.Holder
}

// quotaUnits are the GPUs and the MIG slices of a host.
func quotaUnits(assessed []Assessment, sliced []SliceAssessment) []unit {
	var out []unit
	for _, a := range assessed {
		out = append(out, unit{name: "GPU " + strconv.Itoa(a.Index), uuid: a.UUID, holders: a.Holders})
	}
	for _, s := range sliced {
		out = append(out, unit{name: s.Name(), uuid: s.UUID, holders: s.Holders})
	}
	return out
}

// heldBy names the GPUs and slices uid holds through --gpus auto.
func heldBy(uid int, units []unit, leases []ledger.Lease, grants []ledger.Grant) []string {
	byUUID := map[string]unit{}
	for _, u := range units {
		byUUID[strings.ToUpper(u.uuid)] = u
	}
	held := map[string]bool{}
	add := func(uuids []string, holds func(unit) bool) {
		for _, id := range uuids {
			if u, ok := byUUID[strings.ToUpper(id)]; ok && holds(u) {
				held[u.name] = true
			}
		}
	}
	always := func(unit) bool { return true }
	for _, l := range leases {
		if l.UID == uid {
			add(l.UUIDs, always)
		}
	}
	for _, g := range grants {
		switch {
		case g.UID != uid:
		case g.RunAlive():
			add(g.UUIDs, always)
		case g.ContainerID != "":
			add(g.UUIDs, func(u unit) bool {
				return slices.ContainsFunc(u.holders, func(h holders.Holder) bool {
					return h.ContainerID == g.ContainerID && h.ByReservation && !h.Stale
				})
			})
		}
	}
	return slices.Sorted(maps.Keys(held))
}

// Filter states: what `gpus --filter state=…` matches, beyond the states
// themselves.
var filterStates = map[string]func(Assessment) bool{
	StateFree: func(a Assessment) bool { return a.State == StateFree },
	StateBusy: func(a Assessment) bool { return a.State == StateBusy || a.State == StateBusyReserved },
	StateReserved: func(a Assessment) bool {
		return a.State == StateReserved || a.State == StateBusyReserved || a.State == StateExpired
	},
	StateExpired: func(a Assessment) bool { return a.State == StateExpired },
	StateUnknown: func(a Assessment) bool { return a.State == StateUnknown },
	// idle: known to have no compute process now.
	"idle": func(a Assessment) bool { return a.Known("processes") && len(a.Processes) == 0 },
}

// FilterStates are the values of `gpus --filter state=…`.
func FilterStates() []string { return slices.Sorted(maps.Keys(filterStates)) }

// InState reports whether a matches the filter state s (see FilterStates):
// busy includes busy+reserved, reserved includes busy+reserved and expired.
func (a Assessment) InState(s string) bool {
	f, ok := filterStates[s]
	return ok && f(a)
}

// HeldSince is when the GPU was first taken by its holders that tell when:
// the containers (created), and a pending claim; zero when none does.
func HeldSince(a Assessment) time.Time {
	var t time.Time
	take := func(s time.Time) {
		if !s.IsZero() && (t.IsZero() || s.Before(t)) {
			t = s
		}
	}
	for _, h := range a.Holders {
		take(h.Since)
	}
	if a.Lease != nil {
		take(a.Lease.Created)
	}
	return t
}

// HolderLine is a holder as `gpus` lists it: NameWithUser, then its
// container's state, "sees all GPUs" and "no claim" where they apply:
// "ngc (bob, running, sees all GPUs, no claim)".
func HolderLine(h holders.Holder, trunc bool) string {
	var notes []string
	if h.State != "" {
		notes = append(notes, string(h.State))
	}
	if h.SeesAll {
		notes = append(notes, "sees all GPUs")
	}
	if h.Unclaimed() {
		notes = append(notes, "no claim")
	}
	line := NameWithUser(h, trunc)
	if len(notes) == 0 {
		return line
	}
	if strings.HasSuffix(line, ")") {
		return strings.TrimSuffix(line, ")") + ", " + strings.Join(notes, ", ") + ")"
	}
	return line + " (" + strings.Join(notes, ", ") + ")"
}
