package commands

import (
	"strconv"
	"strings"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/completion"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// completeContainer completes run and create through the docker CLI's own
// completion for plugins (docker __complete perceptron run …): docker
// perceptron's options and docker's, preset names after --preset, GPU
// requests after --gpus (auto, auto:N, none, all, device= with this host's
// GPUs), a local image in the image's place, and files after it.
func completeContainer(dockerCLI command.Cli, deps Deps, st *stock, name string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		flags := pflag.NewFlagSet(name, pflag.ContinueOnError)
		var o runOptions
		o.addFlags(flags)
		flags.AddFlagSet(st.flags(name))
		prev, imageGiven := lastFlag(flags, args)
		if imageGiven {
			return nil, cobra.ShellCompDirectiveDefault // the container's command
		}
		if flag, _, ok := strings.Cut(toComplete, "="); ok && strings.HasPrefix(flag, "--") {
			values, dir := completeValue(dockerCLI, deps, st, strings.TrimPrefix(flag, "--"))
			return completion.WithPrefix(flag+"=", values), dir
		}
		if strings.HasPrefix(toComplete, "-") {
			return flagNames(flags), cobra.ShellCompDirectiveNoFileComp
		}
		if prev != "" {
			return completeValue(dockerCLI, deps, st, prev)
		}
		return completion.ImageNames(dockerCLI, -1)(cmd, args, toComplete)
	}
}

// lastFlag returns the option whose value is to be completed ("" when
// none), and whether the image was given already.
func lastFlag(flags *pflag.FlagSet, args []string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			return "", true // the image: options stop there
		}
		if strings.Contains(a, "=") {
			continue
		}
		f := lookup(flags, a)
		if f == nil || f.NoOptDefVal != "" || f.Value.Type() == "bool" {
			continue
		}
		if i == len(args)-1 {
			return f.Name, false
		}
		i++ // its value
	}
	return "", false
}

func lookup(flags *pflag.FlagSet, arg string) *pflag.Flag {
	if name, ok := strings.CutPrefix(arg, "--"); ok {
		return flags.Lookup(name)
	}
	if len(arg) == 2 {
		return flags.ShorthandLookup(arg[1:])
	}
	return nil
}

func flagNames(flags *pflag.FlagSet) []string {
	var out []string
	flags.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			out = append(out, "--"+f.Name+"\t"+firstLine(f.Usage))
		}
	})
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// completeValue completes the value of the option called name.
func completeValue(dockerCLI command.Cli, deps Deps, st *stock, name string) ([]string, cobra.ShellCompDirective) {
	switch name {
	case "preset":
		store, _ := loadPresets(deps, st) // the presets that load
		if store == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return store.Names(), cobra.ShellCompDirectiveNoFileComp
	case "gpus":
		return gpuRequests(deps), cobra.ShellCompDirectiveNoFileComp
	}
	if fn, ok := st.find("container", "run").GetFlagCompletionFunc(name); ok && fn != nil {
		return fn(st.find("container", "run"), nil, "")
	}
	return nil, cobra.ShellCompDirectiveDefault
}

// gpuRequests are the values of --gpus: docker perceptron's, docker's, and
// device= with each GPU of this host by index and UUID.
func gpuRequests(deps Deps) []string {
	out := []string{"auto\tone free GPU, chosen for you", "auto:2\tN free, well-connected GPUs", "auto:mig\ta free MIG slice",
		"auto:mig=\ta free MIG slice of a profile (1g.10gb)", "none\tno GPU", "all\tevery GPU (docker's)"}
	inv, err := gpus.LoadFrom(deps.NVML)
	if err != nil {
		return out
	}
	for _, d := range inv.Devices {
		out = append(out, "device="+strconv.Itoa(d.Index)+"\t"+d.Name)
		if d.UUID != "" {
			out = append(out, "device="+d.UUID+"\tGPU "+strconv.Itoa(d.Index))
		}
	}
	return out
}
