package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
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
	cmd.Flags().StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	return cmd
}

func runDoctor(ctx context.Context, dockerCLI command.Cli, deps Deps, st *stock, opts doctorOptions) error {
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

// reportDoctor prints the report with docker's formatter and returns
// errChecksFailed when a check failed.
func reportDoctor(dockerCLI command.Cli, format string, findings []preflight.Finding) error {
	if format == "" || format == formatter.TableFormatKey {
		format = defaultDoctorTableFormat
	}
	if err := doctorWrite(formatter.Context{Output: dockerCLI.Out(), Format: formatter.Format(format)}, findings); err != nil {
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

// defaultDoctorTableFormat puts each fix on its own line, under the
// message; the header has none (HasFix is "" there).
const defaultDoctorTableFormat = "table {{.Check}}\t{{.Status}}\t{{.Message}}{{if .HasFix}}\n\t\tfix: {{.Fix}}{{end}}"

func doctorWrite(ctx formatter.Context, findings []preflight.Finding) error {
	header := &doctorContext{}
	header.Header = formatter.SubHeaderContext{
		"Check": "CHECK", "Status": formatter.StatusHeader, "Message": "MESSAGE", "Fix": "FIX", "Detail": "DETAIL",
		"HasFix": "",
	}
	return ctx.Write(header, func(format func(formatter.SubContext) error) error {
		for _, f := range findings {
			if err := format(&doctorContext{f: f}); err != nil {
				return err
			}
		}
		return nil
	})
}

// doctorContext renders one finding.
type doctorContext struct {
	formatter.HeaderContext
	f preflight.Finding
}

func (c *doctorContext) Check() string   { return c.f.Check }
func (c *doctorContext) Status() string  { return c.f.Level.String() }
func (c *doctorContext) Message() string { return c.f.Message }
func (c *doctorContext) Fix() string     { return c.f.Fix }
func (c *doctorContext) HasFix() bool    { return c.f.Fix != "" }

// Detail is the whole story where Message or Fix is shortened; empty where
// they say everything.
func (c *doctorContext) Detail() string { return c.f.Detail }

// MarshalJSON is --format json's object: the template's fields, with "&&"
// in fixes left as written.
func (c *doctorContext) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		Check, Status, Message, Fix, Detail string
	}{c.Check(), c.Status(), c.Message(), c.Fix(), c.Detail()})
	return bytes.TrimSpace(b.Bytes()), err
}

// policyFacts loads the site's policy for doctor.
func policyFacts(deps Deps) preflight.PolicyFacts {
	f := preflight.PolicyFacts{Path: deps.PolicyPath}
	if deps.PolicyPath != "" {
		f.Policy, f.Err = policy.Load(deps.PolicyPath)
	}
	return f
}
