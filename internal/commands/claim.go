package commands

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/policy"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/request"
)

// claimWithSignals runs claim with a context that Ctrl-C (or SIGTERM), and
// the --wait limit when there is one, cancel: waiting for GPUs stops cleanly,
// and the interruption is the cause (see interrupted: the exit status says
// so). The docker CLI tells a plugin of Ctrl-C by cancelling the command's
// context (its plugin socket closes); a signal sent to the plugin itself
// counts the same.
func claimWithSignals(ctx context.Context, limit time.Duration, claim func(context.Context) (request.Claimed, *alloc.Claim, error)) (request.Claimed, *alloc.Claim, error) {
	parent := ctx
	// The parent's cancellation comes through the goroutine below, with
	// its cause: a child would be cancelled first, with none.
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	finished := make(chan struct{})
	defer close(finished)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			cancel(interrupted{sig: s.(syscall.Signal)})
		case <-parent.Done():
			cancel(interrupted{sig: syscall.SIGINT, byCLI: true})
		case <-finished:
		}
	}()
	if limit > 0 {
		var cancelLimit context.CancelFunc
		ctx, cancelLimit = context.WithTimeout(ctx, limit)
		defer cancelLimit()
	}
	return claim(ctx)
}

// claimGPUs chooses and claims the GPUs of --gpus auto[:N] (for a dry run,
// only chooses). host is what was learnt of the daemon. The claim is nil
// when nothing is claimed.
func claimGPUs(ctx context.Context, dockerCLI command.Cli, deps Deps, req request.Run, host preflight.Host, site policy.Policy) (request.Claimed, *alloc.Claim, error) {
	if req.GPUs.Auto == 0 {
		return request.Claimed{}, nil, nil
	}
	cache := holders.OpenFileCache(deps.CachePath, host.Daemon.Key)
	defer func() { _ = cache.Save() }()
	a := newAllocator(dockerCLI, deps, cache, host.Daemon)
	a.Policy = site
	if site.Set() {
		a.Who = whoAmI(deps) // the user's groups: asked only for a quota
	}
	ask := alloc.Request{Count: req.GPUs.Auto, MIG: req.GPUs.MIG, Thresholds: req.Thresholds, Wait: req.Wait.Enabled}
	cdi := host.Daemon.GPUsByCDI()
	if req.GPUs.MIG != nil && req.GPUs.Auto > 1 && !req.Quiet {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %d MIG slices for one container: a CUDA process uses only one MIG device; "+
			"each process must pick its own (CUDA_VISIBLE_DEVICES=MIG-…)\n", req.GPUs.Auto)
	}
	if req.DryRun {
		c, err := a.Preview(ctx, ask)
		if err != nil {
			return request.Claimed{}, nil, err
		}
		return request.Claimed{UUIDs: c.UUIDs(), CDI: cdi}, nil, nil
	}
	c, err := a.Claim(ctx, ask)
	if err != nil {
		return request.Claimed{}, nil, err
	}
	if !req.Quiet {
		_, _ = fmt.Fprintln(dockerCLI.Err(), c.Describe())
	}
	for _, e := range c.Expired {
		// Said even with -q: another user's reservation was taken.
		_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: taking an expired reservation (site policy %s): %s\n", site.Path, e)
	}
	return request.Claimed{UUIDs: c.UUIDs(), CDI: cdi, Token: c.Token}, c, nil
}

// finishRun ends a claimed run or create once docker's own command
// returned (failed: with an error). The container docker wrote to the
// cidfile is looked at: a run's container that did not start is removed (it
// exists only for this run, and would hold its GPUs for nothing; docker's
// own error and exit status stand), and the claim's grant names the
// container that now holds the GPUs, or goes.
func finishRun(ctx context.Context, dockerCLI command.Cli, deps Deps, claim *alloc.Claim, name, cidFile string, failed bool) {
	if claim == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	api := deps.API(dockerCLI)
	id, state := containerIn(ctx, api, cidFile)
	if failed && name == "run" && state == container.StateCreated {
		if _, err := api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
			_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: cannot remove container %s, which did not start: %v\n", formatter.TruncateID(id), err)
		} else {
			_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: removed container %s, which did not start; its GPUs are free again\n", formatter.TruncateID(id))
			state = ""
		}
	}
	if err := claim.Settle(id, holders.Live(state)); err != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %v; users of the host's other Docker daemons may not see this container's GPUs as held\n", err)
	}
}

// containerIn returns the container whose ID docker wrote to cidFile, and
// its state; "" when there is none (any more).
func containerIn(ctx context.Context, api DockerAPI, cidFile string) (string, container.ContainerState) {
	b, err := os.ReadFile(cidFile)
	id := strings.TrimSpace(string(b))
	if err != nil || id == "" {
		return "", ""
	}
	res, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil {
		return id, ""
	}
	return id, res.Container.State.Status
}

// finder is the holders.Finder of `gpus` and `--gpus auto` alike, for the
// daemon with defaultRuntime and ID daemonID.
func (d Deps) finder(api DockerAPI, cache *holders.FileCache, defaultRuntime, daemonID string) holders.Finder {
	f := holders.NewFinder(api, d.ProcRoot, cache, defaultRuntime)
	f.Now, f.StaleAfter = d.Now, d.LeaseTTL
	f.StateDir, f.DaemonID = d.StateDir, daemonID
	return f
}

// newAllocator returns the GPU allocator for dockerCLI's daemon, which is on
// this host; its default runtime decides whether a container's
// NVIDIA_VISIBLE_DEVICES gives it GPUs, its ID which grants are another
// daemon's.
func newAllocator(dockerCLI command.Cli, deps Deps, cache *holders.FileCache, daemon preflight.DaemonInfo) *alloc.Allocator {
	return &alloc.Allocator{
		NVML:     deps.NVML,
		Holders:  deps.finder(deps.API(dockerCLI), cache, daemon.DefaultRuntime, daemon.Key),
		StateDir: deps.StateDir,
		LeaseTTL: deps.LeaseTTL,
		Now:      deps.Now,
		Waiting: func(msg string) {
			_, _ = fmt.Fprintln(dockerCLI.Err(), msg)
		},
		BeforeLock: beforeLockHook(),
		LockHeld:   lockHeldHook(),
	}
}

// reportPreflight prints the warnings (unless quiet) and returns the
// failures as the error that stops the run.
func reportPreflight(dockerCLI command.Cli, findings []preflight.Finding, quiet bool) error {
	for _, f := range findings {
		if f.Level == preflight.Warn && !quiet {
			_, _ = fmt.Fprintln(dockerCLI.Err(), "WARNING: "+f.Line())
		}
	}
	return preflight.Failures(findings)
}

// withNVMLSession returns deps whose NVML is one session (gpus.Session):
// the pre-flight checks and the GPU choice of one command share it.
func (d Deps) withNVMLSession() (_ Deps, done func()) {
	d.NVML, done = gpus.Session(d.NVML)
	return d, done
}

// interrupted is a claim stopped by a signal: "interrupted", and the exit
// status 128+N of a process the signal ends (130 for Ctrl-C).
type interrupted struct {
	sig   syscall.Signal
	byCLI bool // the docker CLI cancelled the command: Ctrl-C as far as known
}

func (e interrupted) Error() string {
	switch {
	case e.byCLI:
		return "interrupted"
	case e.sig == syscall.SIGINT:
		return "interrupted (Ctrl-C)"
	}
	return "interrupted (" + e.sig.String() + ")"
}
