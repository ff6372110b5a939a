//go:build fakenvml

package gpus

import (
	"errors"
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

// FakeNVMLEnv names the JSON file (see gpustest/FAKE_NVML.md) that the fake
// NVML library answers from, in builds with the fakenvml tag.
const FakeNVMLEnv = "PERCEPTRON_FAKE_NVML"

// OpenLibrary returns a fake NVML library described by the file that
// $PERCEPTRON_FAKE_NVML names. The file is read at each call, so tests can
// change the GPUs between commands.
func OpenLibrary() (nvml.Interface, error) {
	path := os.Getenv(FakeNVMLEnv)
	if path == "" {
		return nil, errors.New("fake NVML: " + FakeNVMLEnv + " is not set; point it at a JSON file describing the GPUs (see internal/gpus/gpustest/FAKE_NVML.md)")
	}
	spec, err := gpustest.LoadSpec(path)
	if err != nil {
		return nil, err
	}
	return gpustest.NewLibrary(spec), nil
}
