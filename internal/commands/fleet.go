package commands

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/context/docker"
	cliflags "github.com/docker/cli/cli/flags"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/fleet"
)

// hostTimeout bounds how long a fleet command waits for one host's answer.
const hostTimeout = 20 * time.Second

// fleetHosts is the fleet: the contexts of --context, else the fleet file's,
// each with its docker endpoint from the context store.
func fleetHosts(dockerCLI command.Cli, contexts string) ([]fleet.Host, error) {
	fromFile, err := fleet.Load(fleet.FilePath(config.Dir()))
	hosts := fromFile
	switch {
	case contexts != "":
		hosts, err = fleet.FromContexts(contexts, fromFile)
	case err != nil:
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	for i, h := range hosts {
		meta, err := dockerCLI.ContextStore().GetMetadata(h.Context)
		if err != nil {
			return nil, fmt.Errorf("fleet host %s: no such docker context (docker context ls lists them)", h.Context)
		}
		ep, err := docker.EndpointFromContext(meta)
		if err != nil {
			return nil, fmt.Errorf("fleet host %s: %w", h.Context, err)
		}
		hosts[i].Endpoint = ep.Host
	}
	return hosts, nil
}

// contextCLI is a docker CLI for the context called name, with dockerCLI's
// streams: what "docker --context NAME" would be.
func contextCLI(dockerCLI command.Cli, name string) (command.Cli, error) {
	c, err := command.NewDockerCli(command.WithInputStream(dockerCLI.In()), command.WithOutputStream(dockerCLI.Out()), command.WithErrorStream(dockerCLI.Err()))
	if err != nil {
		return nil, err
	}
	opts := cliflags.NewClientOptions()
	opts.Context = name
	if err := c.Initialize(opts); err != nil {
		return nil, fmt.Errorf("docker context %s: %w", name, err)
	}
	return c, nil
}

// localServer answers for a host whose daemon is on this machine, here.
func localServer(dockerCLI command.Cli, deps Deps, name string) fleet.Local {
	return func(ctx context.Context, in io.Reader, out io.Writer) error {
		c, err := contextCLI(dockerCLI, name)
		if err != nil {
			return reply(out, fleet.Offer{Version: fleet.Version, Error: err.Error()})
		}
		return serveHostAPI(ctx, c, deps, in, out)
	}
}

// askFleet asks every host for its offer, all at once, each within
// hostTimeout; a host that does not answer is an answer with its error.
func askFleet(ctx context.Context, dockerCLI command.Cli, deps Deps, hosts []fleet.Host, req fleet.Request) []fleet.Answer {
	answers := make([]fleet.Answer, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, hostTimeout)
			defer cancel()
			answers[i] = fleet.Answer{Host: h}
			answers[i].Offer, answers[i].Err = askHost(ctx, dockerCLI, deps, h, req)
		})
	}
	wg.Wait()
	return answers
}

func askHost(ctx context.Context, dockerCLI command.Cli, deps Deps, h fleet.Host, req fleet.Request) (fleet.Offer, error) {
	var o fleet.Offer
	conn, err := fleet.Dial(ctx, h, localServer(dockerCLI, deps, h.Context))
	if err != nil {
		return o, err
	}
	defer conn.Close()
	req.Version = fleet.Version
	if err := conn.Send(req); err != nil {
		return o, err
	}
	done := make(chan error, 1)
	go func() { done <- conn.Receive(&o) }()
	select {
	case err := <-done:
		return o, err
	case <-ctx.Done():
		return o, fmt.Errorf("%s did not answer within %s", h.Context, hostTimeout)
	}
}

func newFleetCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "The GPU servers of your fleet (docker contexts)",
		Args:  cli.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var contexts, format string
	ls := &cobra.Command{
		Use:   "ls [OPTIONS]",
		Short: "List the fleet's hosts, how each is reached, and whether it answers",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFleetLs(cmd.Context(), dockerCLI, deps, contexts, format)
		},
	}
	ls.Flags().StringVar(&contexts, "context", "", "The hosts: docker contexts, separated by commas (default: the fleet file's)")
	ls.Flags().StringVar(&format, "format", "", flagsHelper.FormatHelp)
	cmd.AddCommand(ls)
	return cmd
}

type fleetRow struct {
	host   fleet.Host
	via    string
	answer string
}

func runFleetLs(ctx context.Context, dockerCLI command.Cli, deps Deps, contexts, format string) error {
	hosts, err := fleetHosts(dockerCLI, contexts)
	if err != nil {
		return err
	}
	answers := askFleet(ctx, dockerCLI, deps, hosts, fleet.Request{Op: "gpus"})
	var rows []fleetRow
	for _, a := range answers {
		via, command, _ := fleet.Reach(a.Host)
		if len(command) > 0 {
			via += ": " + strings.Join(command, " ")
		}
		rows = append(rows, fleetRow{host: a.Host, via: via, answer: describeAnswer(a)})
	}
	if format == "" {
		format = "table {{.Context}}\t{{.Endpoint}}\t{{.Answer}}\t{{.Via}}"
	}
	header := &fleetRowContext{}
	header.Header = formatter.SubHeaderContext{"Context": "CONTEXT", "Endpoint": "ENDPOINT", "Via": "REACHED", "Answer": "ANSWER"}
	fmtCtx := formatter.Context{Output: dockerCLI.Out(), Format: formatter.Format(format)}
	return fmtCtx.Write(header, func(write func(formatter.SubContext) error) error {
		for _, r := range rows {
			if err := write(&fleetRowContext{r: r}); err != nil {
				return err
			}
		}
		return nil
	})
}

// describeAnswer is a host's answer in a phrase: "4 GPUs, 2 free, driver
// 580.95.05", or why it gave none.
func describeAnswer(a fleet.Answer) string {
	switch {
	case a.Err != nil:
		return a.Err.Error()
	case a.Offer.Error != "":
		return a.Offer.Error
	}
	return fmt.Sprintf("%d GPUs, %d free, driver %s", len(a.Offer.GPUs), a.Offer.Free, orUnknown(a.Offer.Driver))
}

type fleetRowContext struct {
	formatter.HeaderContext
	r fleetRow
}

func (c *fleetRowContext) Context() string  { return c.r.host.Context }
func (c *fleetRowContext) Endpoint() string { return c.r.host.Endpoint }
func (c *fleetRowContext) Via() string      { return c.r.via }
func (c *fleetRowContext) Answer() string   { return c.r.answer }

// fleetGpusRow is one GPU of one host, or a host that gave no answer.
type fleetGpusRow struct {
	host string
	gpu  *fleet.GPU
	err  string
}

// runGpusFleet is gpus --fleet: one table for every host, asked at once.
// A host that does not answer is one line saying why; the view still
// succeeds.
func runGpusFleet(ctx context.Context, dockerCLI command.Cli, deps Deps, o gpusOptions) error {
	hosts, err := fleetHosts(dockerCLI, o.contexts)
	if err != nil {
		return err
	}
	var rows []fleetGpusRow
	for _, a := range askFleet(ctx, dockerCLI, deps, hosts, fleet.Request{Op: "gpus"}) {
		if a.Err != nil || a.Offer.Error != "" && len(a.Offer.GPUs) == 0 {
			rows = append(rows, fleetGpusRow{host: a.Host.Context, err: describeAnswer(a)})
			continue
		}
		for i := range a.Offer.GPUs {
			rows = append(rows, fleetGpusRow{host: a.Host.Context, gpu: &a.Offer.GPUs[i]})
		}
	}
	format := o.format
	switch {
	case o.quiet:
		format = "{{.Host}}:{{.Index}}"
	case format == "" || format == formatter.TableFormatKey:
		format = "table {{.Host}}\t{{.Index}}\t{{.Name}}\t{{.Memory}}\t{{.Util}}\t{{.State}}\t{{.UsedBy}}"
	}
	header := &fleetGpuContext{}
	header.Header = formatter.SubHeaderContext{
		"Host": "HOST", "Index": "INDEX", "UUID": "UUID", "Name": formatter.NameHeader, "Memory": "MEMORY", "Util": "UTIL",
		"State": formatter.StateHeader, "UsedBy": "USED BY",
	}
	fmtCtx := formatter.Context{Output: dockerCLI.Out(), Format: formatter.Format(format)}
	return fmtCtx.Write(header, func(write func(formatter.SubContext) error) error {
		for _, r := range rows {
			if o.quiet && (r.gpu == nil || r.gpu.State != "free") && o.format == "" {
				continue
			}
			if err := write(&fleetGpuContext{r: r}); err != nil {
				return err
			}
		}
		return nil
	})
}

type fleetGpuContext struct {
	formatter.HeaderContext
	r fleetGpusRow
}

func (c *fleetGpuContext) Host() string { return c.r.host }
func (c *fleetGpuContext) Index() string {
	if c.r.gpu == nil {
		return unknownValue
	}
	return strconv.Itoa(c.r.gpu.Index)
}
func (c *fleetGpuContext) UUID() string { return c.field(func(g *fleet.GPU) string { return g.UUID }) }
func (c *fleetGpuContext) Name() string { return c.field(func(g *fleet.GPU) string { return g.Name }) }
func (c *fleetGpuContext) Memory() string {
	return c.field(func(g *fleet.GPU) string { return fmt.Sprintf("%dMiB / %dMiB", g.MemoryUsedMiB, g.MemoryTotalMiB) })
}
func (c *fleetGpuContext) Util() string {
	return c.field(func(g *fleet.GPU) string { return strconv.Itoa(g.Util) + "%" })
}
func (c *fleetGpuContext) State() string {
	if c.r.gpu == nil {
		return "unreachable"
	}
	return c.r.gpu.State
}
func (c *fleetGpuContext) UsedBy() string {
	if c.r.gpu == nil {
		return c.r.err
	}
	return c.r.gpu.UsedBy
}

func (c *fleetGpuContext) field(f func(*fleet.GPU) string) string {
	if c.r.gpu == nil {
		return unknownValue
	}
	return f(c.r.gpu)
}
