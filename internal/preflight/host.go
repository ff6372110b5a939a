package preflight

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit number in the capability sets.
const capSysResource = 24

// StatusLacksSysResource reads the content of a /proc/<pid>/status file and
// reports whether its capability bounding set (the CapBnd line) lacks
// CAP_SYS_RESOURCE. ok is false when there is no CapBnd line to read.
//
// The bounding set, not the effective set, because it is what every process
// started in the same environment inherits and cannot exceed: a user's shell
// has no effective capabilities but a full bounding set on an ordinary host,
// while in a container or sandbox without CAP_SYS_RESOURCE a dockerd
// started there, root or not, lacks it too.
func StatusLacksSysResource(status string) (lacks, ok bool) {
	for line := range strings.Lines(status) {
		rest, found := strings.CutPrefix(line, "CapBnd:")
		if !found {
			continue
		}
		set, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
		if err != nil {
			return false, false
		}
		return set&(1<<capSysResource) == 0, true
	}
	return false, false
}

// LacksSysResource reports whether this process's capability bounding set
// lacks CAP_SYS_RESOURCE (see StatusLacksSysResource): then a local rootful
// dockerd, started in the same environment, cannot raise a container's
// rlimits above their hard limits, and runc fails with "error setting
// rlimit type 8: operation not permitted" for --ulimit memlock=-1. False
// when unknown (no /proc).
func LacksSysResource() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	lacks, _ := StatusLacksSysResource(string(status))
	return lacks
}

// DaemonPATH returns the PATH that the dockerd serving dockerHost started
// with, read from /proc/<pid>/environ; ok is false when it cannot be known:
// the host is not a local unix socket, the socket is served by another
// process than dockerd (systemd socket activation, "-H fd://", or a proxy),
// or its environ is not readable (only the daemon's user and root may read
// it). dockerd registers its --gpus driver when nvidia-container-runtime-hook
// is on that PATH, which may differ from the PATH of the user's shell.
func DaemonPATH(dockerHost string) (path string, ok bool) {
	pid, ok := socketPeerPID(dockerHost)
	if !ok {
		return "", false
	}
	return processPATH("/proc", pid)
}

// LookupDaemonHook reports whether nvidia-container-runtime-hook is on the
// PATH dockerd started with when that can be read (see DaemonPATH), and on
// fallbackPATH (normally this process's PATH) when it cannot: unread says
// so, the answer is then a guess. For a local daemon only.
func LookupDaemonHook(dockerHost, fallbackPATH string) (found, unread bool) {
	if path, ok := DaemonPATH(dockerHost); ok {
		return LookupHook(path), false
	}
	return LookupHook(fallbackPATH), true
}

// processPATH reads PATH from procRoot/<pid>/environ, if the process is
// dockerd. A dockerd without PATH in its environment has an empty PATH.
func processPATH(procRoot string, pid int) (string, bool) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
		return "", false
	}
	environ, err := os.ReadFile(filepath.Join(dir, "environ"))
	if err != nil {
		return "", false
	}
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		if v, found := bytes.CutPrefix(kv, []byte("PATH=")); found {
			return string(v), true
		}
	}
	return "", true
}
