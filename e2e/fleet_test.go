package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fleetHost is one "server" of a test fleet: a private dockerd, its own
// fake NVML and its own state directory, reached through a docker context
// and the fleet file's command, which runs the plugin with that host's
// environment (as ssh to that server would).
type fleetHost struct {
	name   string
	daemon *Daemon
	nvml   string
	state  string
}

// fleetEnv is a client Env (its daemon: the first host's) whose fleet file
// lists hosts, and the hosts.
func fleetEnv(t *testing.T, specs ...FakeNVML) (*Env, []fleetHost) {
	t.Helper()
	var hosts []fleetHost
	for i, spec := range specs {
		hosts = append(hosts, fleetHost{
			name: fmt.Sprintf("h%d", i+1), daemon: startDaemon(t, DaemonOptions{}),
			nvml: writeFakeNVML(t, spec), state: t.TempDir(),
		})
	}
	e := newEnvOn(t, hosts[0].daemon)
	var file strings.Builder
	file.WriteString("hosts:\n")
	for _, h := range hosts {
		e.MustDocker("context", "create", h.name, "--docker", "host="+h.daemon.Host)
		command := []string{"env", "DOCKER_HOST=" + h.daemon.Host, "DOCKER_CONFIG=" + e.Config,
			"PERCEPTRON_FAKE_NVML=" + h.nvml, "PERCEPTRON_STATE_DIR=" + h.state, "XDG_CACHE_HOME=" + h.state,
			e.CLI.Path, "perceptron", "host-api"}
		fmt.Fprintf(&file, "  - context: %s\n    command: [%s]\n", h.name, strings.Join(command, ", "))
	}
	writeFleetFile(t, e, file.String())
	return e, hosts
}

func writeFleetFile(t *testing.T, e *Env, text string) {
	t.Helper()
	dir := filepath.Join(e.Config, "perceptron")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// linkedHost is 4 GPUs in two NVLinked pairs (0-1, 2-3), UUIDs marked by
// tag so that two hosts' GPUs differ.
func linkedHost(tag string) FakeNVML {
	spec := sampleNVML(4)
	for i := range spec.GPUs {
		spec.GPUs[i].UUID = fmt.Sprintf("GPU-%s0000000-0000-0000-0000-%012d", tag, i)
		spec.GPUs[i].NVLinkPeers = []int{i ^ 1}
	}
	return spec
}

// TestFleet: gpus --fleet shows every host; run --fleet --gpus auto:2
// lands on the host with two free linked GPUs and the container sees
// exactly them; with that host full the job goes to the other; an
// unreachable host and one that speaks another interface version are one
// line each, and the view and the runs still work.
func TestFleet(t *testing.T) {
	busy := sampleNVML(4) // host 1: GPUs 0, 1 busy; 2, 3 free but not linked
	for i := range busy.GPUs {
		busy.GPUs[i].UUID = fmt.Sprintf("GPU-a0000000-0000-0000-0000-%012d", i)
	}
	busy.GPUs[0].Processes = []FakeProcess{{PID: 4001}}
	busy.GPUs[1].Processes = []FakeProcess{{PID: 4002}}
	e, hosts := fleetEnv(t, busy, linkedHost("b"))

	view := e.MustDocker("perceptron", "gpus", "--fleet")
	for _, want := range []string{"HOST", "h1        0", "h2        3", "busy", "free"} {
		if !strings.Contains(view, want) {
			t.Errorf("gpus --fleet lacks %q:\n%s", want, view)
		}
	}

	r := e.Docker("perceptron", "run", "-d", "--fleet", "--gpus", "auto:2", testImage, "sleep", "600")
	if r.ExitCode != 0 || !strings.Contains(r.Stderr, "on h2: using GPU 0 (GPU-b") {
		t.Fatalf("the job did not land on h2's linked pair:\n%s", r)
	}
	id := lastLine(r.Stdout)
	seen := visibleDevices(t, e.MustDocker("--context", "h2", "exec", id, "env"))
	if !slices.Equal(seen, []string{linkedHost("b").GPUs[0].UUID, linkedHost("b").GPUs[1].UUID}) {
		t.Errorf("the container sees %v", seen)
	}
	// h2's own docker perceptron sees the claim: its GPUs 0 and 1 are held.
	if out := e.MustDocker("perceptron", "gpus", "--fleet", "--format", "{{.Host}}:{{.Index}}:{{.State}}"); !strings.Contains(out, "h2:0:reserved") || !strings.Contains(out, "h2:1:reserved") {
		t.Errorf("h2 does not hold the job's GPUs:\n%s", out)
	}

	// The next pair on h2 is as good as h1's two unlinked GPUs are not:
	// h2 again; then h2 is full and h1 takes the job.
	r = e.Docker("perceptron", "run", "-d", "--fleet", "--gpus", "auto:2", testImage, "sleep", "600")
	if r.ExitCode != 0 || !strings.Contains(r.Stderr, "on h2:") {
		t.Fatalf("%s", r)
	}
	r = e.Docker("perceptron", "run", "-d", "--fleet", "--gpus", "auto:2", testImage, "sleep", "600")
	if r.ExitCode != 0 || !strings.Contains(r.Stderr, "on h1: using GPU 2") {
		t.Fatalf("the job did not go to h1 with h2 full:\n%s", r)
	}
	mustFail(t, e, 125, "no host of the fleet can take 1 GPU(s) now (h1: 0 of 4 GPUs free; h2: 0 of 4 GPUs free)",
		"perceptron", "run", "-d", "--fleet", "--gpus", "auto", testImage, "sleep", "600")

	// A host that does not answer, and one that speaks another version.
	fleetFile, _ := os.ReadFile(filepath.Join(e.Config, "perceptron", "fleet.yaml"))
	e.MustDocker("context", "create", "down", "--docker", "host=unix:///nonexistent.sock")
	e.MustDocker("context", "create", "newer", "--docker", "host=unix:///nonexistent.sock")
	writeFleetFile(t, e, string(fleetFile)+"  - context: down\n    command: [sh, -c, 'echo no route to host >&2; exit 255']\n"+
		"  - context: newer\n    command: [sh, -c, 'read line; echo {\\\"Version\\\": 99}']\n")
	view = e.MustDocker("perceptron", "gpus", "--fleet")
	if !strings.Contains(view, "down") || !strings.Contains(view, "no route to host") || !strings.Contains(view, "newer docker perceptron (machine interface 99") {
		t.Errorf("gpus --fleet with a host down:\n%s", view)
	}
	ls := e.MustDocker("perceptron", "fleet", "ls")
	for _, want := range []string{"h1", "4 GPUs, 0 free", "down", "no route to host"} {
		if !strings.Contains(ls, want) {
			t.Errorf("fleet ls lacks %q:\n%s", want, ls)
		}
	}
	e.MustDocker("--context", "h2", "rm", "-f", id)
	r = e.Docker("perceptron", "run", "-d", "--fleet", "--gpus", "auto:2", testImage, "sleep", "600")
	if r.ExitCode != 0 || !strings.Contains(r.Stderr, "on h2:") {
		t.Fatalf("with a host down the run still works:\n%s", r)
	}
	_ = hosts
}

// TestFleetConcurrent: 12 runs at once over two 4-GPU hosts give 8
// containers on 8 distinct (host, GPU) pairs and 4 clear refusals, twice.
func TestFleetConcurrent(t *testing.T) {
	e, _ := fleetEnv(t, linkedHost("c"), linkedHost("d"))
	for round := range 2 {
		results := make([]Result, 12)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				results[i] = e.Docker("perceptron", "run", "-d", "--fleet", "--gpus", "auto", testImage, "sleep", "600")
			})
		}
		wg.Wait()
		var ok, refused int
		got := map[string]bool{}
		for _, r := range results {
			switch {
			case r.ExitCode == 0:
				ok++
				line := r.Stderr[strings.Index(r.Stderr, "on h"):]
				pair := line[:strings.Index(line, ",")] // "on hN: using GPU i (GPU-…"
				if got[pair] {
					t.Errorf("round %d: %s given twice", round, pair)
				}
				got[pair] = true
			case r.ExitCode == 125 && strings.Contains(r.Stderr, "no host of the fleet can take 1 GPU(s) now"):
				refused++
			default:
				t.Errorf("round %d: %s", round, r)
			}
		}
		if ok != 8 || refused != 4 {
			t.Fatalf("round %d: %d ran, %d refused; want 8 and 4", round, ok, refused)
		}
		for _, ctx := range []string{"h1", "h2"} {
			if ids := strings.Fields(e.MustDocker("--context", ctx, "ps", "-q")); len(ids) > 0 {
				e.MustDocker(append([]string{"--context", ctx, "rm", "-f"}, ids...)...)
			}
		}
	}
}

// TestFleetDryRunAndWait: --dry-run prints the docker --context line of
// the host it would land on; --wait with --fleet says why it cannot be.
func TestFleetDryRunAndWait(t *testing.T) {
	e, _ := fleetEnv(t, linkedHost("e"), linkedHost("f"))
	out := e.MustDocker("perceptron", "run", "--dry-run", "--fleet", "--gpus", "auto:2", testImage, "true")
	if !strings.HasPrefix(out, "docker --context h1 run ") || !strings.Contains(out, `"device=`+linkedHost("e").GPUs[0].UUID+","+linkedHost("e").GPUs[1].UUID+`"`) {
		t.Errorf("dry run: %s", out)
	}
	mustFail(t, e, 125, "--wait with --fleet: which host frees its GPUs first cannot be known", "perceptron", "run", "--wait", "--fleet", "--gpus", "auto", testImage, "true")
	mustFail(t, e, 125, "--fleet chooses a host by its free GPUs: use it with --gpus auto[:N]", "perceptron", "run", "--fleet", testImage, "true")
}
