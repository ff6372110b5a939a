package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/fleet"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/preflight"
)

// newHostAPICommand is the machine interface a fleet command reaches on
// each host (see internal/fleet): JSON lines on stdin and stdout. Hidden:
// people use the fleet commands.
func newHostAPICommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	return &cobra.Command{
		Use:    fleet.HostAPICommand,
		Short:  "Answer a fleet command about this host's GPUs (machine interface)",
		Hidden: true,
		Args:   cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveHostAPI(cmd.Context(), dockerCLI, deps, dockerCLI.In(), dockerCLI.Out())
		},
	}
}

// serveHostAPI answers one request: an offer, or a claim held until the
// client says which container holds it (or goes away).
func serveHostAPI(ctx context.Context, dockerCLI command.Cli, deps Deps, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	var req fleet.Request
	line, err := r.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("no request on stdin: %w", err)
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return reply(out, fleet.Offer{Version: fleet.Version, Error: "unreadable request"})
	}
	if req.Version != fleet.Version {
		// Answered in our version: the client tells its user which
		// side to upgrade.
		return reply(out, fleet.Offer{Version: fleet.Version, Error: fmt.Sprintf("machine interface %d asked, this host speaks %d", req.Version, fleet.Version)})
	}
	switch req.Op {
	case "gpus":
		return reply(out, hostOffer(ctx, dockerCLI, deps, req))
	case "claim":
		return hostClaim(ctx, dockerCLI, deps, req, r, out)
	}
	return reply(out, fleet.Offer{Version: fleet.Version, Error: fmt.Sprintf("unknown request %q", req.Op)})
}

func reply(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// hostOffer is this host's answer to "gpus".
func hostOffer(ctx context.Context, dockerCLI command.Cli, deps Deps, req fleet.Request) fleet.Offer {
	o := fleet.Offer{Version: fleet.Version}
	o.Host, _ = os.Hostname()
	inv, err := gpus.LoadFrom(deps.NVML)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	o.Driver = inv.DriverVersion
	assessed, seeErr := assessGPUs(ctx, dockerCLI, deps, inv, jobThresholds(req))
	var free []int
	for _, a := range assessed {
		o.GPUs = append(o.GPUs, fleetGPU(a))
		if a.Free() {
			free = append(free, a.Index)
		}
	}
	if seeErr != nil {
		o.Error = seeErr.Error()
		return o
	}
	o.Free = len(free)
	if req.Count > 0 && len(free) >= req.Count {
		if best, err := alloc.Choose(inv.Devices, free, req.Count); err == nil {
			o.Best, o.Score = best, linkScore(inv.Devices, best)
		}
	}
	if w, err := ledger.Waiters(deps.StateDir); err == nil {
		o.Waiters = len(w)
	}
	o.ImagePresent, o.ImageRefused = imageHere(ctx, deps.API(dockerCLI), inv, req.Image)
	return o
}

// jobThresholds applies a fleet job's own thresholds, when it gives any.
func jobThresholds(req fleet.Request) func(*alloc.Thresholds) {
	return func(t *alloc.Thresholds) {
		if req.MaxMemoryMiB != nil {
			t.MaxMemoryUsedMiB = *req.MaxMemoryMiB
		}
		if req.MaxUtilPercent != nil {
			t.MaxUtilizationPercent = *req.MaxUtilPercent
		}
	}
}

func fleetGPU(a alloc.Assessment) fleet.GPU {
	var used []string
	for _, h := range a.Holders {
		used = append(used, alloc.HolderLine(h, true))
	}
	if a.Lease != nil {
		used = append(used, "claim of "+a.ClaimedBy())
	}
	return fleet.GPU{
		Index: a.Index, UUID: a.UUID, Name: a.Name, MemoryUsedMiB: a.MemoryUsedMiB, MemoryTotalMiB: a.MemoryTotalMiB,
		Util: a.UtilizationPercent, State: a.State, UsedBy: strings.Join(used, ", "),
	}
}

// linkScore sums the link scores of every pair of the set.
func linkScore(devices []gpus.Device, set []int) int {
	by := map[int]gpus.Device{}
	for _, d := range devices {
		by[d.Index] = d
	}
	s := 0
	for i, a := range set {
		for _, b := range set[i+1:] {
			s += alloc.PairScore(by[a], by[b])
		}
	}
	return s
}

// imageHere tells whether this host has the image, and why its driver
// cannot run it ("" when it can, or cannot tell: a missing image is
// pulled by the run).
func imageHere(ctx context.Context, api DockerAPI, inv gpus.Inventory, image string) (bool, string) {
	if image == "" {
		return false, ""
	}
	img, err := api.ImageInspect(ctx, image)
	if err != nil || img.Config == nil {
		return false, ""
	}
	in := preflight.Input{GPURequested: true, GPUChoice: true, Image: &preflight.ImageInfo{Ref: image, Env: img.Config.Env},
		HostCUDA: inv.CUDAVersion, HostDriver: inv.DriverVersion}
	in.HostDataCenter = preflight.DataCenter(inv.Devices)
	for _, f := range preflight.ImageChecks(in) {
		if f.Level == preflight.Fail {
			return true, f.Message
		}
	}
	return true, ""
}

// hostClaim claims req.Count GPUs here, under this host's lock, as a local
// run would; answers with them; then holds the claim (its lease renewed)
// until the client names the container that holds them, or goes away:
// the grant then names that container, or is removed.
func hostClaim(ctx context.Context, dockerCLI command.Cli, deps Deps, req fleet.Request, in *bufio.Reader, out io.Writer) error {
	api := deps.API(dockerCLI)
	daemon, err := preflight.DaemonFacts(ctx, api, dockerCLI.DockerEndpoint().Host)
	if err != nil {
		return reply(out, fleet.Claim{Version: fleet.Version, Error: err.Error()})
	}
	cache := holders.OpenFileCache(deps.CachePath, daemon.Key)
	defer func() { _ = cache.Save() }()
	site := loadPolicy(dockerCLI, deps)
	a := newAllocator(dockerCLI, deps, cache, daemon)
	a.Policy, a.Who, a.Waiting = site, whoAmI(deps), nil
	t := alloc.SiteThresholds(site)
	jobThresholds(req)(&t)
	c, err := a.Claim(ctx, alloc.Request{Count: req.Count, Thresholds: t})
	if err != nil {
		return reply(out, fleet.Claim{Version: fleet.Version, Error: err.Error(), NotEnough: errors.Is(err, alloc.ErrNotEnough)})
	}
	defer func() { _ = c.Release() }()
	if err := c.Grant(daemon.Key, req.Command); err != nil {
		return reply(out, fleet.Claim{Version: fleet.Version, Error: err.Error()})
	}
	answer := fleet.Claim{Version: fleet.Version, UUIDs: c.UUIDs(), Token: c.Token}
	for _, d := range c.Devices {
		answer.Devices = append(answer.Devices, fleet.GPU{Index: d.Index, UUID: d.UUID, Name: d.Name, MemoryTotalMiB: d.MemoryTotalMiB})
	}
	if err := reply(out, answer); err != nil {
		return c.Settle("", false)
	}
	var done fleet.Request
	if line, err := in.ReadBytes('\n'); err == nil || len(line) > 0 {
		_ = json.Unmarshal(line, &done)
	}
	id, state := done.ContainerID, container.ContainerState("")
	if id != "" {
		if res, err := api.ContainerInspect(context.WithoutCancel(ctx), id, client.ContainerInspectOptions{}); err == nil && res.Container.State != nil {
			state = res.Container.State.Status
		}
	}
	return c.Settle(id, holders.Live(state))
}
