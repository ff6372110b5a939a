// Package request is the language of a docker perceptron run: what
// `--gpus auto[:N]`, `--gpus none`, `--gpu-max-memory`, `--gpu-max-util` and
// `--wait` mean. Preset validation and the run parse with the same functions,
// and a run is read once, right after the presets are merged with the user's
// options, into a typed Run that every later step takes as it is.
package request

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus/migprofile"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

// docker perceptron's own options that presets may set too; they never
// reach docker.
const (
	OptGPUMaxMemory = "gpu-max-memory" // a GPU using more memory is not free
	OptGPUMaxUtil   = "gpu-max-util"   // a GPU busier than this (percent) is not free
)

// GPUs is what --gpus asks for.
type GPUs struct {
	// Auto is how many GPUs docker perceptron chooses (auto, auto:N), or
	// MIG slices (auto:mig…); 0 when it chooses none.
	Auto int
	// MIG, for auto:mig…, is the kind of MIG slice asked for: MIG devices
	// of GPUs in MIG mode, never whole GPUs.
	MIG *alloc.Slices
	// None is --gpus none: no GPU, dropping a preset's request.
	None bool
	// Docker is docker's own value (all, 2, device=...), handed to docker
	// as it is; "" when there is none.
	Docker string
}

// ParseGPUs reads a --gpus value: docker perceptron's "auto", "auto:N" and
// "none", or docker's own (checked by docker's parser, not here).
func ParseGPUs(value string) (GPUs, error) {
	switch {
	case value == "none":
		return GPUs{None: true}, nil
	case value == "auto":
		return GPUs{Auto: 1}, nil
	case strings.HasPrefix(value, "auto:mig"):
		return parseMIG(value)
	case strings.HasPrefix(value, "auto:"):
		n, err := strconv.Atoi(strings.TrimPrefix(value, "auto:"))
		if err != nil || n < 1 {
			return GPUs{}, fmt.Errorf("invalid --gpus %s: use auto or auto:N with N a number of GPUs, 1 or more", presets.Echo(value))
		}
		return GPUs{Auto: n}, nil
	}
	return GPUs{Docker: value}, nil
}

// migUsage says how to ask for MIG slices.
const migUsage = "use auto:mig (any free MIG slice), auto:mig=PROFILE (e.g. auto:mig=1g.10gb) or auto:mig>=SIZE (the smallest slice with at least SIZE of memory, e.g. auto:mig>=20g), and :N after it for N slices"

// parseMIG reads auto:mig[=PROFILE|>=SIZE][:N].
func parseMIG(value string) (GPUs, error) {
	bad := func() (GPUs, error) {
		return GPUs{}, fmt.Errorf("invalid --gpus %s: %s", presets.Echo(value), migUsage)
	}
	rest := strings.TrimPrefix(value, "auto:mig")
	g := GPUs{Auto: 1, MIG: &alloc.Slices{}}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 1 {
			return bad()
		}
		g.Auto, rest = n, rest[:i]
	}
	switch {
	case rest == "":
	case strings.HasPrefix(rest, ">="):
		b, err := units.RAMInBytes(strings.TrimPrefix(rest, ">="))
		if err != nil || b <= 0 {
			return bad()
		}
		g.MIG.MinMemoryMiB = (uint64(b) + 1<<20 - 1) >> 20
	case strings.HasPrefix(rest, "="):
		profile := strings.ToLower(strings.TrimPrefix(rest, "="))
		if _, _, _, ok := migprofile.Parse(profile); !ok {
			return bad()
		}
		g.MIG.Profile = profile
	default:
		return bad()
	}
	return g, nil
}

// Own reports whether the value is docker perceptron's, not docker's.
func (g GPUs) Own() bool { return g.Auto > 0 || g.None }

// Requested reports whether the container gets GPUs at all.
func (g GPUs) Requested() bool { return g.Auto > 0 || g.Docker != "" }

// Specific reports whether the container gets a set of GPUs (chosen by
// docker perceptron, or listed with device=), not every GPU.
func (g GPUs) Specific() bool {
	return g.Auto > 0 || strings.HasPrefix(strings.Trim(g.Docker, `"'`), "device=")
}

// ParseMaxMemory reads --gpu-max-memory, a size such as 1g, in MiB.
func ParseMaxMemory(value string) (uint64, error) {
	b, err := units.RAMInBytes(value)
	if err != nil || b < 0 {
		return 0, fmt.Errorf("invalid --%s %s: use a size such as 1g or 512m", OptGPUMaxMemory, presets.Echo(value))
	}
	return uint64(b) >> 20, nil
}

// ParseMaxUtil reads --gpu-max-util, a percentage from 0 to 100 ("10" or "10%").
func ParseMaxUtil(value string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSuffix(value, "%"))
	if err != nil || p < 0 || p > 100 {
		return 0, fmt.Errorf("invalid --%s %s: use a percentage from 0 to 100", OptGPUMaxUtil, presets.Echo(value))
	}
	return p, nil
}

// Wait is --wait: whether to wait in line for GPUs, and for how long at
// most (0: as long as it takes).
type Wait struct {
	Enabled bool
	Limit   time.Duration
}

// ParseWait reads --wait: "" is no waiting, "0" (--wait alone) no limit,
// else a duration.
func ParseWait(value string) (Wait, error) {
	switch value {
	case "":
		return Wait{}, nil
	case "0":
		return Wait{Enabled: true}, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d < 0 {
		return Wait{}, fmt.Errorf("invalid --wait %s: use a duration such as 30m, or --wait alone to wait as long as it takes", presets.Echo(value))
	}
	return Wait{Enabled: true, Limit: d}, nil
}

// CheckSetting checks a value that docker perceptron gives a meaning of its
// own, in a preset or on the command line; it reports whether it handled
// the setting (when it did not, docker's own parser checks it).
func CheckSetting(flag, value string) (handled bool, err error) {
	switch flag {
	case "tty":
		return value == "auto", nil
	case "gpus":
		g, err := ParseGPUs(value)
		return g.Own() || err != nil, err
	case OptGPUMaxMemory:
		_, err := ParseMaxMemory(value)
		return true, err
	case OptGPUMaxUtil:
		_, err := ParseMaxUtil(value)
		return true, err
	}
	return false, nil
}

// thresholds applies a --gpu-max-* setting to t.
func thresholds(t *alloc.Thresholds, flag, value string) error {
	switch flag {
	case OptGPUMaxMemory:
		mib, err := ParseMaxMemory(value)
		t.MaxMemoryUsedMiB = mib
		return err
	case OptGPUMaxUtil:
		p, err := ParseMaxUtil(value)
		t.MaxUtilizationPercent = p
		return err
	}
	return nil
}
