package holders

import (
	"bufio"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/labels"
)

// ContainerIDFromCgroup returns the ID of the container that a process
// belongs to, from the content of /proc/PID/cgroup, or "" for a process
// outside containers. It understands cgroup v1 and v2, docker's cgroupfs
// ("/docker/ID") and systemd ("/system.slice/docker-ID.scope") drivers and
// nested paths (kubepods, docker in docker): the last 64-hex-digit ID of a
// path is the innermost container.
func ContainerIDFromCgroup(content string) string {
	for line := range strings.Lines(content) {
		// hierarchy-ID:controllers:path; the path may itself hold colons.
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if id := lastContainerID(parts[2]); id != "" {
			return id
		}
	}
	return ""
}

func lastContainerID(path string) string {
	fields := strings.FieldsFunc(path, func(r rune) bool { return !isHex(r) })
	for _, f := range slices.Backward(fields) {
		if len(f) == 64 {
			return f
		}
	}
	return ""
}

func isHex(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'f'
}

// Reservation is what a container's configuration says about GPUs and its
// user. A container's configuration never changes, so a Reservation can be
// cached by container ID (see ReservationCache); what depends on the daemon
// (its default runtime) is decided when the reservation is resolved.
type Reservation struct {
	User string `json:"user,omitempty"`
	// GPUs are GPU indexes or UUIDs as the configuration writes them, from
	// device requests and the labels.GPUs label: they hold whatever the runtime.
	GPUs []string `json:"gpus,omitempty"`
	// All is set when every GPU is requested.
	All bool `json:"all,omitempty"`
	// First is a count of GPUs requested without naming them: docker's
	// nvidia driver gives the first First GPUs by index.
	First int `json:"first,omitempty"`
	// EnvGPUs and EnvAll are what NVIDIA_VISIBLE_DEVICES names when no
	// device request overrides it. Only the NVIDIA runtime acts on the
	// variable, so they hold GPUs only when it runs the container (see
	// EnvApplies): NGC images set NVIDIA_VISIBLE_DEVICES=all in their own
	// env, and under runc such a container has no GPU at all.
	EnvGPUs []string `json:"env_gpus,omitempty"`
	EnvAll  bool     `json:"env_all,omitempty"`
	// Runtime is the container's HostConfig.Runtime; "" means the daemon's
	// default (a created container may not have it recorded yet).
	Runtime string `json:"runtime,omitempty"`
	// Privileged: the container sees every device of the host, every GPU
	// with it, without asking for one.
	Privileged bool `json:"privileged,omitempty"`
	// Format tells reservations cached by this version (reservationFormat)
	// from older ones, which are read again.
	Format int `json:"format,omitempty"`
}

// EnvApplies reports whether NVIDIA_VISIBLE_DEVICES gives the container
// GPUs: its runtime, or the daemon's default runtime when it has none, is
// NVIDIA's ("nvidia", or any name containing it). An unknown default
// runtime ("") counts as NVIDIA's, since a GPU wrongly taken for free could
// be given to a second user.
func (r Reservation) EnvApplies(defaultRuntime string) bool {
	rt := r.Runtime
	if rt == "" {
		if defaultRuntime == "" {
			return true
		}
		rt = defaultRuntime
	}
	return strings.Contains(strings.ToLower(rt), "nvidia")
}

// Holds reports whether the reservation names any GPU on a daemon whose
// default runtime is defaultRuntime.
func (r Reservation) Holds(defaultRuntime string) bool {
	if r.All || r.First > 0 || len(r.GPUs) > 0 {
		return true
	}
	return (r.EnvAll || len(r.EnvGPUs) > 0) && r.EnvApplies(defaultRuntime)
}

// Indexes resolves the reservation against the inventory, in index order,
// on a daemon whose default runtime is defaultRuntime. Names of GPUs that
// are not in inv (gone, or on another host) are dropped.
func (r Reservation) Indexes(inv gpus.Inventory, defaultRuntime string) []int {
	all, names := r.All, r.GPUs
	if r.EnvApplies(defaultRuntime) {
		all = all || r.EnvAll
		names = append(slices.Clip(names), r.EnvGPUs...)
	}
	var idx []int
	for _, d := range inv.Devices {
		switch {
		case all, d.Index < r.First:
			idx = append(idx, d.Index)
			continue
		}
		for _, g := range names {
			if matchesGPU(g, d) {
				idx = append(idx, d.Index)
				break
			}
		}
	}
	return idx
}

// matchesGPU reports whether a device name from a configuration (index,
// UUID, or a MIG device of d: its UUID, or "index:mig" as
// NVIDIA_VISIBLE_DEVICES allows) names d.
func matchesGPU(name string, d gpus.Device) bool {
	if isMIGUUID(name) {
		return slices.ContainsFunc(d.MIG, func(m gpus.MIGDevice) bool { return m.UUID != "" && strings.EqualFold(name, m.UUID) })
	}
	if strings.HasPrefix(name, "GPU-") {
		return d.UUID != "" && strings.EqualFold(name, d.UUID)
	}
	name, _, _ = strings.Cut(name, ":") // MIG device "0:1" is on GPU 0
	n, err := strconv.Atoi(name)
	return err == nil && n == d.Index
}

// isMIGUUID reports whether a device name is a MIG device's UUID.
func isMIGUUID(name string) bool {
	return len(name) > 4 && strings.EqualFold(name[:4], "MIG-")
}

// namesWhole reports whether a device name names d itself (its index or
// UUID), not one of its MIG devices.
func namesWhole(name string, d gpus.Device) bool {
	if strings.HasPrefix(name, "GPU-") {
		return d.UUID != "" && strings.EqualFold(name, d.UUID)
	}
	n, err := strconv.Atoi(name)
	return err == nil && n == d.Index
}

// namesSlice reports whether a device name names the MIG device m of d:
// by UUID, or as "GPU:MIG" indexes.
func namesSlice(name string, d gpus.Device, m gpus.MIGDevice) bool {
	if isMIGUUID(name) {
		return m.UUID != "" && strings.EqualFold(name, m.UUID)
	}
	g, j, ok := strings.Cut(name, ":")
	return ok && g == strconv.Itoa(d.Index) && j == strconv.Itoa(m.Index)
}

// Slices resolves the reservation to the MIG devices of inv it holds, by
// UUID in upper case: those it names, and every one of a GPU it holds
// whole (every GPU, the first N, or the GPU by index or UUID), on a daemon
// whose default runtime is defaultRuntime.
func (r Reservation) Slices(inv gpus.Inventory, defaultRuntime string) []string {
	all, names := r.All, r.GPUs
	if r.EnvApplies(defaultRuntime) {
		all = all || r.EnvAll
		names = append(slices.Clip(names), r.EnvGPUs...)
	}
	var out []string
	for _, d := range inv.Devices {
		whole := all || d.Index < r.First || slices.ContainsFunc(names, func(n string) bool { return namesWhole(n, d) })
		for _, m := range d.MIG {
			if m.UUID != "" && (whole || slices.ContainsFunc(names, func(n string) bool { return namesSlice(n, d, m) })) {
				out = append(out, strings.ToUpper(m.UUID))
			}
		}
	}
	return out
}

// ReservationOf reads what a container's configuration holds: GPU device
// requests (docker run --gpus, or CDI nvidia.com/gpu devices), the labels.GPUs
// label, and NVIDIA_VISIBLE_DEVICES with the runtime that decides whether it
// counts; and its user: labels.User, else Config.User.
func ReservationOf(ctr container.InspectResponse) Reservation {
	var r Reservation
	var lbls map[string]string
	var env []string
	if ctr.Config != nil {
		lbls, env, r.User = ctr.Config.Labels, ctr.Config.Env, ctr.Config.User
	}
	if u := lbls[labels.User]; u != "" {
		r.User = u
	}

	var requests []container.DeviceRequest
	if ctr.HostConfig != nil {
		requests = ctr.HostConfig.DeviceRequests
		r.Runtime, r.Privileged = ctr.HostConfig.Runtime, ctr.HostConfig.Privileged
	}
	requested := r.addDeviceRequests(requests)
	// Docker's nvidia driver overrides NVIDIA_VISIBLE_DEVICES with the
	// request's devices, so the variable counts only without a request.
	if !requested {
		if v, ok := visibleDevices(env); ok {
			r.EnvGPUs, r.EnvAll = addList(nil, false, v)
		}
	}
	if !r.EnvAll && len(r.EnvGPUs) == 0 {
		r.Runtime = "" // it decides nothing
	}
	r.GPUs = sortedSet(r.GPUs)
	r.EnvGPUs = sortedSet(r.EnvGPUs)
	r.Format = reservationFormat
	return r
}

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// addDeviceRequests adds GPU device requests and reports whether there were any.
func (r *Reservation) addDeviceRequests(reqs []container.DeviceRequest) bool {
	found := false
	for _, req := range reqs {
		if req.Driver == "cdi" {
			for _, id := range req.DeviceIDs {
				if name, ok := strings.CutPrefix(id, "nvidia.com/gpu="); ok {
					found = true
					r.GPUs, r.All = addList(r.GPUs, r.All, name)
				}
			}
			continue
		}
		if !isGPURequest(req) {
			continue
		}
		found = true
		switch {
		case len(req.DeviceIDs) > 0:
			for _, id := range req.DeviceIDs {
				r.GPUs, r.All = addList(r.GPUs, r.All, id)
			}
		case req.Count < 0:
			r.All = true
		case req.Count > r.First:
			r.First = req.Count
		}
	}
	return found
}

func isGPURequest(req container.DeviceRequest) bool {
	if req.Driver == "nvidia" {
		return true
	}
	for _, caps := range req.Capabilities {
		if slices.Contains(caps, "gpu") {
			return true
		}
	}
	return false
}

// visibleDevices returns NVIDIA_VISIBLE_DEVICES's value (the last one
// wins, as in docker's env handling) and whether it is set.
func visibleDevices(env []string) (value string, set bool) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NVIDIA_VISIBLE_DEVICES="); ok {
			value, set = v, true
		}
	}
	return value, set
}

// addList adds a comma-separated list of GPUs (indexes, UUIDs, "all") to
// names and all; "none", "void" and "" hold nothing.
func addList(names []string, all bool, list string) ([]string, bool) {
	for item := range strings.SplitSeq(list, ",") {
		switch item = strings.TrimSpace(item); item {
		case "", "none", "void":
		case "all":
			all = true
		default:
			names = append(names, item)
		}
	}
	return names, all
}

// UserName names the user with the numeric uid, or says "uid N" when the
// name is unknown.
func UserName(uid string) string {
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return "uid " + uid
}

// CurrentUser names the user who runs docker perceptron, for the label that
// tells other users who holds a container's GPUs; "" when unknown.
func CurrentUser() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.Username
}

// processOwner returns the user running a host process ("alice", or
// "uid 1000" when the name is unknown), or "" when procRoot has no such
// process.
func processOwner(procRoot string, pid int) string {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Uid:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return ""
		}
		return UserName(fields[0])
	}
	return ""
}

// containerOfProcess reads procRoot/PID/cgroup; "" when the process is
// outside containers or gone.
func containerOfProcess(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	return ContainerIDFromCgroup(string(b))
}
