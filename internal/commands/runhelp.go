package commands

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/perceptron/docker-perceptron/internal/request"
)

// ownOption is one of docker perceptron's options of run and create, as
// --help shows it.
type ownOption struct {
	name, short, arg, usage string
}

// ownOptions are shown first, in their own section: docker's --gpus and
// -q are among them, for what they do here.
var ownOptions = []ownOption{
	{name: "context", arg: "NAMES", usage: "With --fleet: the hosts, docker contexts separated by commas (default: the fleet file's)"},
	{name: "dry-run", usage: "Print the docker command that would run, checked, and run nothing"},
	{name: request.OptGPUMaxMemory, arg: "SIZE", usage: "With --gpus auto: a GPU using more memory than this is not free (default 1g)"},
	{name: request.OptGPUMaxUtil, arg: "PERCENT", usage: "With --gpus auto: a GPU busier than this is not free (default 10)"},
	{name: "fleet", usage: "Run on the host of your fleet that has the GPUs free (docker contexts; see 'docker perceptron fleet ls')"},
	{name: "gpus", arg: "REQUEST", usage: "GPUs for the container: 'auto' (one free GPU, chosen for you and held\n" +
		"until the container ends), 'auto:N' (N free, well-connected GPUs),\n" +
		"'auto:mig', 'auto:mig=1g.10gb', 'auto:mig>=20g' (a free MIG slice), 'none'\n" +
		"(none, overriding a preset), or docker's own: 'all', N (the first N),\n" +
		"'\"device=0,2\"' or UUIDs"},
	{name: "preset", arg: "NAME", usage: "Apply a preset before the other options (repeatable; 'docker perceptron presets ls')"},
	{name: "quiet", short: "q", usage: "Suppress the pull output, the line naming the GPUs chosen, and the warnings"},
	{name: "wait", arg: "[=DURATION]", usage: "With --gpus auto: wait in line until enough GPUs are free (at most DURATION)"},
}

// writeContainerHelp is run's and create's --help: docker's layout, with
// docker perceptron's options in a section of their own ahead of docker's.
func writeContainerHelp(w io.Writer, cmd *cobra.Command, name string, stock *pflag.FlagSet) {
	fmt.Fprintf(w, "\nUsage:  docker perceptron %s\n\n%s\n\n", strings.TrimPrefix(cmd.UseLine(), "perceptron "), cmd.Long)
	fmt.Fprintf(w, "Options of docker perceptron:\n%s\n", ownUsages())
	docker := pflag.NewFlagSet(name, pflag.ContinueOnError)
	stock.VisitAll(func(f *pflag.Flag) {
		if f.Name != "gpus" && f.Name != "quiet" && !f.Hidden {
			docker.AddFlag(f)
		}
	})
	fmt.Fprintf(w, "Options of docker %s (as 'docker %s --help' shows them):\n%s\n", name, name, docker.FlagUsagesWrapped(100))
	fmt.Fprintf(w, "Examples:\n%s\n", cmd.Example)
}

// ownUsages lists ownOptions as pflag would, names padded to one column.
func ownUsages() string {
	const col = 30
	var b strings.Builder
	for _, o := range ownOptions {
		head := "      --" + o.name
		if o.short != "" {
			head = "  -" + o.short + ", --" + o.name
		}
		if o.arg != "" && !strings.HasPrefix(o.arg, "[") {
			head += " "
		}
		head += o.arg
		lines := strings.Split(o.usage, "\n")
		fmt.Fprintf(&b, "%-*s %s\n", col, head, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "%-*s %s\n", col, "", l)
		}
	}
	return b.String()
}

// ownUsage is the usage of one of ownOptions, on one line.
func ownUsage(name string) string {
	for _, o := range ownOptions {
		if o.name == name {
			return strings.ReplaceAll(o.usage, "\n", " ")
		}
	}
	return ""
}
