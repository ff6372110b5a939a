package e2e

import (
	"strings"
	"testing"
)

// TestSmokePluginListed checks that each docker client finds the plugin.
func TestSmokePluginListed(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		help := e.MustDocker("--help")
		if !strings.Contains(help, "perceptron*") {
			t.Errorf("docker --help does not list perceptron*:\n%s", help)
		}
		r := e.Docker("perceptron", "--help")
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "docker perceptron") {
			t.Errorf("want usage of docker perceptron, got %s", r)
		}
	})
}

// TestSmokeDockerRun checks the harness itself: plain docker runs the test
// image on the private daemon.
func TestSmokeDockerRun(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		if got := e.MustDocker("run", "--rm", testImage, "echo", "hello"); got != "hello" {
			t.Errorf("docker run echo hello printed %q", got)
		}
	})
}

// TestSmokeDetachedContainerCleanup checks that a container left running
// by a test is removed when the test ends.
func TestSmokeDetachedContainerCleanup(t *testing.T) {
	var id string
	t.Run("leave", func(t *testing.T) {
		e := newEnv(t)
		id = e.MustDocker("run", "--detach", testImage, "sleep", "600")
		if got := e.Inspect(id, "{{.State.Running}}"); got != "true" {
			t.Fatalf("container not running: %s", got)
		}
	})
	e := newEnv(t)
	if r := e.Docker("inspect", id); r.ExitCode == 0 {
		t.Errorf("container %s outlived its test", id)
	}
}

// TestSmokeStandInNvidiaHook checks that the shared daemon has the nvidia
// GPU driver. The device list is quoted: --gpus takes CSV, and unquoted
// "device=1,3" reads as device=1 plus a count of 3, which dockerd refuses.
func TestSmokeStandInNvidiaHook(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		env := e.MustDocker("run", "--rm", "--gpus", `"device=1,3"`, "perceptron-test", "env")
		if !strings.Contains(env, "NVIDIA_VISIBLE_DEVICES=1,3") {
			t.Errorf("want NVIDIA_VISIBLE_DEVICES=1,3 in the container, got:\n%s", env)
		}
	})
}

func TestSmokeCUDA99Image(t *testing.T) {
	got := inspect(t, cuda99Image, "{{json .Config.Env}}")
	if !strings.Contains(got, `"NVIDIA_REQUIRE_CUDA=cuda\u003e=99.0"`) && !strings.Contains(got, `"NVIDIA_REQUIRE_CUDA=cuda>=99.0"`) {
		t.Errorf("%s has env %s", cuda99Image, got)
	}
}

// TestSmokeDaemonWithoutHook checks startDaemon's second daemon: without
// the stand-in hook, dockerd has no nvidia driver for --gpus.
func TestSmokeDaemonWithoutHook(t *testing.T) {
	d := startDaemon(t, DaemonOptions{WithoutNvidiaHook: true})
	e := newEnvOn(t, d)
	r := e.Docker("run", "--rm", "--gpus", "all", testImage, "true")
	want := "could not select device driver"
	if d.Kind == "d29" { // Docker 29 tries CDI after the drivers
		want = "failed to discover GPU vendor from CDI"
	}
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("want docker run --gpus to fail for want of a GPU driver, got %s", r)
	}
	if got := e.MustDocker("run", "--rm", testImage, "echo", "ok"); got != "ok" {
		t.Errorf("docker run without --gpus printed %q", got)
	}
}
