package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

// The fake NVML inventory is internal/gpus's own type (see gpustest.Spec),
// so the tests cannot drift from what the plugin reads.
type (
	FakeNVML    = gpustest.Spec
	FakeGPU     = gpustest.GPU
	FakeProcess = gpustest.Process
	// FakeAccounting is NVML's accounting of a GPU's processes.
	FakeAccounting       = gpustest.Accounting
	FakeAccountedProcess = gpustest.AccountedProcess
)

// sampleNVML returns an inventory of n idle 80 GB GPUs without NVLink, driver
// 580.95.05 and CUDA 13.0; GPU i has UUID GPU-00000000-0000-0000-0000-<i>.
func sampleNVML(n int) FakeNVML {
	inv := FakeNVML{DriverVersion: "580.95.05", CUDAVersion: "13.0"}
	for i := range n {
		inv.GPUs = append(inv.GPUs, FakeGPU{
			UUID:           fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i),
			Name:           "NVIDIA H100 80GB HBM3",
			PCIBusID:       fmt.Sprintf("00000000:%02X:00.0", 0x10+i),
			MemoryTotalMiB: 81559,
		})
	}
	return inv
}

// writeFakeNVML writes spec to a file in a test temp dir and returns its
// path, for Env.FakeNVML.
func writeFakeNVML(t testing.TB, spec FakeNVML) string {
	t.Helper()
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return writeFakeNVMLJSON(t, string(b))
}

// writeFakeNVMLJSON is writeFakeNVML for hand-written (or malformed) JSON.
func writeFakeNVMLJSON(t testing.TB, raw string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nvml.json")
	if err := os.WriteFile(path, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
