// Command docker-perceptron is the Docker CLI plugin's entry point, a
// launcher kept light on purpose: the docker CLI runs it for its metadata on
// every "docker --help" and before every "docker perceptron ...", and
// docker/cli's commands take tens of milliseconds just to initialise. It
// answers the metadata call itself and hands every other call to
// perceptron-core, installed next to it, in the same process (exec).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/docker/cli/cli-plugins/metadata"

	"github.com/perceptron/docker-perceptron/internal/meta"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) == 2 && os.Args[1] == metadata.MetadataSubcommandName {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "     ")
		if err := enc.Encode(meta.Metadata(version)); err != nil {
			os.Exit(1)
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-perceptron: cannot find its own executable:", err)
		os.Exit(1)
	}
	core := filepath.Join(filepath.Dir(self), meta.CoreName)
	err = syscall.Exec(core, append([]string{core}, os.Args[1:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "docker-perceptron: cannot run %s (%v): reinstall with ./install.sh\n", core, err)
	os.Exit(1)
}
