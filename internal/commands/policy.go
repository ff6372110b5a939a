package commands

import (
	"encoding/json"
	"fmt"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/policy"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

func newPolicyCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "policy [OPTIONS]",
		Short: "Show the site's GPU policy: quotas, idle limit, free thresholds",
		Args:  cli.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runPolicy(dockerCLI, deps, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", `Format output using "json"; the default is text`)
	return cmd
}

// policyView is what `policy` shows: the file, what it sets, and what
// applies to the user who asks.
type policyView struct {
	Path               string
	InForce            bool
	Problem            string `json:",omitempty"`
	Summary            string
	YourLimit          *int
	LimitRule          string `json:",omitempty"`
	MaxIdle            string `json:",omitempty"`
	FreeMaxMemoryMiB   uint64
	FreeMaxUtilPercent int
}

func runPolicy(dockerCLI command.Cli, deps Deps, format string) error {
	if format != "" && format != "json" {
		return fmt.Errorf("invalid --format %s: use json, or no --format for text", presets.Echo(format))
	}
	p, err := policy.Load(deps.PolicyPath)
	v := policyView{Path: deps.PolicyPath, InForce: p.Set(), Summary: preflight.DescribePolicy(p)}
	if err != nil {
		v.Problem = err.Error()
	}
	who := whoAmI(deps)
	if l, ok := p.LimitFor(who.Name, who.Groups); ok {
		v.YourLimit, v.LimitRule = &l.GPUs, l.Rule
	}
	if p.MaxIdle > 0 {
		v.MaxIdle = alloc.Round(p.MaxIdle)
	}
	t := alloc.SiteThresholds(p)
	v.FreeMaxMemoryMiB, v.FreeMaxUtilPercent = t.MaxMemoryUsedMiB, t.MaxUtilizationPercent
	if format == "json" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintln(dockerCLI.Out(), string(b))
		return nil
	}
	printPolicy(dockerCLI, v, who.Name)
	return nil
}

func printPolicy(dockerCLI command.Cli, v policyView, user string) {
	out := dockerCLI.Out()
	switch {
	case v.Problem != "":
		_, _ = fmt.Fprintf(out, "Site policy: none in force (%s)\n", v.Problem)
	case !v.InForce:
		_, _ = fmt.Fprintf(out, "Site policy: none (no file at %s)\n", v.Path)
	default:
		_, _ = fmt.Fprintf(out, "Site policy: %s\n %s\n", v.Path, v.Summary)
	}
	if v.YourLimit != nil {
		_, _ = fmt.Fprintf(out, "Your limit (%s): at most %d GPU(s) through --gpus auto (%s)\n", user, *v.YourLimit, v.LimitRule)
	} else {
		_, _ = fmt.Fprintf(out, "Your limit (%s): none\n", user)
	}
	if v.MaxIdle != "" {
		_, _ = fmt.Fprintf(out, "Idle limit: a reservation whose GPUs had no process for %s may be given to others\n", v.MaxIdle)
	}
	_, _ = fmt.Fprintf(out, "A GPU is free with at most %d MiB of memory used and %d%% utilisation, and no process\n", v.FreeMaxMemoryMiB, v.FreeMaxUtilPercent)
}
