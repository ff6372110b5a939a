package commands

import (
	"context"
	"testing"
	"time"

	"github.com/docker/cli/cli"
	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/request"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// One exit-status rule: usage errors are the tool's own, 125, with docker's
// words; an unknown subcommand names the closest ones.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"gpu"}, want: "unknown command: docker perceptron gpu\n\nDid you mean this?\n\tgpus\n\nRun 'docker perceptron --help' for more information"},
		{args: []string{"gpus", "extra"}, want: "'perceptron gpus' accepts no arguments"},
		{args: []string{"gpus", "--frob"}, want: "unknown flag: --frob\nSee 'docker perceptron gpus --help'."},
		{args: []string{"presets", "show"}, want: "requires"},
	}
	for _, tc := range tests {
		t.Run(tc.args[0], func(t *testing.T) {
			dockerCLI, _, _, deps := testCLI(t)
			err := execute(t, dockerCLI, deps, tc.args...)
			assert.Check(t, is.ErrorContains(err, tc.want))
			var st cli.StatusError
			assert.Assert(t, errorsAs(err, &st), "%T: %v", err, err)
			assert.Check(t, is.Equal(st.StatusCode, 125))
		})
	}
	dockerCLI, out, _, deps := testCLI(t)
	assert.NilError(t, execute(t, dockerCLI, deps))
	assert.Check(t, is.Contains(out.String(), "Available Commands"))
}

func TestVersion(t *testing.T) {
	dockerCLI, out, _, deps := testCLI(t)
	deps.Version = "v1.2.3"
	assert.NilError(t, execute(t, dockerCLI, deps, "version"))
	assert.Check(t, is.Contains(out.String(), "docker perceptron v1.2.3 (go"))
}

// A wait the docker CLI cancels (its way of passing Ctrl-C to a plugin)
// ends "interrupted" and exits 130; the --wait limit exits 125.
func TestClaimInterrupted(t *testing.T) {
	wait := func(ctx context.Context) (request.Claimed, *alloc.Claim, error) {
		<-ctx.Done()
		return request.Claimed{}, nil, &alloc.StoppedError{Cause: context.Cause(ctx)}
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, _, err := claimWithSignals(ctx, 0, wait)
	var st cli.StatusError
	assert.Assert(t, errorsAs(toStatusError(err), &st))
	assert.Check(t, is.Equal(st.StatusCode, 130))
	assert.Check(t, is.ErrorContains(err, "stopped waiting for GPUs after 0s: interrupted"))

	_, _, err = claimWithSignals(t.Context(), 50*time.Millisecond, wait)
	assert.Assert(t, errorsAs(toStatusError(err), &st))
	assert.Check(t, is.Equal(st.StatusCode, 125))
	assert.Check(t, is.ErrorContains(err, "the time limit passed"))
}
