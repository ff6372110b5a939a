package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/holders"
)

type psOptions struct {
	all     bool
	quiet   bool
	noTrunc bool
	format  string
}

func newPsCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List your containers with their GPUs",
		Long: "List your running containers with their GPUs, user, status and age.\n\n" +
			"A container is yours when its user (the user docker perceptron run\n" +
			"labelled it with, else its configured user) is you. --all lists every\n" +
			"user's containers, in every state, as docker ps --all does.",
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPs(cmd.Context(), dockerCLI, deps, o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.all, "all", "a", false, "Show every user's containers, in every state (default shows your running ones)")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	flags.StringVar(&o.format, "format", "", flagsHelper.FormatHelp)
	return cmd
}

func runPs(ctx context.Context, dockerCLI command.Cli, deps Deps, o psOptions) error {
	me := ""
	if !o.all {
		if me = deps.User(); me == "" {
			return errors.New("cannot tell which containers are yours: the current user is unknown; use --all to list every user's")
		}
	}
	api := deps.API(dockerCLI)
	defaultRuntime, daemonID := holders.DaemonOf(ctx, api)
	cache := holders.OpenFileCache(deps.CachePath, daemonID)
	defer func() { _ = cache.Save() }()

	listed, err := listContainers(ctx, api, cache, o.all)
	if err != nil {
		return err
	}
	rows := make([]psRow, 0, len(listed))
	for _, c := range listed {
		if o.all || c.res.User == me {
			rows = append(rows, c)
		}
	}
	var inv gpus.Inventory
	if !o.quiet {
		inv = psInventory(deps, rows)
	}
	fmtCtx := formatter.Context{
		Output: dockerCLI.Out(),
		Format: newPsFormat(o.format, o.quiet),
		Trunc:  !o.noTrunc,
	}
	return psWrite(fmtCtx, rows, inv, defaultRuntime, deps.Now())
}

// psRow is a listed container and what its configuration reserves.
type psRow struct {
	c   container.Summary
	res holders.Reservation
}

// listContainers lists the running containers (every one with all), in the
// daemon's order, with their reservations: from the user's cache, shared
// with gpus and --gpus auto, else inspected (and then cached). A container
// removed since the listing is left out.
func listContainers(ctx context.Context, api DockerAPI, cache *holders.FileCache, all bool) ([]psRow, error) {
	// Bring the cache up to date first: it must know a container before it
	// keeps its reservation, or its name and labels would be lost to it.
	known := map[string]bool{}
	if seen, err := cache.List(api)(ctx); err == nil {
		for _, s := range seen {
			known[s.ID] = true
		}
	}
	res, err := api.ContainerList(ctx, client.ContainerListOptions{All: all})
	if err != nil {
		return nil, fmt.Errorf("cannot list containers: %w", err)
	}
	var missing []string
	for _, c := range res.Items {
		if _, ok := cache.Get(c.ID); !ok {
			missing = append(missing, c.ID)
		}
	}
	found, err := inspectReservations(ctx, api, missing)
	if err != nil {
		cache.Incomplete()
		return nil, err
	}
	rows := make([]psRow, 0, len(res.Items))
	for _, c := range res.Items {
		r, ok := cache.Get(c.ID)
		if !ok {
			if r, ok = found[c.ID]; !ok {
				continue // removed since
			}
			if known[c.ID] {
				cache.Put(c.ID, r)
			}
		}
		rows = append(rows, psRow{c: c, res: r})
	}
	return rows, nil
}

// inspectReservations reads the reservations of containers, a few at a
// time; a container removed since it was listed is left out.
func inspectReservations(ctx context.Context, api DockerAPI, ids []string) (map[string]holders.Reservation, error) {
	type result struct {
		res holders.Reservation
		err error
	}
	results := make([]result, len(ids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctr, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			results[i] = result{res: holders.ReservationOf(ctr.Container), err: err}
		})
	}
	wg.Wait()
	found := make(map[string]holders.Reservation, len(ids))
	for i, r := range results {
		switch {
		case r.err == nil:
			found[ids[i]] = r.res
		case cerrdefs.IsNotFound(r.err):
		default:
			return nil, fmt.Errorf("cannot inspect container %s: %w", formatter.TruncateID(ids[i]), r.err)
		}
	}
	return found, nil
}

// psInventory is the host's GPUs, read only when a container names GPUs;
// without a driver it is empty, and the GPUs show as the configuration
// writes them.
func psInventory(deps Deps, rows []psRow) gpus.Inventory {
	for _, r := range rows {
		if len(r.res.GPUs) > 0 || len(r.res.EnvGPUs) > 0 || r.res.First > 0 {
			inv, err := gpus.LoadFrom(deps.NVML)
			if err != nil {
				return gpus.Inventory{}
			}
			return inv
		}
	}
	return gpus.Inventory{}
}

// gpuNames names the GPUs that r reserves on a daemon whose default runtime
// is defaultRuntime: "all", or their indexes in inv; a GPU that inv does not
// have (no driver, another host) as the configuration writes it, and a
// count without a driver as "first N".
func gpuNames(r holders.Reservation, inv gpus.Inventory, defaultRuntime string) []string {
	if r.All || r.EnvAll && r.EnvApplies(defaultRuntime) {
		return []string{"all"}
	}
	var out []string
	for _, i := range r.Indexes(inv, defaultRuntime) {
		out = append(out, strconv.Itoa(i))
	}
	names := r.GPUs
	if r.EnvApplies(defaultRuntime) {
		names = append(slices.Clip(names), r.EnvGPUs...)
	}
	for _, g := range names {
		if len(holders.Reservation{GPUs: []string{g}}.Indexes(inv, "")) == 0 {
			out = append(out, g)
		}
	}
	if r.First > 0 && len(inv.Devices) == 0 {
		out = append(out, "first "+strconv.Itoa(r.First))
	}
	return out
}

const defaultPsTableFormat = "table {{.ID}}\t{{.Names}}\t{{.Image}}\t{{.GPUs}}\t{{.User}}\t{{.Status}}\t{{.RunningFor}}"

// newPsFormat returns the format for ps: quiet prints IDs, as docker ps -q.
func newPsFormat(source string, quiet bool) formatter.Format {
	switch {
	case quiet:
		return "{{.ID}}"
	case source == "", source == formatter.TableFormatKey:
		return defaultPsTableFormat
	}
	return formatter.Format(source)
}

func psWrite(fmtCtx formatter.Context, rows []psRow, inv gpus.Inventory, defaultRuntime string, now time.Time) error {
	header := &psContext{}
	header.Header = formatter.SubHeaderContext{
		"ID": formatter.ContainerIDHeader, "Names": "NAMES", "Image": formatter.ImageHeader,
		"Command": "COMMAND", "GPUs": "GPUS", "User": "USER", "State": formatter.StateHeader,
		"Status": formatter.StatusHeader, "RunningFor": "CREATED", "CreatedAt": formatter.CreatedAtHeader,
		"Labels": formatter.LabelsHeader,
	}
	return fmtCtx.Write(header, func(format func(formatter.SubContext) error) error {
		for _, r := range rows {
			c := &psContext{r: r, trunc: fmtCtx.Trunc, now: now, gpus: gpuNames(r.res, inv, defaultRuntime)}
			if err := format(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// psContext renders one container; its fields are docker ps's, with GPUs
// and User added.
type psContext struct {
	formatter.HeaderContext
	r     psRow
	trunc bool
	now   time.Time
	gpus  []string
}

func (c *psContext) ID() string {
	if c.trunc {
		return formatter.TruncateID(c.r.c.ID)
	}
	return c.r.c.ID
}

// Names is the container's name; with --no-trunc, every name it has.
func (c *psContext) Names() string {
	names := formatter.StripNamePrefix(c.r.c.Names)
	if c.trunc {
		for _, n := range names {
			if !strings.Contains(n, "/") { // not a legacy link
				return n
			}
		}
		return ""
	}
	return strings.Join(names, ",")
}

// Image is the image as the container was created from it; truncated, an
// image ID is shortened and a digest dropped.
func (c *psContext) Image() string {
	img := c.r.c.Image
	switch {
	case img == "":
		return "<no image>"
	case !c.trunc:
		return img
	case strings.HasPrefix(img, "sha256:"):
		return formatter.TruncateID(img)
	}
	name, _, _ := strings.Cut(img, "@")
	return name
}

func (c *psContext) Command() string {
	if c.trunc {
		return strconv.Quote(formatter.Ellipsis(c.r.c.Command, 20))
	}
	return strconv.Quote(c.r.c.Command)
}

// GPUs are the GPUs the container reserves (see gpuNames); truncated, a
// UUID is shortened as gpus shortens it.
func (c *psContext) GPUs() string {
	names := slices.Clone(c.gpus)
	if c.trunc {
		for i, n := range names {
			names[i] = truncateUUID(n)
		}
	}
	return strings.Join(names, ",")
}

// User is the container's user as holders names it: the user docker
// perceptron run labelled it with, else its configured user.
func (c *psContext) User() string { return c.r.res.User }

func (c *psContext) State() string  { return string(c.r.c.State) }
func (c *psContext) Status() string { return c.r.c.Status }

// CreatedAt is when the container was created, as docker ps writes it, in
// the clock's time zone (the local one).
func (c *psContext) CreatedAt() string {
	return time.Unix(c.r.c.Created, 0).In(c.now.Location()).String()
}

// RunningFor is how long ago the container was created, as docker ps says it.
func (c *psContext) RunningFor() string {
	return units.HumanDuration(c.now.Sub(time.Unix(c.r.c.Created, 0))) + " ago"
}

func (c *psContext) Labels() string {
	parts := make([]string, 0, len(c.r.c.Labels))
	for k, v := range c.r.c.Labels {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Label is the value of one label, for templates.
func (c *psContext) Label(name string) string { return c.r.c.Labels[name] }

// MarshalJSON is the --format json object: the template's fields, as docker
// ps writes them.
func (c *psContext) MarshalJSON() ([]byte, error) { return formatter.MarshalJSON(c) }
