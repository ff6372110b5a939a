//go:build !(linux && cgo)

package gpus

import (
	"errors"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoNVML is returned by OpenLibrary in builds without cgo.
var ErrNoNVML = errors.New("NVML is not available in this build (built without cgo or not for linux); rebuild with CGO_ENABLED=1 on linux")

// OpenLibrary reports that this build cannot talk to NVML.
func OpenLibrary() (nvml.Interface, error) {
	return nil, ErrNoNVML
}
