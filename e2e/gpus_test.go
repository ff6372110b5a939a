package e2e

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// gpusLine is one line of docker perceptron gpus --format json (see
// docs/gpus-json.md), the fields these tests look at: its keys are the
// field names.
type gpusLine struct {
	Index   int
	UUID    *string
	State   string
	Holders []struct {
		ContainerID   string
		ContainerName string
		User          string
		PIDs          []int
		ByProcess     bool
		ByReservation bool
		State         string
		SeesAll       bool
		Unclaimed     bool
	}
}

// gpusEnv gives e a fake NVML inventory and a reservation cache of its own.
func gpusEnv(t *testing.T, e *Env, spec FakeNVML) {
	e.FakeNVML = writeFakeNVML(t, spec)
	e.Extra = append(e.Extra, "XDG_CACHE_HOME="+t.TempDir())
}

// gpusJSON runs docker perceptron gpus --format json and parses each line.
func gpusJSON(t *testing.T, e *Env) []gpusLine {
	t.Helper()
	out := e.MustDocker("perceptron", "gpus", "--format", "json")
	var lines []gpusLine
	for line := range strings.Lines(out) {
		var l gpusLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v\n%s", line, err, out)
		}
		lines = append(lines, l)
	}
	return lines
}

// gpusUsage runs docker perceptron gpus with a template of index, state and
// holders, and returns its lines by GPU index.
func gpusUsage(t *testing.T, e *Env) []string {
	t.Helper()
	out := e.MustDocker("perceptron", "gpus", "--format", "{{.Index}}|{{.State}}|{{.UsedBy}}")
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, strconv.Itoa(i)+"|") {
			t.Fatalf("line %d is %q:\n%s", i, l, out)
		}
	}
	return lines
}

// gpusContainerName is a container's name without docker's leading "/".
func gpusContainerName(e *Env, id string) string {
	return strings.TrimPrefix(e.Inspect(id, "{{.Name}}"), "/")
}

// TestGpusProcessHolder: a GPU process of a plain docker run container
// (real host PID in the fake NVML) names the container, and its user: no
// label, no Config.User, so the process's owner.
func TestGpusProcessHolder(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		id := e.MustDocker("run", "-d", testImage, "sleep", "600")
		pid, err := strconv.Atoi(e.Inspect(id, "{{.State.Pid}}"))
		if err != nil || pid <= 0 {
			t.Fatalf("container %s has PID %d (%v)", id, pid, err)
		}
		spec := sampleNVML(4)
		spec.GPUs[1].Processes = []FakeProcess{{PID: pid, UsedMemoryMiB: 500}}
		spec.GPUs[1].MemoryUsedMiB = 500
		gpusEnv(t, e, spec)

		name := gpusContainerName(e, id)
		got := gpusUsage(t, e)
		want := []string{"0|free|", "1|busy|" + name + " (root, running, no claim)", "2|free|", "3|free|"}
		if !slices.Equal(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		lines := gpusJSON(t, e)
		if h := lines[1].Holders; len(h) != 1 || h[0].ContainerID != id || !h[0].ByProcess || h[0].ByReservation || !slices.Equal(h[0].PIDs, []int{pid}) {
			t.Errorf("GPU 1 holders: %+v", h)
		}
	})
}

// TestGpusDockerGPUs: docker's own --gpus device=UUID reserves that GPU.
func TestGpusDockerGPUs(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		spec := sampleNVML(4)
		gpusEnv(t, e, spec)
		id := e.MustDocker("run", "-d", "--gpus", `"device=`+spec.GPUs[2].UUID+`"`, testImage, "sleep", "600")

		name := gpusContainerName(e, id)
		got := gpusUsage(t, e)
		want := []string{"0|free|", "1|free|", "2|reserved|" + name + " (running)", "3|free|"}
		if !slices.Equal(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		lines := gpusJSON(t, e)
		h := lines[2].Holders
		if len(h) != 1 || h[0].ContainerID != id || h[0].ContainerName != name || !h[0].ByReservation || h[0].ByProcess || len(h[0].PIDs) != 0 {
			t.Errorf("GPU 2 holders: %+v", h)
		}
	})
}

// TestGpusPerceptronRun: a container from docker perceptron run --gpus auto
// shows as reserved by its user (the com.perceptron.user label).
func TestGpusPerceptronRun(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		spec := sampleNVML(4)
		gpusEnv(t, e, spec)
		id := e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
		id = id[strings.LastIndexByte(id, '\n')+1:]
		user := e.Inspect(id, `{{index .Config.Labels "com.perceptron.user"}}`)
		uuid := e.Inspect(id, `{{index .Config.Labels "com.perceptron.gpus"}}`)
		if user == "" || uuid == "" {
			t.Fatalf("container %s lacks its labels: user %q, GPUs %q", id, user, uuid)
		}
		idx := slices.IndexFunc(spec.GPUs, func(g FakeGPU) bool { return g.UUID == uuid })
		if idx < 0 {
			t.Fatalf("container %s got unknown GPU %q", id, uuid)
		}

		name := gpusContainerName(e, id)
		got := gpusUsage(t, e)
		for i, line := range got {
			want := strconv.Itoa(i) + "|free|"
			if i == idx {
				want = strconv.Itoa(i) + "|reserved|" + name + " (" + user + ", running)"
			}
			if line != want {
				t.Errorf("GPU %d: got %q, want %q", i, line, want)
			}
		}
		h := gpusJSON(t, e)[idx].Holders
		if len(h) != 1 || h[0].ContainerID != id || h[0].User != user || !h[0].ByReservation {
			t.Errorf("GPU %d holders: %+v", idx, h)
		}
	})
}

// TestGpusFormats: the table, JSON lines, -q and templates.
func TestGpusFormats(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		spec := sampleNVML(3)
		spec.GPUs[0].MemoryUsedMiB = 600 // an idle CUDA context: free, as for --gpus auto
		spec.GPUs[1].MemoryUsedMiB = 2000
		spec.GPUs[2].Errors = map[string]string{"temperature": "ERROR_UNKNOWN"}
		gpusEnv(t, e, spec)

		table := strings.Split(e.MustDocker("perceptron", "gpus"), "\n")
		if len(table) != 5 || table[0] != "Driver 580.95.05, CUDA 13.0" || !strings.HasPrefix(table[1], "INDEX") {
			t.Errorf("table:\n%s", strings.Join(table, "\n"))
		}

		lines := gpusJSON(t, e)
		if len(lines) != 3 {
			t.Fatalf("want 3 JSON lines, got %d", len(lines))
		}
		for i, l := range lines {
			if l.Index != i || l.UUID == nil || *l.UUID != spec.GPUs[i].UUID || l.Holders == nil {
				t.Errorf("line %d: %+v", i, l)
			}
		}
		if got := []string{lines[0].State, lines[1].State, lines[2].State}; !slices.Equal(got, []string{"free", "busy", "free"}) {
			t.Errorf("states %v", got)
		}
		raw := strings.Split(e.MustDocker("perceptron", "gpus", "--format", "json"), "\n")
		if !strings.Contains(raw[0], `"TemperatureC":0,`) || !strings.Contains(raw[2], `"TemperatureC":null,`) || !strings.Contains(raw[2], `"Errors":{"temperature":"ERROR_UNKNOWN"}`) {
			t.Errorf("want GPU 0's temperature, and null for GPU 2's:\n%s", strings.Join(raw, "\n"))
		}

		if got := e.MustDocker("perceptron", "gpus", "-q"); got != "0\n1\n2" {
			t.Errorf("-q printed %q", got)
		}
		if got := e.MustDocker("perceptron", "gpus", "-q", "--no-trunc"); got != strings.Join([]string{spec.GPUs[0].UUID, spec.GPUs[1].UUID, spec.GPUs[2].UUID}, "\n") {
			t.Errorf("-q --no-trunc printed %q", got)
		}
		if got := e.MustDocker("perceptron", "gpus", "--format", "{{.Index}} {{.UUID}} {{.Temp}} {{.State}}"); got != "0 GPU-00000000 0C free\n1 GPU-00000000 0C busy\n2 GPU-00000000 - free" {
			t.Errorf("template printed %q", got)
		}
	})
}

// TestGpusNoDriver: without an NVIDIA driver gpus fails in one line, and a
// run that asks for no GPU is not affected.
func TestGpusNoDriver(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		e.FakeNVML = writeFakeNVMLJSON(t, `{"init_error": "ERROR_LIBRARY_NOT_FOUND", "gpus": []}`)
		e.Extra = append(e.Extra, "XDG_CACHE_HOME="+t.TempDir())
		r := e.Docker("perceptron", "gpus")
		stderr := strings.TrimSpace(r.Stderr)
		if r.ExitCode == 0 || r.Stdout != "" || stderr == "" || strings.Contains(stderr, "\n") || !strings.Contains(stderr, "ERROR_LIBRARY_NOT_FOUND") {
			t.Errorf("want a one-line error and a non-zero exit, got %s", r)
		}
		if got := e.MustDocker("perceptron", "run", "--rm", testImage, "echo", "ok"); got != "ok" {
			t.Errorf("run without GPUs printed %q", got)
		}
	})
}

// TestGpusImageEnvWithoutRuntime: NVIDIA_VISIBLE_DEVICES=all in a
// container's env (as every NGC image has) reserves nothing when the
// container runs under runc, the daemon's default, without --gpus: neither
// for gpus nor for --gpus auto.
func TestGpusImageEnvWithoutRuntime(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		gpusEnv(t, e, sampleNVML(2))
		running := e.MustDocker("run", "-d", "-e", "NVIDIA_VISIBLE_DEVICES=all", testImage, "sleep", "600")
		created := e.MustDocker("create", "-e", "NVIDIA_VISIBLE_DEVICES=all", testImage, "sleep", "600")
		t.Logf("runtimes: running %q, created %q (daemon default %q)",
			e.Inspect(running, "{{.HostConfig.Runtime}}"), e.Inspect(created, "{{.HostConfig.Runtime}}"),
			e.MustDocker("info", "--format", "{{.DefaultRuntime}}"))

		if got := gpusUsage(t, e); !slices.Equal(got, []string{"0|free|", "1|free|"}) {
			t.Errorf("got\n%s", strings.Join(got, "\n"))
		}
		r := e.Docker("perceptron", "run", "--rm", "--gpus", "auto:2", testImage, "true")
		if r.ExitCode != 0 {
			t.Errorf("--gpus auto:2 should find both GPUs free: %s", r)
		}
	})
}
