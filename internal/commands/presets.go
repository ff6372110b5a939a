package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// runPresetsList lists the presets that load. A preset file that does not
// is a partial listing, as docker inspect's of a missing object: the others
// are listed, then the error, and the command fails, so that a script does
// not take the list for all of them.
func runPresetsList(dockerCLI command.Cli, deps Deps, st *stock, opts presetsListOptions) error {
	store, setAside := loadPresets(deps, st)
	if store == nil {
		return setAside
	}
	format := opts.format
	if format == "" {
		format = formatter.TableFormatKey
	}
	ctx := formatter.Context{Output: dockerCLI.Out(), Format: newPresetFormat(format, opts.quiet)}
	err := ctx.Write(newPresetContext(), func(write func(formatter.SubContext) error) error {
		for _, p := range store.List() {
			if err := write(&presetContext{p: p}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var sa *presets.SetAsideError
	if errors.As(setAside, &sa) {
		return setAsideError{sa}
	}
	return nil
}

// setAsideLines says, a line for each, which preset files were set aside
// and why.
func setAsideLines(sa *presets.SetAsideError) []string {
	lines := make([]string, 0, len(sa.Files))
	for _, f := range sa.Files {
		lines = append(lines, fmt.Sprintf("ignoring presets file %s: %s; its presets are unavailable", f.Path, f.Detail()))
	}
	return lines
}

// warnSetAside warns, a line for each, of the preset files that loadPresets
// set aside: a command that needs none of their presets goes on.
func warnSetAside(dockerCLI command.Cli, err error) {
	var sa *presets.SetAsideError
	if !errors.As(err, &sa) {
		return
	}
	for _, line := range setAsideLines(sa) {
		_, _ = fmt.Fprintln(dockerCLI.Err(), "WARNING: "+line)
	}
}

// setAsideError is presets ls's error for the files it could not list.
type setAsideError struct{ err *presets.SetAsideError }

func (e setAsideError) Error() string { return strings.Join(setAsideLines(e.err), "\n") }

func (e setAsideError) Unwrap() error { return e.err }

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
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeValue(dockerCLI, deps, st, "preset")
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", `format output: 'table' (the preset's options), 'table TEMPLATE' (each option's .Option, .Value, .Explanation), 'json', or a Go template of the preset (.Name, .Source, .File, .Description, .Extends, .Options)`)
	return cmd
}

func runPresetsShow(dockerCLI command.Cli, deps Deps, st *stock, name string, opts presetsShowOptions) error {
	store, setAside := loadPresets(deps, st)
	if store == nil {
		return setAside
	}
	p, err := store.Get(name)
	if err != nil {
		return err
	}
	settings, err := store.Expand(name)
	if err != nil {
		return err
	}
	warnSetAside(dockerCLI, setAside)
	runFlags := st.flags("run")
	view := presets.NewView(p, settings, func(flag string) string {
		if f := runFlags.Lookup(flag); f != nil {
			return f.Usage
		}
		return ""
	})

	out := dockerCLI.Out()
	switch {
	case opts.format == "":
		_, err := io.WriteString(out, view.Text())
		return err
	case opts.format == formatter.JSONFormatKey:
		return json.NewEncoder(out).Encode(view)
	case formatter.Format(opts.format).IsTable():
		return writeOptionsTable(out, opts.format, view.Options)
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

// writeOptionsTable writes a preset's options as a table, docker style:
// "table" is OPTION, VALUE, EXPLANATION; "table TEMPLATE" picks the
// columns.
func writeOptionsTable(out io.Writer, format string, options []presets.OptionView) error {
	if format == formatter.TableFormatKey {
		format = "table {{.Option}}\t{{.Value}}\t{{.Explanation}}"
	}
	ctx := formatter.Context{Output: out, Format: formatter.Format(format)}
	return ctx.Write(newOptionContext(), func(write func(formatter.SubContext) error) error {
		for _, o := range options {
			if err := write(&optionContext{o: o}); err != nil {
				return err
			}
		}
		return nil
	})
}

type optionContext struct {
	formatter.HeaderContext
	o presets.OptionView
}

func newOptionContext() *optionContext {
	c := &optionContext{}
	c.Header = formatter.SubHeaderContext{
		"Option":      "OPTION",
		"Value":       "VALUE",
		"Explanation": "EXPLANATION",
	}
	return c
}

func (c *optionContext) MarshalJSON() ([]byte, error) { return formatter.MarshalJSON(c) }
func (c *optionContext) Option() string               { return c.o.Option }
func (c *optionContext) Value() string                { return c.o.Value }
func (c *optionContext) Explanation() string          { return c.o.Explanation }
