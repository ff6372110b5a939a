package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ngcImage imports the test rootfs as name, with the environment an NGC
// framework release sets: NVIDIA_REQUIRE_CUDA that every driver meets, the
// real need in CUDA_DRIVER_VERSION, and the forward-compatibility libraries'
// path.
func ngcImage(t *testing.T, e *Env, name, minDriver string) {
	t.Helper()
	r := e.DockerStdin(bytes.NewReader(suite.rootfs), "import",
		"--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"--change", "ENV NVIDIA_REQUIRE_CUDA=cuda>=9.0",
		"--change", "ENV CUDA_VERSION=13.1.0.036",
		"--change", "ENV CUDA_DRIVER_VERSION="+minDriver,
		"--change", "ENV _CUDA_COMPAT_PATH=/usr/local/cuda/compat",
		"-", name)
	if r.ExitCode != 0 {
		t.Fatalf("importing %s: %s", name, r)
	}
	t.Cleanup(func() { e.Docker("rmi", "-f", name) })
}

// fakeHost is n GPUs of NVML brand (2 Tesla, 5 GeForce) on driver.
func fakeHost(n, brand int, driver string) FakeNVML {
	spec := sampleNVML(n)
	spec.DriverVersion = driver
	for i := range spec.GPUs {
		spec.GPUs[i].Brand = &brand
	}
	return spec
}

// TestPreflightNGCDriver: an NGC image newer than the driver is refused on
// GeForce GPUs, before anything is created or claimed, with the tag that
// runs; on data-centre GPUs it runs, with the forward-compatibility
// warning.
func TestPreflightNGCDriver(t *testing.T) {
	e := newEnv(t)
	const image = "nvcr.io/nvidia/pytorch:25.12-py3"
	ngcImage(t, e, image, "590.44.01")

	e.FakeNVML = writeFakeNVML(t, fakeHost(2, 5, "535.129.03"))
	r := mustFail(t, e, 125, "image "+image+" needs NVIDIA driver 590.44.01 or newer (CUDA_DRIVER_VERSION), and this host has 535.129.03",
		"perceptron", "run", "--gpus", "auto", image, "true")
	if !strings.Contains(r.Stderr, "use nvcr.io/nvidia/pytorch:23.10-py3, the newest pytorch release that driver 535.129.03 runs natively") {
		t.Errorf("no tag to use instead:\n%s", r.Stderr)
	}
	if leases, _ := filepath.Glob(filepath.Join(e.StateDir, "lease-*")); len(leases) > 0 {
		t.Errorf("left a GPU claim: %v", leases)
	}

	e.FakeNVML = writeFakeNVML(t, fakeHost(2, 2, "535.129.03"))
	r = e.Docker("perceptron", "run", "--rm", "--gpus", "auto", image, "echo", "ran")
	if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "ran" {
		t.Fatalf("on data-centre GPUs it runs:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "WARNING: image "+image+" needs NVIDIA driver 590.44.01") || !strings.Contains(r.Stderr, "forward-compatibility mode") {
		t.Errorf("no forward-compatibility warning:\n%s", r.Stderr)
	}
}

// TestInitBuilds: init in an empty directory writes files that docker build
// accepts (FROM a local stand-in of the NGC base: no registry here), and
// refuses to overwrite them.
func TestInitBuilds(t *testing.T) {
	e := newEnv(t)
	const base = "nvcr.io/nvidia/pytorch:23.10-py3"
	// The stand-in base: the test image with a pip that installs nothing.
	ctx := t.TempDir()
	dockerfile := "FROM " + testImage + "\nRUN printf '#!/bin/sh\\necho pip \"$@\"\\n' > /bin/pip && chmod +x /bin/pip\n"
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Extra = append(e.Extra, "DOCKER_BUILDKIT=0")
	e.MustDocker("build", "-q", "-t", base, ctx)
	t.Cleanup(func() { e.Docker("rmi", "-f", base, "proj") })

	dir := filepath.Join(t.TempDir(), "proj")
	e.FakeNVML = writeFakeNVML(t, fakeHost(1, 2, "535.129.03"))
	out := e.MustDocker("perceptron", "init", dir)
	for _, want := range []string{"FROM " + base, "docker build -t proj " + dir, "docker perceptron run --preset pytorch-train proj"} {
		if !strings.Contains(out, want) {
			t.Errorf("init says\n%s\nwithout %q", out, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "train.py"), []byte("print('hi')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.MustDocker("build", "-q", "-t", "proj", dir)
	if got := e.MustDocker("run", "--rm", "proj", "cat", "/workspace/app/train.py"); got != "print('hi')" {
		t.Errorf("the build context was not copied: %q", got)
	}
	mustFail(t, e, 125, "already has Dockerfile and .dockerignore: nothing was written; use --force to overwrite", "perceptron", "init", dir)
}
