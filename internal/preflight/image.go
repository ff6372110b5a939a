package preflight

import (
	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ngc"
)

// ImageChecks are the checks of an image against the host's driver: its
// CUDA requirement and, for NGC images, its minimum driver. A fleet host
// answers with them.
func ImageChecks(in Input) []Finding {
	return append(checkImageCUDA(in), checkImageDriver(in)...)
}

// DataCenter tells whether every one of devices is a data-centre GPU.
func DataCenter(devices []gpus.Device) ngc.Tri { return ngc.DataCenter(brands(devices)) }
