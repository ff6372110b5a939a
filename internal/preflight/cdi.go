package preflight

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// cdiGenerate is the command that writes a CDI spec for every GPU (and MIG
// device) NVML sees, by index and by UUID, as NVIDIA's guide gives it:
// https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html
// The guide also says the spec must be generated again after a driver
// upgrade or a change of the MIG configuration.
const cdiGenerate = "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"

// cdiGuide is NVIDIA's guide to CDI.
const cdiGuide = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/cdi-support.html"

// GPUsByCDI is the one rule of how --gpus auto hands docker its GPUs: as
// CDI devices (--device nvidia.com/gpu=UUID) when the daemon provides
// NVIDIA GPUs through CDI and neither through the nvidia runtime nor
// through dockerd's --gpus driver (nvidia-container-runtime-hook on its
// PATH); else as docker's --gpus "device=…". A hook found only on this
// user's PATH (dockerd's could not be read) is a guess, and CDI, which the
// daemon reports, wins over it.
func (d DaemonInfo) GPUsByCDI() bool {
	hook := d.Local && d.HookOnPath && !d.HookPathUnread
	return d.HasCDI() && !d.HasNvidiaRuntime() && !hook
}

// CDISpecDevices returns the device names ("0", "GPU-…", "all") that the
// CDI spec files list; a file that cannot be read or parsed lists none.
func CDISpecDevices(paths []string) []string {
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// JSON is YAML: one parser reads both forms of a spec.
		var spec struct {
			Devices []struct {
				Name string `yaml:"name"`
			} `yaml:"devices"`
		}
		if yaml.Unmarshal(b, &spec) != nil {
			continue
		}
		for _, d := range spec.Devices {
			names = append(names, d.Name)
		}
	}
	return names
}

// cdiNames are the NVIDIA GPU device names the daemon's CDI specs list:
// those docker info reports (docker 28.3+), and those of the spec files
// read on this host.
func (d DaemonInfo) cdiNames() []string {
	names := slices.Clone(d.NvidiaCDINames)
	for _, id := range d.CDIDevices {
		names = append(names, strings.TrimPrefix(id, cdiKindGPU+"="))
	}
	return names
}

// CDICoverage checks that the daemon's CDI specs list, by UUID, every GPU
// and MIG device NVML sees: --gpus auto hands them to a daemon that takes
// GPUs through CDI by UUID, and a spec generated before a driver upgrade
// or a MIG change lacks the new ones. ok is false when there is nothing to
// check: no CDI, or a remote daemon (NVML sees this host).
func CDICoverage(d DaemonInfo, inv gpus.Inventory) (f Finding, ok bool) {
	const check = "cdi"
	if !d.HasCDI() || !d.Local {
		return Finding{}, false
	}
	listed := map[string]bool{}
	for _, n := range d.cdiNames() {
		listed[strings.ToUpper(n)] = true
	}
	var missing, short []string
	total := 0
	for _, dev := range inv.Devices {
		units := []struct{ name, uuid string }{{fmt.Sprintf("GPU %d", dev.Index), dev.UUID}}
		for _, s := range dev.MIG {
			units = append(units, struct{ name, uuid string }{fmt.Sprintf("MIG %d:%d %s", dev.Index, s.Index, s.Profile), s.UUID})
		}
		for _, u := range units {
			if u.uuid == "" {
				continue
			}
			total++
			if !listed[strings.ToUpper(u.uuid)] {
				missing = append(missing, u.name+" ("+u.uuid+")")
				short = append(short, u.name)
			}
		}
	}
	if len(missing) == 0 {
		return Finding{Check: check, Level: OK, Message: fmt.Sprintf("the CDI spec lists all %d GPU devices by UUID", total)}, true
	}
	which := strings.Join(short, ", ")
	if len(short) > 3 {
		which = fmt.Sprintf("%d of the %d GPU devices", len(short), total)
	}
	return Finding{
		Check: check, Level: Warn,
		Message: "the CDI spec does not list " + which + ", which NVML sees",
		Fix:     cdiGenerate,
		Detail: "the NVIDIA CDI spec does not list " + strings.Join(missing, ", ") + " by UUID, though NVML sees them: " +
			"a spec generated before a driver upgrade or a MIG change; a container asking for them by CDI cannot be created " +
			"(fix: " + cdiGenerate + ", or with NVIDIA Container Toolkit 1.18 or later sudo systemctl restart nvidia-cdi-refresh.service; see " + cdiGuide + ")",
	}, true
}
