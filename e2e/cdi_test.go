package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCDISpec writes, in a directory of its own, a CDI spec of kind
// nvidia.com/gpu for the fake GPUs (and their MIG devices) by index and by
// UUID, as nvidia-ctk cdi generate names them; each device's only edit is
// an environment variable naming it, so that a container shows which it
// got. It returns the directory, for dockerd's --cdi-spec-dir.
func writeCDISpec(t testing.TB, spec FakeNVML) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ncontainerEdits:\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\ndevices:\n")
	device := func(name, uuid string) {
		fmt.Fprintf(&b, "- name: %q\n  containerEdits:\n    env:\n    - CDI_GPU_%s=%s\n", name, strings.NewReplacer("-", "_", ":", "_").Replace(name), uuid)
	}
	for i, g := range spec.GPUs {
		device(fmt.Sprint(i), g.UUID)
		device(g.UUID, g.UUID)
		for j, m := range g.MIGDevices {
			device(fmt.Sprintf("%d:%d", i, j), m.UUID)
			device(m.UUID, m.UUID)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nvidia.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cdiOnlyDaemon starts a Docker 29 daemon whose GPUs come only from CDI: a
// spec for spec's GPUs in its CDI directory, no stand-in hook on its PATH
// (so docker's own --gpus has no driver). Docker 20.10 has no CDI: the
// test is skipped there.
func cdiOnlyDaemon(t *testing.T, spec FakeNVML) *Daemon {
	t.Helper()
	if kindOf(t).Name != "d29" {
		t.Skip("dockerd 20.10 has no CDI")
	}
	return startDaemon(t, DaemonOptions{WithoutNvidiaHook: true, Args: []string{"--cdi-spec-dir", writeCDISpec(t, spec)}})
}

// TestCDIOnlyDaemon: on a daemon that provides GPUs through CDI only,
// --gpus auto creates the container with nvidia.com/gpu=UUID device
// requests (not --gpus, which this daemon refuses), gpus attributes the
// container, the next --gpus auto gets the other GPU, and a run starts
// with the device's CDI edits.
func TestCDIOnlyDaemon(t *testing.T) {
	spec := sampleNVML(2)
	d := cdiOnlyDaemon(t, spec)
	for _, c := range cliPaths(t) {
		t.Run(c.Name, func(t *testing.T) {
			e := newEnvOn(t, d)
			e.CLI = c
			e.FakeNVML = writeFakeNVML(t, spec)

			r := e.Docker("perceptron", "create", "--gpus", "auto", "--name", "cdi-first", testImage, "sleep", "600")
			if r.ExitCode != 0 {
				t.Fatalf("create --gpus auto: %s", r)
			}
			first := spec.GPUs[0].UUID
			reqs := e.Inspect("cdi-first", "{{json .HostConfig.DeviceRequests}}")
			if !strings.Contains(reqs, `"Driver":"cdi"`) || !strings.Contains(reqs, `"nvidia.com/gpu=`+first+`"`) {
				t.Errorf("want a CDI device request for %s, got %s", first, reqs)
			}
			if strings.Contains(reqs, `"gpu"`) {
				t.Errorf("want no --gpus device request on a CDI-only daemon, got %s", reqs)
			}

			out := e.MustDocker("perceptron", "gpus", "--format", "{{.Index}} {{.State}} {{.UsedBy}}")
			if !strings.Contains(out, "0 reserved cdi-first") {
				t.Errorf("gpus does not attribute GPU 0 to cdi-first:\n%s", out)
			}

			r = e.Docker("perceptron", "run", "--rm", "--gpus", "auto", testImage, "env")
			if r.ExitCode != 0 {
				t.Fatalf("run --gpus auto: %s", r)
			}
			second := spec.GPUs[1].UUID
			if !strings.Contains(r.Stdout, "CDI_GPU_"+strings.ReplaceAll(second, "-", "_")+"="+second) {
				t.Errorf("the run did not get GPU 1 through CDI:\n%s", r)
			}
			e.MustDocker("rm", "-f", "cdi-first")
		})
	}
}
