package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/opts"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

// Labels docker perceptron puts on the containers it creates.
const (
	labelUser    = "com.perceptron.user"
	labelPresets = "com.perceptron.presets"
)

// runOptions are docker perceptron's own options of run and create; every
// other option is docker's.
type runOptions struct {
	presets []string
	dryRun  bool
	wait    string // "" no waiting; "0" no time limit; else a duration
}

func (o *runOptions) addFlags(flags *pflag.FlagSet) {
	flags.StringArrayVar(&o.presets, "preset", nil, "apply a named preset before the other options (repeatable; see 'docker perceptron presets ls')")
	flags.BoolVar(&o.dryRun, "dry-run", false, "print the equivalent docker command instead of running it")
	flags.StringVar(&o.wait, "wait", "", "with --gpus auto: wait in line until enough GPUs are free, at most DURATION if given (e.g. --wait=30m)")
	flags.Lookup("wait").NoOptDefVal = "0"
	flags.String(optGPUMaxMemory, "", "with --gpus auto: a GPU using more memory than this is not free (default 1g)")
	flags.String(optGPUMaxUtil, "", "with --gpus auto: a GPU busier than this percentage is not free (default 10)")
}

// waitLimit returns whether to wait for GPUs, and for how long at most (0:
// no limit).
func (o *runOptions) waitLimit() (bool, time.Duration, error) {
	switch o.wait {
	case "":
		return false, 0, nil
	case "0":
		return true, 0, nil
	}
	d, err := time.ParseDuration(o.wait)
	if err != nil || d < 0 {
		return false, 0, fmt.Errorf("invalid --wait %q: use a duration such as 30m, or --wait alone to wait as long as it takes", o.wait)
	}
	return true, d, nil
}

func newRunCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	return newContainerCommand(dockerCLI, deps, "run", "Create and run a new container from an image, with presets")
}

func newCreateCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	return newContainerCommand(dockerCLI, deps, "create", "Create a new container, with presets")
}

// newContainerCommand returns run or create: docker perceptron's options are
// read, the presets merged with the user's options, and the result handed to
// docker/cli's own command of the same name.
func newContainerCommand(dockerCLI command.Cli, deps Deps, name, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name + " [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: short,
		Long: short + ".\n\nEvery 'docker " + name + "' option works as with docker " + name + "; presets are applied\n" +
			"first, in order, then the options given here, so the options given here win.",
		Example: "  docker perceptron " + name + " --preset tf-train nvcr.io/nvidia/tensorflow:25.01-tf2-py3\n" +
			"  docker perceptron " + name + " --preset pytorch-train --shm-size 16g -v \"$PWD:/work\" IMAGE python train.py",
		// The stock command parses the options; ours are picked out in RunE.
		DisableFlagParsing:    true,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := parseContainerArgs(stockFlags(dockerCLI, name)(), args)
			if err != nil {
				return cli.StatusError{StatusCode: 125, Status: fmt.Sprintf("%s\nSee 'docker perceptron %s --help'.", err, name)}
			}
			if inv.help {
				return cmd.Help()
			}
			if len(inv.positional) == 0 {
				return cli.StatusError{StatusCode: 125, Status: fmt.Sprintf("\"docker perceptron %s\" requires at least 1 argument.\nSee 'docker perceptron %s --help'.\n\nUsage:  %s", name, name, cmd.UseLine())}
			}
			return runContainer(cmd.Context(), dockerCLI, deps, name, inv)
		},
	}
	var forHelp runOptions
	forHelp.addFlags(cmd.Flags())
	// As docker run: --help has no -h, which is --hostname.
	cmd.Flags().Bool("help", false, "Print usage")
	// The stock options are added for --help only, when it is asked for:
	// building docker's commands on every start of the plugin costs time.
	helpFunc := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c.Flags().Lookup("shm-size") == nil {
			c.Flags().AddFlagSet(stockFlags(dockerCLI, name)())
		}
		helpFunc(c, args)
	})
	return cmd
}

// invocation is a parsed docker perceptron run/create command line.
type invocation struct {
	runOptions
	help       bool
	user       []presets.Setting // the user's docker options, in order
	positional []string          // IMAGE [COMMAND] [ARG...]
}

// rawValue stands in for an option whose values docker perceptron extends
// ("--gpus auto:2"), so that the stock parser does not reject them here.
type rawValue struct{ v string }

func (r *rawValue) String() string     { return r.v }
func (r *rawValue) Set(v string) error { r.v = v; return nil }
func (r *rawValue) Type() string       { return "string" }

// parseContainerArgs reads a run/create command line with the stock
// command's flag set (which stops at the image) plus docker perceptron's
// options. Each docker option is checked by docker's own parser.
func parseContainerArgs(flags *pflag.FlagSet, args []string) (invocation, error) {
	var inv invocation
	flags.SetOutput(io.Discard)
	inv.addFlags(flags)
	if g := flags.Lookup("gpus"); g != nil {
		g.Value = &rawValue{}
	}
	own := map[string]bool{"preset": true, "dry-run": true, "wait": true}
	err := flags.ParseAll(args, func(f *pflag.Flag, value string) error {
		if err := f.Value.Set(value); err != nil {
			return fmt.Errorf("invalid argument %q for \"--%s\" flag: %w", value, f.Name, err)
		}
		if _, err := specialSetting(f.Name, value); err != nil {
			return err
		}
		switch {
		case own[f.Name]:
		case f.Name == "help":
			inv.help = value == "true"
		default:
			inv.user = append(inv.user, presets.Setting{Flag: presets.Canonical(f.Name), Value: value})
		}
		return nil
	})
	if errors.Is(err, pflag.ErrHelp) {
		inv.help = true
		return inv, nil
	}
	if err != nil {
		return inv, err
	}
	inv.positional = flags.Args()
	return inv, nil
}

// runContainer merges the presets with the user's options and runs the
// stock command, or prints it with --dry-run.
func runContainer(ctx context.Context, dockerCLI command.Cli, deps Deps, name string, inv invocation) error {
	store, err := loadPresets(dockerCLI, deps)
	if err != nil {
		return cli.StatusError{StatusCode: 125, Status: err.Error()}
	}
	fromPresets, err := store.Expand(inv.presets...)
	if err != nil {
		return cli.StatusError{StatusCode: 125, Status: err.Error()}
	}
	fileKeys, err := userFileKeys(inv.user)
	if err != nil {
		return cli.StatusError{StatusCode: 125, Status: err.Error()}
	}
	settings := presets.Merge(presets.DropKeys(fromPresets, fileKeys), inv.user)
	settings = resolveTTY(settings, dockerCLI.In().IsTerminal())
	wait, waitLimit, err := inv.waitLimit()
	if err != nil {
		return cli.StatusError{StatusCode: 125, Status: err.Error()}
	}
	quiet := isSet(settings, "quiet")
	deps, closeNVML := deps.withNVMLSession()
	defer closeNVML()
	var daemon *preflight.DaemonInfo
	if !inv.dryRun {
		in := preflightInput(ctx, dockerCLI, deps, inv, fromPresets, settings)
		if err := reportPreflight(dockerCLI, preflight.Run(in), quiet); err != nil {
			return err
		}
		if in.Daemon.ServerVersion != "" {
			daemon = &in.Daemon
		}
	}
	settings, release, err := claimWithSignals(ctx, waitLimit, func(ctx context.Context) ([]presets.Setting, func(), error) {
		return claimGPUs(ctx, dockerCLI, deps, settings, daemon, inv.dryRun, wait, quiet)
	})
	if err != nil {
		return cli.StatusError{StatusCode: 125, Status: err.Error()}
	}
	// The container, once created, carries the claim in its labels.
	defer release()
	afterClaimHook()
	if len(inv.presets) > 0 {
		settings = presets.Merge([]presets.Setting{{Flag: "label", Value: labelPresets + "=" + strings.Join(inv.presets, ",")}}, settings)
	}
	if u := deps.User(); u != "" {
		settings = presets.Merge([]presets.Setting{{Flag: "label", Value: labelUser + "=" + u}}, settings)
	}

	args := append(presets.Args(settings), inv.positional...)
	if inv.dryRun {
		_, err := fmt.Fprintln(dockerCLI.Out(), presets.CommandLine(append([]string{"docker", name}, args...)...))
		return err
	}
	return execStock(ctx, dockerCLI, name, args)
}

// claimWithSignals runs claim with a context that Ctrl-C (or SIGTERM), and
// the --wait limit when there is one, cancel: waiting for GPUs stops cleanly.
func claimWithSignals(ctx context.Context, limit time.Duration, claim func(context.Context) ([]presets.Setting, func(), error)) ([]presets.Setting, func(), error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	return claim(ctx)
}

// isSet reports whether the boolean option flag is set to true.
func isSet(settings []presets.Setting, flag string) bool {
	set := false
	for _, s := range settings {
		if s.Flag == flag {
			set = s.Value == "true"
		}
	}
	return set
}

// loadPresets reads the built-in presets and the preset files.
func loadPresets(dockerCLI command.Cli, deps Deps) (*presets.Store, error) {
	paths := presetFilePaths(deps)
	files := []presets.File{{Path: paths[0], Source: presets.SourceSystem}, {Path: paths[1], Source: presets.SourceUser}}
	return presets.Load(presets.Builtin, files, presets.Options{
		Flags:   stockFlags(dockerCLI, "run"),
		Special: specialSetting,
	})
}

// presetFilePaths are the preset files, in the order they are read: the
// system file, then the user's (${DOCKER_CONFIG:-~/.docker}/perceptron).
func presetFilePaths(deps Deps) [2]string {
	user := deps.UserPresets
	if user == "" {
		user = filepath.Join(config.Dir(), "perceptron", "presets.yaml")
	}
	return [2]string{deps.SystemPresets, user}
}

// specialSetting checks the preset values that docker perceptron gives a
// meaning of its own.
func specialSetting(flag, value string) (bool, error) {
	switch flag {
	case "tty":
		return value == "auto", nil
	case "gpus":
		_, ok, err := parseGPUAuto(value)
		return ok, err
	case optGPUMaxMemory, optGPUMaxUtil:
		_, err := parseThreshold(flag, value)
		return true, err
	}
	return false, nil
}

// resolveTTY turns "tty: auto" into --tty when stdin is a terminal, and
// drops it otherwise, so interactive presets work from scripts and CI.
func resolveTTY(settings []presets.Setting, stdinIsTerminal bool) []presets.Setting {
	out := make([]presets.Setting, 0, len(settings))
	for _, s := range settings {
		if s.Flag == "tty" && s.Value == "auto" {
			if !stdinIsTerminal {
				continue
			}
			s.Value = "true"
		}
		out = append(out, s)
	}
	return out
}

// userFileKeys returns the keys that the user's --env-file and --label-file
// set, as presets.Key names them: they win over a preset's values.
func userFileKeys(user []presets.Setting) ([]string, error) {
	var keys []string
	for _, s := range user {
		var ns string
		switch s.Flag {
		case "env-file":
			ns = "env"
		case "label-file":
			ns = "label"
		default:
			continue
		}
		kvs, err := opts.ReadKVStrings([]string{s.Value}, nil)
		if err != nil {
			return nil, fmt.Errorf("reading --%s: %w", s.Flag, err)
		}
		for _, kv := range kvs {
			k, _ := presets.Key(ns, kv)
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// currentUser names the user who runs docker perceptron, for the label that
// tells other users who holds a container's GPUs.
func currentUser() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.Username
}
