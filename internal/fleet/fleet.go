// Package fleet is a set of GPU servers, one docker context each, and the
// small versioned machine interface through which docker perceptron asks
// each server's own docker perceptron about its GPUs and claims them there,
// under that server's lock: a server's NVML and ledger are only readable on
// it. The choice of a server is a pure function of what they answer.
package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Host is one server of the fleet: a docker context, and the command that
// starts its docker perceptron's machine interface (see Command).
type Host struct {
	Context string
	// Endpoint is the context's docker endpoint ("ssh://me@gpu3",
	// "unix:///var/run/docker.sock"); filled from the context store.
	Endpoint string
	// Command, when the fleet file gives one, starts the host's machine
	// interface ("ssh -J jump gpu3 docker perceptron host-api"); nil means
	// the default for the endpoint (see Reach).
	Command []string
}

// file is the fleet file's format.
type file struct {
	Hosts []struct {
		Context string   `yaml:"context"`
		Command []string `yaml:"command"`
	} `yaml:"hosts"`
}

// FilePath is the user's fleet file: ${DOCKER_CONFIG}/perceptron/fleet.yaml.
func FilePath(dockerConfigDir string) string {
	return filepath.Join(dockerConfigDir, "perceptron", "fleet.yaml")
}

// ErrNoFleet is returned by Load when there is no fleet file.
var ErrNoFleet = errors.New("no fleet")

// Load reads the fleet file at path.
func Load(path string) ([]Host, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no fleet file at %s; name the hosts with --context NAME,NAME or write the file (see the README's fleet section)", ErrNoFleet, path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the fleet file: %w", err)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid fleet file %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var hosts []Host
	seen := map[string]bool{}
	for i, h := range f.Hosts {
		switch {
		case h.Context == "":
			return nil, fmt.Errorf("invalid fleet file %s: host %d has no context", path, i+1)
		case seen[h.Context]:
			return nil, fmt.Errorf("invalid fleet file %s: context %s is listed twice", path, h.Context)
		}
		seen[h.Context] = true
		hosts = append(hosts, Host{Context: h.Context, Command: h.Command})
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("invalid fleet file %s: it lists no hosts", path)
	}
	return hosts, nil
}

// FromContexts is the fleet named on the command line ("gpu1,gpu2"); the
// fleet file, when there is one, still gives each its command.
func FromContexts(list string, fromFile []Host) ([]Host, error) {
	var hosts []Host
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		h := Host{Context: name}
		for _, f := range fromFile {
			if f.Context == name {
				h.Command = f.Command
			}
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, errors.New("invalid --context: name one or more docker contexts, separated by commas")
	}
	return hosts, nil
}

// How a host is reached.
const (
	ViaCommand = "command" // the fleet file's
	ViaSSH     = "ssh"     // the context's ssh:// endpoint
	ViaLocal   = "local"   // the daemon is on this machine: answered here
)

// Reach says how h's machine interface is started: the fleet file's
// command; for an ssh:// context, ssh to the same user, host and port,
// with the user's own ssh settings (BatchMode: never a password prompt in
// the middle of a fleet command); for a daemon on this machine (a unix
// socket), here, in this process (command nil). Another endpoint (tcp://)
// cannot be reached: its NVML is on a host docker perceptron cannot run on.
func Reach(h Host) (via string, command []string, err error) {
	if len(h.Command) > 0 {
		return ViaCommand, h.Command, nil
	}
	u, err := url.Parse(h.Endpoint)
	if err != nil {
		return "", nil, fmt.Errorf("context %s: cannot read its endpoint %q", h.Context, h.Endpoint)
	}
	switch u.Scheme {
	case "unix", "npipe":
		return ViaLocal, nil, nil
	case "ssh":
		cmd := []string{"ssh", "-o", "BatchMode=yes"}
		if u.User != nil {
			cmd = append(cmd, "-l", u.User.Username())
		}
		if u.Port() != "" {
			cmd = append(cmd, "-p", u.Port())
		}
		return ViaSSH, append(cmd, "--", u.Hostname(), "docker", "perceptron", HostAPICommand), nil
	}
	return "", nil, fmt.Errorf("context %s: its daemon is at %s, and docker perceptron on that host cannot be reached from there: give its command in the fleet file (hosts: - context: %s, command: [ssh, HOST, docker, perceptron, %s])", h.Context, h.Endpoint, h.Context, HostAPICommand)
}
