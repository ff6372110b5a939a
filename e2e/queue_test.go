package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waiter is a `docker perceptron run --wait` running in the background.
type waiter struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{} // closed once it has ended, with err
	err    error
}

// startWaiter starts `docker perceptron run --rm --wait --gpus auto:N` and
// returns once it says it waits (it has joined the queue by then). The test
// ends it if it is still running.
func startWaiter(t *testing.T, e *Env, gpus int) *waiter {
	t.Helper()
	cmd := exec.Command(e.CLI.Path, "perceptron", "run", "--rm", "--wait", "--gpus", fmt.Sprintf("auto:%d", gpus), testImage, "true")
	cmd.Env = e.environ()
	w := &waiter{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.err = cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() { w.stop(t) })
	w.await(t, "waiting for GPUs")
	return w
}

// await waits until the waiter has said want.
func (w *waiter) await(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the waiter did not say %q:\n%s", want, w.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop interrupts the waiter as Ctrl-C does, and waits for it to end.
func (w *waiter) stop(t *testing.T) {
	t.Helper()
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-w.exited:
	case <-time.After(20 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
		t.Errorf("the waiter did not stop on SIGINT:\n%s", w.stderr.String())
	}
}

// parentOf returns the parent of process pid, 0 when it is gone.
func parentOf(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// TestQueueShowsWaitersInOrder: two `run --wait` that queue one after the
// other are listed by `docker perceptron queue` in that order; when the
// first gives up, the second moves up, in the listing and in what it says.
func TestQueueShowsWaitersInOrder(t *testing.T) {
	e := newEnv(t)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
	holder := e.MustDocker("perceptron", "run", "-d", "--gpus", "auto:2", "--name", "holder", testImage, "sleep", "600")

	first := startWaiter(t, e, 2)
	second := startWaiter(t, e, 1)
	second.await(t, "waiting for GPUs: 1 earlier request(s) in line on this host")

	// Each row's PID is the plugin that the waiter's docker CLI started.
	rows := strings.Split(e.MustDocker("perceptron", "queue", "--format", "{{.Position}} {{.User}} {{.GPUs}} {{.PID}}"), "\n")
	if len(rows) != 2 {
		t.Fatalf("queue shows %q, want two waiters", rows)
	}
	for i, tc := range []struct {
		w    *waiter
		want string
	}{{first, "1 root 2 "}, {second, "2 root 1 "}} {
		pid, ok := strings.CutPrefix(rows[i], tc.want)
		if !ok || parentOf(pid) != tc.w.cmd.Process.Pid {
			t.Errorf("row %d = %q, want %q and the PID of the plugin under docker %d", i+1, rows[i], tc.want, tc.w.cmd.Process.Pid)
		}
	}
	table := e.MustDocker("perceptron", "queue")
	if lines := strings.Split(table, "\n"); len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "POSITION USER GPUS WAITING PID" {
		t.Errorf("queue table:\n%s", table)
	}
	if got, want := e.MustDocker("perceptron", "queue", "-q"), strings.Join([]string{
		rows[0][strings.LastIndexByte(rows[0], ' ')+1:], rows[1][strings.LastIndexByte(rows[1], ' ')+1:]}, "\n"); got != want {
		t.Errorf("queue -q = %q, want %q", got, want)
	}

	// The first gives up: the second is now first, and says so.
	first.stop(t)
	second.await(t, "waiting for GPUs: not enough free GPUs: 1 asked for, 0 free")
	if got := e.MustDocker("perceptron", "queue", "--format", "{{.Position}} {{.GPUs}}"); got != "1 1" {
		t.Errorf("queue once the first left = %q, want the second first", got)
	}

	// The holder goes: the second runs, and no one waits any more.
	e.MustDocker("rm", "-f", holder)
	select {
	case <-second.exited:
		if second.err != nil {
			t.Fatalf("the second waiter: %v\n%s", second.err, second.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the second waiter did not get its GPU:\n%s", second.stderr.String())
	}
	if got := e.MustDocker("perceptron", "queue"); strings.Join(strings.Fields(got), " ") != "POSITION USER GPUS WAITING PID" {
		t.Errorf("empty queue = %q, want the header only", got)
	}
}
