// Command perceptron-core runs the docker perceptron commands. The docker
// CLI starts it through the docker-perceptron launcher (see
// cmd/docker-perceptron), which answers the metadata call without loading
// docker/cli's commands.
package main

import (
	"runtime/debug"

	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/commands"
	"github.com/perceptron/docker-perceptron/internal/meta"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// A command lives for a fraction of a second (a --wait for longer, with
	// a small heap): collecting at 5 times the live heap rather than twice
	// saves most of the collector's work, a tenth of the CPU of a run.
	debug.SetGCPercent(400)
	plugin.Run(func(dockerCLI command.Cli) *cobra.Command {
		deps := commands.DefaultDeps()
		deps.Version = version
		return commands.NewRootCommand(dockerCLI, deps)
	}, meta.Metadata(version))
}
