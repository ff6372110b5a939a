package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli/command"
	"github.com/docker/go-units"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

// docker perceptron's own options that presets may set too; they are
// taken out of the settings before the stock command sees them.
const (
	optGPUMaxMemory = "gpu-max-memory" // a GPU using more memory is not free
	optGPUMaxUtil   = "gpu-max-util"   // a GPU busier than this (percent) is not free
)

// Label on a container created with --gpus auto: the claim's token.
const labelClaim = "com.perceptron.claim"

// parseGPUAuto reads a --gpus value of docker perceptron's: "auto" (one GPU),
// "auto:N", or "none" (n == 0: no GPU, to drop a preset's request). ok is
// false for docker's own values (all, 2, device=...).
func parseGPUAuto(value string) (n int, ok bool, err error) {
	if value == "none" {
		return 0, true, nil
	}
	if value != "auto" && !strings.HasPrefix(value, "auto:") {
		return 0, false, nil
	}
	if value == "auto" {
		return 1, true, nil
	}
	n, err = strconv.Atoi(strings.TrimPrefix(value, "auto:"))
	if err != nil || n < 1 {
		return 0, true, fmt.Errorf("invalid --gpus %q: use auto or auto:N with N a number of GPUs, 1 or more", value)
	}
	return n, true, nil
}

// parseThreshold checks a value of --gpu-max-memory or --gpu-max-util.
func parseThreshold(flag, value string) (int64, error) {
	switch flag {
	case optGPUMaxMemory:
		b, err := units.RAMInBytes(value)
		if err != nil || b < 0 {
			return 0, fmt.Errorf("invalid --%s %q: use a size such as 1g or 512m", flag, value)
		}
		return b, nil
	case optGPUMaxUtil:
		p, err := strconv.Atoi(strings.TrimSuffix(value, "%"))
		if err != nil || p < 0 || p > 100 {
			return 0, fmt.Errorf("invalid --%s %q: use a percentage from 0 to 100", flag, value)
		}
		return int64(p), nil
	}
	return 0, fmt.Errorf("unknown option %s", flag)
}

// gpuRequest takes docker perceptron's GPU options out of settings and
// returns the auto request, if any, with its thresholds.
func gpuRequest(settings []presets.Setting) (rest []presets.Setting, req alloc.Request, auto bool, err error) {
	req.Thresholds = gpus.DefaultThresholds()
	for _, s := range settings {
		switch s.Flag {
		case optGPUMaxMemory:
			b, err := parseThreshold(s.Flag, s.Value)
			if err != nil {
				return nil, req, false, err
			}
			req.Thresholds.MaxMemoryUsedMiB = uint64(b >> 20)
			continue
		case optGPUMaxUtil:
			p, err := parseThreshold(s.Flag, s.Value)
			if err != nil {
				return nil, req, false, err
			}
			req.Thresholds.MaxUtilizationPercent = int(p)
			continue
		case "gpus":
			n, ok, err := parseGPUAuto(s.Value)
			if err != nil {
				return nil, req, false, err
			}
			if ok {
				req.Count, auto = n, n > 0
				continue
			}
		}
		rest = append(rest, s)
	}
	return rest, req, auto, nil
}

// withGPUs returns settings that give the container exactly the chosen
// GPUs, by UUID, and label it with the claim. The user's own settings
// (already in settings) win over the NVIDIA_VISIBLE_DEVICES set here.
func withGPUs(settings []presets.Setting, uuids []string, token string) []presets.Setting {
	list := strings.Join(uuids, ",")
	// The stock --gpus parser reads CSV: a list of devices is quoted.
	claim := []presets.Setting{
		{Flag: "gpus", Value: `"device=` + list + `"`},
		{Flag: "env", Value: "NVIDIA_VISIBLE_DEVICES=" + list},
		{Flag: "label", Value: gpus.LabelGPUs + "=" + list},
	}
	if token != "" {
		claim = append(claim, presets.Setting{Flag: "label", Value: labelClaim + "=" + token})
	}
	return presets.Merge(claim, settings)
}

// newAllocator returns the GPU allocator for dockerCLI's daemon, which must
// be on this host: NVML sees this host's GPUs only.
func newAllocator(dockerCLI command.Cli, deps Deps, cache *alloc.FileCache) (*alloc.Allocator, error) {
	if host := dockerCLI.DockerEndpoint().Host; !preflight.IsLocalHost(host) {
		return nil, fmt.Errorf("--gpus auto chooses among this host's GPUs, but the Docker daemon is at %s: choose GPUs there, or give docker's own --gpus (device=...)", host)
	}
	return &alloc.Allocator{
		NVML: deps.NVML,
		Holders: gpus.Lookup{
			API: deps.API(dockerCLI), ProcRoot: deps.ProcRoot, Cache: cache,
			// Two small list calls, not a list of every container.
			List: cache.List(deps.API(dockerCLI)),
		},
		StateDir: deps.stateDir(),
		Now:      deps.Now,
		Waiting: func(msg string) {
			_, _ = fmt.Fprintln(dockerCLI.Err(), msg)
		},
	}, nil
}

// describeChoice is the line that tells the user which GPUs they got.
func describeChoice(devices []gpus.Device) string {
	parts := make([]string, len(devices))
	for i, d := range devices {
		parts[i] = fmt.Sprintf("GPU %d (%s, %s)", d.Index, d.UUID, d.Name)
	}
	return "using " + strings.Join(parts, ", ")
}

// claimGPUs resolves --gpus auto[:N] in settings: it chooses and claims
// GPUs (or, for a dry run, only chooses). daemon is what the pre-flight
// checks learnt of the daemon, if they asked. release is never nil.
func claimGPUs(ctx context.Context, dockerCLI command.Cli, deps Deps, settings []presets.Setting, daemon *preflight.DaemonInfo, dryRun, wait, quiet bool) (_ []presets.Setting, release func(), _ error) {
	release = func() {}
	rest, req, auto, err := gpuRequest(settings)
	if err != nil || !auto {
		return rest, release, err
	}
	cache := alloc.OpenFileCache(deps.CachePath)
	defer func() { _ = cache.Save() }()
	a, err := newAllocator(dockerCLI, deps, cache)
	if err != nil {
		return nil, release, err
	}
	// The daemon's default runtime decides whether a container's
	// NVIDIA_VISIBLE_DEVICES gives it GPUs.
	if daemon != nil {
		a.Holders.DefaultRuntime = daemon.DefaultRuntime
	} else {
		a.Holders.DefaultRuntime = gpus.DefaultRuntime(ctx, deps.API(dockerCLI))
	}
	req.Wait = wait
	if dryRun {
		devices, err := a.Peek(ctx, req)
		if err != nil {
			return nil, release, err
		}
		return withGPUs(rest, alloc.UUIDs(devices), ""), release, nil
	}
	c, err := a.Claim(ctx, req)
	if err != nil {
		return nil, release, err
	}
	if !quiet {
		_, _ = fmt.Fprintln(dockerCLI.Err(), describeChoice(c.Devices))
	}
	return withGPUs(rest, c.UUIDs(), c.Token), func() { _ = c.Release() }, nil
}

// withNVMLSession returns deps whose NVML is one library, initialised on
// first use and kept until close: the pre-flight checks and the GPU choice of
// one command then share it. Their own Init/Shutdown pairs only count
// references, as NVML's nvmlInit does.
func (d Deps) withNVMLSession() (_ Deps, done func()) {
	var (
		once     sync.Once
		lib      nvml.Interface
		err      error
		shutdown func()
	)
	open := d.NVML
	d.NVML = func() (nvml.Interface, error) {
		once.Do(func() {
			if lib, err = open(); err == nil {
				shutdown, err = gpus.Init(lib)
			}
		})
		return lib, err
	}
	return d, func() {
		if shutdown != nil {
			shutdown()
		}
	}
}
