package preflight

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestReadToolkitConfig(t *testing.T) {
	testCases := []struct {
		name         string
		file         string // "" writes no file
		wantEnvvar   bool
		wantSet      bool
		wantMounts   bool
		wantErr      string
		wantNoExists bool
	}{
		{name: "no file", wantNoExists: true, wantEnvvar: true},
		{name: "empty", file: "\n", wantEnvvar: true},
		{name: "false", file: "accept-nvidia-visible-devices-envvar-when-unprivileged = false\n", wantSet: true},
		{name: "true", file: "accept-nvidia-visible-devices-envvar-when-unprivileged = true\n", wantEnvvar: true, wantSet: true},
		{
			name:       "spaces, tabs and a trailing comment",
			file:       "\t accept-nvidia-visible-devices-envvar-when-unprivileged\t=false   # locked down\n",
			wantSet:    true,
			wantEnvvar: false,
		},
		{name: "quoted key", file: `"accept-nvidia-visible-devices-envvar-when-unprivileged" = false` + "\n", wantSet: true},
		{name: "literal key", file: `'accept-nvidia-visible-devices-envvar-when-unprivileged' = false` + "\n", wantSet: true},
		{
			// What nvidia-ctk generates: the defaults commented out.
			name: "commented out",
			file: "#accept-nvidia-visible-devices-as-volume-mounts = false\n" +
				"#accept-nvidia-visible-devices-envvar-when-unprivileged = true\n" +
				"disable-require = false\n" +
				`supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"` + "\n" +
				"#swarm-resource = \"DOCKER_RESOURCE_GPU\"\n\n" +
				"[nvidia-container-cli]\n#debug = \"/var/log/nvidia-container-toolkit.log\"\nenvironment = []\nload-kmods = true\n",
			wantEnvvar: true,
		},
		{
			name:       "inside a table: not the top level's",
			file:       "disable-require = false\n\n[nvidia-container-runtime]\naccept-nvidia-visible-devices-envvar-when-unprivileged = false\n",
			wantEnvvar: true,
		},
		{
			name:       "inside an array of tables",
			file:       "[[x]]\naccept-nvidia-visible-devices-envvar-when-unprivileged = false\n",
			wantEnvvar: true,
		},
		{
			name:       "dotted key",
			file:       "nvidia-container-runtime.accept-nvidia-visible-devices-envvar-when-unprivileged = false\n",
			wantEnvvar: true,
		},
		{
			name:       "quoted dotted key",
			file:       `"x".accept-nvidia-visible-devices-envvar-when-unprivileged = false` + "\n",
			wantEnvvar: true,
		},
		{
			// A multi-line array whose lines start with '[' is no table header.
			name: "after a multi-line array",
			file: "runtimes = [\n  [\"a\"], # ]\n  \"]\",\n]\n" +
				"accept-nvidia-visible-devices-envvar-when-unprivileged = false\n",
			wantSet: true,
		},
		{
			name: "after a multi-line string",
			file: "note = \"\"\"\n[not-a-table]\naccept-nvidia-visible-devices-envvar-when-unprivileged = true\n\"\"\"\n" +
				"accept-nvidia-visible-devices-envvar-when-unprivileged = false\n",
			wantSet: true,
		},
		{
			name:       "volume mounts",
			file:       "accept-nvidia-visible-devices-as-volume-mounts = true\naccept-nvidia-visible-devices-envvar-when-unprivileged = false\n",
			wantSet:    true,
			wantMounts: true,
		},
		{name: "not a boolean", file: `accept-nvidia-visible-devices-envvar-when-unprivileged = "false"` + "\n", wantEnvvar: true, wantErr: `line 1: accept-nvidia-visible-devices-envvar-when-unprivileged = "false": want true or false`},
		{
			name:       "given twice",
			file:       "accept-nvidia-visible-devices-envvar-when-unprivileged = false\naccept-nvidia-visible-devices-envvar-when-unprivileged = true\n",
			wantEnvvar: true,
			wantErr:    "line 2: accept-nvidia-visible-devices-envvar-when-unprivileged is already set on line 1",
		},
		{name: "not toml", file: "this is not toml\n", wantEnvvar: true, wantErr: "line 1: expected key = value"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if tc.file != "" {
				assert.NilError(t, os.WriteFile(path, []byte(tc.file), 0o644))
			}
			got := ReadToolkitConfig(path)
			assert.Equal(t, got.Path, path)
			assert.Equal(t, got.Exists, !tc.wantNoExists)
			if tc.wantErr != "" {
				assert.ErrorContains(t, got.Err, path+": "+tc.wantErr)
			} else {
				assert.NilError(t, got.Err)
			}
			assert.Equal(t, got.EnvvarUnprivileged, tc.wantEnvvar)
			assert.Equal(t, got.EnvvarSet, tc.wantSet)
			assert.Equal(t, got.VolumeMounts, tc.wantMounts)
		})
	}
}

func TestReadToolkitConfigUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	assert.NilError(t, os.WriteFile(path, []byte("x = 1\n"), 0o000))
	got := ReadToolkitConfig(path)
	assert.Assert(t, got.Exists)
	assert.ErrorContains(t, got.Err, "permission denied")
}

func TestDefaultRuntime(t *testing.T) {
	testCases := []struct {
		name      string
		d         DaemonInfo
		wantLevel Level
		wantIn    []string
	}{
		{name: "runc", d: DaemonInfo{Local: true, DefaultRuntime: "runc", Runtimes: []string{"nvidia", "runc"}}, wantIn: []string{"default runtime runc"}},
		{name: "unknown", d: DaemonInfo{Local: true}, wantIn: []string{"default runtime unknown"}},
		{
			name: "nvidia", d: DaemonInfo{Local: true, DefaultRuntime: "nvidia", Runtimes: []string{"nvidia", "runc"}},
			wantLevel: Warn,
			wantIn: []string{
				"default runtime nvidia: every container whose image sets NVIDIA_VISIBLE_DEVICES", "outside any GPU claim",
				`remove "default-runtime": "nvidia" from /etc/docker/daemon.json`, "sudo systemctl restart docker", "--gpus",
			},
		},
		{
			name: "nvidia-cdi rootless", d: DaemonInfo{Local: true, Rootless: true, DefaultRuntime: "nvidia-cdi"},
			wantLevel: Warn,
			wantIn:    []string{`"default-runtime": "nvidia-cdi" from ~/.config/docker/daemon.json`, "systemctl --user restart docker"},
		},
		{
			name: "remote", d: DaemonInfo{DefaultRuntime: "nvidia"},
			wantLevel: Warn,
			wantIn:    []string{"on the daemon's host: remove"},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			f := DefaultRuntime(tc.d)
			assert.Equal(t, f.Check, "default-runtime")
			assert.Equal(t, f.Level, tc.wantLevel)
			assert.Equal(t, f.Fix == "", tc.wantLevel == OK)
			for _, s := range tc.wantIn {
				assert.Assert(t, is.Contains(whole(f), s))
			}
		})
	}
}

func TestToolkitEnvvar(t *testing.T) {
	const path = "/etc/nvidia-container-runtime/config.toml"
	withNvidia := DaemonInfo{Local: true, DefaultRuntime: "runc", Runtimes: []string{"nvidia", "runc"}}
	runcOnly := DaemonInfo{Local: true, DefaultRuntime: "runc", Runtimes: []string{"runc"}, HookOnPath: true}
	unset := ToolkitConfig{Path: path, Exists: true, EnvvarUnprivileged: true}
	off := ToolkitConfig{Path: path, Exists: true, EnvvarSet: true}
	testCases := []struct {
		name      string
		d         DaemonInfo
		t         ToolkitConfig
		wantLevel Level
		wantIn    []string
		wantNotIn []string
	}{
		{
			name: "unset, nvidia runtime", d: withNvidia, t: unset,
			wantLevel: Warn,
			wantIn: []string{
				"docker run --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=all (accept-nvidia-visible-devices-envvar-when-unprivileged unset (true))",
				"sudo nvidia-ctk config --config-file=" + path + " --set accept-nvidia-visible-devices-envvar-when-unprivileged=false --in-place",
				"only through CDI",
			},
			wantNotIn: []string{"as-volume-mounts"},
		},
		{
			name: "true, nvidia default runtime", d: DaemonInfo{Local: true, DefaultRuntime: "nvidia", Runtimes: []string{"nvidia"}},
			t:         ToolkitConfig{Path: path, Exists: true, EnvvarUnprivileged: true, EnvvarSet: true},
			wantLevel: Warn,
			wantIn:    []string{"accept-nvidia-visible-devices-envvar-when-unprivileged = true)"},
		},
		{
			name: "runtime named otherwise", d: DaemonInfo{Local: true, Runtimes: []string{"nvidia-cdi", "runc"}}, t: unset,
			wantLevel: Warn,
			wantIn:    []string{"--runtime=nvidia-cdi"},
		},
		{name: "false", d: withNvidia, t: off, wantIn: []string{"= false: unprivileged containers get only the GPUs docker gives them"}},
		{name: "unset, no nvidia runtime", d: runcOnly, t: unset, wantIn: []string{"unset (true); no nvidia runtime, so the variable alone gives no GPU"}},
		{
			name: "volume mounts, no nvidia runtime", d: runcOnly,
			t:         ToolkitConfig{Path: path, Exists: true, EnvvarUnprivileged: true, VolumeMounts: true},
			wantLevel: Warn,
			wantIn:    []string{"-v /dev/null:/var/run/nvidia-container-devices/all", "--set accept-nvidia-visible-devices-as-volume-mounts=false --in-place"},
			wantNotIn: []string{"envvar-when-unprivileged=false", "CDI"},
		},
		{
			name: "both", d: withNvidia,
			t:         ToolkitConfig{Path: path, Exists: true, EnvvarUnprivileged: true, VolumeMounts: true},
			wantLevel: Warn,
			wantIn:    []string{"--set accept-nvidia-visible-devices-envvar-when-unprivileged=false --set accept-nvidia-visible-devices-as-volume-mounts=false --in-place"},
		},
		{name: "no file", d: withNvidia, t: ToolkitConfig{Path: path, EnvvarUnprivileged: true}, wantIn: []string{"no " + path}},
		{name: "remote", d: DaemonInfo{Runtimes: []string{"nvidia"}}, t: unset, wantIn: []string{"daemon is remote"}},
		{
			name: "unreadable", d: withNvidia, t: ToolkitConfig{Path: path, Exists: true, Err: os.ErrPermission},
			wantLevel: Warn,
			wantIn:    []string{"permission denied", "nvidia-ctk config --config-file=" + path},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			f := ToolkitEnvvar(tc.d, tc.t)
			assert.Equal(t, f.Check, "toolkit-env")
			assert.Equal(t, f.Level, tc.wantLevel)
			assert.Equal(t, f.Fix == "", tc.wantLevel == OK)
			for _, s := range tc.wantIn {
				assert.Assert(t, is.Contains(whole(f), s))
			}
			for _, s := range tc.wantNotIn {
				assert.Assert(t, !is.Contains(whole(f), s)().Success(), "%q in %q", s, whole(f))
			}
		})
	}
}

func TestGatherReadsToolkitConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	assert.NilError(t, os.WriteFile(path, []byte("accept-nvidia-visible-devices-envvar-when-unprivileged = false\n"), 0o644))
	daemon := func(local bool) func() (DaemonInfo, error) {
		return func() (DaemonInfo, error) { return DaemonInfo{Local: local}, nil }
	}
	h := Gather(t.Context(), Sources{Daemon: daemon(true), ToolkitConfig: path})
	assert.Equal(t, h.Toolkit, ToolkitConfig{Path: path, Exists: true, EnvvarSet: true})
	h = Gather(t.Context(), Sources{Daemon: daemon(false), ToolkitConfig: path})
	assert.Equal(t, h.Toolkit, ToolkitConfig{}, "a remote daemon's host is not this one")
}

// whole is a finding's whole text: its Detail where the table's lines are
// shortened.
func whole(f Finding) string {
	if f.Detail != "" {
		return f.Detail
	}
	return f.Message + " | " + f.Fix
}
