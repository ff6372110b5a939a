package gpus

import (
	"bufio"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Labels that docker perceptron sets on the containers it creates.
const (
	// LabelUser is who started the container.
	LabelUser = "com.perceptron.user"
	// LabelGPUs is the comma-separated UUIDs of the GPUs given to it.
	LabelGPUs = "com.perceptron.gpus"
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
// cached by container ID (see ReservationCache).
type Reservation struct {
	User string `json:"user,omitempty"`
	// GPUs are GPU indexes or UUIDs as the configuration writes them.
	GPUs []string `json:"gpus,omitempty"`
	// All is set when every GPU is requested.
	All bool `json:"all,omitempty"`
	// First is a count of GPUs requested without naming them: docker's
	// nvidia driver gives the first First GPUs by index.
	First int `json:"first,omitempty"`
}

// Holds reports whether the reservation names any GPU.
func (r Reservation) Holds() bool {
	return r.All || r.First > 0 || len(r.GPUs) > 0
}

// Indexes resolves the reservation against the inventory, in index order.
// Names of GPUs that are not in inv (gone, or on another host) are dropped.
func (r Reservation) Indexes(inv Inventory) []int {
	var idx []int
	for _, d := range inv.Devices {
		switch {
		case r.All, d.Index < r.First:
			idx = append(idx, d.Index)
			continue
		}
		for _, g := range r.GPUs {
			if matchesGPU(g, d) {
				idx = append(idx, d.Index)
				break
			}
		}
	}
	return idx
}

// matchesGPU reports whether a device name from a configuration (index,
// UUID, or "index:mig" as NVIDIA_VISIBLE_DEVICES allows) names d.
func matchesGPU(name string, d Device) bool {
	if strings.HasPrefix(name, "GPU-") {
		return d.UUID != "" && strings.EqualFold(name, d.UUID)
	}
	name, _, _ = strings.Cut(name, ":") // MIG device "0:1" is on GPU 0
	n, err := strconv.Atoi(name)
	return err == nil && n == d.Index
}

// ReservationOf reads what a container's configuration holds: GPU device
// requests (docker run --gpus, or CDI nvidia.com/gpu devices),
// NVIDIA_VISIBLE_DEVICES for the nvidia runtime, and the LabelGPUs label;
// and its user: LabelUser, else Config.User.
func ReservationOf(ctr container.InspectResponse) Reservation {
	var r Reservation
	var labels map[string]string
	var env []string
	if ctr.Config != nil {
		labels, env, r.User = ctr.Config.Labels, ctr.Config.Env, ctr.Config.User
	}
	if u := labels[LabelUser]; u != "" {
		r.User = u
	}
	r.addList(labels[LabelGPUs])

	var requests []container.DeviceRequest
	if ctr.HostConfig != nil {
		requests = ctr.HostConfig.DeviceRequests
	}
	requested := r.addDeviceRequests(requests)
	// Docker's nvidia driver overrides NVIDIA_VISIBLE_DEVICES with the
	// request's devices, so the variable counts only without a request.
	if !requested {
		r.addVisibleDevices(env)
	}
	slices.Sort(r.GPUs)
	r.GPUs = slices.Compact(r.GPUs)
	return r
}

// addDeviceRequests adds GPU device requests and reports whether there were any.
func (r *Reservation) addDeviceRequests(reqs []container.DeviceRequest) bool {
	found := false
	for _, req := range reqs {
		if req.Driver == "cdi" {
			for _, id := range req.DeviceIDs {
				if name, ok := strings.CutPrefix(id, "nvidia.com/gpu="); ok {
					found = true
					r.addList(name)
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
				r.addList(id)
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

// addVisibleDevices reads NVIDIA_VISIBLE_DEVICES (the last one wins, as in
// docker's env handling).
func (r *Reservation) addVisibleDevices(env []string) {
	value, set := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NVIDIA_VISIBLE_DEVICES="); ok {
			value, set = v, true
		}
	}
	if set {
		r.addList(value)
	}
}

// addList adds a comma-separated list of GPUs: indexes, UUIDs, "all";
// "none", "void" and "" hold nothing.
func (r *Reservation) addList(list string) {
	for item := range strings.SplitSeq(list, ",") {
		switch item = strings.TrimSpace(item); item {
		case "", "none", "void":
		case "all":
			r.All = true
		default:
			r.GPUs = append(r.GPUs, item)
		}
	}
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
		if u, err := user.LookupId(fields[0]); err == nil {
			return u.Username
		}
		return "uid " + fields[0]
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
