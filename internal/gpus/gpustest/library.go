package gpustest

import (
	"errors"
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// FakeNVMLEnv names the JSON file (see FAKE_NVML.md) that OpenLibrary
// answers from: perceptron-core built with the fakenvml tag opens it
// instead of the host's NVML.
const FakeNVMLEnv = "PERCEPTRON_FAKE_NVML"

// OpenLibrary returns a fake NVML library described by the file that
// $PERCEPTRON_FAKE_NVML names. The file is read at each call, so tests can
// change the GPUs between commands.
func OpenLibrary() (nvml.Interface, error) {
	path := os.Getenv(FakeNVMLEnv)
	if path == "" {
		return nil, errors.New("fake NVML: " + FakeNVMLEnv + " is not set; point it at a JSON file describing the GPUs (see internal/gpus/gpustest/FAKE_NVML.md)")
	}
	spec, err := LoadSpec(path)
	if err != nil {
		return nil, err
	}
	return NewLibrary(spec), nil
}
