package gpustest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/perceptron/docker-perceptron/internal/gpus/migprofile"
)

// Spec describes a host's GPUs for the fake NVML library (builds with
// the fakenvml tag, and unit tests). The JSON format is documented in
// FAKE_NVML.md.
type Spec struct {
	DriverVersion string `json:"driver_version,omitempty"`
	CUDAVersion   string `json:"cuda_version,omitempty"` // "13.0"
	// InitError, an NVML return name such as "ERROR_LIBRARY_NOT_FOUND",
	// makes Init fail: a host without a driver.
	InitError string `json:"init_error,omitempty"`
	GPUs      []GPU  `json:"gpus"`
}

// GPU is one fake GPU; its index is its position in Spec.GPUs.
type GPU struct {
	UUID               string `json:"uuid"`
	Name               string `json:"name"`
	PCIBusID           string `json:"pci_bus_id,omitempty"`
	MemoryTotalMiB     uint64 `json:"memory_total_mib,omitempty"`
	MemoryUsedMiB      uint64 `json:"memory_used_mib,omitempty"`
	UtilizationPercent uint32 `json:"utilization_percent,omitempty"`
	TemperatureC       uint32 `json:"temperature_c,omitempty"`
	PowerW             uint32 `json:"power_w,omitempty"`
	MIGEnabled         bool   `json:"mig_enabled,omitempty"`
	// MIGDevices are the MIG devices of a GPU with mig_enabled, by their
	// NVML index (their position).
	MIGDevices []MIGDevice `json:"mig_devices,omitempty"`
	// Brand is NVML's brand number; omitted, 2 (Tesla, data centre GPUs).
	Brand       *int  `json:"brand,omitempty"`
	NUMANode    *int  `json:"numa_node,omitempty"`
	NVLinkPeers []int `json:"nvlink_peers,omitempty"`
	// PCIeSwitch names the PCIe switch the GPU sits behind: GPUs with the
	// same name share it (NVML's TOPOLOGY_SINGLE).
	PCIeSwitch string    `json:"pcie_switch,omitempty"`
	Processes  []Process `json:"processes,omitempty"`
	// Accounting, when present, turns NVML's accounting mode on, with the
	// processes it remembers (see FAKE_NVML.md).
	Accounting *Accounting `json:"accounting,omitempty"`
	// Errors makes queries fail: query name (as in Device.Errors, or
	// "handle") to NVML return name, e.g. {"temperature": "ERROR_UNKNOWN"}.
	Errors map[string]string `json:"errors,omitempty"`
}

// MIGDevice is one MIG device of a fake GPU.
type MIGDevice struct {
	UUID string `json:"uuid"`
	// Profile is NVIDIA's name of its profile, "1g.10gb", "1c.3g.40gb":
	// GetAttributes answers its slices and a memory size that NVML's
	// naming turns back into it.
	Profile        string    `json:"profile"`
	MemoryTotalMiB uint64    `json:"memory_total_mib,omitempty"`
	MemoryUsedMiB  uint64    `json:"memory_used_mib,omitempty"`
	Processes      []Process `json:"processes,omitempty"`
	// Errors as GPU.Errors, for "uuid", "memory", "attributes",
	// "processes", and "handle" (GetMigDeviceHandleByIndex fails).
	Errors map[string]string `json:"errors,omitempty"`
}

// Process is a compute process on a fake GPU.
type Process struct {
	PID           int    `json:"pid"`
	UsedMemoryMiB uint64 `json:"used_memory_mib,omitempty"`
}

// Accounting is what NVML's accounting remembers of a GPU's processes.
type Accounting struct {
	Processes []AccountedProcess `json:"processes,omitempty"`
}

// AccountedProcess is one record: a process that started at Start and,
// unless Running, ran for Seconds.
type AccountedProcess struct {
	PID     int       `json:"pid"`
	Start   time.Time `json:"start"`
	Seconds float64   `json:"seconds,omitempty"`
	Running bool      `json:"running,omitempty"`
}

// LoadSpec reads and checks a fake NVML spec file.
func LoadSpec(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("fake NVML: cannot read spec: %w", err)
	}
	var spec Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return Spec{}, fmt.Errorf("fake NVML: invalid spec %s: %w", path, err)
	}
	if err := spec.Validate(); err != nil {
		return Spec{}, fmt.Errorf("fake NVML: invalid spec %s: %w", path, err)
	}
	return spec, nil
}

// Validate reports the first mistake in the spec.
func (s Spec) Validate() error {
	if _, err := cudaVersionInt(s.CUDAVersion); err != nil {
		return err
	}
	if _, err := returnByName(s.InitError); err != nil {
		return fmt.Errorf("init_error: %w", err)
	}
	for i, g := range s.GPUs {
		if g.UUID == "" || g.Name == "" {
			return fmt.Errorf("gpus[%d]: uuid and name are required", i)
		}
		for _, p := range g.NVLinkPeers {
			if p < 0 || p >= len(s.GPUs) || p == i {
				return fmt.Errorf("gpus[%d]: nvlink peer %d is not another GPU's index", i, p)
			}
		}
		for q, name := range g.Errors {
			if _, err := returnByName(name); err != nil {
				return fmt.Errorf("gpus[%d]: errors[%q]: %w", i, q, err)
			}
		}
		if err := g.validateMIG(); err != nil {
			return fmt.Errorf("gpus[%d]: %w", i, err)
		}
	}
	return nil
}

// validateMIG checks g's MIG devices: on a GPU with MIG enabled and its
// memory given, each with a UUID and a profile whose name NVML's naming
// gives back from its memory.
func (g GPU) validateMIG() error {
	if len(g.MIGDevices) == 0 {
		return nil
	}
	if !g.MIGEnabled || g.MemoryTotalMiB == 0 {
		return errors.New("mig_devices need mig_enabled and memory_total_mib")
	}
	for j, m := range g.MIGDevices {
		if m.UUID == "" || m.Profile == "" {
			return fmt.Errorf("mig_devices[%d]: uuid and profile are required", j)
		}
		gs, cs, _, ok := migprofile.Parse(m.Profile)
		if !ok {
			return fmt.Errorf("mig_devices[%d]: profile %q: want a name such as 1g.10gb or 1c.3g.40gb", j, m.Profile)
		}
		if name, _ := migprofile.Name(gs, cs, migMemory(g, m), g.MemoryTotalMiB); name != m.Profile {
			return fmt.Errorf("mig_devices[%d]: memory_total_mib %d on a %d MiB GPU makes profile %s, not %s", j, migMemory(g, m), g.MemoryTotalMiB, name, m.Profile)
		}
		for q, name := range m.Errors {
			if _, err := returnByName(name); err != nil {
				return fmt.Errorf("mig_devices[%d]: errors[%q]: %w", j, q, err)
			}
		}
	}
	return nil
}

// migMemory is m's memory_total_mib, or, when omitted, 95 % of the share of
// the GPU's memory its profile names.
func migMemory(g GPU, m MIGDevice) uint64 {
	if m.MemoryTotalMiB != 0 {
		return m.MemoryTotalMiB
	}
	_, _, gb, _ := migprofile.Parse(m.Profile)
	totalGiB := (g.MemoryTotalMiB + 1023) / 1024
	return uint64(gb) * g.MemoryTotalMiB / totalGiB * 95 / 100
}

// NewLibrary returns an NVML library that answers from spec, built on
// go-nvml's mock package. Call Validate (or LoadSpec) first: names it
// does not know read as ERROR_UNKNOWN.
func NewLibrary(spec Spec) nvml.Interface {
	devs := make([]*mock.Device, len(spec.GPUs))
	for i := range spec.GPUs {
		devs[i] = newFakeDevice(spec, i)
	}
	for i, d := range devs {
		d.GetTopologyCommonAncestorFunc = func(other nvml.Device) (nvml.GpuTopologyLevel, nvml.Return) {
			j := slices.IndexFunc(devs, func(o *mock.Device) bool { return nvml.Device(o) == other })
			if ret, _ := returnByName(spec.GPUs[i].Errors["topology"]); ret != nvml.SUCCESS {
				return 0, ret
			}
			return fakeTopology(spec.GPUs[i], spec.GPUs[j]), nvml.SUCCESS
		}
	}
	initRet, _ := returnByName(spec.InitError)
	cuda, cudaErr := cudaVersionInt(spec.CUDAVersion)

	lookup := func(match func(i int) bool) (nvml.Device, nvml.Return) {
		for i, d := range devs {
			if match(i) {
				return d, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	return &mock.Interface{
		InitFunc:        func() nvml.Return { return initRet },
		ShutdownFunc:    func() nvml.Return { return nvml.SUCCESS },
		ErrorStringFunc: func(r nvml.Return) string { return r.Error() },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) {
			if spec.DriverVersion == "" {
				return "", nvml.ERROR_NOT_SUPPORTED
			}
			return spec.DriverVersion, nvml.SUCCESS
		},
		SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) {
			if spec.CUDAVersion == "" || cudaErr != nil {
				return 0, nvml.ERROR_NOT_SUPPORTED
			}
			return cuda, nvml.SUCCESS
		},
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(n int) (nvml.Device, nvml.Return) {
			if n < 0 || n >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			if ret, failed := fakeFailure(spec.GPUs[n], "handle"); failed {
				return nil, ret
			}
			return devs[n], nvml.SUCCESS
		},
		DeviceGetHandleByUUIDFunc: func(s string) (nvml.Device, nvml.Return) {
			return lookup(func(i int) bool { return spec.GPUs[i].UUID == s })
		},
		DeviceGetHandleByPciBusIdFunc: func(s string) (nvml.Device, nvml.Return) {
			return lookup(func(i int) bool { return sameBus(fakeBusID(spec, i), s) })
		},
	}
}

func newFakeDevice(spec Spec, i int) *mock.Device {
	g := spec.GPUs[i]
	// answer returns v, or the error the spec sets for query q.
	answer := func(q string) nvml.Return {
		if ret, failed := fakeFailure(g, q); failed {
			return ret
		}
		return nvml.SUCCESS
	}
	d := &mock.Device{
		GetIndexFunc: func() (int, nvml.Return) { return i, nvml.SUCCESS },
		GetUUIDFunc:  func() (string, nvml.Return) { return g.UUID, answer("uuid") },
		GetNameFunc:  func() (string, nvml.Return) { return g.Name, answer("name") },
		GetPciInfoFunc: func() (nvml.PciInfo, nvml.Return) {
			return PCIInfo(fakeBusID(spec, i)), answer("pci")
		},
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			total, used := g.MemoryTotalMiB*mib, g.MemoryUsedMiB*mib
			return nvml.Memory{Total: total, Used: used, Free: total - min(used, total)}, answer("memory")
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: g.UtilizationPercent}, answer("utilization")
		},
		GetTemperatureFunc: func(nvml.TemperatureSensors) (uint32, nvml.Return) {
			return g.TemperatureC, answer("temperature")
		},
		GetPowerUsageFunc: func() (uint32, nvml.Return) { return g.PowerW * 1000, answer("power") },
		GetBrandFunc: func() (nvml.BrandType, nvml.Return) {
			if g.Brand == nil {
				return nvml.BRAND_TESLA, answer("brand")
			}
			return nvml.BrandType(*g.Brand), answer("brand")
		},
		GetMigModeFunc: func() (int, int, nvml.Return) {
			mode := nvml.DEVICE_MIG_DISABLE
			if g.MIGEnabled {
				mode = nvml.DEVICE_MIG_ENABLE
			}
			return mode, mode, answer("mig")
		},
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			ps := make([]nvml.ProcessInfo, 0, len(g.Processes))
			for _, p := range g.Processes {
				ps = append(ps, nvml.ProcessInfo{Pid: uint32(p.PID), UsedGpuMemory: p.UsedMemoryMiB * mib})
			}
			return ps, answer("processes")
		},
	}
	addFakeLinks(d, spec, i, answer)
	addFakeAccounting(d, g, answer)
	addFakeMIG(d, g)
	return d
}

// addFakeMIG answers d's MIG devices from g.
func addFakeMIG(d *mock.Device, g GPU) {
	migs := make([]*mock.Device, len(g.MIGDevices))
	for j, m := range g.MIGDevices {
		answer := func(q string) nvml.Return {
			if ret, failed := fakeFailure(GPU{Errors: m.Errors}, q); failed {
				return ret
			}
			return nvml.SUCCESS
		}
		gs, cs, _, _ := migprofile.Parse(m.Profile)
		total := migMemory(g, m)
		migs[j] = &mock.Device{
			GetUUIDFunc: func() (string, nvml.Return) { return m.UUID, answer("uuid") },
			GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
				t, u := total*mib, m.MemoryUsedMiB*mib
				return nvml.Memory{Total: t, Used: u, Free: t - min(u, t)}, answer("memory")
			},
			GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
				return nvml.DeviceAttributes{GpuInstanceSliceCount: gs, ComputeInstanceSliceCount: cs, MemorySizeMB: total}, answer("attributes")
			},
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				ps := make([]nvml.ProcessInfo, 0, len(m.Processes))
				for _, p := range m.Processes {
					ps = append(ps, nvml.ProcessInfo{Pid: uint32(p.PID), UsedGpuMemory: p.UsedMemoryMiB * mib})
				}
				return ps, answer("processes")
			},
			IsMigDeviceHandleFunc:                  func() (bool, nvml.Return) { return true, nvml.SUCCESS },
			GetDeviceHandleFromMigDeviceHandleFunc: func() (nvml.Device, nvml.Return) { return d, nvml.SUCCESS },
			GetGpuInstanceIdFunc:                   func() (int, nvml.Return) { return j + 1, nvml.SUCCESS },
			GetComputeInstanceIdFunc:               func() (int, nvml.Return) { return 0, nvml.SUCCESS },
		}
	}
	// A GPU without MIG answers NOT_SUPPORTED, as NVML does.
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) {
		if !g.MIGEnabled {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		return max(7, len(migs)), nvml.SUCCESS
	}
	d.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
		if !g.MIGEnabled {
			return nil, nvml.ERROR_NOT_SUPPORTED
		}
		if j < 0 || j >= len(migs) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		if ret, failed := fakeFailure(GPU{Errors: g.MIGDevices[j].Errors}, "handle"); failed {
			return nil, ret
		}
		return migs[j], nvml.SUCCESS
	}
}

// addFakeAccounting answers d's accounting mode and records from g.
func addFakeAccounting(d *mock.Device, g GPU, answer func(q string) nvml.Return) {
	acc := g.Accounting
	d.GetAccountingModeFunc = func() (nvml.EnableState, nvml.Return) {
		if acc == nil {
			return nvml.FEATURE_DISABLED, answer("accounting")
		}
		return nvml.FEATURE_ENABLED, answer("accounting")
	}
	d.GetAccountingPidsFunc = func() ([]int, nvml.Return) {
		if acc == nil {
			return nil, nvml.ERROR_NOT_SUPPORTED
		}
		pids := make([]int, len(acc.Processes))
		for i, p := range acc.Processes {
			pids[i] = p.PID
		}
		return pids, answer("accounting")
	}
	d.GetAccountingStatsFunc = func(pid uint32) (nvml.AccountingStats, nvml.Return) {
		if acc == nil {
			return nvml.AccountingStats{}, nvml.ERROR_NOT_SUPPORTED
		}
		for _, p := range acc.Processes {
			if p.PID == int(pid) {
				st := nvml.AccountingStats{StartTime: uint64(p.Start.UnixMicro()), IsRunning: 1}
				if !p.Running {
					st.IsRunning, st.Time = 0, uint64(p.Seconds*1000)
				}
				return st, nvml.SUCCESS
			}
		}
		return nvml.AccountingStats{}, nvml.ERROR_NOT_FOUND
	}
}

// addFakeLinks answers d's NUMA node and NVLinks from spec.
func addFakeLinks(d *mock.Device, spec Spec, i int, answer func(q string) nvml.Return) {
	g := spec.GPUs[i]
	d.GetNumaNodeIdFunc = func() (int, nvml.Return) {
		if g.NUMANode == nil {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		return *g.NUMANode, answer("numa")
	}
	d.GetNvLinkStateFunc = func(link int) (nvml.EnableState, nvml.Return) {
		if ret := answer("nvlink"); ret != nvml.SUCCESS {
			return 0, ret
		}
		if len(g.NVLinkPeers) == 0 {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		if link < 0 || link >= len(g.NVLinkPeers) {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return nvml.FEATURE_ENABLED, nvml.SUCCESS
	}
	d.GetNvLinkRemotePciInfoFunc = func(link int) (nvml.PciInfo, nvml.Return) {
		if link < 0 || link >= len(g.NVLinkPeers) {
			return nvml.PciInfo{}, nvml.ERROR_INVALID_ARGUMENT
		}
		return PCIInfo(fakeBusID(spec, g.NVLinkPeers[link])), answer("nvlink")
	}
}

// fakeTopology is the common ancestor of two fake GPUs: their switch, else
// their NUMA node, else the system.
func fakeTopology(a, b GPU) nvml.GpuTopologyLevel {
	switch {
	case a.PCIeSwitch != "" && a.PCIeSwitch == b.PCIeSwitch:
		return nvml.TOPOLOGY_SINGLE
	case a.NUMANode != nil && b.NUMANode != nil && *a.NUMANode == *b.NUMANode:
		return nvml.TOPOLOGY_NODE
	}
	return nvml.TOPOLOGY_SYSTEM
}

// fakeBusID is the GPU's pci_bus_id, or one made up from its index.
func fakeBusID(spec Spec, i int) string {
	if id := spec.GPUs[i].PCIBusID; id != "" {
		return id
	}
	return fmt.Sprintf("00000000:%02X:00.0", i+1)
}

func fakeFailure(g GPU, query string) (nvml.Return, bool) {
	name, ok := g.Errors[query]
	if !ok {
		return nvml.SUCCESS, false
	}
	ret, err := returnByName(name)
	if err != nil {
		ret = nvml.ERROR_UNKNOWN
	}
	return ret, ret != nvml.SUCCESS
}

// mib is a mebibyte, NVML's memory unit being the byte.
const mib = 1 << 20

// sameBus compares PCI bus ids whatever their domain width: NVML writes
// "00000000:18:00.0", sysfs "0000:18:00.0".
func sameBus(a, b string) bool {
	_, ra, _ := strings.Cut(a, ":")
	_, rb, _ := strings.Cut(b, ":")
	return ra != "" && strings.EqualFold(ra, rb)
}

// PCIInfo is the nvml.PciInfo of a bus id, as NVML fills it.
func PCIInfo(busID string) nvml.PciInfo {
	var p nvml.PciInfo
	for i := 0; i < len(busID) && i < len(p.BusId)-1; i++ {
		p.BusId[i] = int8(busID[i])
	}
	return p
}

// cudaVersionInt turns "13.0" into NVML's 13000; "" is 0.
func cudaVersionInt(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	major, minor, _ := strings.Cut(s, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if minor == "" {
		mi, err2 = 0, nil
	}
	if err := errors.Join(err1, err2); err != nil || ma < 0 || mi < 0 || mi > 99 {
		return 0, fmt.Errorf("cuda_version %q: want MAJOR.MINOR, e.g. 13.0", s)
	}
	return ma*1000 + mi*10, nil
}

var returnNames = map[string]nvml.Return{
	"SUCCESS":                       nvml.SUCCESS,
	"ERROR_UNINITIALIZED":           nvml.ERROR_UNINITIALIZED,
	"ERROR_INVALID_ARGUMENT":        nvml.ERROR_INVALID_ARGUMENT,
	"ERROR_NOT_SUPPORTED":           nvml.ERROR_NOT_SUPPORTED,
	"ERROR_NO_PERMISSION":           nvml.ERROR_NO_PERMISSION,
	"ERROR_NOT_FOUND":               nvml.ERROR_NOT_FOUND,
	"ERROR_INSUFFICIENT_POWER":      nvml.ERROR_INSUFFICIENT_POWER,
	"ERROR_DRIVER_NOT_LOADED":       nvml.ERROR_DRIVER_NOT_LOADED,
	"ERROR_TIMEOUT":                 nvml.ERROR_TIMEOUT,
	"ERROR_LIBRARY_NOT_FOUND":       nvml.ERROR_LIBRARY_NOT_FOUND,
	"ERROR_FUNCTION_NOT_FOUND":      nvml.ERROR_FUNCTION_NOT_FOUND,
	"ERROR_GPU_IS_LOST":             nvml.ERROR_GPU_IS_LOST,
	"ERROR_RESET_REQUIRED":          nvml.ERROR_RESET_REQUIRED,
	"ERROR_LIB_RM_VERSION_MISMATCH": nvml.ERROR_LIB_RM_VERSION_MISMATCH,
	"ERROR_UNKNOWN":                 nvml.ERROR_UNKNOWN,
}

// returnByName maps "ERROR_UNKNOWN" to nvml.ERROR_UNKNOWN; "" is SUCCESS.
func returnByName(name string) (nvml.Return, error) {
	if name == "" {
		return nvml.SUCCESS, nil
	}
	if r, ok := returnNames[name]; ok {
		return r, nil
	}
	return nvml.ERROR_UNKNOWN, fmt.Errorf("unknown NVML return %q (e.g. ERROR_UNKNOWN, ERROR_NOT_SUPPORTED)", name)
}

// FourH100 is a fixture: four NVLinked H100s on two NUMA nodes, GPU 1
// busy with process 4242.
func FourH100() Spec {
	spec := Spec{DriverVersion: "580.95.05", CUDAVersion: "13.0"}
	for i := range 4 {
		var peers []int
		for j := range 4 {
			if j != i {
				peers = append(peers, j)
			}
		}
		numa := i / 2
		spec.GPUs = append(spec.GPUs, GPU{
			UUID:           "GPU-" + strings.Repeat(string(rune('a'+i)), 8) + "-1111-2222-3333-444455556666",
			Name:           "NVIDIA H100 80GB HBM3",
			PCIBusID:       []string{"00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0"}[i],
			MemoryTotalMiB: 81559, TemperatureC: uint32(30 + i), PowerW: 70,
			NUMANode: &numa, NVLinkPeers: peers,
		})
	}
	spec.GPUs[1].MemoryUsedMiB, spec.GPUs[1].UtilizationPercent = 20480, 97
	spec.GPUs[1].Processes = []Process{{PID: 4242, UsedMemoryMiB: 20000}}
	return spec
}

// EightH100 is a fixture: eight idle H100s (driver 550.54.15, CUDA 12.4)
// whose UUIDs are GPU-0000000N-h100.
func EightH100() Spec {
	spec := Spec{DriverVersion: "550.54.15", CUDAVersion: "12.4"}
	for i := range 8 {
		spec.GPUs = append(spec.GPUs, GPU{UUID: fmt.Sprintf("GPU-0000000%d-h100", i), Name: "NVIDIA H100 80GB HBM3", MemoryTotalMiB: 81559})
	}
	return spec
}

// MIGA100s is a fixture: GPU 0 a whole H100, GPUs 1 and 2 A100 80GBs with
// MIG enabled. GPU 1 is split into 1g.10gb (process 5151 on its first),
// 1g.10gb, 2g.20gb and 3g.40gb; GPU 2 into 3g.40gb and 4g.40gb, idle.
// MIG UUIDs are MIG-<GPU>-<index>-….
func MIGA100s() Spec {
	spec := Spec{DriverVersion: "580.95.05", CUDAVersion: "13.0", GPUs: []GPU{
		{UUID: "GPU-00000000-h100", Name: "NVIDIA H100 80GB HBM3", MemoryTotalMiB: 81559},
		{UUID: "GPU-00000001-a100", Name: "NVIDIA A100-SXM4-80GB", MemoryTotalMiB: 81920, MIGEnabled: true},
		{UUID: "GPU-00000002-a100", Name: "NVIDIA A100-SXM4-80GB", MemoryTotalMiB: 81920, MIGEnabled: true},
	}}
	profiles := map[int][]string{1: {"1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"}, 2: {"3g.40gb", "4g.40gb"}}
	for g, ps := range profiles {
		for j, p := range ps {
			spec.GPUs[g].MIGDevices = append(spec.GPUs[g].MIGDevices, MIGDevice{
				UUID: fmt.Sprintf("MIG-%d-%d-aaaa-bbbb-cccc-dddddddddddd", g, j), Profile: p,
			})
		}
	}
	spec.GPUs[1].MIGDevices[0].MemoryUsedMiB = 3000
	spec.GPUs[1].MIGDevices[0].Processes = []Process{{PID: 5151, UsedMemoryMiB: 3000}}
	spec.GPUs[1].MemoryUsedMiB = 3000
	spec.GPUs[1].Processes = []Process{{PID: 5151, UsedMemoryMiB: 3000}}
	return spec
}
