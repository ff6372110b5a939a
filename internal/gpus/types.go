// Package gpus is the host's GPU inventory (through NVML), who holds each
// GPU (processes and container reservations), and the choice of free GPUs.
package gpus

import "time"

// Inventory is what NVML reports about the host's GPUs, read once per command.
type Inventory struct {
	DriverVersion string // e.g. "580.95.05"; "" when unknown
	CUDAVersion   string // CUDA driver API version, e.g. "13.0"; "" when unknown
	Devices       []Device
}

// Device is one GPU. Index is NVML's index (PCI bus order), the order that
// NVIDIA_VISIBLE_DEVICES uses. Fields whose query failed keep their zero value
// and the query is named in Errors, so callers show what is known.
type Device struct {
	Index    int
	UUID     string
	Name     string
	PCIBusID string // "00000000:18:00.0"

	MemoryTotalMiB     uint64
	MemoryUsedMiB      uint64
	UtilizationPercent int // GPU (SM) utilisation, 0-100
	TemperatureC       int
	PowerW             int // power draw in watts
	MIGEnabled         bool
	// Brand is NVML's brand number (nvmlBrandType_t: 2 is Tesla, the data
	// centre GPUs), which NVIDIA_REQUIRE_CUDA's brand= terms test; -1 unknown.
	Brand int

	// MIG are the MIG devices (GPU instance + compute instance) of a GPU
	// with MIG enabled, in NVML's order (GetMigDeviceHandleByIndex); "mig"
	// in Errors when they could not all be read.
	MIG []MIGDevice

	Processes []Process
	// Accounting is whether NVML's accounting mode is on ("accounting" in
	// Errors when it could not be read); LastUsed is then when the latest
	// compute process that ended on the GPU ended, as accounting remembers
	// it (zero: none in its records).
	Accounting bool
	LastUsed   time.Time

	// Topology, used to choose well-connected sets of GPUs.
	NUMANode    int   // -1 when unknown
	NVLinkPeers []int // indexes of GPUs linked to this one by NVLink, one entry per link
	// PCIePeers are the GPUs that NVML places behind the same PCIe switch
	// (or switches) as this one, without crossing a host bridge.
	PCIePeers []int

	// Errors maps a query ("memory", "utilization", "temperature", "power",
	// "processes", "numa", "nvlink", "mig", ...) to the error NVML returned.
	Errors map[string]string
}

// Process is a compute process on a GPU, as NVML reports it (host PID).
type Process struct {
	PID           int
	UsedMemoryMiB uint64
}

// Known reports whether the query named q succeeded for this device.
func (d Device) Known(q string) bool {
	_, failed := d.Errors[q]
	return !failed
}

// MIGDevice is one MIG device of a GPU: the unit --gpus auto:mig gives
// out, by its UUID. Fields whose query failed keep their zero value and
// the query is named in Errors ("uuid", "memory", "processes",
// "attributes").
type MIGDevice struct {
	// Index is NVML's index of the MIG device on its GPU, as in
	// NVIDIA_VISIBLE_DEVICES=GPU:INDEX and the CDI name nvidia.com/gpu=GPU:INDEX.
	Index int
	UUID  string // "MIG-…"
	// Profile is NVIDIA's name of the MIG profile, "1g.10gb", "3g.40gb",
	// "1c.3g.40gb" (see migprofile.Name); "" when unknown.
	Profile string
	// ProfileGB is the memory of the profile as its name gives it (10 for
	// 1g.10gb); 0 when unknown.
	ProfileGB      int
	MemoryTotalMiB uint64
	MemoryUsedMiB  uint64
	Processes      []Process
	Errors         map[string]string
}

// Known reports whether the query named q succeeded for this MIG device.
func (m MIGDevice) Known(q string) bool {
	_, failed := m.Errors[q]
	return !failed
}
