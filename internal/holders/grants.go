package holders

import (
	"os"
	"strconv"

	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// grantHolders returns the containers of other daemons on this host that
// still hold GPUs by their grants (see ledger.Grant), keyed by container ID
// (or "claim TOKEN" while the run creates it). A grant of another daemon
// holds while its run lives; then while a process of its container runs on
// this host (its cgroup names the container); and, for `create`, until its
// owner, whose docker perceptron sees that daemon, removes it. Grants of
// this daemon are checked against its own containers (live) and pruned by
// their owner when their container no longer holds its GPUs.
func (f Finder) grantHolders(live map[string]Container) (map[string]Container, error) {
	grants, err := ledger.Grants(f.StateDir)
	if err != nil {
		return nil, err
	}
	out := map[string]Container{}
	var running map[string]bool // containers with a process on this host, read once
	for _, g := range grants {
		if g.Daemon == f.DaemonID && f.DaemonID != "" {
			f.prune(g, live)
			continue
		}
		holds := g.RunAlive() || g.ContainerID != "" && g.Command == "create"
		if !holds && g.ContainerID != "" {
			if running == nil {
				running = containersWithProcesses(f.ProcRoot)
			}
			holds = running[g.ContainerID]
		}
		if !holds {
			continue
		}
		key, name := g.ContainerID, ""
		if key == "" {
			key, name = "claim "+g.Token, "a container being created"
		}
		out[key] = Container{
			Name:        name,
			Reservation: Reservation{User: UserName(strconv.Itoa(g.UID)), GPUs: g.UUIDs, Format: reservationFormat},
			OtherDaemon: true,
		}
	}
	return out, nil
}

// prune removes a grant of this daemon, of ours, whose container no longer
// holds its GPUs: its run is over, and the container is gone or stopped.
func (f Finder) prune(g ledger.Grant, live map[string]Container) {
	if g.UID != os.Geteuid() || g.RunAlive() {
		return
	}
	if _, ok := live[g.ContainerID]; ok && g.ContainerID != "" {
		return
	}
	_ = ledger.RemoveGrant(f.StateDir, g.Token)
}

// containersWithProcesses returns the IDs of the containers that have a
// process on this host, from each process's cgroup under procRoot.
func containersWithProcesses(procRoot string) map[string]bool {
	ids := map[string]bool{}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return ids
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if id := containerOfProcess(procRoot, pid); id != "" {
			ids[id] = true
		}
	}
	return ids
}
