//go:build !fakenvml

package commands

import (
	"time"

	"github.com/perceptron/docker-perceptron/internal/policy"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// openNVML opens the host's NVML library.
func openNVML() (nvml.Interface, error) { return gpus.OpenLibrary() }

// leaseTTL is how long a GPU claim counts without renewal: the ledger's
// default; test builds (fakenvml tag) can shorten it.
func leaseTTL() time.Duration { return ledger.DefaultLeaseTTL }

// testAPI is the docker API as it is; test builds (fakenvml tag) can slow
// it down.
func testAPI(api DockerAPI) DockerAPI { return api }

// beforeLockHook and lockHeldHook are the allocator's test hooks: none in
// the installed plugin.
func beforeLockHook() func()            { return nil }
func lockHeldHook() func(time.Duration) { return nil }

// afterClaimHook runs between the GPU claim and the container's creation;
// test builds (fakenvml tag) can pause there.
func afterClaimHook() {}

// policyPath is the site's policy file.
func policyPath() string { return policy.DefaultPath }
