package commands

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/docker/cli/cli/command"

	"github.com/perceptron/docker-perceptron/internal/alloc"
)

// gpuFilter reads --filter into a match: values of one key match any of
// them, different keys all (as docker ps). An unknown key or state is an
// error.
func gpuFilter(f map[string]map[string]bool) (func(alloc.Assessment) bool, error) {
	for key, values := range f {
		switch key {
		case "user", "holder":
		case "state":
			for v := range values {
				if !slices.Contains(alloc.FilterStates(), v) {
					return nil, fmt.Errorf("invalid filter 'state=%s': use one of %s", v, strings.Join(alloc.FilterStates(), ", "))
				}
			}
		default:
			return nil, fmt.Errorf("invalid filter '%s': use state, user or holder", key)
		}
	}
	return func(a alloc.Assessment) bool {
		for key, values := range f {
			if !anyValue(values, func(v string) bool { return matches(a, key, v) }) {
				return false
			}
		}
		return true
	}, nil
}

func anyValue(values map[string]bool, ok func(string) bool) bool {
	for v := range values {
		if ok(v) {
			return true
		}
	}
	return false
}

// matches tells whether a matches one filter key=value: its state, a
// holder's user, or a holder's container name or ID (a prefix of 3 or
// more characters, as docker takes IDs).
func matches(a alloc.Assessment, key, value string) bool {
	switch key {
	case "state":
		return a.InState(value)
	case "user":
		if a.Lease != nil && a.ClaimedUser() == value {
			return true
		}
		for _, h := range a.Holders {
			if h.User == value {
				return true
			}
		}
	case "holder":
		for _, h := range a.Holders {
			if h.ContainerName == value || len(value) >= 3 && strings.HasPrefix(h.ContainerID, value) {
				return true
			}
		}
	}
	return false
}

// watchGpuTableFormat is the table of --watch on a terminal: bars for
// memory and utilisation.
const watchGpuTableFormat = "table {{.Index}}\t{{.Name}}\t{{.MemoryBar}}\t{{.UtilBar}}\t{{.Temp}}\t{{.State}}\t{{.Held}}\t{{.Idle}}\t{{.UsedBy}}"

// watchGpus redraws the list every interval until ctx is done (Ctrl-C):
// on a terminal in place, as watch(1) does, else one list after another.
func watchGpus(ctx context.Context, dockerCLI command.Cli, deps Deps, o gpusOptions, match func(alloc.Assessment) bool, every time.Duration) error {
	term := dockerCLI.Out().IsTerminal()
	if term && o.format == "" && !o.quiet {
		o.format = watchGpuTableFormat
	}
	for {
		var buf bytes.Buffer
		err := showGpus(ctx, dockerCLI, deps, o, match, &buf)
		if term {
			_, _ = io.WriteString(dockerCLI.Out(), "\033[H\033[2J") // home, clear
		}
		_, _ = fmt.Fprintf(dockerCLI.Out(), "Every %s: docker perceptron gpus    %s\n\n", every, deps.Now().Format(time.TimeOnly))
		_, _ = dockerCLI.Out().Write(buf.Bytes())
		if err != nil {
			_, _ = fmt.Fprintln(dockerCLI.Err(), "WARNING: "+err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
