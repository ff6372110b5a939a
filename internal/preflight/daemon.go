package preflight

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/moby/client"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// DaemonInfo is what the checks need to know about the docker daemon.
type DaemonInfo struct {
	// Key tells two daemons on one host apart (see ledger.DaemonKey).
	Key             string
	ServerVersion   string // "29.0.1"
	APIVersion      string // negotiated on Ping, "1.52"
	OperatingSystem string // "Ubuntu 24.04.3 LTS", "Docker Desktop"
	// Local is true when the daemon runs on this host, so that this host's
	// files (CDI specs, PATH, /dev, NVML) are the daemon's.
	Local    bool
	Rootless bool
	// Runtimes are the names of the daemon's OCI runtimes, sorted.
	Runtimes       []string
	DefaultRuntime string
	CDISpecDirs    []string
	// CDIDevices are the NVIDIA GPU CDI devices ("nvidia.com/gpu=0") the
	// daemon reports having discovered (docker 28.3+ with CDI enabled).
	CDIDevices []string
	// NvidiaCDISpecs are the spec files of kind nvidia.com/gpu found in
	// CDISpecDirs; read only for a local daemon.
	NvidiaCDISpecs []string
	// NvidiaCDINames are the device names those spec files list ("0",
	// "GPU-…", "all"; see CDISpecDevices).
	NvidiaCDINames []string
	// HookOnPath is true when nvidia-container-runtime-hook is on the
	// PATH dockerd started with (it registers its "nvidia" --gpus driver
	// when it finds it there); meaningful only for a local daemon. See
	// LookupDaemonHook.
	HookOnPath bool
	// HookPathUnread: dockerd's environment could not be read (another
	// user's process), so HookOnPath was looked up on this process's PATH:
	// a guess.
	HookPathUnread bool
	CgroupDriver   string // "systemd", "cgroupfs"
	CgroupVersion  string // "1", "2"
}

// HasNvidiaRuntime reports whether the daemon has a runtime named nvidia.
func (d DaemonInfo) HasNvidiaRuntime() bool {
	return slices.Contains(d.Runtimes, "nvidia")
}

// HasCDI reports whether the daemon can inject NVIDIA GPUs through CDI.
func (d DaemonInfo) HasCDI() bool {
	return len(d.CDIDevices) > 0 || len(d.NvidiaCDISpecs) > 0
}

// API is the part of the docker client DaemonFacts uses;
// client.APIClient satisfies it.
type API interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
}

// DaemonFacts asks the daemon about itself. dockerHost is the endpoint the
// CLI talks to (dockerCLI.DockerEndpoint().Host); when it is local, the
// daemon's CDI spec directories are read too. HookOnPath is left to the
// caller (see LookupDaemonHook): reading dockerd's PATH takes another
// connection and, often, root.
func DaemonFacts(ctx context.Context, api API, dockerHost string) (DaemonInfo, error) {
	ping, err := api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return DaemonInfo{}, fmt.Errorf("cannot reach the docker daemon at %s: %w", displayHost(dockerHost), err)
	}
	res, err := api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return DaemonInfo{}, fmt.Errorf("cannot read docker info from %s: %w", displayHost(dockerHost), err)
	}
	info := res.Info
	d := DaemonInfo{
		Key:             ledger.DaemonKey(info.ID, info.DockerRootDir),
		ServerVersion:   info.ServerVersion,
		APIVersion:      ping.APIVersion,
		OperatingSystem: info.OperatingSystem,
		Local:           IsLocal(dockerHost, info.OperatingSystem),
		DefaultRuntime:  info.DefaultRuntime,
		CDISpecDirs:     info.CDISpecDirs,
		CgroupDriver:    info.CgroupDriver,
		CgroupVersion:   info.CgroupVersion,
	}
	for name := range info.Runtimes {
		d.Runtimes = append(d.Runtimes, name)
	}
	slices.Sort(d.Runtimes)
	for _, opt := range info.SecurityOptions {
		if slices.Contains(strings.Split(opt, ","), "name=rootless") {
			d.Rootless = true
		}
	}
	for _, dev := range info.DiscoveredDevices {
		if strings.HasPrefix(dev.ID, "nvidia.com/gpu=") {
			d.CDIDevices = append(d.CDIDevices, dev.ID)
		}
	}
	if d.Local {
		d.NvidiaCDISpecs = ScanCDIDirs(info.CDISpecDirs)
		d.NvidiaCDINames = CDISpecDevices(d.NvidiaCDISpecs)
	}
	return d, nil
}

func displayHost(h string) string {
	if h == "" {
		return "the default socket"
	}
	return h
}

// IsLocal is the one rule of "the daemon runs on this host", so that this
// host's NVML, files and limits are the daemon's: its address is on this
// machine (IsLocalHost) and it is not Docker Desktop, whose socket is local
// but whose daemon runs in a VM. operatingSystem is docker info's; "" when
// the daemon was not asked.
func IsLocal(dockerHost, operatingSystem string) bool {
	return IsLocalHost(dockerHost) && operatingSystem != "Docker Desktop"
}

// IsLocalHost reports whether a docker host address is on this machine:
// unix://, npipe:// and fd:// are, and so is tcp:// to a loopback address;
// ssh:// and any other tcp:// are not. "" is the default socket.
func IsLocalHost(dockerHost string) bool {
	if dockerHost == "" {
		return true
	}
	u, err := url.Parse(dockerHost)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "unix", "npipe", "fd":
		return true
	case "tcp", "http", "https":
		host := u.Hostname()
		if host == "localhost" {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	default:
		return false
	}
}

// HookName is the binary dockerd looks for to provide --gpus.
const HookName = "nvidia-container-runtime-hook"

// LookupHook reports whether nvidia-container-runtime-hook is an executable
// file in one of pathEnv's directories (a PATH value).
func LookupHook(pathEnv string) bool {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, HookName))
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return true
		}
	}
	return false
}

// cdiKindGPU is the CDI kind nvidia-ctk generates for GPUs.
const cdiKindGPU = "nvidia.com/gpu"

// ScanCDIDirs returns the CDI spec files (.yaml, .yml, .json) in dirs whose
// kind is nvidia.com/gpu. Unreadable directories and files are skipped: a
// spec the daemon cannot read either is no spec.
func ScanCDIDirs(dirs []string) []string {
	var found []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
			default:
				continue
			}
			path := filepath.Join(dir, e.Name())
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				if specKind(path) == cdiKindGPU {
					found = append(found, path)
				}
			}
		}
	}
	return found
}

// specKind returns the top-level "kind" of a CDI spec, YAML or JSON, from
// its first 64 KiB (kind comes first in generated specs; whole specs can be
// megabytes).
func specKind(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		// JSON specs are often one line: look for the key anywhere.
		if i := strings.Index(line, `"kind"`); i >= 0 {
			return quotedValue(line[i+len(`"kind"`):])
		}
		if rest, ok := strings.CutPrefix(line, "kind:"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"'`)
		}
	}
	return ""
}

// quotedValue reads `: "value"` and returns value.
func quotedValue(s string) string {
	s = strings.TrimSpace(s)
	s, ok := strings.CutPrefix(s, ":")
	if !ok {
		return ""
	}
	s = strings.TrimSpace(s)
	s, ok = strings.CutPrefix(s, `"`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(s, `"`)
	return v
}

// NvidiaDevCharLinks reports whether devDir/char ("/dev/char") has links to
// NVIDIA device nodes, which runc's systemd device rules need to keep GPU
// access across `systemctl daemon-reload` (nvidia-ctk system
// create-dev-char-symlinks makes them).
func NvidiaDevCharLinks(devDir string) bool {
	charDir := filepath.Join(devDir, "char")
	entries, err := os.ReadDir(charDir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(filepath.Join(charDir, e.Name()))
		if err == nil && strings.HasPrefix(filepath.Base(target), "nvidia") {
			return true
		}
	}
	return false
}
