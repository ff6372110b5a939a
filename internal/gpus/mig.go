package gpus

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/perceptron/docker-perceptron/internal/gpus/migprofile"
)

// readMIG fills d.MIG from h, a GPU with MIG enabled: every MIG device
// that exists (NVML numbers the possible ones from 0 to
// GetMaxMigDeviceCount, with gaps where none was created).
func readMIG(d *Device, h nvml.Device) {
	n, ret := h.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		d.fail("mig", ret)
		return
	}
	for i := range n {
		mh, ret := h.GetMigDeviceHandleByIndex(i)
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_NOT_FOUND, nvml.ERROR_INVALID_ARGUMENT:
			continue // no MIG device at this index
		default:
			d.fail("mig", ret)
			continue
		}
		d.MIG = append(d.MIG, readMIGDevice(i, mh, d.MemoryTotalMiB))
	}
}

// readMIGDevice reads one MIG device of a GPU with gpuTotalMiB of memory.
func readMIGDevice(index int, h nvml.Device, gpuTotalMiB uint64) MIGDevice {
	m := MIGDevice{Index: index}
	fail := func(q string, ret nvml.Return) {
		if m.Errors == nil {
			m.Errors = map[string]string{}
		}
		m.Errors[q] = ret.Error()
	}
	if v, ret := h.GetUUID(); ret == nvml.SUCCESS {
		m.UUID = v
	} else {
		fail("uuid", ret)
	}
	if v, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
		m.MemoryTotalMiB, m.MemoryUsedMiB = v.Total/mib, v.Used/mib
	} else {
		fail("memory", ret)
	}
	if a, ret := h.GetAttributes(); ret == nvml.SUCCESS {
		m.Profile, m.ProfileGB = migprofile.Name(a.GpuInstanceSliceCount, a.ComputeInstanceSliceCount, a.MemorySizeMB, gpuTotalMiB)
	} else {
		fail("attributes", ret)
	}
	if ps, ret := h.GetComputeRunningProcesses(); ret == nvml.SUCCESS {
		m.Processes = processes(ps)
	} else {
		fail("processes", ret)
	}
	return m
}
