package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

// The attacks of issue #9 on the promise "two users never get the same GPU",
// each shown breaking the ledger before it was fixed.

// mustFail runs docker with args and wants exit status code, nothing left
// behind, and want in stderr.
func mustFail(t *testing.T, e *Env, code int, want string, args ...string) Result {
	t.Helper()
	before := e.MustDocker("ps", "-aq")
	r := e.Docker(args...)
	if r.ExitCode != code || !strings.Contains(r.Stderr, want) {
		t.Fatalf("want exit %d and %q:\n%s", code, want, r)
	}
	if after := e.MustDocker("ps", "-aq"); after != before {
		t.Errorf("containers left behind:\nbefore %q\nafter  %q", before, after)
	}
	return r
}

// TestLedgerLabelsAreNotBelieved: a user's labels and a second --gpus can
// neither hide a claim nor give the container other GPUs than the claimed
// ones; what a container holds is its device request.
func TestLedgerLabelsAreNotBelieved(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(1)
	e.FakeNVML = writeFakeNVML(t, spec)
	mustFail(t, e, 125, "--gpus auto cannot be combined with another --gpus",
		"perceptron", "run", "-d", "--gpus", "auto", "--gpus", `"device=`+uuid(spec, 0)+`"`, testImage, "sleep", "600")
	mustFail(t, e, 125, "--gpus auto cannot be combined with another --gpus",
		"perceptron", "run", "-d", "--gpus", "auto", "--gpus", "all", testImage, "sleep", "600")
	mustFail(t, e, 125, `invalid --label "com.perceptron.gpus"`,
		"perceptron", "run", "-d", "--gpus", "auto", "--label", "com.perceptron.gpus=", testImage, "sleep", "600")
	writeUserPresets(t, e, "sneaky:\n  label: [com.perceptron.user=root]\n")
	mustFail(t, e, 125, `invalid --label "com.perceptron.user"`,
		"perceptron", "run", "-d", "--preset", "sneaky", testImage, "sleep", "600")

	// Plain docker can set any label: a container whose labels say it
	// holds nothing still holds the GPU it asked docker for.
	e.MustDocker("run", "-d", "--label", "com.perceptron.gpus=", "--label", "com.perceptron.user=nobody",
		"--gpus", `"device=`+uuid(spec, 0)+`"`, testImage, "sleep", "600")
	mustFail(t, e, 125, "not enough free GPUs: 1 asked for, 0 free",
		"perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
}

// TestLedgerFailedStartFreesGPU: a run whose container cannot start (its
// command does not exist) removes that container, keeps docker's error and
// exit status, and the GPU is free again.
func TestLedgerFailedStartFreesGPU(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	r := e.Docker("perceptron", "run", "--gpus", "auto", testImage, "/no/such/command")
	if r.ExitCode != 127 || !strings.Contains(r.Stderr, "which did not start; its GPUs are free again") {
		t.Fatalf("want docker's exit 127 and the removal said:\n%s", r)
	}
	if ps := e.MustDocker("ps", "-aq"); ps != "" {
		t.Errorf("the container that did not start is still there: %s", ps)
	}
	e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
}

// TestLedgerStaleContainer: a container that a `run` created and never
// started (the run was killed) holds its GPU for a lease time only; then
// `gpus` shows it stale and the GPU goes to the next run.
func TestLedgerStaleContainer(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(1)
	e.FakeNVML = writeFakeNVML(t, spec)
	e.Extra = append(e.Extra, "PERCEPTRON_TEST_LEASE_TTL=2s")
	// What a killed run leaves: created, with its claim, never started.
	e.MustDocker("create", "--name", "orphan", "--label", "com.perceptron.claim=KILLED", "--label", "com.perceptron.command=run",
		"--gpus", `"device=`+uuid(spec, 0)+`"`, testImage, "sleep", "600")
	mustFail(t, e, 125, "GPU 0 held by container orphan", "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	time.Sleep(3 * time.Second)
	if got := gpusUsage(t, e); len(got) != 1 || got[0] != "0|free|orphan (stale, created)" {
		t.Errorf("gpus: %q, want the GPU free and the container stale", got)
	}
	e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")

	// One from `docker perceptron create` keeps its GPU: that is what
	// create is for.
	e2 := newEnv(t)
	e2.FakeNVML = writeFakeNVML(t, spec)
	e2.Extra = e.Extra
	e.MustDocker("rm", "-f", "orphan")
	for _, id := range strings.Fields(e.MustDocker("ps", "-q")) {
		e.MustDocker("rm", "-f", id)
	}
	e2.MustDocker("perceptron", "create", "--name", "kept", "--gpus", "auto", testImage, "sleep", "600")
	time.Sleep(3 * time.Second)
	mustFail(t, e2, 125, "GPU 0 held by container kept", "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
}

// TestLedgerStoppedRun: a run stopped (SIGSTOP) after its claim for longer
// than the lease, whose GPU went to someone else meanwhile, never uses the
// expired claim.
func TestLedgerStoppedRun(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	e.Extra = append(e.Extra, "PERCEPTRON_TEST_LEASE_TTL=1s")
	stopped := exec.Command(e.CLI.Path, "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	stopped.Env = append(e.environ(), "PERCEPTRON_TEST_PAUSE_AFTER_CLAIM=2s")
	var stderr lockedBuffer
	stopped.Stderr = &stderr
	if err := stopped.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stopped.Process.Kill() }()
	pid := waitLeasePID(t, e)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the lease runs out
	e.MustDocker("perceptron", "run", "-d", "--name", "meanwhile", "--gpus", "auto", testImage, "sleep", "600")
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	err := stopped.Wait()
	if code := stopped.ProcessState.ExitCode(); err == nil || code != 125 || !strings.Contains(stderr.String(), "the GPU claim expired before the container was created") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if ps := strings.Fields(e.MustDocker("ps", "-aq")); len(ps) != 1 {
		t.Errorf("containers %v: want only the one made meanwhile", ps)
	}
}

// waitLeasePID waits for a lease in e's state directory and returns the PID
// of the docker perceptron that holds it.
func waitLeasePID(t *testing.T, e *Env) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(e.StateDir, "lease-*"))
		for _, f := range files {
			var lease struct {
				PID int `json:"pid"`
			}
			if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &lease) == nil && lease.PID > 0 {
				return lease.PID
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no lease appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLedgerDaemonUnreachable: when the containers cannot be listed, gpus
// shows no GPU free and exits 1, --gpus auto gives none out, and once the
// daemon answers again the holders it knew are still honoured (a failed
// listing used to empty the reservation cache).
func TestLedgerDaemonUnreachable(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(2)
	e.FakeNVML = writeFakeNVML(t, spec)
	cache := t.TempDir()
	e.Extra = append(e.Extra, "XDG_CACHE_HOME="+cache)
	e.MustDocker("perceptron", "run", "-d", "--name", "holder", "--gpus", "auto", testImage, "sleep", "600")
	for i := range 9 { // the holder is no longer among the newest containers
		e.MustDocker("create", testImage, "true", fmt.Sprint(i))
	}
	e.MustDocker("perceptron", "gpus") // the cache knows the holder

	down := *e
	down.Extra = append(append([]string{}, e.Extra...), "DOCKER_HOST=unix://"+filepath.Join(t.TempDir(), "gone.sock"))
	r := down.Docker("perceptron", "gpus", "--format", "{{.Index}} {{.State}}")
	if r.ExitCode != 1 || strings.Contains(r.Stdout, "free") || !strings.Contains(r.Stderr, "who holds the GPUs is unknown") {
		t.Fatalf("want no GPU free and exit 1:\n%s", r)
	}
	if r := down.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600"); r.ExitCode != 125 {
		t.Fatalf("--gpus auto without the daemon:\n%s", r)
	}
	// The daemon is back: the holder's GPU is still held.
	got := visibleDevices(t, e.MustDocker("perceptron", "run", "--rm", "--gpus", "auto", testImage, "env"))
	held := strings.TrimSpace(e.Inspect("holder", `{{index .Config.Labels "com.perceptron.gpus"}}`))
	if len(got) != 1 || got[0] == held {
		t.Errorf("got %v while the holder has %s", got, held)
	}
}

// TestLedgerImpossibleWait: --wait for more GPUs than the host has ends at
// once; a wait deadline ends with the same words whatever it interrupts.
func TestLedgerImpossibleWait(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(8))
	start := time.Now()
	mustFail(t, e, 125, "not enough free GPUs: 9 asked for, 8 free (this host has 8)",
		"perceptron", "run", "--wait", "--gpus", "auto:9", testImage, "true")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s", d)
	}
	mustFail(t, e, 125, "stopped waiting for GPUs", "perceptron", "run", "--wait=1ns", "--gpus", "auto", testImage, "true")
}

// TestLedgerUnreadableUUID: a GPU whose UUID NVML cannot read could only be
// handed out by index and never recorded: it is unknown, never chosen.
func TestLedgerUnreadableUUID(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(2)
	spec.GPUs[0].Errors = map[string]string{"uuid": "ERROR_UNKNOWN"}
	e.FakeNVML = writeFakeNVML(t, spec)
	got := visibleDevices(t, e.MustDocker("perceptron", "run", "--rm", "--gpus", "auto", testImage, "env"))
	if len(got) != 1 || got[0] != uuid(spec, 1) {
		t.Errorf("got %v, want only GPU 1", got)
	}
	mustFail(t, e, 125, "GPU 0: UUID unknown: ERROR_UNKNOWN", "perceptron", "run", "--rm", "--gpus", "auto:2", testImage, "env")
	if usage := gpusUsage(t, e); len(usage) != 2 || !strings.HasPrefix(usage[0], "0|unknown") {
		t.Errorf("gpus: %q", usage)
	}
}

// concurrentRuns starts n `docker perceptron run -d --gpus auto` at once
// and returns the GPUs the containers that started see, and how many runs
// were refused for want of a free GPU.
func concurrentRuns(t *testing.T, e *Env, n int) (gpus []string, refused int) {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]Result, n)
	start := make(chan struct{})
	for i := range results {
		wg.Go(func() {
			<-start
			results[i] = e.Docker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
		})
	}
	close(start)
	wg.Wait()
	for _, r := range results {
		switch {
		case r.ExitCode == 0:
			gpus = append(gpus, visibleDevices(t, e.MustDocker("exec", strings.TrimSpace(r.Stdout), "env"))...)
		case r.ExitCode == 125 && strings.Contains(r.Stderr, "not enough free GPUs"):
			refused++
		default:
			t.Errorf("%s", r)
		}
	}
	return gpus, refused
}

// TestLedgerSlowListing: with every container listing slowed down, a claim
// whose listing started before another run created its container still
// sees that run's claim: the leases are read before the containers, and a
// lease is released under the lock.
func TestLedgerSlowListing(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(6))
	e.Extra = append(e.Extra, "PERCEPTRON_TEST_SLOW_LIST=300ms")
	got, refused := concurrentRuns(t, e, 8)
	slices.Sort(got)
	if len(got) != 6 || len(slices.Compact(slices.Clone(got))) != 6 || refused != 2 {
		t.Fatalf("GPUs %v, %d refused: want 6 distinct GPUs and 2 refused", got, refused)
	}
}

// TestLedgerBusyDaemon: 16 concurrent runs on a daemon holding 2000 other
// containers give out 16 distinct GPUs (measured before: 13 to 15).
func TestLedgerBusyDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a daemon with 2000 containers")
	}
	d := startDaemon(t, DaemonOptions{})
	e := newEnvOn(t, d)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(16))
	fill(t, e, 2000)
	got, refused := concurrentRuns(t, e, 16)
	slices.Sort(got)
	if len(got) != 16 || len(slices.Compact(slices.Clone(got))) != 16 || refused != 0 {
		t.Fatalf("GPUs %v, %d refused: want 16 distinct GPUs", got, refused)
	}
}

// sharedStateDir is a state directory as a system install makes it: root's,
// mode 1777, reachable by every user.
func sharedStateDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "perceptron-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	dir := filepath.Join(parent, "state")
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asNobody runs a shell script as user nobody, a local user without docker
// access, in the background; the returned function ends it.
func asNobody(t *testing.T, script string) (stop func()) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	return stop
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLedgerForgedFiles: a local user without docker access writes leases
// and queue tickets into the shared state directory: far expiries, a
// foreign host, their own long-lived process. None of it holds a GPU or
// the line.
func TestLedgerForgedFiles(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(1)
	e.FakeNVML = writeFakeNVML(t, spec)
	e.StateDir = sharedStateDir(t)
	script := fmt.Sprintf(`cd %s
sleep 600 & pid=$!
start=$(cut -d' ' -f22 /proc/$pid/stat)
printf '{"token":"FORGEDFARFUTURE","uuids":["%s"],"pid":%%d,"start":%%s,"host":"elsewhere","uid":0,"created":"2026-01-01T00:00:00Z","expires":"9999-01-01T00:00:00Z"}' $pid $start >lease-FORGEDFARFUTURE.json
printf '{"token":"FORGEDTICKET","pid":%%d,"start":%%s,"created":"2026-01-01T00:00:00Z"}' $pid $start >ticket-00000000000000000001
touch done
wait`, e.StateDir, uuid(spec, 0))
	asNobody(t, script)
	waitFile(t, filepath.Join(e.StateDir, "done"))
	if r := e.Docker("perceptron", "gpus", "--format", "{{.Index}} {{.State}}"); strings.TrimSpace(r.Stdout) != "0 free" {
		t.Errorf("gpus with forged files:\n%s", r)
	}
	// Neither the lease nor the ticket holds anyone back, --wait included.
	e.MustDocker("perceptron", "run", "--rm", "--wait=20s", "--gpus", "auto", testImage, "true")
}

// TestLedgerLockHeld: a local user who holds the lock file's flock stops
// GPU claims for a bounded time only, and is named.
func TestLedgerLockHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the lock timeout")
	}
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	e.StateDir = sharedStateDir(t)
	e.MustDocker("perceptron", "run", "--rm", "--gpus", "auto", testImage, "true") // makes the lock file
	asNobody(t, fmt.Sprintf("exec flock -s %s sleep 600", filepath.Join(e.StateDir, "lock")))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	mustFail(t, e, 125, "has been held for over", "perceptron", "run", "--rm", "--gpus", "auto", testImage, "true")
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("gave up after %s", d)
	}
}

// TestLedgerForeignStateDir: a state directory that another ordinary user
// made (anyone can make /tmp/docker-perceptron first) is refused: its owner
// could remove every other user's claims.
func TestLedgerForeignStateDir(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	parent := sharedStateDir(t) // 1777, as /tmp
	e.StateDir = filepath.Join(parent, "theirs")
	stop := asNobody(t, fmt.Sprintf("mkdir %s && chmod 1777 %s", e.StateDir, e.StateDir))
	waitFile(t, e.StateDir)
	stop()
	mustFail(t, e, 125, "belongs to user 65534: GPU claims trust only a directory of root's or yours",
		"perceptron", "run", "--rm", "--gpus", "auto", testImage, "true")
}

// TestLedgerKilledUnderNonReapingParent: a run killed while its parent does
// not reap it (a zombie) frees its GPU at once, not when the parent wakes.
func TestLedgerKilledUnderNonReapingParent(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(1))
	killed := exec.Command(e.CLI.Path, "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	killed.Env = append(e.environ(), "PERCEPTRON_TEST_PAUSE_AFTER_CLAIM=1m")
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = killed.Process.Kill(); _ = killed.Wait() }()
	pid := waitLeasePID(t, e)
	// The docker CLI, perceptron-core's parent, is stopped: it cannot reap.
	if err := syscall.Kill(killed.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(killed.Process.Pid, syscall.SIGCONT) }()
	// Only once it has stopped: a parent still in wait(2) would reap the
	// run before the stop takes effect.
	deadline := time.Now().Add(10 * time.Second)
	for procState(killed.Process.Pid) != "T" {
		if time.Now().After(deadline) {
			t.Fatal("the docker CLI did not stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !isZombie(pid) {
		if time.Now().After(deadline) {
			t.Fatal("the killed run did not become a zombie")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
}

// isZombie reports whether process pid exists as a zombie.
func isZombie(pid int) bool { return procState(pid) == "Z" }

// procState is the state letter of process pid ("R", "S", "T", "Z"…), ""
// when there is none.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok || rest == "" {
		return ""
	}
	return rest[:1]
}

// TestLedgerKillStorm: 30 runs killed at random moments (claiming,
// creating, starting) leave nothing that blocks a GPU for longer than the
// lease time: once their running containers are removed, every GPU can be
// claimed.
func TestLedgerKillStorm(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(4))
	e.Extra = append(e.Extra, "PERCEPTRON_TEST_LEASE_TTL=2s")
	rng := rand.New(rand.NewPCG(9, 9))
	var wg sync.WaitGroup
	for i := range 30 {
		delay := time.Duration(rng.IntN(600)) * time.Millisecond
		wg.Go(func() {
			cmd := exec.Command(e.CLI.Path, "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
			cmd.Env = e.environ()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(delay + time.Duration(i%6)*50*time.Millisecond)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	wg.Wait()
	// A start the daemon had been asked for completes after the kill.
	time.Sleep(time.Second)
	// Running containers hold their GPUs, as they should: remove them.
	if running := strings.Fields(e.MustDocker("ps", "-q")); len(running) > 0 {
		e.MustDocker(append([]string{"rm", "-f"}, running...)...)
	}
	time.Sleep(3 * time.Second) // the lease time, and a margin
	r := e.Docker("perceptron", "run", "-d", "--gpus", "auto:4", testImage, "sleep", "600")
	if r.ExitCode != 0 {
		t.Fatalf("after the storm, the GPUs are not all free:\n%s\n%s", r, e.MustDocker("perceptron", "gpus"))
	}
}

// TestLedgerTwoDaemons: two daemons on one host (a rootful and a rootless
// one, two contexts) share the host's GPUs: what a container of one holds
// is held for the users of the other, who cannot list it.
func TestLedgerTwoDaemons(t *testing.T) {
	spec := sampleNVML(2)
	nvml := writeFakeNVML(t, spec)
	e1 := newEnv(t)
	e2 := newEnvOn(t, startDaemon(t, DaemonOptions{}))
	e1.FakeNVML, e2.FakeNVML = nvml, nvml
	e2.StateDir = e1.StateDir // one host, one ledger

	holder := strings.TrimSpace(e1.MustDocker("perceptron", "run", "-d", "--gpus", "auto:2", testImage, "sleep", "600"))
	r := mustFail(t, e2, 125, "not enough free GPUs: 1 asked for, 0 free", "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	if !strings.Contains(r.Stderr, "another daemon") {
		t.Errorf("the holder is not named as another daemon's:\n%s", r)
	}
	usage := gpusUsage(t, e2)
	short := holder[:12]
	for i, l := range usage {
		if want := fmt.Sprintf("%d|reserved|%s (root, another daemon)", i, short); l != want {
			t.Errorf("gpus on the other daemon: %q, want %q", l, want)
		}
	}
	// An attached run holds its GPUs on the other daemon while it runs.
	e1.MustDocker("rm", "-f", holder)
	done := make(chan Result, 1)
	go func() { done <- e1.Docker("perceptron", "run", "--gpus", "auto", testImage, "sleep", "5") }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(strings.Join(gpusUsage(t, e2), "\n"), "reserved") {
		if time.Now().After(deadline) {
			t.Fatal("the attached run's GPU never showed as held on the other daemon")
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustFail(t, e2, 125, "not enough free GPUs: 2 asked for, 1 free", "perceptron", "run", "-d", "--gpus", "auto:2", testImage, "sleep", "600")
	if r := <-done; r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	// Gone on the first daemon: free on the second.
	e2.MustDocker("perceptron", "run", "-d", "--gpus", "auto:2", testImage, "sleep", "600")
}

// TestLedgerLongExtendsChain: a 1000-long extends chain in the user's
// presets is refused at once, with the limit, not after minutes.
func TestLedgerLongExtendsChain(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("p0:\n  shm-size: 1g\n")
	for i := 1; i < 1000; i++ {
		fmt.Fprintf(&b, "p%d:\n  extends: p%d\n", i, i-1)
	}
	writeUserPresets(t, e, b.String())
	start := time.Now()
	mustFail(t, e, 125, "the limit is 64", "perceptron", "presets", "ls")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestLedgerWindowBeforeLock: a claim looks at the containers before it
// takes the lock, and under the lock reads only what changed since. A GPU
// container created in between, by plain docker or by another docker
// perceptron that released its lease in between, is still honoured.
func TestLedgerWindowBeforeLock(t *testing.T) {
	e := newEnv(t)
	spec := sampleNVML(3)
	e.FakeNVML = writeFakeNVML(t, spec)
	slow := exec.Command(e.CLI.Path, "perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
	slow.Env = append(e.environ(), "PERCEPTRON_TEST_PAUSE_BEFORE_LOCK=4s")
	var out, errOut lockedBuffer
	slow.Stdout, slow.Stderr = &out, &errOut
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Process.Kill() }()
	time.Sleep(1500 * time.Millisecond) // it has looked, and waits before the lock
	e.MustDocker("run", "-d", "--gpus", `"device=`+uuid(spec, 0)+`"`, testImage, "sleep", "600")
	other := visibleDevices(t, e.MustDocker("exec", strings.TrimSpace(e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")), "env"))
	if err := slow.Wait(); err != nil {
		t.Fatalf("%v:\n%s", err, errOut.String())
	}
	got := visibleDevices(t, e.MustDocker("exec", strings.TrimSpace(out.String()), "env"))
	if len(got) != 1 || got[0] == uuid(spec, 0) || got[0] == other[0] {
		t.Errorf("the slow claim got %v; plain docker holds %s, the other run %v", got, uuid(spec, 0), other)
	}
}
