package commands

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/docker/cli/opts"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

type gpusOptions struct {
	format  string
	quiet   bool
	noTrunc bool
	filter  opts.FilterOpt
	watch   string
	// fleet: every host of the fleet (contexts: these ones).
	fleet    bool
	contexts string
}

func newGpusCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	o := gpusOptions{filter: opts.NewFilterOpt()}
	cmd := &cobra.Command{
		Use:   "gpus [OPTIONS]",
		Short: "List the host's GPUs and who holds them",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGpus(cmd.Context(), dockerCLI, deps, o)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.format, "format", "", flagsHelper.FormatHelp)
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only show GPU indexes (UUIDs with --no-trunc)")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output, and show GPU UUIDs")
	flags.VarP(&o.filter, "filter", "f", "Filter output based on conditions provided: state=free|busy|reserved|expired|idle|unknown, user=NAME, holder=CONTAINER")
	flags.StringVar(&o.watch, "watch", "", "Redraw the list every `INTERVAL` (2s when given alone) until interrupted")
	flags.Lookup("watch").NoOptDefVal = "2s"
	flags.BoolVar(&o.fleet, "fleet", false, "Every host of your fleet (the fleet file's docker contexts), in one table")
	flags.StringVar(&o.contexts, "context", "", "With --fleet: these docker contexts, separated by commas")
	return cmd
}

func runGpus(ctx context.Context, dockerCLI command.Cli, deps Deps, o gpusOptions) error {
	if o.fleet || o.contexts != "" {
		return runGpusFleet(ctx, dockerCLI, deps, o)
	}
	match, err := gpuFilter(o.filter.Value())
	if err != nil {
		return err
	}
	if o.watch == "" {
		return showGpus(ctx, dockerCLI, deps, o, match, dockerCLI.Out())
	}
	every, err := time.ParseDuration(o.watch)
	if err != nil || every < 100*time.Millisecond {
		return fmt.Errorf("invalid --watch %s: use an interval such as 2s or 500ms", presets.Echo(o.watch))
	}
	return watchGpus(ctx, dockerCLI, deps, o, match, every)
}

// showGpus prints the list once to out.
func showGpus(ctx context.Context, dockerCLI command.Cli, deps Deps, o gpusOptions, match func(alloc.Assessment) bool, out io.Writer) error {
	inv, err := gpus.LoadFrom(deps.NVML)
	if err != nil {
		return err
	}
	assessed, seeErr := assessGPUs(ctx, dockerCLI, deps, inv)
	shown := slices.DeleteFunc(assessed, func(a alloc.Assessment) bool { return !match(a) })

	source := o.format
	if source == "" {
		source = formatter.TableFormatKey
	}
	if source == formatter.TableFormatKey && !o.quiet {
		_, _ = fmt.Fprintf(out, "Driver %s, CUDA %s\n", orUnknown(inv.DriverVersion), orUnknown(inv.CUDAVersion))
	}
	fmtCtx := formatter.Context{
		Output: out,
		Format: newGpuFormat(source, o.quiet, o.noTrunc),
		Trunc:  !o.noTrunc,
	}
	if err := gpuWrite(fmtCtx, shown, deps.Now()); err != nil {
		return err
	}
	return seeErr
}

// assessGPUs finds who holds each GPU and decides its state, by the same
// rule as --gpus auto. When the containers cannot be read, the GPUs they
// might hold are unknown, never free, and the error says so (exit status 1)
// once the GPUs and their processes are shown.
func assessGPUs(ctx context.Context, dockerCLI command.Cli, deps Deps, inv gpus.Inventory, adjust ...func(*alloc.Thresholds)) ([]alloc.Assessment, error) {
	api := deps.API(dockerCLI)
	// Shared with --gpus auto: each container is inspected once, and the
	// cache's own listing keeps what --gpus auto relies on (stopped GPU
	// holders, the anchors).
	defaultRuntime, daemonID := holders.DaemonOf(ctx, api)
	cache := holders.OpenFileCache(deps.CachePath, daemonID)
	defer func() { _ = cache.Save() }()
	finder := deps.finder(api, cache, defaultRuntime, daemonID)
	held, err := finder.Find(ctx, inv)
	var seeErr error
	if err != nil {
		held = finder.ProcessesOnly(inv, err)
		seeErr = &cannotSeeError{err}
	}
	leases, err := ledger.ActiveLeases(deps.StateDir, deps.Now())
	if err != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %v; pending GPU claims are not shown\n", err)
	}
	site := loadPolicy(dockerCLI, deps)
	t := alloc.SiteThresholds(site)
	for _, f := range adjust {
		f(&t) // a fleet job's own thresholds
	}
	assessed := alloc.Assess(inv, held, leases, t)
	return alloc.Expire(assessed, site.MaxIdle, deps.Now()), seeErr
}

// cannotSeeError is a gpus listing that could not tell who holds the GPUs.
type cannotSeeError struct{ err error }

func (e *cannotSeeError) Error() string {
	return "who holds the GPUs is unknown: " + e.err.Error() + "; the GPUs shown unknown may be in use"
}

func (e *cannotSeeError) Unwrap() error { return e.err }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

const (
	defaultGpuTableFormat        = "table {{.Index}}\t{{.Name}}\t{{.Memory}}\t{{.Util}}\t{{.Temp}}\t{{.State}}\t{{.Held}}\t{{.Idle}}\t{{.UsedBy}}"
	defaultGpuTableFormatNoTrunc = "table {{.Index}}\t{{.UUID}}\t{{.Name}}\t{{.Memory}}\t{{.Util}}\t{{.Temp}}\t{{.State}}\t{{.Held}}\t{{.Idle}}\t{{.UsedBy}}"
)

// newGpuFormat returns the format for the gpus list: quiet prints indexes
// (UUIDs with --no-trunc), one per line, as docker ps -q prints IDs.
func newGpuFormat(source string, quiet, noTrunc bool) formatter.Format {
	switch {
	case quiet && noTrunc:
		return "{{.UUID}}"
	case quiet:
		return "{{.Index}}"
	case source == formatter.TableFormatKey && noTrunc:
		return defaultGpuTableFormatNoTrunc
	case source == formatter.TableFormatKey:
		return defaultGpuTableFormat
	}
	return formatter.Format(source)
}

func gpuWrite(fmtCtx formatter.Context, statuses []alloc.Assessment, now time.Time) error {
	header := &gpuContext{}
	header.Header = formatter.SubHeaderContext{
		"Index": "INDEX", "UUID": "UUID", "Name": formatter.NameHeader, "PCIBusID": "PCI BUS ID",
		"Memory": "MEMORY", "MemoryUsed": "MEMORY USED", "MemoryTotal": "MEMORY TOTAL",
		"Util": "UTIL", "Temp": "TEMP", "Power": "POWER", "MIG": "MIG", "NUMA": "NUMA",
		"NVLink": "NVLINK", "PIDs": "PIDS", "State": formatter.StateHeader, "UsedBy": "USED BY",
		"Held": "HELD", "Idle": "IDLE", "MemoryBar": "MEMORY", "UtilBar": "UTIL",
	}
	return fmtCtx.Write(header, func(format func(formatter.SubContext) error) error {
		for _, s := range statuses {
			if err := format(&gpuContext{s: s, trunc: fmtCtx.Trunc, now: now}); err != nil {
				return err
			}
			if !fmtCtx.Format.IsTable() {
				continue
			}
			// A table shows a MIG GPU's slices under it, "1:0" ….
			for _, sl := range s.Slices {
				if err := format(&gpuContext{s: sl.Row(), trunc: fmtCtx.Trunc, now: now, index: fmt.Sprintf("%d:%d", sl.GPU, sl.Index)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// gpuContext renders one GPU; a field whose NVML query failed shows as "-".
type gpuContext struct {
	formatter.HeaderContext
	s     alloc.Assessment
	trunc bool
	now   time.Time
	index string // a MIG slice's "GPU:MIG"; "" for a GPU
}

const unknownValue = "-"

// field formats a value, or shows "-" when its NVML query q failed.
func (c *gpuContext) field(q, format string, args ...any) string {
	if !c.s.Known(q) {
		return unknownValue
	}
	return fmt.Sprintf(format, args...)
}

func (c *gpuContext) known(q string) bool { return c.s.Known(q) }

func (c *gpuContext) Index() string {
	if c.index != "" {
		return c.index
	}
	return strconv.Itoa(c.s.Index)
}

func (c *gpuContext) UUID() string {
	if c.trunc {
		return c.field("uuid", "%s", truncateUUID(c.s.UUID))
	}
	return c.field("uuid", "%s", c.s.UUID)
}

func (c *gpuContext) Name() string     { return c.field("name", "%s", c.s.Name) }
func (c *gpuContext) PCIBusID() string { return c.field("pci", "%s", c.s.PCIBusID) }
func (c *gpuContext) Memory() string {
	return c.field("memory", "%dMiB / %dMiB", c.s.MemoryUsedMiB, c.s.MemoryTotalMiB)
}
func (c *gpuContext) MemoryUsed() string  { return c.field("memory", "%dMiB", c.s.MemoryUsedMiB) }
func (c *gpuContext) MemoryTotal() string { return c.field("memory", "%dMiB", c.s.MemoryTotalMiB) }
func (c *gpuContext) Util() string        { return c.field("utilization", "%d%%", c.s.UtilizationPercent) }
func (c *gpuContext) Temp() string        { return c.field("temperature", "%dC", c.s.TemperatureC) }
func (c *gpuContext) Power() string       { return c.field("power", "%dW", c.s.PowerW) }

func (c *gpuContext) MIG() string {
	switch {
	case !c.known("mig"):
		return unknownValue
	case c.s.MIGEnabled:
		return "enabled"
	}
	return "disabled"
}

func (c *gpuContext) NUMA() string {
	if c.s.NUMANode < 0 {
		return unknownValue
	}
	return strconv.Itoa(c.s.NUMANode)
}

// NVLink lists the linked GPUs once each.
func (c *gpuContext) NVLink() string {
	return c.field("nvlink", "%s", joinInts(slices.Compact(slices.Clone(c.s.NVLinkPeers))))
}

// PIDs lists the host PIDs of the GPU's compute processes.
func (c *gpuContext) PIDs() string {
	pids := make([]int, len(c.s.Processes))
	for i, p := range c.s.Processes {
		pids[i] = p.PID
	}
	return c.field("processes", "%s", joinInts(pids))
}

func (c *gpuContext) State() string { return c.s.State }

// UsedBy names the holders: "name (user, state)" for a container, "pid N
// (user)" for a process outside containers, "claim of user (pid N)" for
// another docker perceptron creating its container; a holder that uses
// the GPU without naming it says "no claim", one that sees every GPU says
// so.
func (c *gpuContext) UsedBy() string {
	parts := make([]string, 0, len(c.s.Holders))
	for _, h := range c.s.Holders {
		parts = append(parts, alloc.HolderLine(h, c.trunc))
	}
	if c.s.Lease != nil {
		parts = append(parts, "claim of "+c.s.ClaimedBy())
	}
	return strings.Join(parts, ", ")
}

// MemoryBar and UtilBar draw memory use and utilisation as bars of ten
// cells: "[######    ] 60%".
func (c *gpuContext) MemoryBar() string {
	if !c.known("memory") || c.s.MemoryTotalMiB == 0 {
		return unknownValue
	}
	return bar(int(c.s.MemoryUsedMiB * 100 / c.s.MemoryTotalMiB))
}

func (c *gpuContext) UtilBar() string {
	if !c.known("utilization") {
		return unknownValue
	}
	return bar(c.s.UtilizationPercent)
}

func bar(percent int) string {
	percent = min(max(percent, 0), 100)
	n := (percent + 5) / 10
	return fmt.Sprintf("[%s%s] %d%%", strings.Repeat("#", n), strings.Repeat(" ", 10-n), percent)
}

// Held is how long the GPU has been held: since its oldest holder (a
// container, or a pending claim) took it; "-" when nothing holds it, or
// only host processes, whose start is not looked up.
func (c *gpuContext) Held() string {
	since := alloc.HeldSince(c.s)
	if since.IsZero() {
		return unknownValue
	}
	return alloc.Round(c.now.Sub(since))
}

// Idle is how long the GPU has had no compute process: "in use" when it
// has one, the time by NVML's accounting, else "no process now".
func (c *gpuContext) Idle() string {
	switch {
	case !c.known("processes"):
		return unknownValue
	case len(c.s.Processes) > 0:
		return "in use"
	case c.s.IdleSource != alloc.IdleNone:
		return alloc.Round(c.now.Sub(c.s.IdleSince))
	}
	return "no process now"
}

// MarshalJSON is the --format json object (see alloc.Assessment.MarshalJSON).
func (c *gpuContext) MarshalJSON() ([]byte, error) { return c.s.MarshalJSON() }

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// truncateUUID shortens "GPU-3f2a1b4c-…" to "GPU-3f2a1b4c", 12 characters
// as docker's short IDs.
func truncateUUID(uuid string) string {
	if len(uuid) > 12 {
		return uuid[:12]
	}
	return uuid
}
