//go:build fakenvml

package commands

import (
	"context"
	"os"
	"time"

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

// afterClaimHook pauses between the GPU claim and the container's creation
// for PERCEPTRON_TEST_PAUSE_AFTER_CLAIM (a duration), so that the end-to-end
// tests can kill an invocation there. Test builds only (fakenvml tag).
func afterClaimHook() {
	if d, err := time.ParseDuration(os.Getenv("PERCEPTRON_TEST_PAUSE_AFTER_CLAIM")); err == nil {
		time.Sleep(d)
	}
}
