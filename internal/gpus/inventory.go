package gpus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoDriver is wrapped by the errors of Init (and Load) when NVML cannot
// be used: no driver, no libnvidia-ml.so.1, or a driver that does not answer.
var ErrNoDriver = errors.New("NVIDIA driver not available")

// Init initialises lib; call it once per command and the returned shutdown
// when the command is done with NVML. Its errors wrap ErrNoDriver and fit on
// one line, saying how to check the driver.
func Init(lib nvml.Interface) (shutdown func(), err error) {
	if lib == nil {
		return nil, fmt.Errorf("%w: no NVML library; run nvidia-smi to check that the NVIDIA driver is installed", ErrNoDriver)
	}
	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
		return func() { _ = lib.Shutdown() }, nil
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return nil, fmt.Errorf("%w: cannot load libnvidia-ml.so.1 (%v); check that the NVIDIA driver is installed and that nvidia-smi works", ErrNoDriver, ret)
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return nil, fmt.Errorf("%w: the NVIDIA kernel driver is not loaded (%v); run nvidia-smi to check the driver", ErrNoDriver, ret)
	default:
		return nil, fmt.Errorf("%w: NVML initialisation failed (%v); run nvidia-smi to check the driver", ErrNoDriver, ret)
	}
}

// Load initialises lib, reads the inventory and shuts lib down: for a
// command that needs NVML only for the inventory.
func Load(lib nvml.Interface) (Inventory, error) {
	shutdown, err := Init(lib)
	if err != nil {
		return Inventory{}, err
	}
	defer shutdown()
	return ReadInventory(lib)
}

// LoadFrom opens the library with open and loads the inventory (see Load).
// A library that cannot be opened is no driver, as far as the user is
// concerned: the error wraps ErrNoDriver and keeps open's words.
func LoadFrom(open func() (nvml.Interface, error)) (Inventory, error) {
	lib, err := open()
	if err != nil {
		return Inventory{}, noLibraryError{err}
	}
	return Load(lib)
}

type noLibraryError struct{ error }

func (e noLibraryError) Unwrap() []error { return []error{e.error, ErrNoDriver} }

// ReadInventory reads the host's GPUs from lib, which the caller has
// initialised (see Init). A device whose query fails is still listed: the
// query is named in Device.Errors and the field keeps its zero value.
func ReadInventory(lib nvml.Interface) (Inventory, error) {
	return readInventory(lib, sysfsNUMANode)
}

func readInventory(lib nvml.Interface, numaFallback func(busID string) (int, bool)) (Inventory, error) {
	var inv Inventory
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.DriverVersion = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		inv.CUDAVersion = cudaVersionString(v)
	}
	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return inv, fmt.Errorf("cannot count the GPUs: %v", ret)
	}

	handles := make([]nvml.Device, count)
	remotes := make([][]string, count) // NVLink remote PCI bus ids, per device
	for i := range count {
		d := Device{Index: i, NUMANode: -1, Brand: -1}
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			// Nothing about this GPU is known; say so for every query, so
			// that no one takes it for an idle GPU.
			for _, q := range deviceQueries {
				d.fail(q, ret)
			}
			inv.Devices = append(inv.Devices, d)
			continue
		}
		handles[i] = h
		readDevice(&d, h, numaFallback)
		remotes[i] = nvlinkRemotes(&d, h)
		inv.Devices = append(inv.Devices, d)
	}
	resolveNVLinkPeers(inv.Devices, remotes)
	readPCIePeers(inv.Devices, handles)
	return inv, nil
}

// readPCIePeers asks NVML, pair by pair, which GPUs share a PCIe switch: a
// common ancestor at TOPOLOGY_SINGLE or TOPOLOGY_MULTIPLE, as NVIDIA's
// go-gpuallocator reads it.
func readPCIePeers(devs []Device, handles []nvml.Device) {
	for i := range handles {
		for j := i + 1; j < len(handles); j++ {
			if handles[i] == nil || handles[j] == nil {
				continue
			}
			level, ret := handles[i].GetTopologyCommonAncestor(handles[j])
			if ret != nvml.SUCCESS {
				devs[i].fail("topology", ret)
				continue
			}
			if level <= nvml.TOPOLOGY_MULTIPLE {
				devs[i].PCIePeers = append(devs[i].PCIePeers, j)
				devs[j].PCIePeers = append(devs[j].PCIePeers, i)
			}
		}
	}
}

// readDevice fills d from h, one NVML query at a time.
func readDevice(d *Device, h nvml.Device, numaFallback func(string) (int, bool)) {
	if v, ret := h.GetUUID(); ret == nvml.SUCCESS {
		d.UUID = v
	} else {
		d.fail("uuid", ret)
	}
	if v, ret := h.GetName(); ret == nvml.SUCCESS {
		d.Name = v
	} else {
		d.fail("name", ret)
	}
	if v, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
		d.PCIBusID = busIDString(v.BusId[:])
	} else {
		d.fail("pci", ret)
	}
	if v, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
		d.MemoryTotalMiB = v.Total / mib
		d.MemoryUsedMiB = v.Used / mib
	} else {
		d.fail("memory", ret)
	}
	if v, ret := h.GetUtilizationRates(); ret == nvml.SUCCESS {
		d.UtilizationPercent = int(v.Gpu)
	} else {
		d.fail("utilization", ret)
	}
	if v, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		d.TemperatureC = int(v)
	} else {
		d.fail("temperature", ret)
	}
	if v, ret := h.GetPowerUsage(); ret == nvml.SUCCESS {
		d.PowerW = int((v + 500) / 1000) // milliwatts
	} else {
		d.fail("power", ret)
	}
	if b, ret := h.GetBrand(); ret == nvml.SUCCESS {
		d.Brand = int(b)
	} else {
		d.fail("brand", ret)
	}
	readUsage(d, h, numaFallback)
}

// readUsage fills d's MIG mode, processes and NUMA node from h.
func readUsage(d *Device, h nvml.Device, numaFallback func(string) (int, bool)) {
	// Not supported means a GPU without MIG, not an unknown mode.
	if current, _, ret := h.GetMigMode(); ret == nvml.SUCCESS {
		d.MIGEnabled = current == nvml.DEVICE_MIG_ENABLE
		if d.MIGEnabled {
			readMIG(d, h)
		}
	} else if ret != nvml.ERROR_NOT_SUPPORTED {
		d.fail("mig", ret)
	}
	if ps, ret := h.GetComputeRunningProcesses(); ret == nvml.SUCCESS {
		d.Processes = processes(ps)
	} else {
		d.fail("processes", ret)
	}
	if v, ret := h.GetNumaNodeId(); ret == nvml.SUCCESS {
		d.NUMANode = v
	} else if n, ok := numaFallback(d.PCIBusID); ok {
		d.NUMANode = n
	}
	readAccounting(d, h)
}

// readAccounting fills d.Accounting and d.LastUsed. NVML's accounting
// records each compute process (in a circular buffer, with ended ones): its
// start (CPU time in microseconds) and, once it ended, how long it ran (in
// milliseconds); see nvmlAccountingStats_t in nvml.h. Not supported is
// accounting off.
func readAccounting(d *Device, h nvml.Device) {
	mode, ret := h.GetAccountingMode()
	switch {
	case ret == nvml.ERROR_NOT_SUPPORTED:
		return
	case ret != nvml.SUCCESS:
		d.fail("accounting", ret)
		return
	case mode != nvml.FEATURE_ENABLED:
		return
	}
	d.Accounting = true
	pids, ret := h.GetAccountingPids()
	if ret != nvml.SUCCESS {
		d.fail("accounting", ret)
		return
	}
	for _, pid := range pids {
		st, ret := h.GetAccountingStats(uint32(pid))
		if ret != nvml.SUCCESS || st.IsRunning != 0 {
			continue // gone from the buffer since listed, or still running
		}
		end := time.UnixMicro(int64(st.StartTime)).Add(time.Duration(st.Time) * time.Millisecond)
		if end.After(d.LastUsed) {
			d.LastUsed = end
		}
	}
}

// nvlinkRemotes returns the PCI bus ids at the other end of d's active
// NVLinks: GPUs, or NVSwitches on switched systems.
func nvlinkRemotes(d *Device, h nvml.Device) []string {
	var remotes []string
	for link := range nvml.NVLINK_MAX_LINKS {
		state, ret := h.GetNvLinkState(link)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_INVALID_ARGUMENT:
			// No NVLink on this GPU, or no link with this number: the
			// links are numbered from 0 without gaps.
			return remotes
		default:
			d.fail("nvlink", ret)
			continue
		}
		if state != nvml.FEATURE_ENABLED {
			continue
		}
		pci, ret := h.GetNvLinkRemotePciInfo(link)
		if ret != nvml.SUCCESS {
			d.fail("nvlink", ret)
			continue
		}
		remotes = append(remotes, normalizeBusID(busIDString(pci.BusId[:])))
	}
	return remotes
}

// resolveNVLinkPeers turns remote bus ids into GPU indexes, one entry per
// link, as Device.NVLinkPeers counts links. A remote that is not a GPU is a
// switch (NVSwitch): GPUs linked to the same switch are peers, once each.
func resolveNVLinkPeers(devs []Device, remotes [][]string) {
	byBus := make(map[string]int, len(devs))
	for _, d := range devs {
		if d.PCIBusID != "" {
			byBus[normalizeBusID(d.PCIBusID)] = d.Index
		}
	}
	switches := map[string][]int{}
	for i, rs := range remotes {
		for _, r := range rs {
			if _, isGPU := byBus[r]; !isGPU && !slices.Contains(switches[r], i) {
				switches[r] = append(switches[r], i)
			}
		}
	}
	for i, rs := range remotes {
		var peers, viaSwitch []int
		for _, r := range rs {
			if j, isGPU := byBus[r]; isGPU {
				peers = append(peers, j)
				continue
			}
			viaSwitch = append(viaSwitch, switches[r]...)
		}
		for _, j := range viaSwitch {
			if j != i && !slices.Contains(peers, j) {
				peers = append(peers, j)
			}
		}
		slices.Sort(peers)
		if len(peers) > 0 {
			devs[i].NVLinkPeers = peers
		}
	}
}

// deviceQueries are the keys of Device.Errors.
var deviceQueries = []string{"handle", "uuid", "name", "pci", "memory", "utilization", "temperature", "power", "mig", "processes", "nvlink", "topology", "brand"}

const (
	mib = 1 << 20
	// valueNotAvailable is NVML's NVML_VALUE_NOT_AVAILABLE for a process's
	// memory (no permission to see it).
	valueNotAvailable = ^uint64(0)
)

func (d *Device) fail(query string, ret nvml.Return) {
	if d.Errors == nil {
		d.Errors = map[string]string{}
	}
	d.Errors[query] = ret.Error()
}

// cudaVersionString turns NVML's 13000 into "13.0".
func cudaVersionString(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// busIDString reads NVML's NUL-terminated C string.
func busIDString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// normalizeBusID makes NVML's "00000000:18:00.0" and sysfs's "0000:18:00.0"
// comparable: lower case, 4-digit domain.
func normalizeBusID(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	domain, rest, ok := strings.Cut(id, ":")
	if !ok {
		return id
	}
	if len(domain) > 4 {
		domain = domain[len(domain)-4:]
	}
	return domain + ":" + rest
}

// sysfsNUMANode reads the NUMA node of a PCI device from sysfs, for drivers
// whose NVML does not report it.
func sysfsNUMANode(busID string) (int, bool) {
	if busID == "" {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join("/sys/bus/pci/devices", normalizeBusID(busID), "numa_node"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// processes turns NVML's compute processes into ours: memory in MiB, 0 when
// NVML reports it as not available.
func processes(ps []nvml.ProcessInfo) []Process {
	out := make([]Process, 0, len(ps))
	for _, p := range ps {
		used := p.UsedGpuMemory
		if used == valueNotAvailable {
			used = 0
		}
		out = append(out, Process{PID: int(p.Pid), UsedMemoryMiB: used / mib})
	}
	return out
}
