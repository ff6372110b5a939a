package preflight

import (
	"fmt"
	"strings"
)

// toolkitInstall is the NVIDIA Container Toolkit's install guide.
const toolkitInstall = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"

// dockerNoGPUError is what docker says when it has no way to provide GPUs.
const dockerNoGPUError = `could not select device driver "" with capabilities: [[gpu]]`

// GPUProvider reports whether the daemon can give containers NVIDIA GPUs:
// through the nvidia runtime, NVIDIA CDI specs, or dockerd's built-in --gpus
// driver (nvidia-container-runtime-hook on PATH). For a remote daemon only
// the first two can be seen, so their absence is a warning, not a failure.
func GPUProvider(d DaemonInfo) Finding {
	const check = "gpu-runtime"
	var have []string
	if d.HasNvidiaRuntime() {
		have = append(have, "nvidia runtime")
	}
	if len(d.CDIDevices) > 0 {
		have = append(have, fmt.Sprintf("CDI (%d nvidia.com/gpu devices)", len(d.CDIDevices)))
	} else if len(d.NvidiaCDISpecs) > 0 {
		have = append(have, "CDI ("+strings.Join(d.NvidiaCDISpecs, ", ")+")")
	}
	switch {
	case d.Local && d.HookOnPath && d.HookPathUnread:
		have = append(have, HookName+" (on your PATH; dockerd's could not be read)")
	case d.Local && d.HookOnPath:
		have = append(have, HookName)
	}
	if len(have) > 0 {
		return Finding{Check: check, Level: OK, Message: strings.Join(have, ", ")}
	}
	if !d.Local {
		return Finding{
			Check: check, Level: Warn,
			Message: "the remote daemon reports no nvidia runtime and no NVIDIA CDI devices; GPU containers may fail with: " + dockerNoGPUError,
			Fix:     "on the daemon's host: " + toolkitFix(d.Rootless),
		}
	}
	if d.HookPathUnread {
		// Not what was checked: dockerd's own PATH could not be read.
		return Finding{
			Check: check, Level: Warn,
			Message: "unknown whether dockerd can give containers GPUs: no nvidia runtime, no NVIDIA CDI spec, and " +
				"dockerd's environment (its PATH, for " + HookName + ") cannot be read by this user",
			Fix: "run 'sudo docker perceptron doctor' to check; if GPU containers fail with: " + dockerNoGPUError + ", " + toolkitFix(d.Rootless),
		}
	}
	return Finding{
		Check: check, Level: Fail,
		Message: "the daemon cannot give containers GPUs: no nvidia runtime, no NVIDIA CDI spec in " +
			dirList(d.CDISpecDirs) + ", no " + HookName + " on dockerd's PATH; docker would fail with: " + dockerNoGPUError,
		Fix: toolkitFix(d.Rootless),
	}
}

func dirList(dirs []string) string {
	if len(dirs) == 0 {
		return "the CDI directories (none configured)"
	}
	return strings.Join(dirs, ", ")
}

// toolkitFix is how to install and register the NVIDIA Container Toolkit.
func toolkitFix(rootless bool) string {
	fix := "install the NVIDIA Container Toolkit (" + toolkitInstall + "; on Debian/Ubuntu, after adding NVIDIA's apt repository: " +
		"sudo apt-get install -y nvidia-container-toolkit), then register it with docker: "
	if rootless {
		return fix + "nvidia-ctk runtime configure --runtime=docker --config=$HOME/.config/docker/daemon.json && " +
			"systemctl --user restart docker && " +
			"sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place"
	}
	return fix + "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
}

// checkGPURuntime: (b) GPUs requested from a daemon that cannot provide them.
func checkGPURuntime(in Input) []Finding {
	if !in.GPURequested && !in.GPUChoice {
		return nil
	}
	return []Finding{GPUProvider(in.Daemon)}
}

// CgroupDeviceAccess checks for the setup in which running containers lose
// their GPUs ("Failed to initialize NVML: Unknown Error") after
// `systemctl daemon-reload`: the systemd cgroup driver with GPUs injected by
// the legacy hook, which changes device access behind runc's back. CDI, or
// the /dev/char links that let systemd resolve NVIDIA's device nodes, avoid
// it. devCharLinks is NvidiaDevCharLinks("/dev"); meaningful for a local
// daemon only.
func CgroupDeviceAccess(d DaemonInfo, devCharLinks bool) Finding {
	const check = "cgroup"
	desc := "cgroup driver " + orUnknown(d.CgroupDriver)
	if d.CgroupVersion != "" {
		desc += ", cgroup v" + d.CgroupVersion
	}
	if d.CgroupDriver != "systemd" || d.HasCDI() || !d.Local || devCharLinks {
		return Finding{Check: check, Level: OK, Message: desc}
	}
	return Finding{
		Check: check, Level: Warn,
		Message: desc + " without CDI or /dev/char links to the NVIDIA devices: running GPU containers can lose their GPUs " +
			`("Failed to initialize NVML: Unknown Error") after systemctl daemon-reload`,
		Fix: "sudo nvidia-ctk system create-dev-char-symlinks --create-all (and NVIDIA's udev rule to redo it at boot), " +
			"or switch to CDI (sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml), " +
			`or set "exec-opts": ["native.cgroupdriver=cgroupfs"] in /etc/docker/daemon.json; ` +
			"a container already affected must be restarted",
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
