package commands

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/opts"
	"github.com/docker/go-units"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

// preflightInput gathers what the pre-flight checks need from the merged
// settings, the image, the daemon and NVML. It asks the daemon and NVML only
// when a check needs them: for a GPU request, or a memlock limit.
func preflightInput(ctx context.Context, dockerCLI command.Cli, deps Deps, inv invocation, fromPresets, settings []presets.Setting) preflight.Input {
	var in preflight.Input
	var memlock bool
	for _, s := range settings {
		switch s.Flag {
		case "gpus":
			n, auto, _ := parseGPUAuto(s.Value)
			in.GPURequested = !auto || n > 0
			in.GPUChoice = (auto && n > 0) || strings.HasPrefix(strings.Trim(s.Value, `"'`), "device=")
		case "privileged":
			in.Privileged = s.Value == "true"
		case "ipc":
			in.IPCHost = s.Value == "host"
		case "ulimit":
			in.Ulimits = append(in.Ulimits, s.Value)
			memlock = memlock || strings.HasPrefix(s.Value, "memlock=")
		case "env":
			in.Env = append(in.Env, s.Value)
		case "env-file":
			if kvs, err := opts.ReadKVEnvStrings([]string{s.Value}, nil); err == nil {
				in.Env = append(kvs, in.Env...)
			}
		}
	}
	in.ShmSizeBytes = shmSize(inv.user)
	in.PresetShmSizeBytes = shmSize(fromPresets)
	for _, name := range inv.presets {
		in.TrainingPreset = in.TrainingPreset || strings.Contains(name, "train")
	}
	if !in.GPURequested && !memlock {
		return in
	}

	// The daemon's facts, the image and NVML are asked at once.
	api := deps.API(dockerCLI)
	host := dockerCLI.DockerEndpoint().Host
	local := preflight.IsLocalHost(host)
	var (
		wg        sync.WaitGroup
		d         preflight.DaemonInfo
		daemonErr error
	)
	wg.Go(func() { d, daemonErr = preflight.DaemonFacts(ctx, api, host) })
	if in.GPURequested {
		wg.Go(func() {
			if img, err := api.ImageInspect(ctx, inv.positional[0]); err == nil && img.Config != nil {
				in.Image = &preflight.ImageInfo{Env: img.Config.Env}
			}
		})
		if local {
			wg.Go(func() {
				if lib, err := deps.NVML(); err == nil {
					if inventory, err := gpus.Load(lib); err == nil {
						in.HostCUDA, in.HostDriver = inventory.CUDAVersion, inventory.DriverVersion
						in.HostBrand = commonBrand(inventory.Devices)
					}
				}
			})
		}
	}
	wg.Wait()
	if daemonErr != nil {
		// The stock command reports an unreachable daemon in its own words.
		in.Image, in.HostCUDA, in.HostDriver, in.HostBrand = nil, "", "", ""
		return in
	}
	if d.Local {
		d.HookOnPath = preflight.LookupDaemonHook(host, os.Getenv("PATH"))
		in.HostLacksSysResource = preflight.LacksSysResource()
		if hard, err := preflight.MemlockHardLimit(); err == nil {
			in.HostMemlockHard = hard
		}
	} else {
		in.HostCUDA, in.HostDriver, in.HostBrand = "", "", ""
	}
	in.Daemon = d
	return in
}

// commonBrand is the NVIDIA_REQUIRE_CUDA brand name of the host's GPUs when
// they all have the same one (the GPUs are not chosen yet), else "".
func commonBrand(devices []gpus.Device) string {
	brand := ""
	for i, d := range devices {
		b := preflight.BrandName(d.Brand)
		if b == "" || (i > 0 && b != brand) {
			return ""
		}
		brand = b
	}
	return brand
}

// shmSize returns the last --shm-size of settings in bytes, 0 if none.
func shmSize(settings []presets.Setting) int64 {
	var n int64
	for _, s := range settings {
		if s.Flag == "shm-size" {
			if b, err := units.RAMInBytes(s.Value); err == nil {
				n = b
			}
		}
	}
	return n
}

// reportPreflight prints the warnings (unless quiet) and turns failures into
// the error that stops the run with status 125.
func reportPreflight(dockerCLI command.Cli, findings []preflight.Finding, quiet bool) error {
	var failures []string
	for _, f := range findings {
		line := f.Message
		if f.Fix != "" {
			line += " (fix: " + f.Fix + ")"
		}
		switch f.Level {
		case preflight.Fail:
			failures = append(failures, line)
		case preflight.Warn:
			if !quiet {
				_, _ = fmt.Fprintln(dockerCLI.Err(), "WARNING: "+line)
			}
		}
	}
	if len(failures) > 0 {
		return cli.StatusError{StatusCode: 125, Status: strings.Join(failures, "\n")}
	}
	return nil
}
