// Package preflight checks a container's settings against the host and the
// daemon before the container is created, so that the common GPU failures
// (missing toolkit, too old a driver, small /dev/shm, refused rlimits) are
// reported with their fix instead of docker's own cryptic message.
//
// Every check is a pure function of Input; gathering the facts (docker info,
// NVML, the host's rlimits) happens in DaemonFacts and in the callers.
package preflight

import (
	"errors"
	"strings"

	"github.com/perceptron/docker-perceptron/internal/ngc"
)

// Level is how serious a finding is.
type Level int

// Levels, in increasing order of severity.
const (
	OK   Level = iota // nothing to report
	Warn              // printed to stderr; never blocks
	Fail              // blocks the run (exit status 125)
)

// String returns the lower-case name shown in reports: "ok", "warn", "fail".
func (l Level) String() string {
	switch l {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	case Fail:
		return "fail"
	default:
		return "unknown"
	}
}

// Finding is the outcome of one check.
type Finding struct {
	Check   string // short name of the check, e.g. "image-cuda"
	Level   Level
	Message string // what is wrong (or, for OK, what was found)
	Fix     string // what to do about it; empty for OK
	// Detail is the whole story where Message or Fix is a short line for
	// doctor's table: what was found and what to do, in full. Empty when
	// the two say everything.
	Detail string
}

// Input is everything the run-time checks look at.
type Input struct {
	// GPURequested is true when the container gets GPUs at all (any --gpus,
	// including "all", or a GPU chosen by the plugin).
	GPURequested bool
	// GPUChoice is true when the container gets a specific set of GPUs (chosen
	// by the plugin or listed with --gpus device=...), not every GPU.
	GPUChoice bool

	Privileged bool
	// Env is the final environment of the run (preset and user -e/--env-file),
	// "KEY=VALUE" each. It overrides Image.Env, as docker does.
	Env []string

	// ShmSizeBytes is the user's --shm-size (0 when not given) and
	// PresetShmSizeBytes the preset's (0 when the preset sets none).
	ShmSizeBytes       int64
	PresetShmSizeBytes int64
	// TrainingPreset is true for presets meant for training (DataLoader
	// workers share batches through /dev/shm).
	TrainingPreset bool
	IPCHost        bool // --ipc=host

	// Ulimits are the final --ulimit values, "memlock=-1", "nofile=1024:2048".
	Ulimits []string

	// Image is the image's config; nil when the image is not present locally
	// (a check never pulls).
	Image *ImageInfo

	// HostCUDA is the CUDA version the host driver supports ("13.0"), from
	// NVML; "" when unknown. HostDriver is the driver version ("580.95.05")
	// and HostBrand the lower-case NVML brand of the chosen GPUs ("tesla",
	// "nvidia", "geforce"...); both "" when unknown. They decide the
	// NVIDIA_REQUIRE_CUDA alternatives (see BrandName). Leave all three
	// empty when the daemon is not local: this host's driver is not its.
	HostCUDA   string
	HostDriver string
	HostBrand  string
	// HostDataCenter is whether every GPU of this host is a data-centre
	// one, where CUDA forward compatibility works (see ngc.DataCenter).
	HostDataCenter ngc.Tri

	Daemon DaemonInfo

	// HostMemlockHard is the hard RLIMIT_MEMLOCK, in bytes, of the user
	// running the plugin (see MemlockHardLimit): the limit a rootless daemon
	// started by this user cannot exceed. -1 means unlimited, 0 unknown;
	// leave 0 when the daemon is not local.
	HostMemlockHard int64
	// HostLacksSysResource is true when this host's processes cannot have
	// CAP_SYS_RESOURCE (see LacksSysResource), so that even a rootful
	// daemon cannot raise memlock above HostMemlockHard: containers and
	// sandboxes. Leave false when the daemon is not local.
	HostLacksSysResource bool
}

// ImageInfo is what the checks read from a local image's config.
type ImageInfo struct {
	Ref string   // as the run names it: "nvcr.io/nvidia/pytorch:24.05-py3"
	Env []string // "KEY=VALUE"
}

// Run runs every run-time check and returns the findings that need
// attention (Warn and Fail), in a stable order. Nothing found means nil.
func Run(in Input) []Finding {
	var out []Finding
	for _, check := range []func(Input) []Finding{
		checkGPURuntime,
		checkImageCUDA,
		checkImageDriver,
		checkMemlock,
		checkShm,
		checkAllGPUs,
	} {
		for _, f := range check(in) {
			if f.Level > OK {
				out = append(out, f)
			}
		}
	}
	return out
}

// Line is the finding in one line, with its fix.
func (f Finding) Line() string {
	if f.Fix == "" {
		return f.Message
	}
	return f.Message + " (fix: " + f.Fix + ")"
}

// Failures returns the failed findings as the error that stops a run, one
// line each, or nil.
func Failures(findings []Finding) error {
	var lines []string
	for _, f := range findings {
		if f.Level == Fail {
			lines = append(lines, f.Line())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "\n"))
}

// Worst returns the highest level among findings (OK for none).
func Worst(findings []Finding) Level {
	worst := OK
	for _, f := range findings {
		if f.Level > worst {
			worst = f.Level
		}
	}
	return worst
}

// envMap merges environments left to right; later values win, as a
// container's env overrides its image's.
func envMap(envs ...[]string) map[string]string {
	m := make(map[string]string)
	for _, env := range envs {
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	}
	return m
}

func (in Input) env() map[string]string {
	var imageEnv []string
	if in.Image != nil {
		imageEnv = in.Image.Env
	}
	return envMap(imageEnv, in.Env)
}
