package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/policy"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

type doctorOptions struct {
	format string
}

func newDoctorCommand(dockerCLI command.Cli, deps Deps, st *stock) *cobra.Command {
	var opts doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor [OPTIONS]",
		Short: "Check that this host and its docker daemon can run GPU containers",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), dockerCLI, deps, st, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "table", `output format: "table" or "json" (one object per check per line)`)
	return cmd
}

func runDoctor(ctx context.Context, dockerCLI command.Cli, deps Deps, st *stock, opts doctorOptions) error {
	if opts.format != "table" && opts.format != "json" {
		return fmt.Errorf("invalid --format %q: use table or json", opts.format)
	}
	facts := preflight.DoctorFacts{
		Host: preflight.Gather(ctx, preflight.Sources{
			API: dockerCLI.Client(), DockerHost: dockerCLI.DockerEndpoint().Host,
			PATH: os.Getenv("PATH"), NVML: deps.NVML, DevDir: "/dev",
			ToolkitConfig: preflight.DefaultToolkitConfig,
		}),
		StateDir: ledger.StatDir(deps.StateDir),
		Presets:  checkPresetFiles(deps, st),
		Policy:   policyFacts(deps),
	}
	return reportDoctor(dockerCLI, opts.format, preflight.Doctor(facts))
}

// checkPresetFiles tells which preset files exist and loads them all as
// run does.
func checkPresetFiles(deps Deps, st *stock) preflight.PresetFacts {
	var p preflight.PresetFacts
	for _, f := range presets.Files(deps.SystemPresets, deps.UserPresets) {
		_, err := os.Stat(f.Path)
		// A file that exists but cannot be read is reported by the load.
		p.Files = append(p.Files, preflight.PresetFile{Path: f.Path, Exists: !errors.Is(err, fs.ErrNotExist)})
	}
	store, err := loadPresets(deps, st)
	if err != nil {
		p.Err = err
		return p
	}
	p.Count = len(store.List())
	return p
}

// reportDoctor prints the report and returns errChecksFailed when a check
// failed.
func reportDoctor(dockerCLI command.Cli, format string, findings []preflight.Finding) error {
	var err error
	if format == "json" {
		err = writeDoctorJSON(dockerCLI.Out(), findings)
	} else {
		err = writeDoctorTable(dockerCLI.Out(), findings)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range findings {
		if f.Level == preflight.Fail {
			failed++
		}
	}
	if failed > 0 {
		return errChecksFailed{n: failed}
	}
	return nil
}

// writeDoctorTable writes "CHECK  STATUS  DETAIL" rows, docker style (three
// spaces between columns), with each fix indented under its detail.
func writeDoctorTable(w io.Writer, findings []preflight.Finding) error {
	checkWidth, statusWidth := len("CHECK"), len("STATUS")
	for _, f := range findings {
		checkWidth = max(checkWidth, len(f.Check))
		statusWidth = max(statusWidth, len(f.Level.String()))
	}
	const gap = "   "
	indent := strings.Repeat(" ", checkWidth+len(gap)+statusWidth+len(gap))
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s%s%-*s%s%s\n", checkWidth, "CHECK", gap, statusWidth, "STATUS", gap, "DETAIL")
	for _, f := range findings {
		fmt.Fprintf(&b, "%-*s%s%-*s%s%s\n", checkWidth, f.Check, gap, statusWidth, f.Level.String(), gap, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(&b, "%sfix: %s\n", indent, f.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// doctorJSON is one line of --format json.
type doctorJSON struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

func writeDoctorJSON(w io.Writer, findings []preflight.Finding) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, f := range findings {
		if err := enc.Encode(doctorJSON{Check: f.Check, Status: f.Level.String(), Message: f.Message, Fix: f.Fix}); err != nil {
			return err
		}
	}
	return nil
}

// policyFacts loads the site's policy for doctor.
func policyFacts(deps Deps) preflight.PolicyFacts {
	f := preflight.PolicyFacts{Path: deps.PolicyPath}
	if deps.PolicyPath != "" {
		f.Policy, f.Err = policy.Load(deps.PolicyPath)
	}
	return f
}
