// Package meta is docker perceptron's Docker CLI plugin metadata. It imports
// nothing heavy: the launcher answers the docker CLI's metadata call with it.
package meta

import "github.com/docker/cli/cli-plugins/metadata"

// CoreName is the program that runs the commands, installed next to the
// docker-perceptron launcher. Its name does not start with "docker-", so the
// docker CLI does not take it for a plugin of its own.
const CoreName = "perceptron-core"

// Metadata describes the plugin to the docker CLI.
func Metadata(version string) metadata.Metadata {
	return metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "Perceptron",
		Version:          version,
		ShortDescription: "Run deep-learning containers on shared GPU servers",
		URL:              "https://github.com/perceptron/docker-perceptron",
	}
}
