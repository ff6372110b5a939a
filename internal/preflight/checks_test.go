package preflight

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestGPUProvider(t *testing.T) {
	testCases := []struct {
		name      string
		d         DaemonInfo
		wantLevel Level
		wantIn    []string
	}{
		{name: "nvidia runtime", d: DaemonInfo{Local: true, Runtimes: []string{"nvidia", "runc"}}, wantIn: []string{"nvidia runtime"}},
		{name: "cdi devices remote", d: DaemonInfo{CDIDevices: []string{"nvidia.com/gpu=0", "nvidia.com/gpu=all"}}, wantIn: []string{"CDI (2 nvidia.com/gpu devices)"}},
		{name: "cdi spec local", d: DaemonInfo{Local: true, NvidiaCDISpecs: []string{"/etc/cdi/nvidia.yaml"}}, wantIn: []string{"/etc/cdi/nvidia.yaml"}},
		{name: "hook local", d: DaemonInfo{Local: true, HookOnPath: true}, wantIn: []string{HookName}},
		{
			name: "nothing local", d: DaemonInfo{Local: true, Runtimes: []string{"runc"}, CDISpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
			wantLevel: Fail,
			wantIn:    []string{`could not select device driver "" with capabilities: [[gpu]]`, "/etc/cdi, /var/run/cdi", "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker", "install-guide"},
		},
		{
			name: "nothing rootless", d: DaemonInfo{Local: true, Rootless: true},
			wantLevel: Fail,
			wantIn:    []string{"--config=$HOME/.config/docker/daemon.json", "no-cgroups"},
		},
		{
			name: "dockerd's PATH unread: unknown, never a failure", d: DaemonInfo{Local: true, HookPathUnread: true},
			wantLevel: Warn,
			wantIn:    []string{"unknown whether dockerd can give containers GPUs", "cannot be read by this user", "sudo docker perceptron doctor"},
		},
		{
			name: "hook on the user's PATH only", d: DaemonInfo{Local: true, HookOnPath: true, HookPathUnread: true},
			wantIn: []string{HookName + " (on your PATH; dockerd's could not be read)"},
		},
		{
			name: "hook does not count remotely", d: DaemonInfo{HookOnPath: true},
			wantLevel: Warn,
			wantIn:    []string{"remote daemon", "on the daemon's host"},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			f := GPUProvider(tc.d)
			assert.Equal(t, f.Level, tc.wantLevel)
			assert.Equal(t, f.Check, "gpu-runtime")
			for _, s := range tc.wantIn {
				assert.Assert(t, is.Contains(f.Message+" | "+f.Fix, s))
			}
		})
	}
}

func TestCheckGPURuntimeOnlyWithGPUs(t *testing.T) {
	in := Input{Daemon: DaemonInfo{Local: true}}
	assert.Assert(t, is.Len(checkGPURuntime(in), 0))
	in.GPURequested = true
	assert.Equal(t, Worst(checkGPURuntime(in)), Fail)
}

func TestCgroupDeviceAccess(t *testing.T) {
	systemd := DaemonInfo{Local: true, CgroupDriver: "systemd", CgroupVersion: "2", Runtimes: []string{"nvidia"}}
	testCases := []struct {
		name      string
		d         DaemonInfo
		links     bool
		wantLevel Level
	}{
		{name: "systemd without links", d: systemd, wantLevel: Warn},
		{name: "systemd with links", d: systemd, links: true},
		{name: "cgroupfs", d: DaemonInfo{Local: true, CgroupDriver: "cgroupfs"}},
		{name: "systemd with cdi", d: DaemonInfo{Local: true, CgroupDriver: "systemd", CDIDevices: []string{"nvidia.com/gpu=0"}}},
		{name: "remote: unknown /dev", d: DaemonInfo{CgroupDriver: "systemd"}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			f := CgroupDeviceAccess(tc.d, tc.links)
			assert.Equal(t, f.Level, tc.wantLevel)
			if tc.wantLevel == Warn {
				assert.Assert(t, is.Contains(f.Message, "Failed to initialize NVML: Unknown Error"))
				assert.Assert(t, is.Contains(f.Fix, "nvidia-ctk system create-dev-char-symlinks --create-all"))
				assert.Assert(t, is.Contains(f.Fix, "native.cgroupdriver=cgroupfs"))
			}
		})
	}
}

func TestCheckMemlock(t *testing.T) {
	rootless := DaemonInfo{Local: true, Rootless: true}
	rootful := DaemonInfo{Local: true}
	testCases := []struct {
		name    string
		in      Input
		wantFix string // "" for no finding
		wantMsg string
	}{
		{name: "rootful daemon may raise", in: Input{Ulimits: []string{"memlock=-1"}, HostMemlockHard: 8 << 20}},
		{name: "no memlock", in: Input{Daemon: rootless, Ulimits: []string{"nofile=1024:2048"}, HostMemlockHard: 8 << 20}},
		{name: "unlimited on rootless", in: Input{Daemon: rootless, Ulimits: []string{"nofile=1024", "memlock=-1"}, HostMemlockHard: 8 << 20}, wantFix: "use --ulimit memlock=8388608 (this host's hard limit, 8MiB)"},
		{name: "unlimited hard only", in: Input{Daemon: rootless, Ulimits: []string{"memlock=1024:-1"}, HostMemlockHard: 8 << 20}, wantFix: "memlock=8388608"},
		{name: "above the hard limit", in: Input{Daemon: rootless, Ulimits: []string{"memlock=16777216"}, HostMemlockHard: 8 << 20}, wantFix: "memlock=8388608"},
		{name: "within the hard limit", in: Input{Daemon: rootless, Ulimits: []string{"memlock=1048576:8388608"}, HostMemlockHard: 8 << 20}},
		{name: "host unlimited", in: Input{Daemon: rootless, Ulimits: []string{"memlock=-1"}, HostMemlockHard: -1}},
		{name: "unknown limit, unlimited asked", in: Input{Daemon: rootless, Ulimits: []string{"memlock=-1"}}, wantFix: "ulimit -H -l"},
		{name: "unknown limit, finite asked", in: Input{Daemon: rootless, Ulimits: []string{"memlock=65536"}}},
		{name: "malformed ignored", in: Input{Daemon: rootless, Ulimits: []string{"memlock"}, HostMemlockHard: 1}},
		// A rootful daemon where CAP_SYS_RESOURCE is not to be had (a
		// container or sandbox) is bound by the hard limit too.
		{name: "rootful without CAP_SYS_RESOURCE", in: Input{Daemon: rootful, Ulimits: []string{"memlock=-1"}, HostMemlockHard: 8 << 20, HostLacksSysResource: true}, wantFix: "use --ulimit memlock=8388608 (this host's hard limit, 8MiB)", wantMsg: "containers cannot raise memlock above 8MiB here"},
		{name: "rootful without CAP_SYS_RESOURCE, within", in: Input{Daemon: rootful, Ulimits: []string{"memlock=8388608"}, HostMemlockHard: 8 << 20, HostLacksSysResource: true}},
		{name: "rootful without CAP_SYS_RESOURCE, host unlimited", in: Input{Daemon: rootful, Ulimits: []string{"memlock=-1"}, HostMemlockHard: -1, HostLacksSysResource: true}},
		{name: "rootful without CAP_SYS_RESOURCE, unknown limit", in: Input{Daemon: rootful, Ulimits: []string{"memlock=-1"}, HostLacksSysResource: true}, wantFix: "ulimit -H -l", wantMsg: "above its hard limit"},
		{name: "rootless says rootless", in: Input{Daemon: rootless, Ulimits: []string{"memlock=-1"}, HostMemlockHard: 8 << 20, HostLacksSysResource: true}, wantFix: "LimitMEMLOCK=", wantMsg: "on a rootless daemon"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkMemlock(tc.in)
			if tc.wantFix == "" {
				assert.Assert(t, is.Len(got, 0))
				return
			}
			assert.Assert(t, is.Len(got, 1))
			assert.Equal(t, got[0].Level, Warn)
			assert.Assert(t, is.Contains(got[0].Message, "operation not permitted"))
			assert.Assert(t, is.Contains(got[0].Message, tc.wantMsg))
			assert.Assert(t, is.Contains(got[0].Fix, tc.wantFix))
		})
	}
}

func TestCheckShm(t *testing.T) {
	const gib = 1 << 30
	testCases := []struct {
		name string
		in   Input
		want string // "" for no finding
	}{
		{name: "preset size kept", in: Input{TrainingPreset: true, PresetShmSizeBytes: 16 * gib}},
		{name: "user below preset", in: Input{ShmSizeBytes: 1 * gib, PresetShmSizeBytes: 16 * gib}, want: "--shm-size 1GiB is below the preset's 16GiB"},
		{name: "user above preset", in: Input{ShmSizeBytes: 32 * gib, PresetShmSizeBytes: 16 * gib, TrainingPreset: true}},
		{name: "training default", in: Input{TrainingPreset: true}, want: "/dev/shm is 64MiB with a training preset"},
		{name: "training small user size", in: Input{TrainingPreset: true, ShmSizeBytes: 32 << 20}, want: "/dev/shm is 32MiB"},
		{name: "training ipc host", in: Input{TrainingPreset: true, IPCHost: true}},
		{name: "ipc host below preset", in: Input{IPCHost: true, ShmSizeBytes: 1 * gib, PresetShmSizeBytes: 16 * gib}},
		{name: "not training", in: Input{}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkShm(tc.in)
			if tc.want == "" {
				assert.Assert(t, is.Len(got, 0))
				return
			}
			assert.Assert(t, is.Len(got, 1))
			assert.Equal(t, got[0].Level, Warn)
			assert.Assert(t, is.Contains(got[0].Message, tc.want))
			assert.Assert(t, is.Contains(got[0].Message, "bus error"))
			// A bounded, private /dev/shm first; --ipc=host only with
			// what it costs on a shared server.
			assert.Assert(t, strings.Index(got[0].Fix, "--shm-size") < strings.Index(got[0].Fix, "--ipc=host"), got[0].Fix)
			assert.Assert(t, is.Contains(got[0].Fix, "--ipc=host also works, but shares the host's /dev/shm"))
		})
	}
}

func TestCheckAllGPUs(t *testing.T) {
	testCases := []struct {
		name string
		in   Input
		want string
	}{
		{name: "privileged with choice", in: Input{GPUChoice: true, Privileged: true}, want: "--privileged with a GPU choice"},
		{name: "env all with choice", in: Input{GPUChoice: true, Env: []string{"A=1", "NVIDIA_VISIBLE_DEVICES=all"}}, want: "NVIDIA_VISIBLE_DEVICES=all"},
		{name: "env all overridden later", in: Input{GPUChoice: true, Env: []string{"NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=1"}}},
		{name: "image env all is normal", in: Input{GPUChoice: true, Image: &ImageInfo{Env: []string{"NVIDIA_VISIBLE_DEVICES=all"}}}},
		{name: "privileged without choice", in: Input{GPURequested: true, Privileged: true}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkAllGPUs(tc.in)
			if tc.want == "" {
				assert.Assert(t, is.Len(got, 0))
				return
			}
			assert.Assert(t, is.Len(got, 1))
			assert.Equal(t, got[0].Level, Warn)
			assert.Assert(t, is.Contains(got[0].Message, tc.want))
			assert.Assert(t, is.Contains(got[0].Message, "every GPU"))
		})
	}
}

func TestRun(t *testing.T) {
	in := Input{
		GPURequested: true, GPUChoice: true, Privileged: true,
		TrainingPreset: true,
		Ulimits:        []string{"memlock=-1"},
		Image:          &ImageInfo{Env: []string{"CUDA_VERSION=13.0.0"}},
		HostCUDA:       "12.4",
		Daemon:         DaemonInfo{Local: true, Rootless: true},
	}
	var checks []string
	for _, f := range Run(in) {
		checks = append(checks, f.Check+":"+f.Level.String())
	}
	assert.DeepEqual(t, checks, []string{"gpu-runtime:fail", "image-cuda:fail", "memlock:warn", "shm:warn", "all-gpus:warn"})

	healthy := Input{
		GPURequested: true, GPUChoice: true,
		Image:    &ImageInfo{Env: []string{"CUDA_VERSION=12.0.0"}},
		HostCUDA: "12.4",
		Daemon:   DaemonInfo{Local: true, Runtimes: []string{"nvidia", "runc"}},
	}
	assert.Assert(t, is.Len(Run(healthy), 0))
	assert.Equal(t, Worst(nil), OK)
}

func TestLevelString(t *testing.T) {
	assert.Equal(t, OK.String(), "ok")
	assert.Equal(t, Warn.String(), "warn")
	assert.Equal(t, Fail.String(), "fail")
	assert.Equal(t, Level(9).String(), "unknown")
}
