// Command docker-perceptron is a Docker CLI plugin for shared deep-learning
// GPU servers: run presets, GPU inventory and GPU auto-selection.
package main

import (
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/commands"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	plugin.Run(func(dockerCLI command.Cli) *cobra.Command {
		return commands.NewRootCommand(dockerCLI, commands.DefaultDeps())
	}, metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "Perceptron",
		Version:          version,
		ShortDescription: "Run deep-learning containers on shared GPU servers",
		URL:              "https://github.com/perceptron/docker-perceptron",
	})
}
