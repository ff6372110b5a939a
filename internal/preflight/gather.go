package preflight

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/perceptron/docker-perceptron/internal/ngc"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// Host is what the checks know of the daemon and of this host, gathered by
// Gather for `run` and `doctor` alike.
type Host struct {
	DockerHost string
	Daemon     DaemonInfo
	DaemonErr  error // the daemon could not be asked; Daemon is empty
	// Inventory and NVMLErr are NVML's answer (gpus.Load), when asked.
	Inventory gpus.Inventory
	NVMLErr   error
	// Image is the image's config, when asked and present locally.
	Image *ImageInfo
	// This user's hard RLIMIT_MEMLOCK (-1 unlimited, 0 unknown), whether
	// this host withholds CAP_SYS_RESOURCE (see LacksSysResource) and has
	// NVIDIA links in /dev/char (see NvidiaDevCharLinks): this host's, so
	// the daemon's only when it is local.
	MemlockHard      int64
	LacksSysResource bool
	DevCharLinks     bool
	// Toolkit is this host's NVIDIA Container Toolkit config, read when
	// Sources.ToolkitConfig names it and the daemon is local.
	Toolkit ToolkitConfig
}

// Sources are where Gather asks.
type Sources struct {
	API        API
	DockerHost string // dockerCLI.DockerEndpoint().Host
	// PATH is this process's PATH, for the hook when dockerd's cannot be read.
	PATH string
	// NVML opens the NVML library; nil: NVML is not asked.
	NVML func() (nvml.Interface, error)
	// Image inspects the image to run; nil: no image is looked at.
	Image func(ctx context.Context) (*ImageInfo, error)
	// DevDir is "/dev", where NvidiaDevCharLinks looks; "" does not look.
	DevDir string
	// ToolkitConfig is the NVIDIA Container Toolkit's config.toml
	// (DefaultToolkitConfig), read for doctor; "" does not read it.
	ToolkitConfig string
	// Daemon, when set, answers for DaemonFacts: asked early (see
	// AskDaemon), while the command line and presets were read.
	Daemon func() (DaemonInfo, error)
}

// AskDaemon starts asking the daemon about itself now, for a Sources.Daemon
// that waits for the answer: the question overlaps the work before it is
// needed.
func AskDaemon(ctx context.Context, api API, dockerHost string) func() (DaemonInfo, error) {
	var (
		d   DaemonInfo
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d, err = DaemonFacts(ctx, api, dockerHost)
	}()
	return func() (DaemonInfo, error) {
		<-done
		return d, err
	}
}

// Gather asks the daemon, NVML and the image at once, then reads this host's
// limits and dockerd's PATH when the daemon is on this host.
func Gather(ctx context.Context, src Sources) Host {
	h := Host{DockerHost: src.DockerHost}
	var wg sync.WaitGroup
	ask := src.Daemon
	if ask == nil {
		ask = func() (DaemonInfo, error) { return DaemonFacts(ctx, src.API, src.DockerHost) }
	}
	wg.Go(func() { h.Daemon, h.DaemonErr = ask() })
	if src.Image != nil {
		wg.Go(func() { h.Image, _ = src.Image(ctx) })
	}
	if src.NVML != nil {
		wg.Go(func() { h.Inventory, h.NVMLErr = gpus.LoadFrom(src.NVML) })
	}
	wg.Wait()
	if hard, err := MemlockHardLimit(); err == nil {
		h.MemlockHard = hard
	}
	if h.DaemonErr == nil && h.Daemon.Local {
		h.Daemon.HookOnPath, h.Daemon.HookPathUnread = LookupDaemonHook(src.DockerHost, src.PATH)
		h.LacksSysResource = LacksSysResource()
		if src.DevDir != "" {
			h.DevCharLinks = NvidiaDevCharLinks(src.DevDir)
		}
		if src.ToolkitConfig != "" {
			h.Toolkit = ReadToolkitConfig(src.ToolkitConfig)
		}
	}
	return h
}

// RunAPI is what a run asks the daemon; the docker CLI's client satisfies it.
type RunAPI interface {
	API
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

// RunQuestions are what a run needs to know, and where to ask.
type RunQuestions struct {
	API        RunAPI
	DockerHost string
	PATH       string
	NVML       func() (nvml.Interface, error)
	Input      Input  // the run's settings
	Image      string // the image to run
	DryRun     bool   // no checks: only --gpus auto asks
	Auto       bool   // --gpus auto: the GPUs are chosen on this host
	// Daemon, when set, is the daemon's answer asked early (see AskDaemon).
	Daemon func() (DaemonInfo, error)
}

// RemoteDaemonError refuses --gpus auto for a daemon that is not on this
// host (see IsLocal): NVML sees this host's GPUs only.
type RemoteDaemonError struct{ DockerHost string }

func (e *RemoteDaemonError) Error() string {
	return fmt.Sprintf("--gpus auto chooses among this host's GPUs, but the Docker daemon is at %s: choose GPUs there, or give docker's own --gpus (device=...)", e.DockerHost)
}

// GatherForRun asks the daemon, the image and NVML what the pre-flight
// checks and the GPU choice of a run need, all at once, and only when they
// need it. --gpus auto is refused for a daemon on another host before
// anything is asked.
func GatherForRun(ctx context.Context, q RunQuestions) (Host, error) {
	if q.Auto && !IsLocal(q.DockerHost, "") {
		return Host{}, &RemoteDaemonError{DockerHost: q.DockerHost}
	}
	checks := q.Input.NeedsHost() // a dry run checks too: it says what the run would refuse
	if !checks && !q.Auto {
		return Host{DockerHost: q.DockerHost}, nil
	}
	src := Sources{API: q.API, DockerHost: q.DockerHost, PATH: q.PATH, Daemon: q.Daemon}
	if checks && q.Input.GPURequested {
		src.Image = func(ctx context.Context) (*ImageInfo, error) {
			img, err := q.API.ImageInspect(ctx, q.Image)
			if err != nil || img.Config == nil {
				return nil, err
			}
			return &ImageInfo{Ref: q.Image, Env: img.Config.Env}, nil
		}
		if IsLocalHost(q.DockerHost) {
			src.NVML = q.NVML
		}
	}
	h := Gather(ctx, src)
	if q.Auto && h.DaemonErr == nil && !h.Daemon.Local {
		return Host{}, &RemoteDaemonError{DockerHost: q.DockerHost}
	}
	return h, nil
}

// Apply completes a run's input with the host's facts. With the daemon out
// of reach it adds nothing: the stock command reports that in its own
// words. This host's driver and limits count only when the daemon is local.
func (h Host) Apply(in *Input) {
	if h.DaemonErr != nil {
		return
	}
	in.Daemon = h.Daemon
	in.Image = h.Image
	if !h.Daemon.Local {
		return
	}
	in.HostMemlockHard = h.MemlockHard
	in.HostLacksSysResource = h.LacksSysResource
	if h.NVMLErr == nil {
		in.HostCUDA, in.HostDriver = h.Inventory.CUDAVersion, h.Inventory.DriverVersion
		in.HostBrand = commonBrand(h.Inventory.Devices)
		in.HostDataCenter = ngc.DataCenter(brands(h.Inventory.Devices))
	}
}

// brands are the NVML brands of devices.
func brands(devices []gpus.Device) []int {
	out := make([]int, len(devices))
	for i, d := range devices {
		out[i] = d.Brand
	}
	return out
}

// commonBrand is the NVIDIA_REQUIRE_CUDA brand name of the host's GPUs when
// they all have the same one (the GPUs are not chosen yet), else "".
func commonBrand(devices []gpus.Device) string {
	brand := ""
	for i, d := range devices {
		b := BrandName(d.Brand)
		if b == "" || (i > 0 && b != brand) {
			return ""
		}
		brand = b
	}
	return brand
}

// NeedsHost reports whether the checks of in look at the daemon and host at
// all: for a GPU, or a memlock limit.
func (in Input) NeedsHost() bool {
	if in.GPURequested {
		return true
	}
	for _, u := range in.Ulimits {
		if strings.HasPrefix(u, "memlock=") {
			return true
		}
	}
	return false
}
