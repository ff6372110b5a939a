package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sitePolicy writes a site policy file owned by root (the suite runs as
// root) and points the plugin at it.
func sitePolicy(t *testing.T, e *Env, text string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "perceptron")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Extra = append(e.Extra, "PERCEPTRON_TEST_POLICY="+path)
	return path
}

// TestPolicyQuota: a user at the site's quota is refused (exit 125, the
// policy, the limit, what they hold; nothing created), and with --wait gets
// a GPU once one of theirs ends.
func TestPolicyQuota(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(3))
	path := sitePolicy(t, e, "max-gpus:\n  default: 1\n")
	first := lastLine(e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600"))
	mustFail(t, e, 125, "the site policy "+path+" allows root at most 1 GPU(s) through --gpus auto (default); root holds 1 now (GPU 0) and asks for 1",
		"perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	mustFail(t, e, 125, "at most 1 GPU(s)", "perceptron", "run", "-d", "--wait", "--gpus", "auto:2", testImage, "sleep", "600")

	waitsThenGets(t, e, func() { e.MustDocker("rm", "-f", first) }, "waiting for GPUs: the site policy")
}

// TestPolicyExpired: a reservation idle (by NVML's accounting) for longer
// than max-idle shows expired with its holder named, and another run's
// --gpus auto takes it when no GPU is free, saying whose it takes. A GPU
// with a process is never taken.
func TestPolicyExpired(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(2)
	for i := range spec.GPUs {
		spec.GPUs[i].Accounting = &FakeAccounting{Processes: []FakeAccountedProcess{{PID: 7, Start: time.Now().Add(-5 * time.Hour), Seconds: 60}}}
	}
	busy := lastLine(e.MustDocker("run", "-d", "--gpus", `"device=`+uuid(spec, 1)+`"`, testImage, "sleep", "600"))
	pid, _ := strconv.Atoi(e.Inspect(busy, "{{.State.Pid}}"))
	spec.GPUs[1].Processes = []FakeProcess{{PID: pid, UsedMemoryMiB: 500}}
	gpusEnv(t, e, spec)
	sitePolicy(t, e, "max-idle: 2s\n")
	e.MustDocker("create", "--name", "idle", "--label", "com.perceptron.user=bob", "--gpus", `"device=`+uuid(spec, 0)+`"`, testImage, "sleep", "600")
	time.Sleep(3 * time.Second)

	got := gpusUsage(t, e)
	if !strings.HasPrefix(got[0], "0|expired|idle (bob, created)") || !strings.HasPrefix(got[1], "1|busy+reserved|") {
		t.Errorf("gpus:\n%s", strings.Join(got, "\n"))
	}
	if out := e.MustDocker("perceptron", "gpus", "-q", "--filter", "state=expired"); out != "0" {
		t.Errorf("--filter state=expired: %q", out)
	}
	r := e.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	want := "taking an expired reservation (site policy "
	if !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "GPU 0 held by container idle (bob), idle for") {
		t.Errorf("the run did not say whose reservation it took:\n%s", r.Stderr)
	}
	if got := visibleDevices(t, e.MustDocker("exec", lastLine(r.Stdout), "env")); len(got) != 1 || got[0] != uuid(spec, 0) {
		t.Errorf("the run got %v, want GPU 0", got)
	}
	// Now GPU 0 is held afresh, and GPU 1 has a process: nothing is left.
	mustFail(t, e, 125, "not enough free GPUs", "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
}

// TestPolicyIgnored: a policy file that others can write is not used, and
// run and doctor say so.
func TestPolicyIgnored(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
	path := sitePolicy(t, e, "max-gpus: {default: 0}\n")
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	r := e.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	if r.ExitCode != 0 || !strings.Contains(r.Stderr, "WARNING: site policy ignored: "+path+" is writable by others (mode 0666)") {
		t.Fatalf("%s", r)
	}
	d := e.Docker("perceptron", "doctor", "--format", "{{.Check}} {{.Detail}}")
	if !strings.Contains(d.Stdout, "policy") || !strings.Contains(d.Stdout, "site policy ignored: "+path) {
		t.Errorf("doctor does not report the ignored policy:\n%s", d)
	}
}

// TestGpusUnclaimedUse: a plain docker run --gpus all container with a
// process on a GPU is flagged: it sees every GPU and has no claim; the
// free GPUs are exactly what --filter state=free lists.
func TestGpusUnclaimedUse(t *testing.T) {
	e := newEnv(t)
	id := lastLine(e.MustDocker("run", "-d", "--gpus", "all", testImage, "sleep", "600"))
	pid, _ := strconv.Atoi(e.Inspect(id, "{{.State.Pid}}"))
	spec := sampleNVML(4)
	spec.GPUs[1].Processes = []FakeProcess{{PID: pid, UsedMemoryMiB: 500}}
	gpusEnv(t, e, spec)
	name := gpusContainerName(e, id)
	got := gpusUsage(t, e)
	if want := "1|busy+reserved|" + name + " (root, running, sees all GPUs, no claim)"; got[1] != want {
		t.Errorf("GPU 1: %q, want %q", got[1], want)
	}
	if want := "0|reserved|" + name + " (running, sees all GPUs)"; got[0] != want {
		t.Errorf("GPU 0: %q, want %q", got[0], want)
	}
	h := gpusJSON(t, e)[1].Holders
	if len(h) != 1 || !h[0].Unclaimed || !h[0].SeesAll || h[0].State != "running" {
		t.Errorf("GPU 1 holders: %+v", h)
	}

	e.MustDocker("rm", "-f", id)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(4)) // its process is gone too
	claimed := lastLine(e.MustDocker("perceptron", "run", "-d", "--gpus", "auto:2", testImage, "sleep", "600"))
	if out := e.MustDocker("perceptron", "gpus", "-q", "--filter", "state=free"); out != "2\n3" {
		t.Errorf("--filter state=free: %q, want GPUs 2 and 3 (%s holds 0 and 1)", out, claimed)
	}
}

// lastLine is the last line of a command's output (a container ID after
// the plugin's notes).
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
