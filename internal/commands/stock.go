package commands

import (
	"context"
	"fmt"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/commands"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// stockRoot returns a "docker" command holding docker/cli's own commands,
// bound to dockerCLI: the stock run and create commands, as the docker
// binary has them.
func stockRoot(dockerCLI command.Cli) *cobra.Command {
	root := &cobra.Command{
		Use:           "docker",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(cli.FlagErrorFunc)
	commands.AddCommands(root, dockerCLI)
	return root
}

// stockCommand returns docker/cli's own command called name ("run", "create").
func stockCommand(dockerCLI command.Cli, name string) (*cobra.Command, error) {
	cmd, _, err := stockRoot(dockerCLI).Find([]string{name})
	if err != nil || cmd.Name() != name {
		return nil, fmt.Errorf("docker/cli has no %q command", name)
	}
	return cmd, nil
}

// stockFlags returns a fresh flag set of the stock command called name; its
// values parse and check option values exactly as docker does.
func stockFlags(dockerCLI command.Cli, name string) func() *pflag.FlagSet {
	return func() *pflag.FlagSet {
		cmd, err := stockCommand(dockerCLI, name)
		if err != nil {
			return pflag.NewFlagSet(name, pflag.ContinueOnError)
		}
		return cmd.Flags()
	}
}

// execStock runs the stock command called name with args, in-process, with
// dockerCLI's streams: "docker run ARGS..." exactly as the docker binary
// would run it.
func execStock(ctx context.Context, dockerCLI command.Cli, name string, args []string) error {
	root := stockRoot(dockerCLI)
	root.SetArgs(append([]string{name}, args...))
	root.SetIn(dockerCLI.In())
	root.SetOut(dockerCLI.Out())
	root.SetErr(dockerCLI.Err())
	return root.ExecuteContext(ctx)
}
