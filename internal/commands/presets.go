package commands

import (
	"encoding/json"
	"fmt"
	"strings"

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

// presetView is what presets show renders; its JSON names are stable.
type presetView struct {
	Name        string       `json:"name"`
	Source      string       `json:"source"`
	File        string       `json:"file,omitempty"`
	Description string       `json:"description"`
	Extends     string       `json:"extends,omitempty"`
	Options     []optionView `json:"options"`
}

type optionView struct {
	Option      string `json:"option"`
	Value       string `json:"value"`
	Explanation string `json:"explanation"`
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
	usage := func(flag string) string {
		if f := runFlags.Lookup(flag); f != nil {
			return f.Usage
		}
		return ""
	}
	view := presetView{Name: p.Name, Source: string(p.Source), File: p.File, Description: p.Description, Extends: p.Extends}
	for _, s := range settings {
		view.Options = append(view.Options, optionView{Option: "--" + s.Flag, Value: s.Value, Explanation: presets.Explain(s, usage)})
	}

	out := dockerCLI.Out()
	switch opts.format {
	case "":
		return writePresetView(dockerCLI, view)
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

func writePresetView(dockerCLI command.Cli, v presetView) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Name:         %s\n", v.Name)
	fmt.Fprintf(&b, "Source:       %s\n", v.Source)
	if v.File != "" {
		fmt.Fprintf(&b, "File:         %s\n", v.File)
	}
	fmt.Fprintf(&b, "Description:  %s\n", v.Description)
	if v.Extends != "" {
		fmt.Fprintf(&b, "Extends:      %s\n", v.Extends)
	}
	b.WriteString("Options:\n")
	for _, o := range v.Options {
		arg := o.Option
		if !(presets.IsBool(strings.TrimPrefix(o.Option, "--")) && o.Value == "true") {
			arg += " " + presets.Quote(o.Value)
		}
		fmt.Fprintf(&b, "  %s\n", arg)
		if o.Explanation != "" {
			fmt.Fprintf(&b, "      %s\n", o.Explanation)
		}
	}
	_, err := fmt.Fprint(dockerCLI.Out(), b.String())
	return err
}
