package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPreflightImageCUDA: an image that needs a newer CUDA than the host's
// driver stops before anything is created or claimed, naming both versions.
func TestPreflightImageCUDA(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		e.FakeNVML = writeFakeNVML(t, sampleNVML(2)) // CUDA 13.0
		r := e.Docker("perceptron", "run", "--gpus", "auto", cuda99Image, "true")
		if r.ExitCode != 125 {
			t.Fatalf("want exit 125:\n%s", r)
		}
		for _, want := range []string{"99.0", "13.0", "driver"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
			}
		}
		if ps := e.MustDocker("ps", "-aq"); ps != "" {
			t.Errorf("created %s", ps)
		}
		if leases, _ := filepath.Glob(filepath.Join(e.StateDir, "lease-*")); len(leases) > 0 {
			t.Errorf("left a GPU claim: %v", leases)
		}
		// The same image without a GPU request is not checked.
		if got := e.MustDocker("perceptron", "run", "--rm", cuda99Image, "echo", "ok"); got != "ok" {
			t.Errorf("without GPUs: %q", got)
		}
	})
}

// TestPreflightWarnings: warnings go to stderr and never block; -q hides them.
func TestPreflightWarnings(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
	// A shm below the preset's, and every GPU despite the choice.
	// (NVIDIA_VISIBLE_DEVICES next to --gpus auto is refused outright.)
	args := []string{"perceptron", "create", "--preset", "tf-train", "--shm-size", "64m", "--privileged"}
	r := e.Docker(append(args, testImage)...)
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	for _, want := range []string{"WARNING: --shm-size 64MiB is below the preset's 1GiB", "WARNING: --privileged with a GPU choice"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	r = e.Docker(append(args, "-q", testImage)...)
	if r.ExitCode != 0 || strings.Contains(r.Stderr, "WARNING") {
		t.Errorf("-q did not silence the warnings:\n%s", r)
	}
}
