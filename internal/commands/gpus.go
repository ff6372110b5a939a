package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

type gpusOptions struct {
	format  string
	quiet   bool
	noTrunc bool
}

func newGpusCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var opts gpusOptions
	cmd := &cobra.Command{
		Use:   "gpus [OPTIONS]",
		Short: "List the host's GPUs and who holds them",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGpus(cmd.Context(), dockerCLI, deps, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "only show GPU indexes (UUIDs with --no-trunc)")
	flags.BoolVar(&opts.noTrunc, "no-trunc", false, "don't truncate output, and show GPU UUIDs")
	return cmd
}

func runGpus(ctx context.Context, dockerCLI command.Cli, deps Deps, opts gpusOptions) error {
	inv, err := loadInventory(deps)
	if err != nil {
		return err
	}
	assessed := assessGPUs(ctx, dockerCLI, deps, inv)

	source := opts.format
	if source == "" {
		source = formatter.TableFormatKey
	}
	if source == formatter.TableFormatKey && !opts.quiet {
		_, _ = fmt.Fprintf(dockerCLI.Out(), "Driver %s, CUDA %s\n", orUnknown(inv.DriverVersion), orUnknown(inv.CUDAVersion))
	}
	fmtCtx := formatter.Context{
		Output: dockerCLI.Out(),
		Format: newGpuFormat(source, opts.quiet, opts.noTrunc),
		Trunc:  !opts.noTrunc,
	}
	return gpuWrite(fmtCtx, assessed)
}

// assessGPUs finds who holds each GPU and decides its state, by the same
// rule as --gpus auto. What cannot be read is warned about; the GPUs and
// their processes are still worth showing.
func assessGPUs(ctx context.Context, dockerCLI command.Cli, deps Deps, inv gpus.Inventory) []alloc.Assessment {
	api := deps.API(dockerCLI)
	// Shared with --gpus auto: each container is inspected once, and the
	// cache's own listing keeps what --gpus auto relies on (stopped GPU
	// holders, the anchors).
	cache := holders.OpenFileCache(deps.CachePath)
	defer func() { _ = cache.Save() }()
	held, err := holders.NewFinder(api, deps.ProcRoot, cache, holders.DefaultRuntime(ctx, api)).Find(ctx, inv)
	if err != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %v; reservations by containers are not shown\n", err)
		held, _ = holders.Finder{ProcRoot: deps.ProcRoot}.Find(ctx, inv) // processes only: cannot fail
	}
	leases, err := ledger.ActiveLeases(deps.stateDir(), deps.Now())
	if err != nil {
		_, _ = fmt.Fprintf(dockerCLI.Err(), "WARNING: %v; pending GPU claims are not shown\n", err)
	}
	return alloc.Assess(inv, held, leases, alloc.DefaultThresholds())
}

// loadInventory reads the GPUs, initialising NVML once for the command. A
// host without a usable NVML is gpus.ErrNoDriver (exit status 1).
func loadInventory(deps Deps) (gpus.Inventory, error) {
	lib, err := deps.NVML()
	if err != nil {
		return gpus.Inventory{}, noDriverError{err}
	}
	return gpus.Load(lib)
}

// noDriverError is an NVML library that cannot be opened: no driver, as far
// as the user is concerned.
type noDriverError struct{ error }

func (e noDriverError) Unwrap() []error { return []error{e.error, gpus.ErrNoDriver} }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

const (
	defaultGpuTableFormat        = "table {{.Index}}\t{{.Name}}\t{{.Memory}}\t{{.Util}}\t{{.Temp}}\t{{.State}}\t{{.UsedBy}}"
	defaultGpuTableFormatNoTrunc = "table {{.Index}}\t{{.UUID}}\t{{.Name}}\t{{.Memory}}\t{{.Util}}\t{{.Temp}}\t{{.State}}\t{{.UsedBy}}"

	gpuIndexHeader  = "INDEX"
	gpuUUIDHeader   = "UUID"
	gpuBusHeader    = "PCI BUS ID"
	gpuMemoryHeader = "MEMORY"
	gpuUsedHeader   = "MEMORY USED"
	gpuTotalHeader  = "MEMORY TOTAL"
	gpuUtilHeader   = "UTIL"
	gpuTempHeader   = "TEMP"
	gpuPowerHeader  = "POWER"
	gpuMIGHeader    = "MIG"
	gpuNUMAHeader   = "NUMA"
	gpuNVLinkHeader = "NVLINK"
	gpuPIDsHeader   = "PIDS"
	gpuUsedByHeader = "USED BY"
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

func gpuWrite(fmtCtx formatter.Context, statuses []alloc.Assessment) error {
	header := &gpuContext{}
	header.Header = formatter.SubHeaderContext{
		"Index":       gpuIndexHeader,
		"UUID":        gpuUUIDHeader,
		"Name":        formatter.NameHeader,
		"PCIBusID":    gpuBusHeader,
		"Memory":      gpuMemoryHeader,
		"MemoryUsed":  gpuUsedHeader,
		"MemoryTotal": gpuTotalHeader,
		"Util":        gpuUtilHeader,
		"Temp":        gpuTempHeader,
		"Power":       gpuPowerHeader,
		"MIG":         gpuMIGHeader,
		"NUMA":        gpuNUMAHeader,
		"NVLink":      gpuNVLinkHeader,
		"PIDs":        gpuPIDsHeader,
		"State":       formatter.StateHeader,
		"UsedBy":      gpuUsedByHeader,
	}
	return fmtCtx.Write(header, func(format func(formatter.SubContext) error) error {
		for _, s := range statuses {
			if err := format(&gpuContext{s: s, trunc: fmtCtx.Trunc}); err != nil {
				return err
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
}

const unknownValue = "-"

func (c *gpuContext) known(q string) bool { return c.s.Known(q) }

func (c *gpuContext) Index() string { return strconv.Itoa(c.s.Index) }

func (c *gpuContext) UUID() string {
	if !c.known("uuid") {
		return unknownValue
	}
	if c.trunc {
		return truncateUUID(c.s.UUID)
	}
	return c.s.UUID
}

func (c *gpuContext) Name() string {
	if !c.known("name") {
		return unknownValue
	}
	return c.s.Name
}

func (c *gpuContext) PCIBusID() string {
	if !c.known("pci") {
		return unknownValue
	}
	return c.s.PCIBusID
}

func (c *gpuContext) Memory() string {
	if !c.known("memory") {
		return unknownValue
	}
	return fmt.Sprintf("%dMiB / %dMiB", c.s.MemoryUsedMiB, c.s.MemoryTotalMiB)
}

func (c *gpuContext) MemoryUsed() string {
	if !c.known("memory") {
		return unknownValue
	}
	return fmt.Sprintf("%dMiB", c.s.MemoryUsedMiB)
}

func (c *gpuContext) MemoryTotal() string {
	if !c.known("memory") {
		return unknownValue
	}
	return fmt.Sprintf("%dMiB", c.s.MemoryTotalMiB)
}

func (c *gpuContext) Util() string {
	if !c.known("utilization") {
		return unknownValue
	}
	return fmt.Sprintf("%d%%", c.s.UtilizationPercent)
}

func (c *gpuContext) Temp() string {
	if !c.known("temperature") {
		return unknownValue
	}
	return fmt.Sprintf("%dC", c.s.TemperatureC)
}

func (c *gpuContext) Power() string {
	if !c.known("power") {
		return unknownValue
	}
	return fmt.Sprintf("%dW", c.s.PowerW)
}

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
	if !c.known("nvlink") {
		return unknownValue
	}
	peers := slices.Compact(slices.Clone(c.s.NVLinkPeers))
	return joinInts(peers)
}

// PIDs lists the host PIDs of the GPU's compute processes.
func (c *gpuContext) PIDs() string {
	if !c.known("processes") {
		return unknownValue
	}
	pids := make([]int, len(c.s.Processes))
	for i, p := range c.s.Processes {
		pids[i] = p.PID
	}
	return joinInts(pids)
}

func (c *gpuContext) State() string { return c.s.State }

// UsedBy names the holders: "name (user)" for a container, "pid N (user)"
// for a process outside containers.
func (c *gpuContext) UsedBy() string {
	parts := make([]string, 0, len(c.s.Holders))
	for _, h := range c.s.Holders {
		parts = append(parts, alloc.NameWithUser(h, c.trunc))
	}
	return strings.Join(parts, ", ")
}

// MarshalJSON is the --format json object, documented in docs/gpus-json.md:
// numbers as numbers, and null for what NVML could not tell.
func (c *gpuContext) MarshalJSON() ([]byte, error) {
	return json.Marshal(newGpuJSON(c.s))
}

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

type gpuJSON struct {
	Index              int               `json:"index"`
	UUID               *string           `json:"uuid"`
	Name               *string           `json:"name"`
	PCIBusID           *string           `json:"pci_bus_id"`
	MemoryTotalMiB     *uint64           `json:"memory_total_mib"`
	MemoryUsedMiB      *uint64           `json:"memory_used_mib"`
	UtilizationPercent *int              `json:"utilization_percent"`
	TemperatureC       *int              `json:"temperature_c"`
	PowerW             *int              `json:"power_w"`
	MIGEnabled         *bool             `json:"mig_enabled"`
	NUMANode           *int              `json:"numa_node"`
	NVLinkPeers        []int             `json:"nvlink_peers"`
	Processes          []gpuProcessJSON  `json:"processes"`
	State              string            `json:"state"`
	Holders            []gpuHolderJSON   `json:"holders"`
	Errors             map[string]string `json:"errors,omitempty"`
}

type gpuProcessJSON struct {
	PID           int    `json:"pid"`
	UsedMemoryMiB uint64 `json:"used_memory_mib"`
}

type gpuHolderJSON struct {
	ContainerID   string `json:"container_id"`
	ContainerName string `json:"container_name"`
	User          string `json:"user"`
	PIDs          []int  `json:"pids"`
	ByProcess     bool   `json:"by_process"`
	ByReservation bool   `json:"by_reservation"`
}

// ifKnown returns &v, or nil when the query q failed.
func ifKnown[T any](d gpus.Device, q string, v T) *T {
	if !d.Known(q) {
		return nil
	}
	return &v
}

func newGpuJSON(s alloc.Assessment) gpuJSON {
	d := s.Device
	j := gpuJSON{
		Index:              d.Index,
		UUID:               ifKnown(d, "uuid", d.UUID),
		Name:               ifKnown(d, "name", d.Name),
		PCIBusID:           ifKnown(d, "pci", d.PCIBusID),
		MemoryTotalMiB:     ifKnown(d, "memory", d.MemoryTotalMiB),
		MemoryUsedMiB:      ifKnown(d, "memory", d.MemoryUsedMiB),
		UtilizationPercent: ifKnown(d, "utilization", d.UtilizationPercent),
		TemperatureC:       ifKnown(d, "temperature", d.TemperatureC),
		PowerW:             ifKnown(d, "power", d.PowerW),
		MIGEnabled:         ifKnown(d, "mig", d.MIGEnabled),
		State:              s.State,
		Holders:            []gpuHolderJSON{},
		Errors:             d.Errors,
	}
	if d.NUMANode >= 0 {
		j.NUMANode = &d.NUMANode
	}
	if d.Known("nvlink") {
		j.NVLinkPeers = append([]int{}, d.NVLinkPeers...)
	}
	if d.Known("processes") {
		j.Processes = []gpuProcessJSON{}
		for _, p := range d.Processes {
			j.Processes = append(j.Processes, gpuProcessJSON{PID: p.PID, UsedMemoryMiB: p.UsedMemoryMiB})
		}
	}
	for _, h := range s.Holders {
		j.Holders = append(j.Holders, gpuHolderJSON{
			ContainerID: h.ContainerID, ContainerName: h.ContainerName, User: h.User,
			PIDs: append([]int{}, h.PIDs...), ByProcess: h.ByProcess, ByReservation: h.ByReservation,
		})
	}
	return j
}
