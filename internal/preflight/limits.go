package preflight

import (
	"fmt"

	"github.com/docker/go-units"
)

// defaultShmBytes is docker's /dev/shm size when --shm-size is not given.
const defaultShmBytes = 64 << 20

// checkMemlock: (c) a memlock limit the daemon will not be allowed to set.
// Raising a hard rlimit takes CAP_SYS_RESOURCE. A rootful dockerd normally
// has it and may set any limit; a rootless one cannot go above the hard limit
// of the user who started it, nor can a rootful one started where the
// capability is not to be had (a container, a sandbox). runc then fails with
// "error setting rlimit type 8: operation not permitted".
func checkMemlock(in Input) []Finding {
	if !in.Daemon.Rootless && !in.HostLacksSysResource {
		return nil
	}
	for _, spec := range in.Ulimits {
		ul, err := units.ParseUlimit(spec)
		if err != nil || ul.Name != "memlock" {
			continue
		}
		unlimited := ul.Soft < 0 || ul.Hard < 0
		switch limit := in.HostMemlockHard; {
		case limit == -1: // the daemon may lock any amount
			return nil
		case limit == 0 && !unlimited: // unknown limit: only unlimited is surely refused
			return nil
		case limit > 0 && !unlimited && ul.Soft <= limit && ul.Hard <= limit:
			return nil
		default:
			return []Finding{memlockFinding(spec, limit, in.Daemon.Rootless)}
		}
	}
	return nil
}

const rlimitRefused = `"error setting rlimit type 8: operation not permitted"`

func memlockFinding(spec string, hard int64, rootless bool) Finding {
	limit := "its hard limit (ulimit -H -l)"
	if hard > 0 {
		limit = size(hard)
	}
	f := Finding{Check: "memlock", Level: Warn}
	if rootless {
		f.Message = fmt.Sprintf("--ulimit %s on a rootless daemon: the daemon cannot raise memlock above %s and the container would fail with %s", spec, limit, rlimitRefused)
	} else {
		f.Message = fmt.Sprintf("--ulimit %s: containers cannot raise memlock above %s here (the host withholds CAP_SYS_RESOURCE, as containers and sandboxes do, even from a rootful daemon); the container would fail with %s", spec, limit, rlimitRefused)
	}
	if hard > 0 {
		f.Fix = fmt.Sprintf("use --ulimit memlock=%d (this host's hard limit, %s) or drop --ulimit memlock", hard, size(hard))
	} else {
		f.Fix = "use --ulimit memlock=<the hard limit of `ulimit -H -l`, in bytes> or drop --ulimit memlock"
	}
	if rootless {
		f.Fix += "; to allow more, raise memlock for the daemon's user (LimitMEMLOCK= in its systemd unit, or /etc/security/limits.conf) and restart it"
	} else {
		f.Fix += "; to allow more, start the daemon where it has CAP_SYS_RESOURCE or a higher hard memlock limit (LimitMEMLOCK= in its systemd unit, or the limits of the container it runs in)"
	}
	return f
}

// ipcHostCaveat is why --shm-size is the fix we suggest first on a shared
// server.
const ipcHostCaveat = "--ipc=host also works, but shares the host's /dev/shm (unbounded) and IPC namespace with every container using it"

// checkShm: (d) a /dev/shm too small for DataLoader workers.
func checkShm(in Input) []Finding {
	if in.IPCHost {
		return nil
	}
	shm := in.ShmSizeBytes
	if shm == 0 {
		shm = in.PresetShmSizeBytes
	}
	switch {
	case in.ShmSizeBytes > 0 && in.PresetShmSizeBytes > 0 && in.ShmSizeBytes < in.PresetShmSizeBytes:
		return []Finding{{
			Check: "shm", Level: Warn,
			Message: fmt.Sprintf("--shm-size %s is below the preset's %s; DataLoader workers may die with \"bus error\"",
				size(in.ShmSizeBytes), size(in.PresetShmSizeBytes)),
			Fix: "drop --shm-size to keep the preset's size, or pass a larger one; " + ipcHostCaveat,
		}}
	case in.TrainingPreset && (shm == 0 || shm <= defaultShmBytes):
		if shm == 0 {
			shm = defaultShmBytes
		}
		return []Finding{{
			Check: "shm", Level: Warn,
			Message: fmt.Sprintf("/dev/shm is %s with a training preset; DataLoader workers may die with \"bus error\"", size(shm)),
			Fix:     "pass --shm-size=16g (or more): a private /dev/shm of bounded size; " + ipcHostCaveat,
		}}
	}
	return nil
}

func size(b int64) string {
	return units.BytesSize(float64(b))
}

// checkAllGPUs: (e) settings that expose every GPU despite a GPU choice.
func checkAllGPUs(in Input) []Finding {
	if !in.GPUChoice {
		return nil
	}
	var why string
	switch {
	case in.Privileged:
		why = "--privileged"
	case envMap(in.Env)["NVIDIA_VISIBLE_DEVICES"] == "all":
		// Only the run's env: CUDA images set it to "all" themselves and a
		// GPU request overrides theirs.
		why = "NVIDIA_VISIBLE_DEVICES=all"
	default:
		return nil
	}
	fix := "drop NVIDIA_VISIBLE_DEVICES=all from -e, --env-file and the preset"
	if in.Privileged {
		fix = "drop --privileged; add only what the workload needs with --cap-add and --device"
	}
	return []Finding{{
		Check: "all-gpus", Level: Warn,
		Message: why + " with a GPU choice: the container will see every GPU on the host, not only the ones chosen",
		Fix:     fix,
	}}
}
