package commands

import (
	"fmt"
	"runtime"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

func newVersionCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the docker perceptron version",
		Args:  cli.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := deps.Version
			if v == "" {
				v = "dev"
			}
			_, err := fmt.Fprintf(dockerCLI.Out(), "docker perceptron %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
