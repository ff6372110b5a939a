//go:build linux && cgo

package gpus

import (
	"errors"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// TestHostNVML reads this host's GPUs: on a host without the NVIDIA driver
// it must fail with ErrNoDriver, on one line, without panicking.
func TestHostNVML(t *testing.T) {
	lib, err := OpenLibrary()
	assert.NilError(t, err)
	inv, err := Load(lib)
	if err != nil {
		assert.Check(t, errors.Is(err, ErrNoDriver), "%v", err)
		assert.Check(t, !strings.Contains(err.Error(), "\n"))
		t.Skipf("no NVIDIA driver: %v", err)
	}
	t.Logf("driver %s, CUDA %s, %d GPUs", inv.DriverVersion, inv.CUDAVersion, len(inv.Devices))
	for _, d := range inv.Devices {
		t.Logf("%+v", d)
		assert.Check(t, strings.HasPrefix(d.UUID, "GPU-"), "%+v", d)
		assert.Check(t, d.MemoryTotalMiB > 0, "%+v", d)
	}
}
