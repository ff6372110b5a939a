package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ngc"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

type ngcOptions struct {
	format string
	driver string
}

func newNgcCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var o ngcOptions
	cmd := &cobra.Command{
		Use:   "ngc [OPTIONS] [FRAMEWORK]",
		Short: "List the NGC framework releases and whether each runs on this host's driver",
		Args:  cli.RequiresMaxArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return runNgc(dockerCLI, deps, o, args)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.format, "format", "", flagsHelper.FormatHelp)
	flags.StringVar(&o.driver, "driver", "", "Judge for this NVIDIA driver `VERSION` instead of this host's")
	return cmd
}

// ngcHost is the host the releases are judged for: --driver, else this
// host's driver and GPUs (NVML); a driver given by hand says nothing of
// the GPUs, so forward compatibility is unknown there.
func ngcHost(deps Deps, driverFlag string) (ngc.Host, error) {
	if driverFlag != "" {
		v, err := ngc.ParseVersion(driverFlag)
		if err != nil {
			return ngc.Host{}, fmt.Errorf("invalid --driver: %w", err)
		}
		return ngc.Host{Driver: v}, nil
	}
	inv, err := gpus.LoadFrom(deps.NVML)
	if err != nil {
		return ngc.Host{}, err
	}
	v, err := ngc.ParseVersion(inv.DriverVersion)
	if err != nil {
		return ngc.Host{}, fmt.Errorf("NVML reports no usable driver version (%q): give --driver VERSION", inv.DriverVersion)
	}
	return ngc.Host{Driver: v, DataCenter: preflight.DataCenter(inv.Devices)}, nil
}

func runNgc(dockerCLI command.Cli, deps Deps, o ngcOptions, args []string) error {
	table, err := ngc.Default()
	if err != nil {
		return err
	}
	images := table.Images
	if len(args) == 1 {
		img, ok := table.Image(args[0])
		if !ok {
			return fmt.Errorf("unknown framework %s: use one of %s", presets.Echo(args[0]), strings.Join(table.Frameworks(), ", "))
		}
		images = []ngc.Image{img}
	}
	host, err := ngcHost(deps, o.driver)
	if err != nil && errors.Is(err, gpus.ErrNoDriver) {
		_, _ = fmt.Fprintln(dockerCLI.Err(), "WARNING: "+err.Error()+"; the HERE column is unknown (give --driver VERSION to judge for a GPU server)")
	} else if err != nil {
		return err
	}
	var rows []ngcRow
	for _, img := range images {
		for _, r := range slices.Backward(table.ReleasesOf(img)) {
			rows = append(rows, ngcRow{img: img, rel: r, fit: r.FitOn(host)})
		}
	}
	format := o.format
	if format == "" {
		format = formatter.TableFormatKey
	}
	if format == formatter.TableFormatKey {
		format = "table {{.Image}}\t{{.CUDA}}\t{{.MinDriver}}\t{{.Here}}"
	}
	return ngcWrite(formatter.Context{Output: dockerCLI.Out(), Format: formatter.Format(format)}, rows)
}

type ngcRow struct {
	img ngc.Image
	rel ngc.Release
	fit ngc.Fit
}

func ngcWrite(ctx formatter.Context, rows []ngcRow) error {
	header := &ngcContext{}
	header.Header = formatter.SubHeaderContext{
		"Image": "IMAGE", "Framework": "FRAMEWORK", "Release": "RELEASE", "CUDA": "CUDA",
		"MinDriver": "MIN DRIVER", "Here": "HERE", "Source": "SOURCE",
	}
	return ctx.Write(header, func(format func(formatter.SubContext) error) error {
		for _, r := range rows {
			if err := format(&ngcContext{r: r}); err != nil {
				return err
			}
		}
		return nil
	})
}

type ngcContext struct {
	formatter.HeaderContext
	r ngcRow
}

func (c *ngcContext) Image() string     { return c.r.img.Ref(c.r.rel) }
func (c *ngcContext) Framework() string { return c.r.img.Framework }
func (c *ngcContext) Release() string   { return c.r.rel.Name }
func (c *ngcContext) CUDA() string      { return c.r.rel.CUDA }
func (c *ngcContext) MinDriver() string { return c.r.rel.MinDriver.String() }
func (c *ngcContext) Here() string      { return string(c.r.fit) }
func (c *ngcContext) Source() string    { return c.r.rel.Source }

// MarshalJSON is --format json's object.
func (c *ngcContext) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Image     string
		Framework string
		Release   string
		CUDA      string
		MinDriver string
		Here      string
		Source    string
	}{c.Image(), c.Framework(), c.Release(), c.CUDA(), c.MinDriver(), c.Here(), c.Source()})
}
