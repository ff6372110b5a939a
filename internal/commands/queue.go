package commands

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

type queueOptions struct {
	format string
	quiet  bool
}

func newQueueCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var opts queueOptions
	cmd := &cobra.Command{
		Use:   "queue [OPTIONS]",
		Short: "List the requests waiting for GPUs on this host",
		Args:  cli.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runQueue(dockerCLI, deps, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "only show the waiting processes' PIDs, first in line first")
	return cmd
}

func runQueue(dockerCLI command.Cli, deps Deps, opts queueOptions) error {
	waiters, err := ledger.Waiters(deps.StateDir)
	if err != nil {
		return fmt.Errorf("cannot read the GPU queue: %w", err)
	}
	fmtCtx := formatter.Context{Output: dockerCLI.Out(), Format: newQueueFormat(opts.format, opts.quiet)}
	return queueWrite(fmtCtx, waiters, deps.Now(), userOf)
}

// userOf names the user with a numeric uid, "uid N" when unknown.
func userOf(uid int) string { return holders.UserName(strconv.Itoa(uid)) }

const defaultQueueTableFormat = "table {{.Position}}\t{{.User}}\t{{.GPUs}}\t{{.Waiting}}\t{{.PID}}"

// newQueueFormat returns the format for the queue: quiet prints the
// waiters' PIDs in queue order, one per line, as docker ps -q prints IDs:
// the line number is the position.
func newQueueFormat(source string, quiet bool) formatter.Format {
	switch {
	case quiet:
		return "{{.PID}}"
	case source == "", source == formatter.TableFormatKey:
		return defaultQueueTableFormat
	}
	return formatter.Format(source)
}

// queueWrite renders the waiters at now; name names a uid.
func queueWrite(fmtCtx formatter.Context, waiters []ledger.Waiter, now time.Time, name func(int) string) error {
	header := &queueContext{}
	header.Header = formatter.SubHeaderContext{
		"Position": "POSITION", "User": "USER", "UID": "UID", "GPUs": "GPUS",
		"Waiting": "WAITING", "Since": "SINCE", "PID": "PID",
	}
	return fmtCtx.Write(header, func(format func(formatter.SubContext) error) error {
		for _, w := range waiters {
			if err := format(&queueContext{w: w, now: now, name: name}); err != nil {
				return err
			}
		}
		return nil
	})
}

// queueContext renders one waiter.
type queueContext struct {
	formatter.HeaderContext
	w    ledger.Waiter
	now  time.Time
	name func(int) string
}

func (c *queueContext) Position() string { return strconv.Itoa(c.w.Position) }
func (c *queueContext) User() string     { return c.name(c.w.UID) }
func (c *queueContext) UID() string      { return strconv.Itoa(c.w.UID) }
func (c *queueContext) GPUs() string     { return strconv.Itoa(c.w.GPUs) }
func (c *queueContext) PID() string      { return strconv.Itoa(c.w.PID) }

// Waiting says for how long, as docker ps says how long ago.
func (c *queueContext) Waiting() string { return units.HumanDuration(c.now.Sub(c.w.Since)) }

// Since is when the waiter joined, as docker ps's CreatedAt.
func (c *queueContext) Since() string { return c.w.Since.Local().String() }

// MarshalJSON is the --format json object.
func (c *queueContext) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Position int
		User     string
		UID      int
		GPUs     int
		Since    time.Time
		PID      int
	}{c.w.Position, c.User(), c.w.UID, c.w.GPUs, c.w.Since, c.w.PID})
}
