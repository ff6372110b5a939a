package commands

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/holders"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// queueHost is a line of three: alice asks for 2 GPUs and has waited 3
// hours, a user without a name for 1 since 5 minutes, bob for 8 since 90
// seconds.
func queueHost() ([]ledger.Waiter, time.Time, func(int) string) {
	now := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	waiters := []ledger.Waiter{
		{Position: 1, UID: 1000, GPUs: 2, Since: now.Add(-3 * time.Hour), PID: 81234},
		{Position: 2, UID: 4242, GPUs: 1, Since: now.Add(-5 * time.Minute), PID: 1777},
		{Position: 3, UID: 1001, GPUs: 8, Since: now.Add(-90 * time.Second), PID: 4194301},
	}
	names := map[int]string{1000: "alice", 1001: "bob"}
	name := func(uid int) string {
		if n, ok := names[uid]; ok {
			return n
		}
		return "uid " + strconv.Itoa(uid)
	}
	return waiters, now, name
}

func TestQueueOutput(t *testing.T) {
	tests := []struct {
		name   string
		format string
		quiet  bool
		empty  bool
	}{
		{name: "table"},
		{name: "table-empty", empty: true},
		{name: "json", format: "json"},
		{name: "quiet", quiet: true},
		{name: "quiet-empty", quiet: true, empty: true},
		{name: "template", format: "{{.Position}} {{.User}} {{.UID}} {{.GPUs}} {{.Waiting}} {{.PID}}"},
		{name: "table-template", format: "table {{.Position}}\t{{.UID}}\t{{.User}}\t{{.GPUs}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			waiters, now, name := queueHost()
			if tc.empty {
				waiters = nil
			}
			var out bytes.Buffer
			fmtCtx := formatter.Context{Output: &out, Format: newQueueFormat(tc.format, tc.quiet)}
			assert.NilError(t, queueWrite(fmtCtx, waiters, now, name))
			golden.Assert(t, out.String(), "queue-"+tc.name+".golden")
		})
	}
}

// Since is the local time the waiter joined, as docker ps's CreatedAt.
func TestQueueSince(t *testing.T) {
	waiters, now, name := queueHost()
	var out bytes.Buffer
	fmtCtx := formatter.Context{Output: &out, Format: newQueueFormat("{{.Since}}", false)}
	assert.NilError(t, queueWrite(fmtCtx, waiters[:1], now, name))
	assert.Equal(t, out.String(), now.Add(-3*time.Hour).Local().String()+"\n")
}

// The command shows the tickets in the state directory, in queue order,
// with the user who owns each.
func TestQueueCommand(t *testing.T) {
	dockerCLI, out, errOut, deps := gpusCLI(t, gpustest.Spec{}, &fakeContainerAPI{}, t.TempDir())
	run := func(args ...string) error {
		out.Reset()
		errOut.Reset()
		return execute(t, dockerCLI, deps, append([]string{"queue"}, args...)...)
	}

	// No state directory yet: no one waits.
	assert.NilError(t, run())
	golden.Assert(t, out.String(), "queue-table-empty.golden")
	assert.NilError(t, run("-q"))
	assert.Equal(t, out.String(), "")

	// Two waiters of this process (alive), then a newcomer that leaves.
	first, err := ledger.Enqueue(deps.StateDir, 2)
	assert.NilError(t, err)
	defer first.Leave()
	second, err := ledger.Enqueue(deps.StateDir, 1)
	assert.NilError(t, err)
	defer second.Leave()
	gone, err := ledger.Enqueue(deps.StateDir, 4)
	assert.NilError(t, err)
	assert.NilError(t, gone.Leave())
	joined := time.Now()
	deps.Now = func() time.Time { return joined.Add(5 * time.Minute) }

	me, pid := holders.UserName(strconv.Itoa(os.Geteuid())), os.Getpid()
	assert.NilError(t, run("--format", "{{.Position}} {{.User}} {{.UID}} {{.GPUs}} {{.Waiting}} {{.PID}}"))
	assert.Equal(t, out.String(), fmt.Sprintf("1 %[1]s %[2]d 2 5 minutes %[3]d\n2 %[1]s %[2]d 1 5 minutes %[3]d\n", me, os.Geteuid(), pid))
	assert.NilError(t, run("-q"))
	assert.Equal(t, out.String(), fmt.Sprintf("%d\n%d\n", pid, pid))
	assert.NilError(t, run())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Equal(t, len(lines), 3, out.String())
	assert.Assert(t, strings.HasPrefix(lines[0], "POSITION"), out.String())
	assert.Equal(t, strings.Join(strings.Fields(lines[2]), " "), fmt.Sprintf("2 %s 1 5 minutes %d", me, pid))
	assert.Equal(t, errOut.String(), "")
}

// A state directory that cannot be trusted is an error of docker
// perceptron's (exit status 125), which names it.
func TestQueueUnsafeStateDir(t *testing.T) {
	dockerCLI, out, _, deps := gpusCLI(t, gpustest.Spec{}, &fakeContainerAPI{}, t.TempDir())
	deps.StateDir = filepath.Join(t.TempDir(), "state")
	assert.NilError(t, os.Mkdir(deps.StateDir, 0o700))
	assert.NilError(t, os.Chmod(deps.StateDir, 0o777)) // world-writable, not sticky
	err := execute(t, dockerCLI, deps, "queue")
	var status cli.StatusError
	assert.Assert(t, errors.As(err, &status), "%T %v", err, err)
	assert.Equal(t, status.StatusCode, 125)
	assert.Assert(t, errors.Is(err, ledger.ErrUnsafeDir), "%v", err)
	want := "cannot read the GPU queue: unsafe state directory: " + deps.StateDir + " is world-writable without the sticky bit"
	assert.Assert(t, strings.HasPrefix(err.Error(), want), "%v", err)
	assert.Equal(t, out.String(), "")
}

func TestQueueArgs(t *testing.T) {
	dockerCLI, _, _, deps := gpusCLI(t, gpustest.Spec{}, &fakeContainerAPI{}, t.TempDir())
	err := execute(t, dockerCLI, deps, "queue", "extra")
	assert.Check(t, err != nil && strings.Contains(err.Error(), "accepts no arguments"), "%v", err)
}
