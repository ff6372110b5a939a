// Package commands holds the docker perceptron commands, one file each.
package commands

import (
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// Deps are the dependencies the commands share, passed in so tests can
// replace them.
type Deps struct{}

// DefaultDeps returns the dependencies used by the installed plugin.
func DefaultDeps() Deps { return Deps{} }

// NewRootCommand returns the "perceptron" command with its subcommands.
func NewRootCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:              "perceptron",
		Short:            "Run deep-learning containers on shared GPU servers",
		TraverseChildren: true,
		SilenceUsage:     true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return plugin.PersistentPreRunE(cmd, args)
		},
	}
	cmd.AddCommand(
		newRunCommand(dockerCLI, deps),
		newCreateCommand(dockerCLI, deps),
	)
	return cmd
}
