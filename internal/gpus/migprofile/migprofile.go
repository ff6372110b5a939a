// Package migprofile names MIG profiles as NVIDIA does ("1g.10gb"), for
// the inventory (internal/gpus), the fake NVML and the request language.
package migprofile

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Name is NVIDIA's name of a MIG profile ("1g.10gb", or
// "1c.3g.40gb" for a compute instance smaller than its GPU instance) and
// the memory the name gives in GB, from the MIG device's attributes: its
// GPU and compute instance slices and its memory (MiB), on a GPU with
// gpuTotalMiB. The memory is named as NVIDIA's go-nvlib names it
// (pkg/nvlib/device/mig_profile.go): the device's share of the GPU's
// memory rounded up to eighths, times the GPU's memory in whole GiB.
// ("", 0) when the GPU's memory is unknown.
func Name(gpuSlices, computeSlices uint32, memoryMiB, gpuTotalMiB uint64) (string, int) {
	if gpuTotalMiB == 0 || gpuSlices == 0 {
		return "", 0
	}
	share := math.Ceil(float64(memoryMiB)/float64(gpuTotalMiB)*8) / 8
	totalGiB := float64((gpuTotalMiB + 1023) / 1024)
	gb := int(math.Round(share * totalGiB))
	name := fmt.Sprintf("%dg.%dgb", gpuSlices, gb)
	if computeSlices != 0 && computeSlices != gpuSlices {
		name = fmt.Sprintf("%dc.%s", computeSlices, name)
	}
	return name, gb
}

// Parse reads a MIG profile's name, "3g.40gb" or "1c.3g.40gb",
// into its slices and memory (GB); ok is false for anything else.
func Parse(name string) (gpuSlices, computeSlices uint32, gb int, ok bool) {
	parts := strings.Split(strings.ToLower(name), ".")
	num := func(s, unit string) (int, bool) {
		v, found := strings.CutSuffix(s, unit)
		n, err := strconv.Atoi(v)
		return n, found && err == nil && n > 0
	}
	var c, g int
	switch len(parts) {
	case 2:
		g, ok = num(parts[0], "g")
		c = g
	case 3:
		var okC bool
		c, okC = num(parts[0], "c")
		g, ok = num(parts[1], "g")
		ok = ok && okC
	default:
		return 0, 0, 0, false
	}
	gb, okGB := num(parts[len(parts)-1], "gb")
	if !ok || !okGB {
		return 0, 0, 0, false
	}
	return uint32(g), uint32(c), gb, true
}
