package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// visibleDevices returns the NVIDIA_VISIBLE_DEVICES that a container's
// process sees, as a sorted list.

func visibleDevices(t *testing.T, envOutput string) []string {
	t.Helper()
	for line := range strings.Lines(envOutput) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "NVIDIA_VISIBLE_DEVICES="); ok {
			list := strings.Split(v, ",")
			slices.Sort(list)
			return list
		}
	}
	t.Fatalf("no NVIDIA_VISIBLE_DEVICES in:\n%s", envOutput)
	return nil
}

func uuid(spec FakeNVML, i int) string { return spec.GPUs[i].UUID }

// TestGPUAutoSkipsBusyAndReserved: 8 GPUs, 2 with processes, 1 reserved by a
// plain docker run --gpus: auto:2 gets two of the other five, exactly.
func TestGPUAutoSkipsBusyAndReserved(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		spec := sampleNVML(8)
		spec.GPUs[1].Processes = []FakeProcess{{PID: 4001, UsedMemoryMiB: 2000}}
		spec.GPUs[1].MemoryUsedMiB = 2000
		spec.GPUs[4].Processes = []FakeProcess{{PID: 4002, UsedMemoryMiB: 9000}}
		spec.GPUs[4].MemoryUsedMiB = 9000
		e.FakeNVML = writeFakeNVML(t, spec)
		e.MustDocker("run", "-d", "--gpus", `"device=`+uuid(spec, 6)+`"`, testImage, "sleep", "600")

		r := e.Docker("perceptron", "run", "--gpus", "auto:2", testImage, "env")
		if r.ExitCode != 0 {
			t.Fatalf("%s", r)
		}
		got := visibleDevices(t, r.Stdout)
		if len(got) != 2 {
			t.Fatalf("want 2 GPUs, got %v", got)
		}
		for _, u := range got {
			if u == uuid(spec, 1) || u == uuid(spec, 4) || u == uuid(spec, 6) {
				t.Errorf("got busy or reserved GPU %s", u)
			}
			if !slices.ContainsFunc(spec.GPUs, func(g FakeGPU) bool { return g.UUID == u }) {
				t.Errorf("got unknown GPU %s", u)
			}
		}
		if !strings.Contains(r.Stderr, "using GPU ") {
			t.Errorf("the choice was not shown on stderr:\n%s", r.Stderr)
		}
	})
}

// TestGPUAutoConcurrent: 12 invocations at once on 8 free GPUs: 8 get
// distinct GPUs, 4 exit 125 saying why. Several rounds.
func TestGPUAutoConcurrent(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(8)
	e.FakeNVML = writeFakeNVML(t, spec)
	for round := range 3 {
		var wg sync.WaitGroup
		results := make([]Result, 12)
		start := make(chan struct{})
		for i := range results {
			wg.Go(func() {
				<-start
				results[i] = e.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
			})
		}
		close(start)
		wg.Wait()

		var ids []string
		failed := 0
		for _, r := range results {
			switch r.ExitCode {
			case 0:
				ids = append(ids, strings.TrimSpace(r.Stdout))
			case 125:
				failed++
				if !strings.Contains(r.Stderr, "not enough free GPUs: 1 asked for, 0 free") {
					t.Errorf("round %d: unexpected message:\n%s", round, r)
				}
			default:
				t.Errorf("round %d: %s", round, r)
			}
		}
		if len(ids) != 8 || failed != 4 {
			t.Fatalf("round %d: %d succeeded, %d failed; want 8 and 4", round, len(ids), failed)
		}
		var got []string
		for _, id := range ids {
			env := e.MustDocker("exec", id, "env")
			got = append(got, visibleDevices(t, env)...)
		}
		slices.Sort(got)
		if len(slices.Compact(got)) != 8 {
			t.Fatalf("round %d: GPUs not distinct: %v", round, got)
		}
		e.MustDocker(append([]string{"rm", "-f"}, ids...)...)
	}
}

// TestGPUAutoKilledInvocation: an invocation killed between its choice and
// the container's creation does not keep its GPU.
func TestGPUAutoKilledInvocation(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))

	killed := exec.Command(e.CLI.Path, "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	killed.Env = append(e.environ(), "PERCEPTRON_TEST_PAUSE_AFTER_CLAIM=1m")
	killed.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-killed.Process.Pid, syscall.SIGKILL) }()
	// Wait for its lease: the choice is made.
	var lease struct {
		PID int `json:"pid"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(e.StateDir, "lease-*"))
		if len(files) > 0 {
			b, err := os.ReadFile(files[0])
			if err == nil && json.Unmarshal(b, &lease) == nil && lease.PID > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no lease appeared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// While it lives, the GPU is claimed.
	if r := e.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600"); r.ExitCode != 125 {
		t.Fatalf("the claimed GPU was given again:\n%s", r)
	}
	// SIGKILL the invocation: the plugin process holding the lease (the
	// docker CLI starts it in a process group of its own) and the CLI.
	if err := syscall.Kill(lease.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(-killed.Process.Pid, syscall.SIGKILL)
	_ = killed.Wait()
	for processAlive(lease.PID) {
		time.Sleep(10 * time.Millisecond)
	}
	r := e.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	if r.ExitCode != 0 {
		t.Fatalf("the dead invocation's GPU is still claimed:\n%s", r)
	}
}

// TestGPUAutoWait: a waiter gets the GPU when the holder's container stops.
func TestGPUAutoWait(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	holder := e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", "--name", "holder", testImage, "sleep", "600")

	waitsThenGets(t, e, func() { e.MustDocker("rm", "-f", holder) },
		"waiting for GPUs: not enough free GPUs: 1 asked for, 0 free; GPU 0 held by container holder")
}

// waitsThenGets starts "run --wait --gpus auto", checks that it waits,
// calls release, and checks that the waiter then gets a GPU, having said
// note while it waited.
func waitsThenGets(t *testing.T, e *Env, release func(), note string) {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- e.Docker("perceptron", "run", "--wait", "--gpus", "auto", testImage, "echo", "got it") }()
	select {
	case r := <-done:
		t.Fatalf("did not wait:\n%s", r)
	case <-time.After(3 * time.Second):
	}
	release()
	select {
	case r := <-done:
		if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "got it" {
			t.Fatalf("%s", r)
		}
		if !strings.Contains(r.Stderr, note) {
			t.Errorf("the waiter did not say what it waits for (%q):\n%s", note, r.Stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the waiter did not get a GPU")
	}
}

// TestGPUAutoWaitInterrupted: Ctrl-C stops a waiter cleanly.
func TestGPUAutoWaitInterrupted(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	r := e.Docker("perceptron", "run", "--wait=2s", "--gpus", "auto", testImage, "true")
	if r.ExitCode != 125 || !strings.Contains(r.Stderr, "stopped waiting for GPUs after 2s: the time limit passed") {
		t.Fatalf("%s", r)
	}
	if n := strings.Count(e.MustDocker("ps", "-aq"), "\n") + 1; n != 1 {
		t.Errorf("%d containers, want only the holder", n)
	}
}

// TestGPUAutoTopology: with NVLink quads, auto:2 takes a linked pair and
// auto:4 a linked quad.
func TestGPUAutoTopology(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(8)
	for i := range spec.GPUs {
		base := i / 4 * 4
		for j := base; j < base+4; j++ {
			if j != i {
				spec.GPUs[i].NVLinkPeers = append(spec.GPUs[i].NVLinkPeers, j)
			}
		}
	}
	// GPU 0 is busy: the first quad is broken.
	spec.GPUs[0].Processes = []FakeProcess{{PID: 4001, UsedMemoryMiB: 2000}}
	e.FakeNVML = writeFakeNVML(t, spec)
	quad := func(u string) int {
		for i, g := range spec.GPUs {
			if g.UUID == u {
				return i / 4
			}
		}
		return -1
	}

	// auto:2 finishes the broken quad, and leaves the whole one for auto:4.
	pair := visibleDevices(t, e.MustDocker("perceptron", "run", "--gpus", "auto:2", testImage, "env"))
	if len(pair) != 2 || quad(pair[0]) != 0 || quad(pair[1]) != 0 {
		t.Errorf("auto:2 got %v, want a linked pair of the broken quad (GPUs 1-3)", pair)
	}
	four := visibleDevices(t, e.MustDocker("perceptron", "run", "--gpus", "auto:4", testImage, "env"))
	want := []string{spec.GPUs[4].UUID, spec.GPUs[5].UUID, spec.GPUs[6].UUID, spec.GPUs[7].UUID}
	if !slices.Equal(four, want) {
		t.Errorf("auto:4 got %v, want the whole free quad %v", four, want)
	}
}

// TestGPUAutoThroughPreset: the training presets ask for a GPU.
func TestGPUAutoThroughPreset(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(2)
	e.FakeNVML = writeFakeNVML(t, spec)
	id := e.MustDocker("perceptron", "create", "--preset", "pytorch-train", testImage)
	labels := e.Inspect(id, `{{index .Config.Labels "com.perceptron.gpus"}}`)
	if labels != uuid(spec, 0) && labels != uuid(spec, 1) {
		t.Errorf("com.perceptron.gpus = %q", labels)
	}
	req := e.Inspect(id, "{{json .HostConfig.DeviceRequests}}")
	if !strings.Contains(req, fmt.Sprintf("%q", labels)) {
		t.Errorf("device request %s does not name %s", req, labels)
	}
}

// TestGPUAutoWaitCtrlC: Ctrl-C (SIGINT to the docker CLI, as a terminal
// sends it) stops a waiter cleanly: nothing created, no claim, no place in
// the queue left behind.
func TestGPUAutoWaitCtrlC(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")

	waiter := exec.Command(e.CLI.Path, "perceptron", "run", "--wait", "--gpus", "auto", testImage, "true")
	waiter.Env = e.environ()
	var stderr lockedBuffer
	waiter.Stderr = &stderr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = waiter.Process.Kill() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "waiting for GPUs") {
		if time.Now().After(deadline) {
			t.Fatalf("the waiter did not say it waits:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := waiter.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waiter.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the waiter did not stop on SIGINT:\n%s", stderr.String())
	}
	if waiter.ProcessState.ExitCode() != 130 || !strings.Contains(stderr.String(), "stopped waiting for GPUs after ") || !strings.Contains(stderr.String(), ": interrupted") {
		t.Errorf("exit %d after SIGINT:\n%s", waiter.ProcessState.ExitCode(), stderr.String())
	}
	if n := len(strings.Fields(e.MustDocker("ps", "-aq"))); n != 1 {
		t.Errorf("%d containers, want only the holder", n)
	}
	for _, pattern := range []string{"lease-*", "ticket-*"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			left, _ := filepath.Glob(filepath.Join(e.StateDir, pattern))
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("left behind: %v", left)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// lockedBuffer is a bytes.Buffer that a process writes while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
