package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perceptron/docker-perceptron/internal/preflight"
)

// doctorLine is one line of "docker perceptron doctor --format json": the
// template's field names.
type doctorLine struct {
	Check, Status, Message, Fix, Detail string
}

// doctorJSON runs doctor --format json and parses every line; each must be
// a JSON object with a check and a status.
func doctorJSON(t *testing.T, e *Env) (map[string]doctorLine, Result) {
	t.Helper()
	r := e.Docker("perceptron", "doctor", "--format", "json")
	lines := map[string]doctorLine{}
	for _, raw := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var l doctorLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("doctor --format json: line %q: %v\n%s", raw, err, r)
		}
		if l.Check == "" || (l.Status != "ok" && l.Status != "warn" && l.Status != "fail") {
			t.Fatalf("doctor --format json: line %q lacks a check or a status\n%s", raw, r)
		}
		lines[l.Check] = l
	}
	return lines, r
}

// tableRow returns the STATUS and MESSAGE of the check's row in doctor's
// table, with the column padding squeezed: "ok nvidia-container-runtime-hook".
func tableRow(table, check string) string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(line, check+" ") {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

// doctorEnv is an Env whose GPUs, state directory and presets are sound, so
// that only the daemon decides doctor's verdict.
func doctorEnv(t *testing.T, e *Env) *Env {
	t.Helper()
	e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
	// t.TempDir is 0700; claims want a directory every user can share.
	if err := os.Chmod(e.StateDir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return e
}

// wantMemlock checks the memlock line against this host: where the
// bounding set lacks CAP_SYS_RESOURCE (containers, sandboxes, this CI), even
// the rootful test daemon cannot raise memlock above the hard limit.
func wantMemlock(t *testing.T, lines map[string]doctorLine) {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	got := lines["memlock"]
	if lacks, _ := preflight.StatusLacksSysResource(string(status)); !lacks {
		if got.Status != "ok" {
			t.Errorf("memlock: want ok on a host with CAP_SYS_RESOURCE, got %+v", got)
		}
		return
	}
	hard, err := preflight.MemlockHardLimit()
	if err != nil {
		t.Fatal(err)
	}
	if hard == -1 { // unlimited: nothing to refuse
		if got.Status != "ok" {
			t.Errorf("memlock: want ok with an unlimited hard limit, got %+v", got)
		}
		return
	}
	if got.Status != "warn" || !strings.Contains(got.Message, "containers cannot raise memlock above") ||
		!strings.Contains(got.Fix, fmt.Sprintf("--ulimit memlock=%d", hard)) {
		t.Errorf("memlock: want a warning with the override --ulimit memlock=%d, got %+v", hard, got)
	}
}

// TestDoctorSharedDaemon: the shared daemon has the stand-in hook on its
// PATH, the plugin's PATH does not; doctor reads dockerd's PATH (from
// /proc/<pid>/environ) and sees the toolkit.
func TestDoctorSharedDaemon(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		doctorEnv(t, e)
		if preflight.LookupHook(os.Getenv("PATH")) {
			t.Fatalf("the test's PATH holds %s: this test needs it on dockerd's PATH only", hookName)
		}
		lines, r := doctorJSON(t, e)
		if r.ExitCode != 0 {
			t.Errorf("want exit 0, got %s", r)
		}
		for check, l := range lines {
			if l.Status == "fail" {
				t.Errorf("%s failed: %+v", check, l)
			}
		}
		if l := lines["daemon"]; l.Status != "ok" || !strings.Contains(l.Message, ", local, rootful") {
			t.Errorf("daemon: want a local rootful daemon, got %+v", l)
		}
		if l := lines["gpu-runtime"]; l.Status != "ok" || !strings.Contains(l.Message, hookName) {
			t.Errorf("gpu-runtime: want ok through %s, got %+v", hookName, l)
		}
		if l := lines["nvidia-driver"]; l.Status != "ok" || l.Message != "driver 580.95.05, CUDA 13.0" {
			t.Errorf("nvidia-driver: got %+v", l)
		}
		if l := lines["gpu 1"]; l.Status != "ok" || !strings.Contains(l.Message, "GPU-00000000-0000-0000-0000-000000000001") {
			t.Errorf("gpu 1: got %+v", l)
		}
		if l := lines["state-dir"]; l.Status != "ok" || l.Message != e.StateDir+" (1777)" {
			t.Errorf("state-dir: got %+v", l)
		}
		if l := lines["presets"]; l.Status != "ok" || !strings.Contains(l.Detail, "no file at ") || !strings.Contains(l.Detail, filepath.Join(e.Config, "perceptron", "presets.yaml")) {
			t.Errorf("presets: got %+v", l)
		}
		wantMemlock(t, lines)
		// The override doctor suggests is one the kernel takes.
		if m := lines["memlock"]; m.Status == "warn" {
			_, rest, ok := strings.Cut(m.Fix, "use --ulimit ")
			override, _, _ := strings.Cut(rest, " ")
			if !ok || override == "" {
				t.Errorf("memlock warns without an override to use: %+v", m)
			} else if r := e.Docker("run", "--rm", "--ulimit", override, testImage, "true"); r.ExitCode != 0 {
				t.Errorf("the suggested --ulimit %s does not work: %s", override, r)
			}
		}

		// The table says the same.
		r = e.Docker("perceptron", "doctor")
		if r.ExitCode != 0 || tableRow(r.Stdout, "gpu-runtime") != "ok "+hookName {
			t.Errorf("doctor: want gpu-runtime ok in the table, got %s", r)
		}
	})
}

// TestDoctorBrokenUserPresets: a user preset file that does not load fails
// the presets line, with the file and line.
func TestDoctorBrokenUserPresets(t *testing.T) {
	e := doctorEnv(t, newEnv(t))
	file := filepath.Join(e.Config, "perceptron", "presets.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("mine:\n  description: mine\n  shm-sise: 8g\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, r := doctorJSON(t, e)
	if r.ExitCode != 1 {
		t.Errorf("want exit 1, got %s", r)
	}
	l := lines["presets"]
	if l.Status != "fail" || !strings.HasSuffix(l.Message, file+":3") || !strings.HasPrefix(l.Detail, file+":3: ") || !strings.Contains(l.Detail, `"shm-sise"`) ||
		l.Fix != "fix the file; 'docker perceptron presets ls' shows what loads" {
		t.Errorf("presets: want a failure at %s:3 with its fix, got %+v", file, l)
	}
	if lines["gpu-runtime"].Status != "ok" {
		t.Errorf("gpu-runtime: got %+v", lines["gpu-runtime"])
	}
}

// TestDoctorWithoutToolkit: a daemon started without the hook cannot give
// containers GPUs; doctor says so, with the fix, and exits non-zero. The
// hook on the plugin's PATH does not hide it: dockerd's PATH is what counts.
func TestDoctorWithoutToolkit(t *testing.T) {
	d := startDaemon(t, DaemonOptions{WithoutNvidiaHook: true, NoImages: true})
	e := doctorEnv(t, newEnvOn(t, d))
	hookDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hookDir, hookName), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.Extra = append(e.Extra, "PATH="+hookDir+string(os.PathListSeparator)+os.Getenv("PATH"))

	lines, r := doctorJSON(t, e)
	if r.ExitCode != 1 {
		t.Errorf("want exit 1, got %s", r)
	}
	l := lines["gpu-runtime"]
	if l.Status != "fail" || !strings.Contains(l.Detail, `could not select device driver "" with capabilities: [[gpu]]`) {
		t.Errorf("gpu-runtime: want a failure naming docker's error, got %+v", l)
	}
	for _, want := range []string{"sudo apt-get install -y nvidia-container-toolkit", "sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"} {
		if !strings.Contains(l.Detail, want) {
			t.Errorf("gpu-runtime: the detail lacks %q: %q", want, l.Detail)
		}
	}
	for check, l := range lines {
		if l.Status == "fail" && check != "gpu-runtime" {
			t.Errorf("%s failed too: %+v", check, l)
		}
	}

	r = e.Docker("perceptron", "doctor")
	if r.ExitCode != 1 || !strings.HasPrefix(tableRow(r.Stdout, "gpu-runtime"), "fail ") || !strings.Contains(r.Stdout, "fix: install the NVIDIA Container Toolkit") {
		t.Errorf("doctor: want gpu-runtime fail in the table, exit 1, got %s", r)
	}
	if !strings.Contains(r.Stderr, "1 check failed") {
		t.Errorf("doctor: want \"1 check failed\" on stderr, got %s", r)
	}
}

// TestDoctorDefaultRuntimeNvidia: a daemon whose default runtime is named
// nvidia (runc under that name: only the name counts) gets a warning with
// the daemon.json fix; the exit status stays 0.
func TestDoctorDefaultRuntimeNvidia(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("no runc on PATH")
	}
	d := startDaemon(t, DaemonOptions{NoImages: true, Args: []string{"--add-runtime", "nvidia=" + runc, "--default-runtime", "nvidia"}})
	e := doctorEnv(t, newEnvOn(t, d))
	lines, r := doctorJSON(t, e)
	if r.ExitCode != 0 {
		t.Errorf("want exit 0 (a warning), got %s", r)
	}
	l := lines["default-runtime"]
	if l.Status != "warn" || !strings.HasPrefix(l.Detail, "default runtime nvidia: every container whose image sets NVIDIA_VISIBLE_DEVICES") ||
		!strings.Contains(l.Detail, `remove "default-runtime": "nvidia" from /etc/docker/daemon.json`) ||
		l.Fix != `remove "default-runtime" from daemon.json, then restart docker` {
		t.Errorf("default-runtime: want a warning with the daemon.json fix, got %+v", l)
	}
	// The shared daemon runs runc by default.
	shared, _ := doctorJSON(t, doctorEnv(t, newEnv(t)))
	if l := shared["default-runtime"]; l.Status != "ok" || l.Message != "default runtime runc" {
		t.Errorf("default-runtime on the shared daemon: got %+v", l)
	}
}

// TestDoctorPrivateStateDir: a state directory only its owner can use is
// fine for the owner's runs: a warning that other users' runs cannot see
// the claims, not a failure.
func TestDoctorPrivateStateDir(t *testing.T) {
	e := doctorEnv(t, newEnv(t))
	if err := os.Chmod(e.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	lines, r := doctorJSON(t, e)
	if r.ExitCode != 0 {
		t.Errorf("want exit 0 (a warning), got %s", r)
	}
	l := lines["state-dir"]
	if l.Status != "warn" || !strings.Contains(l.Message, e.StateDir+" (0755)") ||
		!strings.Contains(l.Detail, "claims are coordinated only among your own runs") {
		t.Errorf("state-dir: want a warning for a private directory, got %+v", l)
	}
}
