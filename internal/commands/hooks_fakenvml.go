//go:build fakenvml

package commands

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/perceptron/docker-perceptron/internal/policy"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/moby/moby/client"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// openNVML opens the fake NVML that $PERCEPTRON_FAKE_NVML describes: test
// builds (fakenvml tag) only.
func openNVML() (nvml.Interface, error) { return gpustest.OpenLibrary() }

// leaseTTL is PERCEPTRON_TEST_LEASE_TTL (a duration) in test builds
// (fakenvml tag), so that the end-to-end tests can outlast a lease; else
// the ledger's default.
func leaseTTL() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("PERCEPTRON_TEST_LEASE_TTL")); err == nil && d > 0 {
		return d
	}
	return ledger.DefaultLeaseTTL
}

// testAPI slows every container listing down by PERCEPTRON_TEST_SLOW_LIST (a
// duration) in test builds (fakenvml tag): it widens the window in which a
// claim lists the containers while another run creates its container.
func testAPI(api DockerAPI) DockerAPI {
	d, err := time.ParseDuration(os.Getenv("PERCEPTRON_TEST_SLOW_LIST"))
	if err != nil || d <= 0 {
		return api
	}
	return slowList{DockerAPI: api, delay: d}
}

type slowList struct {
	DockerAPI
	delay time.Duration
}

func (s slowList) ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	res, err := s.DockerAPI.ContainerList(ctx, opts)
	time.Sleep(s.delay) // the answer is as of the start of the call
	return res, err
}

// beforeLockHook pauses between a claim's look at the containers and the
// lock for PERCEPTRON_TEST_PAUSE_BEFORE_LOCK (a duration): the end-to-end
// tests create containers in that window.
func beforeLockHook() func() {
	d, err := time.ParseDuration(os.Getenv("PERCEPTRON_TEST_PAUSE_BEFORE_LOCK"))
	if err != nil || d <= 0 {
		return nil
	}
	return func() { time.Sleep(d) }
}

// lockHeldHook appends how long each claim held the lock, in microseconds,
// one per line, to the file PERCEPTRON_TEST_LOCK_LOG names: the benchmark
// reports it.
func lockHeldHook() func(time.Duration) {
	path := os.Getenv("PERCEPTRON_TEST_LOCK_LOG")
	if path == "" {
		return nil
	}
	return func(d time.Duration) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = fmt.Fprintln(f, d.Microseconds())
	}
}

// afterClaimHook pauses between the GPU claim and the container's creation
// for PERCEPTRON_TEST_PAUSE_AFTER_CLAIM (a duration), so that the end-to-end
// tests can kill an invocation there. Test builds only (fakenvml tag).
func afterClaimHook() {
	if d, err := time.ParseDuration(os.Getenv("PERCEPTRON_TEST_PAUSE_AFTER_CLAIM")); err == nil {
		time.Sleep(d)
	}
}

// policyPath is PERCEPTRON_TEST_POLICY in test builds (fakenvml tag), so
// that the end-to-end tests can set a policy without writing to /etc; else
// the site's.
func policyPath() string {
	if p := os.Getenv("PERCEPTRON_TEST_POLICY"); p != "" {
		return p
	}
	return policy.DefaultPath
}
