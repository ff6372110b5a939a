package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

// migNVML is gpustest.MIGA100s with GPU 2 split into 4g.40gb and three
// 1g.10gb: GPU 1's first 1g.10gb is busy (process 5151), so the host has
// four free 1g.10gb slices, one on GPU 1 and three on GPU 2.
func migNVML() FakeNVML {
	spec := gpustest.MIGA100s()
	spec.GPUs[2].MIGDevices = nil
	for j, p := range []string{"4g.40gb", "1g.10gb", "1g.10gb", "1g.10gb"} {
		spec.GPUs[2].MIGDevices = append(spec.GPUs[2].MIGDevices, gpustest.MIGDevice{
			UUID: fmt.Sprintf("MIG-2-%d-aaaa-bbbb-cccc-dddddddddddd", j), Profile: p,
		})
	}
	return spec
}

func migUUID(spec FakeNVML, gpu, index int) string { return spec.GPUs[gpu].MIGDevices[index].UUID }

// TestGPUAutoMIG: auto:mig=1g.10gb gets a free slice by its MIG UUID (the
// partly used GPU's first), a second run gets another, a slice held by a
// plain docker run --gpus "device=MIG-…" is not given out, and when none
// is left the run is refused naming the holders.
func TestGPUAutoMIG(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		spec := migNVML()
		e.FakeNVML = writeFakeNVML(t, spec)
		got := func(r Result) string {
			t.Helper()
			if r.ExitCode != 0 {
				t.Fatalf("%s", r)
			}
			id := strings.TrimSpace(r.Stdout)
			reqs := e.Inspect(id, "{{json .HostConfig.DeviceRequests}}")
			label := e.Inspect(id, `{{index .Config.Labels "com.perceptron.gpus"}}`)
			if !strings.Contains(reqs, `"`+label+`"`) {
				t.Errorf("the device request %s does not name the claimed slice %s", reqs, label)
			}
			return label
		}

		first := got(e.Docker("perceptron", "run", "-d", "--gpus", "auto:mig=1g.10gb", testImage, "sleep", "600"))
		if first != migUUID(spec, 1, 1) {
			t.Errorf("first: want GPU 1's free 1g.10gb %s, got %s", migUUID(spec, 1, 1), first)
		}
		second := got(e.Docker("perceptron", "run", "-d", "--gpus", "auto:mig=1g.10gb", testImage, "sleep", "600"))
		if second != migUUID(spec, 2, 1) {
			t.Errorf("second: want %s, got %s", migUUID(spec, 2, 1), second)
		}

		// A plain docker run holds the next one.
		e.MustDocker("run", "-d", "--name", "plain-mig", "--gpus", `"device=`+migUUID(spec, 2, 2)+`"`, testImage, "sleep", "600")
		third := got(e.Docker("perceptron", "run", "-d", "--gpus", "auto:mig=1g.10gb", testImage, "sleep", "600"))
		if third != migUUID(spec, 2, 3) {
			t.Errorf("third: want %s (not the plain container's %s), got %s", migUUID(spec, 2, 3), migUUID(spec, 2, 2), third)
		}

		// gpus shows the slices under their GPU, with their holders.
		table := e.MustDocker("perceptron", "gpus")
		for _, want := range []string{"2:2       MIG 1g.10gb", "plain-mig"} {
			if !strings.Contains(table, want) {
				t.Errorf("gpus lacks %q:\n%s", want, table)
			}
		}
		for line := range strings.Lines(table) {
			if strings.HasPrefix(line, "2:2 ") && (!strings.Contains(line, "reserved") || !strings.Contains(line, "plain-mig")) {
				t.Errorf("gpus: want MIG 2:2 reserved by plain-mig, got %q", line)
			}
		}

		r := e.Docker("perceptron", "run", "-d", "--gpus", "auto:mig=1g.10gb", testImage, "sleep", "600")
		if r.ExitCode != 125 || !strings.Contains(r.Stderr, "not enough free MIG 1g.10gb slices: 1 asked for, 0 free") ||
			!strings.Contains(r.Stderr, "MIG 2:2 (1g.10gb) held by container plain-mig") {
			t.Errorf("fourth: want a refusal naming plain-mig, got %s", r)
		}

		// auto:mig>=30g: a 40gb slice (the smallest with 30 GB), on GPU 2,
		// whose slices are now the more used.
		if big := got(e.Docker("perceptron", "run", "-d", "--gpus", "auto:mig>=30g", testImage, "sleep", "600")); big != migUUID(spec, 2, 0) {
			t.Errorf("mig>=30g: want GPU 2's 4g.40gb %s, got %s", migUUID(spec, 2, 0), big)
		}
	})
}
