// Package commands holds the docker perceptron commands, one file each:
// cobra wiring, one typed request, one call into a domain package, and the
// rendering of its answer. Errors become exit statuses in one place
// (toStatusError).
package commands

import (
	"context"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/preflight"
)

// Deps are the dependencies the commands share, passed in so tests can
// replace them.
type Deps struct {
	// NVML returns the NVML library: the host's, or a fake one in builds
	// with the fakenvml tag. Init/Shutdown are the caller's.
	NVML func() (nvml.Interface, error)
	// API returns the part of the Docker API that docker perceptron uses
	// itself (the stock commands use the CLI's client): the CLI's client.
	API func(command.Cli) DockerAPI
	// ProcRoot is where host processes are looked up ("/proc").
	ProcRoot string
	// SystemPresets and UserPresets are the preset files, read in that order.
	SystemPresets string
	UserPresets   string
	// StateDir holds the host-wide GPU lock, claim leases and queue.
	StateDir string
	// CachePath is the user's cache of containers' GPU reservations.
	CachePath string
	// LeaseTTL is how long a GPU claim counts without renewal, and how long
	// a container that run created and never started holds its GPUs.
	LeaseTTL time.Duration
	// Now is the clock.
	Now func() time.Time
	// User names the user running the plugin, for the label that tells
	// other users who holds a container.
	User func() string
	// PolicyPath is the site's policy file (see internal/policy).
	PolicyPath string
	// Version is docker perceptron's, set at build time.
	Version string
}

// DefaultDeps returns the dependencies used by the installed plugin.
func DefaultDeps() Deps {
	return Deps{
		NVML:          openNVML,
		API:           func(c command.Cli) DockerAPI { return testAPI(c.Client()) },
		ProcRoot:      "/proc",
		SystemPresets: "/etc/docker/perceptron/presets.yaml",
		UserPresets:   "",                // resolved from DOCKER_CONFIG at run time
		StateDir:      ledger.StateDir(), // PERCEPTRON_STATE_DIR, or a default
		CachePath:     holders.DefaultCachePath(),
		LeaseTTL:      leaseTTL(),
		Now:           time.Now,
		User:          holders.CurrentUser,
		PolicyPath:    policyPath(),
	}
}

// DockerAPI is what docker perceptron asks the daemon itself: containers
// for GPU holders, daemon facts and images for the pre-flight checks.
type DockerAPI interface {
	holders.ListerAPI
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerLogs(ctx context.Context, containerID string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	preflight.RunAPI
}

// NewRootCommand returns the "perceptron" command with its subcommands.
func NewRootCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	st := newStock(dockerCLI)
	cmd := &cobra.Command{
		Use:              "perceptron",
		Short:            "Run deep-learning containers on shared GPU servers",
		TraverseChildren: true,
		SilenceUsage:     true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return plugin.PersistentPreRunE(cmd, args)
		},
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		newRunCommand(dockerCLI, deps, st),
		newCreateCommand(dockerCLI, deps, st),
		newPresetsCommand(dockerCLI, deps, st),
		newGpusCommand(dockerCLI, deps),
		newPsCommand(dockerCLI, deps),
		newQueueCommand(dockerCLI, deps),
		newPolicyCommand(dockerCLI, deps),
		newNgcCommand(dockerCLI, deps),
		newInitCommand(dockerCLI, deps),
		newDoctorCommand(dockerCLI, deps, st),
		newVersionCommand(dockerCLI, deps),
		newFleetCommand(dockerCLI, deps),
		newHostAPICommand(dockerCLI, deps),
	)
	return withStatus(cmd)
}
