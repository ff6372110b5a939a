package gpus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
)

func intPtr(n int) *int { return &n }

func mustLoad(t *testing.T, lib nvml.Interface) Inventory {
	t.Helper()
	shutdown, err := Init(lib)
	assert.NilError(t, err)
	defer shutdown()
	inv, err := readInventory(lib, func(string) (int, bool) { return 0, false })
	assert.NilError(t, err)
	return inv
}

func TestReadInventory(t *testing.T) {
	inv := mustLoad(t, gpustest.NewLibrary(gpustest.FourH100()))
	assert.Equal(t, inv.DriverVersion, "580.95.05")
	assert.Equal(t, inv.CUDAVersion, "13.0")
	assert.Assert(t, is.Len(inv.Devices, 4))
	assert.DeepEqual(t, inv.Devices[1], Device{
		Index: 1, UUID: "GPU-bbbbbbbb-1111-2222-3333-444455556666", Name: "NVIDIA H100 80GB HBM3",
		PCIBusID: "00000000:2A:00.0", MemoryTotalMiB: 81559, MemoryUsedMiB: 20480,
		UtilizationPercent: 97, TemperatureC: 31, PowerW: 70, Brand: 2,
		Processes: []Process{{PID: 4242, UsedMemoryMiB: 20000}},
		NUMANode:  0, NVLinkPeers: []int{0, 2, 3},
	})
	assert.DeepEqual(t, inv.Devices[3].NVLinkPeers, []int{0, 1, 2})
	assert.Equal(t, inv.Devices[3].NUMANode, 1)
}

// The PCIe topology is NVML's common ancestor of each pair of GPUs.
func TestReadInventoryPCIeTopology(t *testing.T) {
	spec := gpustest.FourH100()
	spec.GPUs[0].PCIeSwitch, spec.GPUs[2].PCIeSwitch = "sw0", "sw0"
	spec.GPUs[1].PCIeSwitch, spec.GPUs[3].PCIeSwitch = "sw1", "sw2"
	inv := mustLoad(t, gpustest.NewLibrary(spec))
	assert.DeepEqual(t, inv.Devices[0].PCIePeers, []int{2})
	assert.DeepEqual(t, inv.Devices[2].PCIePeers, []int{0})
	assert.Check(t, is.Len(inv.Devices[1].PCIePeers, 0))
	assert.Check(t, is.Len(inv.Devices[3].PCIePeers, 0))

	spec.GPUs[1].Errors = map[string]string{"topology": "ERROR_NOT_SUPPORTED"}
	inv = mustLoad(t, gpustest.NewLibrary(spec))
	assert.Check(t, !inv.Devices[1].Known("topology"))
	assert.DeepEqual(t, inv.Devices[0].PCIePeers, []int{2}) // the others are still read
}

func TestReadInventoryQueryErrors(t *testing.T) {
	tests := []struct {
		name     string
		override func(d *mock.Device)
		query    string
		check    func(t *testing.T, d Device)
	}{
		{
			name: "temperature",
			override: func(d *mock.Device) {
				d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
			},
			query: "temperature",
			check: func(t *testing.T, d Device) {
				assert.Equal(t, d.MemoryTotalMiB, uint64(81559))
				assert.Equal(t, d.PowerW, 70)
			},
		},
		{
			name: "processes",
			override: func(d *mock.Device) {
				d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NO_PERMISSION }
			},
			query: "processes",
			check: func(t *testing.T, d Device) {
				assert.Check(t, is.Nil(d.Processes))
				assert.Equal(t, d.TemperatureC, 31)
			},
		},
		{
			name: "power not supported",
			override: func(d *mock.Device) {
				d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
			},
			query: "power",
		},
		{
			name: "nvlink link errors keep the other links",
			override: func(d *mock.Device) {
				orig := d.GetNvLinkRemotePciInfoFunc
				d.GetNvLinkRemotePciInfoFunc = func(link int) (nvml.PciInfo, nvml.Return) {
					if link == 0 {
						return nvml.PciInfo{}, nvml.ERROR_UNKNOWN
					}
					return orig(link)
				}
			},
			query: "nvlink",
			check: func(t *testing.T, d Device) { assert.DeepEqual(t, d.NVLinkPeers, []int{2, 3}) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib := gpustest.NewLibrary(gpustest.FourH100())
			h, _ := lib.DeviceGetHandleByIndex(1)
			tc.override(h.(*mock.Device))
			inv := mustLoad(t, lib)
			d := inv.Devices[1]
			assert.Check(t, !d.Known(tc.query))
			assert.Check(t, is.Len(d.Errors, 1), "errors: %v", d.Errors)
			assert.Equal(t, d.UUID, "GPU-bbbbbbbb-1111-2222-3333-444455556666")
			if tc.check != nil {
				tc.check(t, d)
			}
			for _, other := range []int{0, 2, 3} {
				assert.Check(t, is.Len(inv.Devices[other].Errors, 0))
			}
		})
	}
}

func TestReadInventoryHandleError(t *testing.T) {
	spec := gpustest.FourH100()
	spec.GPUs[2].Errors = map[string]string{"handle": "ERROR_GPU_IS_LOST"}
	inv := mustLoad(t, gpustest.NewLibrary(spec))
	d := inv.Devices[2]
	assert.Equal(t, d.Index, 2)
	assert.Equal(t, d.NUMANode, -1)
	for _, q := range []string{"handle", "memory", "processes", "utilization"} {
		assert.Check(t, !d.Known(q), q)
	}
	// The other GPUs lose their link to the lost GPU's bus id, not their data.
	assert.Equal(t, inv.Devices[0].MemoryTotalMiB, uint64(81559))
}

func TestReadInventoryNVSwitch(t *testing.T) {
	// Eight GPUs, each with one link to each of four switches.
	spec := gpustest.Spec{}
	for i := range 8 {
		spec.GPUs = append(spec.GPUs, gpustest.GPU{UUID: "GPU-" + string(rune('0'+i)), Name: "H100"})
	}
	lib := gpustest.NewLibrary(spec)
	for i := range 8 {
		h, _ := lib.DeviceGetHandleByIndex(i)
		d := h.(*mock.Device)
		d.GetNvLinkStateFunc = func(link int) (nvml.EnableState, nvml.Return) {
			if link >= 4 {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return nvml.FEATURE_ENABLED, nvml.SUCCESS
		}
		d.GetNvLinkRemotePciInfoFunc = func(link int) (nvml.PciInfo, nvml.Return) {
			return gpustest.PCIInfo([]string{"00000000:C5:00.0", "00000000:C6:00.0", "00000000:C7:00.0", "00000000:C8:00.0"}[link]), nvml.SUCCESS
		}
	}
	inv := mustLoad(t, lib)
	assert.DeepEqual(t, inv.Devices[0].NVLinkPeers, []int{1, 2, 3, 4, 5, 6, 7})
	assert.DeepEqual(t, inv.Devices[5].NVLinkPeers, []int{0, 1, 2, 3, 4, 6, 7})
}

func TestReadInventoryNUMAFallback(t *testing.T) {
	spec := gpustest.Spec{GPUs: []gpustest.GPU{{UUID: "GPU-0", Name: "T4", PCIBusID: "00000000:3B:00.0"}, {UUID: "GPU-1", Name: "T4"}}}
	lib := gpustest.NewLibrary(spec)
	_, err := Init(lib)
	assert.NilError(t, err)
	inv, err := readInventory(lib, func(bus string) (int, bool) { return 1, bus == "00000000:3B:00.0" })
	assert.NilError(t, err)
	assert.Equal(t, inv.Devices[0].NUMANode, 1)
	assert.Equal(t, inv.Devices[1].NUMANode, -1)
	assert.Check(t, is.Len(inv.Devices[1].Errors, 0))
	assert.Equal(t, inv.DriverVersion, "")
	assert.Equal(t, inv.CUDAVersion, "")
}

func TestInitErrors(t *testing.T) {
	tests := []struct {
		ret  nvml.Return
		want string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, "cannot load libnvidia-ml.so.1"},
		{nvml.ERROR_DRIVER_NOT_LOADED, "kernel driver is not loaded"},
		{nvml.ERROR_NO_PERMISSION, "NVML initialisation failed"},
	}
	for _, tc := range tests {
		t.Run(tc.ret.Error(), func(t *testing.T) {
			lib := &mock.Interface{InitFunc: func() nvml.Return { return tc.ret }}
			_, err := Load(lib)
			assert.Check(t, errors.Is(err, ErrNoDriver))
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, "nvidia-smi")
			assert.Check(t, !strings.Contains(err.Error(), "\n"))
		})
	}
	_, err := Init(nil)
	assert.Check(t, errors.Is(err, ErrNoDriver))
}

func TestLoadShutsDown(t *testing.T) {
	lib := gpustest.NewLibrary(gpustest.FourH100()).(*mock.Interface)
	inv, err := Load(lib)
	assert.NilError(t, err)
	assert.Check(t, is.Len(inv.Devices, 4))
	assert.Check(t, is.Len(lib.InitCalls(), 1))
	assert.Check(t, is.Len(lib.ShutdownCalls(), 1))
}

func TestBusIDs(t *testing.T) {
	assert.Equal(t, normalizeBusID("00000000:18:00.0"), "0000:18:00.0")
	assert.Equal(t, normalizeBusID("0000:AB:00.0"), "0000:ab:00.0")
	p := gpustest.PCIInfo("00000000:18:00.0")
	assert.Equal(t, busIDString(p.BusId[:]), "00000000:18:00.0")
	assert.Equal(t, cudaVersionString(12040), "12.4")
	assert.Equal(t, cudaVersionString(13000), "13.0")
}

// Accounting gives when the latest ended process ended; running processes
// and a GPU without accounting give nothing, and a failed query is named.
func TestReadInventoryAccounting(t *testing.T) {
	start := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
	spec := gpustest.FourH100()
	spec.GPUs[0].Accounting = &gpustest.Accounting{Processes: []gpustest.AccountedProcess{
		{PID: 1, Start: start, Seconds: 600},
		{PID: 2, Start: start.Add(time.Hour), Seconds: 60},
		{PID: 3, Start: start.Add(2 * time.Hour), Running: true},
	}}
	spec.GPUs[1].Accounting = &gpustest.Accounting{}
	spec.GPUs[2].Errors = map[string]string{"accounting": "ERROR_NO_PERMISSION"}
	inv := mustLoad(t, gpustest.NewLibrary(spec))
	tests := []struct {
		gpu        int
		accounting bool
		lastUsed   time.Time
		known      bool
	}{
		{gpu: 0, accounting: true, lastUsed: start.Add(time.Hour + time.Minute), known: true},
		{gpu: 1, accounting: true, known: true},
		{gpu: 2, known: false},
		{gpu: 3, known: true},
	}
	for _, tc := range tests {
		d := inv.Devices[tc.gpu]
		assert.Check(t, is.Equal(d.Accounting, tc.accounting), "GPU %d", tc.gpu)
		assert.Check(t, d.LastUsed.Equal(tc.lastUsed), "GPU %d: last used %v, want %v", tc.gpu, d.LastUsed, tc.lastUsed)
		assert.Check(t, is.Equal(d.Known("accounting"), tc.known), "GPU %d", tc.gpu)
	}
}

// A GPU with MIG enabled lists its MIG devices: UUID, profile (named from
// NVML's attributes), memory and processes; a MIG device whose query
// fails keeps what is known.
func TestReadInventoryMIG(t *testing.T) {
	spec := gpustest.MIGA100s()
	spec.GPUs[2].MIGDevices[1].Errors = map[string]string{"processes": "ERROR_NO_PERMISSION"}
	inv := mustLoad(t, gpustest.NewLibrary(spec))
	assert.Check(t, is.Len(inv.Devices[0].MIG, 0))
	assert.Check(t, inv.Devices[1].MIGEnabled)
	var got []string
	for _, m := range inv.Devices[1].MIG {
		got = append(got, m.Profile)
	}
	assert.DeepEqual(t, got, []string{"1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"})
	assert.DeepEqual(t, inv.Devices[1].MIG[0], MIGDevice{
		Index: 0, UUID: "MIG-1-0-aaaa-bbbb-cccc-dddddddddddd", Profile: "1g.10gb", ProfileGB: 10,
		MemoryTotalMiB: 9728, MemoryUsedMiB: 3000, Processes: []Process{{PID: 5151, UsedMemoryMiB: 3000}},
	})
	m := inv.Devices[2].MIG[1]
	assert.Check(t, !m.Known("processes"))
	assert.Equal(t, m.Profile, "4g.40gb")
	assert.Equal(t, m.Index, 1)

	// A MIG device that cannot be opened is left out, and said.
	spec.GPUs[2].MIGDevices[0].Errors = map[string]string{"handle": "ERROR_UNKNOWN"}
	inv = mustLoad(t, gpustest.NewLibrary(spec))
	assert.Check(t, is.Len(inv.Devices[2].MIG, 1))
	assert.Check(t, !inv.Devices[2].Known("mig"))
}
