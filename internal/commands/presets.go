package commands

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/docker/cli/templates"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/presets"
)

func newPresetsCommand(dockerCLI command.Cli, deps Deps, st *stock) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "presets",
		Short: "Manage run presets",
		Args:  cli.NoArgs,
		RunE:  command.ShowHelp(dockerCLI.Err()),
	}
	cmd.AddCommand(newPresetsListCommand(dockerCLI, deps, st), newPresetsShowCommand(dockerCLI, deps, st))
	return cmd
}

type presetsListOptions struct {
	format string
	quiet  bool
}

func newPresetsListCommand(dockerCLI command.Cli, deps Deps, st *stock) *cobra.Command {
	var opts presetsListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List presets",
		Args:    cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPresetsList(dockerCLI, deps, st, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "only display preset names")
	return cmd
}

func runPresetsList(dockerCLI command.Cli, deps Deps, st *stock, opts presetsListOptions) error {
	store, err := loadPresets(deps, st)
	if err != nil {
		return err
	}
	format := opts.format
	if format == "" {
		format = formatter.TableFormatKey
	}
	ctx := formatter.Context{Output: dockerCLI.Out(), Format: newPresetFormat(format, opts.quiet)}
	return ctx.Write(newPresetContext(), func(write func(formatter.SubContext) error) error {
		for _, p := range store.List() {
			if err := write(&presetContext{p: p}); err != nil {
				return err
			}
		}
		return nil
	})
}

func newPresetFormat(source string, quiet bool) formatter.Format {
	if source == formatter.TableFormatKey {
		if quiet {
			return "{{.Name}}"
		}
		return "table {{.Name}}\t{{.Source}}\t{{.Description}}"
	}
	return formatter.Format(source)
}

type presetContext struct {
	formatter.HeaderContext
	p *presets.Preset
}

func newPresetContext() *presetContext {
	c := &presetContext{}
	c.Header = formatter.SubHeaderContext{
		"Name":        "NAME",
		"Source":      "SOURCE",
		"Description": "DESCRIPTION",
		"Extends":     "EXTENDS",
		"File":        "FILE",
	}
	return c
}

func (c *presetContext) MarshalJSON() ([]byte, error) { return formatter.MarshalJSON(c) }
func (c *presetContext) Name() string                 { return c.p.Name }
func (c *presetContext) Source() string               { return string(c.p.Source) }
func (c *presetContext) Description() string          { return c.p.Description }
func (c *presetContext) Extends() string              { return c.p.Extends }
func (c *presetContext) File() string                 { return c.p.File }

type presetsShowOptions struct {
	format string
}

func newPresetsShowCommand(dockerCLI command.Cli, deps Deps, st *stock) *cobra.Command {
	var opts presetsShowOptions
	cmd := &cobra.Command{
		Use:   "show [OPTIONS] PRESET",
		Short: "Show the options a preset adds, and why",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPresetsShow(dockerCLI, deps, st, args[0], opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", "format output: 'json' or a Go template")
	return cmd
}

func runPresetsShow(dockerCLI command.Cli, deps Deps, st *stock, name string, opts presetsShowOptions) error {
	store, err := loadPresets(deps, st)
	if err != nil {
		return err
	}
	p, err := store.Get(name)
	if err != nil {
		return err
	}
	settings, err := store.Expand(name)
	if err != nil {
		return err
	}
	runFlags := st.flags("run")
	view := presets.NewView(p, settings, func(flag string) string {
		if f := runFlags.Lookup(flag); f != nil {
			return f.Usage
		}
		return ""
	})

	out := dockerCLI.Out()
	switch opts.format {
	case "":
		_, err := io.WriteString(out, view.Text())
		return err
	case formatter.JSONFormatKey:
		return json.NewEncoder(out).Encode(view)
	default:
		tmpl, err := templates.Parse(opts.format)
		if err != nil {
			return fmt.Errorf("invalid --format: %w", err)
		}
		if err := tmpl.Execute(out, view); err != nil {
			return fmt.Errorf("rendering --format: %w", err)
		}
		_, err = fmt.Fprintln(out)
		return err
	}
}
