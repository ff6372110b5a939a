package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/fleet"
	"github.com/perceptron/docker-perceptron/internal/presets"
	"github.com/perceptron/docker-perceptron/internal/request"
)

// errFleetWait refuses --wait with --fleet.
var errFleetWait = errors.New("--wait with --fleet: which host frees its GPUs first cannot be known (a run announces no end); " +
	"wait in one host's line: docker --context HOST perceptron run --wait …")

// runOnFleet runs the job on the fleet's host that can take it: every host
// is asked at once, the hosts are ranked (fleet.Rank), and the job is
// claimed on the best one under that host's own lock, then created there
// through its docker context, as "docker --context HOST perceptron run"
// would. A host whose GPUs were taken since it answered is passed over
// for the next.
func runOnFleet(ctx context.Context, dockerCLI command.Cli, deps Deps, req request.Run, cl cmdLine) error {
	if req.GPUs.Auto == 0 {
		return errors.New("--fleet chooses a host by its free GPUs: use it with --gpus auto[:N] (a preset may set it)")
	}
	if req.Wait.Enabled {
		return errFleetWait
	}
	hosts, err := fleetHosts(dockerCLI, cl.contexts)
	if err != nil {
		return err
	}
	ask := fleet.Request{Op: "gpus", Count: req.GPUs.Auto, Image: req.Positional[0], Command: req.Command}
	userThresholds(&ask, cl.user)
	ranked, refused := fleet.Rank(askFleet(ctx, dockerCLI, deps, hosts, ask), req.GPUs.Auto)
	if req.DryRun {
		return fleetDryRun(dockerCLI, deps, req, ranked, refused)
	}
	for _, cand := range ranked {
		err := runOnHost(ctx, dockerCLI, deps, req, cand.Host, ask)
		var taken *takenError
		if !errors.As(err, &taken) {
			return err
		}
		refused[cand.Host.Context] = taken.Error()
		if !req.Quiet {
			_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: %s: %v; trying the next host\n", cand.Host.Context, taken)
		}
	}
	return noHostError(req.GPUs.Auto, hosts, refused)
}

// userThresholds sends the user's own --gpu-max-* (the hosts' defaults
// otherwise: their site policies').
func userThresholds(ask *fleet.Request, user []presets.Setting) {
	for _, s := range user {
		switch s.Flag {
		case request.OptGPUMaxMemory:
			if mib, err := request.ParseMaxMemory(s.Value); err == nil {
				ask.MaxMemoryMiB = &mib
			}
		case request.OptGPUMaxUtil:
			if p, err := request.ParseMaxUtil(s.Value); err == nil {
				ask.MaxUtilPercent = &p
			}
		}
	}
}

// noHostError says that no host can take the job, and why, host by host.
func noHostError(count int, hosts []fleet.Host, refused map[string]string) error {
	var why []string
	for _, h := range hosts {
		why = append(why, h.Context+": "+refused[h.Context])
	}
	return fmt.Errorf("no host of the fleet can take %d GPU(s) now (%s)", count, strings.Join(why, "; "))
}

// takenError is a host whose GPUs were taken since it answered.
type takenError struct{ msg string }

func (e *takenError) Error() string { return e.msg }

// runOnHost claims the job's GPUs on h, held by h's docker perceptron
// until the container exists, and runs docker's own run or create through
// h's context with them.
func runOnHost(ctx context.Context, dockerCLI command.Cli, deps Deps, req request.Run, h fleet.Host, ask fleet.Request) error {
	conn, err := fleet.Dial(ctx, h, localServer(dockerCLI, deps, h.Context))
	if err != nil {
		return err
	}
	defer conn.Close()
	ask.Op = "claim"
	ask.Version = fleet.Version
	if err := conn.Send(ask); err != nil {
		return err
	}
	var c fleet.Claim
	if err := conn.Receive(&c); err != nil {
		return err
	}
	switch {
	case c.NotEnough:
		return &takenError{msg: "its GPUs were taken meanwhile (" + c.Error + ")"}
	case c.Error != "":
		return fmt.Errorf("%s: %s", h.Context, c.Error)
	}
	if !req.Quiet {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "on %s: %s\n", h.Context, describeDevices(c.Devices))
	}
	hostCLI, err := contextCLI(dockerCLI, h.Context)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "perceptron-cid-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	claimed := request.Claimed{UUIDs: c.UUIDs, Token: c.Token, User: deps.User(), CIDFile: filepath.Join(dir, "cid")}
	if own := req.CIDFile(); own != "" {
		claimed.CIDFile = own
	}
	done := settleWhenCreated(conn, claimed.CIDFile)
	err = newStock(hostCLI).exec(ctx, req.Command, req.Args(claimed))
	id := done()
	if err != nil && req.Command == "run" && id != "" {
		removeUnstarted(ctx, dockerCLI, hostCLI.Client(), id)
	}
	return err
}

// settleWhenCreated tells the host which container holds the claim as soon
// as docker wrote its ID to cidFile (a run in the foreground lasts as long
// as its container); the returned func makes sure it was told, and returns
// the ID ("" when none was created).
func settleWhenCreated(conn *fleet.Conn, cidFile string) func() string {
	var once sync.Once
	var id string
	tell := func() {
		once.Do(func() {
			b, _ := os.ReadFile(cidFile)
			id = strings.TrimSpace(string(b))
			_ = conn.Send(fleet.Request{Version: fleet.Version, Op: "done", ContainerID: id})
		})
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if b, err := os.ReadFile(cidFile); err == nil && strings.TrimSpace(string(b)) != "" {
					tell()
					return
				}
			}
		}
	}()
	return func() string {
		close(stop)
		tell()
		return id
	}
}

// removeUnstarted removes a run's container that did not start on its
// host: it would hold its GPUs for nothing (as a local run does).
func removeUnstarted(ctx context.Context, dockerCLI command.Cli, api client.APIClient, id string) {
	ctx = context.WithoutCancel(ctx)
	res, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || res.Container.State.Status != container.StateCreated {
		return
	}
	if _, err := api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err == nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: removed container %s, which did not start; its GPUs are free again\n", formatter.TruncateID(id))
	}
}

func describeDevices(ds []fleet.GPU) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("GPU %d (%s, %s)", d.Index, d.UUID, d.Name)
	}
	return "using " + strings.Join(parts, ", ")
}

// fleetDryRun prints the docker command the job would run, on the host it
// would land on, with the GPUs that host offered.
func fleetDryRun(dockerCLI command.Cli, deps Deps, req request.Run, ranked []fleet.Answer, refused map[string]string) error {
	if len(ranked) == 0 {
		var hosts []fleet.Host
		for name := range refused {
			hosts = append(hosts, fleet.Host{Context: name})
		}
		return noHostError(req.GPUs.Auto, hosts, refused)
	}
	best := ranked[0]
	claimed := request.Claimed{User: deps.User()}
	for _, i := range best.Offer.Best {
		for _, g := range best.Offer.GPUs {
			if g.Index == i {
				claimed.UUIDs = append(claimed.UUIDs, g.UUID)
			}
		}
	}
	if len(claimed.UUIDs) == 0 {
		claimed.Count = req.GPUs.Auto
	}
	line := append([]string{"docker", "--context", best.Host.Context, req.Command}, req.Args(claimed)...)
	_, err := fmt.Fprintln(dockerCLI.Out(), presets.CommandLine(line...))
	return err
}
