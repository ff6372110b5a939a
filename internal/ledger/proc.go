package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// coreName is the plugin's core binary (meta.CoreName): the program that
// takes claims, and so the only one a lease or ticket may name. The docker
// CLI runs the launcher, which execs it, so a claiming process's
// /proc/PID/comm is this name. A variable only so that this package's tests
// can change it.
var coreName = "perceptron-core"

// commLen is how much of a program's name the kernel keeps as its comm
// (TASK_COMM_LEN less the terminating NUL).
const commLen = 15

// selfName is the base name of this process's executable: a claim taken by
// the program reading it is accepted too. In production that is coreName
// again; in tests of the callers it is their test binary.
var selfName = sync.OnceValue(func() string {
	name, _ := exeName("self")
	return name
})

// procInfo is what /proc tells about a process.
type procInfo struct {
	comm  string
	state byte   // R, S, D, Z, X, ...
	start uint64 // field 22 of /proc/PID/stat: clock ticks after boot
	uid   uint32 // effective
	exe   string // base name of the executable; "" when not readable
}

// readProc reads process pid's entry in /proc.
func readProc(pid int) (procInfo, error) {
	var p procInfo
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return p, err
	}
	if p.comm, p.state, p.start, err = parseStat(stat); err != nil {
		return p, err
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return p, err
	}
	if p.uid, err = parseStatusUID(status); err != nil {
		return p, err
	}
	p.exe, _ = exeName(strconv.Itoa(pid)) // only for the same user, or root
	return p, nil
}

// parseStat reads the name, state and start time from /proc/PID/stat:
// "PID (COMM) STATE PPID ...". COMM may hold spaces and parentheses, so it
// ends at the last ')'.
func parseStat(b []byte) (comm string, state byte, start uint64, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, 0, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return "", 0, 0, errors.New("malformed /proc stat")
	}
	// fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return "", 0, 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return string(b[open+1 : end]), fields[0][0], start, nil
}

// parseStatusUID reads the effective user from /proc/PID/status's
// "Uid:\treal\teffective\tsaved\tfs" line.
func parseStatusUID(b []byte) (uint32, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			uid, err := strconv.ParseUint(f[1], 10, 32)
			return uint32(uid), err
		}
	}
	return 0, errors.New("no Uid line in /proc status")
}

// exeName is the base name of /proc/PID/exe ("self" for this process),
// without the " (deleted)" the kernel adds once the file is replaced (an
// upgrade while a claim runs).
func exeName(pid string) (string, error) {
	target, err := os.Readlink("/proc/" + pid + "/exe")
	if err != nil {
		return "", err
	}
	return filepath.Base(strings.TrimSuffix(target, " (deleted)")), nil
}

// startTime returns process pid's start time, 0 when it cannot be read.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, _, start, _ := parseStat(b)
	return start
}

// liveness is the verdict on the process a lease or ticket names.
type liveness int

const (
	procDead liveness = iota // gone, a zombie, reused, or not a claim's
	procLive
	// procHidden: a process with that PID exists but /proc hides it
	// (mounted with hidepid), so nothing about it can be checked.
	procHidden
)

// running judges whether process pid is the live claimant a file owned by
// owner says it is: it exists and is not a zombie, started at start (so a
// reused PID does not keep a dead run's claim), belongs to owner (root's
// files may name any process), and is the plugin (see nameMatches).
func running(pid int, start uint64, owner uint32) liveness {
	if pid <= 0 || start == 0 {
		return procDead
	}
	p, err := readProc(pid)
	if err != nil {
		// hidepid hides other users' processes; kill(2) still says
		// whether one exists (EPERM: it does, and is not ours).
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			return procDead
		}
		return procHidden
	}
	switch {
	case p.state == 'Z' || p.state == 'X':
		return procDead
	case p.start != start:
		return procDead
	case owner != 0 && p.uid != owner:
		return procDead
	case !nameMatches(p):
		return procDead
	}
	return procLive
}

// nameMatches reports whether p runs coreName (or this very program): its
// comm, which every user can read (and the process can set), is that name,
// and its executable, where this user can read it (same user or root), is
// that name too.
func nameMatches(p procInfo) bool {
	for _, name := range []string{coreName, selfName()} {
		if name != "" && p.comm == name[:min(len(name), commLen)] && (p.exe == "" || p.exe == name) {
			return true
		}
	}
	return false
}
