package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/policy"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
	"github.com/perceptron/docker-perceptron/internal/request"
)

// runOptions are docker perceptron's own options of run and create; every
// other option is docker's.
type runOptions struct {
	presets []string
	dryRun  bool
	wait    string // "" no waiting; "0" no time limit; else a duration
	// fleet: choose the host too, among the fleet's (contexts: these).
	fleet    bool
	contexts string
}

func (o *runOptions) addFlags(flags *pflag.FlagSet) {
	flags.StringArrayVar(&o.presets, "preset", nil, ownUsage("preset"))
	flags.BoolVar(&o.dryRun, "dry-run", false, ownUsage("dry-run"))
	flags.StringVar(&o.wait, "wait", "", ownUsage("wait"))
	flags.Lookup("wait").NoOptDefVal = "0"
	flags.String(request.OptGPUMaxMemory, "", ownUsage(request.OptGPUMaxMemory))
	flags.String(request.OptGPUMaxUtil, "", ownUsage(request.OptGPUMaxUtil))
	flags.BoolVar(&o.fleet, "fleet", false, ownUsage("fleet"))
	flags.StringVar(&o.contexts, "context", "", ownUsage("context"))
}

func newRunCommand(dockerCLI command.Cli, deps Deps, st *stock) *cobra.Command {
	return newContainerCommand(dockerCLI, deps, st, "run", "Create and run a new container from an image, with presets")
}

func newCreateCommand(dockerCLI command.Cli, deps Deps, st *stock) *cobra.Command {
	return newContainerCommand(dockerCLI, deps, st, "create", "Create a new container, with presets")
}

// newContainerCommand returns run or create: docker perceptron's options are
// read, the presets merged with the user's options, and the result handed to
// docker/cli's own command of the same name.
func newContainerCommand(dockerCLI command.Cli, deps Deps, st *stock, name, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name + " [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: short,
		Long: short + ".\n\nEvery 'docker " + name + "' option works as with docker " + name + "; presets are applied\n" +
			"first, in order, then the options given here, so the options given here win.",
		Example: "  docker perceptron " + name + " --preset tf-train nvcr.io/nvidia/tensorflow:25.01-tf2-py3\n" +
			"  docker perceptron " + name + " --preset pytorch-train --shm-size 16g -v \"$PWD:/work\" IMAGE python train.py",
		// The stock command's flags parse the options; ours are picked out.
		DisableFlagParsing:    true,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := parseContainerArgs(st.flags(name), args)
			if err != nil {
				return fmt.Errorf("%w\nSee 'docker perceptron %s --help'.", err, name)
			}
			if cl.help {
				return cmd.Help()
			}
			if len(cl.positional) == 0 {
				return fmt.Errorf("\"docker perceptron %s\" requires at least 1 argument.\nSee 'docker perceptron %s --help'.\n\nUsage:  %s", name, name, cmd.UseLine())
			}
			return runContainer(cmd.Context(), dockerCLI, deps, st, name, cl)
		},
	}
	var forHelp runOptions
	forHelp.addFlags(cmd.Flags())
	// As docker run: --help has no -h, which is --hostname.
	cmd.Flags().Bool("help", false, "Print usage")
	// docker's options are looked up for --help only, when it is asked
	// for: building docker's commands on every start costs time.
	cmd.ValidArgsFunction = completeContainer(dockerCLI, deps, st, name)
	cmd.SetHelpFunc(func(c *cobra.Command, _ []string) {
		writeContainerHelp(c.OutOrStdout(), c, name, st.flags(name))
	})
	return cmd
}

// cmdLine is a parsed docker perceptron run/create command line.
type cmdLine struct {
	runOptions
	help       bool
	user       []presets.Setting // the user's docker options, in order
	positional []string          // IMAGE [COMMAND] [ARG...]
}

// parseContainerArgs reads a run/create command line with the stock
// command's flag set (which stops at the image) plus docker perceptron's
// options. Each docker option is checked by docker's own parser, each of
// docker perceptron's values by internal/request.
func parseContainerArgs(stockFlags *pflag.FlagSet, args []string) (cmdLine, error) {
	var cl cmdLine
	// A set of its own, holding the stock flags: docker's set is left as
	// it is, for the presets that are checked with it.
	flags := pflag.NewFlagSet("perceptron", pflag.ContinueOnError)
	flags.SetInterspersed(false) // options stop at the image, as docker run's
	flags.SetOutput(io.Discard)
	cl.addFlags(flags)
	flags.AddFlagSet(stockFlags)
	own := map[string]bool{"preset": true, "dry-run": true, "wait": true, "fleet": true, "context": true}
	err := flags.ParseAll(args, func(f *pflag.Flag, value string) error {
		handled, err := request.CheckSetting(f.Name, value)
		if err != nil {
			return err
		}
		// "--gpus auto" is ours; docker's parser checks the rest.
		if !handled || f.Name != "gpus" {
			if err := f.Value.Set(value); err != nil {
				return fmt.Errorf("invalid argument %q for \"--%s\" flag: %w", value, f.Name, err)
			}
		}
		switch {
		case own[f.Name]:
		case f.Name == "help":
			cl.help = value == "true"
		default:
			cl.user = append(cl.user, presets.Setting{Flag: presets.Canonical(f.Name), Value: value})
		}
		return nil
	})
	if errors.Is(err, pflag.ErrHelp) {
		cl.help = true
		return cl, nil
	}
	if err != nil {
		return cl, err
	}
	cl.positional = flags.Args()
	return cl, nil
}

// buildRequest merges the presets with the user's options and reads the
// result into the run's typed request, once.
func buildRequest(dockerCLI command.Cli, deps Deps, st *stock, name string, cl cmdLine, site policy.Policy) (request.Run, error) {
	store, setAside := loadPresets(deps, st)
	if store == nil {
		return request.Run{}, setAside
	}
	fromPresets, err := store.Expand(cl.presets...)
	if err != nil {
		return request.Run{}, err
	}
	warnSetAside(dockerCLI, setAside)
	merged, err := presets.MergeUser(fromPresets, cl.user, dockerCLI.In().IsTerminal())
	if err != nil {
		return request.Run{}, err
	}
	return request.Build(request.Input{
		Command: name, Presets: cl.presets, DryRun: cl.dryRun, Wait: cl.wait,
		Merged: merged, FromPresets: fromPresets, User: cl.user,
		Positional: cl.positional, Training: store.Training(cl.presets...), Open: store.Open(cl.presets...),
		Thresholds: alloc.SiteThresholds(site),
	})
}

// runContainer checks the run before anything is claimed or created, claims
// its GPUs, and runs the stock command, or prints it with --dry-run.
func runContainer(ctx context.Context, dockerCLI command.Cli, deps Deps, st *stock, name string, cl cmdLine) error {
	api, endpoint := deps.API(dockerCLI), dockerCLI.DockerEndpoint().Host
	var daemon func() (preflight.DaemonInfo, error)
	if preflight.IsLocal(endpoint, "") {
		// The daemon's answer is needed for GPUs and limits: ask while
		// the presets are read.
		daemon = preflight.AskDaemon(ctx, api, endpoint)
	}
	site := loadPolicy(dockerCLI, deps)
	req, err := buildRequest(dockerCLI, deps, st, name, cl, site)
	if err != nil {
		return err
	}
	if cl.fleet || cl.contexts != "" {
		return runOnFleet(ctx, dockerCLI, deps, req, cl)
	}
	deps, closeNVML := deps.withNVMLSession()
	defer closeNVML()
	host, err := preflight.GatherForRun(ctx, preflight.RunQuestions{
		API: api, DockerHost: endpoint, PATH: os.Getenv("PATH"), NVML: deps.NVML,
		Input: req.Preflight, Image: req.Positional[0], DryRun: req.DryRun, Auto: req.GPUs.Auto > 0, Daemon: daemon,
	})
	if req.DryRun {
		return dryRun(ctx, dockerCLI, deps, req, host, err, site)
	}
	if err != nil {
		return err
	}
	if host.DaemonErr != nil {
		// The stock command would fail the same way: say so before any
		// GPU is looked at, in docker's words.
		return host.DaemonErr
	}
	host.Apply(&req.Preflight)
	if err := reportPreflight(dockerCLI, preflight.Run(req.Preflight), req.Quiet); err != nil {
		return err
	}
	claimed, claim, err := claimWithSignals(ctx, req.Wait.Limit, func(ctx context.Context) (request.Claimed, *alloc.Claim, error) {
		return claimGPUs(ctx, dockerCLI, deps, req, host, site)
	})
	if err != nil {
		return err
	}
	// The container, once created, carries the claim in its labels.
	defer func() { _ = claim.Release() }()
	afterClaimHook()
	claimed.User = deps.User()
	return createClaimed(ctx, dockerCLI, deps, st, req, claimed, claim, host.Daemon.Key)
}

// dryRun prints the docker command the run would execute, on any machine:
// the GPUs --gpus auto would choose, or, where they cannot be chosen (no
// NVML here, a remote daemon), docker's nearest equivalent (--gpus N) and a
// note saying so. Then it reports the pre-flight as the run would: the
// warnings, and the failures as the error (exit 125), after the line.
func dryRun(ctx context.Context, dockerCLI command.Cli, deps Deps, req request.Run, host preflight.Host, gatherErr error, site policy.Policy) error {
	claimed := request.Claimed{User: deps.User()}
	var refusal error
	var remote *preflight.RemoteDaemonError
	switch {
	case errors.As(gatherErr, &remote):
		claimed.Count, refusal = req.GPUs.Auto, gatherErr
	case gatherErr != nil:
		return gatherErr
	case req.GPUs.Auto > 0:
		c, _, err := claimGPUs(ctx, dockerCLI, deps, req, host, site)
		switch {
		case errors.Is(err, gpus.ErrNoDriver):
			claimed.Count = req.GPUs.Auto
			_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: no NVIDIA driver here, so no GPU was chosen: shown as --gpus %d; on a GPU host, "+
				"--gpus auto gives docker the UUIDs of %d free, well-connected GPUs (--gpus \"device=GPU-…\")\n", req.GPUs.Auto, req.GPUs.Auto)
		case err != nil:
			claimed.Count, refusal = req.GPUs.Auto, err
		default:
			claimed.UUIDs, claimed.CDI = c.UUIDs, c.CDI
		}
	}
	if _, err := fmt.Fprintln(dockerCLI.Out(), presets.CommandLine(append([]string{"docker", req.Command}, req.Args(claimed)...)...)); err != nil {
		return err
	}
	if refusal != nil {
		return refusal
	}
	if host.DaemonErr != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "docker perceptron: %v: the checks that need the daemon were not made\n", host.DaemonErr)
	}
	host.Apply(&req.Preflight)
	return reportPreflight(dockerCLI, preflight.Run(req.Preflight), req.Quiet)
}

// createClaimed runs docker's own run or create with the claimed GPUs: the
// claim is checked right before, granted for the host's other daemons, and
// settled once docker's command returned.
func createClaimed(ctx context.Context, dockerCLI command.Cli, deps Deps, st *stock, req request.Run, claimed request.Claimed, claim *alloc.Claim, daemonKey string) error {
	announce := req.Command == "run" && req.Open != "" && req.Detached()
	if claim != nil || announce {
		// docker writes the container's ID there: finishRun reads it.
		if claimed.CIDFile = req.CIDFile(); claimed.CIDFile == "" {
			dir, err := os.MkdirTemp("", "perceptron-cid-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			claimed.CIDFile = filepath.Join(dir, "cid")
		}
	}
	if err := claim.Check(); err != nil {
		return err
	}
	if err := claim.Grant(daemonKey, req.Command); err != nil {
		return err
	}
	err := st.exec(ctx, req.Command, req.Args(claimed))
	finishRun(ctx, dockerCLI, deps, claim, req.Command, claimed.CIDFile, err != nil)
	if err == nil && announce {
		announceURL(ctx, dockerCLI, deps.API(dockerCLI), claimed.CIDFile, req.Open)
	}
	return err
}

// loadPresets reads the built-in presets and the preset files, each value
// checked by docker's parsers and internal/request. When a file does not
// load, it returns the store of the others with a *presets.SetAsideError
// (see warnSetAside); no store only when the built-in presets do not load.
func loadPresets(deps Deps, st *stock) (*presets.Store, error) {
	return presets.Load(presets.Builtin, presets.Files(deps.SystemPresets, deps.UserPresets), presets.Options{
		Flags:   func() *pflag.FlagSet { return st.flags("run") },
		Special: request.CheckSetting,
	})
}
