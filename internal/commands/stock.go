package commands

import (
	"context"
	"fmt"
	"sync"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/commands"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// stock is docker/cli's own command tree, bound to one docker CLI and built
// once per process, when first needed.
//
// The tree holds each of run and create twice: "docker run" and "docker
// container run" are separate commands with their own options. The
// "container" ones check option values (docker perceptron parses the
// user's arguments and validates presets with their flags, which keep the
// values they were given), and the top-level ones are executed, with flags
// no one has touched.
type stock struct {
	dockerCLI command.Cli
	once      sync.Once
	root      *cobra.Command
}

func newStock(dockerCLI command.Cli) *stock { return &stock{dockerCLI: dockerCLI} }

func (s *stock) tree() *cobra.Command {
	s.once.Do(func() {
		s.root = &cobra.Command{Use: "docker", SilenceErrors: true, SilenceUsage: true}
		s.root.SetFlagErrorFunc(cli.FlagErrorFunc)
		commands.AddCommands(s.root, s.dockerCLI)
	})
	return s.root
}

// find returns the stock command at path ("container", "run").
func (s *stock) find(path ...string) *cobra.Command {
	cmd, _, err := s.tree().Find(path)
	if err != nil || cmd.Name() != path[len(path)-1] {
		return nil
	}
	return cmd
}

// flags returns the flags of docker's "container run" or "container create":
// their values parse and check option values exactly as docker does. They
// keep what they were given, so they are never executed.
func (s *stock) flags(name string) *pflag.FlagSet {
	if cmd := s.find("container", name); cmd != nil {
		return cmd.Flags()
	}
	return pflag.NewFlagSet(name, pflag.ContinueOnError)
}

// exec runs the stock command called name with args, in-process, with the
// docker CLI's streams: "docker run ARGS..." exactly as the docker binary
// would run it. A process runs it once.
func (s *stock) exec(ctx context.Context, name string, args []string) error {
	root := s.tree()
	if s.find(name) == nil {
		return fmt.Errorf("docker/cli has no %q command", name)
	}
	root.SetArgs(append([]string{name}, args...))
	root.SetIn(s.dockerCLI.In())
	root.SetOut(s.dockerCLI.Out())
	root.SetErr(s.dockerCLI.Err())
	return root.ExecuteContext(ctx)
}
