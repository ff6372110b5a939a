//go:build !fakenvml

package commands

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// openNVML opens the host's NVML library.
func openNVML() (nvml.Interface, error) { return gpus.OpenLibrary() }

// afterClaimHook runs between the GPU claim and the container's creation;
// test builds (fakenvml tag) can pause there.
func afterClaimHook() {}
