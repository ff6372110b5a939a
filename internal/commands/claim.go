package commands

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/request"
)

// claimWithSignals runs claim with a context that Ctrl-C (or SIGTERM), and
// the --wait limit when there is one, cancel: waiting for GPUs stops cleanly.
func claimWithSignals(ctx context.Context, limit time.Duration, claim func(context.Context) (request.Claimed, *alloc.Claim, error)) (request.Claimed, *alloc.Claim, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	return claim(ctx)
}

// claimGPUs chooses and claims the GPUs of --gpus auto[:N] (for a dry run,
// only chooses). host is what was learnt of the daemon. The claim is nil
// when nothing is claimed.
func claimGPUs(ctx context.Context, dockerCLI command.Cli, deps Deps, req request.Run, host preflight.Host) (request.Claimed, *alloc.Claim, error) {
	if req.GPUs.Auto == 0 {
		return request.Claimed{}, nil, nil
	}
	cache := holders.OpenFileCache(deps.CachePath, host.Daemon.Key)
	defer func() { _ = cache.Save() }()
	a := newAllocator(dockerCLI, deps, cache, host.Daemon)
	ask := alloc.Request{Count: req.GPUs.Auto, Thresholds: req.Thresholds, Wait: req.Wait.Enabled}
	if req.DryRun {
		devices, err := a.Peek(ctx, ask)
		return request.Claimed{UUIDs: alloc.UUIDs(devices)}, nil, err
	}
	c, err := a.Claim(ctx, ask)
	if err != nil {
		return request.Claimed{}, nil, err
	}
	if !req.Quiet {
		_, _ = fmt.Fprintln(dockerCLI.Err(), c.Describe())
	}
	return request.Claimed{UUIDs: c.UUIDs(), Token: c.Token}, c, nil
}

// settleGrant names, in the claim's grant, the container that now holds its
// GPUs, or removes the grant when none does (it exited, or never existed).
func settleGrant(ctx context.Context, dockerCLI command.Cli, deps Deps, claim *alloc.Claim, token string) {
	if claim == nil {
		return
	}
	c, found, err := holders.ClaimedContainer(context.WithoutCancel(ctx), deps.API(dockerCLI), token)
	if err == nil {
		err = claim.Settle(c.ID, found && holders.Live(c.State))
	}
	if err != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %v; users of the host's other Docker daemons may not see this container's GPUs as held\n", err)
	}
}

// removeUnstarted removes the container of a run that failed before its
// container started, and says so: it exists only for this run, and would
// hold its GPUs for nothing. docker's own error and exit status stand.
func removeUnstarted(ctx context.Context, dockerCLI command.Cli, deps Deps, token string) {
	removed, err := holders.RemoveUnstarted(context.WithoutCancel(ctx), deps.API(dockerCLI), token)
	for _, id := range removed {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: removed container %s, which did not start; its GPUs are free again\n", formatter.TruncateID(id))
	}
	if err != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %v\n", err)
	}
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
