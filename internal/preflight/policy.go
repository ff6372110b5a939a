package preflight

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/policy"
)

// PolicyFacts is the site's policy as loaded (see policy.Load): Path is
// where it is looked for, Err why a file there is not used.
type PolicyFacts struct {
	Path   string
	Policy policy.Policy
	Err    error
}

// policyFinding reports the policy in force, or why the file is ignored.
func policyFinding(p PolicyFacts) Finding {
	const check = "policy"
	switch {
	case p.Err != nil:
		const fix = "an administrator fixes the file (see the README's site policy)"
		return Finding{Check: check, Level: Warn, Message: "the site's policy file is ignored: no quota or idle limit applies",
			Fix:    "an administrator fixes it (--format json says why)",
			Detail: p.Err.Error() + "; no quota or idle limit applies (fix: " + fix + ")"}
	case !p.Policy.Set() && p.Path == "":
		return Finding{Check: check, Level: OK, Message: "no site policy: no quota or idle limit"}
	case !p.Policy.Set():
		return Finding{Check: check, Level: OK, Message: "none at " + p.Path + ": no quota or idle limit"}
	}
	// What is set, in short; Detail and 'docker perceptron policy' say it
	// whole.
	var set []string
	if p.Policy.MaxGPUs.Default != nil || len(p.Policy.MaxGPUs.Users) > 0 || len(p.Policy.MaxGPUs.Groups) > 0 {
		set = append(set, "GPU quotas")
	}
	if p.Policy.MaxIdle > 0 {
		set = append(set, "max-idle "+shortDuration(p.Policy.MaxIdle))
	}
	if p.Policy.MaxMemoryMiB != nil || p.Policy.MaxUtilPercent != nil {
		set = append(set, "free-GPU thresholds")
	}
	msg := "in force: " + strings.Join(set, ", ")
	if len(set) == 0 {
		msg = p.Policy.Path + " sets nothing"
	}
	return Finding{Check: check, Level: OK, Message: msg, Detail: p.Policy.Path + ": " + DescribePolicy(p.Policy)}
}

// DescribePolicy says what a policy sets, in one line: "at most 2 GPUs per
// user (alice 4; group phd 3); max-idle 4h; free: at most 2048 MiB used".
func DescribePolicy(p policy.Policy) string {
	var parts []string
	if l := describeLimits(p.MaxGPUs); l != "" {
		parts = append(parts, l)
	}
	if p.MaxIdle > 0 {
		parts = append(parts, "max-idle "+shortDuration(p.MaxIdle))
	}
	var free []string
	if p.MaxMemoryMiB != nil {
		free = append(free, fmt.Sprintf("at most %d MiB used", *p.MaxMemoryMiB))
	}
	if p.MaxUtilPercent != nil {
		free = append(free, fmt.Sprintf("at most %d%% utilised", *p.MaxUtilPercent))
	}
	if len(free) > 0 {
		parts = append(parts, "free GPU: "+strings.Join(free, ", "))
	}
	if len(parts) == 0 {
		return "sets nothing"
	}
	return strings.Join(parts, "; ")
}

// shortDuration is "4h" for 4h0m0s.
func shortDuration(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func describeLimits(l policy.Limits) string {
	var exceptions []string
	for _, u := range slices.Sorted(maps.Keys(l.Users)) {
		exceptions = append(exceptions, u+" "+strconv.Itoa(l.Users[u]))
	}
	for _, g := range slices.Sorted(maps.Keys(l.Groups)) {
		exceptions = append(exceptions, "group "+g+" "+strconv.Itoa(l.Groups[g]))
	}
	var s string
	switch {
	case l.Default != nil:
		s = fmt.Sprintf("at most %d GPU(s) per user through --gpus auto", *l.Default)
	case len(exceptions) > 0:
		s = "GPU limits through --gpus auto"
	default:
		return ""
	}
	if len(exceptions) > 0 {
		s += " (" + strings.Join(exceptions, ", ") + ")"
	}
	return s
}

// accountingFinding says whether NVML's accounting can tell how long GPUs
// have been idle: the policy's max-idle needs it, and `gpus` shows idle time
// with it. Accounting resets to off when the driver unloads, so it needs
// persistence mode; it costs no GPU performance (NVML's Accounting
// Statistics, https://docs.nvidia.com/deploy/nvml-api/group__nvmlAccountingStats.html).
func accountingFinding(inv gpus.Inventory, maxIdle time.Duration) (Finding, bool) {
	var off []string
	for _, d := range inv.Devices {
		if !d.Accounting && !d.MIGEnabled {
			off = append(off, strconv.Itoa(d.Index))
		}
	}
	if len(inv.Devices) == 0 {
		return Finding{}, false
	}
	f := Finding{Check: "accounting", Level: OK, Message: "NVML accounting is on: gpus shows how long each GPU has been idle"}
	if len(off) == 0 {
		return f, true
	}
	const turnOn = "sudo nvidia-smi -pm 1 && sudo nvidia-smi -am 1"
	const why = " (persistence mode keeps accounting on until reboot; it costs no performance)"
	on := "GPU " + strings.Join(off, ", ")
	if len(off) == len(inv.Devices) {
		on = "every GPU"
	}
	detail := "NVML accounting is off on GPU " + strings.Join(off, ", ") + ": gpus cannot tell how long they have been idle"
	if maxIdle == 0 {
		f.Message = "NVML accounting is off on " + on + ": gpus cannot show idle times"
		f.Detail = detail + "; to see it: " + turnOn + why
		return f, true
	}
	f.Level = Warn
	f.Message = "accounting is off on " + on + ": max-idle never expires claims there"
	f.Fix = turnOn
	f.Detail = detail + ", and reservations there never expire under the policy's max-idle (fix: " + turnOn + why + ")"
	return f, true
}
