//go:build linux && cgo

package gpus

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// OpenLibrary returns the host's NVML library. It is loaded (dlopen of
// libnvidia-ml.so.1) only when Init is called.
func OpenLibrary() (nvml.Interface, error) {
	return nvml.New(), nil
}
